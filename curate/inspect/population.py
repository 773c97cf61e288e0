"""Who and what is in the archive: the population statistics of the report.

Everything here is an aggregate computed in DuckDB over the index. Cells that describe
people (patients, studies, images in a group) and hold fewer than ``min_cell`` are
suppressed in what :func:`population` returns: the count becomes :data:`SUPPRESSED`
and any statistic of that group is dropped. Top utilisers are ranks, never IDs.
"""

from __future__ import annotations

import os
from pathlib import Path

from curate.index.schema import DESCRIBES_IMAGE
from curate.index.store import open_index

#: Default small-cell threshold: counts from 1 to min_cell - 1 are not shown.
MIN_CELL = 5
SUPPRESSED = "suppressed"

AGE_BANDS = [(0, 10), (10, 20), (20, 30), (30, 40), (40, 50), (50, 60), (60, 70), (70, 80), (80, 90), (90, 121)]
STUDIES_PER_PATIENT_BINS = [(1, 1), (2, 2), (3, 5), (6, 10), (11, None)]
XRAY_MODALITIES = ("CR", "DX", "RF", "XA", "MG", "PX", "DR")
DOSE_COLUMNS = {
    "ExposureIndex": "exposure index",
    "DeviationIndex": "deviation index",
    "EntranceDoseInmGy": "entrance dose (mGy)",
    "ImageAndFluoroscopyAreaDoseProduct": "area dose product (dGy·cm²)",
    "KVP": "kVp",
    "mAs": "mAs",
}
TOP_UTILISERS = 10


class _Stats:
    def __init__(self, index_dir: Path, min_cell: int):
        self.min_cell = min_cell
        self.con = open_index(index_dir).connect("raw")
        self.columns = {r[0] for r in self.con.execute("DESCRIBE raw").fetchall()}
        # One row per image: readable, current files. Missing columns read as NULL so
        # that every statistic works on any tag set.
        wanted = [
            "PatientID",
            "StudyInstanceUID",
            "SeriesInstanceUID",
            "Modality",
            "Manufacturer",
            "BodyPartExamined",
            "ManufacturerModelName",
            "StudyDate",
            "age_years",
            "sex",
            "study_year",
            "body_part",
            "view",
            "digitized_film",
            "ExposureIndex",
            "DeviationIndex",
            "EntranceDoseInmGy",
            "ImageAndFluoroscopyAreaDoseProduct",
            "KVP",
            "Exposure",
            "ExposureInuAs",
        ]
        select = ", ".join(c if c in self.columns else f"NULL AS {c}" for c in wanted)
        self.con.execute(f"CREATE VIEW img AS SELECT {select} FROM raw WHERE {DESCRIBES_IMAGE}")

    def cell(self, n) -> int | str:
        n = int(n or 0)
        return SUPPRESSED if 0 < n < self.min_cell else n

    def fetch(self, sql: str) -> list[tuple]:
        return self.con.execute(sql).fetchall()

    def close(self) -> None:
        self.con.close()


def population(index_dir: str | os.PathLike[str], min_cell: int = MIN_CELL) -> dict:
    """Every statistic of the report, as plain data (JSON-ready, suppressed)."""
    s = _Stats(index_dir, min_cell)
    try:
        return {
            "min_cell": min_cell,
            "totals": _totals(s),
            "by_modality": _by_modality(s),
            "by_equipment": _by_equipment(s),
            "age_sex": _age_sex(s),
            "studies_per_patient": _studies_per_patient(s),
            "top_utilisers": _top_utilisers(s),
            "by_year": _by_year(s),
            "film_by_year": _film_by_year(s),
            "trend": _trend(s),
            "xray_dose": _xray_dose(s),
            "deviation_index": _deviation_index(s),
            "chest_views": _chest_views(s),
            "body_part_spellings": _body_part_spellings(s),
        }
    finally:
        s.close()


def _totals(s: _Stats) -> dict:
    images, studies, series, patients = s.fetch(
        "SELECT count(*), count(DISTINCT StudyInstanceUID), count(DISTINCT SeriesInstanceUID), "
        "count(DISTINCT PatientID) FROM img"
    )[0]
    (files,) = s.fetch("SELECT count(*) FROM raw")[0]
    return {
        "files": files,
        "images": s.cell(images),
        "series": s.cell(series),
        "studies": s.cell(studies),
        "patients": s.cell(patients),
    }


def _by_modality(s: _Stats) -> list[dict]:
    rows = s.fetch(
        "SELECT coalesce(Modality, '(none)') AS m, count(*), count(DISTINCT StudyInstanceUID), "
        "count(DISTINCT PatientID) FROM img GROUP BY m ORDER BY count(*) DESC, m"
    )
    return [{"modality": m, "images": s.cell(i), "studies": s.cell(st), "patients": s.cell(p)} for m, i, st, p in rows]


def _by_equipment(s: _Stats) -> list[dict]:
    rows = s.fetch(
        "SELECT coalesce(Manufacturer, '(none)'), coalesce(ManufacturerModelName, '(none)'), "
        "string_agg(DISTINCT Modality, ', ' ORDER BY Modality), count(*) AS n "
        "FROM img GROUP BY ALL ORDER BY n DESC LIMIT 40"
    )
    return [{"manufacturer": m, "model": mo, "modalities": mods or "", "images": s.cell(n)} for m, mo, mods, n in rows]


def _age_band_sql(column: str) -> str:
    cases = " ".join(
        f"WHEN {column} >= {low} AND {column} < {high} THEN '{low}-{high - 1}'"
        if high <= 90
        else f"WHEN {column} >= {low} THEN '90+'"
        for low, high in AGE_BANDS
    )
    return f"CASE {cases} ELSE 'unknown' END"


def band_labels() -> list[str]:
    return [f"{low}-{high - 1}" if high <= 90 else "90+" for low, high in AGE_BANDS] + ["unknown"]


def _patients(s: _Stats) -> str:
    """One row per patient: age at the first study, sex (most frequent), studies."""
    return (
        "SELECT PatientID, min(age_years) AS age, mode(sex) AS sex, count(DISTINCT StudyInstanceUID) AS studies "
        "FROM img WHERE PatientID IS NOT NULL GROUP BY PatientID"
    )


def _age_sex(s: _Stats) -> dict:
    """Patients by age band (age at their first study) and sex."""
    rows = s.fetch(f"SELECT {_age_band_sql('age')} AS band, sex, count(*) FROM ({_patients(s)}) GROUP BY ALL")
    table = {band: {} for band in band_labels()}
    for band, sex, n in rows:
        table[band][sex or "unknown"] = s.cell(n)
    return {"unit": "patients", "bands": table}


def _studies_per_patient(s: _Stats) -> dict:
    """How many studies patients have, by age group."""
    bins = " ".join(
        f"WHEN studies BETWEEN {lo} AND {hi} THEN '{lo if lo == hi else f'{lo}-{hi}'}'"
        if hi is not None
        else f"WHEN studies >= {lo} THEN '{lo}+'"
        for lo, hi in STUDIES_PER_PATIENT_BINS
    )
    rows = s.fetch(
        f"SELECT {_age_band_sql('age')} AS band, CASE {bins} END AS bin, count(*), avg(studies) "
        f"FROM ({_patients(s)}) GROUP BY ALL"
    )
    labels = [
        str(lo) if lo == hi else (f"{lo}-{hi}" if hi is not None else f"{lo}+") for lo, hi in STUDIES_PER_PATIENT_BINS
    ]
    table = {band: {label: 0 for label in labels} for band in band_labels()}
    for band, label, n, _ in rows:
        table[band][label] = s.cell(n)
    found = {
        band: (n, mean)
        for band, n, mean in s.fetch(
            f"SELECT {_age_band_sql('age')}, count(*), avg(studies) FROM ({_patients(s)}) GROUP BY ALL"
        )
    }
    means = {band: round(found[band][1], 2) for band in band_labels() if band in found and found[band][0] >= s.min_cell}
    return {"unit": "patients", "bins": labels, "bands": table, "mean_studies": means}


def _top_utilisers(s: _Stats) -> list[dict]:
    """Per modality, the patients with most studies, as ranks (no identifier)."""
    rows = s.fetch(
        "SELECT m, rank, studies FROM ("
        "  SELECT coalesce(Modality, '(none)') AS m, count(DISTINCT StudyInstanceUID) AS studies, "
        "         row_number() OVER (PARTITION BY coalesce(Modality, '(none)') "
        "                            ORDER BY count(DISTINCT StudyInstanceUID) DESC, hash(PatientID)) AS rank "
        "  FROM img WHERE PatientID IS NOT NULL GROUP BY m, PatientID) "
        f"WHERE rank <= {TOP_UTILISERS} ORDER BY m, rank"
    )
    out: dict[str, list] = {}
    for modality, rank, studies in rows:
        out.setdefault(modality, []).append({"patient": f"#{rank}", "studies": s.cell(studies)})
    return [{"modality": m, "patients": p} for m, p in out.items()]


def _by_year(s: _Stats) -> list[dict]:
    rows = s.fetch(
        "SELECT study_year, coalesce(Modality, '(none)'), count(DISTINCT StudyInstanceUID) FROM img "
        "WHERE study_year IS NOT NULL GROUP BY ALL ORDER BY ALL"
    )
    return [{"year": y, "modality": m, "studies": s.cell(n)} for y, m, n in rows]


def _film_by_year(s: _Stats) -> list[dict]:
    """Digitised films against digital images, by study year (an index of a film
    import beside a PACS's images shows when the archive went digital)."""
    rows = s.fetch(
        "SELECT study_year, coalesce(digitized_film, false) AS film, count(*), count(DISTINCT StudyInstanceUID) "
        "FROM img WHERE study_year IS NOT NULL GROUP BY ALL ORDER BY ALL"
    )
    years: dict[int, dict] = {}
    for year, film, images, studies in rows:
        kind = "film" if film else "digital"
        entry = years.setdefault(
            year, {"year": year, "film_images": 0, "film_studies": 0, "digital_images": 0, "digital_studies": 0}
        )
        entry[f"{kind}_images"], entry[f"{kind}_studies"] = s.cell(images), s.cell(studies)
    return list(years.values())


def _trend(s: _Stats) -> list[dict]:
    rows = s.fetch(
        "SELECT strftime(StudyDate, '%Y-%m') AS month, count(DISTINCT StudyInstanceUID), count(*) "
        "FROM img WHERE StudyDate IS NOT NULL GROUP BY month ORDER BY month"
    )
    return [{"month": m, "studies": s.cell(st), "images": s.cell(i)} for m, st, i in rows]


def _xray_dose(s: _Stats) -> list[dict]:
    """Dose indicators of X-ray images by manufacturer and body part (median, IQR)."""
    modalities = ", ".join(f"'{m}'" for m in XRAY_MODALITIES)
    mas = "coalesce(Exposure, ExposureInuAs / 1000.0)"
    stats = []
    for column, label in DOSE_COLUMNS.items():
        value = mas if column == "mAs" else column
        rows = s.fetch(
            f"SELECT coalesce(Manufacturer, '(none)'), coalesce(body_part, '(none)'), count({value}), "
            f"quantile_cont({value}, 0.25), median({value}), quantile_cont({value}, 0.75) "
            f"FROM img WHERE Modality IN ({modalities}) GROUP BY ALL HAVING count({value}) > 0 ORDER BY ALL"
        )
        for manufacturer, part, n, p25, p50, p75 in rows:
            row = {"indicator": label, "manufacturer": manufacturer, "body_part": part, "n": s.cell(n)}
            if n >= s.min_cell:
                row.update(p25=_round(p25), median=_round(p50), p75=_round(p75))
            stats.append(row)
    return stats


def _deviation_index(s: _Stats) -> dict:
    """DeviationIndex distribution, and the share outside +/-3 (exposure off target)."""
    n, outside = s.fetch("SELECT count(DeviationIndex), count(*) FILTER (WHERE abs(DeviationIndex) > 3) FROM img")[0]
    histogram = s.fetch(
        "SELECT greatest(-10, least(10, round(DeviationIndex)))::INT AS bin, count(*) FROM img "
        "WHERE DeviationIndex IS NOT NULL GROUP BY bin ORDER BY bin"
    )
    result = {"n": s.cell(n), "outside_3": s.cell(outside), "histogram": {int(b): s.cell(c) for b, c in histogram}}
    if n >= s.min_cell:
        result["share_outside_3"] = round(outside / n, 4)
    return result


def _body_part_spellings(s: _Stats) -> list[dict]:
    """How X-ray images spell their body part, and what it normalises to."""
    if "BodyPartExamined" not in s.columns:
        return []
    modalities = ", ".join(f"'{m}'" for m in XRAY_MODALITIES)
    rows = s.fetch(
        "SELECT coalesce(upper(trim(BodyPartExamined)), '(missing)'), coalesce(body_part, '(none)'), count(*) AS n "
        f"FROM img WHERE Modality IN ({modalities}) GROUP BY ALL ORDER BY n DESC LIMIT 30"
    )
    return [{"written": w, "normalised": b, "images": s.cell(n)} for w, b, n in rows]


def _chest_views(s: _Stats) -> list[dict]:
    rows = s.fetch(
        "SELECT coalesce(Modality, '(none)'), coalesce(view, '(missing)'), count(*) FROM img "
        "WHERE body_part = 'CHEST' GROUP BY ALL ORDER BY count(*) DESC"
    )
    return [{"modality": m, "view": v, "images": s.cell(n)} for m, v, n in rows]


def _round(x) -> float | None:
    return None if x is None else round(float(x), 3)

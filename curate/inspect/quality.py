"""Data quality and veracity checks over the index.

Each check has a name, a severity, a count, a breakdown where one helps, and a few
examples. Examples are row ids (the index's ``row_id`` column, which a file keeps
across rescans), never paths or header values: a quality report can be shared, and only
someone holding the index can turn a row id back into a file::

    curate query "SELECT path FROM idx WHERE row_id IN (12, 57)" index=DIR

Checks run as SQL in DuckDB over the Parquet index, so they scale with it. A check that
needs a column the index does not have (a reduced tag set) is reported as skipped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from curate.files import sha256_of, write_atomic
from curate.index.schema import DESCRIBES_IMAGE, ERROR_KIND_SQL, ROW_ID
from curate.index.store import open_index
from curate.tracking import StageResult

SEVERITIES = ("error", "warning", "info")
EXAMPLES = 5
#: Duplicated SOP Instance UIDs whose files are hashed to tell copies from clashes.
MAX_DUPLICATE_GROUPS_HASHED = 1000

IDENTITY = ("PatientID", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
TIME_COLUMNS = ("StudyTime", "SeriesTime", "AcquisitionTime", "ContentTime")
#: Transfer syntaxes whose pixel data is native (not encapsulated); deflate compresses
#: the whole data set, not the pixels.
NATIVE_SYNTAXES = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99")
SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"

LIVE = "status NOT IN ('vanished')"
# Header checks read the rows of pulled metadata too; the checks of the file's pixel data
# need a transfer syntax and a pixel data length, which such rows do not have.
OK = DESCRIBES_IMAGE


@dataclass
class CheckResult:
    name: str
    severity: str
    description: str
    count: int = 0
    #: What the count counts: files, patients, studies, series.
    unit: str = "files"
    details: dict[str, int] = field(default_factory=dict)
    examples: list[int] = field(default_factory=list)
    skipped: str | None = None


@dataclass
class QualityReport(StageResult):
    files: int
    checks: list[CheckResult]

    def by_name(self) -> dict[str, CheckResult]:
        return {c.name: c for c in self.checks}

    def to_dict(self) -> dict:
        return {"files": self.files, "checks": [asdict(c) for c in self.checks]}

    def write_json(self, path: str | os.PathLike[str]) -> None:
        write_atomic(path, json.dumps(self.to_dict(), indent=2))

    def metrics(self) -> dict[str, int]:
        """One number per check, for experiment tracking."""
        return {f"quality.{c.name}": c.count for c in self.checks if c.skipped is None}

    def format(self) -> str:
        width = max(len(c.name) for c in self.checks)
        lines = []
        for c in self.checks:
            if c.skipped:
                lines.append(f"{c.severity:<7}  {c.name.ljust(width)}  skipped: {c.skipped}")
                continue
            example = f"  row_id {', '.join(map(str, c.examples))}" if c.examples else ""
            lines.append(f"{c.severity:<7}  {c.name.ljust(width)}  {c.count:>9,} {c.unit}{example}")
            for label, count in sorted(c.details.items(), key=lambda kv: (-kv[1], kv[0])):
                lines.append(f"{'':<7}  {'':<{width}}    {count:>7,}  {label}")
        return "\n".join(lines)


class _Checker:
    """Runs checks against one index in one DuckDB connection."""

    def __init__(self, index_dir: Path):
        self.con = open_index(index_dir).connect("idx")
        self.columns = {row[0] for row in self.con.execute("DESCRIBE idx").fetchall()}

    def missing(self, *columns: str) -> str | None:
        absent = [c for c in columns if c not in self.columns]
        return f"the index has no {', '.join(absent)} column" if absent else None

    def scalar(self, sql: str) -> int:
        return int(self.con.execute(sql).fetchone()[0] or 0)

    def rows(self, where: str) -> tuple[int, list[int]]:
        """Count of rows matching `where`, and the first few row ids."""
        count = self.scalar(f"SELECT count(*) FROM idx WHERE {where}")
        examples = [
            r[0]
            for r in self.con.execute(
                f"SELECT {ROW_ID} FROM idx WHERE {where} ORDER BY {ROW_ID} LIMIT {EXAMPLES}"
            ).fetchall()
        ]
        return count, examples

    def groups(self, key: str, having: str, where: str = LIVE) -> tuple[int, list[int]]:
        """Groups of `key` whose rows satisfy `having`; examples are one row per group."""
        grouped = (
            f"SELECT {key} AS k, min({ROW_ID}) AS r FROM idx WHERE {where} AND {key} IS NOT NULL "
            f"GROUP BY {key} HAVING {having}"
        )
        count = self.scalar(f"SELECT count(*) FROM ({grouped})")
        examples = [r[0] for r in self.con.execute(f"SELECT r FROM ({grouped}) ORDER BY r LIMIT {EXAMPLES}").fetchall()]
        return count, examples

    def breakdown(self, label_sql: str, where: str) -> dict[str, int]:
        result = self.con.execute(
            f"SELECT {label_sql} AS label, count(*) FROM idx WHERE {where} GROUP BY ALL"
        ).fetchall()
        return {str(label): int(n) for label, n in result if label is not None}

    def close(self) -> None:
        self.con.close()


def _unreadable(q: _Checker, c: CheckResult) -> None:
    c.count, c.examples = q.rows("status = 'error'")
    c.details = q.breakdown(ERROR_KIND_SQL, "status = 'error'")


def _salvaged(q: _Checker, c: CheckResult) -> None:
    """Unreadable files that still gave attributes: read up to the defect (or past a
    stray item). Their rows keep status `error`, so later stages leave them out."""
    present = [k for k in (*IDENTITY, "Modality") if k in q.columns]
    if not present:
        c.skipped = q.missing(*IDENTITY)
        return
    where = f"status = 'error' AND ({' OR '.join(f'{k} IS NOT NULL' for k in present)})"
    c.count, c.examples = q.rows(where)
    c.details = q.breakdown(ERROR_KIND_SQL, where)


def _not_dicom(q: _Checker, c: CheckResult) -> None:
    c.count, c.examples = q.rows("status = 'not_dicom'")


def _missing_identity(q: _Checker, c: CheckResult) -> None:
    present = [k for k in IDENTITY if k in q.columns]
    if not present:
        c.skipped = q.missing(*IDENTITY)
        return
    c.count, c.examples = q.rows(f"{OK} AND ({' OR '.join(f'{k} IS NULL' for k in present)})")
    c.details = {f"no {k}": q.scalar(f"SELECT count(*) FROM idx WHERE {OK} AND {k} IS NULL") for k in present}
    c.details = {k: v for k, v in c.details.items() if v}


def _invalid_values(q: _Checker, c: CheckResult) -> None:
    c.count, c.examples = q.rows(f"{OK} AND invalid_attributes IS NOT NULL")
    result = q.con.execute(
        f"SELECT a, count(*) FROM (SELECT unnest(invalid_attributes) AS a FROM idx WHERE {OK}) GROUP BY a"
    ).fetchall()
    c.details = {str(a): int(n) for a, n in result}


def _invalid_times(q: _Checker, c: CheckResult) -> None:
    present = [t for t in TIME_COLUMNS if t in q.columns]
    if not present:
        c.skipped = q.missing(*TIME_COLUMNS)
        return
    # HHMMSS.FFFFFF with trailing parts optional; the ACR-NEMA HH:MM:SS form is accepted.
    pattern = r"^([01][0-9]|2[0-3])(:?[0-5][0-9](:?([0-5][0-9]|60)(\.[0-9]{1,6})?)?)?$"
    bad = [f"({t} IS NOT NULL AND NOT regexp_matches(trim({t}), '{pattern}'))" for t in present]
    c.count, c.examples = q.rows(f"{OK} AND ({' OR '.join(bad)})")
    c.details = {t: q.scalar(f"SELECT count(*) FROM idx WHERE {OK} AND {b}") for t, b in zip(present, bad, strict=True)}
    c.details = {k: v for k, v in c.details.items() if v}


def _invalid_ages(q: _Checker, c: CheckResult) -> None:
    c.skipped = q.missing("PatientAge")
    if c.skipped:
        return
    c.count, c.examples = q.rows(
        f"{OK} AND PatientAge IS NOT NULL AND NOT regexp_matches(PatientAge, '^[0-9]{{3}}[DWMY]$')"
    )


def _implausible_ages(q: _Checker, c: CheckResult) -> None:
    c.skipped = q.missing("age_years", "PatientAge", "StudyDate", "PatientBirthDate")
    if c.skipped:
        return
    has_source = (
        "(regexp_matches(coalesce(PatientAge, ''), '^ *[0-9]{1,3}[DWMY] *$') "
        "OR (StudyDate IS NOT NULL AND PatientBirthDate IS NOT NULL))"
    )
    c.count, c.examples = q.rows(f"{OK} AND age_years IS NULL AND {has_source}")


def _inconsistent_patients(q: _Checker, c: CheckResult) -> None:
    c.skipped = q.missing("PatientID", "PatientSex", "PatientBirthDate")
    if c.skipped:
        return
    c.unit = "patients"
    sex = "count(DISTINCT nullif(trim(PatientSex), '')) > 1"
    birth = "count(DISTINCT PatientBirthDate) > 1"
    c.count, c.examples = q.groups("PatientID", f"{sex} OR {birth}")
    c.details = {"sex differs": q.groups("PatientID", sex)[0], "birth date differs": q.groups("PatientID", birth)[0]}
    c.details = {k: v for k, v in c.details.items() if v}


def _study_under_two_patients(q: _Checker, c: CheckResult) -> None:
    c.skipped = q.missing("StudyInstanceUID", "PatientID")
    if c.skipped:
        return
    c.unit = "studies"
    c.count, c.examples = q.groups("StudyInstanceUID", "count(DISTINCT PatientID) > 1")


def _duplicate_instances(q: _Checker, c: CheckResult) -> None:
    c.skipped = q.missing("SOPInstanceUID")
    if c.skipped:
        return
    c.unit = "instances"
    c.count, c.examples = q.groups("SOPInstanceUID", "count(*) > 1", where=OK)
    # Copies of one file, or different files claiming one identity? Hash to tell.
    groups = q.con.execute(
        f"SELECT list(path ORDER BY path) FROM idx WHERE {OK} AND SOPInstanceUID IS NOT NULL "
        f"GROUP BY SOPInstanceUID HAVING count(*) > 1 LIMIT {MAX_DUPLICATE_GROUPS_HASHED}"
    ).fetchall()
    same = different = unreadable = 0
    for (paths,) in groups:
        digests = {_sha256(p) for p in paths}
        if None in digests:
            unreadable += 1
        elif len(digests) == 1:
            same += 1
        else:
            different += 1
    c.details = {"identical copies": same, "different bytes": different, "could not be read to compare": unreadable}
    if c.count > len(groups):
        c.details["not compared (over the hashing limit)"] = c.count - len(groups)
    c.details = {k: v for k, v in c.details.items() if v}


def _sha256(path: str) -> str | None:
    try:
        return sha256_of(path)
    except OSError:
        return None


def _mixed_modality_series(q: _Checker, c: CheckResult) -> None:
    c.skipped = q.missing("SeriesInstanceUID", "Modality")
    if c.skipped:
        return
    c.unit = "series"
    c.count, c.examples = q.groups("SeriesInstanceUID", "count(DISTINCT Modality) > 1", where=OK)


def _burned_in(q: _Checker, c: CheckResult) -> None:
    c.skipped = q.missing("BurnedInAnnotation")
    if c.skipped:
        return
    c.count, c.examples = q.rows(f"{OK} AND upper(trim(BurnedInAnnotation)) = 'YES'")
    if "Modality" in q.columns:
        c.details = q.breakdown("coalesce(Modality, '(none)')", f"{OK} AND upper(trim(BurnedInAnnotation)) = 'YES'")


def _derived_or_secondary(q: _Checker, c: CheckResult) -> None:
    parts = []
    if "ImageType" in q.columns:
        parts.append("(ImageType[1] = 'DERIVED')")
    if "SOPClassUID" in q.columns:
        parts.append(f"starts_with(SOPClassUID, '{SECONDARY_CAPTURE_PREFIX}')")
    if not parts:
        c.skipped = q.missing("ImageType", "SOPClassUID")
        return
    c.count, c.examples = q.rows(f"{OK} AND ({' OR '.join(parts)})")
    if "ImageType" in q.columns:
        c.details["derived (ImageType)"] = q.scalar(f"SELECT count(*) FROM idx WHERE {OK} AND ImageType[1] = 'DERIVED'")
    if "SOPClassUID" in q.columns:
        c.details["secondary capture"] = q.scalar(
            f"SELECT count(*) FROM idx WHERE {OK} AND starts_with(SOPClassUID, '{SECONDARY_CAPTURE_PREFIX}')"
        )
    c.details = {k: v for k, v in c.details.items() if v}


def _pixel_data_vs_syntax(q: _Checker, c: CheckResult) -> None:
    c.skipped = q.missing("pixel_data_length", "transfer_syntax")
    if c.skipped:
        return
    native = "transfer_syntax IN ({})".format(", ".join(f"'{t}'" for t in NATIVE_SYNTAXES))
    encapsulated_claimed = f"{OK} AND transfer_syntax IS NOT NULL AND NOT {native} AND pixel_data_length >= 0"
    native_claimed = f"{OK} AND {native} AND pixel_data_length = -1"
    rules = {
        "compressed syntax, native pixel data": encapsulated_claimed,
        "native syntax, encapsulated pixel data": native_claimed,
    }
    geometry = ("Rows", "Columns", "BitsAllocated")
    if not q.missing(*geometry):
        spp = "coalesce(SamplesPerPixel, 1)" if "SamplesPerPixel" in q.columns else "1"
        frames = "coalesce(NumberOfFrames, 1)" if "NumberOfFrames" in q.columns else "1"
        expected = f"(Rows * Columns * {spp} * {frames} * BitsAllocated + 7) // 8"
        rules["pixel data shorter than the image it describes"] = (
            f"{OK} AND {native} AND pixel_data_length >= 0 AND Rows IS NOT NULL AND Columns IS NOT NULL "
            f"AND BitsAllocated IS NOT NULL AND pixel_data_length < {expected}"
        )
    where = " OR ".join(f"({w})" for w in rules.values())
    c.count, c.examples = q.rows(where)
    c.details = {label: q.scalar(f"SELECT count(*) FROM idx WHERE {w}") for label, w in rules.items()}
    c.details = {k: v for k, v in c.details.items() if v}


def _vanished(q: _Checker, c: CheckResult) -> None:
    c.count, c.examples = q.rows("status = 'vanished'")


#: (name, severity, description, function): the catalogue, in report order.
CHECKS: list[tuple[str, str, str, Callable[[_Checker, CheckResult], None]]] = [
    (
        "unreadable_files",
        "error",
        "files that could not be read or parsed (truncated, corrupt, unreadable)",
        _unreadable,
    ),
    (
        "salvaged",
        "info",
        "unreadable files whose attributes before (or past) the defect are kept (status stays error)",
        _salvaged,
    ),
    ("not_dicom", "warning", "files that are not DICOM", _not_dicom),
    (
        "missing_identity",
        "error",
        "DICOM files without PatientID, Study, Series or SOP Instance UID",
        _missing_identity,
    ),
    (
        "invalid_values",
        "warning",
        "attributes present but not valid for their type (DA, DS, IS, ...), kept null",
        _invalid_values,
    ),
    ("invalid_times", "warning", "TM values that are not HHMMSS.FFFFFF", _invalid_times),
    ("invalid_ages", "warning", "PatientAge values that are not nnnD/W/M/Y", _invalid_ages),
    ("implausible_ages", "warning", "ages below 0 or above 120 years (nulled in age_years)", _implausible_ages),
    (
        "inconsistent_patients",
        "warning",
        "patients whose sex or birth date differs between files",
        _inconsistent_patients,
    ),
    (
        "study_under_two_patients",
        "error",
        "StudyInstanceUIDs that appear under more than one PatientID",
        _study_under_two_patients,
    ),
    ("duplicate_instances", "warning", "SOPInstanceUIDs found in more than one file", _duplicate_instances),
    ("mixed_modality_series", "warning", "series whose instances disagree on Modality", _mixed_modality_series),
    ("burned_in_annotation", "warning", "images flagged BurnedInAnnotation = YES (text in the pixels)", _burned_in),
    ("derived_or_secondary", "info", "derived images and secondary captures", _derived_or_secondary),
    (
        "pixel_data_vs_transfer_syntax",
        "error",
        "files whose pixel data contradicts their transfer syntax",
        _pixel_data_vs_syntax,
    ),
    ("vanished", "info", "files in the index that are no longer under the source", _vanished),
]


def check_index(index_dir: str | os.PathLike[str]) -> QualityReport:
    """Run every check of the catalogue over the index in `index_dir`."""
    q = _Checker(index_dir)
    try:
        files = q.scalar("SELECT count(*) FROM idx")
        results = []
        for name, severity, description, run in CHECKS:
            result = CheckResult(name, severity, description)
            run(q, result)
            results.append(result)
        return QualityReport(files=files, checks=results)
    finally:
        q.close()

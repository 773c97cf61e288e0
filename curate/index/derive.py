"""Derived, normalised columns that every later stage reads instead of the raw headers.

Raw headers disagree with each other: ages come as ``045Y`` or only as a birth date,
sex as ``M``, ``male`` or nothing, the chest as ``CHEST``, ``THORAX``, ``TORAX`` or
``PORT CHEST``, the frontal view as ``PA`` or ``POSTEROANTERIOR``. The index keeps the raw
columns and adds these:

==============  ============================================================================
column          meaning
==============  ============================================================================
age_years       PatientAge (``nnnD/W/M/Y``), else StudyDate minus PatientBirthDate; values
                outside 0-120 years are nulled (and counted: :class:`DeriveCounts`)
sex             ``M``, ``F``, ``O`` or ``unknown``
study_year      year of StudyDate (else SeriesDate, AcquisitionDate, ContentDate)
body_part       BodyPartExamined normalised across spellings and languages (``CHEST``,
                ``ABDOMEN``, ``HEAD``, ...); an unknown spelling is kept, upper-cased
view            ViewPosition normalised: ``PA``, ``AP``, ``LATERAL``, ``OBLIQUE``, ...
monochrome1     PhotometricInterpretation is MONOCHROME1 (high values are dark)
digitized_film  ConversionType is ``DF``: a scanned film (``curate digitize`` writes them)
==============  ============================================================================


Every function works on any subset of the raw columns: a missing column gives nulls.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

#: Bumped whenever a derivation changes, so that an index built by another version is
#: rebuilt rather than mixed.
DERIVE_VERSION = 2

DERIVED_COLUMNS: dict[str, pa.DataType] = {
    "age_years": pa.float64(),
    "sex": pa.string(),
    "study_year": pa.int32(),
    "body_part": pa.string(),
    "view": pa.string(),
    "monochrome1": pa.bool_(),
    "digitized_film": pa.bool_(),
}

MAX_AGE_YEARS = 120.0

_AGE_UNIT_YEARS = {"D": 1 / 365.25, "W": 7 / 365.25, "M": 1 / 12, "Y": 1.0}

#: Spellings seen in archives (several languages, vendor habits) -> the normalised part.
BODY_PART_SYNONYMS: dict[str, str] = {
    **dict.fromkeys(
        [
            "CHEST",
            "THORAX",
            "TORAX",
            "TÓRAX",
            "TORACE",
            "THORAX PA",
            "CHEST PA",
            "CHEST AP",
            "CHEST LAT",
            "PORT CHEST",
            "PORTABLE CHEST",
            "CHEST PORTABLE",
            "CHEST_PA",
            "CHEST_AP",
            "LUNG",
            "LUNGS",
            "POUMON",
            "POUMONS",
            "BRUST",
            "BRUSTKORB",
            "BORST",
            "PECHO",
            "TORAKS",
            "RIBS",
            "RIB",
            "COSTILLAS",
            "CXR",
        ],
        "CHEST",
    ),
    **dict.fromkeys(["ABDOMEN", "ABD", "ABDOMEN PELVIS", "BAUCH", "ABDOMINAL"], "ABDOMEN"),
    **dict.fromkeys(["PELVIS", "BECKEN", "PELVIS AP", "HIP", "HIPS", "CADERA", "BASSIN"], "PELVIS"),
    **dict.fromkeys(["HEAD", "BRAIN", "SKULL", "KOPF", "SCHADEL", "SCHÄDEL", "CRANEO", "CRÂNE", "CEREBRO"], "HEAD"),
    **dict.fromkeys(["NECK", "HALS", "CUELLO"], "NECK"),
    **dict.fromkeys(["CSPINE", "C SPINE", "C-SPINE", "CERVICAL SPINE", "HWS"], "CSPINE"),
    **dict.fromkeys(["TSPINE", "T SPINE", "T-SPINE", "THORACIC SPINE", "BWS"], "TSPINE"),
    **dict.fromkeys(["LSPINE", "L SPINE", "L-SPINE", "LUMBAR SPINE", "LWS"], "LSPINE"),
    **dict.fromkeys(["SPINE", "WHOLE SPINE", "COLUMNA", "WIRBELSAULE", "WIRBELSÄULE"], "SPINE"),
    **dict.fromkeys(["KNEE", "KNIE", "RODILLA", "GENOU"], "KNEE"),
    **dict.fromkeys(["HAND", "MANO", "MAIN", "FINGER", "WRIST"], "HAND"),
    **dict.fromkeys(["FOOT", "FUSS", "FUß", "PIE", "PIED", "ANKLE"], "FOOT"),
    **dict.fromkeys(["SHOULDER", "SCHULTER", "HOMBRO", "EPAULE", "ÉPAULE"], "SHOULDER"),
    **dict.fromkeys(["BREAST", "MAMMA", "MAMA", "SEIN"], "BREAST"),
    **dict.fromkeys(["HEART", "HERZ", "CORAZON", "CORAZÓN", "COEUR", "CARDIAC"], "HEART"),
}

#: ViewPosition spellings -> the normalised view.
VIEW_SYNONYMS: dict[str, str] = {
    **dict.fromkeys(["PA", "POSTEROANTERIOR", "POSTERO-ANTERIOR", "P-A", "FRONTAL PA"], "PA"),
    **dict.fromkeys(["AP", "ANTEROPOSTERIOR", "ANTERO-POSTERIOR", "A-P", "AP SUPINE", "AP ERECT"], "AP"),
    **dict.fromkeys(
        [
            "LL",
            "RL",
            "LAT",
            "LATERAL",
            "LLAT",
            "RLAT",
            "L LAT",
            "R LAT",
            "LEFT LATERAL",
            "RIGHT LATERAL",
            "LATERAL LEFT",
        ],
        "LATERAL",
    ),
    **dict.fromkeys(["LAO", "RAO", "LPO", "RPO", "OBL", "OBLIQUE"], "OBLIQUE"),
    **dict.fromkeys(["LLD", "RLD", "DECUBITUS"], "DECUBITUS"),
    **dict.fromkeys(["CC", "MLO", "ML", "LM", "XCCL", "XCCM"], None),  # mammography views: kept as they are
}


@dataclass
class DeriveCounts:
    """How many values a derivation had to null, by reason (counts only)."""

    nulled: dict[str, int] = field(default_factory=dict)

    def add(self, reason: str, count: int) -> None:
        if count:
            self.nulled[reason] = self.nulled.get(reason, 0) + count


def _column(batch: pa.RecordBatch | pa.Table, name: str, type_: pa.DataType) -> pa.Array:
    if name in batch.column_names:
        column = batch.column(name)
        return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    return pa.nulls(batch.num_rows, type_)


def age_years(batch: pa.RecordBatch | pa.Table, counts: DeriveCounts | None = None) -> pa.Array:
    """Age at the study in years: PatientAge, else StudyDate minus PatientBirthDate."""
    counts = counts if counts is not None else DeriveCounts()
    age_text = pc.utf8_upper(pc.utf8_trim_whitespace(_column(batch, "PatientAge", pa.string())))
    parts = pc.extract_regex(age_text, r"^(?P<n>\d{1,3})(?P<unit>[DWMY])$")
    number = pc.cast(pc.struct_field(parts, "n"), pa.float64())
    unit = pc.index_in(pc.struct_field(parts, "unit"), pa.array(list(_AGE_UNIT_YEARS)))
    from_age = pc.multiply(number, pc.take(pa.array(list(_AGE_UNIT_YEARS.values())), unit))
    study = _column(batch, "StudyDate", pa.date32())
    birth = _column(batch, "PatientBirthDate", pa.date32())
    days = pc.days_between(pc.cast(birth, pa.timestamp("s")), pc.cast(study, pa.timestamp("s")))
    from_dates = pc.divide(pc.cast(days, pa.float64()), 365.25)
    age = pc.coalesce(from_age, from_dates)
    plausible = pc.and_(pc.greater_equal(age, 0.0), pc.less_equal(age, MAX_AGE_YEARS))
    counts.add("age outside 0-120 years", pc.sum(pc.invert(plausible)).as_py() or 0)
    return pc.if_else(plausible, age, pa.scalar(None, pa.float64()))


def sex(batch: pa.RecordBatch | pa.Table) -> pa.Array:
    """``M``, ``F``, ``O`` or ``unknown``."""
    raw = pc.utf8_upper(pc.utf8_trim_whitespace(_column(batch, "PatientSex", pa.string())))
    mapping = {"M": "M", "MALE": "M", "F": "F", "FEMALE": "F", "W": "F", "O": "O", "OTHER": "O"}
    keys = pa.array(list(mapping))
    index = pc.index_in(raw, keys)
    mapped = pc.take(pa.array(list(mapping.values())), index)
    return pc.fill_null(mapped, "unknown")


def study_year(batch: pa.RecordBatch | pa.Table) -> pa.Array:
    dates = [
        _column(batch, name, pa.date32()) for name in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate")
    ]
    return pc.cast(pc.year(pc.coalesce(*dates)), pa.int32())


def _normalise(array: pa.Array, synonyms: dict[str, str | None]) -> pa.Array:
    """Look each cleaned value up in `synonyms`; unknown values stay, cleaned."""
    cleaned = pc.utf8_upper(pc.replace_substring_regex(pc.utf8_trim_whitespace(array), r"[\s_]+", " "))
    cleaned = pc.if_else(pc.equal(cleaned, ""), pa.scalar(None, pa.string()), cleaned)
    known = {k: v for k, v in synonyms.items() if v is not None}
    mapped = pc.take(
        pa.array(list(known.values()), pa.string()), pc.index_in(cleaned, pa.array(list(known), pa.string()))
    )
    return pc.coalesce(mapped, cleaned)


def body_part(batch: pa.RecordBatch | pa.Table) -> pa.Array:
    return _normalise(_column(batch, "BodyPartExamined", pa.string()), BODY_PART_SYNONYMS)


def view(batch: pa.RecordBatch | pa.Table) -> pa.Array:
    return _normalise(_column(batch, "ViewPosition", pa.string()), VIEW_SYNONYMS)


def monochrome1(batch: pa.RecordBatch | pa.Table) -> pa.Array:
    photometric = pc.utf8_upper(pc.utf8_trim_whitespace(_column(batch, "PhotometricInterpretation", pa.string())))
    return pc.equal(photometric, "MONOCHROME1")


def digitized_film(batch: pa.RecordBatch | pa.Table) -> pa.Array:
    conversion = pc.utf8_upper(pc.utf8_trim_whitespace(_column(batch, "ConversionType", pa.string())))
    return pc.fill_null(pc.equal(conversion, "DF"), False)


def add_derived_columns(
    batch: pa.RecordBatch | pa.Table, counts: DeriveCounts | None = None
) -> pa.RecordBatch | pa.Table:
    """`batch` (a record batch or a table) with the derived columns appended, replacing
    any of the same name."""
    derived = {
        "age_years": age_years(batch, counts),
        "sex": sex(batch),
        "study_year": study_year(batch),
        "body_part": body_part(batch),
        "view": view(batch),
        "monochrome1": monochrome1(batch),
        "digitized_film": digitized_film(batch),
    }
    keep = [name for name in batch.column_names if name not in derived]
    arrays = [batch.column(name) for name in keep] + [derived[name] for name in DERIVED_COLUMNS]
    fields = [batch.schema.field(name) for name in keep] + [pa.field(n, t) for n, t in DERIVED_COLUMNS.items()]
    kind = pa.Table if isinstance(batch, pa.Table) else pa.RecordBatch
    return kind.from_arrays(arrays, schema=pa.schema(fields))

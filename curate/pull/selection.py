"""What a pull asks the PACS for: a query by date, modality, body part and description,
or a CSV of accession numbers, patient IDs or study UIDs; and the keys asked back.

The keys are asked for by name at each level (a PACS returns only what it is asked
for, and only what it indexes): the main identifiers, and what curation reads -
ViewPosition, BodyPartExamined, the exposure and dose attributes - where it answers.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from curate.errors import ConfigError, SourceNotFoundError

STUDY_KEYS = (
    "StudyInstanceUID", "StudyDate", "StudyTime", "AccessionNumber", "StudyID", "StudyDescription",
    "PatientID", "PatientName", "PatientBirthDate", "PatientSex", "PatientAge", "IssuerOfPatientID",
    "ModalitiesInStudy", "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances", "SOPClassesInStudy",
)  # fmt: skip
SERIES_KEYS = (
    "SeriesInstanceUID", "Modality", "SeriesNumber", "SeriesDate", "SeriesDescription", "BodyPartExamined",
    "ProtocolName", "Manufacturer", "InstitutionName", "NumberOfSeriesRelatedInstances",
)  # fmt: skip
INSTANCE_KEYS = (
    "SOPInstanceUID", "SOPClassUID", "InstanceNumber", "ViewPosition", "ImageLaterality", "ImageType",
    "AcquisitionDate", "ContentDate", "Rows", "Columns", "BitsStored", "PhotometricInterpretation",
    "KVP", "Exposure", "ExposureTime", "XRayTubeCurrent", "DistanceSourceToDetector",
    "EntranceDoseInmGy", "ImageAndFluoroscopyAreaDoseProduct", "CTDIvol",
)  # fmt: skip
#: The identifier columns a CSV selection may hold, and the study-level key each matches.
ID_COLUMNS = ("AccessionNumber", "PatientID", "StudyInstanceUID")
_DATE = re.compile(r"^\d{8}$")


@dataclass(frozen=True)
class Selection:
    date_from: str | None = None
    date_to: str | None = None
    modalities: tuple[str, ...] = ()
    body_part: str | None = None
    description: str | None = None
    ids: str | None = None
    #: SQL over the index's remote rows (level=images): the series to retrieve, e.g.
    #: "Modality IN ('CR','DX') AND view IN ('PA','AP')"; the PACS is not queried again.
    where: str | None = None
    one_per_series: bool = False
    study_keys: tuple[str, ...] = STUDY_KEYS
    series_keys: tuple[str, ...] = SERIES_KEYS
    instance_keys: tuple[str, ...] = INSTANCE_KEYS
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        for name in ("date_from", "date_to"):
            text = getattr(self, name)
            if text is not None:
                text = str(text).replace("-", "")
                if not _DATE.match(text):
                    raise ConfigError(f"{name} must be a date as YYYY-MM-DD or YYYYMMDD, not {getattr(self, name)!r}")
                object.__setattr__(self, name, text)
        object.__setattr__(self, "modalities", tuple(m.upper() for m in self.modalities))

    def describe(self) -> str:
        """The selection without identifiers (a CSV's path and contents stay out)."""
        parts = []
        if self.date_from or self.date_to:
            parts.append(f"dates {self.date_from or '...'}-{self.date_to or '...'}")
        if self.modalities:
            parts.append("modality " + "/".join(self.modalities))
        if self.body_part:
            parts.append(f"body part {self.body_part}")
        if self.description:
            parts.append("a description match")
        if self.ids:
            parts.append("identifiers from a CSV")
        if self.where:
            parts.append("a SQL filter over the index")
        if self.one_per_series:
            parts.append("one instance per series")
        return ", ".join(parts) or "everything"

    def study_queries(self, match_modalities: bool = True) -> Iterator[dict[str, str]]:
        """The study-level queries: one for a query selection, one per identifier for a CSV.
        Without `match_modalities` the modalities are left to :meth:`wants_study`: a
        server that caps its answers before matching ModalitiesInStudy loses studies."""
        base = {key: "" for key in self.study_keys}
        if self.date_from or self.date_to:
            base["StudyDate"] = f"{self.date_from or ''}-{self.date_to or ''}"
        if self.modalities and match_modalities:
            base["ModalitiesInStudy"] = "\\".join(self.modalities)
        if self.description:
            base["StudyDescription"] = self.description
        if self.ids is None:
            yield base
            return
        column, values = read_ids(self.ids)
        for identifier in values:
            yield {**base, column: identifier}

    def series_query(self, study: str) -> dict[str, str]:
        query = {key: "" for key in self.series_keys}
        query["StudyInstanceUID"] = study
        return query

    def wants_study(self, modalities: list[str] | None) -> bool:
        """Whether a study's answer fits the modalities (an answer without them may)."""
        if not self.modalities or not modalities:
            return True
        return any(m.upper() in self.modalities for m in modalities)

    def wants_series(self, modality: str | None, body_part: str | None) -> bool:
        """Series-level filters, applied to the answers (a PACS may not match on them)."""
        if self.modalities and (modality or "").upper() not in self.modalities:
            return False
        if self.body_part and (body_part or "").upper() != self.body_part.upper():
            return False
        return True

    def instance_query(self, study: str, series: str) -> dict[str, str]:
        query = {key: "" for key in self.instance_keys}
        query["StudyInstanceUID"] = study
        query["SeriesInstanceUID"] = series
        return query


def read_ids(path: str | os.PathLike[str]) -> tuple[str, list[str]]:
    """(the identifier column, its non-empty values, each once) of a CSV whose header
    names one of :data:`ID_COLUMNS`."""
    path = Path(path)
    if not path.is_file():
        raise SourceNotFoundError(f"ids: no CSV file at {path}")
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        columns = [c for c in (reader.fieldnames or []) if c in ID_COLUMNS]
        if len(columns) != 1:
            raise ConfigError(f"ids: {path.name} must have exactly one column named one of {', '.join(ID_COLUMNS)}")
        column = columns[0]
        seen: dict[str, None] = {}
        for row in reader:
            text = (row.get(column) or "").strip()
            if text and "*" not in text and "?" not in text and "\\" not in text:
                seen.setdefault(text, None)  # a wildcard would match other patients
    return column, list(seen)


def parse_modalities(value: str | Sequence[str] | None) -> tuple[str, ...]:
    if not value:
        return ()
    if isinstance(value, str):
        return tuple(m.strip() for m in value.replace("/", ",").split(",") if m.strip())
    return tuple(str(m) for m in value)

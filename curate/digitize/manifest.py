"""The manifest of a film import: one CSV row per scanned film, checked value by value.

A row whose values cannot go into a DICOM header as they are (a date that is not one, a
view that is not a code string) is refused with the reason, and the import goes on
with the other rows. Columns beyond the required ones are the user's own: they are
read and ignored.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from curate.errors import ConfigError, CurateError

REQUIRED_COLUMNS = (
    "file",
    "patient_id",
    "patient_name",
    "birth_date",
    "sex",
    "study_date",
    "description",
    "body_part",
    "view",
    "laterality",
    "dpi",
)
#: Optional columns curate reads when they are there.
OPTIONAL_COLUMNS = ("accession_number", "study_time", "scan_date")

_SEX = {"M": "M", "MALE": "M", "F": "F", "FEMALE": "F", "O": "O", "OTHER": "O", "": "", "U": "", "UNKNOWN": ""}
_LATERALITY = {"R": "R", "RIGHT": "R", "L": "L", "LEFT": "L", "": "", "B": "", "BOTH": "", "U": ""}
#: Spellings of the usual chest views -> ViewPosition's defined terms.
_VIEWS = {"LAT": "LATERAL", "LATERAL": "LATERAL", "LEFT LATERAL": "LL", "RIGHT LATERAL": "RL"}
_CODE_STRING = re.compile(r"[A-Z0-9_ ]{0,16}")


class FilmRowError(CurateError, ValueError):
    """A manifest row that cannot become a DICOM file (the reason names the column)."""


@dataclass(frozen=True)
class FilmRow:
    """One film, its values already as DICOM writes them."""

    number: int  # the row's line in the manifest (the header is line 1)
    file: str
    patient_id: str
    patient_name: str
    birth_date: str  # YYYYMMDD or ""
    sex: str  # M, F, O or ""
    study_date: str  # YYYYMMDD
    study_time: str  # HHMMSS or ""
    description: str
    body_part: str
    view: str
    laterality: str  # R, L or ""
    dpi: float | None
    accession_number: str = ""
    scan_date: str = ""  # YYYYMMDD or "": the digitisation date, when the manifest knows it

    def identity(self) -> tuple[str, ...]:
        """What the film's UIDs are derived from, with the image's bytes: every value that
        goes into its header, so that the same row and image always give the same UIDs
        (columns of the user's own can be added without changing them)."""
        return (
            self.file,
            self.patient_id,
            self.patient_name,
            self.birth_date,
            self.sex,
            self.study_date,
            self.study_time,
            self.description,
            self.body_part,
            self.view,
            self.laterality,
            "" if self.dpi is None else repr(self.dpi),
            self.accession_number,
        )


def read_manifest(path: str | Path) -> Iterator[FilmRow | FilmRowError]:
    """Each row of the manifest at `path`, parsed, or the reason it cannot be (the
    error's message starts with the row's line number). A manifest without the required
    columns is a :class:`ConfigError`: nothing could be imported from it."""
    path = Path(path)
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as e:
        raise ConfigError(f"the manifest {path} cannot be read: {e.strerror or e}") from None
    with handle:
        reader = csv.DictReader(handle)
        columns = [c.strip().lower() for c in (reader.fieldnames or [])]
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise ConfigError(
                f"the manifest {path} lacks the column(s) {', '.join(missing)} "
                f"(a header row naming at least: {', '.join(REQUIRED_COLUMNS)})"
            )
        reader.fieldnames = columns
        try:
            for number, record in enumerate(reader, start=2):
                try:
                    yield parse_row(number, record)
                except FilmRowError as e:
                    yield e
        except (csv.Error, UnicodeDecodeError) as e:
            raise ConfigError(f"the manifest {path} is not a readable UTF-8 CSV ({e})") from None


def parse_row(number: int, record: dict[str, str | None]) -> FilmRow:
    def text(column: str) -> str:
        value = record.get(column)
        return (value or "").strip() if isinstance(value, str) else ""

    def refuse(column: str, why: str) -> FilmRowError:
        return FilmRowError(f"row {number}: {column} {why}")

    file = text("file")
    if not file:
        raise refuse("file", "is empty")
    study_date = _date(text("study_date"))
    if not study_date:
        raise refuse("study_date", "is not a date (YYYYMMDD or YYYY-MM-DD)")
    birth = text("birth_date")
    birth_date = _date(birth) if birth else ""
    if birth and not birth_date:
        raise refuse("birth_date", "is not a date (YYYYMMDD or YYYY-MM-DD; empty when unknown)")
    if birth_date and birth_date > study_date:
        raise refuse("birth_date", "is after the study date")
    sex = _SEX.get(text("sex").upper())
    if sex is None:
        raise refuse("sex", "is not M, F, O or empty")
    laterality = _LATERALITY.get(text("laterality").upper())
    if laterality is None:
        raise refuse("laterality", "is not R, L or empty")
    view = text("view").upper()
    view = _VIEWS.get(view, view)
    if not _CODE_STRING.fullmatch(view):
        raise refuse("view", "is not a view code (PA, AP, LATERAL, LL, ...: at most 16 letters and digits)")
    body_part = text("body_part").upper()
    if not _CODE_STRING.fullmatch(body_part):
        raise refuse("body_part", "is not a body part code (CHEST, ...: at most 16 letters and digits)")
    dpi_text = text("dpi")
    dpi = None
    if dpi_text:
        try:
            dpi = float(dpi_text)
        except ValueError:
            dpi = -1.0
        if not 10 <= dpi <= 20_000:
            raise refuse("dpi", "is not a scan resolution in dots per inch (10 to 20000; empty: the image's own)")
    study_time = text("study_time").replace(":", "")
    if study_time and not re.fullmatch(r"([01]\d|2[0-3])[0-5]\d([0-5]\d)?", study_time):
        raise refuse("study_time", "is not a time of day (HHMMSS or HH:MM:SS)")
    scan = text("scan_date")
    scan_date = _date(scan) if scan else ""
    if scan and not scan_date:
        raise refuse("scan_date", "is not a date (YYYYMMDD or YYYY-MM-DD)")
    patient_id = text("patient_id")
    if len(patient_id) > 64 or "\\" in patient_id:
        raise refuse("patient_id", "is longer than 64 characters or holds a backslash")
    name = text("patient_name")
    if len(name) > 64 * 5 or "\\" in name or any(len(group) > 64 for group in name.split("=")):
        raise refuse("patient_name", "is too long for a person name or holds a backslash")
    description = text("description")
    if len(description) > 64 or "\\" in description:
        raise refuse("description", "is longer than 64 characters or holds a backslash")
    accession = text("accession_number")
    if len(accession) > 16 or "\\" in accession:
        raise refuse("accession_number", "is longer than 16 characters or holds a backslash")
    return FilmRow(
        number=number,
        file=file,
        patient_id=patient_id,
        patient_name=name,
        birth_date=birth_date,
        sex=sex,
        study_date=study_date,
        study_time=study_time,
        description=description,
        body_part=body_part,
        view=view,
        laterality=laterality,
        dpi=dpi,
        accession_number=accession,
        scan_date=scan_date,
    )


def _date(text: str) -> str:
    """``YYYYMMDD`` for a real calendar date written so or as ``YYYY-MM-DD``, else ""."""
    digits = text.replace("-", "") if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text) else text
    if not re.fullmatch(r"\d{8}", digits):
        return ""
    try:
        day = date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        return ""
    return digits if 1850 <= day.year <= 2200 else ""

"""What every PACS source shares: query levels, answers, failures and retries.

A source (:mod:`curate.pull.dicomweb`, :mod:`curate.pull.dimse`) opens connections;
a connection answers ``find(level, query)`` with DICOM JSON objects (PS3.18 F.2, the
same shape from QIDO-RS and C-FIND) and ``retrieve(...)`` hands each instance's Part 10
bytes to a sink. The rest of the pull sees only that.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from typing import Protocol, TypeVar

from pydicom.datadict import tag_for_keyword

STUDY, SERIES, IMAGE = "STUDY", "SERIES", "IMAGE"
LEVELS = (STUDY, SERIES, IMAGE)
#: The key that names a query's parent at each level.
UID_OF = {STUDY: "StudyInstanceUID", SERIES: "SeriesInstanceUID", IMAGE: "SOPInstanceUID"}

#: DICOM JSON: tag (8 hex digits) -> {"vr": ..., "Value": [...]}.
Answer = dict


class Answers(list):
    """A find's answers; `capped` when the server said it stopped short (C-FIND status
    Cancel, which Orthanc sends at its limit) - a count at the configured cap is taken
    as capped too, by the splitter."""

    capped: bool = False


#: A query: keyword -> match value; "" asks for the key back without matching on it.
Query = Mapping[str, str]
#: Receives (SOPInstanceUID, Part 10 bytes) for each instance retrieved.
Sink = Callable[[str, bytes], None]

T = TypeVar("T")


class TransientError(Exception):
    """A failure worth retrying: a dropped connection, a timeout, a busy server (5xx)."""


class InstanceError(Exception):
    """One instance (or series) could not be retrieved; the pull records it and goes on."""


class QueryRefused(InstanceError):
    """The PACS refused one query (an HTTP 400, a C-FIND failure status): it may answer the
    same query with fewer keys."""


#: The keys every Query/Retrieve SCP must answer (PS3.4 C.6.2.1: required and unique
#: keys): what a refused query is asked again with.
REQUIRED_KEYS = {
    STUDY: ("StudyInstanceUID", "StudyDate", "StudyTime", "AccessionNumber", "PatientName", "PatientID", "StudyID"),
    SERIES: ("SeriesInstanceUID", "Modality", "SeriesNumber"),
    IMAGE: ("SOPInstanceUID", "InstanceNumber"),
}


class Connection(Protocol):
    def echo(self) -> float: ...

    def find(self, level: str, query: Query) -> Answers: ...

    def retrieve(self, study: str, series: str, instances: list[str], sop_classes: list[str], sink: Sink) -> None: ...

    def study(self, sop_classes: list[str] | None) -> None:
        """The requests that follow are for one study whose instances are of `sop_classes`
        (None: nothing of it is retrieved)."""

    def close(self) -> None: ...


class Source(Protocol):
    kind: str

    def connect(self) -> Connection: ...

    def describe(self) -> str: ...

    def instance_uri(self, study: str, series: str, instance: str) -> str: ...


def tag_hex(keyword: str) -> str:
    tag = tag_for_keyword(keyword)
    if tag is None:
        raise KeyError(keyword)
    return f"{tag:08X}"


def value(answer: Answer, keyword: str) -> str | None:
    """The first value of `keyword` in a DICOM JSON answer, as text (None when absent)."""
    element = answer.get(tag_hex(keyword))
    values = element.get("Value") if isinstance(element, dict) else None
    if not values or not isinstance(values, list):  # a string is not a list of values
        return None
    first = values[0]
    if isinstance(first, dict):  # a person name
        return first.get("Alphabetic")
    return None if first is None else str(first)


def values(answer: Answer, keyword: str) -> list[str] | None:
    """Every value of `keyword` in an answer (None when absent)."""
    element = answer.get(tag_hex(keyword))
    found = element.get("Value") if isinstance(element, dict) else None
    return [str(v) for v in found] if isinstance(found, list) and found else None


#: VRs whose values are bytes: never wanted in an index row (pixel data, overlays, curves).
BINARY_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "UN"}


def without_bulk_data(answer: Answer) -> Answer:
    """A DICOM JSON object less its binary elements and bulk data references."""
    out = {}
    for tag, element in answer.items():
        if not isinstance(element, dict) or element.get("vr") in BINARY_VRS or "BulkDataURI" in element:
            continue
        if element.get("vr") == "SQ" and element.get("Value"):
            element = {**element, "Value": [without_bulk_data(i) for i in element["Value"] if isinstance(i, dict)]}
        out[tag] = element
    return out


def well_formed(answers: object, what: str) -> Answers:
    """`answers` as :class:`Answers` when they are a list of DICOM JSON objects, else the
    query counts as refused (a proxy's error page, a server's bug)."""
    if not isinstance(answers, list) or not all(
        isinstance(a, dict) and all(isinstance(e, dict) for e in a.values()) for a in answers
    ):
        raise QueryRefused(f"{what} is not a list of DICOM JSON objects")
    out = Answers(answers)
    return out


def check_instance(data: bytes, study: str, series: str) -> str:
    """The SOPInstanceUID of a received Part 10 file, once it is one and belongs to the
    series asked for; else :class:`InstanceError` (and nothing is stored)."""
    import io

    import pydicom

    if len(data) < 132 or data[128:132] != b"DICM":
        raise InstanceError("the server sent something that is not a DICOM file")
    try:
        ds = pydicom.dcmread(
            io.BytesIO(data),
            stop_before_pixels=True,
            specific_tags=["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SpecificCharacterSet"],
        )
        got = [
            str(ds.get(k, "") or "").strip("\x00 ") for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
        ]
    except Exception:  # noqa: BLE001 - the file's own bytes: any failure is "unreadable"
        raise InstanceError("the server sent a DICOM file whose header cannot be read") from None
    if got[0] != study or got[1] != series:
        raise InstanceError("the server sent an instance of another study or series than the one asked for")
    if not got[2]:
        raise InstanceError("the server sent an instance without a SOPInstanceUID")
    return got[2]


def with_retries(
    call: Callable[[], T],
    attempts: int = 4,
    backoff: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[Exception], None] | None = None,
) -> T:
    """`call()`, again after a :class:`TransientError`, waiting longer each time
    (exponential back-off with jitter, so that retrying clients do not beat in step)."""
    for attempt in range(attempts):
        try:
            return call()
        except TransientError as e:
            if attempt == attempts - 1:
                raise
            if on_retry is not None:
                on_retry(e)
            sleep(backoff * (2**attempt) * (0.5 + random.random()))
    raise AssertionError("unreachable")

"""Which files are held back for what their pixels may show (PS3.15 E.1.1 leaves pixel
data to the user): burned-in text, faces, screens, documents. Decided twice: by the plan,
from the index's row, and by the worker, from the data set it actually read (a file may
have changed since it was scanned, or say more after its pixels than the scanner read)."""

from __future__ import annotations

from collections.abc import Mapping

from curate.deid.pixels import REDACTABLE

#: SOP classes whose pixels are pictures of documents or screens, or routinely carry text.
QUARANTINED_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.7": "secondary capture",
    "1.2.840.10008.5.1.4.1.1.7.1": "secondary capture",
    "1.2.840.10008.5.1.4.1.1.7.2": "secondary capture",
    "1.2.840.10008.5.1.4.1.1.7.3": "secondary capture",
    "1.2.840.10008.5.1.4.1.1.7.4": "secondary capture",
    "1.2.840.10008.5.1.4.1.1.104.1": "encapsulated PDF",
    "1.2.840.10008.5.1.4.1.1.104.2": "encapsulated CDA",
    "1.2.840.10008.5.1.4.1.1.6.1": "ultrasound",
    "1.2.840.10008.5.1.4.1.1.6.2": "ultrasound",
    "1.2.840.10008.5.1.4.1.1.3.1": "ultrasound",
    "1.2.840.10008.5.1.4.1.1.77.1.1": "visible light (endoscopy)",
    "1.2.840.10008.5.1.4.1.1.77.1.1.1": "video (endoscopy)",
    "1.2.840.10008.5.1.4.1.1.77.1.2": "visible light (microscopy)",
    "1.2.840.10008.5.1.4.1.1.77.1.2.1": "video (microscopy)",
    "1.2.840.10008.5.1.4.1.1.77.1.3": "visible light (slide microscopy)",
    "1.2.840.10008.5.1.4.1.1.77.1.4": "photograph",
    "1.2.840.10008.5.1.4.1.1.77.1.4.1": "video (photograph)",
    "1.2.840.10008.5.1.4.1.1.77.1.5.1": "ophthalmic photograph",
    "1.2.840.10008.5.1.4.1.1.77.1.5.2": "ophthalmic photograph",
}
QUARANTINED_MODALITIES = {
    "US": "ultrasound",
    "IVUS": "ultrasound",
    "SC": "secondary capture",
    "DOC": "scanned document",
    "XC": "photograph",
    "ES": "visible light (endoscopy)",
    "GM": "visible light (microscopy)",
    "SM": "visible light (slide microscopy)",
    "OP": "ophthalmic photograph",
    "OT": "other (often screenshots)",
}

#: The attributes the reasons are read from.
QUARANTINE_TAGS = (
    "BurnedInAnnotation",
    "RecognizableVisualFeatures",
    "ImageType",
    "ConversionType",
    "SOPClassUID",
    "Modality",
)


def _values(value) -> list[str]:
    """Every value of a (possibly multi-valued) attribute, upper-cased, without padding,
    NULs or underscores (SCREEN_SAVE is SCREEN SAVE); bytes (a value written as OB or UN)
    read as Latin-1."""
    if value is None:
        return []
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("latin-1")
    items = (
        value if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue" else str(value).split("\\")
    )
    out = []
    for item in items:
        if item is None:
            continue
        text = (item.decode("latin-1") if isinstance(item, (bytes, bytearray)) else str(item)).replace("\x00", " ")
        out.append(" ".join(text.replace("_", " ").split()).upper())
    return out


def quarantine_reasons(row: Mapping) -> list[str]:
    """Every reason to hold the file back (redaction may lift it only if it may lift
    them all: a photograph with burned-in text still shows a face). `row`: an index row
    or a data set; any one value of a multi-valued attribute counts."""
    reasons = []

    def get(keyword: str):
        return row.get(keyword) if isinstance(row, Mapping) else getattr(row, keyword, None)

    if "YES" in _values(get("BurnedInAnnotation")):
        reasons.append("burned-in annotation")
    if "YES" in _values(get("RecognizableVisualFeatures")):
        reasons.append("recognizable visual features")
    if any("SCREEN SAVE" in v for v in _values(get("ImageType"))):
        reasons.append("screen save")
    if "SD" in _values(get("ConversionType")):
        reasons.append("scanned document")
    meta = getattr(row, "file_meta", None) if not isinstance(row, Mapping) else None
    classes = _values(get("SOPClassUID")) + _values(meta.get("MediaStorageSOPClassUID") if meta else None)
    found = [QUARANTINED_SOP_CLASSES.get(v) for v in classes]
    found += [QUARANTINED_MODALITIES.get(v) for v in _values(get("Modality"))]
    for reason in found:
        if reason and reason not in reasons:
            reasons.append(reason)
    return reasons


def held_back(reasons: list[str], redact: bool) -> str | None:
    """The reason a file is held back, or None: none of `reasons`, or (with `redact`)
    only reasons redaction lifts."""
    if not reasons or (redact and all(r in REDACTABLE for r in reasons)):
        return None
    return next((r for r in reasons if r not in REDACTABLE), reasons[0])

"""``pixels=redact``: the files held back for text in their pixels, redacted instead.

Which held-back files may be redacted: those whose pixels are an image with text on it
(burned-in annotation, secondary captures, screen saves, ultrasound, OT screenshots).
Documents (encapsulated PDF and CDA, scanned documents) are mostly text, and
photographs or video may show a face: they stay held back.

A redacted file is written uncompressed (Explicit VR Little Endian; colour as RGB), with
Burned In Annotation ``NO``, the Clean Pixel Data Option (DCM 113101) in its
De-identification Method Code Sequence, and Lossy Image Compression ``01`` kept when its
source had been compressed lossily. A file whose text is still read after redaction,
or whose pixels cannot be decoded here, stays held back with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

from curate.deid.redact import FixedRegion, redact

#: The reasons for holding a file back that redaction may lift.
REDACTABLE = frozenset(
    {"burned-in annotation", "screen save", "secondary capture", "ultrasound", "other (often screenshots)"}
)
CLEAN_PIXEL_CODE = ("113101", "Clean Pixel Data Option")
#: Transfer syntaxes that lose information: a file decoded from one stays marked lossy.
LOSSY_SYNTAXES = frozenset(
    {
        "1.2.840.10008.1.2.4.50",  # JPEG baseline
        "1.2.840.10008.1.2.4.51",  # JPEG extended
        "1.2.840.10008.1.2.4.81",  # JPEG-LS near-lossless
        "1.2.840.10008.1.2.4.91",  # JPEG 2000
        "1.2.840.10008.1.2.4.93",  # JPEG 2000 part 2
        "1.2.840.10008.1.2.4.203",  # HTJ2K
        "1.2.840.10008.1.2.4.100",  # MPEG2
        "1.2.840.10008.1.2.4.101",
        "1.2.840.10008.1.2.4.102",  # MPEG-4
        "1.2.840.10008.1.2.4.103",
        "1.2.840.10008.1.2.4.104",
        "1.2.840.10008.1.2.4.105",
        "1.2.840.10008.1.2.4.106",
        "1.2.840.10008.1.2.4.107",  # HEVC
        "1.2.840.10008.1.2.4.108",
    }
)
TEXT_REMAINS = "text still read in the pixels after redaction"


@dataclass(frozen=True)
class PixelRedaction:
    """The settings of ``pixels=redact``: the fixed regions of known devices."""

    fixed_regions: tuple[FixedRegion, ...] = ()


def redact_pixels(ds: Dataset, settings: PixelRedaction, record: dict) -> str | None:
    """Redact the text in `ds`'s pixels in place; why the file stays held back, or None.
    `record` gains the audit's record of what was filled (boxes and counts)."""
    if int(ds.get("BitsAllocated", 8)) == 1:
        return "1-bit pixels are not redacted"
    if str(ds.get("PhotometricInterpretation", "")).upper() == "PALETTE COLOR":
        return "palette colour pixels are not redacted"
    if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
        return "float pixel data is not redacted"
    try:
        result = redact(ds, settings.fixed_regions)
    except Exception as e:  # noqa: BLE001 - a codec pydicom lacks, or pixel data that does not decode
        return f"its pixels cannot be decoded here ({type(e).__name__})"
    if not result.clean:
        return TEXT_REMAINS
    record.update(result.record())
    _replace_pixels(ds, result.pixels)
    return None


def _replace_pixels(ds: Dataset, frames: np.ndarray) -> None:
    syntax = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "")
    lossy = syntax in LOSSY_SYNTAXES or str(ds.get("LossyImageCompression", "")) == "01"
    if frames.ndim == 4:  # colour, as pydicom decoded it
        ds.PhotometricInterpretation = "RGB"
        ds.SamplesPerPixel = 3
        ds.PlanarConfiguration = 0
    pixels = frames[0] if len(frames) == 1 else frames
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    ds["PixelData"].VR = "OW" if int(ds.BitsAllocated) > 8 else "OB"
    ds["PixelData"].is_undefined_length = False
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    for keyword in ("ExtendedOffsetTable", "ExtendedOffsetTableLengths"):  # of the encapsulated source
        if keyword in ds:
            delattr(ds, keyword)
    if lossy:
        ds.LossyImageCompression = "01"


def record_redaction(ds: Dataset) -> None:
    """Say in the header that the pixels were cleaned (after the profile recorded its
    own method)."""
    ds.BurnedInAnnotation = "NO"
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = CLEAN_PIXEL_CODE[0], "DCM", CLEAN_PIXEL_CODE[1]
    codes = list(ds.get("DeidentificationMethodCodeSequence", []))
    ds.DeidentificationMethodCodeSequence = Sequence([*codes, item])
    methods = ds.get("DeidentificationMethod", [])
    methods = [methods] if isinstance(methods, str) else list(methods)
    ds.DeidentificationMethod = [*methods, "curate: text in pixels filled, none read after"]

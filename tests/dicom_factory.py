"""Small builders for DICOM test files.

Two levels:

* pydicom-based: ``make_dataset(**attrs)`` and ``write(ds, path, transfer_syntax=...)``
  produce ordinary, valid files;
* raw bytes: ``element``, ``item``, ``sequence``, ``meta_group`` and ``part10`` write
  exactly the bytes asked for, lengths included, so that hostile files (lengths that lie,
  sequences that never end, nesting without limit) can be built too.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)

__all__ = [
    "CT_IMAGE_STORAGE",
    "UNDEFINED",
    "DeflatedExplicitVRLittleEndian",
    "ExplicitVRBigEndian",
    "ExplicitVRLittleEndian",
    "ImplicitVRLittleEndian",
    "element",
    "image_dataset",
    "item",
    "item_end",
    "make_dataset",
    "meta_group",
    "nested_sequences",
    "part10",
    "sequence",
    "sequence_end",
    "write",
    "write_raw_dataset",
]

UNDEFINED = 0xFFFF_FFFF
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
# VRs whose explicit header carries two reserved bytes and a 32-bit length.
LONG_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}


# --- pydicom-based ---------------------------------------------------------------------


def make_dataset(**attrs) -> Dataset:
    """A minimal CT instance with identifiers filled in; keyword arguments set attributes.

    ``attrs`` use DICOM keywords (``PatientID="P1"``, ``Rows=4``); a value of ``None``
    leaves the attribute out.
    """
    ds = Dataset()
    defaults = {
        "SOPClassUID": CT_IMAGE_STORAGE,
        "SOPInstanceUID": generate_uid(),
        "StudyInstanceUID": generate_uid(),
        "SeriesInstanceUID": generate_uid(),
        "PatientID": "PAT0",
        "Modality": "CT",
    }
    defaults.update(attrs)
    for keyword, value in defaults.items():
        if value is not None:
            setattr(ds, keyword, value)
    return ds


def image_dataset(**attrs) -> Dataset:
    """:func:`make_dataset` with an 8x8, 16-bit MONOCHROME2 image (128 bytes of pixels)."""
    image = dict(
        Rows=8,
        Columns=8,
        BitsAllocated=16,
        BitsStored=16,
        HighBit=15,
        PixelRepresentation=0,
        SamplesPerPixel=1,
        PhotometricInterpretation="MONOCHROME2",
    )
    image.update(attrs)
    ds = make_dataset(**image)
    ds.PixelData = bytes(range(128))
    ds["PixelData"].VR = "OW"
    return ds


def write(
    ds: Dataset,
    path: str | Path,
    transfer_syntax: str = ExplicitVRLittleEndian,
    preamble: bool = True,
) -> Path:
    """Write `ds` as a Part 10 file (preamble, DICM, file meta group) in `transfer_syntax`."""
    path = Path(path)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.get("SOPClassUID", CT_IMAGE_STORAGE)
    meta.MediaStorageSOPInstanceUID = ds.get("SOPInstanceUID", generate_uid())
    meta.TransferSyntaxUID = UID(transfer_syntax)
    ds.file_meta = meta
    ds.preamble = b"\0" * 128 if preamble else None
    path.parent.mkdir(parents=True, exist_ok=True)
    pydicom.dcmwrite(path, ds, enforce_file_format=preamble)
    return path


def write_raw_dataset(ds: Dataset, path: str | Path, implicit_vr: bool = True) -> Path:
    """Write `ds` with no preamble, no DICM marker and no file meta group."""
    path = Path(path)
    if hasattr(ds, "file_meta"):
        del ds.file_meta
    ds.preamble = None
    path.parent.mkdir(parents=True, exist_ok=True)
    pydicom.dcmwrite(path, ds, implicit_vr=implicit_vr, little_endian=True, enforce_file_format=False)
    return path


# --- raw bytes -------------------------------------------------------------------------


def _tag(tag: int, little: bool) -> bytes:
    fmt = "<HH" if little else ">HH"
    return struct.pack(fmt, tag >> 16, tag & 0xFFFF)


def _u16(n: int, little: bool) -> bytes:
    return struct.pack("<H" if little else ">H", n)


def _u32(n: int, little: bool) -> bytes:
    return struct.pack("<I" if little else ">I", n)


def element(
    tag: int,
    vr: str,
    value: bytes | str = b"",
    *,
    explicit: bool = True,
    little: bool = True,
    length: int | None = None,
    pad: bool = True,
) -> bytes:
    """One data element. `length` overrides the declared length (the value bytes are
    written as given either way); odd values are padded with a space (NUL for UI and
    binary VRs) unless `pad` is false."""
    if isinstance(value, str):
        value = value.encode("latin-1")
    if pad and len(value) % 2:
        value += b"\0" if vr in ("UI", "OB", "UN") else b" "
    declared = len(value) if length is None else length
    head = _tag(tag, little)
    if not explicit:
        return head + _u32(declared, little) + value
    if vr in LONG_VRS:
        return head + vr.encode() + b"\0\0" + _u32(declared, little) + value
    if declared > 0xFFFF:
        raise ValueError(f"{vr} has a 16-bit length; {declared} does not fit")
    return head + vr.encode() + _u16(declared, little) + value


def item(body: bytes = b"", *, length: int | None = None, little: bool = True) -> bytes:
    """An item (FFFE,E000). `length=UNDEFINED` writes an undefined-length item ended by
    an item delimiter; otherwise the declared length is `length` or the body's size."""
    if length == UNDEFINED:
        return _tag(0xFFFEE000, little) + _u32(UNDEFINED, little) + body + item_end(little)
    declared = len(body) if length is None else length
    return _tag(0xFFFEE000, little) + _u32(declared, little) + body


def item_end(little: bool = True) -> bytes:
    return _tag(0xFFFEE00D, little) + _u32(0, little)


def sequence_end(little: bool = True) -> bytes:
    return _tag(0xFFFEE0DD, little) + _u32(0, little)


def sequence(
    tag: int,
    items: list[bytes],
    *,
    vr: str = "SQ",
    explicit: bool = True,
    little: bool = True,
    length: int | None = None,
) -> bytes:
    """A sequence of already-encoded items. `length=UNDEFINED` appends a sequence
    delimiter; `None` declares the items' total size; any other number is written as is."""
    body = b"".join(items)
    if length == UNDEFINED:
        return element(
            tag, vr, body + sequence_end(little), explicit=explicit, little=little, length=UNDEFINED, pad=False
        )
    declared = len(body) if length is None else length
    return element(tag, vr, body, explicit=explicit, little=little, length=declared, pad=False)


def nested_sequences(depth: int, tag: int = 0x0040A730, innermost: bytes = b"") -> bytes:
    """`depth` undefined-length sequences, each holding one undefined-length item that
    holds the next (explicit VR little endian)."""
    # Built inside out without recursion: prefix and suffix of each level.
    head = _tag(tag, True) + b"SQ\0\0" + _u32(UNDEFINED, True) + _tag(0xFFFEE000, True) + _u32(UNDEFINED, True)
    tail = item_end() + sequence_end()
    return head * depth + innermost + tail * depth


def meta_group(
    transfer_syntax: str = ExplicitVRLittleEndian,
    sop_class: str = CT_IMAGE_STORAGE,
    sop_instance: str = "1.2.3.4",
) -> bytes:
    """The file meta group (explicit VR little endian), group length included."""
    body = (
        element(0x00020001, "OB", b"\0\1")
        + element(0x00020002, "UI", sop_class)
        + element(0x00020003, "UI", sop_instance)
        + element(0x00020010, "UI", transfer_syntax)
    )
    return element(0x00020000, "UL", _u32(len(body), True)) + body


def part10(
    dataset: bytes,
    transfer_syntax: str = ExplicitVRLittleEndian,
    sop_class: str = CT_IMAGE_STORAGE,
    preamble: bool = True,
) -> bytes:
    """Preamble, DICM, file meta group, then `dataset` exactly as given."""
    start = b"\0" * 128 + b"DICM" if preamble else b""
    return start + meta_group(transfer_syntax, sop_class) + dataset

"""A DICOM file cut at its Pixel Data: the header pydicom parses, the pixel element's
bytes (which are copied, never parsed), and the elements after it.

De-identification changes the header (a few kilobytes) and the elements after the
pixels (padding, signatures, private groups above 7FE0), never the pixels themselves:
:func:`split_file` finds where the pixel element starts and ends by reading its header
alone (and, for encapsulated pixel data, the item headers of its fragments), so that
:func:`copy_range` can hand its bytes to the kernel.

A file this cannot cut safely (deflated or big endian transfer syntax, an encoding that
does not match the file meta group, a pixel element whose length runs past the file)
gives :class:`CannotSplit`, and the caller reads it whole instead.
"""

from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass, field
from typing import BinaryIO

from pydicom import dcmread
from pydicom.dataset import Dataset, FileDataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_dataset
from pydicom.uid import UID
from pydicom.valuerep import VR as VR_

PIXEL_DATA = 0x7FE00010
PIXEL_TAGS = (0x7FE00008, 0x7FE00009, PIXEL_DATA)
#: Explicit VRs whose element header has two reserved bytes and a 4-byte length (PS3.5 7.1.2).
LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
ITEM, SEQUENCE_END = 0xFFFEE000, 0xFFFEE0DD
#: Every VR's two letters.
VRS = frozenset(vr.value for vr in VR_)
UNDEFINED = 0xFFFFFFFF
_COPY_BLOCK = 1 << 20


class CannotSplit(Exception):
    """The file must be read whole: why, in a few words."""


class Malformed(ValueError):
    """The file is not one a de-identified copy can be made of safely: cut short in its
    pixels, fragments that do not hold together, an attribute after Pixel Data that
    repeats one before it (it would replace the value the identity is taken from), two
    pixel elements."""


@dataclass
class Fragment:
    """One item of encapsulated pixel data: where its value starts, and its length."""

    offset: int
    length: int


@dataclass
class SplitFile:
    """A file's header (parsed, Pixel Data absent), where its pixel element lies, and the
    elements after it (parsed, added to ``dataset``)."""

    dataset: FileDataset
    pixel_start: int
    pixel_end: int
    #: The pixel element's tag (0 when the file has none): what goes before and after it.
    pixel_tag: int = 0
    #: The items of encapsulated pixel data, the basic offset table first; empty when native.
    fragments: list[Fragment] = field(default_factory=list)
    #: Where the pixel element's value starts (after its tag, VR and length).
    value_start: int = 0


def split_file(path: str | os.PathLike[str]) -> SplitFile:
    """Parse the header and trailer of the file at `path`, and locate its pixel element."""
    with open(path, "rb") as fp:
        try:
            ds = dcmread(fp, stop_before_pixels=True)
        except InvalidDicomError:
            raise CannotSplit("no preamble or file meta group") from None
        start = fp.tell()
        implicit, little = _encoding(ds)
        _check_encoding(fp, implicit)
        size = os.fstat(fp.fileno()).st_size
        if start >= size:
            return SplitFile(ds, start, start)
        fp.seek(start)
        group, element = struct.unpack("<HH", fp.read(4).ljust(4, b"\0"))
        tag = group << 16 | element
        if tag not in PIXEL_TAGS:
            # pydicom stopped somewhere else (a stray delimiter): the rest is unparsed.
            raise CannotSplit("the header ends before Pixel Data")
        value_at, end, fragments = _pixel_element_end(fp, start, implicit, size)
        encapsulated = tag == PIXEL_DATA and UID(str(ds.file_meta.TransferSyntaxUID)).is_encapsulated
        if (fragments is not None) != encapsulated:
            # Readers disagree on such pixels, and checks made for one kind miss the other.
            raise Malformed(
                "encapsulated Pixel Data under a native transfer syntax"
                if fragments is not None
                else "Pixel Data of defined length under an encapsulated transfer syntax"
            )
        if end < size:
            fp.seek(end)
            trailer = read_dataset(fp, implicit, little)
            for element in trailer:
                if element.tag in PIXEL_TAGS:
                    raise Malformed("two pixel elements")
                if element.tag in ds:
                    raise Malformed(f"attribute {element.tag} both before and after Pixel Data")
                ds.add(element)
    return SplitFile(ds, start, end, tag, fragments or [], value_at)


def _check_encoding(fp: BinaryIO, implicit: bool) -> None:
    """The first element of the data set must be encoded as the transfer syntax says:
    pydicom reads an implicit VR data set under an explicit transfer syntax (a common
    fault) and reports the transfer syntax's encoding, and the pixel element's header
    would then be read wrong."""
    fp.seek(128 + 4)
    head = fp.read(12)
    if head[:4] != b"\x02\x00\x00\x00" or head[4:6] != b"UL":
        raise CannotSplit("no File Meta Information Group Length")
    fp.seek(128 + 4 + 12 + struct.unpack("<I", head[8:12])[0])
    first = fp.read(6)
    if len(first) == 6 and (first[4:6].decode("latin-1") in VRS) is implicit:
        raise CannotSplit("the data set's encoding differs from its transfer syntax")


def _encoding(ds: FileDataset) -> tuple[bool, bool]:
    """(implicit VR, little endian) of the data set, when the fast path can write it as read."""
    syntax = UID(str(ds.file_meta.get("TransferSyntaxUID", ""))) if ds.file_meta else None
    if not syntax or syntax.is_deflated or not syntax.is_little_endian:
        raise CannotSplit("deflated, big endian or undeclared transfer syntax")
    implicit, little = ds.original_encoding
    if implicit is not syntax.is_implicit_VR or not little:
        raise CannotSplit("the data set's encoding differs from its transfer syntax")
    return implicit, little


def _pixel_element_end(fp: BinaryIO, start: int, implicit: bool, size: int) -> tuple[int, int, list[Fragment] | None]:
    """(where the pixel element's value starts, where the element ends, its fragments
    if encapsulated: None for a value of defined length)."""
    fp.seek(start)
    head = fp.read(12)
    if len(head) < 8:
        raise Malformed("the file ends in the Pixel Data element's header")
    if implicit:
        value_at, length = start + 8, struct.unpack("<I", head[4:8])[0]
    elif head[4:6] in LONG_VRS:
        if len(head) < 12:
            raise Malformed("the file ends in the Pixel Data element's header")
        value_at, length = start + 12, struct.unpack("<I", head[8:12])[0]
    else:
        value_at, length = start + 8, struct.unpack("<H", head[6:8])[0]
    if length != UNDEFINED:
        if value_at + length > size:
            raise Malformed("Pixel Data runs past the end of the file")
        return value_at, value_at + length, None
    fragments = []
    position = value_at
    while True:
        fp.seek(position)
        item = fp.read(8)
        if len(item) < 8:
            raise Malformed("encapsulated Pixel Data ends before its sequence delimiter")
        tag_group, tag_element, length = struct.unpack("<HHI", item)
        tag = tag_group << 16 | tag_element
        position += 8
        if tag == SEQUENCE_END:
            return value_at, position, fragments
        if tag == ITEM and length != UNDEFINED and position + length > size:
            raise Malformed("a fragment of Pixel Data runs past the end of the file")
        if tag != ITEM or length == UNDEFINED:
            raise Malformed("encapsulated Pixel Data whose items do not hold together")
        fragments.append(Fragment(position, length))
        position += length


def copy_range(source: BinaryIO, target: BinaryIO, offset: int, length: int) -> None:
    """Append `length` bytes of `source` from `offset` to `target`, in the kernel where it
    can (``copy_file_range``, then ``sendfile``), else through a buffer."""
    target.flush()
    src, dst = source.fileno(), target.fileno()
    done = 0
    for kernel_copy in (_copy_file_range, _sendfile):
        try:
            while done < length:
                copied = kernel_copy(src, dst, length - done, offset + done)
                if copied == 0:
                    break
                done += copied
            if done == length:
                target.seek(0, io.SEEK_END)
                return
        except OSError:
            continue  # another filesystem, or a kernel without the call: try the next way
    source.seek(offset + done)
    target.seek(0, io.SEEK_END)
    while done < length:
        block = source.read(min(_COPY_BLOCK, length - done))
        if not block:
            raise OSError(f"source ended {length - done} bytes before its pixel data did")
        target.write(block)
        done += len(block)


def _copy_file_range(src: int, dst: int, count: int, offset: int) -> int:
    return os.copy_file_range(src, dst, count, offset)


def _sendfile(src: int, dst: int, count: int, offset: int) -> int:
    return os.sendfile(dst, src, offset, count)


def encode_elements(ds: Dataset, implicit: bool) -> bytes:
    """`ds`'s elements encoded as a little endian data set (no preamble, no file meta)."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, implicit
    write_dataset(buffer, ds)
    return buffer.getvalue()

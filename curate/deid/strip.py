"""Identifying text cut out of encapsulated pixel data, with proof that the image is the
same.

A codestream whose comment or text application segment (or JPEG 2000 comment, JP2 text
box, bytes after its end, or the basic offset table) names the patient is rewritten:
every such segment is cut out of every frame (:attr:`Segment.removable`), the
fragments and the offset table are written again, and the new codestreams are walked
and searched again. Segments that decoding needs (APP0, APP2, APP14: the colour
transform and profile) stay; a name in one of them keeps the file back. Last, both
images are decoded and must be equal, pixel for pixel; an image no installed decoder
reads keeps the file back too.
"""

from __future__ import annotations

from collections.abc import Callable

from curate.deid.segments import Segment, Unparsable, codestream_segments, starts_codestream

#: The outcome the run's audit gives Pixel Data when text segments were cut out of it.
REMOVED = "text segments removed"
#: The Extended Offset Table and its lengths: they point into the old fragments.
EXTENDED_OFFSETS = (0x7FE00001, 0x7FE00002)


class CannotStrip(Exception):
    """Why the text could not be cut out with the image shown unchanged."""


def strip_text(
    items: list[bytes], ds, holds: Callable[[Segment], bool], holds_anywhere: Callable[[bytes], bool]
) -> bytes:
    """The new encapsulated Pixel Data value for the items of `ds`'s (the offset table
    first, then the fragments), with the text cut out; :class:`CannotStrip` says why not.
    `holds` says whether a segment holds one of the patient's values; `holds_anywhere`
    whether bytes do, anywhere in them: the new value is searched whole (coded data
    too), since a file that named its patient once may do it again where no segment is."""
    from pydicom.encaps import encapsulate

    if not items:
        raise CannotStrip("no fragments")
    frames = []
    for frame in _codestreams(items[1:]):
        try:
            segments = codestream_segments(frame)
        except Unparsable as err:
            raise CannotStrip(str(err)) from None
        if any(holds(s) for s in segments if not s.removable):
            raise CannotStrip("identifying text in a segment the image needs")
        frame = _cut(frame, [s for s in segments if s.removable])
        try:
            if any(holds(s) for s in codestream_segments(frame)):
                raise CannotStrip("identifying text left after the cut")
        except Unparsable as err:
            raise CannotStrip(f"the cut codestream does not hold together: {err}") from None
        frames.append(frame)
    value = encapsulate(frames, has_bot=bool(items[0]))
    if holds_anywhere(value):
        raise CannotStrip("identifying text in the coded data")
    _same_image(ds, _value(items), value)
    return value


def _codestreams(fragments: list[bytes]) -> list[bytes]:
    """The fragments joined by frame (a fragment that starts no codestream continues the
    frame before it)."""
    frames: list[bytearray] = []
    for fragment in fragments:
        if starts_codestream(fragment[:8]) or not frames:
            frames.append(bytearray(fragment))
        else:
            frames[-1] += fragment
    return [bytes(f) for f in frames]


def _cut(frame: bytes, segments: list[Segment]) -> bytes:
    kept, position = [], 0
    for segment in sorted(segments, key=lambda s: s.start):
        kept.append(frame[position : segment.start])
        position = segment.end
    kept.append(frame[position:])
    return b"".join(kept)


def _value(items: list[bytes]) -> bytes:
    """The items as an encapsulated value again (the offset table as it was)."""
    out = bytearray()
    for item in items:
        out += b"\xfe\xff\x00\xe0" + len(item).to_bytes(4, "little") + item
    return bytes(out + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00")


#: What a decoder reads of a data set besides its pixels.
PIXEL_MODULE = (
    "Rows",
    "Columns",
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "PlanarConfiguration",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "NumberOfFrames",
)


def _same_image(ds, before: bytes, after: bytes) -> None:
    import numpy as np

    images = []
    for value in (before, after):
        try:
            images.append(_decoded(ds, value))
        except Exception as err:  # a decoder's error, or none installed for the syntax
            raise CannotStrip(f"the image cannot be decoded to show it unchanged ({type(err).__name__})") from None
    if images[0].shape != images[1].shape or not np.array_equal(images[0], images[1]):
        raise CannotStrip("the image would change")


def _decoded(ds, value: bytes):
    from pydicom.dataset import Dataset, FileMetaDataset

    image = Dataset()
    for keyword in PIXEL_MODULE:
        if keyword in ds:
            setattr(image, keyword, ds.data_element(keyword).value)
    image.file_meta = FileMetaDataset()
    image.file_meta.TransferSyntaxUID = ds.file_meta.TransferSyntaxUID
    image.PixelData = value
    image["PixelData"].VR = "OB"
    return image.pixel_array

"""Text segments inside encapsulated pixel data: JPEG comments and application segments,
and JPEG 2000 comments, where writers put names, IDs and dates.

The codestreams are walked by their marker segments' lengths, never by guessing: in a
JPEG, from SOI to each SOS, then through the entropy-coded data to the next marker (a
0xFF there is always followed by 0x00 or a restart marker, so the next other marker is
real); in JPEG 2000, through the main header and every tile-part header (whose SOT gives
the tile-part's length). The same holds for JPEG-LS, whose coded bytes after 0xFF have
the high bit clear.

Comments and APPn segments are text; APP0 (JFIF), APP2 (ICC profile) and APP14 (Adobe
colour transform), the JP2 boxes that describe the image, the basic offset table, the
bytes after a codestream's end and RLE data are *binary*: searched too, but only for
values of three characters or more (two letters occur by chance in binary data).
"""

from __future__ import annotations

import mmap
import re
from dataclasses import dataclass, replace

from curate.deid.split import Fragment

COM, SOS, EOI, SOI = 0xFE, 0xDA, 0xD9, 0xD8
BINARY_APPS = {0xE0, 0xE2, 0xEE}
#: Markers with no length field (ITU-T T.81 B.1.1.3).
STANDALONE = {0x01, *range(0xD0, 0xD9)}
#: The next marker in entropy-coded data: 0xFF and a marker code (0xC0 and up, restarts
#: and fill aside). JPEG stuffs a zero after a coded 0xFF, JPEG-LS a byte below 0x80.
NEXT_MARKER = re.compile(rb"\xff[\xc0-\xcf\xd8-\xfe]")
RLE_LOSSLESS = "1.2.840.10008.1.2.5"
#: JPEG (.50 to .70), JPEG-LS (.80, .81), JPEG 2000 (.90 to .93) and HTJ2K (.201 to .203).
JPEG_FAMILY = tuple(f"1.2.840.10008.1.2.4.{n}" for n in (50, 51, 57, 70, 80, 81, 90, 91, 92, 93, 201, 202, 203))
JP2_SIGNATURE = b"jP  "
#: JP2 boxes that hold the image and how to show it (binary); any other box (XML, UUID,
#: IPR, labels, URLs) is text.
JP2_IMAGE_BOXES = {b"jP  ", b"ftyp", b"rreq", b"jp2h", b"jp2c", b"res ", b"ihdr", b"colr", b"bpcc", b"pclr", b"cmap"}
J2K_SOC, J2K_SOT, J2K_SOD, J2K_EOC, J2K_COM = 0xFF4F, 0xFF90, 0xFF93, 0xFFD9, 0xFF64


@dataclass(frozen=True)
class Segment:
    """A segment to search: its kind (``COM``, ``APP1`` ...), its bytes (marker included),
    whether it is text (see the module text), where it lies in the codestream it was
    walked in, and whether it can be cut out of it without touching the image: a JPEG
    comment or text APPn, a JPEG 2000 comment in the main header (one in a tile-part
    header counts in the tile-part's length), a JP2 box that is not the image's, the
    bytes after the end of the codestream."""

    kind: str
    data: bytes
    text: bool = True
    start: int = 0
    end: int = 0
    removable: bool = False


class Unparsable(Exception):
    """The codestream's structure does not hold: it cannot be searched by its markers."""


def text_segments(path, fragments: list[Fragment], transfer_syntax: str) -> list[Segment]:
    """Every segment of the encapsulated pixel data to search. A fragment that starts no
    codestream continues the previous one's frame. A transfer syntax whose codestreams
    are not walked here (video, for one) raises :class:`Unparsable`."""
    with open(path, "rb") as fp, mmap.mmap(fp.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return _segments(data, fragments, transfer_syntax)


def item_segments(items: list[bytes], transfer_syntax: str) -> list[Segment]:
    """:func:`text_segments` of pixel data read whole: its items, the offset table first."""
    fragments, offset = [], 0
    for item in items:
        fragments.append(Fragment(offset, len(item)))
        offset += len(item)
    return _segments(b"".join(items), fragments, transfer_syntax)


def _segments(data, fragments: list[Fragment], transfer_syntax: str) -> list[Segment]:
    if transfer_syntax not in JPEG_FAMILY and transfer_syntax != RLE_LOSSLESS:
        raise Unparsable(f"codestreams of transfer syntax {transfer_syntax} are not searched")
    found: list[Segment] = []
    if fragments and fragments[0].length:
        found.append(_binary("offset table", data, fragments[0].offset, fragments[0].offset + fragments[0].length))
    if transfer_syntax == RLE_LOSSLESS:
        return found + [_binary("RLE", data, f.offset, f.offset + f.length) for f in fragments[1:]]
    for frame in _frames(data, fragments[1:]):
        if len(frame) == 1:
            view, start, end = data, frame[0].offset, frame[0].offset + frame[0].length
        else:  # a frame cut into fragments: walked as one codestream
            view = b"".join(data[f.offset : f.offset + f.length] for f in frame)
            start, end = 0, len(view)
        found += codestream_segments(view, start, end)
    return found


def codestream_segments(view, start: int = 0, end: int | None = None) -> list[Segment]:
    """The segments to search of one frame's codestream, bytes [start, end) of `view`."""
    end = len(view) if end is None else end
    if view[start : start + 2] == b"\xff\xd8":
        return _jpeg(view, start, end)
    if view[start : start + 2] == b"\xff\x4f":
        return _j2k(view, start, end)
    if view[start + 4 : start + 8] == JP2_SIGNATURE:
        return _jp2(view, start, end)
    raise Unparsable("a fragment that starts no JPEG or JPEG 2000 codestream")


def starts_codestream(head) -> bool:
    """Whether bytes (the first eight of a fragment) start a JPEG or JPEG 2000 codestream."""
    return head[:2] in (b"\xff\xd8", b"\xff\x4f") or head[4:8] == JP2_SIGNATURE


def _binary(kind: str, data, start: int, end: int) -> Segment:
    return Segment(kind, bytes(data[start:end]), text=False)


def _frames(data, fragments: list[Fragment]) -> list[list[Fragment]]:
    """The fragments grouped by frame: a frame starts with a fragment that starts a codestream."""
    frames: list[list[Fragment]] = []
    for fragment in fragments:
        if starts_codestream(data[fragment.offset : fragment.offset + 8]) or not frames:
            frames.append([fragment])
        else:
            frames[-1].append(fragment)
    return frames


def _after_end(data, position: int, end: int) -> list[Segment]:
    """What follows a codestream's end in its fragment (padding, or not)."""
    if position >= end:
        return []
    return [Segment("after end of image", bytes(data[position:end]), False, position, end, removable=True)]


def _jpeg(data, start: int, end: int) -> list[Segment]:
    found = []
    position = start + 2
    while position + 2 <= end:
        if data[position] != 0xFF:
            raise Unparsable(f"no marker at byte {position}")
        marker = data[position + 1]
        if marker == 0xFF:  # fill bytes before a marker
            position += 1
            continue
        if marker == EOI:
            return found + _after_end(data, position + 2, end)
        if marker in STANDALONE:
            position += 2
            continue
        if position + 4 > end:
            raise Unparsable(f"a segment running past its fragment at byte {position}")
        length = int.from_bytes(data[position + 2 : position + 4], "big")
        segment_end = position + 2 + length
        if length < 2 or segment_end > end:
            raise Unparsable(f"a segment running past its fragment at byte {position}")
        if marker == COM or 0xE0 <= marker <= 0xEF:
            kind = "COM" if marker == COM else f"APP{marker - 0xE0}"
            text = marker not in BINARY_APPS
            found.append(Segment(kind, bytes(data[position:segment_end]), text, position, segment_end, removable=text))
        else:  # tables, frame and scan headers, DNL, extensions: binary, searched all the same
            found.append(
                Segment(f"marker FF{marker:02X}", bytes(data[position:segment_end]), False, position, segment_end)
            )
        position = segment_end
        if marker == SOS:
            following = NEXT_MARKER.search(data, position, end)
            if following is None:
                return found  # the frame continues in the next fragment
            position = following.start()
    return found


def _j2k(data, start: int, end: int) -> list[Segment]:
    found = []
    position = start + 2
    tile_part_end = None
    while position + 2 <= end:
        marker = int.from_bytes(data[position : position + 2], "big")
        if marker == J2K_EOC:
            return found + _after_end(data, position + 2, end)
        if marker == J2K_SOD:
            if tile_part_end is None:
                raise Unparsable(f"SOD without SOT at byte {position}")
            position, tile_part_end = tile_part_end, None
            continue
        if marker >> 8 != 0xFF or position + 4 > end:
            raise Unparsable(f"no marker at byte {position}")
        length = int.from_bytes(data[position + 2 : position + 4], "big")
        segment_end = position + 2 + length
        if length < 2 or segment_end > end:
            raise Unparsable(f"a segment running past its fragment at byte {position}")
        if marker == J2K_SOT:
            tile_part = int.from_bytes(data[position + 6 : position + 10], "big")
            if tile_part == 0 or position + tile_part > end:
                # To the end (allowed for the last tile-part only) or past it: the tile-part
                # headers after it cannot be found by their lengths.
                raise Unparsable(f"a tile-part without a length that holds at byte {position}")
            tile_part_end = position + tile_part
        if marker == J2K_COM:
            in_main_header = tile_part_end is None
            found.append(Segment("COM", bytes(data[position:segment_end]), True, position, segment_end, in_main_header))
        else:  # SIZ, COD, QCD, tile-part headers, and markers no decoder knows: binary
            found.append(
                Segment(f"marker {marker:04X}", bytes(data[position:segment_end]), False, position, segment_end)
            )
        position = segment_end
    return found


def _jp2(data, start: int, end: int) -> list[Segment]:
    """The JP2 file format (ISO/IEC 15444-1 Annex I): boxes, one of them the codestream."""
    found = []
    position = start
    while position + 8 <= end:
        length = int.from_bytes(data[position : position + 4], "big")
        kind = bytes(data[position + 4 : position + 8])
        header = 8
        if length == 1:
            length, header = int.from_bytes(data[position + 8 : position + 16], "big"), 16
        elif length == 0:
            length = end - position  # the last box runs to the end
        if length < header or position + length > end:
            raise Unparsable(f"a JP2 box running past its fragment at byte {position}")
        if kind == b"jp2c":
            # A cut inside the codestream box would leave its length wrong: nothing in it is removable.
            found += [replace(s, removable=False) for s in _j2k(data, position + header, position + length)]
        else:
            name = kind.decode("latin-1").strip()
            text = kind not in JP2_IMAGE_BOXES
            box_end = position + length
            found.append(Segment(name, bytes(data[position:box_end]), text, position, box_end, removable=text))
        position += length
    return found + _after_end(data, position, end)

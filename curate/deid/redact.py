"""Text burned into pixels: found, filled, and proven gone, or the file stays held back.

For each frame, on the image as displayed (:mod:`curate.deid.display`):

1. the regions configured for the device (Manufacturer, model, Rows, Columns), CTP
   style, are filled without OCR;
2. the text regions are filled: the candidate regions of strong thin strokes
   (:mod:`curate.deid.text_regions`) that OCR reads as text, and the words OCR reads
   with confidence on the whole frame (:mod:`curate.deid.ocr`), each grown by 2 pixels
   (a word's box by a sixth of its height: Tesseract's boxes cut anti-aliased stroke
   ends off);
3. the filled frame is read again, the same two ways (with the source frame's stroke
   threshold and ranges, so that filling does not change what counts): text found then
   is filled too (a word joined to a neighbour's region, or faint beside bright text,
   may show only once the other is gone), and the frame read once more, until a
   reading finds nothing. Text found in the last reading allowed means it was not
   removed, and the file is not written (the caller keeps it held back, with the
   reason).

Every view of a frame is read (:func:`~curate.deid.display.frame_views`: as displayed,
over the whole stored range where a window would hide part of it, and a colour
image's saturation).

A region is filled with the stored value the frame displays darkest (black on screen,
whatever the photometric interpretation, the rescale or the window), or black in a colour
image. Only the filled regions change: every other pixel keeps its stored value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from curate.deid.display import DISPLAY, frame_views, stored_frames, stretched
from curate.deid.ocr import is_text, page_words, region_readings
from curate.deid.text_regions import candidate_boxes, stroke_threshold

#: Fraction of a box's narrow side added on every side of it: a region of strokes holds
#: its strokes whole already; Tesseract's word boxes cut anti-aliased stroke ends off.
REGION_MARGIN, WORD_MARGIN = 0.0, 1 / 6
MIN_MARGIN = 2
#: Readings of a frame at most: the first, one after filling (text that a neighbour hid
#: from the first shows once the neighbour is gone), and the last, which must find none.
ROUNDS = 4


@dataclass(frozen=True)
class FixedRegion:
    """Boxes to blank in every image of one device and size (CTP's pixel anonymizer
    works so): each box ``(x0, y0, x1, y1)``, in pixels, end exclusive."""

    manufacturer: str
    model: str
    rows: int
    columns: int
    boxes: tuple[tuple[int, int, int, int], ...]

    def applies_to(self, ds) -> bool:
        return (
            str(ds.get("Manufacturer", "")).strip().upper() == self.manufacturer.strip().upper()
            and str(ds.get("ManufacturerModelName", "")).strip().upper() == self.model.strip().upper()
            and int(ds.get("Rows", 0)) == self.rows
            and int(ds.get("Columns", 0)) == self.columns
        )

    @classmethod
    def from_dict(cls, values: dict) -> FixedRegion:
        boxes = tuple(tuple(int(v) for v in box) for box in values.get("boxes", ()))
        if any(len(box) != 4 or box[0] >= box[2] or box[1] >= box[3] for box in boxes):
            raise ValueError("each fixed region box is [x0, y0, x1, y1] with x0 < x1 and y0 < y1")
        return cls(
            str(values.get("manufacturer", "")),
            str(values.get("model", "")),
            int(values["rows"]),
            int(values["columns"]),
            boxes,  # type: ignore[arg-type]
        )


@dataclass
class Redaction:
    """What was done to one file's pixels: the filled boxes (frame, x0, y0, x1, y1),
    how many came from fixed regions, and the text boxes still found after filling
    (none: the text is gone)."""

    pixels: np.ndarray
    boxes: list[tuple[int, int, int, int, int]] = field(default_factory=list)
    fixed: int = 0
    remaining: list[tuple[int, int, int, int]] = field(default_factory=list)
    frames: int = 0

    @property
    def clean(self) -> bool:
        return not self.remaining

    @property
    def area(self) -> int:
        return sum((x1 - x0) * (y1 - y0) for _, x0, y0, x1, y1 in self.boxes)

    def record(self) -> dict:
        """The audit's record of this file: counts and boxes, never the text."""
        return {
            "frames": self.frames,
            "boxes": len(self.boxes),
            "fixed_boxes": self.fixed,
            "area_px": self.area,
            "regions": [list(b) for b in self.boxes],
        }


def redact(ds, fixed_regions: Sequence[FixedRegion] = (), rounds: int = ROUNDS) -> Redaction:
    """Fill the text in `ds`'s pixels (decoded here), and read the result again: text
    found then is filled too, for at most `rounds` readings in all; text still found
    in the last one is left in :attr:`Redaction.remaining`."""
    if rounds < 2:
        raise ValueError("redaction reads a frame at least twice: once to find the text, once to prove it gone")
    pixels = np.array(stored_frames(ds), copy=True)
    result = Redaction(pixels=pixels, frames=len(pixels))
    fixed = [box for region in fixed_regions if region.applies_to(ds) for box in region.boxes]
    for index in range(len(pixels)):
        _redact_frame(ds, result, index, fixed, rounds)
    return result


def _redact_frame(ds, result: Redaction, index: int, fixed: list[Box], rounds: int) -> None:
    """One frame: every view read (:func:`~curate.deid.display.frame_views`), filled,
    and read again, each view over its source's range and with its source's threshold."""
    source = frame_views(ds, result.pixels[index])
    ranges = {name: (float(v.min()), float(v.max())) for name, v in source.items()}
    first = {name: FrameText.of(stretched(v, ranges[name])) for name, v in source.items()}
    shape = source[DISPLAY].shape
    boxes = [box for box in (_clip(box, shape) for box in fixed) if box is not None]
    result.fixed += len(boxes)
    for text in first.values():
        boxes += _boxes_of(text, text.regions + [w[:4] for w in text.words], shape)
    # The stored value this frame displays darkest: black on screen (black in colour).
    darkest = np.unravel_index(int(np.argmin(source[DISPLAY])), shape)
    fill = 0 if result.pixels.ndim == 4 else result.pixels[index][darkest]
    _fill(result, index, fill, boxes)
    filled = bool(boxes)
    left: list[Box] = []
    for round_ in range(1, rounds):
        if not filled:
            break  # the last reading found nothing to fill: it is the proof
        left, boxes = [], []
        for name, values in frame_views(ds, result.pixels[index]).items():
            found = FrameText.of(stretched(values, ranges[name]), first[name].threshold)
            text = found.regions + [w[:4] for w in found.words]
            left += text
            boxes += _boxes_of(found, text, shape)
        if round_ < rounds - 1:
            _fill(result, index, fill, boxes)
        filled = bool(boxes)
    result.remaining += left


def _boxes_of(text: FrameText, boxes: list[Box], shape: tuple[int, int]) -> list[Box]:
    """`boxes` grown by their margins (a region's or a word's) and clipped to the frame."""
    words = {w[:4] for w in text.words}
    grown = [_clip(_grown(box, WORD_MARGIN if box in words else REGION_MARGIN), shape) for box in boxes]
    return [box for box in grown if box is not None]


def _fill(result: Redaction, index: int, fill, boxes: list[Box]) -> None:
    for x0, y0, x1, y1 in boxes:
        result.pixels[index, y0:y1, x0:x1] = fill
        result.boxes.append((index, x0, y0, x1, y1))


Box = tuple[int, int, int, int]


@dataclass
class FrameText:
    """What one displayed frame holds: the stroke threshold it was searched with, the
    candidate regions, those OCR reads as text, the confident words OCR reads on the
    whole frame (box and text), and every token read (letters and digits)."""

    threshold: float
    candidates: list[Box]
    regions: list[Box]
    words: list[tuple[int, int, int, int, str]]
    tokens: set[str]

    @classmethod
    def of(cls, grey: np.ndarray, threshold: float | None = None) -> FrameText:
        threshold = stroke_threshold(grey) if threshold is None else threshold
        candidates = candidate_boxes(grey, threshold)
        regions, tokens = [], set()
        for box, reading in zip(candidates, region_readings(grey, candidates), strict=True):
            tokens |= {_token(text) for text, _ in reading}
            if is_text(box, reading):
                regions.append(box)
        words = [(w.x0, w.y0, w.x1, w.y1, w.text) for w in page_words(grey)]
        tokens |= {_token(w[4]) for w in words}
        return cls(threshold, candidates, regions, words, tokens - {""})


def _token(text: str) -> str:
    return "".join(c for c in text if c.isalnum()).upper()


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _grown(box: Box, fraction: float) -> Box:
    x0, y0, x1, y1 = box
    margin = max(MIN_MARGIN, round(min(x1 - x0, y1 - y0) * fraction))
    return (x0 - margin, y0 - margin, x1 + margin, y1 + margin)


def _clip(box: tuple[int, int, int, int], shape: tuple[int, int]) -> tuple[int, int, int, int] | None:
    rows, columns = shape
    x0, y0, x1, y1 = max(0, box[0]), max(0, box[1]), min(columns, box[2]), min(rows, box[3])
    return (x0, y0, x1, y1) if x0 < x1 and y0 < y1 else None

"""Reading text in an image with Tesseract (Debian's ``tesseract-ocr``, through pytesseract).

Two readings, because neither alone finds all burned-in text:

- the whole frame, upright, in sparse-text mode (``--psm 11``: words scattered over an
  image, as annotations are): a word read with high confidence is text wherever it is;
- each candidate region of :mod:`curate.deid.text_regions`, cut out and read upright if
  it is wide, turned a quarter both ways if it is tall (a film's label often runs up
  its side), all three if it is neither; the regions of a frame are read together, one
  Tesseract run a turn (:func:`region_readings`).

Tesseract reads junk in image texture (film grain, speckle), with confidences that
overlap those of real words in odd type (``DOE^JANE`` is read with 13). So a word on the
whole frame must be read with high confidence, and a region is text when it is shaped
like a line of text and Tesseract reads two letters or digits in it, or when it reads
a confident word there.

The text read decides whether a box is text and is then dropped: it is never logged or
written (the tests compare it with what they burned in).
"""

from __future__ import annotations

import contextlib
import multiprocessing.util
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from curate.errors import CurateError

#: A word on the whole frame is text with at least this many letters and digits at
#: CONFIDENT, or two at CERTAIN (Tesseract's confidence, 0-100).
PAGE_MIN_CHARACTERS, CONFIDENT, CERTAIN = 3, 60, 90
#: A region this elongated (long side over short side), and this thick, is shaped like a
#: line of text (grain and speckle make thinner blobs that Tesseract reads letters in).
LINE_SHAPE, LINE_THICKNESS = 2.0, 10
#: Pixels of the image kept around a region that is read.
CONTEXT = 6


class OcrUnavailable(CurateError, RuntimeError):
    """Tesseract is not installed: no pixel can be redacted."""


@dataclass(frozen=True)
class Word:
    """A word's box in the frame (x0, y0 inclusive; x1, y1 exclusive), Tesseract's
    confidence, and its text (kept in memory only)."""

    x0: int
    y0: int
    x1: int
    y1: int
    confidence: float
    text: str


_FOLDER: str | None = None


@contextlib.contextmanager
def private_files() -> Iterator[str]:
    """Where pytesseract's files go while Tesseract reads: a folder of this process's own
    (0700). pytesseract writes the image, and Tesseract what it read, to files in the
    temporary folder, created under the umask (readable by others, as a rule): the
    pixels and the text of a patient's label."""
    global _FOLDER
    if _FOLDER is None or not os.path.isdir(_FOLDER):
        _FOLDER = tempfile.mkdtemp(prefix="curate-ocr-")
        # Removed at exit, in the main process and in a worker process alike.
        multiprocessing.util.Finalize(
            None, shutil.rmtree, args=(_FOLDER,), kwargs={"ignore_errors": True}, exitpriority=10
        )
    previous, tempfile.tempdir = tempfile.tempdir, _FOLDER
    try:
        yield _FOLDER
    finally:
        tempfile.tempdir = previous


def check_tesseract() -> str:
    """The version of the Tesseract on PATH, or :class:`OcrUnavailable`."""
    if shutil.which("tesseract") is None:
        raise OcrUnavailable("pixels=redact needs Tesseract: apt-get install tesseract-ocr")
    import pytesseract

    return str(pytesseract.get_tesseract_version())


def _characters(text: str) -> int:
    return sum(c.isalnum() for c in text)


def _read(image: np.ndarray, mode: int) -> list[tuple[str, float, int, int, int, int]]:
    import pytesseract
    from PIL import Image

    with private_files():
        data = pytesseract.image_to_data(
            Image.fromarray(np.ascontiguousarray(image)), config=f"--psm {mode}", output_type=pytesseract.Output.DICT
        )
    found = []
    for text, confidence, left, top, width, height in zip(
        data["text"], data["conf"], data["left"], data["top"], data["width"], data["height"], strict=True
    ):
        if text.strip() and width > 0 and height > 0:
            found.append((text.strip(), float(confidence), int(left), int(top), int(width), int(height)))
    return found


def page_words(grey: np.ndarray) -> list[Word]:
    """The words read with high confidence on the whole frame, upright."""
    words = []
    for text, confidence, left, top, width, height in _read(grey, 11):
        characters = _characters(text)
        if (characters >= PAGE_MIN_CHARACTERS and confidence >= CONFIDENT) or (
            characters >= 2 and confidence >= CERTAIN
        ):
            words.append(Word(left, top, left + width, top + height, confidence, text))
    return words


def region_readings(grey: np.ndarray, boxes: list[tuple[int, int, int, int]]) -> list[list[tuple[str, float]]]:
    """What Tesseract reads in each of `boxes`, in the turns each one's shape calls for.

    The regions are read together, one Tesseract run a turn: each cut out with some
    context and made dark ink on white over its own contrast (:func:`_crop`: Tesseract
    binarises a page with one threshold, and the regions differ), and stacked into one
    column with white between them; each word read goes to the region its middle lies
    in."""
    readings: list[list[tuple[str, float]]] = [[] for _ in boxes]
    by_turn: dict[int, list[int]] = {}
    for index, (x0, y0, x1, y1) in enumerate(boxes):
        width, height = x1 - x0 + 2 * CONTEXT, y1 - y0 + 2 * CONTEXT
        turns = (0,) if width >= 1.5 * height else (1, 3) if height >= 1.5 * width else (0, 1, 3)
        for turn in turns:
            by_turn.setdefault(turn, []).append(index)
    for turn, indices in by_turn.items():
        for chunk in _chunks([np.rot90(_crop(grey, boxes[i]), turn) for i in indices], indices):
            mosaic, spans = _mosaic([crop for crop, _ in chunk])
            for text, confidence, _, top, _, height in _read(mosaic, 11):
                middle = top + height / 2
                for (start, end), (_, index) in zip(spans, chunk, strict=True):
                    if start <= middle < end:
                        readings[index].append((text, confidence))
                        break
    return readings


#: The tallest stack of regions read in one Tesseract run, in pixels.
MOSAIC_HEIGHT = 4000
GAP = 24


def _crop(grey: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """A region cut out with some context, as dark ink on white: each pixel by how far
    it lies from the region's ground (its border's median), bright or dark, full ink
    from the level most of its strokes reach (a bright rule under faint text must not
    set the scale, or the text would fade into the white)."""
    x0, y0, x1, y1 = box
    crop = grey[max(0, y0 - CONTEXT) : y1 + CONTEXT, max(0, x0 - CONTEXT) : x1 + CONTEXT].astype(np.float32)
    border = np.concatenate([crop[0], crop[-1], crop[:, 0], crop[:, -1]])
    distance = np.abs(crop - float(np.median(border)))
    strokes = distance[distance > 0.2 * float(distance.max())]
    full = float(np.percentile(strokes, 60)) if strokes.size else 0.0
    if full <= 0:
        return np.full(crop.shape, 255, np.uint8)
    return (255.0 - np.clip(distance / full, 0.0, 1.0) * 255.0).astype(np.uint8)


def _chunks(crops: list[np.ndarray], indices: list[int]) -> list[list[tuple[np.ndarray, int]]]:
    chunks, current, height = [], [], 0
    for crop, index in zip(crops, indices, strict=True):
        if current and height + crop.shape[0] + GAP > MOSAIC_HEIGHT:
            chunks.append(current)
            current, height = [], 0
        current.append((crop, index))
        height += crop.shape[0] + GAP
    if current:
        chunks.append(current)
    return chunks


def _mosaic(crops: list[np.ndarray]) -> tuple[np.ndarray, list[tuple[int, int]]]:
    width = max(c.shape[1] for c in crops) + 2 * GAP
    height = sum(c.shape[0] + GAP for c in crops) + GAP
    mosaic = np.full((height, width), 255, np.uint8)
    spans, top = [], GAP
    for crop in crops:
        mosaic[top : top + crop.shape[0], GAP : GAP + crop.shape[1]] = crop
        spans.append((top - GAP // 2, top + crop.shape[0] + GAP // 2))
        top += crop.shape[0] + GAP
    return mosaic, spans


def is_text(box: tuple[int, int, int, int], reading: list[tuple[str, float]]) -> bool:
    """Whether a candidate region is text: shaped like a line and holding two letters
    or digits that Tesseract reads (at any confidence), or holding a word it reads with
    confidence."""
    x0, y0, x1, y1 = box
    long_side, short_side = max(x1 - x0, y1 - y0), min(x1 - x0, y1 - y0)
    line = long_side >= LINE_SHAPE * short_side and short_side >= LINE_THICKNESS
    if line and sum(_characters(text) for text, _ in reading) >= 2:
        return True
    return any(_characters(text) >= 2 and confidence >= CONFIDENT for text, confidence in reading)

"""Where text may be in an image: the regions of strong, thin strokes.

Burned-in text is drawn to be read: its strokes stand out from what is around them much
more than film grain or ultrasound speckle does, and they are thin. A white and a black
top-hat (the image less its opening; its closing less the image) with a 15-pixel square
keep exactly such structures, bright or dark, and fill the gaps between the strokes of
a word, so that each word or line becomes one blob; the blobs above the image's own
noise (six robust standard deviations, at least 24 grey levels), large enough to be a
character and no thicker than a line of large text, are the candidates. Each is then
read by OCR (:mod:`curate.deid.ocr`), which decides whether it is text.
"""

from __future__ import annotations

import numpy as np

#: Side of the top-hats' square: strokes up to this wide, gaps up to this wide filled.
STROKE = 15
#: The least contrast (grey levels of 255) a stroke must have over its surroundings.
MIN_CONTRAST = 24.0
NOISE_FACTOR = 6.0
#: The part of a blob kept: where the response is at least this share of its peak.
STRONG = 0.5
#: A candidate's sides, in pixels: at least a small character, at most a thick line.
MIN_SIDE, MIN_LONG_SIDE, MAX_THICKNESS = 6, 10, 120


def stroke_threshold(grey: np.ndarray) -> float:
    """The contrast a stroke needs in `grey`: six robust standard deviations of its
    pixel-to-pixel noise (where the display does not clip it), at least
    :data:`MIN_CONTRAST`. The noise is read from the differences of horizontal
    neighbours (a smooth image's neighbours differ by its noise alone)."""
    left, right = grey[:, :-1].astype(np.int16), grey[:, 1:].astype(np.int16)
    differences = right - left
    shown = (left > 0) & (left < 255) & (right > 0) & (right < 255)  # clipped pixels show no noise
    if shown.sum() >= 0.05 * differences.size:
        differences = differences[shown]
    spread = float(np.median(np.abs(differences - np.median(differences)))) * 1.4826 / np.sqrt(2.0)
    return max(MIN_CONTRAST, NOISE_FACTOR * spread)


def candidate_boxes(grey: np.ndarray, threshold: float | None = None) -> list[tuple[int, int, int, int]]:
    """Boxes (x0, y0, x1, y1; end exclusive) of the blobs of strong thin strokes in
    `grey` (2-D uint8, as displayed); `threshold`: :func:`stroke_threshold` of `grey`
    unless given (a redacted frame is searched again with its source's)."""
    from scipy import ndimage

    size = (STROKE, STROKE)
    image = grey.astype(np.int16)
    response = np.maximum(
        image - ndimage.grey_opening(grey, size=size), ndimage.grey_closing(grey, size=size).astype(np.int16) - image
    ).astype(np.float32)
    limit = stroke_threshold(grey) if threshold is None else threshold
    strokes = response > limit
    strokes = ndimage.binary_closing(strokes, structure=np.ones((5, 5), bool))
    labels, _ = ndimage.label(strokes)
    boxes = []
    for label, (rows, columns) in enumerate(ndimage.find_objects(labels), start=1):
        # The blob's own strongest part: text's strokes stand out more than an edge of
        # the anatomy that a word touches and that the closing joined to it.
        inside = labels[rows, columns] == label
        strength = np.where(inside, response[rows, columns], 0.0)
        peak = float(strength.max())
        strong = _box_of(strength >= STRONG * peak, rows, columns)
        whole = (columns.start, rows.start, columns.stop, rows.stop)
        found = [strong]
        if _area(strong) < 0.5 * _area(whole):
            # The strongest part alone may be a rule under fainter text, or an edge
            # beside it: then the rest of the blob, and the whole blob, are candidates too.
            weak = (strength > limit) & (strength < STRONG * peak)
            found += [whole] + ([_box_of(weak, rows, columns)] if weak.any() else [])
        boxes += [box for box in found if _fits(box)]
    return boxes


def _box_of(mask: np.ndarray, rows: slice, columns: slice) -> tuple[int, int, int, int]:
    """The box of `mask`'s true pixels, in the frame's coordinates (`mask` is the blob's
    slice at `rows`, `columns`)."""
    ys, xs = np.nonzero(mask)
    return (
        int(columns.start + xs.min()),
        int(rows.start + ys.min()),
        int(columns.start + xs.max() + 1),
        int(rows.start + ys.max() + 1),
    )


def _area(box: tuple[int, int, int, int]) -> int:
    return (box[2] - box[0]) * (box[3] - box[1])


def _fits(box: tuple[int, int, int, int]) -> bool:
    """Whether a box is sized like a character, a word or a line of text."""
    width, height = box[2] - box[0], box[3] - box[1]
    return (
        min(height, width) >= MIN_SIDE and max(height, width) >= MIN_LONG_SIDE and min(height, width) <= MAX_THICKNESS
    )

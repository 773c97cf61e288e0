"""An image as a reader may see it: the views of each frame that OCR reads, 8-bit grey.

Text burned into pixels is drawn to be read on screen, so it is looked for on the image
as displayed: the Modality LUT (rescale), then the VOI LUT or window, MONOCHROME1
inverted, colour images (RGB, YBR) as their luminance, and every frame of a
multi-frame image. A reader can show it otherwise, so two more views are read where
they differ:

- ``stored``: the values after the Modality LUT over their whole range, where a window
  or VOI LUT would hide what lies outside it (a viewer re-windows);
- ``chroma``: a colour image's saturation (its largest channel less its smallest),
  where text differs from its ground in hue, not brightness (red on green).

Each view is stretched to 0-255 over a range fixed by the source frame, so that the
frame redacted is shown as its source was.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

DISPLAY, STORED, CHROMA = "display", "stored", "chroma"


def stored_frames(ds) -> np.ndarray:
    """The stored pixel values, always (frames, rows, columns[, samples])."""
    pixels = ds.pixel_array
    frames = int(ds.get("NumberOfFrames") or 1)
    samples = int(ds.get("SamplesPerPixel") or 1)
    if frames == 1:
        pixels = pixels[np.newaxis]
    if samples > 1 and pixels.ndim == 3:  # one colour frame read without its frame axis
        pixels = pixels[np.newaxis]
    return pixels


def frame_views(ds, frame: np.ndarray) -> dict[str, np.ndarray]:
    """The views of one frame (its stored values), unstretched (float, higher is lighter)."""
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    if frame.ndim == 3:  # colour: pydicom gives YBR images as RGB already
        rgb = frame[..., :3].astype(np.float32)
        return {DISPLAY: rgb @ np.array([0.299, 0.587, 0.114], np.float32), CHROMA: rgb.max(axis=-1) - rgb.min(axis=-1)}
    values = apply_modality_lut(frame, ds).astype(np.float32)
    inverted = str(ds.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1"
    views = {}
    if "WindowCenter" in ds or "VOILUTSequence" in ds:
        try:
            windowed = apply_voi_lut(values, ds).astype(np.float32)
        except (ValueError, TypeError, IndexError):  # a broken window: shown over its range
            windowed = None
        if windowed is not None:
            views[DISPLAY] = -windowed if inverted else windowed
            views[STORED] = -values if inverted else values
            return views
    views[DISPLAY] = -values if inverted else values
    return views


def view_ranges(ds, pixels: np.ndarray) -> list[dict[str, tuple[float, float]]]:
    """Each frame's range of each view's values, before they are stretched."""
    return [{name: (float(v.min()), float(v.max())) for name, v in frame_views(ds, frame).items()} for frame in pixels]


def stretched(values: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
    low, high = bounds
    if high <= low:
        return np.zeros(values.shape, np.uint8)
    return np.clip((values - low) * (255.0 / (high - low)), 0, 255).astype(np.uint8)


def displayed(ds, pixels: np.ndarray) -> Iterator[np.ndarray]:
    """Each frame of `pixels` (as :func:`stored_frames` gives them) as it is displayed,
    stretched over its own range: 2-D uint8, light where the screen is light."""
    for frame in pixels:
        values = frame_views(ds, frame)[DISPLAY]
        yield stretched(values, (float(values.min()), float(values.max())))

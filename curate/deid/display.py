"""An image as a reader sees it: the frames OCR reads, 8-bit grey, light where it is light.

Text burned into pixels is drawn to be read on screen, so it is looked for on the image
as displayed: the Modality LUT (rescale), then the VOI LUT or window, MONOCHROME1
inverted, colour images (RGB, YBR) as their luminance, and every frame of a
multi-frame image. Each frame is stretched to 0-255 over its own range.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


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


def displayed(ds, pixels: np.ndarray, ranges: list[tuple[float, float]] | None = None) -> Iterator[np.ndarray]:
    """Each frame of `pixels` (as :func:`stored_frames` gives them) as it is displayed:
    2-D uint8, light where the screen is light, stretched over the frame's range (or
    over `ranges[frame]`, the range of the frame it was redacted from: filling text in
    must not brighten or darken the rest)."""
    for index, grey in enumerate(_values(ds, pixels)):
        yield _stretch(grey, ranges[index] if ranges is not None else (float(grey.min()), float(grey.max())))


def display_ranges(ds, pixels: np.ndarray) -> list[tuple[float, float]]:
    """Each frame's range of displayed values, before :func:`displayed` stretches it."""
    return [(float(grey.min()), float(grey.max())) for grey in _values(ds, pixels)]


def _values(ds, pixels: np.ndarray) -> Iterator[np.ndarray]:
    """Each frame's displayed values, unstretched (float, higher is lighter)."""
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    for frame in pixels:
        if frame.ndim == 3:  # colour: pydicom gives YBR images as RGB already
            yield frame[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
            continue
        grey = apply_modality_lut(frame, ds).astype(np.float32)
        if "WindowCenter" in ds or "VOILUTSequence" in ds:
            try:
                grey = apply_voi_lut(grey, ds).astype(np.float32)
            except (ValueError, TypeError, IndexError):  # a broken window: shown over its range
                pass
        yield -grey if photometric == "MONOCHROME1" else grey


def _stretch(grey: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
    low, high = bounds
    if high <= low:
        return np.zeros(grey.shape, np.uint8)
    return np.clip((grey - low) * (255.0 / (high - low)), 0, 255).astype(np.uint8)

"""From stored pixels to what a model should see: the same steps for training, export
and inspection.

1. Modality LUT (Rescale Slope/Intercept, or a Modality LUT Sequence);
2. VOI: the first window (center/width) when the file gives one, else its VOI LUT,
   else the image's own range;
3. scaled to [0, 1]; MONOCHROME1 (high values dark) is inverted so that bright means
   dense in every image.
"""

from __future__ import annotations

import numpy as np


def _first(value) -> float | None:
    if value is None:
        return None
    try:
        return float(value[0]) if hasattr(value, "__len__") and not isinstance(value, str) else float(value)
    except (TypeError, ValueError, IndexError):
        return None


def to_unit_range(ds, array: np.ndarray | None = None) -> np.ndarray:
    """The image of `ds` as float32 in [0, 1], bright = dense (one frame: the first)."""
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    pixels = ds.pixel_array if array is None else array
    if pixels.ndim == 3 and int(getattr(ds, "SamplesPerPixel", 1) or 1) == 1:
        pixels = pixels[0]  # multi-frame: the first frame
    values = apply_modality_lut(pixels, ds).astype(np.float32)
    center, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    if center is not None and width is not None and width > 1:
        low, high = center - width / 2, center + width / 2
    else:
        if "VOILUTSequence" in ds:
            values = apply_voi_lut(values, ds, index=0).astype(np.float32)
        low, high = float(values.min()), float(values.max())
    scaled = np.clip((values - low) / max(high - low, 1e-6), 0.0, 1.0)
    if str(ds.get("PhotometricInterpretation", "")).strip().upper() == "MONOCHROME1":
        scaled = 1.0 - scaled
    return scaled.astype(np.float32)


def resized(image: np.ndarray, size: int) -> np.ndarray:
    """`image` (2-D, [0, 1]) with its longer side `size` pixels, aspect kept."""
    from PIL import Image

    height, width = image.shape[:2]
    scale = size / max(height, width)
    target = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(image.astype(np.float32), mode="F").resize(target, Image.Resampling.BILINEAR))


def to_png16(image: np.ndarray) -> bytes:
    """A 16-bit greyscale PNG of `image` ([0, 1])."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.round(np.clip(image, 0, 1) * 65535).astype(np.uint16)).save(buffer, format="PNG")
    return buffer.getvalue()

"""Reading a scanned film: 8- or 16-bit grey PNG, TIFF or JPEG, through Pillow.

Film is grey: a colour scan is taken only when its channels are equal (a scanner that
saves grey as RGB); other colour is refused, as is a file of several pages (one film a
file). A JPEG, or a TIFF compressed with JPEG, was compressed lossily, and the DICOM file
says so.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from curate.digitize.manifest import FilmRowError

#: Pixels a film may have (a 14 x 17 inch film at 1,000 dpi has 238 million): larger is
#: refused before it is decoded, as a decompression bomb would be.
MAX_PIXELS = 250_000_000


@dataclass
class FilmImage:
    pixels: np.ndarray  # 2-D, uint8 or uint16, row-major as displayed
    lossy: bool  # the file was compressed lossily (JPEG)
    dpi: float | None  # the resolution the file records, if any
    digest: str  # SHA-256 of the file's bytes

    @property
    def bits(self) -> int:
        return 8 if self.pixels.dtype == np.uint8 else 16


def image_digest(path: Path) -> tuple[str, bytes]:
    """The SHA-256 of the file, and its bytes (read once)."""
    data = path.read_bytes()
    return hashlib.sha256(data).hexdigest(), data


def read_film(path: Path, data: bytes | None = None, digest: str | None = None) -> FilmImage:
    """The film scanned into `path` (`data`: its bytes, when already read)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if data is None:
        digest, data = image_digest(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            previous, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, MAX_PIXELS
            try:
                image = Image.open(io.BytesIO(data))
                image.load()
            finally:
                Image.MAX_IMAGE_PIXELS = previous
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        if isinstance(e, UnidentifiedImageError):
            raise FilmRowError("the file is not an image Pillow can read (PNG, TIFF or JPEG)") from None
        raise FilmRowError(f"the image has more than {MAX_PIXELS:,} pixels") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise FilmRowError(f"the image cannot be decoded ({type(e).__name__}: {e})") from None
    if image.format not in ("PNG", "TIFF", "JPEG", "MPO"):
        raise FilmRowError(f"the image is {image.format}, not PNG, TIFF or JPEG")
    if getattr(image, "n_frames", 1) > 1:
        raise FilmRowError(f"the image has {image.n_frames} pages (one film a file)")
    lossy = image.format in ("JPEG", "MPO") or str(image.info.get("compression", "")).lower() in ("jpeg", "tiff_jpeg")
    dpi = _dpi(image.info.get("dpi"))
    image = ImageOps.exif_transpose(image)
    return FilmImage(pixels=_grey(image), lossy=lossy, dpi=dpi, digest=digest or hashlib.sha256(data).hexdigest())


def _grey(image) -> np.ndarray:
    mode = image.mode
    if mode == "1":
        return np.asarray(image.convert("L"))
    if mode == "L":
        return np.asarray(image)
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        return np.asarray(image).astype(np.uint16, copy=False)
    if mode == "I":
        pixels = np.asarray(image)
        if pixels.size and (pixels.min() < 0 or pixels.max() > 0xFFFF):
            raise FilmRowError("the image's values do not fit in 16 bits")
        return pixels.astype(np.uint16)
    if mode in ("LA", "RGBA", "PA") and np.asarray(image.getchannel("A")).min() < 255:
        raise FilmRowError("the image is transparent in places (a film scan is not)")
    if mode in ("RGB", "RGBA", "YCbCr", "P", "PA"):
        rgb = np.asarray(image.convert("RGB"))
        if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2])):
            raise FilmRowError("the image is in colour (films are imported as grey: save the scan as grey)")
        return np.ascontiguousarray(rgb[..., 0])
    if mode == "LA":
        return np.asarray(image.getchannel("L"))
    raise FilmRowError(f"the image's pixel mode {mode} is not 8- or 16-bit grey")


def _dpi(value) -> float | None:
    try:
        x, y = (float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return x if x > 1 and abs(x - y) < 0.01 * x else None

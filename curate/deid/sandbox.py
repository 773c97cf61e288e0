"""Images with text burned in where it is known: for the redaction tests and benchmark.

Each word is drawn on a layer of its own (so its true box is the box of its ink, not
of the font's metrics), turned if asked, and laid onto a film-like or a flat
background; the true boxes come back with the image.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/truetype/liberation"))
FONTS = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "LiberationSans-Regular.ttf", "LiberationMono-Regular.ttf")


@dataclass(frozen=True)
class Burned:
    """One word to burn in: its text, font file name, size (pixels), top-left corner,
    quarter turns anticlockwise, and brightness (0-1 of the image's range)."""

    text: str
    x: int
    y: int
    size: int = 32
    font: str = "DejaVuSans.ttf"
    turn: int = 0
    brightness: float = 1.0


def font_path(name: str) -> Path | None:
    for folder in FONT_DIRS:
        if (folder / name).exists():
            return folder / name
    return None


def burn(background: np.ndarray, words: list[Burned]) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """`background` (2-D, any unsigned dtype) with `words` drawn in, and each word's true
    box (x0, y0, x1, y1; end exclusive)."""
    from PIL import Image, ImageDraw, ImageFont

    image = background.copy()
    top = float(np.iinfo(image.dtype).max) if image.dtype.kind == "u" else float(image.max())
    boxes = []
    for word in words:
        path = font_path(word.font)
        if path is None:
            raise FileNotFoundError(
                f"font {word.font} is not installed (apt-get install fonts-dejavu fonts-liberation)"
            )
        font = ImageFont.truetype(str(path), word.size)
        width, height = int(font.getlength(word.text)) + word.size, word.size * 2
        layer = Image.new("L", (width, height), 0)
        ImageDraw.Draw(layer).text((word.size // 2, word.size // 2), word.text, font=font, fill=255)
        ink = np.rot90(np.asarray(layer), word.turn)
        rows, columns = np.nonzero(ink > 0)
        ink = ink[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1]
        h, w = ink.shape
        region = image[word.y : word.y + h, word.x : word.x + w]
        if region.shape != ink.shape:
            raise ValueError(f"the word {word.text!r} does not fit in the image at ({word.x}, {word.y})")
        alpha = ink.astype(np.float32) / 255.0
        region[...] = (region * (1 - alpha) + word.brightness * top * alpha).astype(image.dtype)
        boxes.append((word.x, word.y, word.x + w, word.y + h))
    return image, boxes


def flat(rows: int, columns: int, value: int, dtype=np.uint8) -> np.ndarray:
    return np.full((rows, columns), value, dtype)


def image_dataset(pixels: np.ndarray, photometric: str = "MONOCHROME2", **attributes):
    """A Secondary Capture data set holding `pixels` (frames, rows, columns[, 3]) or
    (rows, columns[, 3]), uncompressed, with `attributes` set by keyword."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    colour = pixels.shape[-1] == 3 and pixels.ndim in (3, 4) and photometric in ("RGB", "YBR_FULL")
    frames = pixels.shape[0] if pixels.ndim == (4 if colour else 3) else 1
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality = "OT"
    ds.ConversionType = "WSD"
    # The SC IOD's Type 2 attributes: present, empty unless `attributes` says otherwise.
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime"):
        setattr(ds, keyword, "")
    for keyword in ("ReferringPhysicianName", "StudyID", "AccessionNumber", "Laterality", "PatientOrientation"):
        setattr(ds, keyword, "")
    ds.SeriesNumber, ds.InstanceNumber = 1, 1
    ds.Rows, ds.Columns = pixels.shape[-3:-1] if colour else pixels.shape[-2:]
    ds.SamplesPerPixel = 3 if colour else 1
    if colour:
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = ds.BitsStored = pixels.dtype.itemsize * 8
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 0
    if frames > 1:
        ds.NumberOfFrames = frames
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    return ds

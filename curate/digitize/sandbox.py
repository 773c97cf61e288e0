"""Generated film scans and their manifest: for the tests, the benchmark and the demo.

The images are smooth like a radiograph (a bright body on a dark background, with
noise), in the formats scanners write: 16-bit PNG and TIFF, 8-bit PNG and JPEG.
"""

from __future__ import annotations

import csv
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from curate.digitize.manifest import REQUIRED_COLUMNS

#: (suffix, bits) of the formats generated, in turn.
FORMATS = (("png", 16), ("tif", 16), ("png", 8), ("jpg", 8))
VIEWS = ("PA", "LATERAL", "AP")


@dataclass
class GeneratedFilms:
    source: Path
    manifest: Path
    rows: list[dict] = field(default_factory=list)


def film_pixels(rows: int, columns: int, bits: int, rng: np.random.Generator) -> np.ndarray:
    """A film-like image: an elliptical body, brighter in the middle, on a dark field."""
    y, x = np.mgrid[0:rows, 0:columns].astype(np.float32)
    cy, cx = rows * rng.uniform(0.45, 0.55), columns * rng.uniform(0.45, 0.55)
    r = ((y - cy) / (rows * 0.42)) ** 2 + ((x - cx) / (columns * 0.36)) ** 2
    body = np.clip(1.0 - r, 0.0, 1.0) ** 0.5
    image = 0.08 + 0.8 * body + rng.normal(0.0, 0.02, size=(rows, columns)).astype(np.float32)
    top = (1 << bits) - 1
    return (np.clip(image, 0.0, 1.0) * top).astype(np.uint8 if bits == 8 else np.uint16)


def save_image(pixels: np.ndarray, path: Path, dpi: float | None = None) -> None:
    from PIL import Image

    image = Image.fromarray(pixels)
    options = {"dpi": (dpi, dpi)} if dpi else {}
    if path.suffix == ".jpg":
        options["quality"] = 92
    image.save(path, **options)


def generate_films(
    out: str | os.PathLike[str], count: int = 12, seed: int = 0, rows: int = 300, columns: int = 240
) -> GeneratedFilms:
    """`count` film scans under ``out/scans`` and ``out/manifest.csv`` naming them; two
    films a study (a frontal and a lateral view) of one patient and date."""
    out = Path(out)
    source = out / "scans"
    source.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    films = GeneratedFilms(source=source, manifest=out / "manifest.csv")
    for number in range(count):
        suffix, bits = FORMATS[number % len(FORMATS)]
        study = number // 2
        name = f"patient {study:03d}/film {number:04d}.{suffix}"
        path = source / name
        path.parent.mkdir(parents=True, exist_ok=True)
        save_image(film_pixels(rows, columns, bits, rng), path)
        year = 1985 + study % 20
        born = year - random.Random(seed * 100_003 + study).randrange(20, 80)
        films.rows.append(
            {
                "file": name,
                "patient_id": f"FILM{study:05d}",
                "patient_name": f"Film^Patient{study}",
                "birth_date": f"{born}0{1 + study % 9}15",
                "sex": "MF"[study % 2],
                "study_date": f"{year}-0{1 + study % 9}-1{study % 10}",
                "description": "CHEST",
                "body_part": "CHEST",
                "view": VIEWS[number % 2],
                "laterality": "",
                "dpi": "150",
                "notes": "generated",
            }
        )
    with films.manifest.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[*REQUIRED_COLUMNS, "notes"])
        writer.writeheader()
        writer.writerows(films.rows)
    return films

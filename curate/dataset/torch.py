"""A curated dataset version as a PyTorch dataset (``pip install curate[torch]``).

``CuratedDataset(version_dir, split="train")`` yields ``(image, label)``: the image a
float32 tensor ``(1, H, W)`` in [0, 1] with the Modality LUT, the window (or VOI LUT)
and MONOCHROME1 inversion applied (:mod:`curate.dataset.images`), decoded from DICOM by
pydicom and its plugins (JPEG, JPEG 2000, JPEG-LS, RLE), or read from the version's
exported PNG16/NPY images when it has them (``source="auto"``); the label an index into
``classes`` (sorted labels of the whole version, so every split agrees). It holds only
paths and labels, so it works with ``DataLoader(num_workers > 0)``; it runs on the CPU.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from curate.dataset.images import resized, to_unit_range
from curate.dataset.layout import MANIFEST
from curate.errors import ConfigError, DatasetError


class CuratedDataset(Dataset):
    def __init__(
        self,
        version_dir: str | os.PathLike[str],
        split: str | None = "train",
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        size: int | None = None,
        source: str = "auto",
    ):
        if source not in ("auto", "dicom", "export"):
            raise ConfigError(f"source must be auto, dicom or export, not {source!r}")
        self.root = Path(version_dir)
        manifest = pd.read_parquet(self.root / MANIFEST)
        exported = "image_path" in manifest and manifest["image_path"].notna().all() and len(manifest) > 0
        if source == "export" and not exported:
            raise DatasetError(f"{version_dir} was built without an image export (export.format in the spec)")
        self.from_export = exported and source in ("auto", "export")
        labels = manifest["label"].dropna()
        self.classes: list[str] = sorted(labels.unique())
        if split is not None:
            if split not in set(manifest["split"]):
                raise DatasetError(f"{version_dir} has no {split!r} split (it has {sorted(set(manifest['split']))})")
            manifest = manifest[manifest["split"] == split]
        self.paths: list[str] = list(manifest["image_path" if self.from_export else "path"])
        index = {c: i for i, c in enumerate(self.classes)}
        self.targets: list[int] = [
            index.get(label, -1) if isinstance(label, str) else -1 for label in manifest["label"]
        ]
        self.transform = transform
        self.size = size

    def __len__(self) -> int:
        return len(self.paths)

    def _image(self, path: Path) -> np.ndarray:
        if path.suffix == ".png":
            from PIL import Image

            return np.asarray(Image.open(path), dtype=np.float32) / 65535.0
        if path.suffix == ".npy":
            return np.load(path).astype(np.float32)
        import pydicom

        image = to_unit_range(pydicom.dcmread(path))
        return image.mean(axis=-1) if image.ndim == 3 else image  # colour: the luminance

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image = self._image(self.root / self.paths[i])
        if self.size is not None:
            image = resized(image, self.size)
        tensor = torch.from_numpy(np.array(image, dtype=np.float32, copy=True)).unsqueeze(0)
        if self.transform is not None:
            tensor = self.transform(tensor)
        return tensor, self.targets[i]

"""CuratedDataset: tensors from a built version, MONOCHROME1 inverted, compressed files
decoded, DataLoader with worker processes."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from conftest import testdata
from dicom_factory import image_dataset, write
from test_deid_engine import KEY

from curate.dataset import DatasetSpec, build_dataset
from curate.index import build_index

try:
    import torch
    from torch.utils.data import DataLoader
except ImportError:  # the [torch] extra is optional; CI installs it and requires it
    if os.environ.get("CURATE_REQUIRE_TORCH"):
        raise
    pytest.skip("torch is not installed (pip install curate[torch])", allow_module_level=True)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def version(tmp_path_factory):
    root = tmp_path_factory.mktemp("torch")
    src = root / "src"
    for i in range(8):
        photometric = "MONOCHROME1" if i % 2 else "MONOCHROME2"
        ds = image_dataset(
            PatientID=f"P{i}", PhotometricInterpretation=photometric, ViewPosition="PA" if i < 4 else "LL"
        )
        ds.PixelData = (np.arange(64, dtype=np.uint16) + i).tobytes()
        write(ds, src / f"{i}.dcm")
    # A chest PA radiograph in JPEG 2000 (a secondary capture would be held back).
    shutil.copy(testdata("RG1_J2KR.dcm"), src / "j2k.dcm")
    build_index(src, root / "idx", progress=False)
    spec = DatasetSpec.from_dict({"name": "t", "label": "view", "split": {"train": 1.0, "val": 0.0, "test": 0.0}})
    return build_dataset(spec, root / "idx", root / "datasets", KEY, workers=1).path


def test_items_are_unit_range_tensors_with_labels(version):
    from curate.torch import CuratedDataset

    data = CuratedDataset(version, split="train")
    assert len(data) == 9 and data.classes == ["LATERAL", "PA"]
    image, label = data[0]
    assert image.dtype == torch.float32 and image.shape[0] == 1
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    assert label in (0, 1, -1)


def test_monochrome1_comes_out_inverted(version):
    import pandas as pd

    from curate.torch import CuratedDataset

    data = CuratedDataset(version, split="train")
    manifest = pd.read_parquet(version / "manifest.parquet")
    kinds = dict(zip(manifest.path, manifest.photometric, strict=True))
    ramps = [
        data[i][0][0]
        for i, path in enumerate(data.paths)
        if kinds[path] in ("MONOCHROME1", "MONOCHROME2") and data[i][0].shape[-1] == 8
    ]
    firsts = {kinds[p]: data[i][0][0] for i, p in enumerate(data.paths) if data[i][0].shape[-1] == 8}
    assert len(ramps) == 8
    # A ramp rising left to right: bright on the right in MONOCHROME2, dark in MONOCHROME1.
    assert firsts["MONOCHROME2"][0, 0] < firsts["MONOCHROME2"][-1, -1]
    assert firsts["MONOCHROME1"][0, 0] > firsts["MONOCHROME1"][-1, -1]


def test_compressed_file_decodes(version):
    from curate.torch import CuratedDataset

    data = CuratedDataset(version, split="train", size=64)
    shapes = [data[i][0].shape for i in range(len(data))]
    assert (1, 64, 60) in shapes, shapes  # RG1_J2KR.dcm is 1955 x 1841


def test_dataloader_with_worker_processes(version):
    from curate.torch import CuratedDataset

    data = CuratedDataset(version, split="train", size=8)
    loader = DataLoader(
        data,
        batch_size=3,
        num_workers=2,
        shuffle=False,
        collate_fn=lambda batch: (torch.stack([b[0] for b in batch if b[0].shape[-1] == 8]), [b[1] for b in batch]),
    )
    seen = 0
    for images, labels in loader:
        assert images.ndim == 4 and images.shape[1:] == (1, 8, 8)
        seen += len(labels)
    assert seen == 9


@pytest.mark.parametrize("format_", ["png16", "npy"])
def test_exported_images_load_like_the_dicom(tmp_path, format_):
    from curate.torch import CuratedDataset

    src = tmp_path / "src"
    for i in range(4):
        ds = image_dataset(
            PatientID=f"E{i}", PhotometricInterpretation="MONOCHROME1" if i % 2 else "MONOCHROME2", ViewPosition="PA"
        )
        ds.PixelData = (np.arange(64, dtype=np.uint16) * (i + 1)).tobytes()
        write(ds, src / f"{i}.dcm")
    build_index(src, tmp_path / "idx", progress=False)
    spec = DatasetSpec.from_dict(
        {
            "name": "e",
            "label": "view",
            "split": {"train": 1.0, "val": 0.0, "test": 0.0},
            "export": {"format": format_, "size": 8},
        }
    )
    version = build_dataset(spec, tmp_path / "idx", tmp_path / "datasets", KEY, workers=1).path
    exported = CuratedDataset(version, split="train")
    assert exported.from_export and all(p.startswith("images/") for p in exported.paths)
    from_dicom = CuratedDataset(version, split="train", source="dicom")
    for i in range(len(exported)):
        assert torch.allclose(exported[i][0], from_dicom[i][0], atol=2e-3), "the export holds what the loader computes"
    assert json_of(version)["export"]["format"] == format_


def json_of(version):
    import json

    return json.loads((version / "dataset.json").read_text())

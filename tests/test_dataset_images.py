"""Pixels as a model sees them: LUTs applied, MONOCHROME1 inverted, resized, PNG16."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from dicom_factory import image_dataset
from PIL import Image
from pydicom.data import get_testdata_file

from curate.dataset.images import resized, to_png16, to_unit_range


def ramp(photometric: str, **attrs):
    """An 8x8 image whose stored values run 0..63, as read from a file."""
    ds = image_dataset(PhotometricInterpretation=photometric, **attrs)
    ds.PixelData = np.arange(64, dtype=np.uint16).tobytes()
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    return ds


def test_monochrome1_is_inverted():
    two = to_unit_range(ramp("MONOCHROME2"))
    one = to_unit_range(ramp("MONOCHROME1"))
    assert two[0, 0] == 0.0 and two[-1, -1] == 1.0
    assert np.allclose(one, 1.0 - two)


def test_window_and_rescale_are_applied():
    ds = ramp("MONOCHROME2", RescaleSlope="2", RescaleIntercept="-10", WindowCenter="40", WindowWidth="40")
    image = to_unit_range(ds)
    # Stored 0..63 -> -10..116; window 20..60: stored 15 -> 20 (black), stored 35 -> 60 (white).
    flat = image.ravel()
    assert flat[15] == 0.0 and flat[35] == 1.0 and 0 < flat[25] < 1


def test_a_real_monochrome1_radiograph():
    path = get_testdata_file("RG1_UNCR.dcm", download=False)
    if path is None:
        pytest.skip("pydicom-data's RG1_UNCR.dcm is not installed")
    ds = pydicom.dcmread(path)
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    image = to_unit_range(ds)
    assert image.shape == (ds.Rows, ds.Columns) and image.dtype == np.float32
    raw = ds.pixel_array.astype(np.float32)
    # Inverted: where stored values are high, the image is dark.
    assert np.corrcoef(raw.ravel()[::97], image.ravel()[::97])[0, 1] < -0.9
    small = resized(image, 256)
    assert max(small.shape) == 256 and abs(small.shape[0] / small.shape[1] - ds.Rows / ds.Columns) < 0.01
    png = Image.open(io.BytesIO(to_png16(small)))
    assert png.mode.startswith("I;16") and png.size == (small.shape[1], small.shape[0])

"""Native Pixel Data's unused bits (where retired overlays were drawn) carry nothing after
de-identification; every stored bit stays as it was."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from conftest import testdata
from dicom_factory import image_dataset, write
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from test_deid_engine import KEY

from curate.deid import Options
from curate.deid.unused_bits import canonical_pixels
from curate.deid.worker import deidentify_file

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
ROWS = COLUMNS = 64


def overlay_plane(rows: int = ROWS, columns: int = COLUMNS) -> np.ndarray:
    """A bit plane with a block of 'text' drawn in it."""
    plane = np.zeros((rows, columns), dtype=np.uint16)
    plane[10:20, 5:60:3] = 1
    return plane


def embedded_overlay_file(path, signed: bool = False, syntax: str = ExplicitVRLittleEndian, bit: int = 12):
    """12 stored bits in 16, an overlay drawn at `bit` (the retired embedded overlay,
    declared in group 6000), and the stored values themselves random."""
    rng = np.random.default_rng(3)
    if signed:
        stored = rng.integers(-2048, 2048, size=(ROWS, COLUMNS)).astype(np.int16)
        cells = stored.view(np.uint16) & np.uint16(0x0FFF)
        cells |= np.where(stored < 0, np.uint16(0xF000), np.uint16(0))  # sign extended, as writers store it
    else:
        cells = rng.integers(0, 4096, size=(ROWS, COLUMNS)).astype(np.uint16)
    cells = cells ^ (overlay_plane() << np.uint16(bit))
    ds = image_dataset(
        Rows=ROWS, Columns=COLUMNS, BitsStored=12, HighBit=11, PixelRepresentation=int(signed), PatientName="Quux^Zeb"
    )
    ds.PixelData = cells.astype("<u2").tobytes()
    ds.add_new(0x60000010, "US", ROWS)
    ds.add_new(0x60000011, "US", COLUMNS)
    ds.add_new(0x60000040, "CS", "G")
    ds.add_new(0x60000050, "SS", [1, 1])
    ds.add_new(0x60000100, "US", 16)
    ds.add_new(0x60000102, "US", bit)
    return write(ds, path, syntax), cells


def cells_of(path) -> np.ndarray:
    ds = pydicom.dcmread(path)
    return np.frombuffer(ds.PixelData, dtype="<u2").reshape(ROWS, COLUMNS)


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
@pytest.mark.parametrize("signed", [False, True])
def test_an_embedded_overlay_is_gone_and_the_stored_bits_stay(tmp_path, signed, syntax):
    source, cells = embedded_overlay_file(tmp_path / "src.dcm", signed, syntax)
    target = tmp_path / "out.dcm"
    audit = __import__("collections").Counter()
    assert deidentify_file(str(source), str(target), Options(), KEY, "2.25", audit) == ("written", None)
    out = cells_of(target)
    assert np.array_equal(out & 0x0FFF, cells & 0x0FFF), "a stored bit changed"
    high = out >> 12
    if signed:
        # Above High Bit only the sign, repeated: nothing of the overlay.
        negative = (cells >> 11) & 1
        assert np.array_equal(high, np.where(negative == 1, 0xF, 0))
    else:
        assert not high.any()
    assert audit["PixelData", "unused bits cleared"] == 1
    # As read by pydicom, the values are the source's stored values.
    assert np.array_equal(pydicom.dcmread(target).pixel_array, pydicom.dcmread(source).pixel_array)


def test_canonical_pixels_are_still_copied_by_the_kernel_bit_for_bit(tmp_path):
    source = tmp_path / "ct.dcm"
    source.write_bytes(testdata("CT_small.dcm").read_bytes())
    target = tmp_path / "out.dcm"
    audit = __import__("collections").Counter()
    assert deidentify_file(str(source), str(target), Options(), KEY, "2.25", audit)[0] == "written"
    assert pydicom.dcmread(target).PixelData == pydicom.dcmread(source).PixelData
    assert ("PixelData", "unused bits cleared") not in audit


def test_a_low_unused_bit_and_an_odd_padding_byte_are_cleared():
    ds = image_dataset(BitsAllocated=8, BitsStored=6, HighBit=6, Rows=1, Columns=3)
    ds.PixelData = bytes([0b1111_1111, 0b0000_0001, 0b0111_1110, 0xAB])
    assert canonical_pixels(ds.PixelData, ds) == bytes([0b0111_1110, 0, 0b0111_1110, 0])
    clean = image_dataset(BitsAllocated=8, BitsStored=6, HighBit=5, Rows=1, Columns=2)
    assert canonical_pixels(bytes([0b0011_1111, 1]), clean) is None
    # No unused bits, or not native integer cells: nothing to do.
    assert canonical_pixels(bytes(8), image_dataset()) is None
    assert canonical_pixels(bytes(8), image_dataset(BitsAllocated=16, BitsStored=None)) is None

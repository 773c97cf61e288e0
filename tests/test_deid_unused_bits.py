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

from curate._native import file_blake3
from curate.deid import Options
from curate.deid.unused_bits import BitLayoutError, canonical_pixels
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


def overlay_file_with(tmp_path, attrs: dict):
    """:func:`embedded_overlay_file` (the overlay at bit 15), its header then given `attrs`."""
    source, cells = embedded_overlay_file(tmp_path / "src.dcm", bit=15)
    ds = pydicom.dcmread(source)
    for keyword, value in attrs.items():
        setattr(ds, keyword, value)
    ds.save_as(source)
    return source, cells


def cells_of(path) -> np.ndarray:
    ds = pydicom.dcmread(path)
    return np.frombuffer(ds.PixelData, dtype="<u2").reshape(ROWS, COLUMNS)


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
@pytest.mark.parametrize("signed", [False, True])
def test_an_embedded_overlay_is_gone_and_the_stored_bits_stay(tmp_path, signed, syntax):
    source, cells = embedded_overlay_file(tmp_path / "src.dcm", signed, syntax)
    target = tmp_path / "out.dcm"
    audit = __import__("collections").Counter()
    digests: dict = {}
    assert deidentify_file(str(source), str(target), Options(), KEY, "2.25", audit, digests=digests) == (
        "written",
        None,
    )
    assert digests["blake3"] == file_blake3(target)  # of the bytes written, not of the source's pixels
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
    # Without a digest wanted (a dataset build), the pixels are checked the same way.
    again, unused = tmp_path / "again.dcm", __import__("collections").Counter()
    assert deidentify_file(str(source), str(again), Options(), KEY, "2.25", unused) == ("written", None)
    assert again.read_bytes() == target.read_bytes() and unused == audit


def test_canonical_pixels_are_still_copied_by_the_kernel_bit_for_bit(tmp_path):
    source = tmp_path / "ct.dcm"
    source.write_bytes(testdata("CT_small.dcm").read_bytes())
    target = tmp_path / "out.dcm"
    audit = __import__("collections").Counter()
    digests: dict = {}
    assert deidentify_file(str(source), str(target), Options(), KEY, "2.25", audit, digests=digests)[0] == "written"
    assert digests["blake3"] == file_blake3(target)
    assert pydicom.dcmread(target).PixelData == pydicom.dcmread(source).PixelData
    assert ("PixelData", "unused bits cleared") not in audit


def test_bits_readers_disagree_on_are_kept_and_every_cell_is_cleared():
    # High Bit 6 for 6 bits stored: bits 1 to 6 by the standard, 0 to 5 as most readers
    # take it. Both readings' value stays; bit 7 carries nothing, in every cell of the
    # value, the one past what Rows and Columns say too.
    ds = image_dataset(BitsAllocated=8, BitsStored=6, HighBit=6, Rows=1, Columns=3)
    ds.PixelData = bytes([0b1111_1111, 0b0000_0001, 0b0111_1110, 0xAB])
    assert canonical_pixels(ds.PixelData, ds) == bytes([0b0111_1111, 1, 0b0111_1110, 0x2B])
    # A 16-bit value of odd length: its last byte is no cell, and is zeroed.
    wide = image_dataset(BitsStored=12, HighBit=11, Rows=1, Columns=1)
    assert canonical_pixels(bytes([0xFF, 0x0F, 0x7F]), wide) == bytes([0xFF, 0x0F, 0])
    clean = image_dataset(BitsAllocated=8, BitsStored=6, HighBit=5, Rows=1, Columns=2)
    assert canonical_pixels(bytes([0b0011_1111, 1]), clean) is None
    # No unused bits, or not native integer cells: nothing to do.
    assert canonical_pixels(bytes(8), image_dataset()) is None
    # Bits Stored missing, empty, or two values that differ: which bits are the value is
    # not said, so nothing is cleared on a guess.
    for stored in (None, "", [12, 11]):
        with pytest.raises(BitLayoutError):
            canonical_pixels(bytes(8), image_dataset(BitsAllocated=16, BitsStored=stored))
    assert canonical_pixels(bytes(8), image_dataset(BitsAllocated=16, BitsStored=[16, 16])) is None


@pytest.mark.parametrize(
    "attrs",
    [
        dict(HighBit=8),  # a High Bit that cannot be: taken as Bits Stored - 1
        dict(HighBit=20),
        dict(Rows=0),  # the header's size says nothing: every cell is cleared
        dict(HighBit=""),  # empty: Bits Stored - 1
        dict(HighBit=[11, 11]),
    ],
)
def test_a_header_that_cannot_be_is_read_as_readers_read_it(tmp_path, attrs):
    source, cells = overlay_file_with(tmp_path, attrs)
    target = tmp_path / "out.dcm"
    assert deidentify_file(str(source), str(target), Options(), KEY, "2.25") == ("written", None)
    out = np.frombuffer(pydicom.dcmread(target).PixelData, dtype="<u2")
    assert not (out >> 12).any() and np.array_equal(out, cells.reshape(-1) & 0x0FFF)


@pytest.mark.parametrize(
    "attrs, why",
    [
        (dict(BitsAllocated=12), "Bits Allocated 12"),
        (dict(BitsStored=20), "Bits Stored 20"),
        (dict(HighBit=15), "an overlay in the cells"),  # which bits are the value is a matter of reading
        (dict(PixelRepresentation=""), "Pixel Representation"),
        (dict(BitsStored=[12, 13]), "Bits Stored"),
    ],
)
def test_bits_that_cannot_be_told_apart_from_an_overlay_keep_the_file_back(tmp_path, attrs, why):
    source, _ = overlay_file_with(tmp_path, attrs)
    target = tmp_path / "out.dcm"
    status, reason = deidentify_file(str(source), str(target), Options(), KEY, "2.25")
    assert status == "failed" and why in reason and not target.exists()


def test_a_pixel_element_with_a_short_vr_is_cleared_from_its_first_cell(tmp_path):
    source, cells = embedded_overlay_file(tmp_path / "src.dcm", bit=15)
    data = bytearray(source.read_bytes())
    at = data.index(b"\xe0\x7f\x10\x00OW")
    length = int.from_bytes(data[at + 8 : at + 12], "little")
    # (7FE0,0010) as US: an 8-byte header, the same value.
    data[at : at + 12] = b"\xe0\x7f\x10\x00US" + length.to_bytes(2, "little")
    source.write_bytes(bytes(data))
    target = tmp_path / "out.dcm"
    assert deidentify_file(str(source), str(target), Options(), KEY, "2.25")[0] == "written"
    written = target.read_bytes()
    value = written[written.index(b"\xe0\x7f\x10\x00US") + 8 :][: len(cells.tobytes())]
    assert not (np.frombuffer(value, dtype="<u2") >> 12).any()


@pytest.mark.parametrize("vr", ["OL", "OF", "OD"])
@pytest.mark.parametrize("syntax", ["1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"])  # big endian, deflated
def test_pixels_read_whole_are_cleared_whatever_vr_the_file_gives_them(tmp_path, vr, syntax):
    """Big endian and deflated files are read whole by pydicom, where a Pixel Data written
    with an odd VR used to skip the check."""
    source, cells = embedded_overlay_file(tmp_path / "src.dcm")
    ds = pydicom.dcmread(source)
    ds["PixelData"].VR = vr
    if syntax == "1.2.840.10008.1.2.2":
        ds.PixelData = cells.astype(">u2").tobytes()
    ds.file_meta.TransferSyntaxUID = syntax
    if syntax == "1.2.840.10008.1.2.2":
        pydicom.dcmwrite(source, ds, implicit_vr=False, little_endian=False, force_encoding=True)
    else:
        ds.save_as(source, enforce_file_format=True)
    target = tmp_path / "out.dcm"
    assert deidentify_file(str(source), str(target), Options(), KEY, "2.25") == ("written", None)
    out = pydicom.dcmread(target)
    little = syntax != "1.2.840.10008.1.2.2"
    written = np.frombuffer(out.PixelData, dtype="<u2" if little else ">u2")
    assert not (written >> 12).any(), "the overlay is still in the unused bits"
    assert np.array_equal(written & 0x0FFF, cells.ravel() & 0x0FFF)


def test_native_pixels_of_undefined_length_and_encapsulated_pixels_of_defined_length_are_refused(tmp_path):
    from dicom_factory import element

    source, _ = embedded_overlay_file(tmp_path / "src.dcm")
    data = source.read_bytes()
    at = data.rindex(b"\xe0\x7f\x10\x00")
    cells = data[at + 12 :]
    # The same cells as one item of an undefined-length element, under a native syntax.
    undefined = (
        data[:at]
        + b"\xe0\x7f\x10\x00OW\0\0\xff\xff\xff\xff"
        + element(0xFFFEE000, "OB", b"")[:4]
        + (0).to_bytes(4, "little")
        + b"\xfe\xff\x00\xe0"
        + len(cells).to_bytes(4, "little")
        + cells
        + b"\xfe\xff\xdd\xe0\0\0\0\0"
    )
    native = tmp_path / "undefined.dcm"
    native.write_bytes(undefined)
    target = tmp_path / "out.dcm"
    status, reason = deidentify_file(str(native), str(target), Options(), KEY, "2.25")
    assert status == "failed" and "native transfer syntax" in reason and not target.exists()

    # A JPEG syntax over a Pixel Data of defined length (a codestream nobody walks).
    jpeg = testdata("SC_rgb_jpeg_dcmtk.dcm").read_bytes()
    at = jpeg.rindex(b"\xe0\x7f\x10\x00")
    ds = pydicom.dcmread(testdata("SC_rgb_jpeg_dcmtk.dcm"))
    frame = next(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=1))
    value = frame[:2] + b"\xff\xfe\x00\x0aQuux Zeb" + frame[2:]
    value += b"\0" * (len(value) % 2)
    defined = tmp_path / "defined.dcm"
    defined.write_bytes(jpeg[:at] + b"\xe0\x7f\x10\x00OB\0\0" + len(value).to_bytes(4, "little") + value)
    status, reason = deidentify_file(str(defined), str(target), Options(), KEY, "2.25")
    assert status == "failed" and "defined length" in reason and not target.exists()

"""Hostile and broken files, each built the way a leak hunter built it: the patient's
identifiers never reach a file reported written, and a file that cannot be made safely
is reported, not half-written."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pydicom
import pytest
from conftest import testdata
from dicom_factory import CT_IMAGE_STORAGE, element, image_dataset, meta_group, write
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from curate.deid.profile import Options
from curate.deid.pseudonym import UUID_ROOT
from curate.deid.worker import PIXEL_TEXT_LEAK, deidentify_file

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
KEY = b"test key, not a secret, 32 bytes"
NAME, PID = "Zyxwbrook^Quentalia", "PAT99817"
IDENTIFIERS = (b"Zyxwbrook", b"ZYXWBROOK", b"Quentalia", PID.encode(), "Zyxwbrook".encode("utf-16-le"))


def encoded(ds: Dataset, implicit: bool) -> bytes:
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, implicit
    write_dataset(fp, ds)
    return fp.getvalue()


def run(tmp_path: Path, data: bytes, options: Options | None = None) -> tuple[tuple, bytes | None]:
    source, target = tmp_path / "src.dcm", tmp_path / "out" / "out.dcm"
    source.write_bytes(data)
    result = deidentify_file(str(source), str(target), options or Options(), KEY, UUID_ROOT)
    return result, target.read_bytes() if target.exists() else None


def assert_safe(result: tuple, out: bytes | None) -> None:
    if result[0] == "written":
        assert out is not None and not [i for i in IDENTIFIERS if i in out]
    else:
        assert out is None, "a file that is not written leaves nothing behind"


def test_an_attribute_after_pixel_data_cannot_replace_the_identity(tmp_path):
    ds = image_dataset(PatientName=NAME, PatientID=PID, Manufacturer=f"for {NAME.replace('^', ' ')} {PID}")
    body = encoded(ds, False) + element(0x00100010, "PN", "X^Y") + element(0x00100020, "LO", "Q")
    result, out = run(tmp_path, b"\0" * 128 + b"DICM" + meta_group() + body)
    assert result == ("failed", "unreadable: attribute (0010,0010) both before and after Pixel Data")
    assert_safe(result, out)


def test_an_implicit_data_set_under_an_explicit_transfer_syntax_keeps_its_pixels(tmp_path):
    ds = image_dataset(PatientName=NAME, PatientID=PID, Rows=256, Columns=256)
    ds.PixelData = bytes(range(256)) * 512
    block = ds.private_block(0x7FE1, "ACME", create=True)
    block.add_new(0x01, "LO", NAME)
    result, out = run(tmp_path, b"\0" * 128 + b"DICM" + meta_group(ExplicitVRLittleEndian) + encoded(ds, True))
    assert result == ("written", None)
    assert_safe(result, out)
    assert pydicom.dcmread(tmp_path / "out" / "out.dcm").PixelData == ds.PixelData


def jpeg(**attrs) -> Dataset:
    ds = pydicom.dcmread(testdata("SC_rgb_jpeg_dcmtk.dcm"))
    for keyword, value in {"PatientName": NAME, "PatientID": PID, **attrs}.items():
        setattr(ds, keyword, value)
    return ds


def frame_of(ds: Dataset) -> bytes:
    return next(generate_frames(ds.PixelData, number_of_frames=1))


def com(text: bytes) -> bytes:
    return b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text


@pytest.mark.parametrize(
    "where",
    ["after EOI", "in the offset table", "in APP2", "in UTF-16", "as a UID", "in a second fragment"],
)
def test_text_anywhere_in_encapsulated_pixel_data_is_cut_out_or_holds_the_file_back(tmp_path, where):
    ds = jpeg()
    frame = frame_of(ds)
    name = b"Zyxwbrook Quentalia " + PID.encode()
    frames = [frame]
    if where == "after EOI":
        frames = [frame + com(name)]
    elif where == "in APP2":
        frames = [frame[:2] + b"\xff\xe2" + (len(name) + 2).to_bytes(2, "big") + name + frame[2:]]
    elif where == "in UTF-16":
        frames = [frame[:2] + com("Zyxwbrook".encode("utf-16-le")) + frame[2:]]
    elif where == "as a UID":
        frames = [frame[:2] + com(str(ds.SOPInstanceUID).encode()) + frame[2:]]
    if where == "in the offset table":
        value = encapsulate(frames)
        table = name + b"\0" * (len(name) % 2)
        old = int.from_bytes(value[4:8], "little")
        ds.PixelData = value[:4] + len(table).to_bytes(4, "little") + table + value[8 + old :]
    elif where == "in a second fragment":  # a fragment that starts no codestream
        extra = name + b"\0" * (len(name) % 2)
        ds.PixelData = encapsulate([frame]) + b"\xfe\xff\x00\xe0" + len(extra).to_bytes(4, "little") + extra
    else:
        ds.PixelData = encapsulate(frames)
    source = tmp_path / "src.dcm"
    ds.save_as(source)
    target = tmp_path / "out.dcm"
    # A secondary capture, which the quarantine holds back: this is the check behind it.
    done = deidentify_file(str(source), str(target), Options(), KEY, UUID_ROOT, quarantine=False)
    if where == "in APP2":  # the colour profile: the image needs it, so it cannot be cut
        assert done == ("failed", PIXEL_TEXT_LEAK) and not target.exists()
        return
    assert done == ("written", None)
    written = target.read_bytes()
    for value in (b"Zyxwbrook", b"Quentalia", PID.encode(), "Zyxwbrook".encode("utf-16-le")):
        assert value not in written, value
    assert str(ds.SOPInstanceUID).encode() not in written
    assert np.array_equal(pydicom.dcmread(target).pixel_array, pydicom.dcmread(source).pixel_array)


@pytest.mark.parametrize("where", ["coded data", "DNL", "JPG extension", "frame 2"])
def test_a_file_that_names_its_patient_beyond_the_segments_cut_is_kept_back(tmp_path, where):
    """A comment is cut, but the name is also where no comment is: the cut file is
    searched whole, and held back."""
    ds = jpeg()
    frame, name = frame_of(ds), b"Zyxwbrook Quentalia " + PID.encode()
    end = frame.rindex(b"\xff\xd9")
    named = frame[:2] + com(name) + frame[2:]
    if where == "coded data":
        frames = [named[: end + len(com(name))] + name + named[end + len(com(name)) :]]
    elif where == "DNL":  # a marker segment no decoder needs here
        frames = [named[: end + len(com(name))] + b"\xff\xdc" + (len(name) + 2).to_bytes(2, "big") + name + frame[end:]]
    elif where == "JPG extension":
        frames = [frame[:2] + com(name) + b"\xff\xf0" + (len(name) + 2).to_bytes(2, "big") + name + frame[2:]]
    else:
        frames = [frame, named]
        ds.NumberOfFrames = 2
    ds.PixelData = encapsulate(frames)
    source = tmp_path / "src.dcm"
    ds.save_as(source)
    target = tmp_path / "out.dcm"
    # A secondary capture, which the quarantine holds back: this is the check behind it.
    done = deidentify_file(str(source), str(target), Options(), KEY, UUID_ROOT, quarantine=False)
    if where == "frame 2":  # the second frame's comment only: cut, and nothing left
        assert done == ("written", None) and b"Zyxwbrook" not in target.read_bytes()
        assert np.array_equal(pydicom.dcmread(target).pixel_array, pydicom.dcmread(source).pixel_array)
        return
    assert done == ("failed", PIXEL_TEXT_LEAK) and not target.exists()


@pytest.mark.parametrize("value", ["name", "study UID"])
def test_an_element_after_pixel_data_is_checked_when_the_file_is_written_whole(tmp_path, value):
    ds = jpeg()
    frame = frame_of(ds)
    ds.PixelData = encapsulate([frame[:2] + com(b"Zyxwbrook") + frame[2:]])  # cut: written whole
    planted = b"Zyxwbrook Quentalia" if value == "name" else str(ds.StudyInstanceUID).encode()
    ds.add_new(0x7FE00020, "OW", planted + b"\0" * (len(planted) % 2))
    source = tmp_path / "src.dcm"
    ds.save_as(source)
    target = tmp_path / "out.dcm"
    status, reason = deidentify_file(str(source), str(target), Options(), KEY, UUID_ROOT, quarantine=False)
    assert status == "failed" and "left in the header" in reason and not target.exists()


def test_damaged_fragments_are_reported_not_rewritten(tmp_path):
    ds = jpeg()
    value = encapsulate([frame_of(ds)])
    # An item delimiter between the offset table and the fragment.
    ds.PixelData = value[:8] + b"\xfe\xff\x0d\xe0\x00\x00\x00\x00" + value[8:]
    source = tmp_path / "src.dcm"
    ds.save_as(source)
    result = deidentify_file(str(source), str(tmp_path / "out.dcm"), Options(), KEY, UUID_ROOT)
    assert result == ("failed", "unreadable: encapsulated Pixel Data whose items do not hold together")


def test_a_name_in_utf16_in_kept_bytes_holds_the_file_back(tmp_path):
    ds = image_dataset(PatientName=NAME, PatientID=PID, PhotometricInterpretation="PALETTE COLOR", BitsStored=8)
    ds.RedPaletteColorLookupTableDescriptor = [4, 0, 16]
    ds.RedPaletteColorLookupTableData = b"\0\0" + "ZYXWBROOK".encode("utf-16-le") + b"\0\0"
    source = write(ds, tmp_path / "src.dcm")
    result = deidentify_file(str(source), str(tmp_path / "out.dcm"), Options(), KEY, UUID_ROOT)
    assert result == ("failed", "identifying text left in the header")


@pytest.mark.parametrize("uid", ["1.2.840.10008.5.1.4.1.1.2.77712", "1.20240101123456789012", "123456789012345678901"])
def test_uids_that_only_look_well_known_are_pseudonymised(tmp_path, uid):
    ds = image_dataset(PatientName=NAME, PatientID=PID, SOPInstanceUID=uid, StudyInstanceUID=uid + ".1")
    source = write(ds, tmp_path / "src.dcm")
    target = tmp_path / "out.dcm"
    assert deidentify_file(str(source), str(target), Options(), KEY, UUID_ROOT) == ("written", None)
    assert uid.encode() not in target.read_bytes()


def test_a_listed_private_uid_read_as_bytes_is_removed_under_retain_safe_private(tmp_path):
    from curate.deid.profile import safe_private

    (creator, group, byte), _ = next((k, v) for k, v in sorted(safe_private().items()) if "UI" in v)
    ds = image_dataset(PatientName=NAME, PatientID=PID)
    uid = "1.3.6.1.4.1.9590.100.1.2.31337"
    block = ds.private_block(group, creator, create=True)
    block.add_new(byte, "UN", uid.encode() + b"\0")
    source = write(ds, tmp_path / "src.dcm")
    target = tmp_path / "out.dcm"
    result = deidentify_file(str(source), str(target), Options(retain_safe_private=True), KEY, UUID_ROOT)
    assert result == ("written", None)
    assert uid.encode() not in target.read_bytes()
    assert CT_IMAGE_STORAGE  # the factory's class, kept


def test_nothing_inside_a_jp2_codestream_box_is_cut():
    """Cutting a comment out of the codestream box would leave the box's length wrong:
    only whole boxes beside it may go."""
    from curate.deid.segments import codestream_segments

    ds = pydicom.dcmread(testdata("MR_small_jp2klossless.dcm"))
    stream = next(generate_frames(ds.PixelData, number_of_frames=1))
    siz_end = 4 + int.from_bytes(stream[4:6], "big")
    text = b"Zyxwbrook"
    stream = stream[:siz_end] + b"\xff\x64" + (len(text) + 2).to_bytes(2, "big") + text + stream[siz_end:]

    def box(kind: bytes, body: bytes) -> bytes:
        return (len(body) + 8).to_bytes(4, "big") + kind + body

    jp2 = box(b"jP  ", b"\x0d\x0a\x87\x0a") + box(b"xml ", b"<name>Zyxwbrook</name>") + box(b"jp2c", stream)
    segments = codestream_segments(jp2)
    comments = [s for s in segments if s.kind == "COM"]
    assert comments and not any(s.removable for s in comments)
    assert [s.removable for s in segments if s.kind == "xml"] == [True]


@pytest.mark.parametrize("written", [b"19650412", b"1965-04-12", b"04/12/1965", b"12 Apr 1965"])
def test_the_birth_date_in_a_codestream_comment_is_cut_out(tmp_path, written):
    ds = jpeg(PatientBirthDate="19650412")
    frame = frame_of(ds)
    ds.PixelData = encapsulate([frame[:2] + com(b"info: " + written + b" end") + frame[2:]])
    source = tmp_path / "src.dcm"
    ds.save_as(source)
    target = tmp_path / "out.dcm"
    assert deidentify_file(str(source), str(target), Options(), KEY, UUID_ROOT, quarantine=False) == ("written", None)
    assert written not in target.read_bytes()


@pytest.mark.parametrize("marker", [b"\xff\xfe", b"\xff\xe1"], ids=["COM", "APP1"])
def test_a_date_in_a_codestream_segment_of_the_longest_length_is_cut_out(tmp_path, marker):
    """A segment's length field is at most 0xFFFF: with its marker 65,537 bytes, all read as text."""
    ds = jpeg(PatientBirthDate="19601231")
    frame = frame_of(ds)
    written = "\u662d\u548c35\u5e7412\u670831\u65e5".encode()  # 昭和35年12月31日
    body = (b"note " + written + b" ").ljust(0xFFFF - 2, b" ")
    segment = marker + (len(body) + 2).to_bytes(2, "big") + body
    stream = frame[:2] + segment + frame[2:]
    ds.PixelData = encapsulate([stream + b"\0" * (len(stream) % 2)])
    source = tmp_path / "src.dcm"
    ds.save_as(source)
    target = tmp_path / "out.dcm"
    result = deidentify_file(str(source), str(target), Options(), KEY, UUID_ROOT, quarantine=False)
    assert result[0] == "failed" or written not in target.read_bytes()


def test_a_name_cut_at_a_fragments_end_is_found_in_a_stream_that_cannot_be_walked(tmp_path):
    """MPEG-2 is not walked: its fragments are searched joined, as a video reader reads
    them, so a name that an item header splits is found whole."""
    ds = jpeg()
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"
    stream = b"\x00\x00\x01\xb3 USER: Zyxwbrook Quentalia " + PID.encode() + b" end.."
    cut = [stream[:20], stream[20:30], stream[30:40], stream[40:]]
    value = b"\xfe\xff\x00\xe0\x00\x00\x00\x00"
    for piece in cut:
        piece += b"\0" * (len(piece) % 2)
        value += b"\xfe\xff\x00\xe0" + len(piece).to_bytes(4, "little") + piece
    ds.PixelData = value
    ds["PixelData"].is_undefined_length = True
    source = tmp_path / "src.dcm"
    ds.save_as(source)
    target = tmp_path / "out.dcm"
    assert deidentify_file(str(source), str(target), Options(), KEY, UUID_ROOT, quarantine=False) == (
        "failed",
        PIXEL_TEXT_LEAK,
    )


@pytest.mark.parametrize(
    "plant",
    [
        lambda ds: setattr(ds, "ImageType", ["ORIGINAL", "PRIMARY", "ZYXWBROOK QUENTALIA"]),
        lambda ds: setattr(ds, "ImageType", ["ORIGINAL", "PRIMARY", PID]),
        lambda ds: (
            setattr(ds, "SpecificCharacterSet", "ISO_IR 192"),
            setattr(ds, "ImageType", ["ORIGINAL", "PRIMARY", "ZYXW\u00adBROOK"]),
        ),
        # The same words in a code string and in bytes: neither excuses the other.
        lambda ds: (
            setattr(ds, "ImageType", ["ORIGINAL", "PRIMARY", "ZYXWBROOK"]),
            ds.add_new(0x00282000, "OB", b"patient ZYXWBROOK "),
        ),
    ],
    ids=[
        "name in ImageType",
        "ID in ImageType",
        "name split by a soft hyphen",
        "name in a code and an ICC profile",
    ],
)
def test_a_name_in_what_the_basic_profile_keeps_holds_the_file_back(tmp_path, plant):
    from curate.deid.check import HEADER_LEAK

    ds = image_dataset(PatientName=NAME, PatientID=PID)
    plant(ds)
    source = write(ds, tmp_path / "src.dcm")
    target = tmp_path / "out.dcm"
    assert deidentify_file(str(source), str(target), Options(), KEY, UUID_ROOT) == ("failed", HEADER_LEAK)
    assert not target.exists()


def test_a_code_word_that_is_also_a_name_is_excused_where_it_stands(tmp_path):
    """A patient called Head, in a CT of the head: the code HEAD is no leak. The same word
    elsewhere in the header (an ICC profile) still holds the file back."""
    from curate.deid.check import HEADER_LEAK

    ds = image_dataset(PatientName="Head^Mary", PatientID=PID, BodyPartExamined="HEAD", ImageType=["ORIGINAL", "HEAD"])
    source = write(ds, tmp_path / "src.dcm")
    target = tmp_path / "out.dcm"
    assert deidentify_file(str(source), str(target), Options(), KEY, UUID_ROOT) == ("written", None)
    assert pydicom.dcmread(target).BodyPartExamined == "HEAD"
    ds.add_new(0x00282000, "OB", b"for HEAD ")
    source = write(ds, tmp_path / "src.dcm")
    target.unlink()
    assert deidentify_file(str(source), str(target), Options(), KEY, UUID_ROOT) == ("failed", HEADER_LEAK)


@pytest.mark.parametrize(
    "syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian]
)
def test_a_makers_name_that_holds_the_patients_is_kept_in_manufacturer_only(tmp_path, syntax):
    """A patient called Philip Smith, on a Philips device: Manufacturer keeps the maker's
    name whole, and the patient's own words in it are still cleaned. The same maker's
    word in other text (a study description) is cleaned, and in bytes (an ICC profile)
    still holds the file back."""
    from curate.deid.check import HEADER_LEAK

    ds = image_dataset(
        PatientName="Smith^Philip",
        PatientID=PID,
        Manufacturer="Philips Medical Systems for Smith",
        StudyDescription="CHEST Philips",
    )
    ds.SecondaryCaptureDeviceManufacturer = "PHILIPS"
    source = write(ds, tmp_path / "src.dcm", syntax)
    target = tmp_path / "out.dcm"
    for options in (Options(), Options(clean_descriptors=True)):
        assert deidentify_file(str(source), str(target), options, KEY, UUID_ROOT) == ("written", None)
        out = pydicom.dcmread(target)
        assert out.Manufacturer == "Philips Medical Systems for *"
        assert out.SecondaryCaptureDeviceManufacturer == "PHILIPS"
        assert "Philip" not in str(out.get("StudyDescription", ""))
        target.unlink()
    ds.add_new(0x00282000, "OB", b"Philips ")
    source = write(ds, tmp_path / "src.dcm", syntax)
    assert deidentify_file(str(source), str(target), Options(), KEY, UUID_ROOT) == ("failed", HEADER_LEAK)


@pytest.mark.parametrize(
    ("attrs", "manufacturer", "written"),
    [
        (dict(PatientID="GE12345"), "GE12345", "*"),  # an ID that begins with a maker's word
        (dict(PatientID="AG7781"), "Siemens AG7781", "Siemens *"),
        (dict(PatientName="Philipsen^Ann"), "Philips\xaden Medical", "* Medical"),  # soft hyphen
        (dict(PatientName="Philipsen^Ann"), "Philips\u034fen Medical", "* Medical"),  # grapheme joiner
        (dict(PatientName="Fujiwara^Ann"), "FUJI\u200bWARA", "*"),
    ],
)
def test_a_find_that_reaches_past_a_makers_word_is_cleaned(tmp_path, attrs, manufacturer, written):
    values = dict(PatientName=NAME, PatientID=PID, SpecificCharacterSet="ISO_IR 192")
    source = write(image_dataset(**{**values, **attrs}, Manufacturer=manufacturer), tmp_path / "src.dcm")
    target = tmp_path / "out.dcm"
    assert deidentify_file(str(source), str(target), Options(), KEY, UUID_ROOT) == ("written", None)
    assert pydicom.dcmread(target).Manufacturer == written


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_a_makers_word_is_excused_only_where_manufacturer_stands(tmp_path, syntax):
    """The Manufacturer element's own bytes copied into an ICC profile: the copy is no
    Manufacturer, and the patient's name in it holds the file back; so do bytes under
    ISO 2022 that read as the name one byte a character, though they decode to kanji."""
    from curate.deid.check import HEADER_LEAK

    ds = image_dataset(PatientName="Smith^Philip", PatientID=PID, Manufacturer="Philips")
    value = b"Philips "
    if syntax == ImplicitVRLittleEndian:
        copied = struct.pack("<HHI", 8, 0x70, len(value)) + value
    else:
        copied = struct.pack("<HH", 8, 0x70) + b"LO" + struct.pack("<H", len(value)) + value
    ds.add_new(0x00282000, "OB", b"acsp" + copied)
    source = write(ds, tmp_path / "src.dcm", syntax)
    target = tmp_path / "out.dcm"
    assert deidentify_file(str(source), str(target), Options(), KEY, UUID_ROOT) == ("failed", HEADER_LEAK)
    kanji = b"\x1b$BZYXWBROOK!\x1b(B".decode("iso2022_jp")
    ds = image_dataset(
        PatientName=NAME, PatientID=PID, Manufacturer="Philips " + kanji, SpecificCharacterSet=["", "ISO 2022 IR 87"]
    )
    source = write(ds, tmp_path / "src.dcm", syntax)
    assert deidentify_file(str(source), str(target), Options(), KEY, UUID_ROOT) == ("failed", HEADER_LEAK)
    assert not target.exists()


def test_what_an_option_keeps_may_share_a_word_with_the_name(tmp_path):
    """Retain Institution Identity keeps the institution, whose name is the patient's."""
    ds = image_dataset(PatientName=NAME, PatientID=PID, InstitutionName="Zyxwbrook Clinic")
    source = write(ds, tmp_path / "src.dcm")
    target = tmp_path / "out.dcm"
    options = Options(retain_institution_identity=True)
    assert deidentify_file(str(source), str(target), options, KEY, UUID_ROOT) == ("written", None)
    assert pydicom.dcmread(target).InstitutionName == "Zyxwbrook Clinic"


@pytest.mark.parametrize("written", [b"DOB 19520317 ", b"born 1952-03-17", b"17/03/1952 "])
@pytest.mark.parametrize("where", ["ICC profile", "body part as OB", "after the pixels"])
def test_a_birth_date_in_bytes_holds_the_file_back(tmp_path, written, where):
    from curate.deid.check import HEADER_LEAK

    ds = image_dataset(PatientName=NAME, PatientID=PID, PatientBirthDate="19520317")
    if where == "ICC profile":
        ds.add_new(0x00282000, "OB", written + b"\0" * (len(written) % 2))
    elif where == "body part as OB":
        ds.add_new(0x00180015, "OB", written + b"\0" * (len(written) % 2))
    source = write(ds, tmp_path / "src.dcm")
    if where == "after the pixels":
        with open(source, "ab") as f:
            f.write(element(0x7FE00020, "OW", written))
    target = tmp_path / "out.dcm"
    assert deidentify_file(str(source), str(target), Options(), KEY, UUID_ROOT) == ("failed", HEADER_LEAK)
    assert not target.exists()


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, "1.2.840.10008.1.2.1.99"])  # split, read whole
@pytest.mark.parametrize(
    "written",
    [
        b"Zyxwbrook Quentalia ",
        b"zYxWbRoOk ",
        "ZyXwBrOoK ".encode("utf-16-le"),
        b"\x01" + "Zyxwbrook ".encode("utf-16-le"),
        "Zyxw\u200bbrook ".encode(),
        b"Zyxw\0brook ",
        "Zyxwbr\u043e\u043ek ".encode(),
        "\uff3a\uff59\uff58\uff57\uff42\uff52\uff4f\uff4f\uff4b ".encode("shift_jis"),
        b"DOB 17.03.1952 ",
        "DOB 1952\u201303\u201317 ".encode(),
    ],
    ids=[
        "as is",
        "any case",
        "UTF-16",
        "UTF-16 at an odd offset",
        "zero-width space",
        "NUL",
        "Cyrillic o",
        "fullwidth in Shift_JIS",
        "birth date",
        "birth date with en dashes",
    ],
)
def test_bytes_past_the_image_that_name_the_patient_hold_the_file_back(tmp_path, syntax, written):
    from curate.deid.worker import EXCESS_PIXEL_TEXT

    ds = image_dataset(PatientName=NAME, PatientID=PID, PatientBirthDate="19520317")
    ds.PixelData = bytes(range(128)) + written + b"\0" * (len(written) % 2)
    source = write(ds, tmp_path / "src.dcm", syntax)
    target = tmp_path / "out.dcm"
    assert deidentify_file(str(source), str(target), Options(), KEY, UUID_ROOT) == ("failed", EXCESS_PIXEL_TEXT)
    assert not target.exists()
    # Bytes past the image that name no one are written as they are.
    ds.PixelData = bytes(range(128)) + bytes(16)
    source = write(ds, tmp_path / "src.dcm", syntax)
    assert deidentify_file(str(source), str(target), Options(), KEY, UUID_ROOT) == ("written", None)
    assert pydicom.dcmread(target).PixelData == ds.PixelData


@pytest.mark.parametrize(
    ("name", "written"),
    [
        ("Зыхбрук^Иван", "ЗЫХБРУК".encode("cp1251")),
        ("Зыхбрук^Иван", "зыхбрук".encode("koi8_r")),
        ("Ζυξβρουκ^Νίκος", "Ζυξβρουκ".encode("cp1253")),
        ("Wójcikowa^Łucja", "WÓJCIKOWA".encode("cp1250")),
        ("山田^太郎", "患者山田太郎様".encode("iso2022_jp")),
    ],
    ids=["Windows-1251", "KOI8-R", "Windows-1253", "Windows-1250", "ISO 2022 JP, inside a run"],
)
def test_bytes_past_the_image_in_a_legacy_encoding_hold_the_file_back(tmp_path, name, written):
    from curate.deid.worker import EXCESS_PIXEL_TEXT

    ds = image_dataset(PatientName=name, PatientID=PID, SpecificCharacterSet="ISO_IR 192")
    ds.PixelData = bytes(range(128)) + b"by " + written + b"\0" * (1 + len(written) % 2)
    source = write(ds, tmp_path / "src.dcm")
    target = tmp_path / "out.dcm"
    assert deidentify_file(str(source), str(target), Options(), KEY, UUID_ROOT) == ("failed", EXCESS_PIXEL_TEXT)


@pytest.mark.parametrize("seed", range(4))
def test_random_bytes_past_the_image_hold_back_no_short_name_of_another_script(tmp_path, seed):
    """Three Cyrillic letters are three bytes in Windows-1251 or KOI8-R: in a megabyte of
    random bytes they turn up by chance, often between bytes that read as no letter."""
    ds = image_dataset(PatientName="Ким^Ира", PatientID=PID, SpecificCharacterSet="ISO_IR 192")
    noise = np.random.default_rng(seed).integers(0, 256, 1 << 20, dtype=np.uint8).tobytes()
    ds.PixelData = bytes(range(128)) + noise
    source = write(ds, tmp_path / "src.dcm")
    target = tmp_path / "out.dcm"
    assert deidentify_file(str(source), str(target), Options(), KEY, UUID_ROOT) == ("written", None)


def test_a_name_of_two_signs_past_far_more_bytes_than_are_read_as_text_holds_the_file_back(tmp_path):
    from curate.deid.worker import DECODED_SEARCH_BYTES, EXCESS_PIXEL_TEXT

    ds = image_dataset(PatientName="\u738b^\u660e", PatientID=PID, SpecificCharacterSet="ISO_IR 192")  # 王^明
    ds.PixelData = bytes(range(128)) + bytes(2 * DECODED_SEARCH_BYTES) + "\u738b\u660e".encode("gb18030") + bytes(2)
    source = write(ds, tmp_path / "src.dcm")
    target = tmp_path / "out.dcm"
    assert deidentify_file(str(source), str(target), Options(), KEY, UUID_ROOT) == ("failed", EXCESS_PIXEL_TEXT)


@pytest.mark.parametrize(
    "written",
    [
        "Showa 35.12.31",
        "\u662d35.12.31",  # 昭
        "\u6c1149.12.31",  # 民
        "\u0e53\u0e51/\u0e51\u0e52/\u0e52\u0e55\u0e50\u0e53",  # ๓๑/๑๒/๒๕๐๓
        "\u4e00\u4e5d\u516d\u3007\u5e74\u5341\u4e8c\u6708\u4e09\u5341\u4e00\u65e5",  # 一九六〇年十二月三十一日
        "\uff11\uff19\uff16\uff10\u5e74\uff11\uff12\u6708\uff13\uff11\u65e5",  # １９６０年１２月３１日
    ],
)
def test_a_date_of_another_calendar_past_far_more_bytes_than_are_read_as_text_holds_the_file_back(tmp_path, written):
    """Past what is read as text the dates are looked for in their literal spellings:
    those of other calendars, digits and numerals too."""
    from curate.deid.worker import DECODED_SEARCH_BYTES, EXCESS_PIXEL_TEXT

    ds = image_dataset(PatientName=NAME, PatientID=PID, PatientBirthDate="19601231")
    data = b"DOB " + written.encode()
    ds.PixelData = bytes(range(128)) + bytes(2 * DECODED_SEARCH_BYTES) + data + bytes(len(data) % 2)
    source = write(ds, tmp_path / "src.dcm")
    target = tmp_path / "out.dcm"
    assert deidentify_file(str(source), str(target), Options(), KEY, UUID_ROOT) == ("failed", EXCESS_PIXEL_TEXT)


def test_a_date_past_far_more_bytes_than_are_read_as_text_holds_the_file_back(tmp_path):
    from curate.deid.worker import DECODED_SEARCH_BYTES, EXCESS_PIXEL_TEXT

    ds = image_dataset(PatientName=NAME, PatientID=PID, PatientBirthDate="19601231")
    ds.PixelData = bytes(range(128)) + bytes(2 * DECODED_SEARCH_BYTES) + b"DOB 1960-12-31" + bytes(2)
    source = write(ds, tmp_path / "src.dcm")
    target = tmp_path / "out.dcm"
    assert deidentify_file(str(source), str(target), Options(), KEY, UUID_ROOT) == ("failed", EXCESS_PIXEL_TEXT)
    ds.PixelData = bytes(range(128)) + bytes(2 * DECODED_SEARCH_BYTES) + b"DOB 1961-12-31" + bytes(2)
    source = write(ds, tmp_path / "src.dcm")
    assert deidentify_file(str(source), str(target), Options(), KEY, UUID_ROOT) == ("written", None)


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, "1.2.840.10008.1.2.1.99"])  # split, read whole
@pytest.mark.parametrize(("keyword", "vr", "bits"), [("FloatPixelData", "OF", 32), ("DoubleFloatPixelData", "OD", 64)])
def test_bytes_past_a_float_image_that_name_the_patient_hold_the_file_back(tmp_path, syntax, keyword, vr, bits):
    from curate.deid.worker import EXCESS_PIXEL_TEXT

    ds = image_dataset(PatientName=NAME, PatientID=PID)
    del ds.PixelData
    ds.BitsAllocated = bits
    image = np.linspace(0, 1, int(ds.Rows) * int(ds.Columns), dtype=f"<f{bits // 8}").tobytes()
    ds.add_new(keyword, vr, image + b"Zyxwbrook Quentalia " + PID.encode() + bytes(4))
    source = write(ds, tmp_path / "src.dcm", syntax)
    target = tmp_path / "out.dcm"
    assert deidentify_file(str(source), str(target), Options(), KEY, UUID_ROOT) == ("failed", EXCESS_PIXEL_TEXT)
    assert not target.exists()
    ds[keyword].value = image + bytes(32)
    source = write(ds, tmp_path / "src.dcm", syntax)
    assert deidentify_file(str(source), str(target), Options(), KEY, UUID_ROOT) == ("written", None)
    assert pydicom.dcmread(target)[keyword].value == ds[keyword].value


@pytest.mark.parametrize(
    ("charset", "name", "codec"),
    [
        ("ISO_IR 144", "Иванов^Иван", "iso8859_5"),
        ("ISO_IR 126", "Παπαδόπουλος^Νίκος", "iso8859_7"),
        ("GB18030", "王^小明", "gb18030"),
    ],
)
def test_a_name_in_bytes_in_the_headers_own_character_set_holds_the_file_back(tmp_path, charset, name, codec):
    from curate.deid.check import HEADER_LEAK

    ds = image_dataset(PatientName=name, PatientID=PID, SpecificCharacterSet=charset)
    # A family name, or for a script without spaces the whole name (one sign is too short).
    family = (name.replace("^", "") if codec == "gb18030" else name.split("^")[0]).encode(codec)
    ds.add_new(0x00282000, "OB", b"by " + family + b" " * (1 + len(family) % 2))
    source = write(ds, tmp_path / "src.dcm")
    target = tmp_path / "out.dcm"
    assert deidentify_file(str(source), str(target), Options(), KEY, UUID_ROOT) == ("failed", HEADER_LEAK)


@pytest.mark.parametrize(
    ("charset", "name", "written"),
    [
        ("ISO_IR 144", "Иванов^Иван", "ИВАНОВ".encode("cp1251")),
        ("ISO_IR 144", "Иванов^Иван", "Иванов".encode("koi8_r")),
        ("ISO_IR 192", "Παπαδόπουλος^Νίκος", "Παπαδόπουλος".encode("cp1253")),
        ("ISO_IR 192", "Wójcik^Łukasz", "Łukasz".encode("cp1250")),
        ("ISO_IR 192", "山田^太郎", "山田太郎".encode("shift_jis")),
        ("ISO_IR 192", "王^小明", "王小明".encode("big5")),
        ("ISO_IR 192", "김^민준", "김민준".encode("euc_kr")),
        ("ISO_IR 192", "สมชาย^ใจดี", "สมชาย".encode("cp874")),
        ("ISO_IR 192", "王^明", "王明".encode("gb18030")),  # a name of two signs, run together
        ("ISO_IR 192", "이^준", "이준".encode("euc_kr")),
        ("ISO_IR 192", "山田^太郎", "患者山田太郎様".encode("iso2022_jp")),  # no escape of its own
        # A long value is looked for by its first bytes and confirmed whole in its context.
        ("ISO_IR 192", "Иван" * 250 + "^Petr", ("Иван" * 250).encode("cp1251")),
    ],
    ids=[
        "Windows-1251",
        "KOI8-R",
        "Windows-1253",
        "Windows-1250",
        "Shift JIS",
        "Big5",
        "EUC-KR",
        "TIS-620",
        "GB18030, two signs",
        "EUC-KR, two signs",
        "ISO 2022 JP, inside a run",
        "Windows-1251, a thousand letters",
    ],
)
def test_a_name_in_bytes_in_a_legacy_encoding_not_the_headers_holds_the_file_back(tmp_path, charset, name, written):
    """An export tool writes a name into a private or binary value in its own locale's
    encoding, whatever the header's Specific Character Set says."""
    from curate.deid.check import HEADER_LEAK

    ds = image_dataset(PatientName=name, PatientID=PID, SpecificCharacterSet=charset)
    ds.add_new(0x00282000, "OB", b"by " + written + b" " * (1 + len(written) % 2))
    source = write(ds, tmp_path / "src.dcm")
    target = tmp_path / "out.dcm"
    assert deidentify_file(str(source), str(target), Options(), KEY, UUID_ROOT) == ("failed", HEADER_LEAK)
    ds[0x00282000].value = b"by nobody" + b" " * (1 + len(written) % 2)
    source = write(ds, tmp_path / "src.dcm")
    assert deidentify_file(str(source), str(target), Options(), KEY, UUID_ROOT) == ("written", None)


@pytest.mark.parametrize(
    ("name", "written"),
    [
        ("Петров^Иван", "Ивановка".encode("cp1251")),  # a village, not the given name
        ("Петров^Иван", "ИВАНОВКА".encode("koi8_r")),
    ],
    ids=["Windows-1251", "KOI8-R"],
)
def test_a_name_inside_a_longer_word_in_a_legacy_encoding_holds_nothing_back(tmp_path, name, written):
    """The bytes of a name in a legacy encoding are read in their context, decoded: a
    longer word that holds them is not the name."""
    ds = image_dataset(PatientName=name, PatientID=PID, SpecificCharacterSet="ISO_IR 192")
    ds.add_new(0x00282000, "OB", b"to " + written + b" " * (1 + len(written) % 2))
    source = write(ds, tmp_path / "src.dcm")
    target = tmp_path / "out.dcm"
    assert deidentify_file(str(source), str(target), Options(), KEY, UUID_ROOT) == ("written", None)


@pytest.mark.parametrize(
    "written",
    ["S35．12．31", "１９６０／１２／３１", "昭和３５年１２月３１日"],
    ids=["era, full-width signs", "full-width digits", "era, full-width digits"],
)
def test_a_date_in_full_width_forms_in_bytes_holds_the_file_back(tmp_path, written):
    """Bytes are read as text is: full-width digits and signs as plain ones."""
    from curate.deid.check import HEADER_LEAK

    ds = image_dataset(PatientName=NAME, PatientID=PID, PatientBirthDate="19601231")
    data = b"DOB " + written.encode("utf-8")
    ds.add_new(0x00282000, "OB", data + b" " * (len(data) % 2))
    source = write(ds, tmp_path / "src.dcm")
    target = tmp_path / "out.dcm"
    assert deidentify_file(str(source), str(target), Options(), KEY, UUID_ROOT) == ("failed", HEADER_LEAK)


@pytest.mark.parametrize(
    "written",
    [
        b"DOB 17.03.1952 ",
        "DOB 1952\u5e743\u670817\u65e5 ".encode(),
        "DOB 1952\u201303\u201317 ".encode("utf-16-le"),
        "DOB \u662d\u548c27\u5e743\u670817\u65e5 ".encode("shift_jis"),  # Showa 27
        b"DOB S27.03.17 ",
        "DOB \u6c11\u570b41\u5e743\u670817\u65e5 ".encode("big5"),  # ROC 41
        b"DOB 17/03/2495 ",  # Buddhist era
        "DOB \u6c11\u56fd41\u5e743\u670817\u65e5 ".encode("gb18030"),  # ROC 41, simplified 民国
        "DOB 17 \u0e21\u0e35\u0e19\u0e32\u0e04\u0e21 2495 ".encode("cp874"),  # มีนาคม, Thai in TIS-620
    ],
    ids=[
        "dots",
        "CJK in UTF-8",
        "en dashes in UTF-16",
        "Japanese era",
        "era initial",
        "ROC",
        "Buddhist era",
        "ROC simplified",
        "Thai month",
    ],
)
def test_dates_in_megabytes_of_binary_values_are_found_as_literals(tmp_path, written):
    """Past DATE_PATTERN_BYTES the values are searched for the dates' common spellings:
    a pattern over megabytes of date-like digits would take minutes."""
    from curate.deid.check import DATE_PATTERN_BYTES, HEADER_LEAK

    digits = b"1.1.11 2-3-45 " * (2 * DATE_PATTERN_BYTES // 14)
    ds = image_dataset(PatientName=NAME, PatientID=PID, PatientBirthDate="19520317")
    ds.add_new(0x00282000, "OB", digits)
    source = write(ds, tmp_path / "src.dcm")
    target = tmp_path / "out.dcm"
    assert deidentify_file(str(source), str(target), Options(), KEY, UUID_ROOT) == ("written", None)
    ds[0x00282000].value = digits + written + b" " * (len(written) % 2)
    source = write(ds, tmp_path / "src.dcm")
    target.unlink()
    assert deidentify_file(str(source), str(target), Options(), KEY, UUID_ROOT) == ("failed", HEADER_LEAK)


@pytest.mark.parametrize(("pid", "attrs"), [("14112", {}), ("703125", {"PixelSpacing": ["0.703125", "0.703125"]})])
def test_a_patient_id_equal_to_a_number_of_the_header_does_not_hold_it_back(tmp_path, pid, attrs):
    """14112 is in CT Image Storage's UID (1.2.840.10008.5.1.4.1.1.2) read without its dots."""
    source = write(image_dataset(PatientID=pid, **attrs), tmp_path / "src.dcm")
    target = tmp_path / "out.dcm"
    assert deidentify_file(str(source), str(target), Options(), KEY, UUID_ROOT) == ("written", None)
    assert pydicom.dcmread(target).PatientID != pid


@pytest.mark.parametrize(
    "name", ["UN_sequence.dcm", "empty_charset_LEI.dcm", "priv_SQ.dcm", "no_meta_group_length.dcm"]
)
def test_a_data_set_without_its_own_instance_uid_fails_with_that_reason(tmp_path, name):
    """Fragments of a data set (a sequence, a private group), some with a file meta group
    naming an instance the data set does not hold: no file is written, and the reason
    says why, not which exception a writer raised."""
    from curate.deid.worker import NO_INSTANCE_UID

    target = tmp_path / "out.dcm"
    result = deidentify_file(str(testdata(name)), str(target), Options(), KEY, UUID_ROOT, quarantine=False)
    assert result == ("failed", NO_INSTANCE_UID)
    assert not target.exists()


@pytest.mark.parametrize(
    "hidden",
    [
        "Zyxw\u200bbrook".encode(),  # a zero-width space, in UTF-8
        "Zyxw\u00adbrook".encode("latin-1"),  # a soft hyphen, in Latin-1
        b"Zyxw\0brook",  # a NUL
        "Zyxw\u2060brook".encode("utf-16-le"),  # a word joiner, in UTF-16
    ],
    ids=["zero-width space", "soft hyphen", "NUL", "word joiner in UTF-16"],
)
def test_a_name_split_by_an_invisible_character_in_bytes_holds_the_file_back(tmp_path, hidden):
    """An ICC profile kept whole: the raw search drops what shows nothing, as the text
    search does, so that a name split by it is found."""
    from curate.deid.check import HEADER_LEAK

    ds = image_dataset(PatientName=NAME, PatientID=PID)
    ds.add_new(0x00282000, "OB", b"by " + hidden + b" " * (1 + len(hidden) % 2))
    source = write(ds, tmp_path / "src.dcm")
    target = tmp_path / "out.dcm"
    assert deidentify_file(str(source), str(target), Options(), KEY, UUID_ROOT) == ("failed", HEADER_LEAK)
    assert not target.exists()


@pytest.mark.parametrize(
    "hidden",
    ["Zyxwbr\u043e\u043ek".encode(), "\u0396yxwbrook".encode("utf-16-le")],
    ids=["Cyrillic o in UTF-8", "Greek Z in UTF-16"],
)
def test_a_name_written_with_lookalike_letters_in_bytes_holds_the_file_back(tmp_path, hidden):
    from curate.deid.check import HEADER_LEAK

    ds = image_dataset(PatientName=NAME, PatientID=PID)
    ds.add_new(0x00282000, "OB", b"by " + hidden + b" " * (1 + len(hidden) % 2))
    source = write(ds, tmp_path / "src.dcm")
    target = tmp_path / "out.dcm"
    assert deidentify_file(str(source), str(target), Options(), KEY, UUID_ROOT) == ("failed", HEADER_LEAK)


@pytest.mark.parametrize("hidden", [b"Zyxwbrook", "Zyxwbrook".encode("utf-16-le")], ids=["Latin-1", "UTF-16"])
def test_text_an_option_keeps_excuses_its_own_value_only(tmp_path, hidden):
    """Retain Institution Identity keeps an institution named like the patient; the same
    name elsewhere in the header (an ICC profile) is still a leak."""
    from curate.deid.check import HEADER_LEAK

    options = Options(retain_institution_identity=True)
    ds = image_dataset(PatientName=NAME, PatientID=PID, InstitutionName="Zyxwbrook")
    source = write(ds, tmp_path / "src.dcm")
    target = tmp_path / "out.dcm"
    assert deidentify_file(str(source), str(target), options, KEY, UUID_ROOT) == ("written", None)
    assert pydicom.dcmread(target).InstitutionName == "Zyxwbrook"  # kept, as the option says
    target.unlink()
    ds.add_new(0x00282000, "OB", b"by " + hidden + b" " * (1 + len(hidden) % 2))
    source = write(ds, tmp_path / "src.dcm")
    assert deidentify_file(str(source), str(target), options, KEY, UUID_ROOT) == ("failed", HEADER_LEAK)


@pytest.mark.parametrize("with_meta", [True, False], ids=["meta group, no preamble", "bare data set"])
def test_a_raw_data_set_with_encapsulated_pixels_keeps_its_transfer_syntax_or_fails(tmp_path, with_meta):
    """A raw file whose (0002) group names JPEG is read under that syntax, so its text
    segments are searched and cut; one that names no syntax cannot say what its fragments
    are, and fails."""
    ds = jpeg()
    frame = frame_of(ds)
    ds.PatientName, ds.PatientID = NAME, PID
    ds.PixelData = encapsulate([frame[:2] + com(b"Zyxwbrook Quentalia " + PID.encode()) + frame[2:]])
    ds["PixelData"].is_undefined_length = True
    syntax = str(ds.file_meta.TransferSyntaxUID)
    body = encoded(ds, implicit=False)
    data = meta_group(syntax, str(ds.SOPClassUID), str(ds.SOPInstanceUID)) + body if with_meta else body
    source, target = tmp_path / "src.dcm", tmp_path / "out.dcm"
    source.write_bytes(data)
    done = deidentify_file(str(source), str(target), Options(), KEY, UUID_ROOT, quarantine=False)
    if not with_meta:
        assert done == ("failed", "unreadable: encapsulated Pixel Data under a native transfer syntax")
        assert not target.exists()
        return
    assert done == ("written", None)
    written = pydicom.dcmread(target)
    assert written.file_meta.TransferSyntaxUID == syntax
    for value in (b"Zyxwbrook", b"Quentalia", PID.encode()):
        assert value not in target.read_bytes()
    assert np.array_equal(written.pixel_array, pydicom.dcmread(testdata("SC_rgb_jpeg_dcmtk.dcm")).pixel_array)

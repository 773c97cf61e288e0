"""The Python scanning API: what paths it takes, the order and shape of what it returns,
extra tags, value types, and the file layouts it must read."""

from __future__ import annotations

import datetime as dt
import os
import random
import shutil
import sys
import time
from pathlib import Path

import pyarrow as pa
import pydicom
import pytest
from conftest import testdata
from dicom_factory import (
    UNDEFINED,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    element,
    image_dataset,
    item,
    make_dataset,
    part10,
    sequence,
    write,
    write_raw_dataset,
)
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

import curate
from curate.errors import TagSpecError

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def local_testdata(name: str) -> Path:
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"pydicom test file {name} is not installed")
    return Path(os.fspath(path))


def relative(table: pa.Table, root: Path) -> list[str]:
    return [Path(p).relative_to(root).as_posix() for p in table["path"].to_pylist()]


def only_row(table: pa.Table) -> dict:
    assert table.num_rows == 1
    return table.to_pylist()[0]


@pytest.fixture
def tree(tmp_path) -> Path:
    """a/1.dcm a/2.dcm b/3.dcm c.dcm, each with PatientID = its stem."""
    for rel in ["a/1.dcm", "a/2.dcm", "b/3.dcm", "c.dcm"]:
        write(make_dataset(PatientID=Path(rel).stem), tmp_path / rel)
    return tmp_path


# --- paths -----------------------------------------------------------------------------


def test_paths_as_str_path_and_mixed_lists(tree):
    every = ["a/1.dcm", "a/2.dcm", "b/3.dcm", "c.dcm"]
    assert relative(curate.scan(str(tree)), tree) == every
    assert relative(curate.scan(tree), tree) == every
    assert relative(curate.scan(tree / "c.dcm"), tree) == ["c.dcm"]
    assert relative(curate.scan(str(tree / "a" / "2.dcm")), tree) == ["a/2.dcm"]
    mixed = curate.scan([tree / "a", str(tree / "c.dcm"), tree / "b" / "3.dcm"])
    assert relative(mixed, tree) == ["a/1.dcm", "a/2.dcm", "c.dcm", "b/3.dcm"], "roots in the order given"
    assert mixed["PatientID"].to_pylist() == ["1", "2", "c", "3"]
    assert set(mixed["status"].to_pylist()) == {"ok"}


def test_a_file_named_twice_gives_one_row(tree):
    table = curate.scan([tree / "a", tree / "a" / "1.dcm", str(tree / "a" / "1.dcm")])
    assert relative(table, tree) == ["a/1.dcm", "a/2.dcm"]


def test_row_order_is_sorted_and_independent_of_creation_order(tmp_path):
    names = ["b.dcm", "a.dcm", "a/z.dcm", "a/b/y.dcm", "10.dcm", "9.dcm", "B.dcm", "a-b.dcm", "c/x.dcm"]
    random.Random(5).shuffle(names)
    for name in names:
        write(make_dataset(PatientID=name), tmp_path / name)
    expected = sorted(names, key=lambda n: Path(n).parts)
    first = curate.scan(tmp_path)
    assert relative(first, tmp_path) == expected
    assert first["PatientID"].to_pylist() == expected
    second = curate.scan(tmp_path, threads=3)
    assert second["path"].equals(first["path"])


def test_nothing_to_scan_gives_an_empty_table_with_the_schema(tmp_path):
    (tmp_path / "empty").mkdir()
    reference = curate.scan(write(make_dataset(), tmp_path / "one.dcm"))
    for paths in ([], tmp_path / "empty"):
        table = curate.scan(paths)
        assert table.num_rows == 0
        assert table.schema == reference.schema
    assert list(curate.scan_batches(tmp_path / "empty")) == []


def test_threads_do_not_change_the_table(tmp_path):
    for i in range(40):
        ts = [ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian][i % 3]
        write(
            make_dataset(PatientID=f"P{i}", InstanceNumber=i, Rows=i + 1), tmp_path / f"s{i % 4}" / f"{i:03d}.dcm", ts
        )
    (tmp_path / "junk.dcm").write_bytes(b"not dicom at all")
    (tmp_path / "cut.dcm").write_bytes((tmp_path / "s0" / "000.dcm").read_bytes()[:300])
    one = curate.scan(tmp_path, threads=1)
    two = curate.scan(tmp_path, threads=2)
    default = curate.scan(tmp_path)
    assert one.num_rows == 42
    assert one.equals(two)
    assert one.equals(default)
    assert one["status"].to_pylist().count("ok") == 40


def test_scan_batches_concatenate_to_scan(tree):
    for i in range(7):
        write(make_dataset(PatientID=f"extra{i}"), tree / "more" / f"{i}.dcm")
    batches = list(curate.scan_batches(tree, batch_size=4, threads=2))
    assert [b.num_rows for b in batches] == [4, 4, 3]
    table = curate.scan(tree)
    assert all(b.schema == table.schema for b in batches)
    assert pa.Table.from_batches(batches).equals(table)
    # The default batch size holds these in one batch.
    assert len(list(curate.scan_batches(tree))) == 1


def test_a_small_tree_is_shared_between_threads(tmp_path):
    template = make_dataset()
    for i in range(130):
        template.SOPInstanceUID = f"1.2.3.{i}"
        write(template, tmp_path / f"{i:03}.dcm")
    # Fewer files than one default batch: split in two, one share a thread, in order.
    batches = list(curate.scan_batches(tmp_path, threads=2))
    assert [b.num_rows for b in batches] == [65, 65]
    assert pa.Table.from_batches(batches)["path"].to_pylist() == sorted(str(p) for p in tmp_path.iterdir())
    assert [b.num_rows for b in curate.scan_batches(tmp_path, threads=1)] == [130]


def test_open_scan_reports_progress(tree):
    (tree / "link.dcm").symlink_to(tree / "gone.dcm")
    handle = curate.open_scan(tree, batch_size=2)
    assert (handle.total, handle.done, handle.walked) == (0, 0, False), "nothing happens before the reader is taken"
    table = handle.reader().read_all()
    assert handle.walked
    assert handle.total == 5, "four files and one path that could not be walked"
    assert table.num_rows == handle.total
    assert handle.done == handle.total
    with pytest.raises(Exception, match="already started"):
        handle.reader()


def test_huge_batch_size_is_capped_not_allocated(tree):
    table = curate.open_scan(tree, batch_size=sys.maxsize).reader().read_all()
    assert table.num_rows == 4
    assert table.equals(curate.scan(tree))


def test_walk_stays_a_bounded_distance_ahead_of_the_reader(tmp_path):
    """The file list is never held whole: the walk waits for the parsers, which wait for
    the reader, so memory does not grow with the size of the tree."""
    source = testdata("CT_small.dcm")
    for i in range(200):
        (tmp_path / f"{i // 10:02d}").mkdir(exist_ok=True)
        shutil.copy(source, tmp_path / f"{i // 10:02d}" / f"{i:03d}.dcm")
    handle = curate.open_scan(tmp_path, threads=1, batch_size=1)
    reader = handle.reader()
    first = reader.read_next_batch()
    time.sleep(0.2)  # give the walk every chance to run ahead
    assert first.num_rows == 1
    assert not handle.walked and handle.total < 20, f"walked {handle.total} files ahead of one row read"
    rest = reader.read_all()
    assert handle.walked and handle.total == 200 == 1 + rest.num_rows
    assert Path(first.column("path")[0].as_py()).name == "000.dcm"
    assert [Path(p).name for p in rest.column("path").to_pylist()] == [f"{i:03d}.dcm" for i in range(1, 200)]


def test_file_columns_come_first(tree):
    table = curate.scan(tree / "c.dcm", tags=["PatientID", "Rows"])
    assert table.column_names == [
        "path",
        "file_size",
        "mtime",
        "status",
        "error",
        "transfer_syntax",
        "pixel_data_offset",
        "pixel_data_length",
        "invalid_attributes",
        "PatientID",
        "Rows",
    ]
    row = only_row(table)
    assert row["file_size"] == (tree / "c.dcm").stat().st_size
    assert abs(row["mtime"].timestamp() - (tree / "c.dcm").stat().st_mtime) < 1e-3
    assert row["transfer_syntax"] == ExplicitVRLittleEndian


# --- extra tags ------------------------------------------------------------------------


def view_code(value: str, meaning: str) -> Dataset:
    code = Dataset()
    code.CodeValue = value
    code.CodingSchemeDesignator = "SCT"
    code.CodeMeaning = meaning
    return code


@pytest.fixture
def tagged_file(tmp_path) -> Path:
    ds = make_dataset(PatientID="TAGS", AcquisitionNumber=17)
    ds.ViewCodeSequence = Sequence(
        [view_code("399368009", "medio-lateral oblique"), view_code("399162004", "cranio-caudal")]
    )
    block = ds.private_block(0x0019, "ACME 1.0", create=True)
    block.add_new(0xA0, "LO", "private value")
    block.add_new(0xA1, "DS", "2.5")
    return write(ds, tmp_path / "tags.dcm")


def test_extra_tags_keyword_private_tag_and_sequence_path(tagged_file):
    table = curate.scan(
        tagged_file,
        extra_tags=[
            "AcquisitionNumber",
            "(0019,10A0)",
            "Score=0019,10A1",
            "ViewCodeSequence[1].CodeMeaning",
            "ViewCode=ViewCodeSequence[0].CodeValue",
        ],
    )
    row = only_row(table)
    assert row["status"] == "ok", row["error"]
    assert row["AcquisitionNumber"] == 17
    assert table.schema.field("AcquisitionNumber").type == pa.int64()
    assert row["(0019,10A0)"] == "private value"
    assert row["Score"] == "2.5", "private tags without a dictionary entry are text"
    assert row["ViewCodeSequence[0].CodeMeaning"] == "medio-lateral oblique", "the default column"
    assert row["ViewCodeSequence[1].CodeMeaning"] == "cranio-caudal"
    assert row["ViewCode"] == "399368009"
    assert table.column_names[-5:] == [
        "AcquisitionNumber",
        "(0019,10A0)",
        "Score",
        "ViewCodeSequence[1].CodeMeaning",
        "ViewCode",
    ]


def test_extra_tag_that_names_nothing_is_refused(tagged_file):
    with pytest.raises(TagSpecError):
        curate.scan(tagged_file, extra_tags=["NotAKeyword"])
    with pytest.raises(TagSpecError):
        curate.scan(tagged_file, extra_tags=["ViewCodeSequence.CodeMeaning"])


def test_two_columns_on_the_same_attribute(tagged_file):
    try:
        table = curate.scan(tagged_file, extra_tags=["PID=PatientID", "View=ViewCodeSequence[0].CodeMeaning"])
    except (TagSpecError, ValueError):
        return  # refusing the request is as good as filling both
    row = only_row(table)
    assert (row["PatientID"], row["PID"]) == ("TAGS", "TAGS")
    assert row["ViewCodeSequence[0].CodeMeaning"] == row["View"] == "medio-lateral oblique"


# --- value types -----------------------------------------------------------------------


def test_typed_columns(tmp_path):
    ds = make_dataset(
        PatientID="TYPES",
        Rows=512,
        Columns=256,
        PixelSpacing=[0.5, 0.25],
        StudyDate="20230102",
        ImageType=["ORIGINAL", "PRIMARY", "AXIAL"],
        WindowCenter=["40", "400"],
        InstanceNumber="12",
        PatientWeight="70.5",
    )
    table = curate.scan(write(ds, tmp_path / "t.dcm"))
    schema = table.schema
    assert schema.field("Rows").type == pa.int64()
    assert schema.field("InstanceNumber").type == pa.int64()
    assert schema.field("PixelSpacing").type == pa.list_(pa.float64())
    assert schema.field("WindowCenter").type == pa.list_(pa.float64())
    assert schema.field("PatientWeight").type == pa.float64()
    assert schema.field("StudyDate").type == pa.date32()
    assert schema.field("ImageType").type == pa.list_(pa.string())
    assert schema.field("PatientID").type == pa.string()
    row = only_row(table)
    assert (row["Rows"], row["Columns"], row["InstanceNumber"]) == (512, 256, 12)
    assert row["PixelSpacing"] == [0.5, 0.25]
    assert row["WindowCenter"] == [40.0, 400.0]
    assert row["PatientWeight"] == 70.5
    assert row["StudyDate"] == dt.date(2023, 1, 2)
    assert row["ImageType"] == ["ORIGINAL", "PRIMARY", "AXIAL"]
    assert row["invalid_attributes"] is None


def test_dates_invalid_and_acr_nema(tmp_path):
    ds = make_dataset(
        PatientID="DATES",
        StudyDate="20240229",
        SeriesDate="2023.04.05",
        AcquisitionDate="20231345",
        ContentDate="garbage",
        PatientBirthDate="",
    )
    row = only_row(curate.scan(write(ds, tmp_path / "d.dcm")))
    assert row["status"] == "ok", "a bad value does not fail the file"
    assert row["StudyDate"] == dt.date(2024, 2, 29)
    assert row["SeriesDate"] == dt.date(2023, 4, 5)
    assert row["AcquisitionDate"] is None
    assert row["ContentDate"] is None
    assert row["PatientBirthDate"] is None
    assert sorted(row["invalid_attributes"]) == ["AcquisitionDate", "ContentDate"], "empty is not invalid"


def test_decimal_and_integer_strings(tmp_path):
    body = (
        element(0x00100020, "LO", "NUMS")
        + element(0x00180050, "DS", " 1.5E+01 ")
        + element(0x00200013, "IS", "x1")
        + element(0x00280030, "DS", " 5E-1\\2.5e-1 ")
        + element(0x00281050, "DS", "40\\abc")
        + element(0x00281053, "DS", "+2")
    )
    row = only_row(curate.scan(_write_bytes(tmp_path / "n.dcm", part10(body))))
    assert row["status"] == "ok"
    assert row["SliceThickness"] == 15.0
    assert row["PixelSpacing"] == [0.5, 0.25]
    assert row["RescaleSlope"] == 2.0
    assert row["InstanceNumber"] is None
    assert row["WindowCenter"] is None
    assert sorted(row["invalid_attributes"]) == ["InstanceNumber", "WindowCenter"]


def _write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# --- layouts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "transfer_syntax, tag_bytes",
    [
        (ExplicitVRLittleEndian, b"\xe0\x7f\x10\x00"),
        (ImplicitVRLittleEndian, b"\xe0\x7f\x10\x00"),
        (ExplicitVRBigEndian, b"\x7f\xe0\x00\x10"),
    ],
)
def test_pixel_data_offset_points_at_the_pixel_data_tag(tmp_path, transfer_syntax, tag_bytes):
    path = write(image_dataset(PatientID="PIX"), tmp_path / "p.dcm", transfer_syntax)
    row = only_row(curate.scan(path))
    data = path.read_bytes()
    offset = row["pixel_data_offset"]
    assert data[offset : offset + 4] == tag_bytes
    assert data.rfind(tag_bytes) == offset
    header = 8 if transfer_syntax == ImplicitVRLittleEndian else 12
    assert offset + header + 128 == len(data)
    assert row["pixel_data_length"] == 128


def test_pixel_data_length_of_native_and_encapsulated_files():
    rows = {
        Path(r["path"]).name: r for r in curate.scan([testdata("CT_small.dcm"), testdata("JPEG2000.dcm")]).to_pylist()
    }
    ct = rows["CT_small.dcm"]
    assert ct["pixel_data_length"] == ct["Rows"] * ct["Columns"] * ct["BitsAllocated"] // 8
    assert rows["JPEG2000.dcm"]["pixel_data_length"] == -1, "undefined length: encapsulated fragments"


def test_pixel_data_offset_skips_an_icon_image(tmp_path):
    ds = image_dataset(PatientID="ICON")
    icon = Dataset()
    icon.Rows, icon.Columns, icon.BitsAllocated = 2, 2, 8
    icon.PixelData = b"\x01\x02\x03\x04"
    icon["PixelData"].VR = "OB"
    ds.IconImageSequence = Sequence([icon])
    path = write(ds, tmp_path / "icon.dcm")
    row = only_row(curate.scan(path))
    data = path.read_bytes()
    assert data.count(b"\xe0\x7f\x10\x00") == 2
    assert row["pixel_data_offset"] == data.rfind(b"\xe0\x7f\x10\x00")
    assert row["Rows"] == 8, "the top-level Rows, not the icon's"


def test_deflated_file(tmp_path):
    path = write(
        image_dataset(PatientID="DEFL", StudyDate="20200101"), tmp_path / "z.dcm", DeflatedExplicitVRLittleEndian
    )
    row = only_row(curate.scan(path))
    assert row["status"] == "ok", row["error"]
    assert (row["PatientID"], row["StudyDate"], row["Rows"]) == ("DEFL", dt.date(2020, 1, 1), 8)
    assert row["transfer_syntax"] == DeflatedExplicitVRLittleEndian
    assert row["pixel_data_offset"] is None, "offsets inside the compressed stream do not address the file"


def test_dicomdir(tmp_path):
    rows = curate.scan(local_testdata("DICOMDIR")).to_pylist()
    assert [(r["status"], r["error"]) for r in rows] == [("dicomdir", None)]
    # A hand-built one: recognised by its Media Storage SOP Class alone.
    data = part10(element(0x00041130, "CS", "FSID"), sop_class="1.2.840.10008.1.3.10")
    row = only_row(curate.scan(_write_bytes(tmp_path / "DICOMDIR", data)))
    assert (row["status"], row["error"]) == ("dicomdir", None)


def test_dicomdir_recognised_by_its_record_sequence(tmp_path):
    record = item(element(0x00041430, "CS", "PATIENT") + element(0x00100020, "LO", "IN-RECORD"))
    data = part10(sequence(0x00041220, [record]), sop_class="1.2.840.10008.5.1.4.1.1.2")
    row = only_row(curate.scan(_write_bytes(tmp_path / "DIR", data)))
    assert row["status"] == "dicomdir"
    assert row["PatientID"] is None, "attributes inside directory records are not the file's"


@pytest.mark.parametrize("implicit", [True, False], ids=["implicit", "explicit"])
def test_data_set_without_preamble_or_meta(tmp_path, implicit):
    ds = make_dataset(PatientID="RAW", Rows=4, StudyDate="19991231")
    path = write_raw_dataset(ds, tmp_path / "raw.dcm", implicit_vr=implicit)
    assert path.read_bytes()[:4] == b"\x08\x00\x16\x00", "starts with (0008,0016), no preamble"
    row = only_row(curate.scan(path))
    assert row["status"] == "ok", row["error"]
    assert (row["PatientID"], row["Rows"], row["StudyDate"]) == ("RAW", 4, dt.date(1999, 12, 31))
    assert row["transfer_syntax"] is None


def test_undefined_length_un_private_sequence_with_implicit_items(tmp_path):
    """An explicit VR file holding a private sequence as UN of undefined length: its items
    are implicit VR little endian (PS3.5 6.2.2)."""
    item0 = element(0x00080100, "SH", "C1", explicit=False) + element(0x00091002, "UN", "deep private", explicit=False)
    item1 = element(0x00091002, "UN", "second item", explicit=False)
    body = (
        element(0x00090010, "LO", "ACME")
        + sequence(0x00091001, [item(item0, length=UNDEFINED), item(item1)], vr="UN", length=UNDEFINED)
        + element(0x00100020, "LO", "UNSEQ")
        + element(0x00280010, "US", (7).to_bytes(2, "little"))
    )
    path = _write_bytes(tmp_path / "un.dcm", part10(body))
    table = curate.scan(
        path,
        extra_tags=[
            "Private=(0009,1001)[0].(0009,1002)",
            "Second=(0009,1001)[1].(0009,1002)",
            "Code=(0009,1001)[0].CodeValue",
        ],
    )
    row = only_row(table)
    assert row["status"] == "ok", row["error"]
    assert (row["Private"], row["Second"], row["Code"]) == ("deep private", "second item", "C1")
    assert (row["PatientID"], row["Rows"]) == ("UNSEQ", 7), "explicit VR resumes after the sequence"
    # pydicom agrees on the layout.
    seq = pydicom.dcmread(path)[0x00091001].value
    assert len(seq) == 2


@pytest.mark.parametrize(
    "charset, name, other_ids",
    [
        ("GB18030", "王^小东=Łukasz𠀀", ["乗甲", "B俓"]),  # 乗 and 俓 end in byte 0x5C ('\\')
        ("ISO_IR 192", "Łukasz^Ærøskøbing=Jérôme^李", ["Ω1", "雪2"]),
    ],
)
def test_character_sets_round_trip(tmp_path, charset, name, other_ids):
    ds = make_dataset(PatientID="CS", SpecificCharacterSet=charset, PatientName=name, OtherPatientIDs=other_ids)
    path = write(ds, tmp_path / "cs.dcm")
    back = pydicom.dcmread(path)
    assert str(back.PatientName) == name
    row = only_row(curate.scan(path))
    assert row["status"] == "ok"
    assert row["PatientName"] == name
    assert row["OtherPatientIDs"] == other_ids
    assert list(back.OtherPatientIDs) == other_ids


@pytest.fixture(scope="module")
def big_file(tmp_path_factory) -> Path:
    ds = image_dataset(PatientID="BIG")
    ds.Rows = ds.Columns = 5000
    ds.PixelData = bytes(5000 * 5000 * 2)
    return write(ds, tmp_path_factory.mktemp("big") / "big.dcm")


def test_large_pixel_data_file(big_file):
    assert big_file.stat().st_size > 50_000_000
    row = only_row(curate.scan(big_file))
    assert row["status"] == "ok", row["error"]
    assert (row["PatientID"], row["Rows"]) == ("BIG", 5000)
    assert row["pixel_data_offset"] < 10_000
    assert row["file_size"] == big_file.stat().st_size


def test_real_files_from_other_writers():
    paths = [local_testdata(n) for n in ("ExplVR_BigEndNoMeta.dcm", "ExplVR_LitEndNoMeta.dcm", "explicit_VR-UN.dcm")]
    rows = {Path(r["path"]).name: r for r in curate.scan(paths).to_pylist()}
    for name in ("ExplVR_BigEndNoMeta.dcm", "ExplVR_LitEndNoMeta.dcm"):
        assert rows[name]["status"] == "ok", rows[name]["error"]
        assert rows[name]["transfer_syntax"] is None
        expected = pydicom.dcmread(local_testdata(name), force=True)
        assert rows[name]["StudyDate"] == dt.datetime.strptime(expected.StudyDate, "%Y%m%d").date()
    un = rows["explicit_VR-UN.dcm"]
    assert (un["status"], un["PatientID"], un["Rows"]) == ("ok", "PANCREAS_0001", 512)

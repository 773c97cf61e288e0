"""Broken, hostile and unusual inputs: the scan never crashes, gives exactly one row per
input, and says clearly what is wrong with each.

Truncation is checked against an independent reading of each file's layout (pydicom's
element generator): a cut on an element boundary is a shorter but well-formed file, a cut
anywhere else before Pixel Data is ``truncated``, and a cut inside Pixel Data loses nothing
the index holds.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from dicom_factory import (
    UNDEFINED,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    element,
    item,
    make_dataset,
    nested_sequences,
    part10,
    sequence,
    write,
)
from pydicom.data import get_testdata_file
from pydicom.filereader import data_element_generator
from pydicom.uid import UID

import curate
from curate.index.tags import resolve_tags

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

TRUNCATED_FILES = [
    "CT_small.dcm",
    "MR_small.dcm",
    "JPEG2000.dcm",
    "emri_small.dcm",
    "rtplan.dcm",
    "ExplVR_BigEnd.dcm",
    "MR_small_implicit.dcm",
]
DEFLATED_FILE = "image_dfl.dcm"
FILE_ONLY_COLUMNS = {"path", "file_size", "mtime"}


def local_testdata(name: str) -> Path:
    """A pydicom test file that is on disk (never downloaded); skip the test otherwise."""
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"pydicom test file {name} is not installed")
    return Path(os.fspath(path))


def rows_by_name(table) -> dict[str, dict]:
    return {Path(r["path"]).name: r for r in table.to_pylist()}


def kind(row: dict) -> str | None:
    return row["error"].split(":", 1)[0] if row["error"] else None


# --- an independent view of a file's layout ----------------------------------------------


@dataclass
class Layout:
    meta_end: int
    meta_boundaries: list[int]
    # Top-level data set elements: (tag, start, end).
    elements: list[tuple[int, int, int]]
    # Start of top-level Pixel Data, or None.
    pixel_data: int | None
    # Length of Pixel Data's element header.
    pixel_header: int

    @property
    def boundaries(self) -> set[int]:
        return {self.meta_end} | {end for _, _, end in self.elements}


def layout(path: Path) -> Layout:
    """Where each top-level element of a Part 10 file starts and ends, read by pydicom."""

    def walk(f, implicit: bool, little: bool, stop_when):
        """(start offset, element) for each element; the generator reads one element per step."""
        elements = data_element_generator(f, implicit, little, stop_when=stop_when)
        while True:
            start = f.tell()
            try:
                yield start, next(elements)
            except StopIteration:
                return

    with open(path, "rb") as f:
        f.seek(132)
        meta_starts, transfer_syntax = [], None
        for start, el in walk(f, False, True, lambda tag, vr, length: tag.group != 2):
            meta_starts.append(start)
            if el.tag == 0x00020010:
                transfer_syntax = UID(el.value.decode("ascii").rstrip("\0 "))
        meta_end = f.tell()
        implicit, little = transfer_syntax.is_implicit_VR, transfer_syntax.is_little_endian
        starts, tags, pixel = [], [], None
        for start, el in walk(f, implicit, little, lambda tag, vr, length: tag == 0x7FE00010):
            starts.append(start)
            tags.append(int(el.tag))
        end = f.tell()
        f.seek(0, os.SEEK_END)
        if end < f.tell():
            pixel = end
    ends = starts[1:] + [end]
    return Layout(
        meta_end=meta_end,
        meta_boundaries=[132] + meta_starts[1:],
        elements=list(zip(tags, starts, ends, strict=True)),
        pixel_data=pixel,
        pixel_header=8 if implicit else 12,
    )


def top_level_columns() -> dict[str, int]:
    """Default columns that name a top-level attribute: column name -> tag."""
    return {c.name: c.path[0][0] for c in resolve_tags() if len(c.path) == 1}


# --- truncation ----------------------------------------------------------------------------


def cut_points(size: int, lay: Layout | None) -> list[int]:
    end = lay.pixel_data if lay and lay.pixel_data is not None else size
    cuts = set(range(0, end, 7)) | {end}
    if lay and lay.pixel_data is not None:
        p, h = lay.pixel_data, lay.pixel_header
        cuts |= {c for c in (p + 1, p + 4, p + h, p + h + 1, p + h + 100, p + h + 1000) if c < size}
    return sorted(cuts)


@pytest.fixture(scope="module")
def truncation_scan(tmp_path_factory):
    """Every truncated copy of every file, scanned in one run.

    Returns {file name: (layout or None, {cut: row}, full row)}.
    """
    root = tmp_path_factory.mktemp("truncated")
    sources: dict[str, tuple[Path, Layout | None]] = {}
    for name in TRUNCATED_FILES + [DEFLATED_FILE]:
        path = get_testdata_file(name, download=False)
        if path is None:
            continue
        path = Path(os.fspath(path))
        lay = None if name == DEFLATED_FILE else layout(path)
        sources[name] = (path, lay)
        data = path.read_bytes()
        cuts = range(0, len(data), 7) if lay is None else cut_points(len(data), lay)
        folder = root / Path(name).stem
        folder.mkdir()
        for cut in cuts:
            (folder / f"{cut:07d}.dcm").write_bytes(data[:cut])
    expected_rows = sum(1 for p in root.rglob("*") if p.is_file())
    table = curate.scan(root)
    assert table.num_rows == expected_rows, "one row per truncated file"
    full = rows_by_name(curate.scan([p for p, _ in sources.values()]))
    by_stem = {Path(name).stem: name for name in sources}
    result = {}
    for row in table.to_pylist():
        path = Path(row["path"])
        name, cut = by_stem[path.parent.name], int(path.stem)
        assert row["file_size"] == cut
        result.setdefault(name, (sources[name][1], {}, full[name]))[1][cut] = row
    return result


@pytest.mark.parametrize("name", TRUNCATED_FILES)
def test_truncated_copies(name, truncation_scan):
    if name not in truncation_scan:
        pytest.skip(f"pydicom test file {name} is not installed")
    lay, rows, full = truncation_scan[name]
    assert full["status"] == "ok", full["error"]
    tags = top_level_columns()
    where = {tag: (start, end) for tag, start, end in lay.elements}
    for cut, row in sorted(rows.items()):
        ctx = f"{name} cut at {cut}: {row['status']} {row['error']}"
        if cut == 0:
            assert row["status"] == "not_dicom", ctx
            assert "empty" in row["error"], ctx
        elif cut < 132:
            assert row["status"] == "not_dicom", ctx
            assert row["error"].startswith("not_dicom: "), ctx
        elif cut < lay.meta_end:
            # Cuts on a meta group boundary: test_file_ending_inside_its_meta_group.
            if cut not in lay.meta_boundaries:
                assert row["status"] == "error" and row["error"].startswith("truncated: "), ctx
        elif lay.pixel_data is None or cut <= lay.pixel_data:
            if cut in lay.boundaries:
                # A shorter, well-formed file: nothing marks it as cut.
                assert row["status"] == "ok" and row["error"] is None, ctx
            else:
                assert row["status"] == "error", ctx
                assert row["error"].startswith("truncated: file ends at byte"), ctx
            assert row["pixel_data_offset"] is None, ctx
            assert row["transfer_syntax"] == full["transfer_syntax"], ctx
            # Values wholly before the cut are kept; the rest are null.
            for column, tag in tags.items():
                if tag not in where:
                    assert row[column] is None, f"{ctx}: {column}"
                elif where[tag][1] <= cut:
                    assert row[column] == full[column], f"{ctx}: {column}"
                else:
                    assert row[column] is None, f"{ctx}: {column}"
        elif cut < lay.pixel_data + lay.pixel_header:
            # Inside Pixel Data's own element header: every attribute is already read.
            assert row["status"] == "ok" or row["error"].startswith("truncated: "), ctx
            for column, value in full.items():
                if column not in FILE_ONLY_COLUMNS | {"status", "error", "pixel_data_offset", "pixel_data_length"}:
                    assert row[column] == value, f"{ctx}: {column}"
        else:
            # Inside the Pixel Data value: the header is complete, nothing is lost.
            assert row["status"] == "ok" and row["error"] is None, ctx
            for column, value in full.items():
                if column not in FILE_ONLY_COLUMNS:
                    assert row[column] == value, f"{ctx}: {column}"
    if lay.pixel_data is not None:
        assert any(cut > lay.pixel_data + lay.pixel_header for cut in rows), "some cuts inside Pixel Data"
    assert any(row["status"] == "error" for row in rows.values())


def test_file_ending_inside_its_meta_group(truncation_scan, tmp_path):
    name = "CT_small.dcm"
    lay = truncation_scan[name][0]
    data = local_testdata(name).read_bytes()
    cuts = [c for c in lay.meta_boundaries if c < lay.meta_end]
    assert cuts[0] == 132
    for cut in cuts:
        (tmp_path / f"{cut:04d}.dcm").write_bytes(data[:cut])
    for row in curate.scan(tmp_path).to_pylist():
        ctx = f"cut at {row['file_size']}: {row['status']} {row['error']}"
        assert row["status"] == "error", ctx
        assert row["error"].startswith("truncated: "), ctx


def test_truncated_deflated_file_gives_one_row_each(truncation_scan):
    if DEFLATED_FILE not in truncation_scan:
        pytest.skip(f"pydicom test file {DEFLATED_FILE} is not installed")
    _, rows, full = truncation_scan[DEFLATED_FILE]
    assert full["status"] == "ok" and full["pixel_data_offset"] is None
    meta_end = 132 + 12 + int.from_bytes(local_testdata(DEFLATED_FILE).read_bytes()[140:144], "little")
    errors = 0
    for cut, row in rows.items():
        ctx = f"cut at {cut}: {row['status']} {row['error']}"
        if cut < 132:
            assert row["status"] == "not_dicom", ctx
            continue
        if cut >= meta_end:
            assert row["transfer_syntax"] == DeflatedExplicitVRLittleEndian, ctx
        if row["status"] == "ok":
            # Only once the compressed header is complete: then nothing is lost.
            for column, value in full.items():
                if column not in FILE_ONLY_COLUMNS:
                    assert row[column] == value, f"{ctx}: {column}"
        else:
            errors += 1
            assert row["status"] == "error", ctx
    assert errors > 0
    # The tail of the file (compressed pixel data) can go without losing the header.
    assert rows[max(rows)]["status"] == "ok"


def test_truncated_deflated_file_is_reported_truncated(truncation_scan):
    if DEFLATED_FILE not in truncation_scan:
        pytest.skip(f"pydicom test file {DEFLATED_FILE} is not installed")
    _, rows, _ = truncation_scan[DEFLATED_FILE]
    failed = [row for cut, row in rows.items() if cut >= 132 and row["status"] == "error"]
    assert failed
    for row in failed:
        assert row["error"].startswith("truncated: "), f"cut at {row['file_size']}: {row['error']}"


def test_real_world_truncated_files():
    rows = rows_by_name(curate.scan([local_testdata("rtplan_truncated.dcm"), local_testdata("MR_truncated.dcm")]))
    rt = rows["rtplan_truncated.dcm"]
    assert rt["status"] == "error"
    assert rt["error"].startswith("truncated: file ends at byte")
    assert rt["PatientID"] == "id00001", "values before the cut are kept"
    mr = rows["MR_truncated.dcm"]
    assert mr["status"] == "ok", "only Pixel Data is cut short"
    assert (mr["PatientID"], mr["Rows"], mr["pixel_data_offset"]) == ("4MR1", 64, 1488)


# --- files that are not DICOM, and paths that are not files ---------------------------------


def test_random_bytes(tmp_path):
    rng = random.Random(20240601)
    for i in range(40):
        (tmp_path / f"noise{i:02d}.bin").write_bytes(rng.randbytes(rng.randrange(1, 6000)))
    table = curate.scan(tmp_path)
    assert table.num_rows == 40
    for row in table.to_pylist():
        assert row["status"] == "not_dicom", row
        assert (
            row["error"] == "not_dicom: no 'DICM' marker at byte 128 and no DICOM data element at the start of the file"
        )
        assert row["PatientID"] is None and row["transfer_syntax"] is None


@pytest.mark.parametrize("transfer_syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian, None])
def test_random_data_set_after_a_valid_start(tmp_path, transfer_syntax):
    """Random bytes where the data set should be: an error or a (short) data set, never a crash."""
    rng = random.Random(str(transfer_syntax))
    count = 60
    for i in range(count):
        body = rng.randbytes(rng.randrange(0, 2000))
        data = part10(body, transfer_syntax) if transfer_syntax else b"\0" * 128 + b"DICM" + body
        (tmp_path / f"{i:02d}.dcm").write_bytes(data)
    table = curate.scan(tmp_path)
    assert table.num_rows == count
    statuses = set()
    for row in table.to_pylist():
        statuses.add(row["status"])
        assert row["status"] in ("ok", "error"), row
        if row["status"] == "error":
            assert kind(row) in ("truncated", "corrupt"), row
        assert row["transfer_syntax"] == (transfer_syntax or None)
    assert "error" in statuses


def test_empty_file(tmp_path):
    (tmp_path / "empty.dcm").touch()
    [row] = curate.scan(tmp_path / "empty.dcm").to_pylist()
    assert row["status"] == "not_dicom"
    assert row["error"] == "not_dicom: empty file"
    assert row["file_size"] == 0


def test_directory_named_like_a_file(tmp_path):
    ct = local_testdata("CT_small.dcm")
    (tmp_path / "x.dcm").mkdir()
    shutil.copy(ct, tmp_path / "x.dcm" / "inner.dcm")
    (tmp_path / "empty.dcm").mkdir()
    shutil.copy(ct, tmp_path / "y.dcm")
    for paths in (tmp_path, [tmp_path / "x.dcm", tmp_path / "y.dcm", tmp_path / "empty.dcm"]):
        table = curate.scan(paths)
        relative = [os.path.relpath(p, tmp_path) for p in table["path"].to_pylist()]
        assert relative == [os.path.join("x.dcm", "inner.dcm"), "y.dcm"], "folders get no row"
        assert table["status"].to_pylist() == ["ok", "ok"]
        assert table["PatientID"].to_pylist() == ["1CT1", "1CT1"]


def mode_bits_are_enforced(folder: Path) -> bool:
    """False for root (or anyone allowed to bypass file modes): chmod 000 cannot lock them out."""
    probe = folder / "probe"
    probe.write_bytes(b"x")
    os.chmod(probe, 0)
    try:
        with open(probe, "rb"):
            return False
    except PermissionError:
        return True
    finally:
        probe.unlink()


def scan_without_file_mode_override(folder: Path) -> list[dict]:
    """Scan `folder` in a child process stripped of the capabilities that let root ignore
    file modes (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH)."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot make a file unreadable")
    script = "import curate, json, sys; print(json.dumps(curate.scan(sys.argv[1]).to_pylist(), default=str))"
    command = [setpriv, "--bounding-set=-dac_override,-dac_read_search", sys.executable, "-c", script, str(folder)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_unreadable_file_and_folder(tmp_path):
    ct = local_testdata("CT_small.dcm")
    shutil.copy(ct, tmp_path / "locked.dcm")
    shutil.copy(ct, tmp_path / "open.dcm")
    (tmp_path / "sealed").mkdir()
    shutil.copy(ct, tmp_path / "sealed" / "hidden.dcm")
    os.chmod(tmp_path / "locked.dcm", 0)
    os.chmod(tmp_path / "sealed", 0)
    try:
        if mode_bits_are_enforced(tmp_path):
            scanned = curate.scan(tmp_path).to_pylist()
        else:
            scanned = scan_without_file_mode_override(tmp_path)
        rows = {os.path.relpath(r["path"], tmp_path): r for r in scanned}
    finally:
        os.chmod(tmp_path / "locked.dcm", 0o644)
        os.chmod(tmp_path / "sealed", 0o755)
    assert set(rows) == {"locked.dcm", "open.dcm", "sealed"}
    assert rows["locked.dcm"]["status"] == "error"
    assert rows["locked.dcm"]["error"].startswith("unreadable: ")
    assert rows["sealed"]["status"] == "error"
    assert rows["sealed"]["error"].startswith("unreadable: ")
    assert rows["open.dcm"]["status"] == "ok"
    assert rows["open.dcm"]["PatientID"] == "1CT1"


def test_dangling_symlink_is_vanished(tmp_path):
    """A file that is gone by the time it is opened (the case every user can build)."""
    shutil.copy(local_testdata("CT_small.dcm"), tmp_path / "a.dcm")
    os.symlink(tmp_path / "gone.dcm", tmp_path / "b.dcm")
    table = curate.scan(tmp_path)
    assert [Path(p).name for p in table["path"].to_pylist()] == ["a.dcm", "b.dcm"]
    a, b = table.to_pylist()
    assert a["status"] == "ok"
    assert b["status"] == "error"
    assert b["error"].startswith("vanished: ")
    assert b["file_size"] is None and b["PatientID"] is None
    # The same link passed directly.
    [direct] = curate.scan(tmp_path / "b.dcm").to_pylist()
    assert direct["status"] == "error" and direct["error"].startswith("vanished: ")


def test_symlink_loop(tmp_path):
    (tmp_path / "d").mkdir()
    shutil.copy(local_testdata("MR_small.dcm"), tmp_path / "d" / "mr.dcm")
    os.symlink(tmp_path, tmp_path / "d" / "up")
    table = curate.scan(tmp_path)
    rows = {os.path.relpath(r["path"], tmp_path): r for r in table.to_pylist()}
    assert set(rows) == {os.path.join("d", "mr.dcm"), os.path.join("d", "up")}
    assert rows[os.path.join("d", "mr.dcm")]["status"] == "ok"
    loop = rows[os.path.join("d", "up")]
    assert loop["status"] == "error"
    assert loop["error"].startswith("symlink_loop: ")


def test_path_that_does_not_exist(tmp_path):
    missing = tmp_path / "nowhere" / "file.dcm"
    shutil.copy(local_testdata("CT_small.dcm"), tmp_path / "real.dcm")
    table = curate.scan([missing, tmp_path / "real.dcm"])
    assert table["path"].to_pylist() == [str(missing), str(tmp_path / "real.dcm")]
    gone, real = table.to_pylist()
    assert gone["status"] == "error"
    assert gone["error"].startswith("vanished: ")
    assert gone["file_size"] is None and gone["mtime"] is None
    assert real["status"] == "ok"


def test_named_pipe_does_not_hang(tmp_path):
    shutil.copy(local_testdata("CT_small.dcm"), tmp_path / "a.dcm")
    os.mkfifo(tmp_path / "pipe.dcm")
    script = textwrap.dedent(
        f"""
        import signal
        import curate
        signal.alarm(20)  # the scan alone, not the interpreter's start: a hang ends the child
        rows = curate.scan({str(tmp_path)!r}).to_pylist()
        print(sorted((r["path"].rsplit("/", 1)[-1], r["status"]) for r in rows))
        """
    )
    try:
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail("the scan did not finish")
    assert done.returncode != -signal.SIGALRM, "the scan did not finish"
    assert done.returncode == 0, done.stderr
    result = dict(eval(done.stdout))
    assert result.pop("a.dcm") == "ok"
    # The pipe is not a file to parse: a row saying so, or no row at all.
    assert result in ({}, {"pipe.dcm": "error"}, {"pipe.dcm": "not_dicom"})


# --- hostile values ------------------------------------------------------------------------

PATIENT_ID = 0x00100020
INSTANCE_NUMBER = 0x00200013
VIEW_CODE_SEQUENCE = 0x00540220


def scan_one(tmp_path, name: str, data: bytes, **kwargs) -> dict:
    path = tmp_path / name
    path.write_bytes(data)
    [row] = curate.scan(path, **kwargs).to_pylist()
    return row


@pytest.mark.parametrize("explicit", [True, False], ids=["explicit-UN", "implicit"])
def test_huge_length_on_a_selected_element(tmp_path, explicit):
    ts = ExplicitVRLittleEndian if explicit else ImplicitVRLittleEndian
    body = element(0x00080060, "CS", "CT", explicit=explicit) + element(
        PATIENT_ID, "UN" if explicit else "LO", b"P1", explicit=explicit, length=0xFFFFFFF0
    )
    row = scan_one(tmp_path, "huge.dcm", part10(body + element(INSTANCE_NUMBER, "IS", "3", explicit=explicit), ts))
    assert row["status"] == "error"
    assert row["error"].startswith("truncated: ")
    assert "(0010,0020) (4294967280 bytes)" in row["error"]
    assert row["Modality"] == "CT", "values before the element are kept"
    assert row["PatientID"] is None
    assert row["invalid_attributes"] == ["PatientID"]


def test_huge_length_on_an_unselected_element(tmp_path):
    body = (
        element(PATIENT_ID, "LO", "P1")
        + element(0x00091001, "UN", b"xx", length=0xFFFFFFF0)
        + element(INSTANCE_NUMBER, "IS", "3")
    )
    row = scan_one(tmp_path, "huge.dcm", part10(body))
    assert row["status"] == "error"
    assert row["error"].startswith("truncated: ")
    assert "(0009,1001)" in row["error"]
    assert row["PatientID"] == "P1"
    assert row["InstanceNumber"] is None
    assert row["invalid_attributes"] is None


@pytest.mark.parametrize("tag", [0x0040A730, VIEW_CODE_SEQUENCE], ids=["unselected", "selected"])
def test_sequences_nested_ten_thousand_deep(tmp_path, tag):
    data = part10(element(PATIENT_ID, "LO", "P-deep") + nested_sequences(10_000, tag=tag))
    row = scan_one(tmp_path, "deep.dcm", data)
    assert row["status"] == "error"
    assert row["error"].startswith("corrupt: sequences nested deeper than")
    assert row["PatientID"] == "P-deep"


def test_selected_item_longer_than_its_sequence(tmp_path):
    inner = element(0x00080104, "LO", "view")
    body = (
        element(PATIENT_ID, "LO", "P1")
        + sequence(VIEW_CODE_SEQUENCE, [item(inner, length=len(inner) + 40)])
        + element(INSTANCE_NUMBER, "IS", "5")
        + element(0x00540410, "SH", "padding to keep the item inside the file")
    )
    row = scan_one(tmp_path, "bad_item.dcm", part10(body))
    assert row["status"] == "error"
    assert row["error"] == "corrupt: an item of sequence (0054,0220) runs past the end of the sequence"
    assert row["PatientID"] == "P1"


def test_item_longer_than_an_unselected_sequence_is_skipped_with_it(tmp_path):
    """Unselected sequences are skipped by their own length, unread."""
    inner = element(0x00081150, "UI", "1.2.3")
    body = (
        element(PATIENT_ID, "LO", "P1")
        + sequence(0x00081199, [item(inner, length=len(inner) + 40)])
        + element(INSTANCE_NUMBER, "IS", "5")
    )
    row = scan_one(tmp_path, "bad_item.dcm", part10(body))
    assert row["status"] == "ok", row["error"]
    assert (row["PatientID"], row["InstanceNumber"]) == ("P1", 5)


def test_unselected_item_longer_than_a_selected_sequence(tmp_path):
    inner = element(0x00080104, "LO", "view")
    number = element(INSTANCE_NUMBER, "IS", "5")
    good = item(inner)
    bad = item(inner, length=len(inner) + len(number))  # claims InstanceNumber
    body = (
        element(PATIENT_ID, "LO", "P1")
        + sequence(VIEW_CODE_SEQUENCE, [good, bad], length=len(good) + 8 + len(inner))
        + number
        + element(0x00280010, "US", (4).to_bytes(2, "little"))
    )
    row = scan_one(tmp_path, "bad_item.dcm", part10(body))
    assert row["status"] == "error", f"InstanceNumber={row['InstanceNumber']}"
    assert row["error"].startswith("corrupt: ")


def test_undefined_length_element_that_is_not_a_sequence(tmp_path):
    """Undefined length on a plain element: read as a sequence, and its garbage is corrupt."""
    body = element(PATIENT_ID, "LO", "P1") + element(0x00091001, "UN", b"\x01\x02\x03\x04" * 8, length=UNDEFINED)
    row = scan_one(tmp_path, "undef.dcm", part10(body))
    assert row["status"] == "error"
    assert row["error"].startswith("corrupt: expected an item in sequence (0009,1001)")
    assert row["PatientID"] == "P1"


# --- one bad file does not stop the run ---------------------------------------------------


def test_good_files_survive_bad_neighbours(tmp_path):
    good = {}
    for i in range(12):
        pid = f"GOOD{i:02d}"
        ts = [ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian][
            i % 4
        ]
        write(make_dataset(PatientID=pid, Rows=i + 1), tmp_path / f"good{i:02d}.dcm", transfer_syntax=ts)
        good[f"good{i:02d}.dcm"] = pid
    for name, real in [("ct.dcm", "CT_small.dcm"), ("mr.dcm", "MR_small.dcm")]:
        shutil.copy(local_testdata(real), tmp_path / name)
    good["ct.dcm"], good["mr.dcm"] = "1CT1", "4MR1"

    ct = local_testdata("CT_small.dcm").read_bytes()
    rng = random.Random(99)
    bad = {
        "bad_truncated.dcm": ct[:1000],
        "bad_empty.dcm": b"",
        "bad_noise.dcm": rng.randbytes(3000),
        "bad_deep.dcm": part10(nested_sequences(5000)),
        "bad_huge.dcm": part10(element(0x00091001, "UN", b"", length=0xFFFFFFF0)),
        "bad_dicm_noise.dcm": b"\0" * 128 + b"DICM" + rng.randbytes(500),
    }
    for name, data in bad.items():
        (tmp_path / name).write_bytes(data)
    os.symlink(tmp_path / "missing.dcm", tmp_path / "bad_link.dcm")

    handle = curate.open_scan(tmp_path, threads=4, batch_size=3)
    table = handle.reader().read_all()
    rows = rows_by_name(table)
    assert table.num_rows == len(good) + len(bad) + 1
    assert handle.done == handle.total == table.num_rows
    for name, pid in good.items():
        assert rows[name]["status"] == "ok", rows[name]["error"]
        assert rows[name]["error"] is None
        assert rows[name]["PatientID"] == pid
    for name in list(bad) + ["bad_link.dcm"]:
        assert rows[name]["status"] in ("error", "not_dicom"), name
        assert kind(rows[name]) in ("truncated", "corrupt", "not_dicom", "vanished"), rows[name]["error"]
        assert rows[name]["PatientID"] is None or name == "bad_truncated.dcm"
    assert rows["bad_truncated.dcm"]["PatientID"] == "1CT1"


def test_a_stray_item_is_stepped_over_and_the_row_keeps_what_pydicom_reads(tmp_path):
    """A writer's stray item outside any sequence (as in fo-dicom's GH364 test file),
    synthesised in a real JPEG 2000 file near the start of its data set."""
    import struct

    import pydicom

    data = local_testdata("JPEG2000.dcm").read_bytes()
    at = data.index(b"\x08\x00\x16\x00", 132 + 200)  # SOP Class UID, after the file meta group
    stray = struct.pack("<HHI", 0xFFFE, 0xE000, 10) + b"\x10\x00\x10\x00PN\x02\x00X "
    path = tmp_path / "stray.dcm"
    path.write_bytes(data[:at] + stray + data[at:])
    [row] = curate.scan(path).to_pylist()
    assert row["status"] == "error" and row["error"].startswith("corrupt: item tag (FFFE,E000)")
    ds = pydicom.dcmread(path)
    for keyword in ("SOPClassUID", "PhotometricInterpretation", "SeriesNumber", "InstanceNumber", "Rows"):
        assert ds.get(keyword) is not None, keyword
        assert str(row[keyword]) == str(ds.get(keyword)), keyword

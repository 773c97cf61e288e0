"""A file is held back for what the header its worker reads says its pixels show, not
only for what the plan read from the index: a value after the pixels (where the scanner
stops), any one value of a multi-valued attribute, and a file that changed between the
plan and the write. A source replaced while it is read is never written."""

from __future__ import annotations

import os

import pytest
from dicom_factory import element, image_dataset, write

from curate.deid import worker
from curate.deid.profile import Options
from curate.deid.quarantine import quarantine_reasons
from curate.deid.tree import deidentify_tree
from curate.deid.worker import SOURCE_CHANGED, deidentify_file

KEY = b"test key, not a secret, 32 bytes"


def after_pixels(path, tag: int, vr: str, value: bytes) -> None:
    with open(path, "ab") as f:
        f.write(element(tag, vr, value))


@pytest.mark.parametrize(
    ("tag", "vr", "value", "reason"),
    [
        (0x00280301, "CS", b"YES", "burned-in annotation"),
        (0x00280301, "UN", b"YES", "burned-in annotation"),
        (0x00080008, "CS", b"DERIVED\\SECONDARY\\SCREEN SAVE", "screen save"),
        (0x00080060, "CS", b"US", "ultrasound"),
    ],
)
def test_what_follows_the_pixels_holds_the_file_back(tmp_path, tag, vr, value, reason):
    src = tmp_path / "src"
    ds = image_dataset(PatientID="AFTER")
    if tag == 0x00080060:
        del ds.Modality
    path = write(ds, src / "a.dcm")
    after_pixels(path, tag, vr, value)
    summary = deidentify_tree(src, tmp_path / "out", KEY, progress=False, workers=1)
    assert summary.written == 0 and dict(summary.quarantined) == {reason: 1}, summary.format()
    assert not list((tmp_path / "out").rglob("*.dcm"))


@pytest.mark.parametrize(
    ("attrs", "reason"),
    [
        ({"BurnedInAnnotation": ["NO", "YES"]}, "burned-in annotation"),
        ({"Modality": ["CR", "US"]}, "ultrasound"),
        ({"ImageType": ["DERIVED", "SECONDARY", "SCREEN SAVE"]}, "screen save"),
    ],
)
def test_any_value_of_a_multi_valued_attribute_counts(tmp_path, attrs, reason):
    src = tmp_path / "src"
    write(image_dataset(PatientID="MULTI", **attrs), src / "m.dcm")
    summary = deidentify_tree(src, tmp_path / "out", KEY, progress=False, workers=1)
    assert summary.written == 0 and dict(summary.quarantined) == {reason: 1}
    assert quarantine_reasons(attrs) == [reason]


def test_the_worker_judges_the_file_it_reads(tmp_path):
    """Whatever the plan read (a file replaced after it by an ultrasound), the worker
    holds back what it reads; with quarantine off (the caller's choice), it writes it."""
    hostile = write(image_dataset(PatientID="SWAP", Modality="US", BurnedInAnnotation="YES"), tmp_path / "h.dcm")
    target = tmp_path / "out.dcm"
    status, reason, *_ = worker.deidentify_task(str(hostile), str(target), Options(), KEY, "2.25")
    assert (status, reason) == ("quarantined", "burned-in annotation") and not target.exists()
    status, *_ = worker.deidentify_task(str(hostile), str(target), Options(), KEY, "2.25", quarantine=False)
    assert status == "written"


def test_a_source_written_to_while_it_is_read_is_not_written(tmp_path, monkeypatch):
    source = write(image_dataset(PatientID="RACE"), tmp_path / "src.dcm")
    real = worker.file_problem

    def writing_to_the_source(*args, **kwargs):
        with open(source, "ab") as f:  # between the check of what was read and the end
            f.write(b"\0\0")
        return real(*args, **kwargs)

    monkeypatch.setattr(worker, "file_problem", writing_to_the_source)
    target = tmp_path / "out.dcm"
    assert deidentify_file(str(source), str(target), Options(), KEY, "2.25") == ("failed", SOURCE_CHANGED)
    assert not target.exists() and [p.name for p in tmp_path.iterdir()] == ["src.dcm"]


def test_a_folder_swapped_under_the_source_while_it_is_read_changes_nothing_written(tmp_path, monkeypatch):
    """Every read goes through the descriptor opened first: the file a folder swap puts
    at the path (an ultrasound with other pixels) is never read, header or pixels. (A
    file renamed onto the path itself changes the first one's link count: not written.)"""
    source = write(image_dataset(PatientID="SWAP"), tmp_path / "a" / "src.dcm")
    expected = tmp_path / "expected.dcm"
    assert deidentify_file(str(source), str(expected), Options(), KEY, "2.25") == ("written", None)
    hostile = image_dataset(PatientID="SWAP", Modality="US", BurnedInAnnotation="YES")
    hostile.PixelData = bytes(reversed(range(128)))
    write(hostile, tmp_path / "b" / "src.dcm")
    real = worker.split_file

    def swapping_after_the_header(path):
        found = real(path)
        os.rename(tmp_path / "a", tmp_path / "old")  # before the pixels are checked, hashed and copied
        os.rename(tmp_path / "b", tmp_path / "a")
        return found

    monkeypatch.setattr(worker, "split_file", swapping_after_the_header)
    target = tmp_path / "out.dcm"
    assert deidentify_file(str(source), str(target), Options(), KEY, "2.25") == ("written", None)
    assert target.read_bytes() == expected.read_bytes()


def test_a_fifo_at_the_source_path_does_not_block(tmp_path):
    fifo = tmp_path / "fifo.dcm"
    os.mkfifo(fifo)
    assert deidentify_file(str(fifo), str(tmp_path / "out.dcm"), Options(), KEY, "2.25") == (
        "failed",
        "unreadable: not a regular file",
    )


def test_a_library_caller_gets_the_quarantine_unless_it_turns_it_off(tmp_path):
    """deidentify_file holds back what its pixels may show by default: a caller that
    never heard of the quarantine does not write a screen capture's text out."""
    source = write(image_dataset(PatientID="LIB", Modality="OT", ConversionType="WSD"), tmp_path / "src.dcm")
    target = tmp_path / "out.dcm"
    assert deidentify_file(str(source), str(target), Options(), KEY, "2.25") == (
        "quarantined",
        "other (often screenshots)",
    )
    assert not target.exists()
    assert deidentify_file(str(source), str(target), Options(), KEY, "2.25", quarantine=False) == ("written", None)

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


def test_a_source_replaced_while_it_is_read_is_not_written(tmp_path, monkeypatch):
    source = write(image_dataset(PatientID="RACE"), tmp_path / "src.dcm")
    other = write(image_dataset(PatientID="RACE", Rows=8), tmp_path / "other.dcm")
    real = worker.file_problem

    def replacing_the_source(*args, **kwargs):
        os.replace(other, source)  # between the check of what was read and the end
        return real(*args, **kwargs)

    monkeypatch.setattr(worker, "file_problem", replacing_the_source)
    target = tmp_path / "out.dcm"
    assert deidentify_file(str(source), str(target), Options(), KEY, "2.25") == ("failed", SOURCE_CHANGED)
    assert not target.exists() and [p.name for p in tmp_path.iterdir()] == ["src.dcm"]

"""Every quality check finds exactly what was planted in a generated tree, and nothing in
the clean files around it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import testdata
from dicom_factory import image_dataset, write
from pydicom.uid import generate_uid

from curate.index import build_index
from curate.inspect import query
from curate.inspect.quality import CHECKS, check_index

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


def clean(**attrs):
    """A valid image with every attribute the checks look at set to a good value."""
    values = dict(
        PatientID=f"P{generate_uid()[-8:]}",
        PatientAge="040Y",
        PatientSex="M",
        PatientBirthDate="19800101",
        StudyDate="20200101",
        StudyTime="101010",
        BurnedInAnnotation="NO",
        ImageType=["ORIGINAL", "PRIMARY"],
    )
    values.update(attrs)
    return image_dataset(**values)


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("quality")
    src = root / "src"
    for i in range(6):
        write(clean(), src / "clean" / f"{i}.dcm")
    # unreadable_files, not_dicom
    (src / "bad").mkdir(parents=True)
    (src / "bad" / "cut.dcm").write_bytes(testdata("CT_small.dcm").read_bytes()[:1000])
    (src / "bad" / "readme.txt").write_text("not an image")
    # missing_identity
    write(clean(SeriesInstanceUID=None), src / "bad" / "no_series.dcm")
    # invalid_values, invalid_times, invalid_ages, implausible_ages
    write(clean(StudyDate="20231345"), src / "bad" / "bad_date.dcm")
    write(clean(StudyTime="25:99"), src / "bad" / "bad_time.dcm")
    write(clean(PatientAge="45", PatientBirthDate=None), src / "bad" / "bad_age.dcm")
    write(clean(PatientAge="150Y"), src / "bad" / "old.dcm")
    # inconsistent_patients: one patient, two studies, two sexes
    write(clean(PatientID="INCONSISTENT", PatientSex="M"), src / "bad" / "inc1.dcm")
    write(clean(PatientID="INCONSISTENT", PatientSex="F"), src / "bad" / "inc2.dcm")
    # study_under_two_patients
    shared_study = generate_uid()
    write(clean(PatientID="OWNER1", StudyInstanceUID=shared_study), src / "bad" / "study1.dcm")
    write(clean(PatientID="OWNER2", StudyInstanceUID=shared_study), src / "bad" / "study2.dcm")
    # duplicate_instances: an identical copy, and a different file claiming the same UID
    write(clean(PatientID="COPIED"), src / "bad" / "copy1.dcm")
    shutil.copy(src / "bad" / "copy1.dcm", src / "bad" / "copy2.dcm")
    clash = clean(PatientID="CLASH", InstanceNumber="1")
    write(clash, src / "bad" / "clash1.dcm")
    clash.InstanceNumber = "2"
    write(clash, src / "bad" / "clash2.dcm")
    # mixed_modality_series
    series = generate_uid()
    study = generate_uid()
    write(
        clean(PatientID="MIXED", StudyInstanceUID=study, SeriesInstanceUID=series, Modality="CT"),
        src / "bad" / "mix1.dcm",
    )
    write(
        clean(PatientID="MIXED", StudyInstanceUID=study, SeriesInstanceUID=series, Modality="MR"),
        src / "bad" / "mix2.dcm",
    )
    # burned_in_annotation, derived_or_secondary
    write(clean(BurnedInAnnotation="YES"), src / "bad" / "burned.dcm")
    write(clean(ImageType=["DERIVED", "SECONDARY"]), src / "bad" / "derived.dcm")
    write(clean(SOPClassUID=SECONDARY_CAPTURE), src / "bad" / "capture.dcm")
    # pixel_data_vs_transfer_syntax: native pixels under RLE's UID (same length as
    # Explicit VR Little Endian's, so the file stays well formed), and pixels too short
    path = write(clean(), src / "bad" / "rle_claimed.dcm")
    path.write_bytes(path.read_bytes().replace(b"1.2.840.10008.1.2.1\x00", b"1.2.840.10008.1.2.5\x00", 1))
    short = clean()
    short.PixelData = bytes(64)
    write(short, src / "bad" / "short_pixels.dcm")
    # vanished: in the index, then deleted
    write(clean(), src / "gone.dcm")
    build_index(src, root / "idx", progress=False)
    (src / "gone.dcm").unlink()
    build_index(src, root / "idx", progress=False)
    return src, root / "idx"


EXPECTED = {
    "unreadable_files": (1, {"truncated": 1}),
    "salvaged": (1, {"truncated": 1}),  # the cut file's identity lies before the cut
    "not_dicom": (1, {}),
    "missing_identity": (1, {"no SeriesInstanceUID": 1}),
    "invalid_values": (1, {"StudyDate": 1}),
    "invalid_times": (1, {"StudyTime": 1}),
    "invalid_ages": (1, {}),
    "implausible_ages": (1, {}),
    "inconsistent_patients": (1, {"sex differs": 1}),
    "study_under_two_patients": (1, {}),
    "duplicate_instances": (2, {"identical copies": 1, "different bytes": 1}),
    "mixed_modality_series": (1, {}),
    "burned_in_annotation": (1, {"CT": 1}),
    "derived_or_secondary": (2, {"derived (ImageType)": 1, "secondary capture": 1}),
    "pixel_data_vs_transfer_syntax": (
        2,
        {"compressed syntax, native pixel data": 1, "pixel data shorter than the image it describes": 1},
    ),
    "vanished": (1, {}),
}


def test_catalogue_is_covered():
    assert [name for name, *_ in CHECKS] == list(EXPECTED)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_each_check_finds_exactly_what_was_planted(planted, name):
    src, idx = planted
    result = check_index(idx).by_name()[name]
    count, details = EXPECTED[name]
    assert result.skipped is None
    assert (result.count, result.details) == (count, details)
    assert len(result.examples) == min(count, 5)


def test_examples_are_row_ids_that_lead_back_to_the_files(planted):
    src, idx = planted
    report = check_index(idx).by_name()
    [row] = report["burned_in_annotation"].examples
    found = query.query(idx, f"SELECT path FROM idx WHERE row_id = {row}")
    assert Path(found.column("path")[0].as_py()).name == "burned.dcm"
    text = check_index(idx).format()
    assert "burned.dcm" not in text and "INCONSISTENT" not in text, "the report names no file and no patient"


def test_checks_needing_absent_columns_are_skipped(tmp_path):
    src = tmp_path / "src"
    write(clean(), src / "a.dcm")
    build_index(src, tmp_path / "idx", tags=["PatientID", "Modality"], progress=False)
    report = check_index(tmp_path / "idx").by_name()
    assert "PatientAge" in report["invalid_ages"].skipped
    assert report["unreadable_files"].skipped is None and report["unreadable_files"].count == 0
    assert report["missing_identity"].skipped is None  # PatientID is there; the UIDs are not required to be


def test_cli_prints_the_checks_and_writes_json(planted, tmp_path):
    import json

    from test_cli import run_curate

    src, idx = planted
    done = run_curate("quality", f"index={idx}", "json=out/quality.json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "study_under_two_patients" in done.stdout and "identical copies" in done.stdout
    saved = json.loads((tmp_path / "out" / "quality.json").read_text())
    assert {c["name"]: c["count"] for c in saved["checks"]}["duplicate_instances"] == 2
    assert "OWNER1" not in (tmp_path / "out" / "quality.json").read_text()

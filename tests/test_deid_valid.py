"""De-identified files stay valid: dciodvfy (Debian's dicom3tools, the validator the
MIDI-B challenge ran) finds no error in an output that it did not find in its source.

Errors are compared by attribute and kind: dciodvfy's messages quote values, which
de-identification changes, so quoted text and numbers are masked before comparing."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from conftest import dciodvfy
from pydicom.data import get_testdata_files

from curate.deid.profile import Options
from curate.deid.pseudonym import UUID_ROOT
from curate.deid.worker import deidentify_file

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
KEY = b"test key, not a secret, 32 bytes"
#: Quoted text, values in brackets, and numbers (a UID whole: 2.25.1 and 1.2.3.4 alike).
VALUES = re.compile(r'"[^"]*"|\'[^\']*\'|<[^>]*=[^>]*>|\[[^\]]*\]|\d+(\.\d+)*')
#: What dciodvfy says of a file it cannot parse: there is then nothing to compare with.
UNREADABLE = re.compile(r"read failed|giving up")


def errors(tool: str, path: Path) -> set[str] | None:
    """dciodvfy's errors for `path`, values masked; None where it cannot read the file."""
    run = subprocess.run([tool, str(path)], capture_output=True, text=True, errors="replace", timeout=60)
    lines = [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("Error")]
    if any(UNREADABLE.search(line) for line in lines):
        return None
    return {VALUES.sub("#", line) for line in lines}


@pytest.mark.parametrize(
    "options",
    [
        Options(),
        Options(clean_descriptors=True, clean_structured_content=True, retain_longitudinal_modified_dates=True),
    ],
    ids=["basic", "clean"],
)
def test_no_output_has_an_error_its_source_did_not_have(tmp_path, options):
    tool = dciodvfy()
    checked, new = 0, {}
    for number, source in enumerate(sorted(set(get_testdata_files("*.dcm")))):
        target = tmp_path / f"{number:04d}.dcm"
        # Every file the write path writes, held-back kinds too (pixels=redact writes them).
        if deidentify_file(source, str(target), options, KEY, UUID_ROOT, quarantine=False)[0] != "written":
            continue
        before = errors(tool, Path(source))
        if before is None:
            continue
        added = errors(tool, target) - before
        if added:
            new[os.path.basename(source)] = sorted(added)
        checked += 1
    assert checked >= 100
    assert new == {}


def test_no_file_written_by_others_is_held_back_for_its_header(tmp_path):
    """Values pydicom's files identify by are also words their headers keep (an
    institution TOSHIBA and a maker TOSHIBA_MEC in big endian, a Perfusion and an image
    type PERFUSION in a functional group, in sequences of undefined length): each is
    excused where it stands, and no file is held back for it."""
    from curate.deid.check import HEADER_LEAK, UID_LEAK

    held = []
    for number, source in enumerate(sorted(set(get_testdata_files("*.dcm")))):
        result = deidentify_file(
            source, str(tmp_path / f"{number:04d}.dcm"), Options(), KEY, UUID_ROOT, quarantine=False
        )
        if result[1] in (HEADER_LEAK, UID_LEAK):
            held.append(os.path.basename(source))
    assert held == []


@pytest.mark.parametrize("name", ["rtstruct.dcm", "ExplVR_BigEndNoMeta.dcm", "OT-PAL-8-face.dcm"])
def test_a_raw_data_set_is_written_as_a_part_10_file(tmp_path, name):
    """Files without preamble or file meta group (ACR-NEMA era exports; the scanner
    indexes them) are de-identified and written with both, their transfer syntax named
    from the encoding they are in: an RT Structure Set in implicit VR, a data set in
    explicit VR big endian, an 8-bit palette image."""
    import pydicom
    from pydicom.data import get_testdata_file

    source = get_testdata_file(name)
    assert open(source, "rb").read(132)[128:] != b"DICM"
    original = pydicom.dcmread(source, force=True)
    target = tmp_path / "out.dcm"
    assert deidentify_file(source, str(target), Options(), KEY, UUID_ROOT, quarantine=False) == ("written", None)
    assert target.read_bytes()[128:132] == b"DICM"
    written = pydicom.dcmread(target)  # a Part 10 file: no force needed
    implicit, little = original.original_encoding
    assert (
        written.file_meta.TransferSyntaxUID.is_implicit_VR,
        written.file_meta.TransferSyntaxUID.is_little_endian,
    ) == (
        implicit,
        little,
    )
    assert written.file_meta.MediaStorageSOPInstanceUID == written.SOPInstanceUID != original.SOPInstanceUID
    assert str(written.get("PatientName", "")) != str(original.get("PatientName", "")) or not original.get(
        "PatientName"
    )
    if "PixelData" in original:
        assert written.PixelData == original.PixelData


def test_a_file_that_starts_like_no_data_set_is_not_dicom(tmp_path):
    from curate.deid.worker import NOT_DICOM

    source = tmp_path / "notes.dcm"
    source.write_bytes(b"Patient: Jane Doe, MRN 12345\n" * 20)
    assert deidentify_file(str(source), str(tmp_path / "o.dcm"), Options(), KEY, UUID_ROOT) == ("failed", NOT_DICOM)
    assert not (tmp_path / "o.dcm").exists()


def test_an_ecgs_samples_do_not_spell_a_short_name(tmp_path):
    """16-bit samples 0x0041 0x008F 0x004E ... 0x006E: with the NULs dropped and the bytes
    no codec reads dropped too, they would read "ANn", the given name Ann."""
    import pydicom
    from pydicom.data import get_testdata_file

    ds = pydicom.dcmread(get_testdata_file("waveform_ecg.dcm"))
    ds.PatientName = "Head^Ann"
    ds.save_as(tmp_path / "src.dcm")
    result = deidentify_file(str(tmp_path / "src.dcm"), str(tmp_path / "o.dcm"), Options(), KEY, UUID_ROOT)
    assert result == ("written", None)

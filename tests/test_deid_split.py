"""De-identification rewrites the header and copies the pixel element's bytes: the output
is the same as reading and writing the whole file, the elements after Pixel Data go
through the profile, and text inside encapsulated pixel data is searched."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np
import pydicom
import pytest
from conftest import testdata
from dicom_factory import image_dataset, write
from pydicom.data import get_testdata_files
from pydicom.encaps import encapsulate, generate_frames

import curate.deid.split as split_module
import curate.deid.worker as worker
from curate.deid.profile import Options
from curate.deid.pseudonym import UUID_ROOT
from curate.deid.segments import text_segments
from curate.deid.split import CannotSplit, split_file

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
KEY = b"test key, not a secret, 32 bytes"
NAME = "Zyxwbrook^Quentalia"


def deid(source: Path, target: Path) -> tuple[str, str | None]:
    """The write path behind the quarantine (which holds back the secondary captures these
    tests cut)."""
    return worker.deidentify_file(str(source), str(target), Options(), KEY, UUID_ROOT, quarantine=False)


def whole_file_only(_path):
    raise CannotSplit("the whole file, for comparison")


def test_the_output_is_the_bytes_a_whole_file_rewrite_gives(tmp_path, monkeypatch):
    """Every pydicom test file: cut at its pixels, or read and written whole by pydicom,
    the de-identified file is the same, byte for byte."""
    compared = 0
    for source in sorted(set(get_testdata_files("*.dcm"))):
        try:
            split_file(source)
        except Exception:  # noqa: S112 - not cut: nothing to compare with
            continue
        fast, whole = tmp_path / "fast.dcm", tmp_path / "whole.dcm"
        fast.unlink(missing_ok=True)
        whole.unlink(missing_ok=True)
        got = deid(Path(source), fast)
        with monkeypatch.context() as patch:
            patch.setattr(worker, "split_file", whole_file_only)
            expected = deid(Path(source), whole)
        if expected[0] != "written":
            continue  # withheld by the whole-file path for its own reasons
        assert got == expected, os.path.basename(source)
        assert fast.read_bytes() == whole.read_bytes(), os.path.basename(source)
        compared += 1
    assert compared >= 60


def test_elements_after_pixel_data_go_through_the_profile(tmp_path):
    ds = image_dataset(PatientName=NAME, PatientID="P-7731")
    block = ds.private_block(0x7FE1, "ACME TRAILER", create=True)
    block.add_new(0x01, "LO", NAME)
    ds.add_new(0xFFFCFFFC, "OB", b"\0" * 16)  # Data Set Trailing Padding
    source = write(ds, tmp_path / "src.dcm")
    assert split_file(source).pixel_end < source.stat().st_size  # elements do follow the pixels
    target = tmp_path / "out.dcm"
    assert deid(source, target) == ("written", None)
    out = target.read_bytes()
    assert NAME.split("^")[0].encode() not in out and b"P-7731" not in out
    written = pydicom.dcmread(target)
    assert written.PixelData == ds.PixelData
    assert 0x7FE11001 not in written  # private, removed by the Basic Profile


def test_the_buffered_copy_gives_the_same_bytes_where_the_kernel_cannot(tmp_path, monkeypatch):
    source = testdata("CT_small.dcm")
    kernel, buffered = tmp_path / "kernel.dcm", tmp_path / "buffered.dcm"
    assert deid(source, kernel)[0] == "written"

    def refuse(*_args):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(split_module, "_copy_file_range", refuse)
    monkeypatch.setattr(split_module, "_sendfile", refuse)
    assert deid(source, buffered)[0] == "written"
    assert kernel.read_bytes() == buffered.read_bytes()


def with_segment(source: Path, target: Path, segment: bytes, where: str, **attrs) -> Path:
    """`source` (one frame, encapsulated) with `segment` put into its codestream: after
    the JPEG SOI or the JPEG 2000 main header's first marker segment (``head``), or
    just before the JPEG EOI (``tail``, past the entropy-coded data)."""
    ds = pydicom.dcmread(source)
    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    if where == "head" and frame[:2] == b"\xff\xd8":
        frame = frame[:2] + segment + frame[2:]
    elif where == "head":  # JPEG 2000: SOC, then SIZ, then the segment
        siz_end = 4 + int.from_bytes(frame[4:6], "big")
        frame = frame[:siz_end] + segment + frame[siz_end:]
    else:
        end = frame.rindex(b"\xff\xd9")
        frame = frame[:end] + segment + frame[end:]
    ds.PixelData = encapsulate([frame])
    for keyword, value in attrs.items():
        setattr(ds, keyword, value)
    ds.save_as(target)
    return target


def jpeg_segment(marker: int, text: bytes) -> bytes:
    return bytes([0xFF, marker]) + (len(text) + 2).to_bytes(2, "big") + text


def j2k_comment(text: bytes) -> bytes:
    return b"\xff\x64" + (len(text) + 2).to_bytes(2, "big") + text


@pytest.mark.parametrize(
    "name, segment, where",
    [
        ("SC_rgb_jpeg_dcmtk.dcm", jpeg_segment(0xFE, b"patient Zyxwbrook Quentalia"), "head"),
        ("SC_rgb_jpeg_dcmtk.dcm", jpeg_segment(0xFE, b"id P-7731"), "tail"),
        ("SC_rgb_jpeg_dcmtk.dcm", jpeg_segment(0xE1, b"Exif\0\0 ZYXWBROOK"), "head"),
        ("MR_small_jpeg_ls_lossless.dcm", jpeg_segment(0xFE, b"Zyxwbrook"), "tail"),
        ("MR_small_jp2klossless.dcm", j2k_comment(b"\0\1Quentalia"), "head"),
    ],
)
def test_the_patients_name_or_id_in_a_codestream_segment_is_cut_out_the_image_unchanged(tmp_path, name, segment, where):
    source = with_segment(testdata(name), tmp_path / "src.dcm", segment, where, PatientName=NAME, PatientID="P-7731")
    syntax = str(pydicom.dcmread(source).file_meta.TransferSyntaxUID)
    found = text_segments(source, split_file(source).fragments, syntax)
    assert any(segment in s.data for s in found)
    target = tmp_path / "out.dcm"
    audit = Counter()
    assert worker.deidentify_file(str(source), str(target), Options(), KEY, UUID_ROOT, audit, quarantine=False) == (
        "written",
        None,
    )
    assert audit["PixelData", "text segments removed"] == 1
    written = target.read_bytes()
    for value in (b"Zyxwbrook", b"ZYXWBROOK", b"Quentalia", b"P-7731", segment):
        assert value not in written, value
    out = pydicom.dcmread(target)
    assert str(out.file_meta.TransferSyntaxUID) == syntax
    assert np.array_equal(out.pixel_array, pydicom.dcmread(source).pixel_array)
    assert not any(segment in s.data for s in text_segments(target, split_file(target).fragments, syntax))


def test_a_name_in_a_segment_the_colours_need_keeps_the_file_back(tmp_path):
    icc = jpeg_segment(0xE2, b"ICC_PROFILE\0 Zyxwbrook Quentalia")
    source = with_segment(testdata("SC_rgb_jpeg_dcmtk.dcm"), tmp_path / "src.dcm", icc, "head", PatientName=NAME)
    target = tmp_path / "out.dcm"
    assert deid(source, target) == ("failed", worker.PIXEL_TEXT_LEAK)
    assert not target.exists()


def test_a_cut_that_would_change_the_image_keeps_the_file_back(tmp_path, monkeypatch):
    from curate.deid import strip

    source = with_segment(
        testdata("SC_rgb_jpeg_dcmtk.dcm"),
        tmp_path / "src.dcm",
        jpeg_segment(0xFE, b"Zyxwbrook"),
        "head",
        PatientName=NAME,
    )
    decoded = strip._decoded
    calls = []

    def other_image(ds, value):
        image = decoded(ds, value)
        calls.append(1)
        return image if len(calls) == 1 else image[::-1]

    monkeypatch.setattr(strip, "_decoded", other_image)
    target = tmp_path / "out.dcm"
    assert deid(source, target) == ("failed", worker.PIXEL_TEXT_LEAK)
    assert not target.exists() and len(calls) == 2


def test_an_encoders_comment_is_not_taken_for_the_patient(tmp_path):
    segment = jpeg_segment(0xFE, b"Created by an encoder, version 2")
    source = with_segment(testdata("SC_rgb_jpeg_dcmtk.dcm"), tmp_path / "src.dcm", segment, "head", PatientName=NAME)
    assert deid(source, tmp_path / "out.dcm") == ("written", None)


@pytest.mark.parametrize("text, status", [(b"Zyxwbrook", "failed"), (b"no name here", "written")])
def test_a_codestream_that_cannot_be_walked_is_searched_whole(tmp_path, text, status):
    ds = pydicom.dcmread(testdata("MR_small_jp2klossless.dcm"))
    frame = b"\x00\x01not a codestream: " + text
    ds.PixelData = encapsulate([frame + b"\0" * (len(frame) % 2)])
    ds.PatientName = NAME
    source = tmp_path / "src.dcm"
    ds.save_as(source)
    assert deid(source, tmp_path / "out.dcm")[0] == status

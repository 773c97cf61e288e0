"""curate deid pixels=redact: held-back files with text in their pixels, redacted with
the real Tesseract, de-identified, validated by dciodvfy, and read again."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from conftest import dciodvfy, need_tesseract
from pydicom.data import get_testdata_file

from curate.deid.display import displayed, stored_frames
from curate.deid.pixels import TEXT_REMAINS
from curate.deid.sandbox import Burned, burn, flat, image_dataset
from curate.deid.tree import AUDIT_DIR, deidentify_tree
from curate.errors import ConfigError

KEY = b"test key, not a secret, 32 bytes"
NAME, PATIENT_ID, BORN = "DOE^JANE", "4711-0815", "19610714"


@pytest.fixture(autouse=True, scope="module")
def tesseract():
    need_tesseract()


def screen_capture(path: Path) -> None:
    """A secondary capture whose pixels show the patient's name, ID and birth date."""
    image, _ = burn(
        flat(480, 640, 235),
        [
            Burned(NAME, 20, 20, 26, brightness=0.0),
            Burned(PATIENT_ID, 20, 70, 22, "LiberationMono-Regular.ttf", brightness=0.0),
            Burned("1961-07-14", 420, 430, 22, "DejaVuSans-Bold.ttf", brightness=0.0),
        ],
    )
    image[150:400, 100:540] = 60  # the picture the screen shows
    ds = image_dataset(
        image,
        PatientName=NAME,
        PatientID=PATIENT_ID,
        PatientBirthDate=BORN,
        StudyInstanceUID=pydicom.uid.generate_uid(),
        SeriesInstanceUID=pydicom.uid.generate_uid(),
        ConversionType="WSD",
        BurnedInAnnotation="YES",
    )
    ds.save_as(path, enforce_file_format=True)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("held-back")
    screen_capture(root / "screen.dcm")
    for name in ("US1_UNCR.dcm", "OBXXXX1A.dcm", "CT_small.dcm"):
        shutil.copyfile(get_testdata_file(name), root / name)
    return root


@pytest.fixture(scope="module")
def redacted(tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("redacted") / "out"
    return out, deidentify_tree(tree, out, KEY, pixels="redact", workers=2, progress=False)


def source_of(out: Path, sop_class: str, rows: int) -> Path:
    for path in out.rglob("*.dcm"):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        if ds.SOPClassUID == sop_class and ds.Rows == rows:
            return path
    raise AssertionError("not written")


def words_read(ds) -> set[str]:
    from curate.deid.redact import FrameText

    found = set()
    for grey in displayed(ds, stored_frames(ds)):
        found |= FrameText.of(grey).tokens
    return found


def test_by_default_they_are_held_back(tree, tmp_path):
    summary = deidentify_tree(tree, tmp_path / "out", KEY, progress=False, workers=2)
    assert summary.written == 1 and summary.redacted == 0  # the CT only
    assert summary.quarantined == {"burned-in annotation": 1, "ultrasound": 2}


def test_redacted_files_are_written_and_say_so(redacted):
    out, summary = redacted
    assert summary.written == 3 and summary.redacted == 2, summary.format()
    # The palette-colour ultrasound stays held back, with its reason.
    assert summary.quarantined == {"palette colour pixels are not redacted": 1}
    screen = pydicom.dcmread(source_of(out, "1.2.840.10008.5.1.4.1.1.7", 480))
    assert screen.BurnedInAnnotation == "NO"
    codes = [item.CodeValue for item in screen.DeidentificationMethodCodeSequence]
    assert codes[0] == "113100" and "113101" in codes
    assert screen.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    ultrasound = pydicom.dcmread(source_of(out, "1.2.840.10008.5.1.4.1.1.6.1", 480))
    assert ultrasound.PhotometricInterpretation == "RGB" and ultrasound.BurnedInAnnotation == "NO"
    assert "redacted" in summary.format() and summary.metrics()["redacted"] == 2


def test_no_word_read_in_the_source_is_read_in_the_output(redacted, tree):
    out, _ = redacted
    for name, sop_class in (
        ("screen.dcm", "1.2.840.10008.5.1.4.1.1.7"),
        ("US1_UNCR.dcm", "1.2.840.10008.5.1.4.1.1.6.1"),
    ):
        before = {w for w in words_read(pydicom.dcmread(tree / name)) if len(w) >= 3}
        assert before, name
        after = words_read(pydicom.dcmread(source_of(out, sop_class, 480)))
        assert not (before & after), (name, before & after)
    assert {"DOEJANE", "47110815"} & words_read(pydicom.dcmread(tree / "screen.dcm"))


def test_what_was_filled_is_in_the_audit_without_text(redacted):
    out, summary = redacted
    assert summary.redaction_file is not None and summary.redaction_file.parent == out / AUDIT_DIR
    with open(summary.redaction_file, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2
    for row in rows:
        assert int(row["boxes"]) == len(json.loads(row["regions"])) > 0 and int(row["area_px"]) > 0
        assert (out / row["file"]).exists()
    # Every value but the output's name (pseudonymous UIDs: digits, in which "4711" may
    # occur by chance) is searched for the text that was in the pixels.
    assert all(re.fullmatch(r"[0-9.]+/[0-9.]+/[0-9.]+\.dcm", row["file"]) for row in rows)
    text = "\n".join(",".join(v for k, v in row.items() if k != "file") for row in rows)
    for value in ("DOE", "JANE", "4711", "MED", "LYMPH"):
        assert value not in text
    # The run's audit by attribute counts the redactions too, and the run log the run.
    with open(summary.audit_file, newline="") as f:
        pixel_rows = [row for row in csv.DictReader(f) if row["attribute"] == "PixelData"]
    assert [row["redacted"] for row in pixel_rows] == ["2"]
    assert summary.run_entry["counts"]["redacted"] == 2


def test_redacted_files_pass_dciodvfy(redacted):
    tool = dciodvfy()
    out, _ = redacted
    screen = source_of(out, "1.2.840.10008.5.1.4.1.1.7", 480)
    run = subprocess.run([tool, str(screen)], capture_output=True, text=True, errors="replace", timeout=60)
    errors = [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("Error")]
    assert errors == []


def test_a_file_whose_text_is_still_read_stays_held_back(tree, tmp_path, monkeypatch):
    import curate.deid.pixels as pixels

    real = pixels.redact
    monkeypatch.setattr(pixels, "redact", lambda ds, regions: real(ds, regions, rounds=2))
    # Two readings are not enough for this ultrasound's annotation (see test_redact).
    (tmp_path / "src").mkdir()
    shutil.copyfile(get_testdata_file("US1_UNCR.dcm"), tmp_path / "src" / "us.dcm")
    summary = deidentify_tree(tmp_path / "src", tmp_path / "out", KEY, pixels="redact", workers=1, progress=False)
    assert summary.written == 0 and summary.quarantined == {TEXT_REMAINS: 1}
    assert not list((tmp_path / "out").rglob("*.dcm"))


def test_pixels_must_be_quarantine_or_redact(tree, tmp_path):
    with pytest.raises(ConfigError, match="pixels must be"):
        deidentify_tree(tree, tmp_path / "out", KEY, pixels="blur", progress=False)


def test_a_redacted_screen_keeps_its_picture(redacted, tree):
    out, _ = redacted
    source = stored_frames(pydicom.dcmread(tree / "screen.dcm"))[0]
    written = stored_frames(pydicom.dcmread(source_of(out, "1.2.840.10008.5.1.4.1.1.7", 480)))[0]
    assert np.array_equal(written[160:390, 110:530], source[160:390, 110:530])


def test_a_digitized_film_with_its_label_is_redacted_and_written(tmp_path):
    from PIL import Image

    from curate.digitize import digitize
    from curate.digitize.sandbox import generate_films

    films = generate_films(tmp_path / "films", count=2, rows=900, columns=700)
    for row in films.rows:
        path = films.source / row["file"]
        label = [Burned(row["patient_name"].upper(), 30, 30, 30), Burned(row["patient_id"], 30, 80, 26)]
        Image.fromarray(burn(np.asarray(Image.open(path)), label)[0]).save(path)
    assert digitize(films.source, films.manifest, tmp_path / "dicom", progress=False).written == 2
    held = deidentify_tree(tmp_path / "dicom", tmp_path / "held", KEY, progress=False, workers=1)
    assert held.written == 0 and held.quarantined == {"burned-in annotation": 2}
    summary = deidentify_tree(tmp_path / "dicom", tmp_path / "out", KEY, pixels="redact", progress=False, workers=1)
    assert summary.written == summary.redacted == 2, summary.format()
    for source, written in zip(
        sorted((tmp_path / "dicom").rglob("*.dcm"), key=lambda p: pydicom.dcmread(p).InstanceNumber),
        sorted((tmp_path / "out").rglob("*.dcm"), key=lambda p: pydicom.dcmread(p).InstanceNumber),
        strict=True,
    ):
        before = words_read(pydicom.dcmread(source))
        assert any(w.startswith("FILM") for w in before)  # the label's patient ID was readable
        after = words_read(pydicom.dcmread(written))
        assert not ({w for w in before if len(w) >= 3} & after)
        assert pydicom.dcmread(written).ConversionType == "DF"


def test_the_command_line_redacts_with_regions_from_the_config(tree, tmp_path, monkeypatch):
    from curate.cli import main

    monkeypatch.setenv("CURATE_DEID_KEY", KEY.hex())
    monkeypatch.setenv("CURATE_RUNS_DIR", str(tmp_path / "runs"))
    region = '[{manufacturer: ACME, model: "US 1", rows: 480, columns: 640, boxes: [[0, 0, 640, 40]]}]'
    args = ["deid", f"source={tree}", "tracking=off", "progress=false", "workers=1", "pixels=redact"]
    assert main([*args, f"output={tmp_path / 'out'}", f"pixel_regions={region}"]) == 0
    assert len(list((tmp_path / "out").rglob("*.dcm"))) == 3
    with pytest.raises(SystemExit) as exit_:
        main([*args, f"output={tmp_path / 'bad'}", "pixel_regions=[{rows: 1}]"])
    assert exit_.value.code == 2


def test_a_reason_redaction_cannot_lift_keeps_the_file_back(tmp_path):
    # Burned-in text on a photograph of a face, and on a scanned document: filling the
    # text would leave the face, or a page of text.
    source = tmp_path / "src"
    source.mkdir()
    image, _ = burn(flat(300, 400, 20), [Burned(NAME, 20, 20, 26)])
    rgb = np.stack([image] * 3, axis=-1)
    photo = image_dataset(
        rgb, "RGB", Modality="XC", BurnedInAnnotation="YES", RecognizableVisualFeatures="YES", PatientName=NAME
    )
    photo.SOPClassUID = "1.2.840.10008.5.1.4.1.1.77.1.4"
    photo.save_as(source / "photo.dcm", enforce_file_format=True)
    image_dataset(image, ConversionType="SD", BurnedInAnnotation="YES").save_as(
        source / "page.dcm", enforce_file_format=True
    )
    summary = deidentify_tree(source, tmp_path / "out", KEY, pixels="redact", progress=False, workers=1)
    assert summary.written == 0
    assert summary.quarantined == {"recognizable visual features": 1, "scanned document": 1}


def test_float_pixel_data_is_not_redacted():
    from curate.deid.pixels import PixelRedaction, redact_pixels

    image, _ = burn(flat(100, 200, 20), [Burned(NAME, 10, 10, 20)])
    ds = image_dataset(image)
    del ds.PixelData
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 32, 32, 31
    ds.FloatPixelData = image.astype(np.float32).tobytes()
    assert redact_pixels(ds, PixelRedaction(), {}) == "float pixel data is not redacted"


def test_the_report_counts_what_each_run_redacted_and_quarantined(redacted, tree, tmp_path):
    from test_cli import run_curate

    from curate.index import build_index
    from curate.inspect.report import build_report

    out, summary = redacted
    held = tmp_path / "held"
    again = [deidentify_tree(tree, held, KEY, progress=False, workers=1) for _ in range(2)]  # a rerun: a second entry
    build_index(tree, tmp_path / "idx", progress=False)
    report = build_report(tmp_path / "idx", tmp_path / "rep", deid=[out, held])
    [first, second] = json.loads(report.summary_path.read_text())["deidentification"]
    assert first["store"] == "store 1" and first["runs_in_log"] == 1
    [run] = first["runs"]
    assert (run["files"], run["written"], run["redacted"]) == (4, 3, 2)
    assert run["quarantined"] == 1 and first["last_quarantined_by_reason"] == summary.quarantined
    assert second["runs_in_log"] == 2
    assert [r["already_done"] for r in second["runs"]] == [0, 1] and again[1].already_done == 1
    assert second["last_quarantined_by_reason"] == {"ultrasound": 2, "burned-in annotation": 1}
    page = report.html_path.read_text()
    assert "<h2>De-identification</h2>" in page and "palette colour pixels are not redacted" in page
    for text in (page, report.summary_path.read_text()):
        assert str(tmp_path) not in text and NAME not in text and PATIENT_ID not in text  # no path, no PHI
    assert report.metrics()["deid.store_1.redacted"] == 2 and report.metrics()["deid.store_2.quarantined"] == 3
    assert "deid store 2, last run: 1 of 4 files written (0 redacted by it), 3 quarantined" in report.format()

    done = run_curate("report", "index=idx", "out=rep2", "deid=[held,nowhere]", "tracking=off", cwd=tmp_path)
    assert done.returncode != 0 and "no de-identified store" in done.stderr and "nowhere" in done.stderr
    assert not (tmp_path / "rep2").exists(), "nothing is written for a store that is not one"

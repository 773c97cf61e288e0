"""`curate deid` on a tree: nothing planted survives, quarantine, resumable, verified."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from dicom_factory import image_dataset, write
from test_cli import run_curate
from test_deid_engine import KEY, PLANTED, planted

from curate.deid import Options
from curate.deid.tree import AUDIT_DIR, deidentify_tree

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
UID_NAME = re.compile(r"^2\.25\.\d+$")


@pytest.fixture()
def tree(tmp_path) -> Path:
    src = tmp_path / "src"
    (src / "Quux_Zebulon").mkdir(parents=True)  # folder names carry PHI too, as in real exports
    planted().save_as(src / "Quux_Zebulon" / "ct.dcm", enforce_file_format=True)
    planted("MR_small.dcm").save_as(src / "Quux_Zebulon" / "mr.dcm", enforce_file_format=True)
    hostile = planted(pid="../../x")
    hostile.SOPInstanceUID = "1.2.3.999"
    hostile.save_as(src / "hostile.dcm", enforce_file_format=True)
    write(image_dataset(PatientID="BURN", BurnedInAnnotation="YES"), src / "burned.dcm")
    write(image_dataset(PatientID="SC", SOPClassUID="1.2.840.10008.5.1.4.1.1.7", Modality="OT"), src / "capture.dcm")
    (src / "notes.txt").write_text("Zebulon Quux's notes")
    return src


def hashes(folder: Path) -> dict[str, str]:
    """Every file's digest, but each run's own audit."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file() and AUDIT_DIR not in p.relative_to(folder).parts
    }


def test_tree_is_deidentified_quarantined_and_verified(tree, tmp_path):
    out = tmp_path / "out"
    summary = deidentify_tree(tree, out, KEY, progress=False, workers=2)
    assert (summary.files, summary.written) == (6, 3)
    assert dict(summary.quarantined) == {"burned-in annotation": 1, "secondary capture": 1}
    assert dict(summary.failed) == {"not_dicom": 1}
    assert summary.ok and summary.leaks == 0
    files = list(out.rglob("*.dcm"))
    assert len(files) == 3
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == [".curate-deid.json"]
    for path in files:
        assert path.resolve().is_relative_to(out.resolve()), "nothing escapes the output folder"
        rel = path.relative_to(out)
        assert len(rel.parts) == 3 and all(UID_NAME.match(p.removesuffix(".dcm")) for p in rel.parts)
        data = path.read_bytes()
        for value in PLANTED + ["../../x", "Quux_Zebulon"]:
            assert value.encode() not in data, (value, rel)
    assert not list(out.rglob("*.partial"))
    # The output is valid DICOM that the scanner and pydicom read back.
    import pydicom

    import curate

    rows = curate.scan(sorted(files)).to_pylist()
    assert [r["status"] for r in rows] == ["ok"] * 3
    assert all(r["PatientName"] is None and r["SOPInstanceUID"].startswith("2.25.") for r in rows)
    assert all(pydicom.dcmread(p).PatientIdentityRemoved == "YES" for p in files)
    # Pixel data is copied bit for bit.
    source_pixels = {
        hashlib.sha256(pydicom.dcmread(p).PixelData).hexdigest()
        for p in tree.rglob("*.dcm")
        if p.name in ("ct.dcm", "mr.dcm", "hostile.dcm")
    }
    assert {hashlib.sha256(pydicom.dcmread(p).PixelData).hexdigest() for p in files} == source_pixels


def test_rerun_resumes_and_gives_the_same_bytes(tree, tmp_path):
    out = tmp_path / "out"
    deidentify_tree(tree, out, KEY, progress=False)
    first = hashes(out)
    # A killed run leaves some files written and some not: remove one and rerun.
    victim = sorted(out.rglob("*.dcm"))[0]
    victim.rename(victim.with_name(f".{victim.name}.4242.partial"))  # written, never checked
    again = deidentify_tree(tree, out, KEY, progress=False)
    assert (again.written, again.already_done) == (1, 2)
    assert hashes(out) == first, "the same bytes, and nothing half-done left behind"


def test_mapping_is_kept_only_where_asked_and_never_in_the_output(tree, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="inside the output"):
        deidentify_tree(tree, out, KEY, mapping=out / "map.csv", progress=False)
    deidentify_tree(tree, out, KEY, mapping=tmp_path / "private" / "map.csv", progress=False)
    text = (tmp_path / "private" / "map.csv").read_text()
    assert "PatientID,ZB-99881," in text and "../../x" in text
    assert not any("map" in p.name for p in out.rglob("*"))


def forget_patient_name(monkeypatch) -> None:
    """A broken engine that forgets to clean PatientName."""
    from curate.deid import engine

    real = engine.Deidentifier._dataset

    def leaky(self, ds, *walk):
        name = ds.get("PatientName")
        real(self, ds, *walk)
        if name is not None:
            ds.PatientName = name

    monkeypatch.setattr(engine.Deidentifier, "_dataset", leaky)


def test_a_file_the_check_holds_back_is_counted_withheld_not_leaked(tree, tmp_path, monkeypatch):
    forget_patient_name(monkeypatch)
    summary = deidentify_tree(tree, tmp_path / "out", KEY, progress=False, workers=1)
    assert dict(summary.withheld) == {"identifying text left in the header": 3}
    assert summary.leaks == 0 and summary.ok and summary.exit_code == 0
    assert not list((tmp_path / "out").rglob("*.dcm")), "a file that fails the check is never put in place"
    assert "withheld by a check" in summary.format() and "verification: passed" in summary.format()


def test_verification_catches_a_value_that_survived(tree, tmp_path, monkeypatch):
    from curate.deid import worker

    # The engine forgets the name and the per-file check is gone: the last pass must see it.
    forget_patient_name(monkeypatch)
    monkeypatch.setattr(worker, "file_problem", lambda *args: None)
    summary = deidentify_tree(tree, tmp_path / "out", KEY, progress=False, workers=1)
    assert summary.written == 3 and sum(summary.withheld.values()) == 0
    assert summary.leaks == 3 and not summary.ok and summary.exit_code == 3


def test_two_files_with_one_sop_instance_uid_never_overwrite(tmp_path):
    src = tmp_path / "src"
    uid = "1.3.6.1.4.1.9590.100.1.2.4242"
    same = dict(PatientID="A1", SOPInstanceUID=uid, StudyInstanceUID=uid + ".1", SeriesInstanceUID=uid + ".2")
    write(image_dataset(InstanceNumber="1", **same), src / "a.dcm")
    write(image_dataset(InstanceNumber="2", **same), src / "b.dcm")
    summary = deidentify_tree(src, tmp_path / "out", KEY, progress=False, workers=2)
    assert (summary.written, summary.clashes, summary.ok) == (1, 1, True)
    [written] = list((tmp_path / "out").rglob("*.dcm"))
    import pydicom

    assert pydicom.dcmread(written).InstanceNumber in (1, 2)  # one whole file, not a mix
    assert "same SOP Instance UID as another file" in summary.format()


def test_a_later_source_with_the_sop_instance_uid_of_a_file_written_before_is_a_clash(tmp_path):
    """A rerun resumes the files it wrote; a new source whose SOP Instance UID is that of a
    file an earlier run wrote from another source is counted as a clash, not as written
    before, and the file stays as it was."""
    import os

    import pydicom

    src, out = tmp_path / "src", tmp_path / "out"
    uid = "1.3.6.1.4.1.9590.100.1.2.4243"
    same = dict(PatientID="A1", SOPInstanceUID=uid, StudyInstanceUID=uid + ".1", SeriesInstanceUID=uid + ".2")
    write(image_dataset(InstanceNumber="1", **same), src / "a.dcm")
    assert deidentify_tree(src, out, KEY, progress=False, workers=1).written == 1
    [written] = list(out.rglob("*.dcm"))
    first = written.read_bytes()
    again = deidentify_tree(src, out, KEY, progress=False, workers=1)
    assert (again.already_done, again.clashes) == (1, 0)  # the same source: resumed
    write(image_dataset(InstanceNumber="2", **same), src / "b.dcm")
    stat = (src / "b.dcm").stat()
    os.utime(src / "b.dcm", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # not a's size and time
    later = deidentify_tree(src, out, KEY, progress=False, workers=1)
    assert (later.written, later.already_done, later.clashes) == (0, 1, 1)
    assert written.read_bytes() == first and pydicom.dcmread(written).InstanceNumber == 1
    assert "same SOP Instance UID as another file" in later.format()


def test_options_keep_what_they_say(tree, tmp_path):
    out = tmp_path / "out"
    summary = deidentify_tree(tree, out, KEY, Options(retain_institution_identity=True), progress=False)
    assert summary.ok, "a kept attribute is not a leak"
    assert any(b"Zebulon General Hospital" in p.read_bytes() for p in out.rglob("*.dcm"))


def deid_cli(source: Path, output: str, cwd: Path, *extra: str, **env: str):
    """`curate deid` on `source`, one worker, no progress bar, with the test key."""
    return run_curate(
        "deid",
        f"source={source}",
        f"output={output}",
        "progress=false",
        "workers=1",
        *extra,
        cwd=cwd,
        env={"CURATE_DEID_KEY": KEY.decode(), **env},
    )


def test_cli_needs_a_key_and_never_takes_it_from_the_config(tree, tmp_path):
    no_key = run_curate(
        "deid", f"source={tree}", "output=out", "tracking=off", cwd=tmp_path, env={"CURATE_DEID_KEY": ""}
    )
    assert no_key.returncode == 2 and "CURATE_DEID_KEY" in no_key.stderr
    done = deid_cli(tree, "out", tmp_path, "tracking=off")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "verification: passed" in done.stdout
    for config in (tmp_path / "runs").rglob("*.yaml"):
        assert KEY.decode() not in config.read_text(), "the key is never written with the run's config"


def test_resuming_with_other_settings_is_refused(tree, tmp_path):
    out = tmp_path / "out"
    deidentify_tree(tree, out, KEY, Options(clean_descriptors=True), progress=False)
    with pytest.raises(ValueError, match="other options"):
        deidentify_tree(tree, out, KEY, progress=False)
    with pytest.raises(ValueError, match="other options"):
        deidentify_tree(
            tree, out, b"a different key for the same folder!!", Options(clean_descriptors=True), progress=False
        )
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "something.txt").write_text("x")
    with pytest.raises(ValueError, match="not empty"):
        deidentify_tree(tree, tmp_path / "full", KEY, progress=False)


def test_output_of_other_rules_is_not_resumed(tree, tmp_path):
    import json

    out = tmp_path / "out"
    deidentify_tree(tree, out, KEY, progress=False)
    manifest = json.loads((out / ".curate-deid.json").read_text())
    del manifest["rules"]  # as an earlier curate wrote it
    (out / ".curate-deid.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="another version of curate's rules"):
        deidentify_tree(tree, out, KEY, progress=False)


def test_more_kinds_of_pictures_are_quarantined(tmp_path):
    src = tmp_path / "src"
    write(image_dataset(ImageType=["DERIVED", "SECONDARY", "SCREEN SAVE"]), src / "screen.dcm")
    write(image_dataset(RecognizableVisualFeatures="YES"), src / "face.dcm")
    write(image_dataset(Modality="ES"), src / "endoscopy.dcm")
    write(image_dataset(), src / "plain.dcm")
    summary = deidentify_tree(src, tmp_path / "out", KEY, progress=False)
    assert dict(summary.quarantined) == {
        "screen save": 1,
        "recognizable visual features": 1,
        "visible light (endoscopy)": 1,
    }
    assert summary.written == 1


def test_the_mapping_file_is_private(tree, tmp_path):
    deidentify_tree(tree, tmp_path / "out", KEY, mapping=tmp_path / "map.csv", progress=False)
    assert (tmp_path / "map.csv").stat().st_mode & 0o777 == 0o600


def test_each_run_writes_an_audit_by_attribute_without_values(tree, tmp_path):
    import csv

    out = tmp_path / "out"
    summary = deidentify_tree(tree, out, KEY, progress=False, workers=2)
    assert summary.audit_file is not None and summary.audit_file.parent == out / AUDIT_DIR
    assert summary.artifacts() == [summary.audit_file]
    rows = {row["attribute"]: row for row in csv.DictReader(summary.audit_file.open())}
    written = summary.written
    assert int(rows["PatientID"]["replaced"]) >= written  # at any depth: other patients' IDs too
    assert int(rows["SOPInstanceUID"]["pseudonymised"]) == written
    assert int(rows["PatientName"].get("emptied", 0)) + int(rows["PatientName"].get("removed", 0)) >= written
    assert "kept" not in rows["PatientName"] or rows["PatientName"]["kept"] == "0"
    text = summary.audit_file.read_text()
    for value in PLANTED + ["Quux_Zebulon", str(tree)]:
        assert value not in text
    assert "audit:" in summary.format()


def test_no_path_reaches_the_hydra_run_folder(tree, tmp_path):
    """Folders are named after patients: neither the source's nor the output's path is
    written with the run (Hydra's .hydra/config.yaml and overrides.yaml would hold them)."""
    source = tmp_path / "Quux_Zebulon_export"
    tree.rename(source)
    done = deid_cli(source, "Zebulon_deid", tmp_path, "tracking=off")
    assert done.returncode == 0, done.stderr[-2000:]
    runs = [p for p in (tmp_path / "runs").rglob("*") if p.is_file()]
    for path in runs:
        text = path.read_bytes()
        assert b"Quux_Zebulon" not in text and b"Zebulon_deid" not in text, path.name
    assert not [p for p in (tmp_path / "runs").rglob(".hydra")]


def test_the_mlflow_store_holds_no_path_of_the_working_folder(tree, tmp_path):
    """MLflow records every experiment's and run's artifact location: curate's own
    folder, never the working folder (often named after the patient whose export it is)."""
    import sqlite3

    work = tmp_path / "Quux_Zebulon_work"
    work.mkdir()
    store, home = tmp_path / "store" / "mlflow.db", tmp_path / "curate-home"
    done = deid_cli(tree, "out", work, MLFLOW_TRACKING_URI=f"sqlite:///{store}", CURATE_HOME=str(home))
    assert done.returncode == 0, done.stderr[-2000:]
    db = sqlite3.connect(store)
    tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    for table in tables:
        for row in db.execute(f"SELECT * FROM {table}"):
            assert "Quux_Zebulon" not in repr(row), table
    locations = [row[0] for row in db.execute("SELECT artifact_location FROM experiments")]
    assert locations and all(home.as_uri() in location for location in locations)
    assert (home / "mlartifacts").is_dir()

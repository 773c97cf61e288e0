"""Dataset versions: content-addressed, immutable, patient-level splits, de-identified,
never half-written, and comparable."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pydicom
import pytest
from dicom_factory import image_dataset, write
from test_deid_engine import KEY

from curate.dataset import DatasetSpec, build_dataset, diff, list_versions, plan_dataset
from curate.dataset.build import MANIFEST
from curate.index import build_index

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def make_archive(root: Path, patients: int = 12) -> Path:
    """Chest radiographs of `patients` patients (2-3 images each, PA or lateral), one
    knee image, one burned-in capture, and an exact copy of one file under another name."""
    src = root / "src"
    for p in range(patients):
        for i in range(2 + p % 2):
            view = "PA" if i % 2 == 0 else "LL"
            ds = image_dataset(
                PatientID=f"PAT{p:03d}",
                PatientName=f"Doe^Patient{p}",
                Modality="DX",
                BodyPartExamined="CHEST",
                ViewPosition=view,
                PatientAge="050Y",
                InstanceNumber=str(i + 1),
            )
            ds.PixelData = bytes([p, i]) * 64  # distinct pixels per image
            write(ds, src / f"p{p:03d}" / f"{i}.dcm")
    write(image_dataset(PatientID="KNEE", Modality="DX", BodyPartExamined="KNEE"), src / "knee.dcm")
    burned = image_dataset(PatientID="BURN", Modality="DX", BodyPartExamined="CHEST", BurnedInAnnotation="YES")
    burned.PixelData = bytes([200, 1]) * 64
    write(burned, src / "burned.dcm")
    shutil.copy(src / "p000" / "0.dcm", src / "p000" / "copy.dcm")
    return src


SPEC = {
    "name": "chest_views",
    "select": "Modality IN ('CR', 'DX') AND body_part = 'CHEST'",
    "label": "view",
    "split": {"train": 0.5, "val": 0.25, "test": 0.25},
}


@pytest.fixture()
def archive(tmp_path):
    src = make_archive(tmp_path)
    build_index(src, tmp_path / "idx", progress=False)
    return tmp_path


def build(archive: Path, root: str = "datasets", **changes):
    spec = DatasetSpec.from_dict({**SPEC, **changes})
    return build_dataset(spec, archive / "idx", archive / root, KEY, workers=2)


def manifest(result) -> pd.DataFrame:
    return pd.read_parquet(result.path / MANIFEST)


def test_a_screen_save_that_no_header_calls_burned_in_is_held_back(tmp_path):
    """A chest screen save of a DX viewer: its header says nothing of burned-in text,
    but the kind may show it, and de-identification holds it back; the build counts it."""
    src = make_archive(tmp_path, patients=2)
    saved = image_dataset(
        PatientID="SAVE",
        Modality="DX",
        BodyPartExamined="CHEST",
        ImageType=["DERIVED", "SECONDARY", "SCREEN SAVE"],
        SOPClassUID="1.2.840.10008.5.1.4.1.1.7",
    )
    saved.PixelData = bytes([201, 2]) * 64
    write(saved, src / "screen.dcm")
    build_index(src, tmp_path / "idx", progress=False)
    result = build(tmp_path)
    m = manifest(result)
    assert len(m) == 5 and result.counts["excluded"]["held back: screen save"] == 1
    assert len(list((result.path / "files").rglob("*.dcm"))) == 5, "nothing of the screen save is written"


def test_a_version_is_selected_filtered_deduplicated_split_and_deidentified(archive):
    result = build(archive)
    assert result.created
    m = manifest(result)
    # 12 patients x 2-3 images = 30 chest images; the knee is not selected, the burned-in
    # capture is excluded, the copy is a duplicate of pixels and SOP Instance UID.
    assert len(m) == 30 and result.counts["excluded"] == {"burned-in annotation": 1, "duplicate SOPInstanceUID": 1}
    assert set(m.label) == {"PA", "LATERAL"}
    assert m.groupby("patient").split.nunique().max() == 1, "no patient in two splits"
    assert set(m.split) == {"train", "val", "test"}
    for row in m.itertuples():
        path = result.path / row.path
        data = path.read_bytes()
        assert b"Doe^Patient" not in data and b"PAT0" not in data
        assert pydicom.dcmread(path).SOPInstanceUID == row.sop_instance_uid
    description = json.loads((result.path / "dataset.json").read_text())
    assert description["version_id"] == result.version_id and description["parent_version"] is None
    assert description["counts"]["by_split"] == {s: int((m.split == s).sum()) for s in ("train", "val", "test")}
    assert "Dataset chest_views" in (result.path / "DATASET_CARD.md").read_text()


def test_same_inputs_same_version_and_identical_manifests(archive):
    first = build(archive)
    again = build(archive)
    assert (again.version_id, again.created) == (first.version_id, False), "a build never overwrites a version"
    elsewhere = build(archive, root="other")
    assert elsewhere.version_id == first.version_id
    assert (first.path / MANIFEST).read_bytes() == (elsewhere.path / MANIFEST).read_bytes()


def test_a_change_of_config_or_input_is_a_new_version_and_diff_says_what_changed(archive):
    first = build(archive)
    other_split = build(archive, split={"train": 0.8, "val": 0.1, "test": 0.1})
    assert other_split.version_id != first.version_id
    # Add a patient, rescan, rebuild: a new version whose parent is the previous one.
    new = image_dataset(PatientID="NEWPAT", Modality="DX", BodyPartExamined="CHEST", ViewPosition="PA")
    new.PixelData = bytes([99, 9]) * 64
    write(new, archive / "src" / "new" / "0.dcm")
    build_index(archive / "src", archive / "idx", progress=False)
    grown = build(archive)
    assert grown.version_id not in (first.version_id, other_split.version_id)
    assert json.loads((grown.path / "dataset.json").read_text())["parent_version"] == other_split.version_id
    changes = diff(first.path, grown.path)
    assert (changes["added"], changes["removed"], changes["label_changed"]) == (1, 0, 0)
    versions = list_versions(archive / "datasets")
    assert [v["version_id"] for v in versions] == [first.version_id, other_split.version_id, grown.version_id]


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, sys.argv[3])
    from curate.dataset import DatasetSpec, build_dataset
    from test_dataset import SPEC
    from test_deid_engine import KEY

    def die(written):
        if written == 5:
            os.kill(os.getpid(), signal.SIGKILL)

    build_dataset(DatasetSpec.from_dict(SPEC), sys.argv[1], sys.argv[2], KEY, workers=1, on_file=die)
    """
)


def test_a_killed_build_leaves_no_version_and_the_rerun_completes(archive):
    tests = Path(__file__).parent
    log = archive / "killed.log"
    with open(log, "w") as out:
        # Its own session, so that its worker processes can be ended with it.
        child = subprocess.Popen(
            [sys.executable, "-c", KILLER, str(archive / "idx"), str(archive / "datasets"), str(tests)],
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
        try:
            returncode = child.wait(timeout=180)
        finally:
            try:
                os.killpg(child.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert returncode == -signal.SIGKILL, log.read_text()[-2000:]
    assert list_versions(archive / "datasets") == [], "a partly written version is never visible"
    assert list((archive / "datasets" / "chest_views").glob(".building-*")), "the killed build's folder is left"
    result = build(archive)
    assert result.created and len(manifest(result)) == 30
    assert not list((archive / "datasets" / "chest_views").glob(".building-*")), "and cleared by the next build"


def test_hostile_names_and_bad_specs(archive):
    with pytest.raises(ValueError, match="name"):
        DatasetSpec.from_dict({"name": "../../x"})
    with pytest.raises(ValueError, match="sum to 1"):
        DatasetSpec.from_dict({"name": "x", "split": {"train": 0.9, "val": 0.2, "test": 0.1}})
    with pytest.raises(ValueError, match="cannot run"):
        build(archive, select="NoSuchColumn = 1")
    with pytest.raises(ValueError, match="curate classify"):
        build(archive, series_types=["chest_pa"])
    with pytest.raises(ValueError, match="no instance"):
        build(archive, select="Modality = 'MR'")
    assert list_versions(archive / "datasets") == []


def test_cli_build_and_datasets(archive):
    from test_cli import run_curate

    spec_dir = archive / "conf" / "dataset"
    spec_dir.mkdir(parents=True)
    env = {"CURATE_DEID_KEY": KEY.decode()}
    args = [
        "build",
        f"index={archive / 'idx'}",
        "out=ds",
        "tracking=off",
        "workers=1",
        "dataset.select=\"Modality = 'DX' AND body_part = 'CHEST'\"",
        "dataset.label=view",
        "dataset.quality.min_rows=0",
        "dataset.quality.min_columns=0",
    ]
    done = run_curate(*args, cwd=archive, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "built" in done.stdout and "30 instances" in done.stdout
    again = run_curate(*args, cwd=archive, env=env)
    assert "already built" in again.stdout
    listed = run_curate("datasets", "list", "root=ds", cwd=archive)
    assert listed.returncode == 0 and "chest_frontal" in listed.stdout
    no_key = run_curate(*args, cwd=archive, env={"CURATE_DEID_KEY": ""})
    assert no_key.returncode == 2 and "CURATE_DEID_KEY" in no_key.stderr


def test_diff_reports_label_and_split_changes(archive):
    first = build(archive)
    # Relabel one image (its ViewPosition was wrong): same instance, new label.
    path = archive / "src" / "p001" / "0.dcm"
    ds = pydicom.dcmread(path)
    ds.ViewPosition = "LL"
    ds.save_as(path, enforce_file_format=True)
    build_index(archive / "src", archive / "idx", progress=False)
    relabelled = build(archive)
    changes = diff(first.path, relabelled.path, out=archive / "changes.csv")
    assert (changes["label_changed"], changes["added"], changes["removed"]) == (1, 0, 0)
    # One row per changed instance: the relabelled one, and those whose patient moved
    # split (the splits are stratified by label).
    written = pd.read_csv(archive / "changes.csv")
    relabelled_rows = written[written["change"].str.startswith("label")]
    assert len(relabelled_rows) == 1 and len(written) == written["sop_instance_uid"].nunique()
    assert relabelled_rows["sop_instance_uid"].iloc[0] in set(manifest(relabelled)["sop_instance_uid"])
    assert (written["change"].str.contains("split")).sum() == changes["split_changed"]
    # Other ratios move patients between splits: reported as split changes.
    resplit = build(archive, split={"train": 0.34, "val": 0.33, "test": 0.33})
    moved = diff(relabelled.path, resplit.path)
    assert moved["split_changed"] and not moved["label_changed"]


def test_build_is_an_mlflow_run_without_patient_data(archive):
    import mlflow
    from test_cli import run_curate

    uri = f"sqlite:///{archive}/mlflow.db"
    env = {"CURATE_DEID_KEY": KEY.decode(), "MLFLOW_TRACKING_URI": uri}
    done = run_curate(
        "build",
        f"index={archive / 'idx'}",
        "out=ds",
        "workers=1",
        "dataset.label=view",
        "dataset.quality.min_rows=0",
        "dataset.quality.min_columns=0",
        "dataset.select=\"body_part = 'CHEST'\"",
        f"tracking.artifacts={archive / 'artifacts'}",
        cwd=archive,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    mlflow.set_tracking_uri(uri)
    [run] = mlflow.search_runs(experiment_names=["curate"]).to_dict("records")
    version = run["params.version_id"]
    assert run["metrics.instances"] == 30 and run["params.manifest_sha256"]
    [dataset_input] = mlflow.get_run(run["run_id"]).inputs.dataset_inputs
    assert dataset_input.dataset.digest == version
    for path in list((archive / "artifacts").rglob("*")) + [archive / "mlflow.db"]:
        if path.is_file():
            data = path.read_bytes()
            assert b"Doe^Patient" not in data and b"PAT00" not in data, path


def test_a_plan_says_what_a_build_would_give_and_writes_nothing(archive):
    spec = DatasetSpec.from_dict(SPEC)
    planned = plan_dataset(spec, archive / "idx", KEY)
    assert not (archive / "datasets").exists()
    built = build(archive)
    assert planned["version_id"] == built.version_id
    for count in ("selected", "instances", "patients", "by_split", "excluded"):
        assert planned[count] == built.counts[count], count

"""`curate train` and `curate classify` as a user runs them, with MLflow."""

from __future__ import annotations

import os
import shutil

import mlflow
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import testdata
from test_cli import run_curate

from curate.classify.synth import generate
from curate.classify.train import load_model
from curate.index import build_index

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


@pytest.fixture()
def store(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    return uri, ["tracking.artifacts=" + str(tmp_path / "artifacts")]


def test_train_logs_metrics_confusion_matrix_and_a_loadable_model(tmp_path, store):
    uri, overrides = store
    done = run_curate(
        "train",
        "data.series=300",
        "data.sites=6",
        "out=model.joblib",
        *overrides,
        cwd=tmp_path,
        env={"MLFLOW_TRACKING_URI": uri},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "grouped  macro-F1" in done.stdout and "rules    macro-F1" in done.stdout
    mlflow.set_tracking_uri(uri)
    [run] = mlflow.search_runs(experiment_names=["curate"]).to_dict("records")
    assert run["params.model"] == "logreg" and run["metrics.grouped.macro_f1"] > run["metrics.rules.macro_f1"]
    assert "metrics.random.macro_f1" in run and "metrics.grouped.f1.chest_pa" in run
    # Scored on the two generated archive profiles too, the rule beside it: on the
    # terminal and in the run. Adapted to each archive, it beats the rule there.
    assert "on generated archives shaped like two real chest archives" in done.stdout
    for profile in ("A", "B"):
        assert f"{profile}       adapted" in done.stdout and f"{profile}       rule" in done.stdout
        adapted, rule = (run[f"metrics.archive_{profile}.{a}.frontal_lateral"] for a in ("adapted", "rule"))
        assert adapted > rule
        assert 0 <= run[f"metrics.archive_{profile}.model.coverage"] <= 1
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run["run_id"])}
    assert {"confusion_matrix.png", "evaluation.json"} <= artifacts
    inputs = mlflow.get_run(run["run_id"]).inputs.dataset_inputs
    assert inputs and inputs[0].dataset.digest
    # The model logged to MLflow and the one saved to a file predict the same.
    rows = generate(50, sites=3, seed=9).drop(columns=["series_type", "site"])
    from_mlflow = load_model(f"runs:/{run['run_id']}/model")
    from_file = load_model(tmp_path / "model.joblib")
    assert list(from_mlflow.predict(rows)) == list(from_file.predict(rows))


def test_a_sweep_puts_its_runs_under_one_parent(tmp_path, store):
    uri, overrides = store
    done = run_curate(
        "train",
        "-m",
        "model=logreg,rf",
        "data.series=200",
        "data.sites=5",
        "n_estimators=20",
        *overrides,
        cwd=tmp_path,
        env={"MLFLOW_TRACKING_URI": uri},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["curate"])
    children = runs[runs["tags.curate.stage"] == "train"]
    parents = runs[runs["tags.curate.stage"] == "train-sweep"]
    assert sorted(children["params.model"]) == ["logreg", "rf"]
    assert len(parents) == 1
    assert set(children["tags.mlflow.parentRunId"]) == {parents.iloc[0]["run_id"]}


def test_classify_writes_series_types_beside_the_index(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("CT_small.dcm", "MR_small.dcm"):
        shutil.copy(testdata(name), src / name)
    build_index(src, tmp_path / "idx", progress=False)
    trained = run_curate("train", "data.series=300", "out=model.joblib", "tracking=off", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr[-3000:]
    done = run_curate("classify", f"index={tmp_path / 'idx'}", "model=model.joblib", "tracking=off", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    table = pq.read_table(tmp_path / "idx" / "series_types.parquet").to_pandas()
    assert len(table) == 2 and set(table.columns) == {"SeriesInstanceUID", "series_type", "confidence", "model_version"}
    by_family = set(table.series_type.str.split("_").str[0])
    assert by_family == {"ct", "mr"}
    assert (table.model_version == "model.joblib").all()


def test_labels_from_a_csv_or_from_the_rules(tmp_path):
    from curate.classify.train import labelled_index

    src = tmp_path / "src"
    src.mkdir()
    for name in ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm"):
        shutil.copy(testdata(name), src / name)
    build_index(src, tmp_path / "idx", progress=False)
    index = pq.read_table(tmp_path / "idx" / "parts").to_pandas()
    labels = tmp_path / "labels.csv"
    ct = index[index.Modality == "CT"].SeriesInstanceUID.iloc[0]
    mr = index[index.Modality == "MR"].SeriesInstanceUID.iloc[0]
    pd.DataFrame({"SeriesInstanceUID": [ct, mr], "series_type": ["ct_axial", "mr_t1"]}).to_csv(labels, index=False)
    data = labelled_index(tmp_path / "idx", labels)
    assert sorted(data.y) == ["ct_axial", "mr_t1"] and "path" in data.X
    weak = labelled_index(tmp_path / "idx", "rules")
    by_modality = dict(zip(weak.X.Modality, weak.y, strict=True))
    assert by_modality["CT"] == "ct_axial"  # ImageType ORIGINAL\PRIMARY\AXIAL
    assert "RTPLAN" not in by_modality, "rows the rules cannot label are left out"
    with pytest.raises(ValueError, match="series_type"):
        pd.DataFrame({"SeriesInstanceUID": [ct]}).to_csv(tmp_path / "bad.csv", index=False)
        labelled_index(tmp_path / "idx", tmp_path / "bad.csv")


@pytest.mark.parametrize("grouping_rows", [None, 7], ids=["one sort", "partitioned"])
def test_classify_streams_whole_series_and_gives_what_one_pass_gives(tmp_path, monkeypatch, grouping_rows):
    """Batches far smaller than a series: each series is still judged on all its
    instances, and the result is what predicting over the whole index at once gives;
    also where the index is large enough to be partitioned before it is sorted."""
    from dicom_factory import make_dataset, write
    from pydicom.uid import generate_uid

    import curate.index.store
    from curate.classify import load_default_model
    from curate.classify.train import classify_index
    from curate.index import read_index

    src = tmp_path / "src"
    kinds = [("CR", "CHEST PA", "PA"), ("CR", "CHEST LAT", "LL"), ("CT", "AXIAL 5MM", None), ("MR", "T2 TSE", None)]
    for s in range(13):
        modality, description, view = kinds[s % len(kinds)]
        series = generate_uid()
        for i in range(1 + s % 4):
            attrs = dict(
                Modality=modality,
                SeriesDescription=description,
                SeriesInstanceUID=series,
                InstanceNumber=str(i),
                BodyPartExamined="CHEST" if modality == "CR" else None,
                ViewPosition=view,
            )
            write(make_dataset(**attrs), src / f"s{s:02d}" / f"i{i}.dcm")
    (src / "note.txt").write_text("not DICOM: no series")
    build_index(src, tmp_path / "idx", progress=False)
    model = load_default_model()
    if grouping_rows:
        monkeypatch.setattr(curate.index.store, "GROUPING_ROWS", grouping_rows)

    small = classify_index(tmp_path / "idx", model, "default", batch_rows=2)
    streamed = pq.read_table(tmp_path / "idx" / "series_types.parquet")
    whole = classify_index(tmp_path / "idx", model, "default", batch_rows=10**6)
    assert pq.read_table(tmp_path / "idx" / "series_types.parquet").equals(streamed)
    assert small.counts == whole.counts and sum(small.counts.values()) == 13

    frame = read_index(tmp_path / "idx").to_pandas()
    frame = frame[frame.status == "ok"]
    expected = model.predict_series(frame).sort_values("SeriesInstanceUID").reset_index(drop=True)
    got = streamed.to_pandas().sort_values("SeriesInstanceUID").reset_index(drop=True)
    assert list(got.SeriesInstanceUID) == list(expected.SeriesInstanceUID)
    assert list(got.series_type) == list(expected.series_type)
    assert np.allclose(got.confidence, expected.confidence)
    assert not list((tmp_path / "idx").glob(".grouping-*")), "the partitions are removed"
    if grouping_rows:
        # A reader killed mid-way leaves its partitions: the next one removes them (and
        # leaves a live reader's alone).
        dead, live = tmp_path / "idx" / ".grouping-999999999-x", tmp_path / "idx" / f".grouping-{os.getpid()}-y"
        for folder in (dead, live):
            (folder / "_part=0").mkdir(parents=True)
        classify_index(tmp_path / "idx", model, "default", batch_rows=2)
        assert not dead.exists() and live.exists()


def test_each_instance_has_its_own_type_and_a_build_selects_by_it(tmp_path):
    """A CR series that holds a PA and a lateral: one series type, but each image its
    own view, which the index's view carries and a dataset build selects and labels by."""
    from dicom_factory import image_dataset, write
    from pydicom.uid import generate_uid

    from curate.classify import load_default_model
    from curate.classify.train import classify_index
    from curate.dataset import DatasetSpec, build_dataset
    from curate.index.store import IndexStore

    src = tmp_path / "src"
    for patient in range(6):
        study, series = generate_uid(), generate_uid()
        for i, (view, description) in enumerate([("PA", "CHEST PA"), ("LL", "CHEST LAT"), ("LL", "CHEST LAT")]):
            ds = image_dataset(
                Modality="CR",
                PatientID=f"P{patient}",
                StudyInstanceUID=study,
                SeriesInstanceUID=series,
                SeriesDescription="CHEST 2 VIEWS",
                ImageComments=description,
                BodyPartExamined="CHEST",
                ViewPosition=view,
                InstanceNumber=str(i + 1),
                Rows=64,
                Columns=64,
                PatientAge="050Y",
            )
            ds.PixelData = bytes([patient, i]) * (64 * 64)  # each its own pixels: none is a copy
            write(ds, src / f"p{patient}" / f"{i}.dcm")
    build_index(src, tmp_path / "idx", progress=False)
    result = classify_index(tmp_path / "idx", load_default_model(), "default")
    assert sum(result.counts.values()) == 6  # a type per series
    con = IndexStore(tmp_path / "idx").connect("idx", series_types=True)
    rows = con.execute("SELECT ViewPosition, instance_type, series_type FROM idx").fetchall()
    by_view = {view: {t for v, t, _ in rows if v == view} for view in ("PA", "LL")}
    assert by_view == {"PA": {"chest_pa"}, "LL": {"chest_lateral"}}, rows
    assert len({s for _, _, s in rows}) == 1, "one answer per series, whatever its images show"
    assert result.run_entry["output"].keys() == {"series_types", "instance_types"}

    spec = DatasetSpec(name="laterals", instance_types=["chest_lateral"], label="instance_type")
    spec.quality.min_rows = spec.quality.min_columns = 0
    built = build_dataset(spec, tmp_path / "idx", tmp_path / "datasets", b"k" * 32, workers=1)
    manifest = pq.read_table(built.path / "manifest.parquet").to_pandas()
    assert len(manifest) == 12 and set(manifest.label) == {"chest_lateral"} == set(manifest.instance_type)

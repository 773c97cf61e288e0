"""Series types that hold on archives unlike the training data: generated archives shaped
like two real ones, a model that adapts to an archive from no labels, calibrated
confidences, and `curate classify` without a model."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest
from test_cli import run_curate

from curate.classify import SeriesTypeClassifier, load_default_model
from curate.classify.adapt import adapt_to_archive, consistent_rule_labels, sample_index
from curate.classify.archives import frontal_lateral_accuracy, generate_archive, view_position_rule
from curate.classify.evaluate import threshold_for_precision
from curate.classify.synth import generate
from curate.errors import ConfigError

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


def expected_calibration_error(proba: np.ndarray, classes: np.ndarray, y, bins: int = 10) -> float:
    confidence = proba.max(axis=1)
    correct = classes[proba.argmax(axis=1)] == np.asarray(y)
    error = 0.0
    for low, high in zip(np.linspace(0, 1, bins + 1)[:-1], np.linspace(0, 1, bins + 1)[1:], strict=True):
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            error += inside.mean() * abs(confidence[inside].mean() - correct[inside].mean())
    return float(error)


def archive(profile: str, seed: int):
    rows = generate_archive(profile, studies=1500, seed=seed)
    return rows.drop(columns=["series_type", "site"]), rows.series_type.to_numpy()


@pytest.mark.parametrize(("profile", "measured"), [("A", 0.611), ("B", 0.780)])
def test_the_generated_archives_fool_the_view_position_rule_as_the_real_ones_do(profile, measured):
    scores = [frontal_lateral_accuracy(y, view_position_rule(X)) for X, y in (archive(profile, s) for s in (0, 1))]
    assert np.mean(scores) == pytest.approx(measured, abs=0.03), scores
    X, _ = archive(profile, 0)
    if profile == "B":
        assert X.shape[1] == 18 and X.Manufacturer.nunique() == 2
        assert set(X.ViewPosition) == {"POSTEROANTERIOR", "AP", "LATERAL", "LL", ""}


@pytest.fixture(scope="module")
def adapted():
    """Each profile's archive (a seed no test above uses), and a model adapted to it."""
    out = {}
    for profile in ("A", "B"):
        X, y = archive(profile, 100)
        out[profile] = (X, y, adapt_to_archive(X, threshold=None))
    return out


@pytest.mark.parametrize("profile", ["A", "B"])
def test_adapting_to_the_archive_beats_the_rule_and_the_default_model(profile, adapted):
    X, y, model = adapted[profile]
    rule = frontal_lateral_accuracy(y, view_position_rule(X))
    default = frontal_lateral_accuracy(y, load_default_model().predict(X))
    ours = frontal_lateral_accuracy(y, model.predict(X))
    assert ours >= max(rule, default) + 0.05, (ours, rule, default)
    report = model.report_
    assert report.sampled == report.rows == len(X)
    assert sum(report.from_rules.values()) > 0 and set(report.from_rules) <= {"chest_pa", "chest_ap", "chest_lateral"}


@pytest.mark.parametrize("profile", ["A", "B"])
def test_the_adapted_model_says_how_sure_it_is_and_abstains_when_unsure(profile, adapted):
    X, y, model = adapted[profile]
    assert expected_calibration_error(model.predict_proba(X), model.classes_, y) <= 0.05
    model.threshold = 0.9
    answers = model.predict(X)
    model.threshold = None
    unsure = answers == "unknown"
    assert 0 < unsure.mean() < 0.5
    assert (answers[~unsure] == y[~unsure]).mean() > (model.predict(X)[unsure] == y[unsure]).mean()


def test_a_lateral_tagged_like_its_frontal_is_not_a_label():
    """A site copies the study's PA to every image: neither image is taken as a label."""
    X, y = archive("A", 3)
    labels = consistent_rule_labels(X)
    copied = (X.ViewPosition == "PA") & (y == "chest_lateral")
    assert copied.sum() > 50
    assert (labels[copied.to_numpy()] == "unknown").mean() > 0.6
    taken = labels != "unknown"
    assert (labels[taken] == y[taken]).mean() > 0.93


def test_calibrated_confidences_on_held_out_sites():
    rows = generate(1500, sites=8, seed=21)
    held = rows.site.isin(["site06", "site07"])
    X, y = rows.drop(columns=["series_type", "site"]), rows.series_type
    model = SeriesTypeClassifier(calibration="temperature").fit(X[~held], y[~held], groups=rows.site[~held])
    assert model.temperature_ != 1.0
    assert expected_calibration_error(model.predict_proba(X[held]), model.classes_, y[held]) <= 0.05


def test_the_training_sample_is_bounded_by_whole_studies_and_seeded():
    X, _ = archive("A", 4)
    small = adapt_to_archive(X, max_rows=800, random_state=1)
    assert 800 <= small.report_.sampled <= 803 and small.report_.rows == len(X)
    again = adapt_to_archive(X, max_rows=800, random_state=1)
    assert np.array_equal(small.predict_proba(X), again.predict_proba(X))


def test_adapted_answers_are_the_same_in_any_process(tmp_path):
    script = tmp_path / "adapt.py"
    script.write_text(
        "import hashlib, numpy as np\n"
        "from curate.classify.adapt import adapt_to_archive\n"
        "from curate.classify.archives import generate_archive\n"
        "X = generate_archive('B', 400, 9).drop(columns=['series_type', 'site'])\n"
        "print(hashlib.sha256(np.round(adapt_to_archive(X).predict_proba(X), 9).tobytes()).hexdigest())\n"
    )
    answers = {
        subprocess.run(
            [sys.executable, str(script)], env={**os.environ, "PYTHONHASHSEED": seed}, capture_output=True, text=True
        ).stdout
        for seed in ("3", "4")
    }
    assert len(answers) == 1 and len(next(iter(answers))) == 65, answers


@pytest.fixture(scope="module")
def scanned_archive(tmp_path_factory):
    """An A-like archive written as DICOM files and scanned: its truth by SOP Instance UID."""
    from dicom_factory import make_dataset, write
    from pydicom.uid import generate_uid

    from curate.index import build_index

    root = tmp_path_factory.mktemp("archive")
    rows = generate_archive("A", studies=260, seed=12)
    uids = {}
    for i, row in enumerate(rows.to_dict("records")):
        attrs = {k: v for k, v in row.items() if k not in ("series_type", "site") and v not in ("", None)}
        for key in ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID"):
            attrs[key] = uids.setdefault(attrs[key], generate_uid())
        for key in ("Rows", "Columns", "BitsStored", "InstanceNumber", "Exposure", "XRayTubeCurrent", "ExposureTime"):
            if key in attrs:
                attrs[key] = int(round(attrs[key]))  # IS
        attrs["SOPClassUID"] = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage
        write(make_dataset(**attrs), root / "src" / f"{i:05d}.dcm")
    build_index(root / "src", root / "idx", progress=False)
    truth = dict(zip((uids[u] for u in rows.SOPInstanceUID), rows.series_type, strict=True))
    return root / "idx", truth


def test_curate_classify_without_a_model_adapts_to_the_index(scanned_archive, tmp_path):
    index, truth = scanned_archive
    frame = sample_index(index)
    assert len(frame) == len(truth) and "path" not in frame and "PatientID" not in frame
    assert "ExposureIndex" in frame and "AcquisitionDeviceProcessingDescription" in frame
    # A smaller sample: about that many rows, whole studies, the same for the same seed.
    part = sample_index(index, rows=120, random_state=5)
    assert 60 <= len(part) <= 200 and part.equals(sample_index(index, rows=120, random_state=5))
    sizes = frame.groupby("StudyInstanceUID").size()
    assert (part.groupby("StudyInstanceUID").size() == sizes[part.StudyInstanceUID.unique()]).all()
    assert not part.equals(sample_index(index, rows=120, random_state=6))
    done = run_curate("classify", f"index={index}", "tracking=off", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "labels from the header rules" in done.stdout and "adapted to this archive" in done.stdout
    table = pq.read_table(index / "series_types.parquet").to_pandas()
    assert table.model_version.str.startswith("adapted").all()
    assert set(table.series_type) <= {"chest_pa", "chest_ap", "chest_lateral", "unknown"}

    fixed = run_curate("classify", f"index={index}", "model=default", "tracking=off", cwd=tmp_path)
    assert fixed.returncode == 0, fixed.stderr[-3000:]
    assert (pq.read_table(index / "series_types.parquet").column("model_version").to_pylist()) == ["default"] * len(
        table
    )


def test_a_precision_is_targeted_without_labels():
    """Calibrated confidences: the expected precision of a set of answers is their mean
    confidence, and the threshold is where that mean falls to the target."""
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.5, 1.0, 20_000)
    correct = rng.random(20_000) < confidence
    threshold, coverage = threshold_for_precision(confidence, 0.9)
    kept = confidence >= threshold
    assert coverage == pytest.approx(kept.mean()) and threshold == pytest.approx(0.8, abs=0.01)
    assert correct[kept].mean() == pytest.approx(0.9, abs=0.01)
    assert threshold_for_precision([0.6, 0.7], 0.9) == (None, 0.0)
    assert threshold_for_precision([0.8, 0.8, 0.8], 0.8) == (0.8, 1.0)
    assert threshold_for_precision([], 0.5) == (None, 0.0)


@pytest.mark.parametrize(("profile", "least"), [("A", 0.92), ("B", 0.95)])
def test_a_target_precision_holds_on_an_unlabelled_archive(profile, least, adapted):
    """On A, where a site tags nearly every lateral PA, the estimate is optimistic: the
    model's own confidence cannot see what the archive gets wrong by habit."""
    X, y, _ = adapted[profile]
    model = adapt_to_archive(X, target_precision=0.95)
    estimated_threshold, estimated_coverage = model.report_.precision_thresholds[0.95]
    assert model.threshold == estimated_threshold and {0.95, 0.98} <= set(model.report_.precision_thresholds)
    answers = model.predict(X)
    answered = answers != "unknown"
    assert answered.mean() == pytest.approx(estimated_coverage, abs=0.01)
    assert 0.6 < answered.mean() < 1.0
    precision = (answers[answered] == y[answered]).mean()
    model.threshold = 0.5
    everything = model.predict(X)
    assert precision >= least and precision > (everything == y).mean(), precision
    assert "95% precision: confidence >=" in model.report_.format()
    with pytest.raises(ConfigError, match="target_precision"):
        adapt_to_archive(X, target_precision=1.5)


def test_curate_classify_abstains_below_a_target_precision(scanned_archive, tmp_path):
    index, _ = scanned_archive
    done = run_curate("classify", f"index={index}", "target_precision=0.95", "tracking=off", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "95% precision: confidence >=" in done.stdout and "98% precision" in done.stdout
    threshold = float(done.stdout.split("95% precision: confidence >= ")[1].split()[0])
    instances = pq.read_table(index / "instance_types.parquet").to_pandas()
    # The printed threshold is rounded to two places.
    assert (instances.instance_type[instances.confidence < threshold - 0.005] == "unknown").all()
    assert (instances.instance_type[instances.confidence >= threshold + 0.005] != "unknown").all()
    refused = run_curate(
        "classify", f"index={index}", "model=default", "target_precision=0.95", "tracking=off", cwd=tmp_path
    )
    assert refused.returncode != 0 and "target_precision" in refused.stderr

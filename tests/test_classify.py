"""The series-type classifier: a scikit-learn estimator that beats the header rules on
hospitals it has never seen, tolerates missing columns, and never reads identifiers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import testdata
from sklearn.metrics import f1_score
from sklearn.utils.estimator_checks import parametrize_with_checks

import curate
from curate.classify import UNKNOWN, RuleLabeler, SeriesTypeClassifier
from curate.classify.synth import generate

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")

HELD_OUT_SITES = {"site08", "site09"}


@parametrize_with_checks([SeriesTypeClassifier()])
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def split():
    rows = generate(2500, sites=10, seed=7)
    features = [c for c in rows.columns if c not in ("series_type", "site")]
    train = rows[~rows.site.isin(HELD_OUT_SITES)]
    test = rows[rows.site.isin(HELD_OUT_SITES)]
    return train[features], train.series_type, test[features], test.series_type


@pytest.fixture(scope="module")
def fitted(split):
    X, y, _, _ = split
    return SeriesTypeClassifier().fit(X, y)


def test_beats_the_rules_on_unseen_hospitals(split, fitted):
    _, _, X_test, y_test = split
    model = f1_score(y_test, fitted.predict(X_test), average="macro")
    rules = f1_score(y_test, RuleLabeler().predict(X_test), average="macro")
    assert model >= rules + 0.10, (model, rules)
    assert model >= 0.90


def test_missing_columns_and_values_are_normal(split, fitted):
    _, _, X_test, y_test = split
    few = X_test[["Modality", "Rows", "Columns"]]
    assert len(fitted.predict(few)) == len(few)
    blank = X_test.copy()
    blank["SeriesDescription"] = None
    blank["ViewPosition"] = np.nan
    assert set(fitted.predict(blank)) <= set(fitted.classes_)
    # Fitting on a subset of columns works too, and still does better than chance.
    small = SeriesTypeClassifier().fit(split[0][["Modality", "SeriesDescription", "Rows", "Columns"]], split[1])
    assert f1_score(y_test, small.predict(X_test), average="macro") > 0.5


def test_identifiers_are_never_features(fitted):
    used = {column for columns in fitted.features_.roles_.values() for column in columns}
    for never in (
        "PatientID",
        "SeriesInstanceUID",
        "StudyInstanceUID",
        "SOPInstanceUID",
        "InstitutionName",
        "InstanceNumber",
    ):
        assert never not in used
    assert {"SeriesDescription", "Modality", "Rows", "KVP"} <= used


def test_threshold_abstains_and_series_are_aggregated(split, fitted):
    _, _, X_test, y_test = split
    cautious = SeriesTypeClassifier(threshold=0.999).fit(split[0], split[1])
    predicted = cautious.predict(X_test)
    answered = predicted != UNKNOWN
    assert 0 < answered.mean() < 1, "some answers withheld, not all"
    assert (predicted[answered] == y_test.to_numpy()[answered]).mean() > (
        fitted.predict(X_test) == y_test
    ).mean() - 1e-9
    series = fitted.predict_series(X_test)
    assert len(series) == X_test.SeriesInstanceUID.nunique()
    truth = pd.Series(y_test.to_numpy(), index=X_test.SeriesInstanceUID).groupby(level=0).first()
    assert (series.set_index("SeriesInstanceUID").series_type == truth).mean() > 0.9
    assert series.confidence.between(0, 1).all()


def test_predicts_on_a_real_index_table(fitted):
    table = curate.scan([testdata(n) for n in ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm")])
    predicted = fitted.predict(table)
    assert len(predicted) == 3
    assert predicted[0].startswith("ct_") and predicted[1].startswith("mr_")


def test_generator_and_rules_speak_the_taxonomy():
    from curate.classify.taxonomy import series_types

    known = set(series_types())
    rows = generate(400, seed=3)
    assert set(rows.series_type) <= known
    assert set(RuleLabeler().predict(rows)) <= known | {UNKNOWN}
    assert len(known) == 19


def test_default_model_is_ready_and_its_card_tells_the_truth():
    import re

    from curate.classify.default import CARD, evaluate_default_model, load_default_model

    model = load_default_model()
    rows = generate(60, sites=4, seed=11)
    assert (model.predict(rows.drop(columns=["series_type", "site"])) == rows.series_type).mean() > 0.9
    card = CARD.read_text()
    report = evaluate_default_model()
    grouped = re.search(r"held-out sites \(grouped\) \| ([\d.]+) \| ([\d.]+)", card)
    random_rows = re.search(r"random rows \| ([\d.]+) \| ([\d.]+)", card)
    assert float(grouped.group(1)) == pytest.approx(report["grouped"]["macro_f1"], abs=0.01)
    assert float(grouped.group(2)) == pytest.approx(report["grouped"]["balanced_accuracy"], abs=0.01)
    assert float(random_rows.group(1)) == pytest.approx(report["random"]["macro_f1"], abs=0.01)
    rules = re.search(r"header rules .*? \| ([\d.]+) \|", card)
    assert float(rules.group(1)) == pytest.approx(report["rules"]["macro_f1"], abs=0.01)


def test_mixed_list_and_scalar_cells_all_nulls_and_unseen_columns(split):
    """Frames read from CSV or JSON hold lists in some cells of a column and scalars in
    others; they fit and predict, as do all-null and unseen columns."""
    X, y, X_test, _ = split
    mixed = X.head(600).copy()
    mixed["ImageType"] = [v.split("\\") if i % 2 else v for i, v in enumerate(mixed["ImageType"])]
    mixed["PixelSpacing"] = [[0.14, 0.14] if i % 3 else 0.2 for i in range(len(mixed))]
    mixed["WindowCenter"] = [["40", "400"] if i % 2 else "-600" for i in range(len(mixed))]
    mixed["Odd"] = [["a", "b"] if i % 3 else "c" for i in range(len(mixed))]
    mixed["Empty"] = None
    model = SeriesTypeClassifier().fit(mixed, y.head(600))
    roles = model.features_.roles_
    assert "ImageType" in roles["tokens"] and "Odd" in roles["tokens"]
    assert "PixelSpacing" in roles["number"] and "WindowCenter" in roles["number"]
    unseen = X_test.head(50).assign(Unseen=[[1, 2]] * 50, Empty=[["x"]] * 50)
    assert set(model.predict(unseen)) <= set(model.classes_)
    assert (model.predict(mixed) == y.head(600)).mean() > 0.9


def test_a_declared_modality_bounds_the_answer(split, fitted):
    """A CR file is never called a CT or MR type, whatever its other columns say."""
    from curate.classify.taxonomy import modalities_of_type

    _, _, X_test, _ = split
    ct_rows = X_test[X_test.Modality == "CT"].head(40).copy()
    ct_rows["Modality"] = "CR"  # a CT header that says CR
    predicted = fitted.predict(ct_rows)
    assert all("CR" in modalities_of_type()[p] for p in predicted), set(predicted)
    proba = fitted.predict_proba(ct_rows)
    assert np.allclose(proba.sum(axis=1), 1.0)
    ct_classes = [i for i, c in enumerate(fitted.classes_) if "CR" not in modalities_of_type()[c]]
    assert (proba[:, ct_classes] == 0).all()
    # A modality no family claims is not bounded; a model without the family abstains.
    assert len(fitted.predict(ct_rows.assign(Modality="XYZ"))) == 40
    chest_only = X_test[X_test.Modality.isin(["CR", "DX"])]
    mr = X_test[X_test.Modality == "MR"].head(5)
    narrow = SeriesTypeClassifier().fit(chest_only, split[3][chest_only.index])
    assert set(narrow.predict(mr)) == {UNKNOWN}


def test_the_same_data_and_seed_give_the_same_answers_in_any_process(tmp_path):
    """Training in two processes with different hash seeds gives the same model."""
    import os
    import subprocess
    import sys

    script = tmp_path / "train.py"
    script.write_text(
        "import hashlib, numpy as np\n"
        "from curate.classify.default import train_default_model\n"
        "from curate.classify.synth import generate\n"
        "X = generate(300, sites=4, seed=5).drop(columns=['series_type', 'site'])\n"
        "model = train_default_model()\n"
        "print(hashlib.sha256(np.round(model.predict_proba(X), 9).tobytes()).hexdigest(), list(model.predict(X)[:5]))\n"
    )
    answers = {
        subprocess.run(
            [sys.executable, str(script)],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert len(answers) == 1, answers

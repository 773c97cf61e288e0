"""The default series-type model: trained on the project's generator with a fixed recipe,
so that it is the same model on every machine; its card (``default_model.md`` beside
this file) says what it was trained on and how it scored."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from curate.classify.model import SeriesTypeClassifier

CARD = Path(__file__).with_name("default_model.md")
#: What the default model is trained on, and how.
RECIPE = {"series": 3000, "sites": 10, "seed": 0, "model": "logreg", "C": 10.0, "threshold": None}


def train_default_model() -> SeriesTypeClassifier:
    from curate.classify.train import synthetic_data

    data = synthetic_data(RECIPE["series"], RECIPE["sites"], RECIPE["seed"])
    model = SeriesTypeClassifier(
        model=RECIPE["model"], C=RECIPE["C"], threshold=RECIPE["threshold"], random_state=RECIPE["seed"]
    )
    return model.fit(data.X, data.y)


@lru_cache(maxsize=1)
def load_default_model() -> SeriesTypeClassifier:
    """The default model, ready to predict (trained on first use, in a few seconds)."""
    return train_default_model()


def evaluate_default_model() -> dict:
    """The card's numbers, computed again: held-out sites and a random split."""
    from curate.classify.experiment import Experiment
    from curate.classify.train import synthetic_data

    data = synthetic_data(RECIPE["series"], RECIPE["sites"], RECIPE["seed"])
    experiment = Experiment(
        model=RECIPE["model"], C=RECIPE["C"], target_precision=0.95, test_size=0.25, seed=RECIPE["seed"]
    )
    return experiment.run(data)[1]

"""One training experiment: evaluate, fit, and log to MLflow what identifies no one."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from curate.classify.evaluate import archive_scores, archive_table, confusion_png, evaluate, rule_scores
from curate.classify.model import SeriesTypeClassifier
from curate.classify.rules import RuleLabeler
from curate.classify.train import TrainingData, labelled_index, save_model, synthetic_data
from curate.errors import ConfigError
from curate.tracking import StageResult


def training_data(
    source: str, series: int, sites: int, seed: int, index: str | None, labels: str | None, group_column: str
) -> TrainingData:
    if source == "synthetic":
        return synthetic_data(series, sites, seed)
    if source == "index":
        if not index or not labels:
            raise ConfigError("data.source=index needs data.index=DIR and data.labels=CSV (or data.labels=rules)")
        return labelled_index(index, labels, group_column)
    raise ConfigError(f"data.source must be 'synthetic' or 'index', not {source!r}")


@dataclass
class Experiment:
    model: str = "logreg"
    C: float = 10.0
    n_estimators: int = 200
    threshold: float | None = None
    target_precision: float = 0.95
    test_size: float = 0.25
    seed: int = 0
    #: Studies of each generated archive profile the model is also scored on (0: none).
    archive_studies: int = 300
    #: Whether those scores include the model adapted to each archive (as `curate classify` adapts).
    archive_adapted: bool = True

    def make(self) -> SeriesTypeClassifier:
        return SeriesTypeClassifier(
            model=self.model, C=self.C, n_estimators=self.n_estimators, threshold=self.threshold, random_state=self.seed
        )

    def run(self, data: TrainingData) -> tuple[SeriesTypeClassifier, dict]:
        """Scores on held-out sites and on a random split (and the rules'), then the
        model fitted on all the data."""
        report = evaluate(self.make, data.X, data.y, data.groups, self.target_precision, self.test_size, self.seed)
        report["rules"] = rule_scores(RuleLabeler(), data.X, data.y)
        model = self.make().fit(data.X, data.y)
        if self.archive_studies and _chest_types(model):
            report["archives"] = archive_scores(
                model, self.target_precision, self.archive_studies, adapt=self.archive_adapted
            )
        return model, report

    def params(self, data: TrainingData) -> dict[str, object]:
        return {
            "model": self.model,
            "C": self.C,
            "n_estimators": self.n_estimators,
            "threshold": self.threshold,
            "target_precision": self.target_precision,
            "data": data.description,
            "rows": len(data.X),
        }

    @staticmethod
    def metrics(report: dict) -> dict[str, float]:
        values: dict[str, float] = {}
        for split in ("grouped", "random"):
            if split in report:
                values.update({f"{split}.{k}": v for k, v in report[split].items() if isinstance(v, (int, float))})
                values.update({f"{split}.f1.{c}": f for c, f in report[split]["per_class_f1"].items()})
        values.update({f"rules.{k}": v for k, v in report["rules"].items()})
        for profile, result in report.get("archives", {}).items():
            for answers, scores in result.items():
                values.update({f"archive_{profile}.{answers}.{k}": v for k, v in scores.items()})
        return values

    def _log_model(self, model: SeriesTypeClassifier, data: TrainingData, report: dict) -> None:
        """The model with its signature and an input example, the training data as an
        MLflow dataset (digest and schema, no rows), the confusion matrix, the scores."""
        import mlflow
        import mlflow.sklearn
        from mlflow.models import infer_signature

        from curate.classify.synth import generate

        # The input example is generated, never taken from the training rows (they may
        # be patient data), restricted to the columns the model reads; numbers as floats,
        # as real index columns hold missing values.
        used = [c for columns in model.features_.roles_.values() for c in columns]
        example = generate(5, sites=2, seed=1).reindex(columns=used).head(5)
        example = example.astype({c: float for c in example.select_dtypes("number").columns})
        mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(example, model.predict(example)),
            input_example=example,
            skops_trusted_types=own_types(model),
        )
        mlflow.log_input(
            mlflow.data.from_pandas(data.X.head(0), name="training data", digest=data.digest), context="training"
        )
        with tempfile.TemporaryDirectory() as folder:
            png = Path(folder) / "confusion_matrix.png"
            png.write_bytes(confusion_png(report["confusion"], f"{self.model}: held-out sites"))
            mlflow.log_artifact(str(png))
            summary = Path(folder) / "evaluation.json"
            summary.write_text(json.dumps(report, indent=2))
            mlflow.log_artifact(str(summary))

    def summary(self, report: dict) -> str:
        lines = []
        for split in ("grouped", "random"):
            if split in report:
                r = report[split]
                coverage = r[f"coverage_at_precision_{self.target_precision:g}"]
                lines.append(
                    f"{split:<8} macro-F1 {r['macro_f1']:.3f}  balanced accuracy {r['balanced_accuracy']:.3f}  "
                    f"coverage at precision {self.target_precision:g}: {coverage:.1%}"
                )
        rules = report["rules"]
        lines.append(f"rules    macro-F1 {rules['macro_f1']:.3f}  (answers {rules['coverage']:.1%})")
        if report.get("archives"):
            lines += ["", "on generated archives shaped like two real chest archives:"]
            lines.append(archive_table(report["archives"], self.target_precision))
        return "\n".join(lines)


@dataclass
class TrainResult(StageResult):
    """A fitted model, the evaluation that came before it, and where it was saved."""

    experiment: Experiment
    data: TrainingData
    model: SeriesTypeClassifier
    report: dict
    saved_to: Path | None = None
    #: The model in MLflow, once logged there.
    model_uri: str | None = None

    def params(self) -> dict[str, object]:
        return self.experiment.params(self.data)

    def metrics(self) -> dict[str, float]:
        return self.experiment.metrics(self.report)

    def log_extras(self, run) -> None:
        self.experiment._log_model(self.model, self.data, self.report)
        self.model_uri = f"runs:/{run.run_id}/model"

    def format(self) -> str:
        lines = [self.experiment.summary(self.report)]
        if self.model_uri:
            lines.append(f"model at {self.model_uri}")
        if self.saved_to is not None:
            lines.append(f"model    {self.saved_to}")
        return "\n".join(lines)


def train(experiment: Experiment, data: TrainingData, out: str | os.PathLike[str] | None = None) -> TrainResult:
    """Evaluate `experiment` on `data`, fit its model on all of it, and save it to `out`."""
    model, report = experiment.run(data)
    saved_to = save_model(model, out) if out else None
    return TrainResult(experiment, data, model, report, saved_to)


def _chest_types(model) -> bool:
    """Whether the model knows the chest views (a model trained on MR alone is not scored
    on chest archives)."""
    return {"chest_pa", "chest_lateral"} <= {str(c) for c in model.classes_}


def own_types(model) -> list[str]:
    """The types in `model` that skops does not trust by default, where they come from
    curate, scikit-learn, numpy or scipy: the model was built here from those parts, so
    exactly its own types are trusted when MLflow loads it."""
    import skops.io

    untrusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    return [t for t in untrusted if t.split(".")[0] in ("curate", "sklearn", "numpy", "scipy")]

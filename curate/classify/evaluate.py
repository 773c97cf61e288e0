"""How well a series-type model does: on held-out sites (what matters for a new hospital)
and on a random split, side by side."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, f1_score
from sklearn.model_selection import GroupShuffleSplit, ShuffleSplit, StratifiedShuffleSplit

from curate.classify.rules import UNKNOWN
from curate.figures import figure_png


def coverage_at_precision(y_true, proba: np.ndarray, classes: np.ndarray, target: float) -> tuple[float, float | None]:
    """The largest share of answers that keeps precision at or above `target` when only
    the most confident answers are given, and the probability threshold that does it."""
    y_true = np.asarray(y_true)
    confidence = proba.max(axis=1)
    correct = classes[proba.argmax(axis=1)] == y_true
    order = np.argsort(-confidence, kind="stable")
    precision = np.cumsum(correct[order]) / np.arange(1, len(order) + 1)
    ok = np.nonzero(precision >= target)[0]
    if len(ok) == 0:
        return 0.0, None
    last = ok[-1]
    return (last + 1) / len(order), float(confidence[order][last])


def threshold_for_precision(confidence, target: float) -> tuple[float | None, float]:
    """(the lowest confidence whose answers at or above it are expected to be at least
    `target` precise, the share of answers at or above it), from calibrated confidences
    alone: where they are calibrated, a set of answers is expected to be as precise as its
    mean confidence. (None, 0.0) where no answer is that sure."""
    ordered = np.sort(np.asarray(confidence, dtype=float))[::-1]
    if len(ordered) == 0:
        return None, 0.0
    expected = np.cumsum(ordered) / np.arange(1, len(ordered) + 1)
    reached = np.nonzero(expected >= target)[0]
    if len(reached) == 0:
        return None, 0.0
    last = int(reached[-1])
    # Ties at the threshold are answered too.
    threshold = float(ordered[last])
    return threshold, float(np.mean(ordered >= threshold))


def scores(y_true, y_pred, proba: np.ndarray, classes: np.ndarray, target_precision: float) -> dict:
    y_true = np.asarray(y_true)
    coverage, threshold = coverage_at_precision(y_true, proba, classes, target_precision)
    per_class = f1_score(y_true, y_pred, labels=classes, average=None, zero_division=0)
    return {
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
        f"coverage_at_precision_{target_precision:g}": coverage,
        "threshold_for_target_precision": threshold,
        "per_class_f1": {str(c): float(f) for c, f in zip(classes, per_class, strict=True)},
    }


def evaluate(
    make_model: Callable[[], object],
    X: pd.DataFrame,
    y: pd.Series,
    groups: pd.Series | None,
    target_precision: float = 0.95,
    test_size: float = 0.25,
    seed: int = 0,
) -> dict:
    """Scores on a split by group (site) and on a random split; plus the confusion matrix
    of the grouped split."""
    y = pd.Series(np.asarray(y), index=X.index)
    # Stratify the random split, unless a class is too rare to be in both halves.
    rare = y.value_counts().min() < 2
    random_split = (ShuffleSplit if rare else StratifiedShuffleSplit)(
        n_splits=1, test_size=test_size, random_state=seed
    )
    splits = {"random": random_split.split(X, y)}
    if groups is not None and pd.Series(groups).nunique() > 1:
        splits["grouped"] = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed).split(X, y, groups)
    result: dict = {}
    for name, split in splits.items():
        train, test = next(split)
        model = make_model().fit(X.iloc[train], y.iloc[train])
        proba = model.predict_proba(X.iloc[test])
        predicted = model.classes_[proba.argmax(axis=1)]
        result[name] = scores(y.iloc[test], predicted, proba, model.classes_, target_precision)
        result[name]["test_rows"] = len(test)
        if name == "grouped" or "grouped" not in splits:
            labels = sorted(set(y))
            result["confusion"] = {
                "labels": labels,
                "matrix": confusion_matrix(y.iloc[test], predicted, labels=labels).tolist(),
            }
    return result


def rule_scores(rules, X: pd.DataFrame, y) -> dict:
    predicted = rules.predict(X)
    y = np.asarray(y)
    return {
        "macro_f1": float(f1_score(y, predicted, average="macro", zero_division=0)),
        "coverage": float(np.mean(predicted != UNKNOWN)),
    }


def confusion_png(confusion: dict, title: str) -> bytes:
    """The confusion matrix as a PNG: rows are the truth, columns the prediction."""
    labels, matrix = confusion["labels"], np.array(confusion["matrix"])
    size = max(4.0, 0.45 * len(labels) + 2)

    def draw(fig, ax) -> None:
        shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
        ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        for i in range(len(labels)):
            for j in range(len(labels)):
                if matrix[i, j]:
                    ax.text(
                        j,
                        i,
                        str(matrix[i, j]),
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if shares[i, j] > 0.5 else "black",
                    )
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(title, fontsize=10)

    return figure_png(draw, size, size)


#: The generated archive profiles a trained model is also scored on (:mod:`curate.classify.archives`).
ARCHIVE_PROFILES = ("A", "B")


def archive_scores(model, target_precision: float, studies: int = 300, seed: int = 100, adapt: bool = True) -> dict:
    """Scores on archives generated like two real chest archives, one row each: the model
    as it is (zero-shot), the model adapted to the archive from no labels (what `curate
    classify` does without a model), and the ViewPosition rule beside them. Each gives
    frontal-vs-lateral balanced accuracy, macro-F1 and coverage at `target_precision`
    (the rule answers every image, so its coverage is its share of right answers where
    that reaches the target, else 0)."""
    from curate.classify.adapt import adapt_to_archive
    from curate.classify.archives import frontal_lateral_accuracy, generate_archive, view_position_rule

    out: dict = {}
    for profile in ARCHIVE_PROFILES:
        rows = generate_archive(profile, studies=studies, seed=seed)
        truth = rows["series_type"].to_numpy()
        X = rows.drop(columns=["series_type", "site"])
        answers = {"model": model}
        if adapt:
            answers["adapted"] = adapt_to_archive(X, base=model, random_state=seed)
        result = {}
        for name, estimator in answers.items():
            proba = estimator.predict_proba(X)
            predicted = estimator.classes_[proba.argmax(axis=1)]
            coverage, _ = coverage_at_precision(truth, proba, estimator.classes_, target_precision)
            result[name] = {
                "frontal_lateral": frontal_lateral_accuracy(truth, predicted),
                "macro_f1": float(f1_score(truth, predicted, average="macro", zero_division=0)),
                "coverage": coverage,
            }
        rule = view_position_rule(X)
        right = float(np.mean(rule == truth))
        result["rule"] = {
            "frontal_lateral": frontal_lateral_accuracy(truth, rule),
            "macro_f1": float(f1_score(truth, rule, average="macro", zero_division=0)),
            "coverage": 1.0 if right >= target_precision else 0.0,
        }
        out[profile] = result
    return out


def archive_table(results: dict, target_precision: float) -> str:
    """The per-archive scores as a table for the terminal."""
    lines = [f"{'archive':<8}{'answers':<10}{'frontal/lateral':>16}{'macro-F1':>10}{f'cov@{target_precision:g}':>10}"]
    for profile, result in results.items():
        for name, r in result.items():
            lines.append(
                f"{profile:<8}{name:<10}{r['frontal_lateral']:>16.3f}{r['macro_f1']:>10.3f}{r['coverage']:>10.1%}"
            )
    return "\n".join(lines)

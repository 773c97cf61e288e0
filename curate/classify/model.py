"""SeriesTypeClassifier: series type from header metadata, a scikit-learn estimator.

``X`` is an index table (pandas, Arrow, or a 2-D array) with any subset of the scanner's
keyword columns; missing columns and values are normal. ``fit`` returns the estimator;
``predict`` answers a class of ``classes_``, or ``unknown`` where the top probability
is below ``threshold`` (selective prediction); ``predict_series`` aggregates the
instances of each series into one answer.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d

from curate.classify.features import MetadataFeatures
from curate.classify.rules import UNKNOWN
from curate.classify.table import as_frame
from curate.errors import ConfigError

MODELS = ("logreg", "rf", "hgb")


class SeriesTypeClassifier(ClassifierMixin, BaseEstimator):
    """Classify series types from metadata.

    Parameters
    ----------
    model : "logreg", "rf" or "hgb"
        Logistic regression (fast, calibrated enough), random forest, or histogram
        gradient boosting (on fewer text features, as it needs a dense matrix).
    C : float
        Inverse regularisation of the logistic regression.
    n_estimators : int
        Trees of the random forest, iterations of gradient boosting.
    threshold : float or None
        Below this top probability, ``predict`` answers ``unknown``.
    random_state : int
    """

    def __init__(
        self,
        model: str = "logreg",
        C: float = 10.0,
        n_estimators: int = 200,
        threshold: float | None = None,
        random_state: int = 0,
    ):
        self.model = model
        self.C = C
        self.n_estimators = n_estimators
        self.threshold = threshold
        self.random_state = random_state

    def _estimator(self):
        if self.model == "logreg":
            return LogisticRegression(C=self.C, max_iter=2000, random_state=self.random_state)
        if self.model == "rf":
            return RandomForestClassifier(
                n_estimators=self.n_estimators,
                random_state=self.random_state,
                n_jobs=-1,
                class_weight="balanced_subsample",
            )
        if self.model == "hgb":
            return HistGradientBoostingClassifier(max_iter=self.n_estimators, random_state=self.random_state)
        raise ConfigError(f"model must be one of {', '.join(MODELS)}, not {self.model!r}")

    def fit(self, X, y=None):
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None")
        frame = as_frame(X)
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if len(frame) != len(y):
            raise ValueError(f"X has {len(frame)} rows but y has {len(y)}")
        if len(frame) < 2:
            raise ValueError(f"n_samples={len(frame)}: at least 2 samples are needed to fit")
        # One class only: every prediction is that class (nothing to learn).
        estimator = self._estimator() if len(np.unique(y)) > 1 else DummyClassifier(strategy="most_frequent")
        self.features_ = MetadataFeatures(
            text_features=2000 if self.model == "hgb" else 20000, random_state=self.random_state
        ).fit(frame)
        matrix = self.features_.transform(frame)
        estimator.fit(matrix.toarray() if self.model == "hgb" else matrix, y)
        self._positional = not isinstance(X, pd.DataFrame) and not hasattr(X, "schema")
        self.estimator_ = estimator
        self.classes_ = estimator.classes_
        self.n_features_in_ = frame.shape[1]
        if isinstance(X, pd.DataFrame):
            self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        return self

    def _matrix(self, X):
        check_is_fitted(self, "estimator_")
        frame = as_frame(X)
        # Named tables may hold any subset of columns; plain arrays are matched by position.
        if self._positional and frame.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {frame.shape[1]} features, but {type(self).__name__} is expecting {self.n_features_in_} features as input"  # noqa: E501 (scikit-learn's words)
            )
        matrix = self.features_.transform(frame)
        return matrix.toarray() if self.model == "hgb" else matrix

    def _allowed(self, frame: pd.DataFrame) -> np.ndarray | None:
        """Which classes each row may be (rows x classes), from the modality it declares:
        a type belongs to a family, a family to its modalities. A row whose modality no
        family claims, and a class outside the taxonomy, are not bounded."""
        if "Modality" not in frame:
            return None
        from curate.classify.taxonomy import known_modalities, modalities_of_type

        bounds = modalities_of_type()
        known = known_modalities()
        declared = frame["Modality"].map(lambda v: str(v).strip().upper() if isinstance(v, str) else "").to_numpy()
        allowed = np.ones((len(frame), len(self.classes_)), dtype=bool)
        for modality in set(declared) & known:
            rows = declared == modality
            allowed[rows] = [str(c) not in bounds or modality in bounds[str(c)] for c in self.classes_]
        return allowed

    def _bounded_proba(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities renormalised over the classes each row may be, and whether any
        class was left (a model trained without the row's family cannot answer it)."""
        proba = self.estimator_.predict_proba(self._matrix(frame))
        allowed = self._allowed(frame)
        if allowed is None:
            return proba, np.ones(len(proba), dtype=bool)
        kept = np.where(allowed, proba, 0.0)
        total = kept.sum(axis=1, keepdims=True)
        answerable = allowed.any(axis=1)
        # Nothing left: the probabilities stay as the estimator gave them, the answer unknown.
        bounded = np.where(total > 0, kept / np.where(total > 0, total, 1.0), proba)
        return bounded, answerable

    def predict_proba(self, X) -> np.ndarray:
        check_is_fitted(self, "estimator_")
        return self._bounded_proba(as_frame(X))[0]

    def predict(self, X) -> np.ndarray:
        check_is_fitted(self, "estimator_")
        proba, answerable = self._bounded_proba(as_frame(X))
        labels = self.classes_[np.argmax(proba, axis=1)]
        if self.threshold is None and answerable.all():
            return labels
        labels = labels.astype(object)
        unsure = ~answerable if self.threshold is None else (~answerable | (proba.max(axis=1) < self.threshold))
        labels[unsure] = UNKNOWN
        return labels

    def predict_series(self, X) -> pd.DataFrame:
        """One row per SeriesInstanceUID: the type with the highest mean probability over
        the series' instances, and that probability as ``confidence``."""
        frame = as_frame(X)
        if "SeriesInstanceUID" not in frame:
            raise ValueError("predict_series needs a SeriesInstanceUID column")
        check_is_fitted(self, "estimator_")
        bounded, answerable = self._bounded_proba(frame)
        proba = pd.DataFrame(bounded, columns=self.classes_, index=frame.index)
        keys = frame["SeriesInstanceUID"].to_numpy()
        mean = proba.groupby(keys).mean()
        best = mean.to_numpy().argmax(axis=1)
        confidence = mean.to_numpy().max(axis=1)
        types = self.classes_[best].astype(object)
        types[~pd.Series(answerable).groupby(keys).all().reindex(mean.index).to_numpy()] = UNKNOWN
        if self.threshold is not None:
            types[confidence < self.threshold] = UNKNOWN
        return pd.DataFrame({"SeriesInstanceUID": mean.index, "series_type": types, "confidence": confidence})

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.string = True
        return tags

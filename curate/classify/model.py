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
from sklearn.base import BaseEstimator, ClassifierMixin, clone
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
    calibration : None or "temperature"
        Temperature scaling (Guo et al., "On calibration of modern neural networks",
        ICML 2017): one temperature, fitted on out-of-fold answers (folds by the
        ``groups`` given to ``fit``, e.g. sites, else by study), so that a confidence of
        0.9 is right about 9 times in 10 on data the model has not seen.
    """

    def __init__(
        self,
        model: str = "logreg",
        C: float = 10.0,
        n_estimators: int = 200,
        threshold: float | None = None,
        random_state: int = 0,
        calibration: str | None = None,
    ):
        self.model = model
        self.C = C
        self.n_estimators = n_estimators
        self.threshold = threshold
        self.random_state = random_state
        self.calibration = calibration

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

    def fit(self, X, y=None, groups=None):
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
        self.temperature_ = 1.0
        if self.calibration == "temperature" and len(estimator.classes_) > 1:
            self.temperature_ = self._fit_temperature(frame, y, groups)
        elif self.calibration not in (None, "temperature"):
            raise ConfigError(f"calibration must be None or 'temperature', not {self.calibration!r}")
        self.n_features_in_ = frame.shape[1]
        if isinstance(X, pd.DataFrame):
            self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        return self

    def _fit_temperature(self, frame: pd.DataFrame, y: np.ndarray, groups) -> float:
        from scipy.optimize import minimize_scalar
        from sklearn.model_selection import GroupKFold, StratifiedKFold

        if groups is None:
            key = next((k for k in ("StudyInstanceUID", "SeriesInstanceUID") if k in frame), None)
            groups = frame[key].fillna("").to_numpy() if key is not None else None
        folds = min(3, len(np.unique(groups)) if groups is not None else 3)
        if folds < 2:
            return 1.0
        splitter = GroupKFold(folds) if groups is not None else StratifiedKFold(folds, shuffle=True, random_state=0)
        log_proba = np.full((len(frame), len(self.classes_)), np.nan)
        for train, test in splitter.split(frame, y, groups):
            if len(np.unique(y[train])) < 2:
                continue
            fold = clone(self).set_params(calibration=None).fit(frame.iloc[train], y[train])
            columns = np.searchsorted(self.classes_, fold.classes_)
            proba = fold.estimator_.predict_proba(fold._matrix(frame.iloc[test]))
            log_proba[test] = np.log(1e-12)  # a class the fold never saw
            log_proba[np.ix_(test, columns)] = np.log(np.clip(proba, 1e-12, 1.0))
        seen = ~np.isnan(log_proba).any(axis=1)
        if not seen.any():
            return 1.0
        truth = np.searchsorted(self.classes_, y[seen])
        logits = log_proba[seen]

        def nll(log_t: float) -> float:
            scaled = logits / np.exp(log_t)
            scaled = scaled - scaled.max(axis=1, keepdims=True)
            return float(-(scaled[np.arange(len(truth)), truth] - np.log(np.exp(scaled).sum(axis=1))).mean())

        return float(np.exp(minimize_scalar(nll, bounds=(-3.0, 3.0), method="bounded").x))

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

    def columns_read(self) -> list[str]:
        """The index columns this model reads: its features, the study and series each
        image is judged beside, and the modality that bounds the answer."""
        check_is_fitted(self, "estimator_")
        used = [c for columns in self.features_.roles_.values() for c in columns]
        return list(dict.fromkeys([*used, "StudyInstanceUID", "SeriesInstanceUID", "ViewPosition", "Modality"]))

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
        temperature = getattr(self, "temperature_", 1.0)
        if temperature != 1.0:
            scaled = np.log(np.clip(proba, 1e-12, 1.0)) / temperature
            scaled = np.exp(scaled - scaled.max(axis=1, keepdims=True))
            proba = scaled / scaled.sum(axis=1, keepdims=True)
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
        return self._answers(proba, answerable, self.threshold)

    def _answers(self, proba: np.ndarray, answerable: np.ndarray, threshold: float | None) -> np.ndarray:
        labels = self.classes_[np.argmax(proba, axis=1)]
        if threshold is None and answerable.all():
            return labels
        labels = labels.astype(object)
        unsure = ~answerable if threshold is None else (~answerable | (proba.max(axis=1) < threshold))
        labels[unsure] = UNKNOWN
        return labels

    def predict_series(self, X) -> pd.DataFrame:
        """One row per SeriesInstanceUID: the type with the highest mean probability over
        the series' instances, and that probability as ``confidence``."""
        frame = as_frame(X)
        if "SeriesInstanceUID" not in frame:
            raise ValueError("predict_series needs a SeriesInstanceUID column")
        check_is_fitted(self, "estimator_")
        proba, answerable = self._bounded_proba(frame)
        return self._series(frame, proba, answerable, self.threshold)

    def predict_types(self, X) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
        """:meth:`predict_series` and :meth:`predict` from one reading of the rows: (the
        series frame, each row's type, each row's top probability)."""
        frame = as_frame(X)
        check_is_fitted(self, "estimator_")
        return self._types(frame, *self._bounded_proba(frame), self.threshold)

    def _types(
        self, frame: pd.DataFrame, proba: np.ndarray, answerable: np.ndarray, threshold: float | None
    ) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
        series = self._series(frame, proba, answerable, threshold)
        return series, self._answers(proba, answerable, threshold), proba.max(axis=1)

    def _series(
        self, frame: pd.DataFrame, proba: np.ndarray, answerable: np.ndarray, threshold: float | None
    ) -> pd.DataFrame:
        keys = frame["SeriesInstanceUID"].to_numpy()
        mean = pd.DataFrame(proba, columns=self.classes_, index=frame.index).groupby(keys).mean()
        best = mean.to_numpy().argmax(axis=1)
        confidence = mean.to_numpy().max(axis=1)
        types = self.classes_[best].astype(object)
        types[~pd.Series(answerable).groupby(keys).all().reindex(mean.index).to_numpy()] = UNKNOWN
        if threshold is not None:
            types[confidence < threshold] = UNKNOWN
        return pd.DataFrame({"SeriesInstanceUID": mean.index, "series_type": types, "confidence": confidence})

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.string = True
        return tags

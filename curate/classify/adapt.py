"""A series-type model that learns the user's own archive, from no labels at all.

The method is one round of co-training (Blum and Mitchell, "Combining labeled and
unlabeled data with co-training", COLT 1998). An image has two views that each say what
it is:

1. what it declares: ViewPosition, the body part, the MR and CT keywords, read by the
   header rules (:class:`~curate.classify.rules.RuleLabeler`);
2. everything else about it: descriptions in the site's language, detector geometry,
   exposure beside the rest of its study, the vendor's habits.

The rules' answer is a label only where it is consistent with the rest of the study and
series: a ViewPosition that every image of a multi-image study repeats (a site that
copies the study's "PA" to its lateral) is no evidence, and neither are instances of one
series that the rules type differently. Where the rules say nothing, the shipped default
model's answer is a label where its probability is at least :data:`BASE_CONFIDENCE`.

Two models are fitted on those labels. One reads everything; the other reads the second
view only, so it learns what the archive's frontal and lateral images look like without
the declaration it was taught from. Its confidences are calibrated by temperature on
out-of-fold answers. A row without a consistent declaration is answered by the second
model alone. A row with one is answered by both, as a product of experts (Hinton,
"Training products of experts by minimizing contrastive divergence", Neural Computation
2002), tempered to their geometric mean: an image that looks like a lateral doubts the
"PA" it declares. Below ``threshold`` the answer is ``unknown``.

The threshold can target a precision without any label (``target_precision``). Where
confidences are calibrated, the expected precision of the answers at or above a
confidence is their mean confidence, so the threshold is the lowest confidence at which
the training sample's answers average the target (:func:`threshold_for_precision`). On
the generated archives of :mod:`curate.classify.archives` the precision observed at a
0.95 target was 0.966 to 0.971 on B-like archives (74 to 77% answered), and 0.924 to
0.949 on A-like ones (94 to 99% answered): there one site tags nearly every lateral PA,
and a model's own confidence cannot see what an archive gets wrong by habit.

Training takes a seeded sample of whole studies, at most :data:`MAX_TRAINING_ROWS` rows:
the same rows and the same model in any process, and bounded memory at any archive size.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from curate.classify.evaluate import threshold_for_precision
from curate.classify.features import _to_text, study_keys
from curate.classify.model import SeriesTypeClassifier
from curate.classify.rules import UNKNOWN, RuleLabeler
from curate.classify.table import as_frame
from curate.errors import ConfigError, LabelsError

#: The default model's answers are labels only at or above this probability.
BASE_CONFIDENCE = 0.95
MAX_TRAINING_ROWS = 200_000
#: The precisions whose estimated thresholds an adaptation reports.
REPORTED_PRECISIONS = (0.95, 0.98)
#: Columns that carry an image's declaration (the first view), hidden from the second.
DECLARED = ("ViewPosition", "view")
#: What the header rules read to find a declaration.
RULES_READ = (
    "Modality",
    "BodyPartExamined",
    "ViewPosition",
    "ImageType",
    "SeriesDescription",
    "ProtocolName",
    "RepetitionTime",
    "EchoTime",
    "ContrastBolusAgent",
    "StudyInstanceUID",
    "SeriesInstanceUID",
)


def repeated_views(frame: pd.DataFrame) -> np.ndarray:
    """Rows whose ViewPosition every other image of its (multi-image) study repeats."""
    if "ViewPosition" not in frame:
        return np.zeros(len(frame), dtype=bool)
    keys, in_study = study_keys(frame)
    view = _to_text(frame["ViewPosition"]).str.strip().str.upper()
    size = view.groupby(keys).transform("size")
    distinct = view.groupby(keys).transform("nunique")
    return ((view != "") & in_study & (size >= 2) & (distinct == 1)).to_numpy()


def without_untrusted_views(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with the ViewPositions that :func:`repeated_views` finds read as empty."""
    repeated = repeated_views(frame)
    if not repeated.any():
        return frame
    frame = frame.copy()
    for column in DECLARED:
        if column in frame:
            frame[column] = frame[column].astype(object).where(~repeated, None)
    return frame


def _undeclared(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` without the declaration: what the second model reads."""
    return frame.drop(columns=[c for c in DECLARED if c in frame])


def consistent_rule_labels(frame: pd.DataFrame) -> np.ndarray:
    """The rules' answer per row, ``unknown`` where it is not evidence: declared views
    that the study repeats, and series whose instances the rules type differently
    (except radiographs, whose images may be different views of one series)."""
    return _rule_labels(without_untrusted_views(frame))


def _rule_labels(prepared: pd.DataFrame) -> np.ndarray:
    """:func:`consistent_rule_labels` of a frame that :func:`without_untrusted_views`
    has already prepared."""
    labels = RuleLabeler().predict(prepared).astype(object)
    if "SeriesInstanceUID" in prepared:
        answered = pd.Series(np.where(labels == UNKNOWN, None, labels), index=prepared.index)
        per_series = answered.groupby(prepared["SeriesInstanceUID"].fillna("").to_numpy()).transform("nunique")
        view_types = pd.Series(labels).str.startswith("chest_").to_numpy()
        labels[(per_series.to_numpy() > 1) & ~view_types] = UNKNOWN
    return labels


def _sample_studies(frame: pd.DataFrame, rows: int, random_state: int) -> pd.DataFrame:
    """Whole studies (or series, or rows) drawn with a seed until about `rows` rows."""
    if len(frame) <= rows:
        return frame
    key = next((k for k in ("StudyInstanceUID", "SeriesInstanceUID") if k in frame), None)
    if key is None:
        return frame.sample(n=rows, random_state=random_state)
    groups = frame[key].fillna("").to_numpy()
    unique, inverse = np.unique(groups, return_inverse=True)
    order = np.random.default_rng(random_state).permutation(len(unique))
    sizes = np.bincount(inverse)[order]
    chosen = order[: int(np.searchsorted(np.cumsum(sizes), rows, side="right")) + 1]
    return frame[np.isin(inverse, chosen)]


@dataclass
class AdaptationReport:
    """How many rows of each type were taken as labels, and from where."""

    rows: int
    sampled: int
    from_rules: dict[str, int] = field(default_factory=dict)
    from_base: dict[str, int] = field(default_factory=dict)
    #: Per target precision: (the confidence threshold that reaches it, the share of the
    #: sample answered at or above it), estimated from the calibrated confidences.
    precision_thresholds: dict[float, tuple[float | None, float]] = field(default_factory=dict)

    def format(self) -> str:
        def counts(c: dict[str, int]) -> str:
            return ", ".join(f"{k} {v:,}" for k, v in sorted(c.items())) or "none"

        def at(target: float, threshold: float | None, coverage: float) -> str:
            if threshold is None:
                return f"  {target:.0%} precision: not reached"
            return f"  {target:.0%} precision: confidence >= {threshold:.2f} ({coverage:.0%} of images answered)"

        estimates = [at(t, *v) for t, v in sorted(self.precision_thresholds.items())]
        return "\n".join(
            [
                f"adapted to {self.sampled:,} of {self.rows:,} rows",
                f"  labels from the header rules:  {counts(self.from_rules)}",
                f"  labels from the default model: {counts(self.from_base)}",
                *(
                    ["estimated from calibrated confidences (set target_precision= to abstain below):"]
                    if estimates
                    else []
                ),
                *estimates,
            ]
        )


def _counts(labels) -> dict[str, int]:
    values, counts = np.unique(np.asarray(labels, dtype=str), return_counts=True)
    return {str(v): int(c) for v, c in zip(values, counts, strict=True)}


class ArchiveClassifier(ClassifierMixin, BaseEstimator):
    """A series-type model adapted to one archive. Every row is answered by the model of
    everything but the declaration (``undeclared``), whose confidences are calibrated on
    the declared rows with their declaration hidden; a row with a consistent declaration
    also by the model that reads it (``declared``), the two joined by their geometric
    mean. ``report_`` says what it learned from, and the thresholds estimated to reach
    :data:`REPORTED_PRECISIONS`."""

    def __init__(
        self,
        declared: SeriesTypeClassifier | None = None,
        undeclared: SeriesTypeClassifier | None = None,
        threshold: float | None = 0.5,
    ):
        self.declared = declared
        self.undeclared = undeclared
        self.threshold = threshold

    def columns_read(self) -> list[str]:
        """The index columns either model, or the rules, read."""
        return list(dict.fromkeys([*self.declared.columns_read(), *self.undeclared.columns_read(), *RULES_READ]))

    @property
    def classes_(self):
        return self.declared.classes_

    def _bounded_proba(self, X) -> tuple[np.ndarray, np.ndarray]:
        check_is_fitted(self.declared, "estimator_")
        prepared = without_untrusted_views(as_frame(X))
        declared = _rule_labels(prepared) != UNKNOWN
        proba = np.zeros((len(prepared), len(self.classes_)))
        answerable = np.ones(len(prepared), dtype=bool)
        # Each model reads whole studies (an image is judged beside the rest of its study).
        # The second model answers every row; the first joins it where a row declares.
        proba, answerable = self.undeclared._bounded_proba(_undeclared(prepared))
        if declared.any():
            both, both_answerable = self.declared._bounded_proba(prepared)
            joint = np.sqrt(both[declared] * proba[declared])
            total = joint.sum(axis=1, keepdims=True)
            # Two experts sure of different types: the declaring model's answer stands.
            proba[declared] = np.where(total > 0, joint / np.where(total > 0, total, 1), both[declared])
            answerable[declared] = both_answerable[declared]
        return proba, answerable

    def predict_proba(self, X) -> np.ndarray:
        return self._bounded_proba(X)[0]

    def predict(self, X) -> np.ndarray:
        proba, answerable = self._bounded_proba(X)
        return self.declared._answers(proba, answerable, self.threshold)

    def predict_series(self, X) -> pd.DataFrame:
        frame = as_frame(X)
        proba, answerable = self._bounded_proba(frame)
        return self.declared._series(frame, proba, answerable, self.threshold)

    def predict_types(self, X) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
        """(the series frame, each row's type, each row's top probability), from one reading."""
        frame = as_frame(X)
        return self.declared._types(frame, *self._bounded_proba(frame), self.threshold)


def adapt_to_archive(
    frame,
    base: SeriesTypeClassifier | None = None,
    random_state: int = 0,
    threshold: float | None = 0.5,
    max_rows: int = MAX_TRAINING_ROWS,
    target_precision: float | None = None,
) -> ArchiveClassifier:
    """A series-type model fitted to `frame`'s own archive, from no labels (see the
    module's docstring). `frame` is index-like (pandas or Arrow, any subset of the
    scanner's columns); `base` is the model whose sure answers also count as labels (the
    shipped default when None). With `target_precision`, the threshold is the one
    estimated to reach it (``threshold`` is then ignored)."""
    if target_precision is not None and not 0 < target_precision < 1:
        raise ConfigError(f"target_precision must be between 0 and 1, not {target_precision}")
    from curate.classify.default import load_default_model

    whole = as_frame(frame)
    sample = _sample_studies(whole, max_rows, random_state).reset_index(drop=True)
    prepared = without_untrusted_views(sample)
    labels = _rule_labels(prepared)
    report = AdaptationReport(rows=len(whole), sampled=len(sample), from_rules=_counts(labels[labels != UNKNOWN]))

    base = base if base is not None else load_default_model()
    proba = base.predict_proba(prepared)
    sure = (labels == UNKNOWN) & (proba.max(axis=1) >= BASE_CONFIDENCE)
    labels[sure] = base.classes_[proba.argmax(axis=1)][sure]
    report.from_base = _counts(labels[sure])
    labelled = labels != UNKNOWN
    if labelled.sum() < 2:
        raise LabelsError(
            "neither the header rules nor the default model are sure of any row of this archive: "
            "give labels (curate train data.source=index data.labels=CSV)"
        )
    declared = SeriesTypeClassifier(random_state=random_state).fit(prepared[labelled], labels[labelled])
    undeclared = SeriesTypeClassifier(random_state=random_state, calibration="temperature").fit(
        _undeclared(prepared)[labelled], labels[labelled]
    )
    adapted = ArchiveClassifier(declared, undeclared, threshold=threshold)
    confidence = adapted.predict_proba(sample).max(axis=1)
    targets = sorted({*REPORTED_PRECISIONS, *([target_precision] if target_precision is not None else [])})
    report.precision_thresholds = {t: threshold_for_precision(confidence, t) for t in targets}
    if target_precision is not None:
        chosen, _ = report.precision_thresholds[target_precision]
        # Not reached: nothing is that sure, so every answer is unknown.
        adapted.threshold = chosen if chosen is not None else np.nextafter(1.0, 2.0)
    adapted.report_ = report
    return adapted


def sample_index(index_dir, rows: int = MAX_TRAINING_ROWS, random_state: int = 0) -> pd.DataFrame:
    """A seeded sample of whole studies from an index, about `rows` rows (the whole index
    when it is smaller) of the columns a series-type model may read: what
    :func:`adapt_to_archive` trains on. DuckDB draws it (by a digest of each study's UID
    and the seed), so that memory stays bounded at any index size and the same index and
    seed give the same rows."""
    from curate.classify.table import is_feature_column
    from curate.classify.train import STUDY_GROUP, study_groups
    from curate.index.store import open_index, sql_string

    store = open_index(index_dir)
    available = store.columns()
    columns = sorted(c for c in available if is_feature_column(c) or c in RULES_READ)
    # The groups classify_index reads (a series whole with one study), each kept where
    # a digest of it with the seed falls below the share that gives about `rows` rows:
    # a filter row by row, with nothing to sort or hold in DuckDB.
    column, groups = study_groups(available)
    select = ", ".join(f'"{c}"' for c in dict.fromkeys([*columns, "path"]))
    con = store.connect("idx")
    try:
        total = con.execute("SELECT count(*) FROM idx WHERE status = 'ok'").fetchone()[0]
        drawn = "TRUE"
        if total > rows:
            below = int(rows / total * 2**128)
            drawn = f'md5_number("{STUDY_GROUP}" || {sql_string(str(random_state))}) < {below}::UHUGEINT'
        # Read as it comes and sorted here: the sample is bounded, and DuckDB cannot sort
        # rows this wide within its memory limit.
        frame = con.execute(
            f'SELECT "{STUDY_GROUP}", {select} FROM idx JOIN ({groups}) AS keys USING ("{column}") '
            f"WHERE status = 'ok' AND {drawn}"
        ).df()
    finally:
        con.close()
    frame = frame.sort_values([STUDY_GROUP, "path"], kind="stable", ignore_index=True)
    return frame.drop(columns=[STUDY_GROUP, *([] if "path" in columns else ["path"])])

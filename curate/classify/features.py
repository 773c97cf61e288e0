"""From index rows to a feature matrix: text as character n-grams, categories one-hot,
multi-valued codes as tokens, numbers imputed and mapped to their quantiles, and every other informative
column typed automatically. Identifiers, names, dates and demographics are never used.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import OneHotEncoder, QuantileTransformer

from curate.classify.table import as_frame, is_feature_column

#: Free text: read as character n-grams (spelling, language and abbreviations vary).
TEXT_COLUMNS = (
    "SeriesDescription",
    "ProtocolName",
    "StudyDescription",
    "BodyPartExamined",
    "PerformedProcedureStepDescription",
    "AcquisitionDeviceProcessingDescription",
    "DerivationDescription",
    "SequenceName",
)
#: Backslash-separated or list-valued codes: read as a bag of their parts.
TOKEN_COLUMNS = ("ImageType", "ScanningSequence", "SequenceVariant", "ScanOptions", "PatientOrientation")
MAX_CATEGORIES = 50
#: Numbers read against the rest of the study: the lateral of a visit takes more exposure
#: than its PA, whatever the site's own level.
STUDY_RELATIVE = (
    "Exposure",
    "ExposureTime",
    "XRayTubeCurrent",
    "KVP",
    "ExposureIndex",
    "DeviationIndex",
    "RelativeXRayExposure",
    "DistanceSourceToDetector",
    "Rows",
    "Columns",
    "aspect",
)


def study_keys(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Each row's study (as a group key) and whether it names one: rows without a
    StudyInstanceUID share the key "" but belong to no study."""
    if "StudyInstanceUID" not in frame:
        return np.full(len(frame), "", dtype=object), np.zeros(len(frame), dtype=bool)
    study = frame["StudyInstanceUID"]
    return study.astype(object).where(study.notna(), "").to_numpy(), study.notna().to_numpy()


def study_context(frame: pd.DataFrame, numbers: pd.DataFrame) -> None:
    """Add to `numbers` what an image is beside the other images of its study: how many
    there are, how many others declare the same ViewPosition (a site that copies the
    study's view to every image), and each of :data:`STUDY_RELATIVE` as the share above
    or below the study's median (empty for an image alone in its study, or in none). A
    study is read whole: the index is read in batches of whole studies, a training sample
    takes whole studies."""
    keys, in_study = study_keys(frame)
    size = pd.Series(1, index=frame.index).groupby(keys).transform("size").where(in_study, np.nan)
    numbers["images_in_study"] = size
    if "ViewPosition" in frame:
        view = _to_text(frame["ViewPosition"]).str.strip().str.upper()
        same = view.groupby([keys, view.to_numpy()]).transform("size") - 1
        numbers["same_view_in_study"] = same.where((view != "") & in_study, np.nan)
    else:
        numbers["same_view_in_study"] = np.nan
    alone = ~(size.to_numpy() >= 2)
    for c in STUDY_RELATIVE:
        values = numbers[c] if c in numbers else pd.Series(np.nan, index=frame.index)
        median = values.groupby(keys).transform("median")
        share = (values - median) / median.abs().where(median.abs() > 0, np.nan)
        numbers[f"{c}_in_study"] = share.where(~alone, np.nan)


def _is_sequence(value) -> bool:
    return isinstance(value, (list, tuple, np.ndarray))


def _is_list(series: pd.Series) -> bool:
    """Whether any cell holds several values. Frames read from CSV or JSON mix lists and
    scalars in one column, so the first cell says nothing about the others."""
    return series.dtype == object and bool(series.map(_is_sequence).any())


def _to_text(series: pd.Series) -> pd.Series:
    def one(value):
        if _is_sequence(value):
            return "\\".join(str(v) for v in value)
        return "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)

    return series.map(one)


def _first(value):
    """The first of several values (a list, or DICOM's backslash-separated text)."""
    if _is_sequence(value):
        return value[0] if len(value) else np.nan
    if isinstance(value, str) and "\\" in value:
        return value.split("\\", 1)[0]
    return value


def _numeric(series: pd.Series) -> pd.Series:
    if series.dtype == object:
        series = series.map(_first)
    return pd.to_numeric(series, errors="coerce")


class MetadataFeatures(BaseEstimator, TransformerMixin):
    """Learns each column's role at fit; builds a sparse feature matrix."""

    def __init__(self, text_features: int = 20000, random_state: int = 0):
        self.text_features = text_features
        self.random_state = random_state

    def _roles(self, frame: pd.DataFrame) -> dict[str, list[str]]:
        roles = {"text": [], "tokens": [], "category": [], "number": []}
        for name in frame.columns:
            if not is_feature_column(str(name)):
                continue
            series = frame[name]
            present = series.notna()
            numeric_share = _numeric(series)[present].notna().mean() if present.any() else 0.0
            if name in TEXT_COLUMNS or "CodeMeaning" in str(name):
                roles["text"].append(name)
            elif name in TOKEN_COLUMNS or (_is_list(series) and numeric_share < 0.9):
                roles["tokens"].append(name)
            elif pd.api.types.is_numeric_dtype(series) or numeric_share > 0.9:
                roles["number"].append(name)
            elif _to_text(series).replace("", np.nan).nunique(dropna=True) <= MAX_CATEGORIES:
                roles["category"].append(name)
            else:
                roles["text"].append(name)  # many distinct strings: read them as text
        return roles

    def _text(self, frame: pd.DataFrame) -> list[str]:
        if not self.roles_["text"]:
            return [""] * len(frame)
        parts = [
            _to_text(frame[c]) if c in frame else pd.Series([""] * len(frame), index=frame.index)
            for c in self.roles_["text"]
        ]
        return [" | ".join(values) for values in zip(*parts, strict=True)]

    def _tokens(self, frame: pd.DataFrame) -> list[str]:
        rows = [[] for _ in range(len(frame))]
        for name in self.roles_["tokens"]:
            if name not in frame:
                continue
            for i, value in enumerate(_to_text(frame[name])):
                rows[i].extend(f"{name}={p.strip().upper()}" for p in value.split("\\") if p.strip())
        return [" ".join(r) for r in rows]

    def _categories(self, frame: pd.DataFrame) -> pd.DataFrame:
        data = {c: (_to_text(frame[c]).str.strip().str.upper() if c in frame else "") for c in self.roles_["category"]}
        return pd.DataFrame(data, index=frame.index).replace("", "<missing>")

    def _numbers(self, frame: pd.DataFrame) -> np.ndarray:
        columns = {c: (_numeric(frame[c]) if c in frame else np.nan) for c in self.roles_["number"]}
        numbers = pd.DataFrame(columns, index=frame.index, dtype=float)
        rows, cols = numbers.get("Rows"), numbers.get("Columns")
        numbers["aspect"] = rows / cols if rows is not None and cols is not None else np.nan
        if "SeriesInstanceUID" in frame:
            numbers["images_in_series"] = frame.groupby("SeriesInstanceUID")["SeriesInstanceUID"].transform("size")
        else:
            numbers["images_in_series"] = np.nan
        study_context(frame, numbers)
        return numbers.to_numpy(dtype=float)

    def fit(self, X, y=None):
        frame = as_frame(X)
        self.roles_ = self._roles(frame)
        text = self._text(frame)
        self.text_ = None
        if any(t.strip(" |") for t in text):
            self.text_ = TfidfVectorizer(
                analyzer="char_wb",
                ngram_range=(2, 4),
                lowercase=True,
                strip_accents="unicode",
                sublinear_tf=True,
                max_features=self.text_features,
            )
            self.text_.fit(text)
        self.tokens_ = CountVectorizer(token_pattern=r"\S+", lowercase=False, binary=True)
        tokens = self._tokens(frame)
        self.tokens_.fit(tokens if any(tokens) else ["<none>"])
        self.categories_ = OneHotEncoder(handle_unknown="ignore")
        self.categories_.fit(self._categories(frame) if self.roles_["category"] else np.zeros((len(frame), 1)))
        numbers = self._numbers(frame)
        # keep_empty_features: a column absent from the training data stays a column (zero).
        self.imputer_ = SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True).fit(numbers)
        # Quantiles, not z-scores: a value outside the training range (a 128-pixel CT on a
        # model that saw only 512) maps to the edge instead of extrapolating without bound.
        imputed = self.imputer_.transform(numbers)
        # Seeded: above 10,000 rows the quantiles come from a random subsample, and an
        # unseeded one gives another model in every process.
        self.scaler_ = QuantileTransformer(
            n_quantiles=max(2, min(200, len(imputed))), random_state=self.random_state
        ).fit(imputed)
        self.n_features_in_ = frame.shape[1]
        return self

    def transform(self, X):
        frame = as_frame(X)
        blocks = [
            self.text_.transform(self._text(frame)) if self.text_ is not None else sp.csr_matrix((len(frame), 0)),
            self.tokens_.transform(self._tokens(frame)),
            self.categories_.transform(
                self._categories(frame) if self.roles_["category"] else np.zeros((len(frame), 1))
            ),
            sp.csr_matrix(np.nan_to_num(self.scaler_.transform(self.imputer_.transform(self._numbers(frame))))),
        ]
        return sp.hstack(blocks, format="csr")

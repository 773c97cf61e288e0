"""Training data, training, saving and applying series-type models.

Training data is either generated (:mod:`curate.classify.synth`) or an index with a
labels CSV (``SeriesInstanceUID`` or ``SOPInstanceUID``, and ``series_type``), or with
weak labels from the header rules (``labels="rules"``). Sites are the groups of the
grouped evaluation: whole hospitals are held out.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from curate.classify.model import SeriesTypeClassifier
from curate.errors import LabelsError, ModelNotFoundError
from curate.files import sha256_of, write_atomic
from curate.index.dask import DaskOptions
from curate.index.schema import ROW_ID
from curate.index.store import INSTANCE_TYPES_FILE, SERIES_TYPES_FILE
from curate.tracking import StageResult


@dataclass
class TrainingData:
    X: pd.DataFrame
    y: pd.Series
    groups: pd.Series | None
    #: What the data is, in words that identify no one (for tracking).
    description: str
    digest: str


def _digest(frame: pd.DataFrame, y: pd.Series) -> str:
    hashed = pd.util.hash_pandas_object(frame.astype(str), index=False).to_numpy().tobytes()
    return hashlib.sha256(hashed + "\x00".join(map(str, y)).encode()).hexdigest()[:16]


def synthetic_data(series: int = 3000, sites: int = 10, seed: int = 0) -> TrainingData:
    from curate.classify.synth import generate

    rows = generate(series, sites=sites, seed=seed)
    X = rows.drop(columns=["series_type", "site"])
    return TrainingData(
        X,
        rows.series_type,
        rows.site,
        f"synthetic: {series} series, {sites} sites, seed {seed}",
        _digest(X, rows.series_type),
    )


def labelled_index(
    index_dir: str | os.PathLike[str], labels: str | os.PathLike[str], group_column: str = "InstitutionName"
) -> TrainingData:
    """Index rows joined with their labels (by series or by instance)."""
    from curate.index.store import open_index

    frame = open_index(index_dir).read().to_pandas()
    frame = frame[frame["status"] == "ok"]
    if str(labels) == "rules":
        return _weakly_labelled(frame, group_column)
    table = pd.read_csv(labels, dtype=str)
    if "series_type" not in table:
        raise LabelsError(f"{labels}: needs a series_type column")
    key = next((k for k in ("SOPInstanceUID", "SeriesInstanceUID") if k in table), None)
    if key is None:
        raise LabelsError(f"{labels}: needs a SeriesInstanceUID or SOPInstanceUID column")
    if key not in frame:
        raise LabelsError(f"the index has no {key} column to join the labels on")
    merged = frame.merge(table[[key, "series_type"]].drop_duplicates(key), on=key, how="inner")
    if merged.empty:
        raise LabelsError(f"no row of the index matches a label in {labels}")
    groups = merged[group_column] if group_column in merged else None
    X = merged.drop(columns=["series_type"])
    return TrainingData(
        X,
        merged["series_type"],
        groups,
        f"index with {len(merged)} labelled rows ({merged['series_type'].nunique()} types)",
        _digest(X[[c for c in X.columns if c != "path"]], merged["series_type"]),
    )


def _weakly_labelled(frame: pd.DataFrame, group_column: str) -> TrainingData:
    """Weak labels: what the header rules say, where they say something. A model trained
    on them generalises the rules to rows they cannot read (a missing ViewPosition)."""
    from curate.classify.rules import UNKNOWN, RuleLabeler

    frame = frame.reset_index(drop=True)
    labels = pd.Series(RuleLabeler().predict(frame), index=frame.index)
    keep = labels != UNKNOWN
    if not keep.any():
        raise LabelsError("the header rules label no row of this index: give a labels CSV")
    X = frame[keep]
    groups = X[group_column] if group_column in X else None
    return TrainingData(
        X,
        labels[keep],
        groups,
        f"index with {int(keep.sum())} rows weakly labelled by the header rules",
        _digest(X[[c for c in X.columns if c != "path"]], labels[keep]),
    )


def save_model(model: SeriesTypeClassifier, path: str | os.PathLike[str]) -> Path:
    import joblib

    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    return write_atomic(path, buffer.getvalue())


def is_mlflow_uri(where) -> bool:
    text = str(where)
    return "://" in text or text.startswith(("runs:/", "models:/"))


def model_version(where) -> str:
    """How series types name the model that made them: the MLflow URI, or the file's name."""
    return str(where) if is_mlflow_uri(where) else Path(where).name


def load_model(where: str | os.PathLike[str]) -> SeriesTypeClassifier:
    """A model from a file saved by :func:`save_model`, or an MLflow model URI
    (``runs:/<run id>/model``, ``models:/<name>/<version>``)."""
    if is_mlflow_uri(where):
        import mlflow.sklearn

        return mlflow.sklearn.load_model(str(where))
    import joblib

    if not Path(where).is_file():
        raise ModelNotFoundError(f"no model file at {where} (curate train out=FILE writes one)")
    return joblib.load(Path(where))


@dataclass
class ClassifyResult(StageResult):
    """Series types written beside an index, counted by type. No params are logged: the
    model's name can be a file name."""

    counts: dict[str, int]
    model_version: str
    #: How an adapted model learned the archive (None for a fixed model).
    adaptation: object | None = None

    def metrics(self) -> dict[str, float]:
        values = {f"series.{k}": v for k, v in self.counts.items()}
        if self.adaptation is not None:
            for source in ("from_rules", "from_base"):
                values.update({f"labels.{source}.{k}": v for k, v in getattr(self.adaptation, source).items()})
            for target, (threshold, coverage) in self.adaptation.precision_thresholds.items():
                values[f"estimated.precision_{target:g}.coverage"] = coverage
                if threshold is not None:
                    values[f"estimated.precision_{target:g}.threshold"] = threshold
        return values

    def format(self) -> str:
        width = max((len(k) for k in self.counts), default=0)
        lines = [f"{k.ljust(width)}  {v:>9,}" for k, v in sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))]
        head = [self.adaptation.format(), ""] if self.adaptation is not None else []
        return "\n".join([*head, *lines, "", f"series types written beside the index (model: {self.model_version})"])


#: The column of whole-study groups in the batches that :func:`classify_index` reads.
STUDY_GROUP = "_study_group"


def study_groups(available: set[str]) -> tuple[str, str]:
    """(column, SQL query over ``idx``) giving each row's whole-study group as
    :data:`STUDY_GROUP`, joined on the column. A series goes whole with the least of the
    studies its instances name (messy headers name several): a series is never split. A
    series without a study stands alone; without series, a file does."""
    if {"StudyInstanceUID", "SeriesInstanceUID"} <= available:
        return "SeriesInstanceUID", (
            f"SELECT SeriesInstanceUID, coalesce(min(StudyInstanceUID), 'series:' || SeriesInstanceUID) "
            f'AS "{STUDY_GROUP}" FROM idx WHERE SeriesInstanceUID IS NOT NULL GROUP BY SeriesInstanceUID'
        )
    if "SeriesInstanceUID" in available:
        return "SeriesInstanceUID", (
            f"SELECT DISTINCT SeriesInstanceUID, 'series:' || SeriesInstanceUID AS \"{STUDY_GROUP}\" "
            "FROM idx WHERE SeriesInstanceUID IS NOT NULL"
        )
    return "path", f'SELECT path, path AS "{STUDY_GROUP}" FROM idx'


#: What ``series_types.parquet`` holds: one row per series.
#: Each instance's own type, keyed by the index's row id (a file keeps it across rescans).
INSTANCE_TYPES_SCHEMA = pa.schema([(ROW_ID, pa.int64()), ("instance_type", pa.string()), ("confidence", pa.float64())])
TYPES_FILES = {"series_types": SERIES_TYPES_FILE, "instance_types": INSTANCE_TYPES_FILE}
SERIES_TYPES_SCHEMA = pa.schema(
    [
        ("SeriesInstanceUID", pa.string()),
        ("series_type", pa.string()),
        ("confidence", pa.float64()),
        ("model_version", pa.string()),
    ]
)


def _predict_on_dask(
    model: SeriesTypeClassifier, batches: Iterator[pa.Table], model_version: str, options: DaskOptions
) -> Iterator[tuple[pa.Table, pa.Table]]:
    """:func:`predict_batch` as Dask tasks, a few in flight per worker (memory stays
    bounded), their results handed on in order."""
    from collections import deque

    from curate.index.dask import dask_client

    with dask_client(options) as client:
        shared = client.scatter(model, broadcast=True)
        in_flight = 2 * max(1, len(client.scheduler_info().get("workers", {})) or options.workers)
        pending: deque = deque()
        for batch in batches:
            pending.append(client.submit(predict_batch, shared, batch, model_version, pure=False))
            if len(pending) >= in_flight:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def input_columns(model, available: set[str]) -> list[str]:
    """The index columns the model reads (all of them, for a model that does not say)."""
    if not hasattr(model, "columns_read"):
        return sorted(available)
    return [c for c in model.columns_read() if c in available]


def predict_batch(model: SeriesTypeClassifier, batch: pa.Table, model_version: str) -> tuple[pa.Table, pa.Table]:
    """Series types of the whole series in `batch`, and each instance's own type (one
    task of a Dask run): a CR series may hold a PA and a lateral."""
    frame = batch.to_pandas()
    series, types, confidence = model.predict_types(frame)
    if STUDY_GROUP in frame:
        # In the order of the index's studies, whatever the batch size.
        study = frame.groupby("SeriesInstanceUID")[STUDY_GROUP].first()
        series = series.assign(_study=study.reindex(series["SeriesInstanceUID"]).to_numpy())
        series = series.sort_values(["_study", "SeriesInstanceUID"], kind="stable").drop(columns="_study")
    series["model_version"] = model_version
    instances = pa.table(
        {
            ROW_ID: pa.array(frame[ROW_ID].to_numpy(), pa.int64()),
            "instance_type": pa.array(np.asarray(types, dtype=object).astype(str), pa.string()),
            "confidence": pa.array(np.asarray(confidence, dtype=float), pa.float64()),
        },
        schema=INSTANCE_TYPES_SCHEMA,
    )
    return pa.Table.from_pandas(series, schema=SERIES_TYPES_SCHEMA, preserve_index=False), instances


def classify_index(
    index_dir: str | os.PathLike[str],
    model: SeriesTypeClassifier,
    model_version: str = "",
    batch_rows: int | None = None,
    dask: DaskOptions | None = None,
) -> ClassifyResult:
    """Series types of every series in the index, written beside it (SeriesInstanceUID,
    series_type, confidence, model_version); the counts by type.

    The index is read in batches of whole series, only the columns the model reads:
    memory stays flat at any index size, and each series is still judged on all its
    instances. With `dask`, each batch is predicted by a Dask task (the model is sent
    to every worker once); results are written in the order of the batches, so the
    file is the one a local run writes."""
    from collections import Counter

    from curate.index.store import GROUPED_BATCH_ROWS, open_index

    store = open_index(index_dir)
    available = store.columns()
    counts: Counter = Counter()
    with (
        store.types_writer(SERIES_TYPES_FILE, SERIES_TYPES_SCHEMA) as writer,
        store.types_writer(INSTANCE_TYPES_FILE, INSTANCE_TYPES_SCHEMA) as instance_writer,
    ):
        if "SeriesInstanceUID" in available:
            columns = [ROW_ID, *input_columns(model, available)]
            # Whole studies: an image is judged beside the rest of its study.
            batches = store.grouped_batches(
                columns,
                STUDY_GROUP,
                where="status = 'ok' AND SeriesInstanceUID IS NOT NULL",
                rows=batch_rows or GROUPED_BATCH_ROWS,
                key_of=study_groups(available),
            )
            predicted = (
                (predict_batch(model, b, model_version) for b in batches)
                if dask is None
                else _predict_on_dask(model, batches, model_version, dask)
            )
            for table, instances in predicted:
                writer.write_table(table)
                instance_writer.write_table(instances)
                counts.update(table.column("series_type").to_pylist())
    result = ClassifyResult({str(k): int(v) for k, v in counts.items()}, model_version)
    result.run_entry = store.log_run(
        "classify",
        {"model_version": model_version, "threshold": getattr(model, "threshold", None)},
        result.metrics(),
        {name: sha256_of(store.root / file) for name, file in TYPES_FILES.items()},
    )
    return result

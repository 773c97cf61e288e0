"""Experiment tracking with MLflow: every stage run is an MLflow run.

What goes in is chosen by each stage, explicitly: counts, aggregates and settings that
identify nobody. Paths never go in (a folder name can be a patient's name), nor do
header values; the report's artifacts are aggregates with small cells suppressed.

The default store is a local SQLite file (``.curate/mlflow.db``); set
``MLFLOW_TRACKING_URI`` or ``tracking.uri`` to use another, ``tracking=off`` for none.
See the runs with ``mlflow ui --backend-store-uri sqlite:///.curate/mlflow.db``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass
class TrackingConfig:
    enabled: bool = True
    uri: str | None = "sqlite:///.curate/mlflow.db"
    #: None: curate's own folder (:func:`curate.paths.data_dir`), not the working folder.
    artifacts: str | None = None
    experiment: str | None = "curate"

    @classmethod
    def from_config(cls, cfg: Mapping | None) -> TrackingConfig:
        if cfg is None:
            return cls(enabled=False)
        return cls(**{k: cfg.get(k) for k in ("enabled", "uri", "artifacts", "experiment")})


class StageResult:
    """What a stage function returns: it knows what to log and what to print.

    Stages override what they have; the CLI logs ``params()``, ``metrics()`` and
    ``artifacts()`` to the run, lets ``log_extras`` add the rest (models, dataset
    inputs), prints ``format()``, and exits with ``exit_code`` (``failure`` says why).
    Nothing logged may identify anyone: settings, counts and aggregates only.
    """

    #: Non-zero when the stage ran but its output must not be used.
    exit_code: int = 0
    failure: str | None = None
    #: The entry the run appended to its store's run log (:mod:`curate.runlog`), if any:
    #: its hash goes to the MLflow run too, an anchor outside the store.
    run_entry: dict | None = None

    def params(self) -> Mapping[str, object]:
        return {}

    def metrics(self) -> Mapping[str, float]:
        return {}

    def artifacts(self) -> list[Path]:
        return []

    def log_extras(self, run: Run) -> None:
        """Log what params, metrics and artifacts cannot hold (called with a live run)."""

    def format(self) -> str:
        return ""


class Run:
    """The stage's view of its MLflow run (or of no run, when tracking is off)."""

    def __init__(self, mlflow=None, store_uri: str | None = None):
        self._mlflow = mlflow
        #: The MLflow run's id (kept: it is printed after the run has ended).
        self.run_id: str | None = mlflow.active_run().info.run_id if mlflow else None
        #: The store the run went to (the environment's choice wins over the config's).
        self.store_uri = store_uri

    @property
    def active(self) -> bool:
        return self._mlflow is not None

    def params(self, values: Mapping[str, object]) -> None:
        if self._mlflow:
            self._mlflow.log_params({k: v for k, v in values.items() if v is not None})

    def metrics(self, values: Mapping[str, float]) -> None:
        if self._mlflow:
            self._mlflow.log_metrics({k: float(v) for k, v in values.items() if isinstance(v, (int, float))})

    def artifact(self, path: str | os.PathLike[str]) -> None:
        if self._mlflow:
            self._mlflow.log_artifact(str(path))

    def log(self, result: StageResult) -> None:
        """Everything a stage's result says should be tracked."""
        self.params(result.params())
        self.metrics(result.metrics())
        for path in result.artifacts():
            self.artifact(path)
        if self._mlflow:
            result.log_extras(self)

    def log_dataset(self, frame, name: str, digest: str, context: str) -> None:
        """A table as an MLflow dataset input, under our own digest (MLflow's hashes only
        the first rows)."""
        if self._mlflow:
            dataset = self._mlflow.data.from_pandas(frame, name=name, digest=digest)
            self._mlflow.log_input(dataset, context=context)

    def hint(self) -> str | None:
        """Where to look at the run, for the terminal."""
        if not self._mlflow:
            return None
        return f"MLflow run {self.run_id} (mlflow ui --backend-store-uri {self.store_uri})"


def _store_uri(config: TrackingConfig) -> str:
    uri = os.environ.get("MLFLOW_TRACKING_URI") or config.uri
    if uri and uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return uri


@contextlib.contextmanager
def tracked_run(stage: str, config: TrackingConfig, sweep: str | None = None, name: str | None = None) -> Iterator[Run]:
    """An MLflow run named after the stage, or a stand-in that records nothing. With
    `sweep` (one id per Hydra multirun), the run is a child of that sweep's parent run."""
    if not config.enabled:
        yield Run()
        return
    import mlflow

    store_uri = _store_uri(config)
    mlflow.set_tracking_uri(store_uri)
    experiment_name = config.experiment or "curate"
    experiment = mlflow.get_experiment_by_name(experiment_name)
    if experiment is None:
        location = _artifact_root(config)
        experiment_id = mlflow.create_experiment(experiment_name, artifact_location=location.as_uri())
        _move_default_experiment(store_uri, location)
    else:
        experiment_id = experiment.experiment_id
    tags = {"curate.stage": stage}
    if sweep is not None:
        tags["mlflow.parentRunId"] = _sweep_parent(mlflow, experiment_id, stage, sweep)
    with mlflow.start_run(experiment_id=experiment_id, run_name=name or stage, tags=tags):
        yield Run(mlflow, store_uri)


def _artifact_root(config: TrackingConfig) -> Path:
    from curate.paths import data_dir

    root = Path(config.artifacts) if config.artifacts else data_dir() / "mlartifacts"
    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    return root


def _move_default_experiment(store_uri: str, location: Path) -> None:
    """MLflow creates a "Default" experiment whose artifact location is the working
    folder's ``mlruns`` (an absolute path, which may name a patient): in a local SQLite
    store, point it at curate's artifact folder too."""
    import sqlite3

    if not store_uri.startswith("sqlite:///"):
        return
    with contextlib.closing(sqlite3.connect(store_uri.removeprefix("sqlite:///"))) as db:
        db.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0", ((location / "0").as_uri(),))
        db.commit()


def _sweep_parent(mlflow, experiment_id: str, stage: str, sweep: str) -> str:
    """The parent run of a sweep: found by its tag, created by the sweep's first job."""
    client = mlflow.MlflowClient()
    found = client.search_runs([experiment_id], filter_string=f"tags.`curate.sweep` = '{sweep}'", max_results=1)
    if found:
        return found[0].info.run_id
    parent = client.create_run(
        experiment_id, run_name=f"{stage} sweep", tags={"curate.sweep": sweep, "curate.stage": f"{stage}-sweep"}
    )
    client.set_terminated(parent.info.run_id)
    return parent.info.run_id

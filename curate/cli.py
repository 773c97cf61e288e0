"""The `curate` command: `curate <stage> key=value ...`, one Hydra app per stage.

Each stage's config is `conf/<stage>.yaml`; the functions here only turn a composed
config into a call of the library function that does the work.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import hydra
from omegaconf import DictConfig, ListConfig, OmegaConf

from curate.deid.pseudonym import DeidKeyError
from curate.index import IndexBusyError
from curate.paths import conf_dir

#: Errors that mean the request cannot be done (a message, not a traceback). QueryError
#: is a ValueError; a verification failure is reported by the deid stage itself.
USER_ERRORS = (FileNotFoundError, ValueError, IndexBusyError, DeidKeyError)


def _as_list(value) -> list[str]:
    if isinstance(value, (list, ListConfig)):
        return [str(v) for v in value]
    return [str(value)]


def _tracking(cfg: DictConfig):
    from curate.tracking import TrackingConfig

    return TrackingConfig.from_config(cfg.get("tracking"))


def _warn_if_outdated(index_dir: str) -> None:
    from curate.index import INDEX_FILE, outdated

    if (Path(index_dir) / INDEX_FILE).exists() and (why := outdated(index_dir)):
        print(f"curate: warning: {why}", file=sys.stderr)


def _scan(cfg: DictConfig) -> None:
    from curate.index import build_index
    from curate.tracking import tracked_run

    if cfg.backend not in ("local", "dask"):
        raise ValueError(f"backend must be 'local' or 'dask', not {cfg.backend!r}")
    dask = None
    if cfg.backend == "dask":
        from curate.distributed import DaskOptions

        dask = DaskOptions(**OmegaConf.to_container(cfg.dask))
    with tracked_run("scan", _tracking(cfg)) as run:
        summary = build_index(
            source=_as_list(cfg.source),
            index_dir=cfg.index,
            tags=_as_list(cfg.tags.keywords),
            extra_tags=_as_list(cfg.extra_tags) if cfg.extra_tags else (),
            threads=cfg.threads,
            batch_size=cfg.batch_size,
            progress=cfg.progress,
            rescan=cfg.rescan,
            part_rows=cfg.part_rows,
            dask=dask,
        )
        # Settings and counts only: the source and index paths can name patients.
        run.params(
            {
                "threads": cfg.threads,
                "rescan": cfg.rescan,
                "backend": cfg.backend,
                "columns": len(cfg.tags.keywords) + len(cfg.extra_tags or []),
            }
        )
        run.metrics(summary.metrics())
    print(summary.format())


def _report(cfg: DictConfig) -> None:
    from curate.report import build_report
    from curate.tracking import tracked_run

    _warn_if_outdated(cfg.index)
    with tracked_run("report", _tracking(cfg)) as run:
        report = build_report(cfg.index, cfg.out, min_cell=cfg.min_cell)
        run.params({"min_cell": cfg.min_cell})
        totals = report.summary["population"]["totals"]
        run.metrics({f"population.{k}": v for k, v in totals.items()})
        run.metrics(report.quality.metrics())
        run.artifact(report.html_path)
        run.artifact(report.summary_path)
    print(report.quality.format())
    print(f"\nreport   {report.html_path}\nsummary  {report.summary_path}")
    if run.active:
        print(f"MLflow run {run.run_id} (mlflow ui --backend-store-uri {cfg.tracking.uri})")


def _deid(cfg: DictConfig) -> None:
    from curate.deid import Options, load_key
    from curate.deid.tree import deidentify_tree
    from curate.tracking import tracked_run

    options = Options(**OmegaConf.to_container(cfg.options))
    key = load_key(cfg.key_file)
    with tracked_run("deid", _tracking(cfg)) as run:
        summary = deidentify_tree(
            cfg.source, cfg.output, key, options, uid_root=str(cfg.uid_root), quarantine=cfg.quarantine,
            mapping=cfg.mapping, workers=cfg.workers or None, progress=cfg.progress,
        )
        run.params({"options": ",".join(options.active()) or "basic", "quarantine": cfg.quarantine})
        run.metrics(summary.metrics())
    print(summary.format())
    if not summary.ok:
        print("curate deid: the output still holds source values: do not release it", file=sys.stderr)
        sys.exit(3)


def _sweep_id() -> str | None:
    """One id per Hydra multirun (its sweep folder), None for a single run."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hydra_cfg = HydraConfig.get()
    return Path(hydra_cfg.sweep.dir).name if hydra_cfg.mode == RunMode.MULTIRUN else None


def _train(cfg: DictConfig) -> None:
    from curate.classify.experiment import Experiment, training_data
    from curate.classify.train import save_model
    from curate.tracking import tracked_run

    data = training_data(cfg.data.source, cfg.data.series, cfg.data.sites, cfg.seed, cfg.data.index,
                         cfg.data.labels, cfg.data.group_column)
    experiment = Experiment(model=cfg.model, C=cfg.C, n_estimators=cfg.n_estimators, threshold=cfg.threshold,
                            target_precision=cfg.target_precision, test_size=cfg.test_size, seed=cfg.seed)
    with tracked_run("train", _tracking(cfg), sweep=_sweep_id(), name=f"train {cfg.model}") as run:
        model, report = experiment.run(data)
        experiment.log(run, model, data, report)
        if cfg.out:
            save_model(model, cfg.out)
    print(experiment.summary(report))
    if run.active:
        print(f"MLflow run {run.run_id}: model at runs:/{run.run_id}/model")
    if cfg.out:
        print(f"model    {cfg.out}")


def _classify(cfg: DictConfig) -> None:
    from curate.classify.train import classify_index, load_model, model_version
    from curate.tracking import tracked_run

    model = load_model(cfg.model)
    if cfg.threshold is not None:
        model.threshold = cfg.threshold
    with tracked_run("classify", _tracking(cfg)) as run:
        path = classify_index(cfg.index, model, model_version=model_version(cfg.model))
        import pyarrow.parquet as pq

        table = pq.read_table(path).to_pandas()
        counts = table["series_type"].value_counts()
        run.metrics({f"series.{k}": int(v) for k, v in counts.items()})
    print(counts.to_string())
    print(f"\nseries types  {path}")


def _build(cfg: DictConfig) -> None:
    from curate.dataset import DatasetSpec, build_dataset
    from curate.deid import load_key
    from curate.tracking import tracked_run

    spec = DatasetSpec.from_dict(OmegaConf.to_container(cfg.dataset))
    key = load_key(cfg.key_file)
    with tracked_run("build", _tracking(cfg), name=f"build {spec.name}") as run:
        result = build_dataset(spec, cfg.index, cfg.out, key, workers=cfg.workers or None)
        import json as _json

        description = _json.loads((result.path / "dataset.json").read_text())
        run.params({"dataset": spec.name, "version_id": result.version_id, "spec_digest": spec.digest()[:16],
                    "manifest_sha256": description["manifest_sha256"], "parent_version": description["parent_version"],
                    "deid_options": ",".join(spec.deid.active()) or "basic",
                    "export": spec.export.format or "none"})
        counts = result.counts
        run.metrics({"instances": counts["instances"], "patients": counts.get("patients", 0),
                     **{f"split.{k}": v for k, v in counts.get("by_split", {}).items()},
                     **{f"excluded.{k.replace(' ', '_').replace(':', '')}": v
                        for k, v in counts.get("excluded", {}).items()}})
        if run.active:
            _log_dataset(result, spec)
    state = "built" if result.created else "already built (unchanged inputs)"
    print(f"dataset {spec.name} version {result.version_id}: {state}")
    print(f"  {counts['instances']:,} instances, {counts.get('patients', 0):,} patients; "
          + ", ".join(f"{k} {v:,}" for k, v in counts.get("by_split", {}).items()))
    if counts.get("excluded"):
        print("  excluded: " + ", ".join(f"{k} {v:,}" for k, v in counts["excluded"].items()))
    print(f"  {result.path}")


def _log_dataset(result, spec) -> None:
    """The version as an MLflow dataset input (its digest is the version id) and its card."""
    import mlflow
    import pandas as pd

    from curate.dataset.build import CARD, MANIFEST

    manifest = pd.read_parquet(result.path / MANIFEST, columns=["split", "label"])
    dataset = mlflow.data.from_pandas(manifest, name=f"{spec.name}@{result.version_id}", digest=result.version_id)
    mlflow.log_input(dataset, context="dataset")
    mlflow.log_artifact(str(result.path / CARD))


def _datasets(cfg: DictConfig) -> None:
    import json

    from curate.dataset import diff, list_versions, show

    if cfg.action == "list":
        versions = list_versions(cfg.root)
        if not versions:
            print(f"no dataset versions under {cfg.root}")
        for v in versions:
            parent = f" (parent {v['parent']})" if v["parent"] else ""
            print(f"{v['name']:<24} {v['version_id']}  {v['created'][:19]}  {v['instances']:>9,} instances{parent}")
    elif cfg.action == "show":
        if not cfg.version:
            raise ValueError("curate datasets show version=DATASETS/NAME/VERSION_ID")
        print(json.dumps(show(cfg.version), indent=2))
    elif cfg.action == "diff":
        if not cfg.a or not cfg.b:
            raise ValueError("curate datasets diff a=OLD_VERSION_DIR b=NEW_VERSION_DIR")
        changes = diff(cfg.a, cfg.b)
        for key in ("added", "removed", "label_changed", "split_changed"):
            print(f"{key:<14} {len(changes[key]):>7,}")
        print(f"{'unchanged':<14} {changes['unchanged']:>7,}")
    else:
        raise ValueError(f"curate datasets: action must be list, show or diff, not {cfg.action!r}")


def _query(cfg: DictConfig) -> None:
    from curate import query

    if not cfg.sql:
        raise ValueError('no SQL given: curate query "SELECT ... FROM idx" index=DIR')
    if cfg.out:
        rows = query.write(cfg.index, cfg.sql, cfg.out)
        print(f"{rows:,} rows written to {cfg.out}")
    else:
        print(query.show(cfg.index, cfg.sql, max_rows=cfg.max_rows))


def _quality(cfg: DictConfig) -> None:
    import json

    from curate.quality import check_index

    _warn_if_outdated(cfg.index)
    report = check_index(cfg.index)
    print(report.format())
    if cfg.json:
        from curate.files import write_atomic

        write_atomic(cfg.json, json.dumps(report.to_dict(), indent=2))
        print(f"\nwritten to {cfg.json}")


STAGES: dict[str, tuple[Callable[[DictConfig], None], str]] = {
    "scan": (_scan, "read DICOM headers into a Parquet index (again: only what changed)"),
    "report": (_report, "population and quality report (HTML, summary.json, MLflow)"),
    "deid": (_deid, "de-identify a DICOM tree (PS3.15 Annex E, keyed pseudonyms)"),
    "train": (_train, "train and evaluate a series-type classifier (MLflow, sweeps with -m)"),
    "classify": (_classify, "series types for every series of an index"),
    "build": (_build, "build a versioned, de-identified, split dataset from the index"),
    "datasets": (_datasets, "list, show and compare dataset versions"),
    "query": (_query, "run SQL over the index (DuckDB)"),
    "quality": (_quality, "data-quality and veracity checks over the index"),
}


def _positional_action(stage: str, args: list[str]) -> list[str]:
    """`curate datasets list|show|diff ...`: the first argument is the action."""
    if stage == "datasets" and args and args[0] in ("list", "show", "diff"):
        return [f"action={args[0]}", *args[1:]]
    return args


def _positional_sql(stage: str, args: list[str]) -> list[str]:
    """`curate query "SELECT ..."`: the SQL goes in as a config value, quoted for Hydra's
    override grammar (SQL holds commas, parentheses, quotes and '=')."""
    if stage != "query" or not args or args[0].startswith("-") or _is_override(args[0]):
        return args
    sql = args[0].replace("\\", "\\\\").replace("'", "\\'")
    return [f"sql='{sql}'", *args[1:]]


def _is_override(arg: str) -> bool:
    key = arg.split("=", 1)[0]
    return "=" in arg and key.lstrip("+~").replace(".", "").replace("_", "").isalnum()


def _usage() -> str:
    lines = ["usage: curate <stage> [key=value ...] [--help] [--cfg job] [-m]", "", "stages:"]
    lines += [f"  {name:<10} {about}" for name, (_, about) in STAGES.items()]
    lines += ["", "`curate <stage> --help` explains a stage and its options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if args[0] == "--version":
        from curate import __version__

        print(f"curate {__version__}")
        return 0
    stage = args.pop(0)
    if stage not in STAGES:
        print(f"curate: unknown stage {stage!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    run, _ = STAGES[stage]
    args = _positional_action(stage, _positional_sql(stage, args))

    def task(cfg: DictConfig) -> None:
        OmegaConf.resolve(cfg)
        try:
            run(cfg)
        except USER_ERRORS as err:
            print(f"curate {stage}: {err}", file=sys.stderr)
            sys.exit(2)

    sys.argv = [f"curate {stage}", *args]
    hydra.main(config_path=str(conf_dir()), config_name=stage, version_base="1.3")(task)()
    return 0


if __name__ == "__main__":
    sys.exit(main())

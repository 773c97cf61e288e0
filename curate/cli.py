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

from curate.errors import ConfigError, CurateError
from curate.paths import conf_dir
from curate.tracking import StageResult


def _as_list(value) -> list[str]:
    if isinstance(value, (list, ListConfig)):
        return [str(v) for v in value]
    return [str(value)]


def _container(cfg) -> dict:
    return OmegaConf.to_container(cfg)


def _warn_if_outdated(index_dir: str) -> None:
    from curate.index.store import IndexStore

    store = IndexStore(index_dir)
    if store.exists() and (why := store.outdated()):
        print(f"curate: warning: {why}", file=sys.stderr)


# --- one function a stage: the config in, the library's result out ----------------------


def _dask_options(cfg: DictConfig):
    """The Dask options of a stage with ``backend=dask``; None for ``backend=local``."""
    if cfg.backend not in ("local", "dask"):
        raise ConfigError(f"backend must be 'local' or 'dask', not {cfg.backend!r}")
    if cfg.backend == "local":
        return None
    from curate.index.dask import DaskOptions

    return DaskOptions(**_container(cfg.dask))


def _scan(cfg: DictConfig) -> StageResult:
    from curate.index.build import build_index

    dask = _dask_options(cfg)
    return build_index(
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


def _compact(cfg: DictConfig) -> str:
    from curate.index.compact import compact_index

    return compact_index(cfg.index, progress=cfg.progress).format()


def _report(cfg: DictConfig) -> StageResult:
    from curate.inspect.report import build_report

    _warn_if_outdated(cfg.index)
    return build_report(cfg.index, cfg.out, min_cell=cfg.min_cell, deid=_as_list(cfg.deid) if cfg.deid else ())


def _deid(cfg: DictConfig) -> StageResult:
    from curate.deid import Options, load_key
    from curate.deid.redact import FixedRegion
    from curate.deid.tree import deidentify_tree

    options = Options(**_container(cfg.options))
    try:
        regions = [FixedRegion.from_dict(r) for r in (_container(cfg.pixel_regions) if cfg.pixel_regions else [])]
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"pixel_regions: {e} (each: manufacturer, model, rows, columns, boxes)") from None
    key = load_key(cfg.key_file)
    return deidentify_tree(
        cfg.source,
        cfg.output,
        key,
        options,
        uid_root=str(cfg.uid_root),
        quarantine=cfg.quarantine,
        mapping=cfg.mapping,
        workers=cfg.workers or None,
        progress=cfg.progress,
        pixels=cfg.pixels,
        pixel_regions=regions,
        dask=_dask_options(cfg),
    )


def _digitize(cfg: DictConfig) -> StageResult:
    from curate.digitize import Digitizer, digitize

    return digitize(
        cfg.source,
        cfg.manifest,
        cfg.output,
        digitizer=Digitizer(**{k: str(v or "") for k, v in _container(cfg.digitizer).items()}),
        uid_root=str(cfg.uid_root),
        workers=cfg.workers or None,
        progress=cfg.progress,
    )


def _train(cfg: DictConfig) -> StageResult:
    from curate.classify.experiment import Experiment, train, training_data

    data = training_data(
        cfg.data.source,
        cfg.data.series,
        cfg.data.sites,
        cfg.seed,
        cfg.data.index,
        cfg.data.labels,
        cfg.data.group_column,
    )
    experiment = Experiment(
        model=cfg.model,
        C=cfg.C,
        n_estimators=cfg.n_estimators,
        threshold=cfg.threshold,
        target_precision=cfg.target_precision,
        test_size=cfg.test_size,
        seed=cfg.seed,
        archive_studies=cfg.archives.studies,
        archive_adapted=cfg.archives.adapted,
    )
    return train(experiment, data, cfg.out)


def _classify(cfg: DictConfig) -> StageResult:
    from curate.classify.train import classify_index, load_model, model_version

    adaptation = None
    if cfg.target_precision is not None and cfg.model is not None:
        raise ConfigError("target_precision is estimated while adapting to the archive (model=null); give threshold=")
    if cfg.model is None:
        from curate.classify.adapt import adapt_to_archive, sample_index

        sample = sample_index(cfg.index, random_state=cfg.seed)
        model = adapt_to_archive(sample, random_state=cfg.seed, target_precision=cfg.target_precision)
        version, adaptation = f"adapted to this archive (seed {cfg.seed})", model.report_
    elif cfg.model == "default":
        from curate.classify import load_default_model

        model, version = load_default_model(), "default"
    else:
        model, version = load_model(cfg.model), model_version(cfg.model)
    if cfg.threshold is not None:
        model.threshold = cfg.threshold
    result = classify_index(cfg.index, model, model_version=version, dask=_dask_options(cfg))
    result.adaptation = adaptation
    return result


def _pull(cfg: DictConfig) -> StageResult:
    from curate.pull import pull, source_from_config
    from curate.pull.run import ThrottleOptions
    from curate.pull.selection import Selection, parse_modalities

    select = _container(cfg.select)
    select["modalities"] = parse_modalities(select.get("modalities"))
    throttle = _container(cfg.throttle)
    throttle["windows"] = tuple(_as_list(throttle["windows"])) if throttle.get("windows") else ()
    return pull(
        source_from_config(_container(cfg)),
        cfg.index,
        level=cfg.level,
        metadata=cfg.metadata,
        store=cfg.store,
        selection=Selection(**select),
        find_limit=cfg.find_limit,
        check=cfg.check,
        throttle=ThrottleOptions(**throttle),
        retries=cfg.retries,
        tags=_as_list(cfg.tags.keywords),
        extra_tags=_as_list(cfg.extra_tags) if cfg.extra_tags else (),
        progress=cfg.progress,
    )


def _build(cfg: DictConfig) -> StageResult:
    from curate.dataset import DatasetSpec, build_dataset
    from curate.deid import load_key

    spec = DatasetSpec.from_dict(_container(cfg.dataset))
    key = load_key(cfg.key_file)
    return build_dataset(spec, cfg.index, cfg.out, key, workers=cfg.workers or None, dask=_dask_options(cfg))


def _datasets(cfg: DictConfig) -> str:
    import json

    from curate.dataset.versions import diff, format_diff, format_versions, list_versions, show

    if cfg.action == "list":
        return format_versions(list_versions(cfg.root), cfg.root)
    if cfg.action == "show":
        if not cfg.version:
            raise ConfigError("curate datasets show version=DATASETS/NAME/VERSION_ID")
        return json.dumps(show(cfg.version), indent=2)
    if cfg.action == "diff":
        if not cfg.a or not cfg.b:
            raise ConfigError("curate datasets diff a=OLD_VERSION_DIR b=NEW_VERSION_DIR")
        text = format_diff(diff(cfg.a, cfg.b, out=cfg.out))
        return text if not cfg.out else f"{text}\n\nthe changed instances are in {cfg.out}"
    raise ConfigError(f"curate datasets: action must be list, show or diff, not {cfg.action!r}")


def _audit(cfg: DictConfig) -> StageResult:
    from curate.audit import verify_store

    if cfg.action != "verify":
        raise ConfigError(f"curate audit: the action is verify, not {cfg.action!r}")
    if not cfg.store:
        raise ConfigError("curate audit verify STORE (an index, a de-identified tree, a film folder, a datasets root)")
    return verify_store(cfg.store, contents=cfg.contents, recent=cfg.recent, progress=cfg.progress)


def _query(cfg: DictConfig) -> str:
    from curate.inspect import query

    if not cfg.sql:
        raise ConfigError('no SQL given: curate query "SELECT ... FROM idx" index=DIR')
    if cfg.out:
        rows = query.write(cfg.index, cfg.sql, cfg.out)
        return f"{rows:,} rows written to {cfg.out}"
    return query.show(cfg.index, cfg.sql, max_rows=cfg.max_rows)


def _quality(cfg: DictConfig) -> str:
    from curate.inspect.quality import check_index

    _warn_if_outdated(cfg.index)
    report = check_index(cfg.index)
    if cfg.json:
        report.write_json(cfg.json)
        return f"{report.format()}\n\nwritten to {cfg.json}"
    return report.format()


def _run_name(stage: str, cfg: DictConfig) -> str | None:
    if stage == "train":
        return f"train {cfg.model}"
    if stage == "build":
        return f"build {cfg.dataset.name}"
    return None


def _sweep_id() -> str | None:
    """One id per Hydra multirun (its sweep folder), None for a single run."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hydra_cfg = HydraConfig.get()
    return Path(hydra_cfg.sweep.dir).name if hydra_cfg.mode == RunMode.MULTIRUN else None


def _tracked(stage: str, run: Callable[[DictConfig], StageResult], cfg: DictConfig) -> int:
    """Run a tracked stage: the result logs itself to the run, then is printed."""
    from curate.tracking import TrackingConfig, tracked_run

    tracking = TrackingConfig.from_config(cfg.get("tracking"))
    with tracked_run(stage, tracking, sweep=_sweep_id(), name=_run_name(stage, cfg)) as mlrun:
        result = run(cfg)
        mlrun.log(result)
        if result.run_entry:
            mlrun.params({"run_log.seq": result.run_entry["seq"], "run_log.entry": result.run_entry["hash"]})
    print(result.format())
    if result.run_entry:
        entry = result.run_entry
        print(f"run log: entry {entry['seq']} ({entry['hash'][:16]}), `curate audit verify` checks it")
    if hint := mlrun.hint():
        print(hint)
    if result.failure:
        print(f"curate {stage}: {result.failure}", file=sys.stderr)
    return result.exit_code


#: name -> (function, tracked in MLflow, what it does)
STAGES: dict[str, tuple[Callable[[DictConfig], object], bool, str]] = {
    "pull": (_pull, True, "metadata or images from a PACS (DICOMweb, DIMSE), throttled and resumable"),
    "digitize": (_digitize, True, "scanned films (PNG, TIFF, JPEG) and a manifest CSV into DICOM files"),
    "scan": (_scan, True, "read DICOM headers into a Parquet index (again: only what changed)"),
    "compact": (_compact, False, "drop superseded rows and merge small parts of an index (resumable)"),
    "report": (_report, True, "population and quality report (HTML, summary.json, MLflow)"),
    "deid": (_deid, True, "de-identify a DICOM tree (PS3.15 Annex E, keyed pseudonyms)"),
    "train": (_train, True, "train and evaluate a series-type classifier (MLflow, sweeps with -m)"),
    "classify": (_classify, True, "series types for every series of an index"),
    "build": (_build, True, "build a versioned, de-identified, split dataset from the index"),
    "datasets": (_datasets, False, "list, show and compare dataset versions"),
    "query": (_query, False, "run SQL over the index (DuckDB)"),
    "audit": (_audit, False, "check a store's run log (and with contents=true, the store)"),
    "quality": (_quality, False, "data-quality and veracity checks over the index"),
}


def _positional_action(stage: str, args: list[str]) -> list[str]:
    """`curate datasets list|show|diff ...`, `curate audit verify STORE`: the first
    argument is the action (and for audit, the next one the store)."""
    if stage == "datasets" and args and args[0] in ("list", "show", "diff"):
        return [f"action={args[0]}", *args[1:]]
    if stage == "audit" and args and args[0] == "verify":
        rest = args[1:]
        if rest and not rest[0].startswith("-") and not _is_override(rest[0]):
            return ["action=verify", f"store={_quoted(rest[0])}", *rest[1:]]
        return ["action=verify", *rest]
    return args


def _quoted(value: str) -> str:
    """A value quoted for Hydra's override grammar (paths may hold '=', ',' or spaces)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _positional_sql(stage: str, args: list[str]) -> list[str]:
    """`curate query "SELECT ..."`: the SQL goes in as a config value, quoted for Hydra's
    override grammar (SQL holds commas, parentheses, quotes and '=')."""
    if stage != "query" or not args or args[0].startswith("-") or _is_override(args[0]):
        return args
    return [f"sql={_quoted(args[0])}", *args[1:]]


def _is_override(arg: str) -> bool:
    key = arg.split("=", 1)[0]
    return "=" in arg and key.lstrip("+~").replace(".", "").replace("_", "").isalnum()


def _register_resolvers() -> None:
    """`${curate.<name>:}` in a config's help text: the row contract as the scanner
    exports it, so that the help cannot drift from the index."""
    from curate.index import schema

    values = {
        "index_file_columns": schema.INDEX_FILE_COLUMNS,
        "statuses": schema.STATUSES,
        "error_kinds": schema.ERROR_KINDS,
    }
    for name, names in values.items():
        if not OmegaConf.has_resolver(f"curate.{name}"):
            OmegaConf.register_new_resolver(f"curate.{name}", lambda names=names: ", ".join(names))


def _usage() -> str:
    lines = ["usage: curate <stage> [key=value ...] [--help] [--cfg job] [-m]", "", "stages:"]
    lines += [f"  {name:<10} {about}" for name, (_, _, about) in STAGES.items()]
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
    run, tracked, _ = STAGES[stage]
    args = _positional_action(stage, _positional_sql(stage, args))

    def task(cfg: DictConfig) -> None:
        OmegaConf.resolve(cfg)
        try:
            if tracked:
                code = _tracked(stage, run, cfg)
            else:
                result = run(cfg)
                print(result.format() if isinstance(result, StageResult) else result)
                code = getattr(result, "exit_code", 0)
        except CurateError as err:  # the request cannot be done: a message, not a traceback
            print(f"curate {stage}: {err}", file=sys.stderr)
            sys.exit(2)
        if code:
            sys.exit(code)

    _register_resolvers()
    sys.argv = [f"curate {stage}", *args]
    hydra.main(config_path=str(conf_dir()), config_name=stage, version_base="1.3")(task)()
    return 0


if __name__ == "__main__":
    sys.exit(main())

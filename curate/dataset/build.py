"""Building a dataset version: select, filter, dedupe, split by patient, de-identify.

A version is an immutable folder ``<root>/<name>/<version_id>/`` holding
``manifest.parquet`` (one row per instance), ``dataset.json``, ``DATASET_CARD.md`` and
``files/``. ``version_id`` is a content hash of the selected instances (their bytes), the
spec, the source index and the de-identification profile: the same inputs give the same
id, and a build never overwrites a version. It is built in a hidden folder and renamed
into place when complete, so a partly written version is never visible.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from curate.dataset.layout import BUILDING_PREFIX, CARD, DESCRIPTION, FILES, IMAGES, MANIFEST
from curate.dataset.plan import SPLITS, BuildPlan, plan_build
from curate.dataset.spec import DatasetSpec
from curate.deid.profile import TABLE_EDITION
from curate.deid.pseudonym import Pseudonymizer
from curate.deid.worker import deidentify_file, output_path, pseudonymous_uids
from curate.errors import DatasetError
from curate.files import sha256_of, write_atomic
from curate.index.dask import DaskOptions, task_executor
from curate.index.store import IndexStore, open_index, sql_string
from curate.tracking import StageResult

__all__ = ["SPLITS", "BuildResult", "build_dataset", "plan_dataset"]


@dataclass
class BuildResult(StageResult):
    """A version of a dataset: the one just built, or the one the same inputs built before."""

    version_id: str
    path: Path
    created: bool
    spec: DatasetSpec
    #: What the version's ``dataset.json`` says.
    description: dict = field(default_factory=dict)

    @property
    def counts(self) -> dict:
        return self.description.get("counts", {})

    def params(self) -> dict[str, object]:
        """Settings and digests for experiment tracking: no path, no header value."""
        return {
            "dataset": self.spec.name,
            "version_id": self.version_id,
            "spec_digest": self.spec.digest()[:16],
            "manifest_sha256": self.description.get("manifest_sha256"),
            "parent_version": self.description.get("parent_version"),
            "deid_options": ",".join(self.spec.deid.active()) or "basic",
            "export": self.spec.export.format or "none",
        }

    def metrics(self) -> dict[str, float]:
        counts = self.counts
        return {
            "instances": counts["instances"],
            "patients": counts.get("patients", 0),
            **{f"split.{k}": v for k, v in counts.get("by_split", {}).items()},
            **{f"excluded.{k.replace(' ', '_').replace(':', '')}": v for k, v in counts.get("excluded", {}).items()},
        }

    def artifacts(self) -> list[Path]:
        return [self.path / CARD]

    def log_extras(self, run) -> None:
        """The version as a dataset input: its digest is the version id."""
        manifest = pd.read_parquet(self.path / MANIFEST, columns=["split", "label"])
        run.log_dataset(manifest, f"{self.spec.name}@{self.version_id}", self.version_id, context="dataset")

    def format(self) -> str:
        counts = self.counts
        state = "built" if self.created else "already built (unchanged inputs)"
        lines = [
            f"dataset {self.spec.name} version {self.version_id}: {state}",
            f"  {counts['instances']:,} instances, {counts.get('patients', 0):,} patients; "
            + ", ".join(f"{k} {v:,}" for k, v in counts.get("by_split", {}).items()),
        ]
        if counts.get("excluded"):
            lines.append("  excluded: " + ", ".join(f"{k} {v:,}" for k, v in counts["excluded"].items()))
        lines.append(f"  {self.path}")
        return "\n".join(lines)


def _git_commit() -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):  # no git, or one too slow: no commit recorded
        return None
    return done.stdout.strip() or None


@contextlib.contextmanager
def _planned(spec: DatasetSpec, index_dir, key: bytes) -> Iterator[tuple[IndexStore, Pseudonymizer, BuildPlan]]:
    """The plan of a build (spooled in a private folder, removed at the end); a
    :class:`DatasetError` when it leaves nothing to build."""
    store = open_index(index_dir)
    pseudo = Pseudonymizer(key, spec.uid_root)
    with tempfile.TemporaryDirectory(prefix="curate-build-") as private:  # mode 0700: it holds PHI
        plan = plan_build(store, spec, pseudo, Path(private))
        try:
            if plan.rows == 0:
                reasons = ", ".join(f"{k} {v}" for k, v in plan.excluded.items() if v) or "nothing matched the select"
                raise DatasetError(
                    f"dataset {spec.name}: no instance left to build from ({plan.selected} selected; {reasons})"
                )
            yield store, pseudo, plan
        finally:
            plan.close()


def plan_dataset(spec: DatasetSpec, index_dir: str | os.PathLike[str], key: bytes) -> dict:
    """What a build of `spec` would give, without writing a file: the version id and the
    counts (selected, planned instances and patients, by split, excluded)."""
    with _planned(spec, index_dir, key) as (store, _, plan):
        by_split = dict(plan.con.execute("SELECT split, count(*) FROM planned GROUP BY split").fetchall())
        patients = plan.con.execute("SELECT count(DISTINCT patient) FROM planned").fetchall()[0][0]
        return {
            "version_id": plan.version_id(spec, store.digest()),
            "selected": plan.selected,
            "instances": plan.rows,
            "patients": patients,
            "by_split": {s: int(by_split.get(s, 0)) for s in SPLITS},
            "excluded": {k: v for k, v in plan.excluded.items() if v},
        }


def build_dataset(
    spec: DatasetSpec,
    index_dir: str | os.PathLike[str],
    root: str | os.PathLike[str],
    key: bytes,
    workers: int | None = None,
    on_file: callable | None = None,
    dask: DaskOptions | None = None,
) -> BuildResult:
    """Build (or find) the version of `spec` over the index; see the module text. With
    `dask`, the files are de-identified by Dask tasks (workers must see the source files
    and `root` at the same paths, and the key travels to them with each task: use a
    cluster whose connections are encrypted); the plan, the manifest and the version
    stay with this process, and the version is the local build's."""
    with _planned(spec, index_dir, key) as (store, pseudo, plan):
        index_digest = store.digest()
        vid = plan.version_id(spec, index_digest)
        folder = Path(root) / spec.name
        final = folder / vid
        if final.exists():
            return BuildResult(vid, final, created=False, spec=spec, description=_read_description(final))
        previous = latest_version(folder)
        building = _start_build(folder, vid)
        try:
            _write_files(plan, building, spec, key, pseudo, workers, on_file, dask)
            counts = _counts(building, spec, plan)
            description = _describe(spec, vid, previous, counts, index_digest, building)
            write_atomic(building / DESCRIPTION, json.dumps(description, indent=2))
            write_atomic(building / CARD, render_card(description))
            result = _publish(building, final, spec, description)
        except BaseException:
            shutil.rmtree(building, ignore_errors=True)
            raise
    if result.created:
        result.run_entry = _log_build(Path(root), result, index_digest)
    return result


def _log_build(root: Path, result: BuildResult, index_digest: str) -> dict:
    """The build's entry in the datasets root's run log (:mod:`curate.runlog`): the
    index it read, the version and manifest it wrote, by digest."""
    from curate.runlog import RunLog

    manifest = result.description.get("manifest_sha256") or ""
    outputs = {"version": result.version_id, **({"manifest": manifest} if manifest else {})}
    settings = {"spec": result.spec.digest(), "deid": result.spec.deid.active()}
    return RunLog(root).append("build", settings, result.metrics(), {"index": index_digest}, outputs)


def _read_description(version: Path) -> dict:
    return json.loads((version / DESCRIPTION).read_text())


def _start_build(folder: Path, vid: str) -> Path:
    """A fresh hidden folder to build the version in (with litter of killed builds gone)."""
    folder.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_builds(folder)
    building = folder / f"{BUILDING_PREFIX}{vid}-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    (building / FILES).mkdir(parents=True)
    return building


#: One row per instance of a version.
MANIFEST_SCHEMA = pa.schema(
    [
        ("sop_instance_uid", pa.string()),
        ("series_instance_uid", pa.string()),
        ("study_instance_uid", pa.string()),
        ("patient", pa.string()),
        ("path", pa.string()),
        ("sha256", pa.string()),
        ("split", pa.string()),
        ("label", pa.string()),
        ("series_type", pa.string()),
        ("series_model", pa.string()),
        ("instance_type", pa.string()),
        ("rows", pa.int64()),
        ("columns", pa.int64()),
        ("photometric", pa.string()),
        ("image_path", pa.string()),
    ]
)


def _counts(building: Path, spec: DatasetSpec, plan: BuildPlan) -> dict:
    """The version's counts, from its manifest (DuckDB: nothing held per instance)."""
    import duckdb

    con = duckdb.connect()
    try:
        con.execute(f"CREATE VIEW m AS SELECT * FROM read_parquet({sql_string(building / MANIFEST)})")
        instances, patients = con.execute("SELECT count(*), count(DISTINCT patient) FROM m").fetchall()[0]
        by_split = dict(con.execute("SELECT split, count(*) FROM m GROUP BY split").fetchall())
        by_label = {}
        if spec.label:
            rows = con.execute(
                "SELECT label, count(*) AS n FROM m WHERE label IS NOT NULL GROUP BY label ORDER BY n DESC, label"
            ).fetchall()
            by_label = {str(k): int(v) for k, v in rows}
    finally:
        con.close()
    return {
        "selected": plan.selected,
        "instances": instances,
        "patients": patients,
        "by_split": {s: int(by_split.get(s, 0)) for s in SPLITS} if instances else {},
        "by_label": by_label,
        "excluded": {k: v for k, v in plan.excluded.items() if v},
    }


def _describe(
    spec: DatasetSpec, vid: str, previous: str | None, counts: dict, index_digest: str, building: Path
) -> dict:
    """What ``dataset.json`` says of the version."""
    from curate import __version__

    return {
        "name": spec.name,
        "version_id": vid,
        "parent_version": previous,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds"),
        "counts": counts,
        "spec": spec.to_dict(),
        "source_index_digest": index_digest,
        "deid": {
            "profile": f"PS3.15 {TABLE_EDITION} Basic Application Level Confidentiality Profile",
            "options": spec.deid.active(),
            "uid_root": spec.uid_root,
        },
        "export": None
        if not spec.export.format
        else {
            "format": spec.export.format,
            "size": spec.export.size,
            "pixels": "Modality LUT, then the first window (else the VOI LUT, else the image's range) to [0, 1]; "
            "MONOCHROME1 inverted; resized (bilinear) to the longer side",
        },
        "manifest_sha256": sha256_of(building / MANIFEST),
        "curate_version": __version__,
        "git_commit": _git_commit(),
    }


def _publish(building: Path, final: Path, spec: DatasetSpec, description: dict) -> BuildResult:
    """Rename the built folder into place: from here on the version is visible."""
    try:
        os.rename(building, final)
    except OSError:
        if final.exists():  # another build of the same inputs got there first
            shutil.rmtree(building, ignore_errors=True)
            return BuildResult(
                description["version_id"], final, created=False, spec=spec, description=_read_description(final)
            )
        raise
    return BuildResult(description["version_id"], final, created=True, spec=spec, description=description)


def _write_files(
    plan: BuildPlan,
    building: Path,
    spec: DatasetSpec,
    key: bytes,
    pseudo: Pseudonymizer,
    workers,
    on_file,
    dask: DaskOptions | None = None,
) -> None:
    """De-identify the planned files into the version, a batch at a time, and write its
    manifest as they complete."""
    export = spec.export
    excluded = plan.excluded
    written = 0

    def value(row: dict, column: str):
        v = row.get(column)
        return None if v is None or (not isinstance(v, (list, np.ndarray)) and pd.isna(v)) else v

    with (
        task_executor(workers, dask) as (pool, _),
        pq.ParquetWriter(building / MANIFEST, MANIFEST_SCHEMA) as manifest,
    ):
        for frame in plan.batches():
            jobs = []
            for row in frame.to_dict("records"):
                study, series, instance = pseudonymous_uids(pseudo, row)
                relative = output_path(Path(FILES) / row["split"], pseudo, row)
                future = pool.submit(_write_one, row["path"], building, relative.as_posix(), spec, key)
                jobs.append((row, study, series, instance, relative, future))
            rows = []
            for row, study, series, instance, relative, future in jobs:
                status, reason, image = future.result()
                if status == "quarantined":  # a kind whose pixels may show what no header says
                    excluded[f"held back: {reason}"] += 1
                    continue
                if status != "written":
                    excluded[f"de-identification failed: {reason}"] += 1
                    continue
                if export.format and image is None:
                    excluded[f"image export failed: {reason}"] += 1
                label = value(row, spec.label) if spec.label else None
                rows.append(
                    {
                        "sop_instance_uid": instance,
                        "series_instance_uid": series,
                        "study_instance_uid": study,
                        "patient": row["patient"],
                        "path": relative.as_posix(),
                        "sha256": sha256_of(building / relative),
                        "split": row["split"],
                        "label": None if label is None else str(label),
                        "series_type": value(row, "series_type"),
                        "series_model": value(row, "series_model"),
                        "instance_type": value(row, "instance_type"),
                        "rows": None if value(row, "Rows") is None else int(row["Rows"]),
                        "columns": None if value(row, "Columns") is None else int(row["Columns"]),
                        "photometric": value(row, "PhotometricInterpretation"),
                        "image_path": image,
                    }
                )
                written += 1
                if on_file is not None:
                    on_file(written)
            manifest.write_table(pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA))


def _write_one(source: str, building: Path, relative: str, spec: DatasetSpec, key: bytes):
    """One worker task: de-identify a file and, when the spec asks, export its image
    (from the de-identified file). Returns (status, reason, image path or None). What
    de-identification holds back for its pixels (a screen save, a secondary capture, a
    photograph: :mod:`curate.deid.quarantine`) is not written."""
    status, reason = deidentify_file(source, str(building / relative), spec.deid, key, spec.uid_root)
    if status != "written" or not spec.export.format:
        return status, reason, None
    try:
        image_relative = export_image(building / relative, building, relative, spec.export)
    except Exception as err:  # a file whose pixels do not decode is kept, without an image
        return status, type(err).__name__, None
    return status, None, image_relative


def export_image(dicom_path: Path, building: Path, relative: str, export) -> str:
    """Write the model-ready image of a de-identified file under ``images/``."""
    import io

    import pydicom

    from curate.dataset.images import resized, to_png16, to_unit_range
    from curate.files import write_atomic

    image = to_unit_range(pydicom.dcmread(dicom_path))
    if image.ndim == 3:
        image = image.mean(axis=-1)
    image = resized(image, export.size)
    stem = Path(IMAGES) / Path(relative).relative_to(FILES).with_suffix("")
    if export.format == "png16":
        target = stem.with_suffix(".png")
        write_atomic(building / target, to_png16(image))
    else:
        target = stem.with_suffix(".npy")
        buffer = io.BytesIO()
        np.save(buffer, image.astype(np.float16))
        write_atomic(building / target, buffer.getvalue())
    return target.as_posix()


def _remove_abandoned_builds(folder: Path) -> None:
    """Folders of builds whose process is gone (killed): never versions, only litter."""
    for stale in folder.glob(f"{BUILDING_PREFIX}*"):
        try:
            pid = int(stale.name.rsplit("-", 1)[1])
            os.kill(pid, 0)
        except (ValueError, ProcessLookupError):
            shutil.rmtree(stale, ignore_errors=True)
        except PermissionError:
            pass  # a live process of another user


def latest_version(folder: Path) -> str | None:
    """The most recently created version under a dataset folder."""
    versions = []
    for child in folder.glob("*") if folder.exists() else []:
        description = child / DESCRIPTION
        if child.is_dir() and not child.name.startswith(".") and description.exists():
            versions.append((json.loads(description.read_text())["created"], child.name))
    return max(versions)[1] if versions else None


def render_card(d: dict) -> str:
    c = d["counts"]
    lines = [
        f"# Dataset {d['name']}, version {d['version_id']}",
        "",
        f"Built {d['created']} by curate {d['curate_version']}"
        + (f" ({d['git_commit'][:12]})" if d["git_commit"] else "")
        + "."
        + (f" Parent version: {d['parent_version']}." if d["parent_version"] else " First version."),
        "",
        "## Contents",
        "",
        f"- {c['instances']:,} instances from {c['patients']:,} patients ({c['selected']:,} selected by the query).",
        "- Splits, by patient (no patient is in two): "
        + ", ".join(f"{k} {v:,}" for k, v in c["by_split"].items())
        + ".",
    ]
    if c["by_label"]:
        lines.append(
            "- Labels (`"
            + str(d["spec"]["label"])
            + "`): "
            + ", ".join(f"{k} {v:,}" for k, v in c["by_label"].items())
            + "."
        )
    if c["excluded"]:
        lines.append("- Excluded: " + ", ".join(f"{k} {v:,}" for k, v in c["excluded"].items()) + ".")
    lines += [
        "",
        "## How it was made",
        "",
        f"- Selection: `{d['spec']['select']}`"
        + (f"; series types {', '.join(d['spec']['series_types'])}" if d["spec"]["series_types"] else "")
        + (f"; instance types {', '.join(d['spec']['instance_types'])}" if d["spec"].get("instance_types") else "")
        + ".",
        f"- De-identification: {d['deid']['profile']}"
        + (f" with {', '.join(d['deid']['options'])}" if d["deid"]["options"] else "")
        + "; keyed pseudonyms; pixel data unchanged.",
        f"- Source index digest: `{d['source_index_digest'][:16]}`; manifest sha256: `{d['manifest_sha256'][:16]}`.",
        "",
    ]
    return "\n".join(lines)

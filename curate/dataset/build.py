"""Building a dataset version: select, filter, dedupe, split by patient, de-identify.

A version is an immutable folder ``<root>/<name>/<version_id>/`` holding
``manifest.parquet`` (one row per instance), ``dataset.json``, ``DATASET_CARD.md`` and
``files/``. ``version_id`` is a content hash of the selected instances (their bytes), the
spec, the source index and the de-identification profile: the same inputs give the same
id, and a build never overwrites a version. It is built in a hidden folder and renamed
into place when complete, so a partly written version is never visible.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from curate.dataset.layout import BUILDING_PREFIX, CARD, DESCRIPTION, FILES, IMAGES, MANIFEST
from curate.dataset.spec import DatasetSpec
from curate.deid.profile import TABLE_EDITION
from curate.deid.pseudonym import Pseudonymizer
from curate.deid.worker import deidentify_file, output_path, pseudonymous_uids
from curate.errors import DatasetError
from curate.files import file_sha256, sha256_of, write_atomic
from curate.index.store import IndexStore, open_index, sql_string
from curate.tracking import StageResult

SPLITS = ("train", "val", "test")


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


def select_candidates(store: IndexStore, spec: DatasetSpec) -> pd.DataFrame:
    """Rows of the index that the spec selects (readable files only), with series types."""
    import duckdb

    if spec.series_types and not store.has_series_types():
        raise DatasetError(
            f"the spec keeps series types {spec.series_types}, but the index in {store.root} has "
            "no series types: run `curate classify` first"
        )
    con = store.connect("idx", series_types=True)
    try:
        where = f"status = 'ok' AND ({spec.select})"
        if spec.series_types:
            where += " AND series_type IN (" + ", ".join(sql_string(t) for t in spec.series_types) + ")"
        try:
            frame = con.execute(f"SELECT * FROM idx WHERE {where} ORDER BY path").df()
        except duckdb.Error as err:
            raise DatasetError(f"the dataset's select cannot run: {str(err).strip()}") from None
    finally:
        con.close()
    if spec.label and spec.label not in frame:
        raise DatasetError(f"label column {spec.label!r} is not in the index")
    return frame


def _quality(frame: pd.DataFrame, spec: DatasetSpec, excluded: Counter) -> pd.DataFrame:
    def drop(mask: pd.Series, reason: str) -> None:
        nonlocal frame
        if mask.any():
            excluded[reason] += int(mask.sum())
            frame = frame[~mask]

    drop(frame.get("SOPInstanceUID", pd.Series(None, index=frame.index)).isna(), "no SOPInstanceUID")
    if spec.quality.exclude_burned_in and "BurnedInAnnotation" in frame:
        drop(frame["BurnedInAnnotation"].fillna("").str.strip().str.upper() == "YES", "burned-in annotation")
    if spec.quality.exclude_derived and "ImageType" in frame:
        drop(
            frame["ImageType"].map(lambda v: v is not None and len(v) > 0 and str(v[0]).upper() == "DERIVED"), "derived"
        )
    for column, minimum in (("Rows", spec.quality.min_rows), ("Columns", spec.quality.min_columns)):
        if minimum and column in frame:
            drop(frame[column].fillna(0) < minimum, f"{column} below {minimum}")
    if {"pixel_data_length", "Rows", "Columns", "BitsAllocated"} <= set(frame.columns):
        # Native pixel data shorter than the image its header describes cannot be decoded.
        def number(column: str, default: float) -> pd.Series:
            return pd.to_numeric(frame[column], errors="coerce").fillna(default) if column in frame else default

        expected = (
            number("Rows", 0)
            * number("Columns", 0)
            * number("SamplesPerPixel", 1)
            * number("NumberOfFrames", 1)
            * number("BitsAllocated", 16)
            / 8
        ).apply(np.ceil)
        length = pd.to_numeric(frame["pixel_data_length"], errors="coerce")
        drop((length >= 0) & (length < expected), "pixel data shorter than its header says")
    return frame


def _hash_file(path: str, pixel_offset) -> tuple[str, str | None]:
    """(sha256 of the file, sha256 of its bytes from Pixel Data on)."""
    offset = None if pixel_offset is None or pd.isna(pixel_offset) else int(pixel_offset)
    return file_sha256(path, offset)


def _dedupe(frame: pd.DataFrame, spec: DatasetSpec, excluded: Counter) -> pd.DataFrame:
    before = len(frame)
    frame = frame.drop_duplicates("SOPInstanceUID", keep="first")
    excluded["duplicate SOPInstanceUID"] += before - len(frame)
    offsets = frame["pixel_data_offset"] if "pixel_data_offset" in frame else [None] * len(frame)
    with ThreadPoolExecutor(max_workers=8) as pool:
        hashes = list(pool.map(_hash_file, frame["path"], offsets))
    frame = frame.assign(source_sha256=[h[0] for h in hashes], pixel_sha256=[h[1] for h in hashes])
    if spec.dedupe_pixels:
        has_pixels = frame["pixel_sha256"].notna()
        copies = has_pixels & frame.duplicated("pixel_sha256", keep="first")
        excluded["same pixel data"] += int(copies.sum())
        frame = frame[~copies]
    return frame


def _split(frame: pd.DataFrame, spec: DatasetSpec, pseudo: Pseudonymizer) -> tuple[pd.Series, pd.Series]:
    """A split per instance, decided per patient: a patient is never in two splits. The
    order of patients is keyed (HMAC), so it is stable and unguessable; with stratify,
    each label's patients are dealt to the splits in proportion."""
    ids = frame.get("PatientID", pd.Series("", index=frame.index)).fillna("")
    issuers = frame.get("IssuerOfPatientID", pd.Series("", index=frame.index)).fillna("")
    studies = frame["StudyInstanceUID"].fillna("") if "StudyInstanceUID" in frame else pd.Series("", index=frame.index)
    # A file without PatientID is its own patient per study (it cannot be linked).
    patients = [
        pseudo.patient_id(i, s) or f"study:{pseudo.uid(st)}" for i, s, st in zip(ids, issuers, studies, strict=True)
    ]
    frame = frame.assign(patient=patients)
    if spec.split.stratify and spec.label:
        strata = frame.groupby("patient")[spec.label].agg(lambda v: str(v.mode().iloc[0]) if len(v.mode()) else "")
    else:
        strata = pd.Series("", index=sorted(set(patients)))
    ratios = [spec.split.train, spec.split.val, spec.split.test]
    assignment: dict[str, str] = {}
    for _, group in strata.groupby(strata):
        ordered = sorted(group.index, key=lambda p: pseudo.uid(f"split:{p}"))
        bounds = [round(sum(ratios[: i + 1]) * len(ordered)) for i in range(3)]
        for position, patient in enumerate(ordered):
            assignment[patient] = next(SPLITS[i] for i, bound in enumerate(bounds) if position < bound or i == 2)
    return frame["patient"].map(assignment), frame["patient"]


def version_id(instance_hashes: list[str], spec: DatasetSpec, index_digest: str) -> str:
    payload = {
        "instances": sorted(instance_hashes),
        "spec": spec.digest(),
        "index": index_digest,
        "deid": {"edition": TABLE_EDITION, "options": spec.deid.active(), "uid_root": spec.uid_root},
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]


def _git_commit() -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except OSError:
        return None
    return done.stdout.strip() or None


def build_dataset(
    spec: DatasetSpec,
    index_dir: str | os.PathLike[str],
    root: str | os.PathLike[str],
    key: bytes,
    workers: int | None = None,
    on_file: callable | None = None,
) -> BuildResult:
    """Build (or find) the version of `spec` over the index; see the module text."""
    store = open_index(index_dir)
    pseudo = Pseudonymizer(key, spec.uid_root)
    excluded: Counter = Counter()
    frame = select_candidates(store, spec)
    selected = len(frame)
    frame = _quality(frame, spec, excluded)
    if frame.empty:
        reasons = ", ".join(f"{k} {v}" for k, v in excluded.items() if v) or "nothing matched the select"
        raise DatasetError(f"dataset {spec.name}: no instance left to build from ({selected} selected; {reasons})")
    frame = _dedupe(frame, spec, excluded)
    splits, patients = _split(frame, spec, pseudo)
    frame = frame.assign(split=splits, patient=patients)
    index_digest = store.digest()
    vid = version_id(list(frame["source_sha256"]), spec, index_digest)
    folder = Path(root) / spec.name
    final = folder / vid
    if final.exists():
        return BuildResult(vid, final, created=False, spec=spec, description=_read_description(final))
    previous = latest_version(folder)
    building = _start_build(folder, vid)
    try:
        rows = _write_files(frame, building, spec, key, pseudo, workers, excluded, on_file)
        counts = _write_manifest(building, rows, spec, selected, excluded)
        description = _describe(spec, vid, previous, counts, index_digest, building)
        write_atomic(building / DESCRIPTION, json.dumps(description, indent=2))
        write_atomic(building / CARD, render_card(description))
        return _publish(building, final, spec, description)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise


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


def _write_manifest(building: Path, rows: list[dict], spec: DatasetSpec, selected: int, excluded: Counter) -> dict:
    """Write the manifest; the version's counts."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    manifest = pd.DataFrame(rows)
    pq.write_table(pa.Table.from_pandas(manifest, preserve_index=False), building / MANIFEST)
    return {
        "selected": selected,
        "instances": len(manifest),
        "patients": int(manifest["patient"].nunique()) if len(manifest) else 0,
        "by_split": {s: int((manifest["split"] == s).sum()) for s in SPLITS} if len(manifest) else {},
        "by_label": {str(k): int(v) for k, v in manifest["label"].value_counts().items()}
        if spec.label and len(manifest)
        else {},
        "excluded": {k: v for k, v in excluded.items() if v},
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
    frame, building: Path, spec: DatasetSpec, key: bytes, pseudo: Pseudonymizer, workers, excluded: Counter, on_file
) -> list[dict]:
    jobs = []
    for row in frame.to_dict("records"):
        study, series, instance = pseudonymous_uids(pseudo, row)
        relative = output_path(Path(FILES) / row["split"], pseudo, row)
        jobs.append((row, study, series, instance, relative))
    rows = []
    export = spec.export
    with ProcessPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        futures = [
            pool.submit(_write_one, row["path"], building, rel.as_posix(), spec, key) for row, _, _, _, rel in jobs
        ]
        for (row, study, series, instance, relative), future in zip(jobs, futures, strict=True):
            status, reason, image = future.result()
            if status != "written":
                excluded[f"de-identification failed: {reason}"] += 1
                continue
            if export.format and image is None:
                excluded[f"image export failed: {reason}"] += 1
            rows.append(
                {
                    "sop_instance_uid": instance,
                    "series_instance_uid": series,
                    "study_instance_uid": study,
                    "patient": row["patient"],
                    "path": relative.as_posix(),
                    "sha256": sha256_of(building / relative),
                    "split": row["split"],
                    "label": None if not spec.label or pd.isna(row.get(spec.label)) else str(row.get(spec.label)),
                    "series_type": None if pd.isna(row.get("series_type")) else row.get("series_type"),
                    "series_model": None if pd.isna(row.get("series_model")) else row.get("series_model"),
                    "rows": None if pd.isna(row.get("Rows")) else int(row.get("Rows")),
                    "columns": None if pd.isna(row.get("Columns")) else int(row.get("Columns")),
                    "photometric": row.get("PhotometricInterpretation"),
                    "image_path": image,
                }
            )
            if on_file is not None:
                on_file(len(rows))
    return rows


def _write_one(source: str, building: Path, relative: str, spec: DatasetSpec, key: bytes):
    """One worker task: de-identify a file and, when the spec asks, export its image
    (from the de-identified file). Returns (status, reason, image path or None)."""
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
        + ".",
        f"- De-identification: {d['deid']['profile']}"
        + (f" with {', '.join(d['deid']['options'])}" if d["deid"]["options"] else "")
        + "; keyed pseudonyms; pixel data unchanged.",
        f"- Source index digest: `{d['source_index_digest'][:16]}`; manifest sha256: `{d['manifest_sha256'][:16]}`.",
        "",
    ]
    return "\n".join(lines)

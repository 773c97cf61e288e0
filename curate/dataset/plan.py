"""The plan of a dataset build, made from a stream: selection, quality filters, dedupe,
hashes, patients and splits, and the version id, in bounded memory at any index size.

Only the columns a build reads leave the index. Each step streams batches through
Python where Python decides (the quality rules, the file hashes, the keyed patient
pseudonyms) and spools what it found to Parquet in a private folder; DuckDB does every
step across rows (dedupe, per-patient strata, the split positions) within a memory
limit, spilling the rest to that folder. The plan ends as one spooled table, read back
in batches ordered by path.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from curate.dataset.spec import DatasetSpec
from curate.deid.profile import TABLE_EDITION
from curate.deid.pseudonym import Pseudonymizer
from curate.errors import DatasetError
from curate.files import file_sha256
from curate.index.store import GROUPING_MEMORY, IndexStore, limit_memory, sql_string

SPLITS = ("train", "val", "test")
#: Rows a planning step holds in Python at a time.
PLAN_BATCH = 16_384
#: The index columns a build reads (those the index has), besides the label.
BUILD_COLUMNS = (
    "path",
    "pixel_data_offset",
    "pixel_data_length",
    "SOPInstanceUID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "PatientID",
    "IssuerOfPatientID",
    "BurnedInAnnotation",
    "ImageType",
    "Rows",
    "Columns",
    "SamplesPerPixel",
    "NumberOfFrames",
    "BitsAllocated",
    "PhotometricInterpretation",
    "series_type",
    "series_model",
    "instance_type",
)


class BuildPlan:
    """What a build will write: the planned rows (spooled) and the counts so far."""

    def __init__(self, con, selected: int, excluded: Counter):
        self.con, self.selected, self.excluded = con, selected, excluded

    @property
    def rows(self) -> int:
        return self.con.execute("SELECT count(*) FROM planned").fetchall()[0][0]

    def version_id(self, spec: DatasetSpec, index_digest: str) -> str:
        """The version's id: a hash of its sorted instance hashes (streamed out of DuckDB),
        the spec, the source index and the de-identification profile."""
        h = hashlib.sha256()
        head, tail = _version_payload(spec, index_digest)
        h.update(head.encode())
        reader = self.con.sql("SELECT source_sha256 FROM planned ORDER BY source_sha256").to_arrow_reader(PLAN_BATCH)
        first = True
        for batch in reader:
            for value in batch.column(0).to_pylist():
                h.update(((", " if not first else "") + json.dumps(value)).encode())
                first = False
        h.update(tail.encode())
        return h.hexdigest()[:20]

    def batches(self) -> Iterator[pd.DataFrame]:
        """The planned rows, by path, a batch at a time."""
        reader = self.con.sql("SELECT * FROM planned ORDER BY path").to_arrow_reader(1024)
        for batch in reader:
            yield batch.to_pandas()

    def close(self) -> None:
        self.con.close()


def _version_payload(spec: DatasetSpec, index_digest: str) -> tuple[str, str]:
    """The JSON text of the version payload before and after its list of instances."""
    payload = {
        "instances": ["\x00"],
        "spec": spec.digest(),
        "index": index_digest,
        "deid": {"edition": TABLE_EDITION, "options": spec.deid.active(), "uid_root": spec.uid_root},
    }
    text = json.dumps(payload, sort_keys=True)
    head, tail = text.split(json.dumps("\x00"))
    return head, tail


def plan_build(store: IndexStore, spec: DatasetSpec, pseudo: Pseudonymizer, folder: Path) -> BuildPlan:
    """Plan a build of `spec` over the index in `store`, spooling to `folder` (private)."""
    import duckdb

    if spec.series_types and not store.has_series_types():
        raise DatasetError(
            f"the spec keeps series types {spec.series_types}, but the index in {store.root} has "
            "no series types: run `curate classify` first"
        )
    if spec.instance_types and not store.has_instance_types():
        raise DatasetError(
            f"the spec keeps instance types {spec.instance_types}, but the index in {store.root} has "
            "no instance types: run `curate classify` first"
        )
    con = store.connect("idx", series_types=True)
    limit_memory(con, folder / "spill", GROUPING_MEMORY)  # what spills holds PHI: the private folder
    con.execute("SET preserve_insertion_order = false")  # keeps each COPY streaming
    excluded: Counter = Counter()
    try:
        available = {d[0] for d in con.execute("SELECT * FROM idx LIMIT 0").description}
        if spec.label and spec.label not in available:
            raise DatasetError(f"label column {spec.label!r} is not in the index")
        columns = [c for c in dict.fromkeys([*BUILD_COLUMNS, *([spec.label] if spec.label else [])]) if c in available]
        where = f"status = 'ok' AND ({spec.select})"
        if spec.series_types:
            where += " AND series_type IN (" + ", ".join(sql_string(t) for t in spec.series_types) + ")"
        if spec.instance_types:
            where += " AND instance_type IN (" + ", ".join(sql_string(t) for t in spec.instance_types) + ")"
        select = ", ".join(f'"{c}"' for c in columns)
        try:
            reader = con.sql(f"SELECT {select} FROM idx WHERE {where}").to_arrow_reader(PLAN_BATCH)
        except duckdb.Error as err:
            raise DatasetError(f"the dataset's select cannot run: {str(err).strip()}") from None
        selected = _spool_candidates(reader, folder / "candidates.parquet", spec, excluded)
        _dedupe_instances(con, folder, excluded)
        _hash_and_patients(con, folder, pseudo)
        _dedupe_pixels(con, folder, spec, excluded)
        _assign_splits(con, folder, spec, pseudo)
    except BaseException:
        con.close()
        raise
    return BuildPlan(con, selected, excluded)


def _spool_candidates(reader, target: Path, spec: DatasetSpec, excluded: Counter) -> int:
    """The selected rows that pass the quality rules, spooled; returns how many were
    selected."""
    selected = 0
    writer = None
    schema = reader.schema
    try:
        for batch in reader:
            selected += batch.num_rows
            frame = quality_filter(batch.to_pandas(), spec, excluded)
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(target, schema)
            writer.write_table(table.select(schema.names).cast(schema))
        if writer is None:
            pq.write_table(schema.empty_table(), target)
    finally:
        if writer is not None:
            writer.close()
    return selected


def quality_filter(frame: pd.DataFrame, spec: DatasetSpec, excluded: Counter) -> pd.DataFrame:
    """The rows the spec's quality rules keep (each rule judges one row alone)."""

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


def _dedupe_instances(con, folder: Path, excluded: Counter) -> None:
    """The view ``kept``: one row per SOPInstanceUID (the first by path). Decided on keys
    (an aggregate that spills), not a window over whole rows."""
    con.execute(f"CREATE VIEW candidates AS SELECT * FROM read_parquet({sql_string(folder / 'candidates.parquet')})")
    target = folder / "kept.parquet"
    first = "SELECT min(path) AS path FROM candidates GROUP BY SOPInstanceUID"
    kept = f"SELECT * FROM candidates SEMI JOIN ({first}) USING (path)"
    con.execute(f"COPY ({kept}) TO {sql_string(target)} (FORMAT parquet)")
    con.execute(f"CREATE VIEW kept AS SELECT * FROM read_parquet({sql_string(target)})")
    excluded["duplicate SOPInstanceUID"] += _count(con, "candidates") - _count(con, "kept")


def _count(con, view: str) -> int:
    return con.execute(f"SELECT count(*) FROM {view}").fetchall()[0][0]


def _hash_file(path: str, pixel_offset) -> tuple[str, str | None]:
    """(sha256 of the file, sha256 of its bytes from Pixel Data on)."""
    return file_sha256(path, None if pixel_offset is None else int(pixel_offset))


def _hash_and_patients(con, folder: Path, pseudo: Pseudonymizer) -> None:
    """The view ``hashed``: the kept rows with each file's hashes and its patient
    pseudonym, computed a batch at a time. A file without PatientID is its own patient
    per study (it cannot be linked)."""
    target = folder / "hashed.parquet"
    writer = None

    def texts(batch: pa.RecordBatch, column: str) -> list[str]:
        if column not in batch.schema.names:
            return [""] * batch.num_rows
        return [v or "" for v in batch.column(column).to_pylist()]

    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            for batch in con.sql("SELECT * FROM kept").to_arrow_reader(PLAN_BATCH):
                paths = batch.column("path").to_pylist()
                offsets = (
                    batch.column("pixel_data_offset").to_pylist()
                    if "pixel_data_offset" in batch.schema.names
                    else [None] * len(paths)
                )
                hashes = list(pool.map(_hash_file, paths, offsets))
                identity = ("PatientID", "IssuerOfPatientID", "StudyInstanceUID")
                ids, issuers, studies = (texts(batch, c) for c in identity)
                patients = [
                    pseudo.patient_id(i, s) or f"study:{pseudo.uid(st)}"
                    for i, s, st in zip(ids, issuers, studies, strict=True)
                ]
                table = pa.Table.from_batches([batch])
                table = table.append_column("source_sha256", pa.array([h[0] for h in hashes], pa.string()))
                table = table.append_column("pixel_sha256", pa.array([h[1] for h in hashes], pa.string()))
                table = table.append_column("patient", pa.array(patients, pa.string()))
                if writer is None:
                    writer = pq.ParquetWriter(target, table.schema)
                writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    if writer is None:  # nothing kept: an empty table of the same columns
        con.execute(
            f"COPY (SELECT *, NULL::VARCHAR AS source_sha256, NULL::VARCHAR AS pixel_sha256, "
            f"NULL::VARCHAR AS patient FROM kept) TO {sql_string(target)} (FORMAT parquet)"
        )
    con.execute(f"CREATE VIEW hashed AS SELECT * FROM read_parquet({sql_string(target)})")


def _dedupe_pixels(con, folder: Path, spec: DatasetSpec, excluded: Counter) -> None:
    """The view ``unique_files``: with ``dedupe_pixels``, one file per pixel data (the
    first by path); files without pixel data are all kept."""
    if not spec.dedupe_pixels:
        con.execute("CREATE VIEW unique_files AS SELECT * FROM hashed")
        return
    target = folder / "unique.parquet"
    first = "SELECT min(path) AS path FROM hashed WHERE pixel_sha256 IS NOT NULL GROUP BY pixel_sha256"
    con.execute(
        f"COPY (SELECT * FROM hashed WHERE pixel_sha256 IS NULL UNION ALL "
        f"SELECT * FROM hashed SEMI JOIN ({first}) USING (path)) TO {sql_string(target)} (FORMAT parquet)"
    )
    con.execute(f"CREATE VIEW unique_files AS SELECT * FROM read_parquet({sql_string(target)})")
    excluded["same pixel data"] += _count(con, "hashed") - _count(con, "unique_files")


def _assign_splits(con, folder: Path, spec: DatasetSpec, pseudo: Pseudonymizer) -> None:
    """The view ``planned``: the files to write, each with its patient's split. A
    patient is never in two splits; patients are dealt in a keyed (HMAC) order, so it is
    stable and unguessable; with stratify, each label's patients are dealt to the splits
    in proportion (a patient's label is its most frequent one, the smallest on a tie).
    Patients stream out of DuckDB in that order and are dealt in Python, one at a time."""
    if spec.split.stratify and spec.label:
        label = f'"{spec.label}"'
        labelled = (
            f"SELECT patient, arg_min(label, (-n, label)) AS stratum FROM "
            f"(SELECT patient, CAST({label} AS VARCHAR) AS label, count(*) AS n FROM unique_files "
            f"WHERE {label} IS NOT NULL GROUP BY ALL) GROUP BY patient"
        )
        strata = (
            f"SELECT p.patient, coalesce(s.stratum, '') AS stratum "
            f"FROM (SELECT DISTINCT patient FROM unique_files) p LEFT JOIN ({labelled}) s USING (patient)"
        )
    else:
        strata = "SELECT DISTINCT patient, '' AS stratum FROM unique_files"
    keys = folder / "patients.parquet"
    schema = pa.schema([("patient", pa.string()), ("stratum", pa.string()), ("order_key", pa.string())])
    with pq.ParquetWriter(keys, schema) as writer:
        for batch in con.sql(strata).to_arrow_reader(PLAN_BATCH):
            patients = batch.column("patient").to_pylist()
            order = [pseudo.uid(f"split:{p}") for p in patients]  # the key never leaves Python
            columns = {"patient": patients, "stratum": batch.column("stratum"), "order_key": order}
            writer.write_table(pa.table(columns, schema=schema))
    con.execute(f"CREATE VIEW patients AS SELECT * FROM read_parquet({sql_string(keys)})")
    ratios = [spec.split.train, spec.split.val, spec.split.test]
    bounds = {
        # Python's round (half to even), as the split has always used.
        stratum: (round(ratios[0] * n), round((ratios[0] + ratios[1]) * n))
        for stratum, n in con.execute("SELECT stratum, count(*) FROM patients GROUP BY stratum").fetchall()
    }
    dealt = folder / "splits.parquet"
    split_schema = pa.schema([("patient", pa.string()), ("split", pa.string())])
    position, current = 0, None
    with pq.ParquetWriter(dealt, split_schema) as writer:
        ordered = con.sql("SELECT patient, stratum FROM patients ORDER BY stratum, order_key")
        for batch in ordered.to_arrow_reader(PLAN_BATCH):
            splits = []
            for stratum in batch.column("stratum").to_pylist():
                if stratum != current:
                    position, current = 0, stratum
                first, second = bounds[stratum]
                splits.append(SPLITS[0] if position < first else SPLITS[1] if position < second else SPLITS[2])
                position += 1
            writer.write_table(pa.table({"patient": batch.column("patient"), "split": splits}, schema=split_schema))
    target = folder / "planned.parquet"
    planned = f"SELECT * FROM unique_files JOIN read_parquet({sql_string(dealt)}) USING (patient)"
    con.execute(f"COPY ({planned}) TO {sql_string(target)} (FORMAT parquet)")
    con.execute(f"CREATE VIEW planned AS SELECT * FROM read_parquet({sql_string(target)})")

"""The Parquet index of a source tree: built once, then kept up to date.

``<index>/index.parquet`` holds one row per file, sorted by path: the scanner's columns
plus the derived columns of :mod:`curate.derive`. A rescan lists the tree (size and
modification time of every file, no file read) and parses only the files that are new
or changed; files that are gone keep their row with ``status = 'vanished'``.

Crash safety: parsed rows go to ``<index>/.staging/part-NNNNNN.parquet``, each part
written under a temporary name and renamed. A scan that is killed leaves those parts;
the next scan of the same tree with the same tag set reuses every part whose files have
not changed since, and parses only the rest. The visible ``index.parquet`` is only ever
replaced whole, by a rename, when a scan completes: a reader sees the previous complete
index or the new one, never a half-written file.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate import _native
from curate.derive import DERIVE_VERSION, DeriveCounts, add_derived_columns
from curate.distributed import DaskOptions
from curate.progress import progress_bar
from curate.scan import PathsLike, open_columns
from curate.tags import ColumnSpec, resolve_tags

INDEX_FILE = "index.parquet"
STAGING_DIR = ".staging"
#: Parquet key-value metadata key that records how an index was built.
METADATA_KEY = b"curate_index"
#: Bumped when the index layout changes: an index of another format is rebuilt.
INDEX_FORMAT = 3
#: Rows per staged part (and Parquet row group): large enough for good compression,
#: small enough that a killed scan loses little and memory stays flat.
PART_ROWS = 32_768
VANISHED_ERROR = "vanished: no longer under the scanned source"
#: DuckDB's memory for merging the index; past it the sort spills to the staging folder.
MERGE_MEMORY = "256MB"


class IndexBusyError(RuntimeError):
    """Another scan is writing the same index."""


@dataclass
class ScanSummary:
    """What a scan found and did, in counts only (nothing identifying)."""

    listed: int = 0
    unchanged: int = 0
    scanned: int = 0
    resumed: int = 0
    vanished: int = 0
    rows: int = 0
    by_status: Counter = field(default_factory=Counter)
    errors_by_kind: Counter = field(default_factory=Counter)
    derive: DeriveCounts = field(default_factory=DeriveCounts)
    full_rescan_reason: str | None = None
    seconds: float = 0.0
    index_path: Path | None = None

    @property
    def rate(self) -> float:
        """Files covered per second: parsed, or found unchanged."""
        return self.listed / self.seconds if self.seconds > 0 else 0.0

    def metrics(self) -> dict[str, float]:
        """Counts for experiment tracking (nothing identifying)."""
        values = {
            "files": self.listed,
            "parsed": self.scanned,
            "unchanged": self.unchanged,
            "resumed": self.resumed,
            "seconds": self.seconds,
            "files_per_s": self.rate,
        }
        values.update({f"status.{k}": v for k, v in self.by_status.items()})
        values.update({f"errors.{k}": v for k, v in self.errors_by_kind.items()})
        values.update({f"nulled.{k.replace(' ', '_')}": v for k, v in self.derive.nulled.items()})
        return values

    def format(self) -> str:
        """A short table for the terminal."""
        rows = [("files", f"{self.listed:,}")]
        if self.unchanged or self.vanished or self.resumed:
            rows += [("  unchanged", f"{self.unchanged:,}"), ("  parsed", f"{self.scanned:,}")]
            if self.resumed:
                rows.append(("  from the interrupted scan", f"{self.resumed:,}"))
            if self.vanished:
                rows.append(("  vanished", f"{self.vanished:,}"))
        for status in ("ok", "not_dicom", "dicomdir", "vanished", "error"):
            if self.by_status.get(status):
                rows.append((status, f"{self.by_status[status]:,}"))
        for kind, count in sorted(self.errors_by_kind.items(), key=lambda kv: (-kv[1], kv[0])):
            rows.append((f"  {kind}", f"{count:,}"))
        for reason, count in sorted(self.derive.nulled.items()):
            rows.append((f"nulled: {reason}", f"{count:,}"))
        rows.append(("time", f"{self.seconds:.2f} s"))
        rows.append(("rate", f"{self.rate:,.0f} files/s"))
        width = max(len(k) for k, _ in rows)
        number_width = max(len(v) for _, v in rows)
        lines = [f"{k.ljust(width)}  {v.rjust(number_width)}" for k, v in rows]
        if self.full_rescan_reason:
            lines.append(f"(every file parsed: {self.full_rescan_reason})")
        if self.index_path is not None:
            lines.append(f"{'index'.ljust(width)}  {self.index_path}")
        return "\n".join(lines)


def index_signature(columns: Sequence[ColumnSpec]) -> dict:
    """What decides an index's columns: rows built under another signature are not reused."""
    spec = [[c.name, [list(step) for step in c.path], c.vr, c.multi] for c in columns]
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()
    return {"format": INDEX_FORMAT, "derive": DERIVE_VERSION, "columns": digest}


def list_files(paths: PathsLike, threads: int | None = None) -> pa.Table:
    """Every file under `paths` with its size and modification time, none of them read."""
    sources = [os.fspath(p) for p in ([paths] if isinstance(paths, (str, os.PathLike)) else paths)]
    native = _native.open_scan(sources, [], threads or 0, _native.DEFAULT_BATCH_SIZE, False)
    table = pa.RecordBatchReader.from_stream(native).read_all()
    return table.select(["path", "file_size", "mtime", "status", "error"])


def build_index(
    source: PathsLike,
    index_dir: str | os.PathLike[str],
    tags: Sequence[str] | None = None,
    extra_tags: Sequence[str] = (),
    threads: int | None = None,
    batch_size: int = _native.DEFAULT_BATCH_SIZE,
    progress: bool = True,
    rescan: str = "changed",
    part_rows: int = PART_ROWS,
    on_part: Callable[[int], None] | None = None,
    dask: DaskOptions | None = None,
) -> ScanSummary:
    """Scan `source` into ``<index_dir>/index.parquet`` and return the summary.

    ``rescan="changed"`` parses only files that are new or changed since the index was
    built (and reuses the parts of an interrupted scan); ``"all"`` parses every file.
    `on_part` is called with the number of parts staged so far after each one is safely
    on disk. With `dask`, the files are parsed by Dask tasks, a shard each.
    """
    if rescan not in ("changed", "all"):
        raise ValueError(f"rescan must be 'changed' or 'all', not {rescan!r}")
    sources = [os.fspath(s) for s in ([source] if isinstance(source, (str, os.PathLike)) else source)]
    missing = [s for s in sources if not os.path.exists(s)]
    if missing:
        raise FileNotFoundError(f"source does not exist: {', '.join(missing)}")
    # Absolute paths: the index is read from other folders (dataset builds, queries).
    sources = [os.path.abspath(s) for s in sources]
    columns = resolve_tags(tags, extra_tags)
    signature = index_signature(columns)
    index_dir = Path(index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with _exclusive(index_dir):
        summary = ScanSummary(index_path=index_dir / INDEX_FILE)
        previous, summary.full_rescan_reason = _reusable_index(index_dir, signature, rescan)
        staging = _staging(index_dir, signature, fresh=rescan == "all")
        staged = _staged_keys(staging)
        if previous is None and staged.num_rows == 0 and dask is None:
            # A first local scan: walk and parse in one pass; there is nothing to compare with.
            listing, to_parse = None, sources
        else:
            listing = list_files(sources, threads)
            to_parse = _files_to_parse(listing, previous, staged).column("path").to_pylist()
            summary.resumed = _count_reusable(listing, staged)
        if dask is None:
            parts, summary.scanned = _scan_into_parts(
                to_parse, staging, columns, threads, batch_size, part_rows, progress, summary.derive, on_part
            )
        else:
            from curate import distributed

            def bar(total: int):
                return progress_bar(total, "scan (dask)", enabled=progress)

            first = len(_part_files(staging))
            parts, summary.scanned = distributed.scan_into_parts(
                to_parse, staging, first, columns, dask, bar, summary.derive, on_part
            )
        summary.listed = summary.scanned if listing is None else listing.num_rows
        summary.unchanged = summary.listed - summary.scanned - summary.resumed
        if parts or previous is None or (listing is not None and _vanished_count(listing, previous)):
            _merge(index_dir, listing, previous, staging, signature)
        shutil.rmtree(staging, ignore_errors=True)
        _count_final(summary)
    summary.seconds = time.perf_counter() - started
    return summary


def outdated(index_dir: str | os.PathLike[str]) -> str | None:
    """Why the index at `index_dir` lacks what this curate writes (None when it is current)."""
    found = _signature_of(Path(index_dir) / INDEX_FILE)
    if found is None or found.get("format") != INDEX_FORMAT or found.get("derive") != DERIVE_VERSION:
        return "this index was built by another version of curate: run `curate scan` on it again"
    return None


def read_index(index_dir: str | os.PathLike[str]) -> pa.Table:
    """Load the index written by :func:`build_index`."""
    table = pq.read_table(Path(index_dir) / INDEX_FILE)
    # Every column may hold nulls; the Parquet writer marks some as required when none
    # happen to, which would make equal indexes compare unequal.
    return table.cast(pa.schema([f.with_nullable(True) for f in table.schema], metadata=table.schema.metadata))


# --- the steps of a scan -----------------------------------------------------------------


@contextlib.contextmanager
def _exclusive(index_dir: Path) -> Iterator[None]:
    """Hold the index's lock: two scans must not stage into the same folder. The folder
    itself is locked, so no lock file is left behind."""
    fd = os.open(index_dir, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise IndexBusyError(f"another scan is writing the index in {index_dir}") from None
        yield
    finally:
        os.close(fd)  # releases the lock


def _signature_of(path: Path) -> dict | None:
    try:
        raw = (pq.read_metadata(path).metadata or {}).get(METADATA_KEY)
        return json.loads(raw) if raw else None
    except (OSError, ValueError, pa.ArrowException):
        return None


def _reusable_index(index_dir: Path, signature: dict, rescan: str) -> tuple[Path | None, str | None]:
    """The existing index when its rows can be kept, else why every file is parsed (the
    index is then rebuilt from what is under the source now)."""
    path = index_dir / INDEX_FILE
    if not path.exists():
        return None, None
    if rescan == "all":
        return None, "rescan=all"
    if _signature_of(path) != signature:
        return None, "the index was built with another tag set or curate version"
    return path, None


def _staging(index_dir: Path, signature: dict, fresh: bool) -> Path:
    """The staging folder, emptied unless it holds parts of the same kind of scan."""
    staging = index_dir / STAGING_DIR
    marker = staging / "signature.json"
    if staging.exists():
        try:
            same = json.loads(marker.read_text()) == signature
        except (OSError, ValueError):
            same = False
        if fresh or not same:
            shutil.rmtree(staging)
    for partial in staging.glob("*.partial") if staging.exists() else ():
        partial.unlink()  # a part that was being written when a scan was killed
    staging.mkdir(exist_ok=True)
    marker.write_text(json.dumps(signature))
    return staging


def _part_files(staging: Path) -> list[Path]:
    return sorted(staging.glob("part-*.parquet"))


def _staged_keys(staging: Path) -> pa.Table:
    """(path, file_size, mtime) of every row already staged."""
    parts = _part_files(staging)
    if not parts:
        return pa.table({"path": pa.array([], pa.string()), "file_size": pa.array([], pa.int64()),
                         "mtime": pa.array([], pa.timestamp("us", tz="UTC"))})
    return pa.concat_tables(
        [pq.read_table(p, columns=["path", "file_size", "mtime"]) for p in parts], promote_options="permissive"
    )


def _keys(table: pa.Table) -> pa.Table:
    """The columns that say whether a file changed, typed alike for joins."""
    return pa.table(
        {
            "path": table.column("path").cast(pa.string()),
            "file_size": table.column("file_size").cast(pa.int64()),
            "mtime": table.column("mtime").cast(pa.timestamp("us", tz="UTC")),
        }
    )


def _files_to_parse(listing: pa.Table, previous: Path | None, staged: pa.Table) -> pa.Table:
    """Listed files whose (size, mtime) no reusable row matches: new or changed files."""
    done = [_keys(staged)]
    if previous is not None:
        old = pq.read_table(previous, columns=["path", "file_size", "mtime", "status"])
        old = old.filter(pc.not_equal(old.column("status"), "vanished"))
        done.append(_keys(old))
    done_keys = pa.concat_tables(done)
    todo = _keys(listing).join(done_keys, keys=["path", "file_size", "mtime"], join_type="left anti")
    return todo.sort_by("path")


def _count_reusable(listing: pa.Table, staged: pa.Table) -> int:
    if staged.num_rows == 0:
        return 0
    matched = _keys(listing).join(_keys(staged), keys=["path", "file_size", "mtime"], join_type="left semi")
    return matched.num_rows


def _vanished_count(listing: pa.Table, previous: Path) -> int:
    old = pq.read_table(previous, columns=["path", "status"])
    live = old.filter(pc.not_equal(old.column("status"), "vanished"))
    return live.join(listing.select(["path"]), keys="path", join_type="left anti").num_rows


def _scan_into_parts(
    paths: list[str],
    staging: Path,
    columns: Sequence[ColumnSpec],
    threads: int | None,
    batch_size: int,
    part_rows: int,
    progress: bool,
    derive_counts: DeriveCounts,
    on_part: Callable[[int], None] | None,
) -> tuple[int, int]:
    """Parse `paths` (files and folders) into staged parts; returns (parts, rows) written."""
    if not paths:
        return 0, 0
    first = len(_part_files(staging))
    written = rows = 0
    handle = open_columns(paths, columns, threads, batch_size)
    pending: list[pa.RecordBatch] = []
    pending_rows = 0

    def flush() -> None:
        nonlocal pending, pending_rows, written
        # Derived columns are computed on the whole part: per-batch overhead would cost
        # more than the work itself.
        table = add_derived_columns(pa.Table.from_batches(pending), derive_counts)
        target = staging / f"part-{first + written:06d}.parquet"
        partial = target.with_suffix(".parquet.partial")
        pq.write_table(table, partial, compression="zstd")
        os.replace(partial, target)
        written += 1
        pending, pending_rows = [], 0
        if on_part is not None:
            on_part(first + written)

    with progress_bar(None, "scan", enabled=progress) as bar:
        for batch in handle.reader():
            walked = handle.walked  # read first: once true, the total read next is final
            bar.set_total(handle.total, final=walked)
            bar.update(batch.num_rows)
            rows += batch.num_rows
            pending.append(batch)
            pending_rows += batch.num_rows
            if pending_rows >= part_rows:
                flush()
        if pending:
            flush()
    return written, rows


def _merge(index_dir: Path, listing: pa.Table | None, previous: Path | None, staging: Path, signature: dict) -> None:
    """Write the new index: fresh rows, unchanged old rows, vanished rows; by path."""
    import duckdb

    final = index_dir / INDEX_FILE
    partial = index_dir / f".{INDEX_FILE}.{os.getpid()}.partial"
    for stale in index_dir.glob(f".{INDEX_FILE}.*.partial"):
        stale.unlink()
    parts = [str(p) for p in _part_files(staging)]
    con = duckdb.connect()
    # Bounded memory: DuckDB spills the sort to disk rather than holding the index.
    con.execute(f"SET memory_limit = '{MERGE_MEMORY}'")
    con.execute(f"SET temp_directory = {sql_string(index_dir / STAGING_DIR / 'spill')}")
    try:
        selects = []
        if listing is not None:
            con.register("listing", _keys(listing))
        if parts:
            # The newest staged row of a path wins (a file that changed again after a
            # killed scan was staged twice); only rows that match the listing count.
            files = ", ".join(sql_string(p) for p in parts)
            current = "SEMI JOIN listing USING (path, file_size, mtime) " if listing is not None else ""
            con.execute(
                f"CREATE TEMP VIEW fresh AS SELECT * EXCLUDE (filename) FROM read_parquet([{files}], filename=true) "
                f"{current}QUALIFY row_number() OVER (PARTITION BY path ORDER BY filename DESC) = 1"
            )
            selects.append("SELECT * FROM fresh")
        if previous is not None:
            con.execute(f"CREATE TEMP VIEW old AS SELECT * FROM read_parquet({sql_string(previous)})")
            kept = "SELECT * FROM old SEMI JOIN listing USING (path)"
            if parts:
                kept += " ANTI JOIN fresh USING (path)"
            selects.append(kept)
            selects.append(
                f"SELECT * REPLACE ('vanished' AS status, '{VANISHED_ERROR}' AS error) FROM old ANTI JOIN listing USING (path)"
            )
        query = " UNION ALL BY NAME ".join(f"({s})" for s in selects) + " ORDER BY path"
        metadata = json.dumps(signature).replace("'", "''")
        con.execute(
            f"COPY ({query}) TO {sql_string(partial)} "
            f"(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {PART_ROWS}, KV_METADATA {{curate_index: '{metadata}'}})"
        )
    finally:
        con.close()
    os.replace(partial, final)


def sql_string(text) -> str:
    """`text` as a quoted SQL string literal (a path, a constant)."""
    return "'" + str(text).replace("'", "''") + "'"


def connect_index(index_dir: str | os.PathLike[str], view: str = "idx", file_row_number: bool = False):
    """A DuckDB connection with ``<index_dir>/index.parquet`` as the view `view` (with
    ``file_row_number``, the row numbers quality reports give as examples)."""
    import duckdb

    index = Path(index_dir) / INDEX_FILE
    if not index.exists():
        raise FileNotFoundError(f"no index at {index_dir} (run `curate scan` first)")
    con = duckdb.connect()
    options = ", file_row_number=true" if file_row_number else ""
    con.execute(f"CREATE VIEW {view} AS SELECT * FROM read_parquet({sql_string(index)}{options})")
    return con


def _count_final(summary: ScanSummary) -> None:
    """Status counts over the whole index, and error kinds."""
    table = pq.read_table(summary.index_path, columns=["status", "error"])
    summary.rows = table.num_rows
    status = table.column("status")
    for value, count in _value_counts(status):
        summary.by_status[value] += count
    summary.vanished = summary.by_status.get("vanished", 0)
    errors = pc.filter(table.column("error"), pc.equal(status, "error"))
    kinds = pc.list_element(pc.split_pattern(errors, ":", max_splits=1), 0)
    for kind, count in _value_counts(kinds):
        summary.errors_by_kind[kind] += count


def _value_counts(array) -> list[tuple[str, int]]:
    counts = pc.value_counts(array)
    return list(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist()))

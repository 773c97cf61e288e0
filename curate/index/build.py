"""Building the Parquet index of a source tree, then keeping it up to date.

The index (see :mod:`curate.index.store` for its files) holds one row per file, sorted
by path: the scanner's columns, the derived columns of :mod:`curate.index.derive`, and
a ``row_id`` that a path keeps across rescans. A rescan lists the tree (size and
modification time of every file, no file read) and parses only the files that are new
or changed; files that are gone keep their row with ``status = 'vanished'``.

Crash safety: parsed rows go to staged parts in the index folder, each written under a
temporary name and renamed. A scan that is killed leaves those parts; the next scan of
the same tree with the same tag set reuses every part whose files have not changed
since, and parses only the rest. The visible index is only ever replaced whole, by a
rename, when a scan completes: a reader sees the previous complete index or the new
one, never a half-written file.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate import _native
from curate.errors import ConfigError, IndexBusyError, SourceNotFoundError
from curate.files import atomic_path, is_partial
from curate.index.dask import DaskOptions
from curate.index.derive import DERIVE_VERSION, DeriveCounts, add_derived_columns
from curate.index.scan import PathsLike, as_path_list, open_columns
from curate.index.schema import ROW_ID, error_message
from curate.index.store import INDEX_FILE, INDEX_FORMAT, METADATA_KEY, STAGING_DIR, IndexStore, sql_string
from curate.index.summary import ScanSummary
from curate.index.tags import ColumnSpec, resolve_tags
from curate.progress import progress_bar

#: Rows per staged part (and Parquet row group): large enough for good compression,
#: small enough that a killed scan loses little and memory stays flat.
PART_ROWS = 32_768
VANISHED_ERROR = error_message("vanished", "no longer under the scanned source")
#: DuckDB's memory for merging the index; past it the sort spills to the staging folder.
MERGE_MEMORY = "256MB"
RESCAN_MODES = ("changed", "all")


def index_signature(columns: Sequence[ColumnSpec]) -> dict:
    """What decides an index's columns: rows built under another signature are not reused."""
    spec = [[c.name, [list(step) for step in c.path], c.vr, c.multi] for c in columns]
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()
    return {"format": INDEX_FORMAT, "derive": DERIVE_VERSION, "columns": digest}


def list_files(paths: PathsLike, threads: int | None = None) -> pa.Table:
    """Every file under `paths` with its size and modification time, none of them read."""
    native = _native.open_scan(as_path_list(paths), [], threads or 0, _native.DEFAULT_BATCH_SIZE, False)
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
    """Scan `source` into the index in `index_dir` and return the summary.

    ``rescan="changed"`` parses only files that are new or changed since the index was
    built (and reuses the parts of an interrupted scan); ``"all"`` parses every file.
    `on_part` is called with the number of parts staged so far after each one is safely
    on disk. With `dask`, the files are parsed by Dask tasks, a shard each.
    """
    if rescan not in RESCAN_MODES:
        raise ConfigError(f"rescan must be 'changed' or 'all', not {rescan!r}")
    sources = _existing_sources(source)
    columns = resolve_tags(tags, extra_tags)
    signature = index_signature(columns)
    index_dir = Path(index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with _exclusive(index_dir):
        summary = ScanSummary(
            index_path=index_dir / INDEX_FILE,
            threads=threads,
            rescan=rescan,
            backend="local" if dask is None else "dask",
            columns=len(columns),
        )
        previous, summary.full_rescan_reason = _reusable_index(index_dir, signature, rescan)
        staging = _staging(index_dir, signature, fresh=rescan == "all")
        listing, to_parse = _plan(sources, previous, staging, threads, dask is not None, summary)
        if dask is None:
            parts, summary.scanned = _scan_into_parts(
                to_parse, staging, columns, threads, batch_size, part_rows, progress, summary.derive, on_part
            )
        else:
            parts, summary.scanned = _scan_on_dask(to_parse, staging, columns, dask, progress, summary.derive, on_part)
        summary.listed = summary.scanned if listing is None else listing.num_rows
        summary.unchanged = summary.listed - summary.scanned - summary.resumed
        if parts or previous is None or (listing is not None and _vanished_count(listing, previous)):
            _merge(index_dir, listing, previous, staging, signature, _row_ids_of(index_dir))
        shutil.rmtree(staging, ignore_errors=True)
        _count_final(summary)
    summary.seconds = time.perf_counter() - started
    return summary


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


def _reusable_index(index_dir: Path, signature: dict, rescan: str) -> tuple[Path | None, str | None]:
    """The existing index when its rows can be kept, else why every file is parsed (the
    index is then rebuilt from what is under the source now)."""
    path = index_dir / INDEX_FILE
    if not path.exists():
        return None, None
    if rescan == "all":
        return None, "rescan=all"
    if IndexStore(index_dir).signature() != signature:
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
    for partial in staging.iterdir() if staging.exists() else ():
        if is_partial(partial):
            partial.unlink()  # a part that was being written when a scan was killed
    staging.mkdir(exist_ok=True)
    marker.write_text(json.dumps(signature))
    return staging


def _existing_sources(source: PathsLike) -> list[str]:
    """The source paths, absolute (the index is read from other folders: dataset builds,
    queries); :class:`SourceNotFoundError` names those that do not exist."""
    sources = as_path_list(source)
    missing = [s for s in sources if not os.path.exists(s)]
    if missing:
        raise SourceNotFoundError(f"source does not exist: {', '.join(missing)}")
    return [os.path.abspath(s) for s in sources]


def _plan(
    sources: list[str],
    previous: Path | None,
    staging: Path,
    threads: int | None,
    listed_first: bool,
    summary: ScanSummary,
) -> tuple[pa.Table | None, list[str]]:
    """(the listing of the tree, or None; the paths to parse). A first local scan walks
    and parses in one pass, with nothing to compare with; every other scan lists the
    tree first and parses only what no reusable row covers."""
    staged = _staged_keys(staging)
    if previous is None and staged.num_rows == 0 and not listed_first:
        return None, sources
    listing = list_files(sources, threads)
    summary.resumed = _count_reusable(listing, staged)
    return listing, _files_to_parse(listing, previous, staged).column("path").to_pylist()


def _part_files(staging: Path) -> list[Path]:
    return sorted(staging.glob("part-*.parquet"))


def _staged_keys(staging: Path) -> pa.Table:
    """(path, file_size, mtime) of every row already staged."""
    parts = _part_files(staging)
    if not parts:
        return pa.table(
            {
                "path": pa.array([], pa.string()),
                "file_size": pa.array([], pa.int64()),
                "mtime": pa.array([], pa.timestamp("us", tz="UTC")),
            }
        )
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
        with atomic_path(staging / f"part-{first + written:06d}.parquet") as partial:
            pq.write_table(table, partial, compression="zstd")
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


def _scan_on_dask(
    paths: list[str],
    staging: Path,
    columns: Sequence[ColumnSpec],
    options: DaskOptions,
    progress: bool,
    derive_counts: DeriveCounts,
    on_part: Callable[[int], None] | None,
) -> tuple[int, int]:
    """:func:`_scan_into_parts` with the parsing done by Dask tasks, a shard each."""
    from curate.index import dask

    def bar(total: int):
        return progress_bar(total, "scan (dask)", enabled=progress)

    first = len(_part_files(staging))
    return dask.scan_into_parts(paths, staging, first, columns, options, bar, derive_counts, on_part)


def _row_ids_of(index_dir: Path) -> Path | None:
    """The index whose row ids the new one keeps: the current one, even when its rows are
    not reused (rescan=all, another tag set), as long as it has ids."""
    path = index_dir / INDEX_FILE
    try:
        return path if ROW_ID in pq.read_schema(path).names else None
    except (OSError, pa.ArrowException):
        return None


def _merge(
    index_dir: Path,
    listing: pa.Table | None,
    previous: Path | None,
    staging: Path,
    signature: dict,
    ids_from: Path | None,
) -> None:
    """Write the new index: fresh rows, unchanged old rows, vanished rows; by path. A
    path keeps its row id; paths new to the index get ids after the largest so far."""
    import duckdb

    for stale in index_dir.iterdir():
        if is_partial(stale):
            stale.unlink()  # an index a killed scan was writing
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
            _fresh_rows(con, parts, listing is not None, ids_from)
            selects.append("SELECT * FROM fresh")
        if previous is not None:
            con.execute(f"CREATE TEMP VIEW old AS SELECT * FROM read_parquet({sql_string(previous)})")
        if previous is not None:
            kept = "SELECT * FROM old SEMI JOIN listing USING (path)"
            if parts:
                kept += " ANTI JOIN fresh USING (path)"
            selects.append(kept)
            selects.append(
                f"SELECT * REPLACE ('vanished' AS status, '{VANISHED_ERROR}' AS error) "
                "FROM old ANTI JOIN listing USING (path)"
            )
        query = " UNION ALL BY NAME ".join(f"({s})" for s in selects) + " ORDER BY path"
        metadata = json.dumps(signature).replace("'", "''")
        with atomic_path(index_dir / INDEX_FILE) as partial:
            con.execute(
                f"COPY ({query}) TO {sql_string(partial)} (FORMAT parquet, COMPRESSION zstd, "
                f"ROW_GROUP_SIZE {PART_ROWS}, KV_METADATA {{{METADATA_KEY.decode()}: '{metadata}'}})"
            )
    finally:
        con.close()


def _fresh_rows(con, parts: list[str], listed: bool, ids_from: Path | None) -> None:
    """The view ``fresh``: the staged rows that go into the index, with their row ids.

    The newest staged row of a path wins (a file that changed again after a killed scan
    was staged twice), and only rows that match the listing count. Which row wins, and
    the ids of paths new to the index, are decided on (path, part) keys alone: a window
    over whole rows would hold them all in memory."""
    files = ", ".join(sql_string(p) for p in parts)
    current = " SEMI JOIN listing USING (path, file_size, mtime)" if listed else ""
    con.execute(f"CREATE TEMP VIEW staged AS SELECT * FROM read_parquet([{files}], filename=true){current}")
    con.execute("CREATE TEMP TABLE newest AS SELECT path, max(filename) AS filename FROM staged GROUP BY path")
    if ids_from is not None:
        con.execute(f"CREATE TEMP VIEW ids AS SELECT path, {ROW_ID} FROM read_parquet({sql_string(ids_from)})")
        unknown = "newest ANTI JOIN ids USING (path)"
        first_new = f"(SELECT coalesce(max({ROW_ID}) + 1, 0) FROM ids)"
    else:
        con.execute(f"CREATE TEMP VIEW ids AS SELECT NULL::VARCHAR AS path, NULL::BIGINT AS {ROW_ID} LIMIT 0")
        unknown, first_new = "newest", "0"
    # Paths new to the index get ids after the largest so far, in path order.
    con.execute(
        f"CREATE TEMP TABLE new_ids AS SELECT path, {first_new} - 1 + row_number() OVER (ORDER BY path) "
        f"AS {ROW_ID} FROM {unknown}"
    )
    con.execute(
        f"CREATE TEMP VIEW fresh AS SELECT staged.* EXCLUDE (filename), "
        f"coalesce(ids.{ROW_ID}, new_ids.{ROW_ID})::BIGINT AS {ROW_ID} "
        "FROM staged SEMI JOIN newest USING (path, filename) "
        "LEFT JOIN ids USING (path) LEFT JOIN new_ids USING (path)"
    )


def _count_final(summary: ScanSummary) -> None:
    """Status counts over the whole index, and error kinds."""
    table = pq.read_table(summary.index_path, columns=["status", "error"])
    summary.rows = table.num_rows
    status = table.column("status")
    for value, count in _value_counts(status):
        summary.by_status[value] += count
    summary.vanished = summary.by_status.get("vanished", 0)
    errors = pc.filter(table.column("error"), pc.equal(status, "error"))
    # error_kind, in Arrow: the text before the first colon.
    kinds = pc.list_element(pc.split_pattern(errors, ":", max_splits=1), 0)
    for kind, count in _value_counts(kinds):
        summary.errors_by_kind[kind] += count


def _value_counts(array) -> list[tuple[str, int]]:
    counts = pc.value_counts(array)
    return list(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True))

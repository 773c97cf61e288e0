"""Building the Parquet index of a source tree, then keeping it up to date.

The index (see :mod:`curate.index.manifest` for its layout) holds one current row per
file: the scanner's columns, the derived columns of :mod:`curate.index.derive`, and a
``row_id`` that a path keeps across rescans. A rescan lists the tree (size and
modification time of every file, no file read) and parses only the files that are new
or changed; files that are gone keep their row with ``status = 'vanished'``. What
changed is appended as a new generation (:mod:`curate.index.commit`): a rescan's work
grows with what it found, not with the index.

Crash safety: parsed rows go to staged parts in the index folder, each written under a
temporary name and renamed. A scan that is killed leaves those parts; the next scan of
the same tree with the same tag set reuses every part whose files have not changed
since, and parses only the rest. A commit becomes visible in one rename of the
manifest: a reader sees the previous complete index or the new one, never a part of it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from curate import _native
from curate.errors import ConfigError, SourceNotFoundError
from curate.files import atomic_path, is_partial
from curate.index.commit import Checkpoint, commit_scan, no_checkpoint
from curate.index.compact import WORK_DIR as COMPACTION_DIR
from curate.index.dask import DaskOptions
from curate.index.derive import DERIVE_VERSION, DeriveCounts, add_derived_columns
from curate.index.legacy import convert_legacy
from curate.index.manifest import (
    INDEX_FORMAT,
    Manifest,
    log_run,
    no_room_is_an_error,
    remove_unlisted,
    writer_lock,
)
from curate.index.scan import PathsLike, as_path_list, open_columns
from curate.index.store import STAGING_DIR, IndexStore, limit_memory, same_file, sql_list, sql_string
from curate.index.summary import ScanSummary
from curate.index.tags import ColumnSpec, resolve_tags
from curate.progress import progress_bar

#: Rows per staged part: large enough for good compression, small enough that a killed
#: scan loses little and memory stays flat.
PART_ROWS = 32_768
#: Paths handed to the native scanner at a time when a rescan parses a list of files.
PARSE_CHUNK = 65_536
RESCAN_MODES = ("changed", "all")


def index_signature(columns: Sequence[ColumnSpec]) -> dict:
    """What decides an index's columns: rows built under another signature are not reused."""
    spec = [[c.name, [list(step) for step in c.path], c.vr, c.multi] for c in columns]
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()
    return {"format": INDEX_FORMAT, "derive": DERIVE_VERSION, "columns": digest}


def list_files(paths: PathsLike, threads: int | None = None) -> pa.Table:
    """Every file under `paths` with its size and modification time, none of them read."""
    return pa.Table.from_batches(_listing_batches(paths, threads))


def _listing_batches(paths: PathsLike, threads: int | None) -> Iterator[pa.RecordBatch]:
    native = _native.open_scan(as_path_list(paths), [], threads or 0, _native.DEFAULT_BATCH_SIZE, False)
    for batch in pa.RecordBatchReader.from_stream(native):
        yield batch.select(["path", "file_size", "mtime", "status", "error"])


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
    checkpoint: Checkpoint | None = None,
) -> ScanSummary:
    """Scan `source` into the index in `index_dir` and return the summary.

    ``rescan="changed"`` parses only files that are new or changed since the index was
    built (and reuses the parts of an interrupted scan); ``"all"`` parses every file.
    `on_part` is called with the number of parts staged so far after each one is safely
    on disk, and `checkpoint` with the name of each step of the commit. With `dask`, the
    files are parsed by Dask tasks, a shard each.
    """
    if rescan not in RESCAN_MODES:
        raise ConfigError(f"rescan must be 'changed' or 'all', not {rescan!r}")
    sources = _existing_sources(source)
    columns = resolve_tags(tags, extra_tags)
    signature = index_signature(columns)
    index_dir = Path(index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(index_dir, 0o700)  # the index holds PHI
    started = time.perf_counter()
    with writer_lock(index_dir), no_room_is_an_error(index_dir):
        summary = ScanSummary(
            index_path=index_dir,
            threads=threads,
            rescan=rescan,
            backend="local" if dask is None else "dask",
            columns=len(columns),
        )
        summary.converted_from = convert_legacy(index_dir, signature)
        current = IndexStore(index_dir).manifest()
        remove_unlisted(index_dir, current)  # what a killed commit left
        base, summary.full_rescan_reason = _reusable(current, signature, rescan)
        staging = _staging(index_dir, signature, fresh=rescan == "all")
        listing, todo = _plan(sources, index_dir, base, staging, threads, dask is not None, summary)
        if dask is None:
            summary.scanned = _scan_into_parts(
                todo, staging, columns, threads, batch_size, part_rows, progress, summary.derive, on_part
            )
        else:
            summary.scanned = _scan_on_dask(todo, staging, columns, dask, progress, summary.derive, on_part)
        if listing is None:
            summary.listed = summary.scanned
        summary.unchanged = summary.listed - summary.scanned - summary.resumed
        written = commit_scan(
            index_dir,
            signature,
            _part_files(staging),
            listing,
            base,
            current,
            staging,
            checkpoint or no_checkpoint,
            sources=sources,
        )
        summary.committed = written is not None
        shutil.rmtree(staging, ignore_errors=True)
        if written is not None:
            # A killed compaction's work was for the previous generation: a resumed
            # compaction would discard it anyway, and it may hold large parts.
            shutil.rmtree(index_dir / COMPACTION_DIR, ignore_errors=True)
        _count_final(summary)
        summary.seconds = time.perf_counter() - started
        settings = {**signature, **summary.params()}
        summary.run_entry = log_run(index_dir, "scan", settings, summary.metrics(), current)
    return summary


# --- the steps of a scan -----------------------------------------------------------------


def _reusable(current: Manifest | None, signature: dict, rescan: str) -> tuple[Manifest | None, str | None]:
    """The current index when its rows can be kept, else why every file is parsed (the
    index is then rebuilt from what is under the source now)."""
    if current is None:
        return None, None
    if rescan == "all":
        return None, "rescan=all"
    if current.signature != signature:
        return None, "the index was built with another tag set or curate version"
    return current, None


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


class _Todo:
    """The paths a scan parses: the sources themselves (a first scan walks and parses in
    one pass), or a list of files spooled to Parquet and handed out in chunks."""

    def __init__(self, sources: list[str] | None = None, spooled: Path | None = None, total: int | None = None):
        self.sources, self.spooled, self.total = sources, spooled, total

    def chunks(self) -> Iterator[list[str]]:
        if self.sources is not None:
            yield self.sources
            return
        if not self.total:
            return
        for batch in pq.ParquetFile(self.spooled).iter_batches(batch_size=PARSE_CHUNK, columns=["path"]):
            yield batch.column(0).to_pylist()


def _plan(
    sources: list[str],
    index_dir: Path,
    base: Manifest | None,
    staging: Path,
    threads: int | None,
    listed_first: bool,
    summary: ScanSummary,
) -> tuple[Path | None, _Todo]:
    """(the listing of the tree spooled to Parquet, or None; the paths to parse). A
    first local scan walks and parses in one pass, with nothing to compare with; every
    other scan lists the tree first and parses only what no reusable row covers."""
    import duckdb

    staged = _part_files(staging)
    if base is None and not staged and not listed_first:
        return None, _Todo(sources=sources)
    listing = staging / "listing.parquet"
    with atomic_path(listing) as partial:
        writer = None
        for batch in _listing_batches(sources, threads):
            if writer is None:
                writer = pq.ParquetWriter(partial, _keys_schema())
            writer.write_batch(_keys(batch))
        if writer is None:
            pq.write_table(_keys_schema().empty_table(), partial)
        else:
            writer.close()
    con = duckdb.connect()
    limit_memory(con, staging / "spill")
    try:
        con.execute(f"CREATE VIEW listing AS SELECT * FROM read_parquet({sql_string(listing)})")
        done = []
        if base is not None:
            rows = IndexStore(index_dir).rows_sql(base)
            done.append(f"SELECT path, file_size, mtime FROM ({rows}) WHERE status <> 'vanished'")
        if staged:
            # Staged rows the index already holds (a scan killed after its commit) are
            # unchanged files, not resumed ones.
            done.insert(0, f"SELECT path, file_size, mtime FROM read_parquet({sql_list(staged)})")
            summary.resumed = con.execute(
                f"SELECT count(*) FROM listing l SEMI JOIN ({done[0]}) s ON {same_file('l', 's')}{_none_of(done[1:])}"
            ).fetchall()[0][0]
        summary.listed = con.execute("SELECT count(*) FROM listing").fetchall()[0][0]
        todo = staging / "todo.parquet"
        with atomic_path(todo) as partial:
            query = f"SELECT l.path FROM listing l{_none_of(done)} ORDER BY l.path"
            con.execute(f"COPY ({query}) TO {sql_string(partial)} (FORMAT parquet)")
        total = pq.read_metadata(todo).num_rows
    finally:
        con.close()
    return listing, _Todo(spooled=todo, total=total)


def _none_of(queries: list[str]) -> str:
    """ANTI JOINs that keep the listing rows (alias ``l``) no row of `queries` covers."""
    return "".join(f" ANTI JOIN ({q}) d{i} ON {same_file('l', f'd{i}')}" for i, q in enumerate(queries))


def _part_files(staging: Path) -> list[Path]:
    return sorted(staging.glob("part-*.parquet"))


def _next_part_number(staging: Path) -> int:
    """The number of the next staged part: after the highest one there (a killed Dask
    scan leaves gaps, and a newer part must sort after every older one)."""
    numbers = [int(p.stem.split("-")[1]) for p in _part_files(staging)]
    return max(numbers) + 1 if numbers else 0


def _keys_schema() -> pa.Schema:
    return pa.schema([("path", pa.string()), ("file_size", pa.int64()), ("mtime", pa.timestamp("us", tz="UTC"))])


def _keys(batch: pa.RecordBatch) -> pa.RecordBatch:
    """The columns that say whether a file changed, typed alike for joins."""
    return pa.RecordBatch.from_arrays(
        [batch.column(name).cast(field.type) for name, field in zip(_keys_schema().names, _keys_schema(), strict=True)],
        schema=_keys_schema(),
    )


def _scan_into_parts(
    todo: _Todo,
    staging: Path,
    columns: Sequence[ColumnSpec],
    threads: int | None,
    batch_size: int,
    part_rows: int,
    progress: bool,
    derive_counts: DeriveCounts,
    on_part: Callable[[int], None] | None,
) -> int:
    """Parse what `todo` names into staged parts; returns the rows written."""
    first = _next_part_number(staging)
    written = rows = 0
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

    schema = None
    with progress_bar(todo.total, "scan", enabled=progress) as bar:
        for chunk in todo.chunks():
            handle = open_columns(chunk, columns, threads, batch_size)
            reader = handle.reader()
            schema = reader.schema
            for batch in reader:
                if todo.total is None:
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
        elif written == 0 and schema is not None and not _part_files(staging):
            # No file at all: an empty part, so that the index still has its columns.
            table = add_derived_columns(schema.empty_table(), derive_counts)
            with atomic_path(staging / f"part-{first:06d}.parquet") as partial:
                pq.write_table(table, partial, compression="zstd")
    return rows


def _scan_on_dask(
    todo: _Todo,
    staging: Path,
    columns: Sequence[ColumnSpec],
    options: DaskOptions,
    progress: bool,
    derive_counts: DeriveCounts,
    on_part: Callable[[int], None] | None,
) -> int:
    """:func:`_scan_into_parts` with the parsing done by Dask tasks, a shard each."""
    from curate.index import dask

    def bar(total: int):
        return progress_bar(total, "scan (dask)", enabled=progress)

    first = _next_part_number(staging)
    return dask.scan_into_parts(
        todo.chunks(), todo.total, staging, first, columns, options, bar, derive_counts, on_part
    )[1]


def _count_final(summary: ScanSummary) -> None:
    """Status counts over the whole index, and error kinds."""
    store = IndexStore(summary.index_path)
    con = store.connect("idx")
    try:
        rows = con.execute(
            "SELECT status, CASE WHEN status = 'error' THEN split_part(error, ':', 1) END AS kind, count(*) "
            "FROM idx GROUP BY ALL"
        ).fetchall()
    finally:
        con.close()
    for status, kind, count in rows:
        summary.rows += count
        summary.by_status[status] += count
        if kind is not None:
            summary.errors_by_kind[kind] += count
    summary.vanished = summary.by_status.get("vanished", 0)

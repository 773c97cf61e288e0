"""The index on disk: the names of its files, and the one way to open it for reading.

Every stage that reads an index goes through :class:`IndexStore`: a DuckDB connection
with the index as a view, a whole table, record batches, a digest. No path to a file
inside the index leaves this module, so the on-disk layout (:mod:`curate.index.manifest`:
parts, retired rows, a manifest) can change behind it. Each read takes the manifest
once: a scan that commits meanwhile does not change what that read sees.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate.errors import IndexNotFoundError
from curate.files import atomic_path, process_alive
from curate.index.derive import DERIVE_VERSION
from curate.index.manifest import INDEX_FORMAT, LEGACY_INDEX_FILE, MANIFEST_FILE, Manifest, read_manifest
from curate.index.schema import ROW_ID

STAGING_DIR = ".staging"
#: Where DuckDB spills what does not fit its memory limit while it reads the index.
SPILL_DIR = ".spill"
#: Rows a grouped batch holds (more only to finish a group).
GROUPED_BATCH_ROWS = 16_384
#: Rows of one partition when :meth:`IndexStore.grouped_batches` partitions before it sorts.
GROUPING_ROWS = 100_000
#: The memory every DuckDB connection of curate holds at most; past it, DuckDB spills
#: to disk. One limit for every stage keeps memory flat at any index size.
DUCKDB_MEMORY = "128MB"
#: The limit of the connections that group millions of distinct strings (a build plan's
#: dedupes, de-identification's checks of every identifying value): DuckDB 2.0 does not
#: spill those within the default one (measured in benchmarks/scale.py).
GROUPING_MEMORY = "384MB"
#: Series types a classifier wrote beside the index (one row per series).
SERIES_TYPES_FILE = "series_types.parquet"
#: Each instance's own type (a series may hold a PA and a lateral), by row id.
INSTANCE_TYPES_FILE = "instance_types.parquet"


def sql_string(text) -> str:
    """`text` as a quoted SQL string literal (a path, a constant)."""
    return "'" + str(text).replace("'", "''") + "'"


def limit_memory(con, spill: str | os.PathLike[str], limit: str = DUCKDB_MEMORY) -> None:
    """Bound `con` to `limit`, spilling into `spill` (a private folder: what spills is
    index rows)."""
    con.execute(f"SET memory_limit = '{limit}'")
    con.execute(f"SET temp_directory = {sql_string(spill)}")


def same_file(left: str, right: str) -> str:
    """A join condition: the rows `left` and `right` (table aliases) are the same file in
    the same state. A missing size or mtime (a broken link, a FIFO) matches a missing
    one: ``USING`` would never match it, and such a file would be parsed and written
    again at every rescan."""
    return " AND ".join(
        [f"{left}.path = {right}.path"]
        + [f"{left}.{key} IS NOT DISTINCT FROM {right}.{key}" for key in ("file_size", "mtime")]
    )


def sql_list(items) -> str:
    """`items` as a DuckDB list of string literals."""
    return "[" + ", ".join(sql_string(i) for i in items) + "]"


class IndexStore:
    """The index in one folder (``curate scan index=DIR``)."""

    def __init__(self, index_dir: str | os.PathLike[str]):
        self.root = Path(index_dir)

    def __repr__(self) -> str:
        return f"IndexStore({str(self.root)!r})"

    # --- state -------------------------------------------------------------------------

    def manifest(self) -> Manifest | None:
        """The index's live state, or None when nothing was scanned into it."""
        return read_manifest(self.root)

    def exists(self) -> bool:
        return (self.root / MANIFEST_FILE).exists() or self.is_legacy()

    def is_legacy(self) -> bool:
        """Whether the folder holds an index of format 4 (one ``index.parquet``), which
        the next scan converts."""
        return (self.root / LEGACY_INDEX_FILE).exists() and not (self.root / MANIFEST_FILE).exists()

    def require(self) -> Manifest:
        """The live manifest, or :class:`IndexNotFoundError` saying what to run."""
        manifest = self.manifest()
        if manifest is not None:
            return manifest
        if self.is_legacy():
            raise IndexNotFoundError(
                f"the index in {self.root} is in an older format: run `curate scan` on it again to convert it"
            )
        raise IndexNotFoundError(f"no index at {self.root} (run `curate scan` first)")

    def signature(self) -> dict | None:
        """How the index was built (format, derive version, column digest), if readable."""
        manifest = self.manifest()
        return manifest.signature if manifest is not None else None

    def outdated(self) -> str | None:
        """Why this index lacks what this curate writes (None when it is current)."""
        found = self.signature()
        if found is None or found.get("format") != INDEX_FORMAT or found.get("derive") != DERIVE_VERSION:
            return "this index was built by another version of curate: run `curate scan` on it again"
        return None

    def digest(self) -> str:
        """A content hash of the index: it changes whenever any row does (and not when
        the index is compacted)."""
        return self.require().content

    # --- reading -----------------------------------------------------------------------

    def _path(self, file: str) -> str:
        return str(self.root / file)

    def schema(self) -> pa.Schema:
        manifest = self.require()
        if not manifest.parts:
            return pa.schema([])
        return _nullable(pq.read_schema(self._path(manifest.parts[0].file)))

    def columns(self) -> set[str]:
        return set(self.schema().names)

    def rows(self) -> int:
        """How many files the index has a current row for."""
        return self.require().rows

    def read(self, columns: Sequence[str] | None = None) -> pa.Table:
        """The whole index (or some columns of it) as one table, sorted by path."""
        schema = self.schema()
        chosen = list(columns) if columns is not None else schema.names
        pieces = [pa.Table.from_batches([b]) for b in self.batches(chosen)]
        table = pa.concat_tables(pieces) if pieces else schema.empty_table().select(chosen)
        # Every field is nullable already: the schema and the batches are made so.
        return table.sort_by("path") if "path" in table.column_names else table

    def batches(
        self,
        columns: Sequence[str] | None = None,
        batch_size: int = 65_536,
        manifest: Manifest | None = None,
        retired: dict[str, pa.Array] | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """The current rows (of `manifest`, by default the live one) as record batches,
        part by part: memory stays flat at any index size. `retired` is
        :meth:`retired_ids` of that manifest, when the caller has it already."""
        manifest = manifest or self.require()
        retired = retired if retired is not None else self.retired_ids(manifest)
        wanted = list(columns) if columns is not None else None
        for part in manifest.parts:
            gone = retired.get(part.file)
            read = wanted if wanted is None or gone is None or ROW_ID in wanted else [*wanted, ROW_ID]
            for batch in pq.ParquetFile(self._path(part.file)).iter_batches(batch_size=batch_size, columns=read):
                if gone is not None:
                    batch = batch.filter(pc.invert(pc.is_in(batch.column(ROW_ID), value_set=gone)))
                    if read is not wanted:
                        batch = batch.select(wanted)
                if batch.num_rows:
                    yield _nullable_batch(batch)

    def retired_ids(self, manifest: Manifest) -> dict[str, pa.Array]:
        """Retired row ids, by the part that holds them (few: compaction empties them)."""
        if not manifest.retired:
            return {}
        table = pa.concat_tables(
            (pq.read_table(self._path(r.file)) for r in manifest.retired), promote_options="permissive"
        )
        # Sorted by part once, then sliced: not one scan of the whole list per part.
        table = table.sort_by("part")
        found: dict[str, pa.Array] = {}
        parts = table.column("part").combine_chunks()
        ids = table.column(ROW_ID).combine_chunks()
        counts = pc.value_counts(parts)
        start = 0
        values, sizes = counts.field("values").to_pylist(), counts.field("counts").to_pylist()
        for value, count in sorted(zip(values, sizes, strict=True)):
            found[value] = ids.slice(start, count)
            start += count
        return found

    def rows_sql(self, manifest: Manifest | None = None, filename: bool = False) -> str:
        """A DuckDB query of the current rows (of `manifest`, by default the live one).
        With `filename`, each row also carries ``filename``: the path of its part, as
        the manifest names it under the index folder."""
        manifest = manifest or self.require()
        if not manifest.parts:
            return f"SELECT * FROM (SELECT NULL::VARCHAR AS path, NULL::BIGINT AS {ROW_ID}) WHERE false"
        prefix = len(str(self.root)) + 2
        files = sql_list(self._path(p.file) for p in manifest.parts)
        rows = f"read_parquet({files}, filename=true)"
        if manifest.retired:
            retired = sql_list(self._path(r.file) for r in manifest.retired)
            rows = (
                f"(SELECT p.* FROM {rows} p ANTI JOIN read_parquet({retired}) r "
                f"ON substr(p.filename, {prefix}) = r.part AND p.{ROW_ID} = r.{ROW_ID})"
            )
        if filename:
            return f"SELECT * REPLACE (substr(filename, {prefix}) AS filename) FROM {rows}"
        return f"SELECT * EXCLUDE (filename) FROM {rows}"

    def connect(self, view: str = "idx", series_types: bool = False):
        """A DuckDB connection with the index as the view `view`. With `series_types`,
        the view carries ``series_type``, ``series_confidence`` and ``series_model``, and
        each instance's own ``instance_type`` and ``instance_confidence`` (null where no
        classifier has run). DuckDB holds at most :data:`DUCKDB_MEMORY` and
        spills the rest into the index folder (what it spills is index rows: it stays where
        the index is, never in the working directory)."""
        import duckdb

        rows = self.rows_sql()
        con = duckdb.connect()
        limit_memory(con, self.root / SPILL_DIR)
        if not series_types:
            con.execute(f"CREATE VIEW {view} AS {rows}")
            return con
        if self.has_series_types():
            series = (
                "t.series_type, t.confidence AS series_confidence, t.model_version AS series_model",
                f"LEFT JOIN read_parquet({sql_string(self.root / SERIES_TYPES_FILE)}) t USING (SeriesInstanceUID)",
            )
        else:
            series = ("NULL AS series_type, NULL AS series_confidence, NULL AS series_model", "")
        if (self.root / INSTANCE_TYPES_FILE).exists():
            instance = (
                "u.instance_type, u.confidence AS instance_confidence",
                f"LEFT JOIN read_parquet({sql_string(self.root / INSTANCE_TYPES_FILE)}) u USING ({ROW_ID})",
            )
        else:
            instance = ("NULL AS instance_type, NULL AS instance_confidence", "")
        con.execute(
            f"CREATE VIEW {view} AS SELECT i.*, {series[0]}, {instance[0]} FROM ({rows}) i {series[1]} {instance[1]}"
        )
        return con

    def grouped_batches(
        self,
        columns: Sequence[str],
        key: str,
        where: str = "TRUE",
        rows: int = GROUPED_BATCH_ROWS,
        key_of: tuple[str, str] | None = None,
    ) -> Iterator[pa.Table]:
        """Rows of `columns` (`key` among them) where `where` holds, as tables of about
        `rows` rows that each hold whole groups (rows of one `key`): no group is split
        between two tables. A table grows past `rows` only to finish a group. With
        `key_of` (a column, and a SQL query over ``idx`` giving that column and `key`),
        each row's key comes from the query, joined on the column.

        Memory stays flat at any index size. A small index is sorted by `key` in one
        query. A larger one is first written, unsorted, in :data:`GROUPING_ROWS`-row
        partitions by a hash of `key` (beside the index: they are index rows), and each
        partition is sorted on its own: DuckDB cannot sort a million wide rows within
        :data:`DUCKDB_MEMORY`. The order (partition, then `key`, then path) is the same in
        every run."""
        select = ", ".join(f'"{c}"' for c in dict.fromkeys([key, *columns]))
        source = f'idx JOIN ({key_of[1]}) AS keys USING ("{key_of[0]}")' if key_of else "idx"
        query = f"SELECT {select}, path AS _path FROM {source} WHERE {where}"
        order = f'ORDER BY "{key}", _path'
        parts = -(-self.rows() // GROUPING_ROWS)
        con = self.connect("idx")
        # One batch at a time goes to Python: a second thread would add nothing but a
        # second share of the sort's memory.
        con.execute("SET threads = 1")
        try:
            if parts <= 1:
                yield from _whole_groups(con.sql(f"SELECT * EXCLUDE (_path) FROM ({query}) {order}"), key, rows)
                return
            _remove_dead_groupings(self.root)
            with tempfile.TemporaryDirectory(dir=self.root, prefix=f"{GROUPING_PREFIX}{os.getpid()}-") as spill:
                # Each partition written in small pieces: its buffer, not the whole
                # partition, is what DuckDB holds.
                con.execute("SET partitioned_write_flush_threshold = 2048")
                con.execute(f"SET partitioned_write_max_open_files = {parts}")
                con.execute(
                    f'COPY (SELECT *, hash("{key}") % {parts} AS _part FROM ({query})) '
                    f"TO {sql_string(spill)} (FORMAT parquet, PARTITION_BY (_part))"
                )
                for folder in sorted(Path(spill).iterdir(), key=lambda p: int(p.name.split("=")[1])):
                    files = f"read_parquet({sql_string(str(folder / '*.parquet'))}, hive_partitioning = true)"
                    part = con.sql(f"SELECT * EXCLUDE (_path, _part) FROM {files} {order}")
                    yield from _whole_groups(part, key, rows)
        finally:
            con.close()

    # --- what other stages keep beside the index -----------------------------------------

    def has_series_types(self) -> bool:
        """Whether `curate classify` has written its types beside the index (both files,
        the series' and the instances'; an index classified by an older curate has the
        series' only)."""
        return (self.root / SERIES_TYPES_FILE).exists()

    def has_instance_types(self) -> bool:
        return (self.root / INSTANCE_TYPES_FILE).exists()

    @contextlib.contextmanager
    def types_writer(self, name: str, schema: pa.Schema) -> Iterator[pq.ParquetWriter]:
        """A Parquet writer for types beside the index (:data:`SERIES_TYPES_FILE`,
        :data:`INSTANCE_TYPES_FILE`): written in pieces, and in place (replacing the
        previous ones) only when the block completes."""
        with atomic_path(self.root / name) as partial, pq.ParquetWriter(partial, schema) as writer:
            yield writer

    def log_run(self, stage: str, settings: dict, counts: dict, outputs: dict[str, str]) -> dict:
        """Append the entry of a run that wrote beside the index (series types) to the
        index's run log: it read the index's current content, and changed none of it."""
        from curate.runlog import RunLog

        content = self.require().content
        return RunLog(self.root).append(stage, settings, counts, {"index": content} if content else {}, outputs)


#: The folders grouped batches partition an index into, beside it: ``.grouping-<pid>-*``.
GROUPING_PREFIX = ".grouping-"


def _remove_dead_groupings(root: Path) -> None:
    """Remove the partition folders of readers killed mid-way (they hold index rows: a
    copy of part of the index nobody will read); a live reader's stay."""
    import shutil

    for folder in root.glob(f"{GROUPING_PREFIX}*"):
        pid = folder.name[len(GROUPING_PREFIX) :].split("-", 1)[0]
        if not pid.isdigit() or not process_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def open_index(index_dir: str | os.PathLike[str]) -> IndexStore:
    """The index in `index_dir`; :class:`IndexNotFoundError` when there is none."""
    store = IndexStore(index_dir)
    store.require()
    return store


def read_index(index_dir: str | os.PathLike[str], columns: Sequence[str] | None = None) -> pa.Table:
    """The index in `index_dir` as one table (:meth:`IndexStore.read`)."""
    return open_index(index_dir).read(columns)


def _nullable(schema: pa.Schema) -> pa.Schema:
    # Every column may hold nulls; the Parquet writer marks some as required when none
    # happen to, which would make equal indexes compare unequal.
    return pa.schema([f.with_nullable(True) for f in schema])


def _nullable_batch(batch: pa.RecordBatch) -> pa.RecordBatch:
    return batch.cast(_nullable(batch.schema)) if any(not f.nullable for f in batch.schema) else batch


__all__ = ["ROW_ID", "STAGING_DIR", "IndexStore", "open_index", "read_index", "sql_string"]


def _whole_groups(relation, key: str, rows: int) -> Iterator[pa.Table]:
    """The rows of `relation` (sorted by `key`) as tables of about `rows` rows, no group
    split between two."""
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    for batch in relation.to_arrow_reader(rows):
        pending.append(batch)
        pending_rows += batch.num_rows
        if pending_rows < rows:
            continue
        table = pa.Table.from_batches(pending)
        last = table.column(key)[-1]
        # Rows of the last group may go on in the next batch: they wait for it.
        keep = pc.not_equal(table.column(key), last)
        head = table.filter(keep)
        tail = table.filter(pc.invert(keep))
        if head.num_rows:
            yield head
        pending, pending_rows = tail.to_batches(), tail.num_rows
    if pending_rows:
        yield pa.Table.from_batches(pending)

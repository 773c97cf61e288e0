"""The index on disk: the names of its files, and the one way to open it for reading.

Every stage that reads an index goes through :class:`IndexStore`: a DuckDB connection
with the index as a view, an Arrow dataset, a whole table, record batches, a digest.
No path to a file inside the index leaves this module, so the on-disk layout can change
behind it. The scan that writes the index (:mod:`curate.index.build`) takes its names
from here too.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate.errors import IndexNotFoundError
from curate.files import atomic_path, sha256_of
from curate.index.derive import DERIVE_VERSION
from curate.index.schema import ROW_ID

INDEX_FILE = "index.parquet"
STAGING_DIR = ".staging"
#: Where DuckDB spills what does not fit its memory limit while it reads the index.
SPILL_DIR = ".spill"
#: Rows a grouped batch holds (more only to finish a group), and DuckDB's memory meanwhile.
GROUPED_BATCH_ROWS = 16_384
GROUPED_MEMORY = "256MB"
#: Series types a classifier wrote beside the index (one row per series).
SERIES_TYPES_FILE = "series_types.parquet"
#: Parquet key-value metadata key that records how an index was built.
METADATA_KEY = b"curate_index"
#: Bumped when the index layout changes: an index of another format is rebuilt.
INDEX_FORMAT = 4


def sql_string(text) -> str:
    """`text` as a quoted SQL string literal (a path, a constant)."""
    return "'" + str(text).replace("'", "''") + "'"


class IndexStore:
    """The index in one folder (``curate scan index=DIR``)."""

    def __init__(self, index_dir: str | os.PathLike[str]):
        self.root = Path(index_dir)

    def __repr__(self) -> str:
        return f"IndexStore({str(self.root)!r})"

    # --- state -------------------------------------------------------------------------

    @property
    def _file(self) -> Path:
        return self.root / INDEX_FILE

    def exists(self) -> bool:
        return self._file.exists()

    def require(self) -> IndexStore:
        """This store, or :class:`IndexNotFoundError` when nothing was scanned into it."""
        if not self.exists():
            raise IndexNotFoundError(f"no index at {self.root} (run `curate scan` first)")
        return self

    def signature(self) -> dict | None:
        """How the index was built (format, derive version, column digest), if readable."""
        try:
            raw = (pq.read_metadata(self._file).metadata or {}).get(METADATA_KEY)
            return json.loads(raw) if raw else None
        except (OSError, ValueError, pa.ArrowException):
            return None

    def outdated(self) -> str | None:
        """Why this index lacks what this curate writes (None when it is current)."""
        found = self.signature()
        if found is None or found.get("format") != INDEX_FORMAT or found.get("derive") != DERIVE_VERSION:
            return "this index was built by another version of curate: run `curate scan` on it again"
        return None

    def digest(self) -> str:
        """A content hash of the index: it changes whenever any row does."""
        return sha256_of(self.require()._file)

    # --- reading -----------------------------------------------------------------------

    def schema(self) -> pa.Schema:
        return pq.read_schema(self.require()._file)

    def columns(self) -> set[str]:
        return set(self.schema().names)

    def dataset(self):
        """The index as a ``pyarrow.dataset.Dataset`` (filters and projections pushed down)."""
        import pyarrow.dataset as ds

        return ds.dataset(self.require()._file, format="parquet")

    def read(self, columns: Sequence[str] | None = None) -> pa.Table:
        """The whole index (or some columns of it) as one table."""
        table = pq.read_table(self.require()._file, columns=list(columns) if columns is not None else None)
        # Every column may hold nulls; the Parquet writer marks some as required when none
        # happen to, which would make equal indexes compare unequal.
        return table.cast(pa.schema([f.with_nullable(True) for f in table.schema], metadata=table.schema.metadata))

    def batches(self, columns: Sequence[str] | None = None, batch_size: int = 65_536) -> Iterator[pa.RecordBatch]:
        """The index as record batches, in order: memory stays flat at any index size."""
        yield from self.dataset().to_batches(
            columns=list(columns) if columns is not None else None, batch_size=batch_size
        )

    def connect(self, view: str = "idx", series_types: bool = False, memory_limit: str | None = None):
        """A DuckDB connection with the index as the view `view`. With `series_types`,
        the view carries ``series_type``, ``series_confidence`` and ``series_model``
        (null where no classifier has run). With `memory_limit`, DuckDB holds at most that
        and spills the rest into the index folder (what it spills is index rows: it stays
        where the index is, never in the working directory)."""
        import duckdb

        self.require()
        con = duckdb.connect()
        if memory_limit:
            con.execute(f"SET memory_limit = '{memory_limit}'")
            con.execute(f"SET temp_directory = {sql_string(self.root / SPILL_DIR)}")
        source = f"read_parquet({sql_string(self._file)})"
        if not series_types:
            con.execute(f"CREATE VIEW {view} AS SELECT * FROM {source}")
        elif self.has_series_types():
            con.execute(
                f"CREATE VIEW {view} AS SELECT i.*, t.series_type, t.confidence AS series_confidence, "
                f"t.model_version AS series_model FROM {source} i "
                f"LEFT JOIN read_parquet({sql_string(self.root / SERIES_TYPES_FILE)}) t USING (SeriesInstanceUID)"
            )
        else:
            con.execute(
                f"CREATE VIEW {view} AS SELECT *, NULL AS series_type, NULL AS series_confidence, "
                f"NULL AS series_model FROM {source}"
            )
        return con

    def grouped_batches(
        self, columns: Sequence[str], key: str, where: str = "TRUE", rows: int = GROUPED_BATCH_ROWS
    ) -> Iterator[pa.Table]:
        """Rows of `columns` (`key` among them) where `where` holds, ordered by `key`, as
        tables of about `rows` rows that each hold whole groups: no group is split between
        two tables. Memory stays flat at any index size (DuckDB sorts within
        :data:`GROUPED_MEMORY` and spills the rest); a table grows past `rows` only to
        finish a group."""
        select = ", ".join(f'"{c}"' for c in dict.fromkeys([key, *columns]))
        con = self.connect("idx", memory_limit=GROUPED_MEMORY)
        try:
            reader = con.sql(f'SELECT {select} FROM idx WHERE {where} ORDER BY "{key}"').to_arrow_reader(rows)
            pending: list[pa.RecordBatch] = []
            pending_rows = 0
            for batch in reader:
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
        finally:
            con.close()

    # --- what other stages keep beside the index -----------------------------------------

    def has_series_types(self) -> bool:
        return (self.root / SERIES_TYPES_FILE).exists()

    @contextlib.contextmanager
    def series_types_writer(self, schema: pa.Schema) -> Iterator[pq.ParquetWriter]:
        """A Parquet writer for the series types beside the index: written in pieces, and
        in place (replacing the previous ones) only when the block completes."""
        with atomic_path(self.root / SERIES_TYPES_FILE) as partial, pq.ParquetWriter(partial, schema) as writer:
            yield writer


def open_index(index_dir: str | os.PathLike[str]) -> IndexStore:
    """The index in `index_dir`; :class:`IndexNotFoundError` when there is none."""
    return IndexStore(index_dir).require()


def read_index(index_dir: str | os.PathLike[str], columns: Sequence[str] | None = None) -> pa.Table:
    """The index in `index_dir` as one table (:meth:`IndexStore.read`)."""
    return open_index(index_dir).read(columns)


__all__ = ["INDEX_FILE", "ROW_ID", "STAGING_DIR", "IndexStore", "open_index", "read_index", "sql_string"]

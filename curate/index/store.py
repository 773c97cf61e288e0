"""The index on disk: the names of its files, and the one way to open it for reading.

Every stage that reads an index goes through :class:`IndexStore`: a DuckDB connection
with the index as a view, an Arrow dataset, a whole table, record batches, a digest.
No path to a file inside the index leaves this module, so the on-disk layout can change
behind it. The scan that writes the index (:mod:`curate.index.build`) takes its names
from here too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from curate.errors import IndexNotFoundError
from curate.files import atomic_path, sha256_of
from curate.index.derive import DERIVE_VERSION
from curate.index.schema import ROW_ID

INDEX_FILE = "index.parquet"
STAGING_DIR = ".staging"
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
        (null where no classifier has run)."""
        import duckdb

        self.require()
        con = duckdb.connect()
        if memory_limit:
            con.execute(f"SET memory_limit = '{memory_limit}'")
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

    # --- what other stages keep beside the index -----------------------------------------

    def has_series_types(self) -> bool:
        return (self.root / SERIES_TYPES_FILE).exists()

    def read_series_types(self) -> pa.Table:
        return pq.read_table(self.root / SERIES_TYPES_FILE)

    def write_series_types(self, table: pa.Table) -> None:
        """Replace the series types beside the index (whole, by a rename)."""
        with atomic_path(self.root / SERIES_TYPES_FILE) as partial:
            pq.write_table(table, partial)


def open_index(index_dir: str | os.PathLike[str]) -> IndexStore:
    """The index in `index_dir`; :class:`IndexNotFoundError` when there is none."""
    return IndexStore(index_dir).require()


def read_index(index_dir: str | os.PathLike[str], columns: Sequence[str] | None = None) -> pa.Table:
    """The index in `index_dir` as one table (:meth:`IndexStore.read`)."""
    return open_index(index_dir).read(columns)


__all__ = ["INDEX_FILE", "ROW_ID", "STAGING_DIR", "IndexStore", "open_index", "read_index", "sql_string"]

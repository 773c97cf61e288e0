"""SQL over the index, with DuckDB reading the Parquet file in place.

The index is the view ``idx``, with what `curate classify` wrote beside it (``series_type``,
``series_confidence``, ``series_model``, ``instance_type``, ``instance_confidence``;
null where it has not run)::

    SELECT Modality, body_part, count(*) AS images FROM idx WHERE status = 'ok' GROUP BY ALL

Results come back as an Arrow table, print as a table, or are written to CSV or Parquet
(chosen by the file's extension) under a temporary name, then renamed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa

from curate.errors import ConfigError, QueryError
from curate.files import atomic_path
from curate.index.store import open_index, sql_string

VIEW = "idx"
FORMATS = {".csv": "FORMAT csv, HEADER true", ".parquet": "FORMAT parquet, COMPRESSION zstd"}


def _connect(index_dir: str | os.PathLike[str]):
    return open_index(index_dir).connect(VIEW, series_types=True)


def _run(con, sql: str):
    import duckdb

    try:
        return con.sql(sql)
    except duckdb.Error as err:
        raise QueryError(str(err).strip()) from None


def query(index_dir: str | os.PathLike[str], sql: str) -> pa.Table:
    """Run `sql` over the index of `index_dir`; the result as an Arrow table."""
    con = _connect(index_dir)
    try:
        relation = _run(con, sql)
        return relation.to_arrow_table() if relation is not None else pa.table({})
    finally:
        con.close()


def show(index_dir: str | os.PathLike[str], sql: str, max_rows: int = 40) -> str:
    """The result of `sql` as a text table (at most `max_rows` rows shown)."""
    con = _connect(index_dir)
    try:
        relation = _run(con, sql)
        if relation is None:
            return ""
        total = relation.shape[0]
        text = str(relation.limit(max_rows))
        if total > max_rows:
            text += f"\n({total:,} rows, {max_rows} shown; out=FILE.csv or .parquet writes them all)"
        return text
    finally:
        con.close()


def write(index_dir: str | os.PathLike[str], sql: str, out: str | os.PathLike[str]) -> int:
    """Write the result of `sql` to `out` (.csv or .parquet); returns the row count."""
    out = Path(out)
    options = FORMATS.get(out.suffix.lower())
    if options is None:
        raise ConfigError(f"out={out}: the file must end in .csv or .parquet")
    con = _connect(index_dir)
    try:
        relation = _run(con, sql)
        if relation is None:
            raise QueryError("the statement returns no rows to write")
        rows = relation.shape[0]
        with atomic_path(out) as partial:
            try:
                relation.query("result", f"COPY result TO {sql_string(partial)} ({options})")
            except Exception as err:  # DuckDB errors while writing
                raise QueryError(str(err).strip()) from None
        return rows
    finally:
        con.close()

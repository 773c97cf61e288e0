"""Rows that describe instances on a PACS rather than files: ``status = 'remote'``.

A metadata pull stages them as parts of the index's own columns; this commits them as
one generation, like a scan's, keyed by their source URI (which stands in for the
path). A remote row of an instance the index already holds as a file is dropped, and a
scan that finds the file later retires the remote row (see :mod:`curate.index.commit`):
the same instance is the same ``SOPInstanceUID``, and it has one current row.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from curate.errors import ConfigError
from curate.index.build import index_signature
from curate.index.commit import commit_scan
from curate.index.manifest import Manifest, no_room_is_an_error, remove_unlisted, writer_lock
from curate.index.store import IndexStore, limit_memory, sql_list, sql_string
from curate.index.tags import ColumnSpec

REMOTE = "remote"


def check_signature(index_dir: Path, columns: Sequence[ColumnSpec]) -> None:
    """Refuse rows built with other columns than the index's (its scan's tag set)."""
    current = IndexStore(index_dir).manifest()
    if current is not None and current.signature != index_signature(columns):
        raise ConfigError(
            "the index was built with another tag set or curate version: give the pull the same tags= and "
            "extra_tags= as the index's scan, or pull into a new index"
        )


def commit_remote_rows(
    index_dir: str | os.PathLike[str], staged: Sequence[Path], columns: Sequence[ColumnSpec], work: Path
) -> Manifest | None:
    """Add the rows of the `staged` parts to the index (a new one if there is none);
    returns the new manifest, or None when nothing changed."""
    index_dir = Path(index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(index_dir, 0o700)  # the index holds PHI
    work.mkdir(parents=True, exist_ok=True)
    signature = index_signature(columns)
    with writer_lock(index_dir), no_room_is_an_error(index_dir):
        check_signature(index_dir, columns)
        current = IndexStore(index_dir).manifest()
        remove_unlisted(index_dir, current)
        parts = _without_local_instances(index_dir, current, list(staged), work) if current else list(staged)
        return commit_scan(index_dir, signature, parts, None, current, current, work)


def _without_local_instances(index_dir: Path, current: Manifest, staged: list[Path], work: Path) -> list[Path]:
    """The staged parts less the rows of instances the index holds as files."""
    import duckdb

    store = IndexStore(index_dir)
    if not staged or "SOPInstanceUID" not in store.columns():
        return staged
    filtered = work / "filtered"
    shutil.rmtree(filtered, ignore_errors=True)
    filtered.mkdir(parents=True)
    con = duckdb.connect()
    limit_memory(con, work / "spill")
    try:
        local = f"SELECT SOPInstanceUID FROM ({store.rows_sql(current)}) WHERE status = 'ok'"
        con.execute(f"CREATE TEMP TABLE local AS {local}")
        out = []
        for number, part in enumerate(staged):
            target = filtered / f"part-{number:06d}.parquet"
            con.execute(
                f"COPY (SELECT * FROM read_parquet({sql_list([part])}) ANTI JOIN local USING (SOPInstanceUID)) "
                f"TO {sql_string(target)} (FORMAT parquet, COMPRESSION zstd)"
            )
            out.append(target)
        return out
    finally:
        con.close()

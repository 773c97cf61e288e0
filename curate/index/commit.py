"""One commit of a scan: the staged rows become a new generation of the index.

What a commit writes is in proportion to what the scan found, never to the index: the
fresh rows (new, changed and reappeared files), the rows of files that are gone (kept,
with ``status = 'vanished'``), and the list of rows those supersede. The rows already
in the index are read only for their keys (path, size, mtime, row id, part), and whole
only for files that vanished. DuckDB does the joins within a memory limit and spills the
rest into the staging folder; nothing is sorted but keys.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import pyarrow.parquet as pq

from curate.index.manifest import (
    PARTS_DIR,
    RETIRED_DIR,
    Manifest,
    Part,
    fsync_files,
    generation_name,
    write_manifest,
)
from curate.index.schema import ROW_ID, error_message
from curate.index.store import IndexStore, limit_memory, same_file, sql_list, sql_string

#: Rows per row group of a part; a part holds one staged part's rows (or a compacted
#: group of them).
ROW_GROUP_ROWS = 32_768
VANISHED_ERROR = error_message("vanished", "no longer under the scanned source")

#: Called with a step's name at every point a commit could be killed (tests kill there).
Checkpoint = Callable[[str], None]


def no_checkpoint(_: str) -> None:
    pass


def commit_scan(
    root: Path,
    signature: dict,
    staged: Sequence[Path],
    listing: Path | None,
    base: Manifest | None,
    ids_from: Manifest | None,
    work: Path,
    checkpoint: Checkpoint = no_checkpoint,
    sources: Sequence[str] = (),
) -> Manifest | None:
    """Write the next generation and make it live; returns the new manifest, or None when
    the scan found nothing to change.

    `base` is the index whose rows are kept (None: the index is rebuilt from the staged
    rows alone); `ids_from` the index whose row ids paths keep (a path keeps its id even
    through a rebuild); `listing` the files under the source now (None on a first scan,
    whose staged rows are the listing); `work` a private folder for what the commit
    spills (the scan's staging folder); `sources` the folders and files the listing
    walked (empty: all of the index), outside which no row becomes vanished."""
    import duckdb

    old = base if base is not None else ids_from
    store = IndexStore(root)
    generation = (old.generation if old is not None else 0) + 1
    name = generation_name(generation)
    con = duckdb.connect()
    limit_memory(con, work / "spill")
    con.execute("SET preserve_insertion_order = false")  # keeps the COPY streaming
    try:
        if listing is not None:
            con.execute(f"CREATE VIEW listing AS SELECT * FROM read_parquet({sql_string(listing)})")
        _current_keys(con, store, old)
        _newest_staged(con, staged, listing is not None, keep_current=base is not None)
        next_row_id = old.next_row_id if old is not None else 0
        con.execute(
            f"CREATE TEMP TABLE new_ids AS SELECT path, {next_row_id} - 1 + row_number() OVER (ORDER BY path) "
            f"AS {ROW_ID} FROM newest ANTI JOIN cur USING (path)"
        )
        added = con.execute("SELECT count(*) FROM new_ids").fetchall()[0][0]
        fresh = con.execute("SELECT count(*) FROM newest").fetchall()[0][0]
        gone = _gone(con, base, listing is not None, sources)
        if fresh == 0 and gone == 0 and base is not None:
            return None
        checkpoint("commit:start")
        parts = _write_parts(con, root, store, name, base, gone, work, bool(staged), checkpoint)
        retired = _write_retired(con, root, store, name, base, gone, checkpoint) if base is not None else []
        new_files = [root / p.file for p in parts + retired]
        content = _content(con, old.content if old is not None else "", generation, parts, retired, root)
    finally:
        con.close()
    fsync_files(new_files)
    manifest = Manifest(
        signature=signature,
        generation=generation,
        next_row_id=next_row_id + added,
        parts=(base.parts if base is not None else []) + parts,
        retired=(base.retired if base is not None else []) + retired,
        content=content,
    )
    checkpoint("commit:manifest")
    write_manifest(root, manifest)
    # A rebuild's previous parts stay until the next scan or compaction removes them, so
    # that a reader still reading the previous state is not cut off.
    checkpoint("commit:done")
    return manifest


def _content(con, previous: str, generation: int, parts: list[Part], retired: list[Part], root: Path) -> str:
    """The next content digest: the previous one, the generation, and the keys of the
    rows this commit adds and retires, in row-id order. Keys, not file bytes: the same
    history gives the same digest, however DuckDB's threads ordered the rows in a file."""
    h = hashlib.sha256(f"{previous}\x00{generation}".encode())
    queries = []
    if parts:
        files = sql_list(root / p.file for p in parts)
        queries.append(
            f"SELECT {ROW_ID}, path, file_size, epoch_us(mtime), status FROM read_parquet({files}) ORDER BY {ROW_ID}"
        )
    if retired:
        files = sql_list(root / r.file for r in retired)
        queries.append(f"SELECT {ROW_ID} FROM read_parquet({files}) ORDER BY {ROW_ID}")
    for query in queries:
        h.update(b"\x01")
        for batch in con.sql(query).to_arrow_reader(65_536):
            for row in zip(*(column.to_pylist() for column in batch.columns), strict=True):
                h.update(repr(row).encode())
    return h.hexdigest()


def _current_keys(con, store: IndexStore, old: Manifest | None) -> None:
    """The table ``cur``: the keys of the index's current rows, and the part of each."""
    if old is None or not old.parts:
        con.execute(
            f"CREATE TEMP TABLE cur (path VARCHAR, file_size BIGINT, mtime TIMESTAMPTZ, status VARCHAR, "
            f"{ROW_ID} BIGINT, part VARCHAR)"
        )
        return
    # A view, not a table: its key columns are read again where they are needed rather
    # than held, whatever the index's size.
    con.execute(
        f"CREATE TEMP VIEW cur AS SELECT path, file_size, mtime, status, {ROW_ID}, filename AS part "
        f"FROM ({store.rows_sql(old, filename=True)})"
    )


def _newest_staged(con, staged: Sequence[Path], listed: bool, keep_current: bool) -> None:
    """The view ``staged`` and the table ``newest`` (path, part) of the staged rows that
    go into the index: the newest staged row of each path (a file that changed again
    after a killed scan was staged twice), only if it matches the listing, and not if the
    index already holds that very row (a scan killed after its commit, rerun)."""
    if not staged:
        con.execute("CREATE TEMP TABLE newest (path VARCHAR, filename VARCHAR)")
        return
    filters = f" SEMI JOIN listing l ON {same_file('s', 'l')}" if listed else ""
    if keep_current:
        # A remote row has no size or time to tell a change by: a staged one is always new
        # (a pull stages only what its ledger says is not done).
        filters += (
            f" ANTI JOIN (SELECT * FROM cur WHERE status <> 'vanished') c ON {same_file('s', 'c')} "
            "AND s.status <> 'remote'"
        )
    con.execute(
        f"CREATE TEMP VIEW staged AS SELECT s.* FROM read_parquet({sql_list(staged)}, filename=true) s{filters}"
    )
    con.execute("CREATE TEMP TABLE newest AS SELECT path, max(filename) AS filename FROM staged GROUP BY path")


def _gone(con, base: Manifest | None, listed: bool, sources: Sequence[str]) -> int:
    """The table ``gone``: current rows of files under the scanned sources that are no
    longer listed (they become vanished). Rows of other sources in the same index (a
    pull's store beside an export) are kept, and so are rows pulled from a PACS: they
    describe no file."""
    if base is None or not listed:
        con.execute(f"CREATE TEMP TABLE gone AS SELECT path, {ROW_ID}, part FROM cur WHERE false")
    else:
        under = " OR ".join(
            f"path = {sql_string(root)} OR starts_with(path, {sql_string(root.rstrip('/') + '/')})" for root in sources
        )
        con.execute(
            f"CREATE TEMP TABLE gone AS SELECT path, {ROW_ID}, part FROM cur ANTI JOIN listing USING (path) "
            f"WHERE status NOT IN ('vanished', 'remote'){f' AND ({under})' if under else ''}"
        )
    return con.execute("SELECT count(*) FROM gone").fetchall()[0][0]


def _has_remote_rows(con) -> bool:
    """Whether the index holds rows pulled from a PACS (a scan of a staged part can supersede them)."""
    try:
        con.execute("SELECT 1 FROM staged LIMIT 0")
    except Exception:  # noqa: BLE001 - no staged view: nothing arrived
        return False
    return bool(con.execute("SELECT count(*) FROM cur WHERE status = 'remote'").fetchall()[0][0])


def _write_parts(
    con,
    root: Path,
    store: IndexStore,
    name: str,
    base: Manifest | None,
    gone: int,
    work: Path,
    has_staged: bool,
    checkpoint: Checkpoint,
) -> list[Part]:
    """The generation's parts under ``parts/<gen>``: the fresh rows of each staged part
    (joined to their row ids on that part's keys alone, so no join holds whole rows),
    then the rows of vanished files."""
    folder = root / PARTS_DIR / name
    partial = root / PARTS_DIR / f".{name}.partial"
    partial.mkdir(parents=True, exist_ok=True)
    # Each fresh row's id, written once, partitioned by the staged part that holds the
    # row: the join of a part to its ids then reads that part's ids alone.
    staged = [row[0] for row in con.execute("SELECT DISTINCT filename FROM newest ORDER BY 1").fetchall()]
    con.execute("CREATE TEMP TABLE staged_files (filename VARCHAR, part_no INTEGER)")
    if staged:
        con.executemany("INSERT INTO staged_files VALUES (?, ?)", [(f, i) for i, f in enumerate(staged)])
    assigned = work / "assigned"
    shutil.rmtree(assigned, ignore_errors=True)
    con.execute(
        f"COPY (SELECT n.path, f.part_no, coalesce(c.{ROW_ID}, x.{ROW_ID})::BIGINT AS {ROW_ID} FROM newest n "
        "JOIN staged_files f USING (filename) LEFT JOIN cur c USING (path) LEFT JOIN new_ids x USING (path)) "
        f"TO {sql_string(assigned)} (FORMAT parquet, PARTITION_BY (part_no))"
    )
    outputs = []
    for number, part in enumerate(staged):
        target = partial / f"{number:06d}.parquet"
        # Named one by one, not by a glob: the index folder's path may hold '[' or '*'.
        ids = sql_list(sorted((assigned / f"part_no={number}").glob("*.parquet")))
        con.execute(
            f"COPY (SELECT s.*, a.{ROW_ID} FROM read_parquet({sql_string(part)}) s "
            f"JOIN (SELECT path, {ROW_ID} FROM read_parquet({ids})) a USING (path)) "
            f"TO {sql_string(target)} (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {ROW_GROUP_ROWS})"
        )
        outputs.append(target)
        checkpoint("commit:part-written")
    if gone:
        holding = {row[0] for row in con.execute("SELECT DISTINCT part FROM gone").fetchall()}
        old_rows = store.rows_sql(replace(base, parts=[p for p in base.parts if p.file in holding]))
        target = partial / f"{len(staged):06d}.parquet"
        con.execute(
            f"COPY (SELECT * REPLACE ('vanished' AS status, {sql_string(VANISHED_ERROR)} AS error) "
            f"FROM ({old_rows}) SEMI JOIN gone USING (path)) "
            f"TO {sql_string(target)} (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {ROW_GROUP_ROWS})"
        )
        outputs.append(target)
    if not outputs and (base is None or not base.parts) and has_staged:
        # An index with no row still has its columns: one empty part holds them.
        target = partial / "000000.parquet"
        con.execute(
            f"COPY (SELECT * EXCLUDE (filename), NULL::BIGINT AS {ROW_ID} FROM staged LIMIT 0) "
            f"TO {sql_string(target)} (FORMAT parquet)"
        )
        outputs.append(target)
    checkpoint("commit:parts-written")
    os.replace(partial, folder)
    checkpoint("commit:parts-moved")
    parts = []
    for path in outputs:
        path = folder / path.name
        rows = pq.read_metadata(path).num_rows
        if rows == 0 and len(outputs) > 1:
            path.unlink()
            continue
        parts.append(Part(f"{PARTS_DIR}/{name}/{path.name}", rows))
    return parts


def _write_retired(
    con, root: Path, store: IndexStore, name: str, base: Manifest, gone: int, checkpoint: Checkpoint
) -> list[Part]:
    """The rows this generation supersedes: current rows of re-parsed or vanished files,
    and rows pulled from a PACS whose instance has now arrived as a file."""
    query = "SELECT c.part, c.row_id FROM cur c SEMI JOIN newest USING (path)"
    if gone:
        query += f" UNION ALL SELECT part, {ROW_ID} FROM gone"
    if _has_remote_rows(con) and "SOPInstanceUID" in store.columns():
        arrived = (
            "SELECT s.SOPInstanceUID FROM staged s JOIN newest n ON s.path = n.path AND s.filename = n.filename "
            "WHERE s.status = 'ok' AND s.SOPInstanceUID IS NOT NULL"
        )
        remote = f"SELECT SOPInstanceUID, {ROW_ID}, filename AS part FROM ({store.rows_sql(base, filename=True)}) "
        remote += "WHERE status = 'remote'"
        query += (
            f" UNION ALL SELECT r.part, r.{ROW_ID} FROM ({remote}) r SEMI JOIN ({arrived}) a USING (SOPInstanceUID)"
        )
    count = con.execute(f"SELECT count(*) FROM ({query})").fetchall()[0][0]
    if count == 0:
        return []
    target = root / RETIRED_DIR / f"{name}.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    con.execute(f"COPY ({query}) TO {sql_string(partial)} (FORMAT parquet, COMPRESSION zstd)")
    checkpoint("commit:retired-written")
    os.replace(partial, target)
    return [Part(f"{RETIRED_DIR}/{target.name}", count)]

"""Scanning (and the cluster classification uses) on Dask, where one machine is not enough.

The client lists the files; each Dask task parses one shard of them with the same
native scanner (``threads_per_task`` threads, so that native threads times Dask threads
stay within the cores) and writes its rows, derived columns included, as one staged
Parquet part. The parts are merged into the index exactly as a local scan's are, so
both backends give the same index. Workers must see the source files and the index
folder at the same paths (a shared filesystem).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from curate.index.derive import DeriveCounts
from curate.index.tags import ColumnSpec


@dataclass
class DaskOptions:
    #: Scheduler address (``tcp://host:8786``); None starts a local cluster.
    address: str | None = None
    #: Workers of the local cluster (ignored with an address).
    workers: int = 2
    #: Native parser threads in each task.
    threads_per_task: int = 1
    #: Files per task.
    shard_files: int = 5000


@contextlib.contextmanager
def dask_client(options: DaskOptions) -> Iterator:
    """A client of the cluster at ``options.address``, or of a local cluster of
    ``options.workers`` processes started (and stopped) for the block."""
    from dask.distributed import Client, LocalCluster

    cluster = None
    if options.address is None:
        cluster = LocalCluster(n_workers=options.workers, threads_per_worker=1, processes=True, dashboard_address=None)
    client = Client(options.address or cluster)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def scan_shard(paths: list[str], columns: list[ColumnSpec], threads: int, target: str) -> tuple[int, dict[str, int]]:
    """One task: parse `paths` and write them, with derived columns, to `target`.
    Returns the row count and the derived-column null counts."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from curate import _native
    from curate.files import atomic_path
    from curate.index.derive import add_derived_columns

    native = _native.open_scan(paths, [c.as_native() for c in columns], threads, _native.DEFAULT_BATCH_SIZE)
    table = pa.RecordBatchReader.from_stream(native).read_all()
    counts = DeriveCounts()
    table = add_derived_columns(table, counts)
    with atomic_path(target) as partial:
        pq.write_table(table, partial, compression="zstd")
    return table.num_rows, counts.nulled


def scan_into_parts(
    paths: list[str],
    staging: Path,
    first_part: int,
    columns: Sequence[ColumnSpec],
    options: DaskOptions,
    progress_bar: Callable,
    derive_counts: DeriveCounts,
    on_part: Callable[[int], None] | None,
) -> tuple[int, int]:
    """Parse `paths` on Dask into staged parts; returns (parts, rows) written."""
    if not paths:
        return 0, 0
    from dask.distributed import as_completed

    shards = [paths[i : i + options.shard_files] for i in range(0, len(paths), options.shard_files)]
    targets = [str(staging / f"part-{first_part + i:06d}.parquet") for i in range(len(shards))]
    written = rows = 0
    with dask_client(options) as client:
        futures = client.map(
            scan_shard,
            shards,
            [list(columns)] * len(shards),
            [options.threads_per_task] * len(shards),
            targets,
            pure=False,
        )
        with progress_bar(len(paths)) as bar:
            for future in as_completed(futures):
                shard_rows, nulled = future.result()
                rows += shard_rows
                written += 1
                for reason, count in nulled.items():
                    derive_counts.add(reason, count)
                bar.update(shard_rows)
                if on_part is not None:
                    on_part(first_part + written)
    return written, rows

"""Scanning (and the cluster classification, de-identification and the dataset build
use) on Dask, where one machine is not enough.

The client lists the files; each Dask task parses one shard of them with the same
native scanner (``threads_per_task`` threads, so that native threads times Dask threads
stay within the cores) and writes its rows, derived columns included, as one staged
Parquet part. The parts are merged into the index exactly as a local scan's are, so
both backends give the same index. Workers must see the source files and the index
folder at the same paths (a shared filesystem).
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
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


@contextlib.contextmanager
def task_executor(workers: int | None, dask: DaskOptions | None) -> Iterator[tuple[Executor, int]]:
    """Where a stage's files are handled, and how many at once: this machine's
    processes (`workers`, None: every core), or Dask tasks on the cluster's threads (an
    executor whose futures are :mod:`concurrent.futures` ones, so the driving loop is
    the same)."""
    if dask is None:
        processes = workers or os.cpu_count() or 1
        with ProcessPoolExecutor(max_workers=processes) as pool:
            yield pool, processes
        return
    with dask_client(dask) as client:
        executor = client.get_executor(pure=False)
        try:
            yield executor, sum(client.nthreads().values()) or 1
        finally:
            executor.shutdown(wait=True)


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


def shards_of(chunks: Iterable[list[str]], size: int) -> Iterator[list[str]]:
    """The paths of `chunks`, regrouped into lists of `size` (the last one shorter)."""
    shard: list[str] = []
    for chunk in chunks:
        for path in chunk:
            shard.append(path)
            if len(shard) == size:
                yield shard
                shard = []
    if shard:
        yield shard


def scan_into_parts(
    chunks: Iterable[list[str]],
    total: int,
    staging: Path,
    first_part: int,
    columns: Sequence[ColumnSpec],
    options: DaskOptions,
    progress_bar: Callable,
    derive_counts: DeriveCounts,
    on_part: Callable[[int], None] | None,
) -> tuple[int, int]:
    """Parse the `total` paths of `chunks` on Dask into staged parts; returns (parts,
    rows) written. Shards are sent as earlier ones finish, a few per worker at a time, so
    the client never holds the whole list of paths (nor a future for each shard)."""
    if not total:
        return 0, 0
    from dask.distributed import as_completed

    shards = enumerate(shards_of(chunks, options.shard_files))
    written = rows = 0
    with dask_client(options) as client, progress_bar(total) as bar:
        in_flight = max(2, 2 * len(client.nthreads()))
        pending = as_completed()
        specs = list(columns)

        def send(count: int) -> None:
            for i, shard in itertools.islice(shards, count):
                target = str(staging / f"part-{first_part + i:06d}.parquet")
                pending.add(client.submit(scan_shard, shard, specs, options.threads_per_task, target, pure=False))

        send(in_flight)
        for future in pending:
            shard_rows, nulled = future.result()
            rows += shard_rows
            written += 1
            for reason, count in nulled.items():
                derive_counts.add(reason, count)
            bar.update(shard_rows)
            if on_part is not None:
                on_part(first_part + written)
            send(1)
    return written, rows

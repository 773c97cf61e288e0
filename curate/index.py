"""Writing a scan to a Parquet index, with progress and a closing summary.

The index is written under a temporary name beside its final place and renamed when
complete, so a reader never sees a half-written index and a killed scan leaves the
previous index intact.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate.progress import progress_bar
from curate import _native
from curate.scan import PathsLike, open_scan

INDEX_FILE = "index.parquet"
#: Rows gathered before a Parquet row group is written: large enough for good
#: compression, small enough to keep memory flat.
ROW_GROUP_ROWS = 32_768


@dataclass
class ScanSummary:
    """What a scan found, in counts only (nothing identifying)."""

    files: int = 0
    by_status: Counter = field(default_factory=Counter)
    errors_by_kind: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    index_path: Path | None = None

    @property
    def rate(self) -> float:
        return self.files / self.seconds if self.seconds > 0 else 0.0

    def add(self, batch: pa.RecordBatch) -> None:
        self.files += batch.num_rows
        status = batch.column("status")
        for value, count in _value_counts(status):
            self.by_status[value] += count
        errors = pc.filter(batch.column("error"), pc.equal(status, "error"))
        kinds = pc.list_element(pc.split_pattern(errors, ":", max_splits=1), 0)
        for kind, count in _value_counts(kinds):
            self.errors_by_kind[kind] += count

    def format(self) -> str:
        """A short table for the terminal."""
        rows = [("files", f"{self.files:,}")]
        for status in ("ok", "not_dicom", "dicomdir", "error"):
            if self.by_status.get(status):
                rows.append((status, f"{self.by_status[status]:,}"))
        for kind, count in sorted(self.errors_by_kind.items(), key=lambda kv: (-kv[1], kv[0])):
            rows.append((f"  {kind}", f"{count:,}"))
        rows.append(("time", f"{self.seconds:.2f} s"))
        rows.append(("rate", f"{self.rate:,.0f} files/s"))
        width = max(len(k) for k, _ in rows)
        number_width = max(len(v) for _, v in rows)
        lines = [f"{k.ljust(width)}  {v.rjust(number_width)}" for k, v in rows]
        if self.index_path is not None:
            lines.append(f"{'index'.ljust(width)}  {self.index_path}")
        return "\n".join(lines)


def _value_counts(array: pa.Array) -> list[tuple[str, int]]:
    counts = pc.value_counts(array)
    return list(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist()))


def build_index(
    source: PathsLike,
    index_dir: str | os.PathLike[str],
    tags: Sequence[str] | None = None,
    extra_tags: Sequence[str] = (),
    threads: int | None = None,
    batch_size: int = _native.DEFAULT_BATCH_SIZE,
    progress: bool = True,
) -> ScanSummary:
    """Scan `source` and write ``<index_dir>/index.parquet``; return the summary."""
    sources = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    missing = [os.fspath(s) for s in sources if not os.path.exists(s)]
    if missing:
        raise FileNotFoundError(f"source does not exist: {', '.join(missing)}")
    index_dir = Path(index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    final = index_dir / INDEX_FILE
    partial = index_dir / f".{INDEX_FILE}.{os.getpid()}.partial"

    started = time.perf_counter()
    handle = open_scan(sources, tags, threads, batch_size, extra_tags)
    summary = ScanSummary(index_path=final)
    reader = handle.reader()
    try:
        with pq.ParquetWriter(partial, reader.schema, compression="zstd") as writer, progress_bar(
            None, "scan", enabled=progress
        ) as bar:
            pending: list[pa.RecordBatch] = []
            pending_rows = 0
            for batch in reader:
                summary.add(batch)
                # The walk runs ahead of the parsers: the total grows until it is over.
                walked = handle.walked  # read first: once true, the total read next is final
                bar.set_total(handle.total, final=walked)
                bar.update(batch.num_rows)
                pending.append(batch)
                pending_rows += batch.num_rows
                if pending_rows >= ROW_GROUP_ROWS:
                    writer.write_table(pa.Table.from_batches(pending))
                    pending, pending_rows = [], 0
            if pending:
                writer.write_table(pa.Table.from_batches(pending))
        os.replace(partial, final)
    finally:
        partial.unlink(missing_ok=True)
    summary.seconds = time.perf_counter() - started
    return summary


def read_index(index_dir: str | os.PathLike[str]) -> pa.Table:
    """Load the index written by :func:`build_index`."""
    return pq.read_table(Path(index_dir) / INDEX_FILE)

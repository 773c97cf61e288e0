"""Compaction: drop the retired rows and merge small parts, changing no current row.

A scan only appends; over many rescans the index collects parts and superseded rows.
Compaction rewrites the parts that hold retired rows, and runs of small parts, into
parts of about :data:`TARGET_ROWS` rows each, and leaves every other part as it is. The
result has no retired list: its parts are plain Parquet that any reader reads.

It is resumable: each new part is written under ``.compacting/`` and renamed when
complete, beside a note of the index generation it compacts. A compaction that is
killed and run again on the same generation keeps the parts already written. The new
parts become live in one rename of the manifest, and the content digest is kept (the
rows are the same, so a dataset built from the index keeps its version).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from curate.files import partial_name
from curate.index.commit import ROW_GROUP_ROWS, Checkpoint, no_checkpoint
from curate.index.manifest import (
    PARTS_DIR,
    Manifest,
    Part,
    fsync_files,
    generation_name,
    log_run,
    no_room_is_an_error,
    remove_unlisted,
    write_manifest,
    writer_lock,
)
from curate.index.store import IndexStore
from curate.progress import progress_bar
from curate.tracking import StageResult

WORK_DIR = ".compacting"
#: Rows of a compacted part; a part with a quarter of it (a whole staged part of a scan)
#: and no retired row is kept as it is.
TARGET_ROWS = 4 * ROW_GROUP_ROWS


@dataclass
class CompactSummary(StageResult):
    """What a compaction did, in counts only."""

    parts_before: int = 0
    parts_after: int = 0
    parts_rewritten: int = 0
    retired_dropped: int = 0
    rows: int = 0
    resumed: int = 0
    seconds: float = 0.0

    def metrics(self) -> dict[str, float]:
        return {
            "parts_before": self.parts_before,
            "parts_after": self.parts_after,
            "retired_dropped": self.retired_dropped,
            "rows": self.rows,
            "seconds": self.seconds,
        }

    def format(self) -> str:
        if self.parts_rewritten == 0:
            return f"nothing to compact: {self.parts_before:,} parts, no retired row ({self.rows:,} rows)"
        lines = [
            f"parts           {self.parts_before:,} -> {self.parts_after:,} ({self.parts_rewritten:,} rewritten)",
            f"retired rows    {self.retired_dropped:,} dropped",
            f"current rows    {self.rows:,} (unchanged)",
            f"time            {self.seconds:.2f} s",
        ]
        if self.resumed:
            lines.append(f"(resumed: {self.resumed:,} parts were already written)")
        return "\n".join(lines)


def plan_groups(manifest: Manifest, retired_parts: set[str], target_rows: int = TARGET_ROWS) -> list[list[Part]]:
    """The parts, in order, in groups of about `target_rows` rows: a group of one clean,
    large part is kept as it is; every other group is rewritten into one part."""
    groups: list[list[Part]] = []
    pending: list[Part] = []
    pending_rows = 0
    for part in manifest.parts:
        if part.file not in retired_parts and part.rows >= target_rows // 4:
            if pending:
                groups.append(pending)
                pending, pending_rows = [], 0
            groups.append([part])
            continue
        pending.append(part)
        pending_rows += part.rows
        if pending_rows >= target_rows:
            groups.append(pending)
            pending, pending_rows = [], 0
    if pending:
        groups.append(pending)
    return groups


def compact_index(
    index_dir: str | os.PathLike[str],
    progress: bool = True,
    checkpoint: Checkpoint | None = None,
    target_rows: int = TARGET_ROWS,
) -> CompactSummary:
    """Compact the index in `index_dir` (see the module) into parts of about
    `target_rows` rows; returns what was done. `checkpoint` is called with the name of
    each step."""
    checkpoint = checkpoint or no_checkpoint
    root = Path(index_dir)
    store = IndexStore(root)
    started = time.perf_counter()
    with writer_lock(root), no_room_is_an_error(root):
        manifest = store.require()
        remove_unlisted(root, manifest)
        retired = store.retired_ids(manifest)  # read once: few, and needed by every group
        groups = plan_groups(manifest, set(retired), target_rows)
        rewrite = [i for i, g in enumerate(groups) if len(g) > 1 or g[0].file in retired]
        summary = CompactSummary(parts_before=len(manifest.parts), rows=manifest.rows)
        if not rewrite:
            summary.parts_after = len(manifest.parts)
            shutil.rmtree(root / WORK_DIR, ignore_errors=True)
            return summary
        work = _work_dir(root, manifest, [[p.file for p in groups[i]] for i in rewrite])
        schema = store.schema()
        with progress_bar(len(rewrite), "compact", enabled=progress) as bar:
            for i in rewrite:
                if (work / f"{i:06d}.done").exists():
                    summary.resumed += 1
                else:
                    _rewrite_group(store, replace(manifest, parts=groups[i]), retired, schema, work, i, target_rows)
                    checkpoint("compact:part")
                bar.update(1)
        compacted = _publish(root, manifest, groups, set(rewrite), work, checkpoint)
        summary.parts_after = len(compacted.parts)
        summary.parts_rewritten = sum(len(groups[i]) for i in rewrite)
        summary.retired_dropped = sum(r.rows for r in manifest.retired)
        summary.seconds = time.perf_counter() - started
        summary.run_entry = log_run(root, "compact", {"target_rows": target_rows}, summary.metrics(), manifest)
    return summary


class _RollingWriter:
    """Parquet files ``<stem>-000.parquet``, ``-001``, ... of at most `rows` rows each,
    each written under a temporary name and renamed when full (or when the block ends
    without an error)."""

    def __init__(self, stem: Path, schema: pa.Schema, rows: int):
        self.stem, self.schema, self.rows = stem, schema, rows
        self.files: list[Path] = []
        self._out = self._partial = None
        self._written = 0

    def __enter__(self) -> _RollingWriter:
        return self

    def write(self, batch: pa.RecordBatch) -> None:
        while batch.num_rows:
            if self._out is None or self._written >= self.rows:
                self._finish()
                path = self.stem.with_name(f"{self.stem.name}-{len(self.files):03d}.parquet")
                self.files.append(path)
                self._partial = partial_name(path)
                self._out = pq.ParquetWriter(self._partial, self.schema, compression="zstd")
                self._written = 0
            room = self.rows - self._written
            head, batch = batch.slice(0, room), batch.slice(room)
            self._out.write_batch(head.cast(self.schema), row_group_size=ROW_GROUP_ROWS)
            self._written += head.num_rows

    def _finish(self) -> None:
        if self._out is not None:
            self._out.close()
            os.replace(self._partial, self.files[-1])
            self._out = None

    def __exit__(self, kind, value, trace) -> None:
        if kind is None:
            self._finish()
        elif self._out is not None:
            self._out.close()
            self._partial.unlink(missing_ok=True)


def _rewrite_group(store: IndexStore, group: Manifest, retired, schema, work: Path, i: int, target_rows: int) -> None:
    """The current rows of a group's parts, in files of at most `target_rows` rows, then
    a note that the group is done. Arrow, a batch at a time: a DuckDB join of whole rows
    could hold a group's rows to drop a few of them."""
    for stale in work.glob(f"{i:06d}-*.parquet"):
        stale.unlink()  # the files of a group a killed compaction had not finished
    with _RollingWriter(work / f"{i:06d}", schema, target_rows) as out:
        for batch in store.batches(batch_size=ROW_GROUP_ROWS, manifest=group, retired=retired):
            out.write(batch)
    fsync_files(out.files)
    (work / f"{i:06d}.done").write_text(json.dumps([p.name for p in out.files]))


def _work_dir(root: Path, manifest: Manifest, plan: list[list[str]]) -> Path:
    """The folder of compacted parts, emptied unless it holds the work of this very
    compaction (the same generation, grouped the same way: a killed run's, to resume)."""
    work = root / WORK_DIR
    note = work / "generation.json"
    expected = {"generation": manifest.generation, "content": manifest.content, "groups": plan}
    try:
        same = json.loads(note.read_text()) == expected
    except (OSError, ValueError):
        same = False
    if not same:
        shutil.rmtree(work, ignore_errors=True)
    work.mkdir(mode=0o700, exist_ok=True)
    for entry in work.iterdir():
        if entry.name.startswith("."):
            entry.unlink()  # a part that was being written when the compaction was killed
    note.write_text(json.dumps(expected))
    return work


def _publish(
    root: Path, manifest: Manifest, groups: list[list[Part]], rewritten: set[int], work: Path, checkpoint: Checkpoint
) -> Manifest:
    """Move the compacted parts into the index and make them live."""
    generation = manifest.generation + 1
    name = generation_name(generation)
    outputs = {i: json.loads((work / f"{i:06d}.done").read_text()) for i in rewritten}
    for marker in [work / "generation.json", *(work / f"{i:06d}.done" for i in rewritten)]:
        marker.unlink()
    folder = root / PARTS_DIR / name
    os.replace(work, folder)
    checkpoint("compact:moved")
    parts: list[Part] = []
    for i, group in enumerate(groups):
        if i not in rewritten:
            parts.extend(group)
            continue
        for file_name in outputs[i]:
            file = f"{PARTS_DIR}/{name}/{file_name}"
            rows = pq.read_metadata(root / file).num_rows
            if rows:
                parts.append(Part(file, rows))
            else:
                (root / file).unlink()
    compacted = Manifest(
        signature=manifest.signature,
        generation=generation,
        next_row_id=manifest.next_row_id,
        parts=parts,
        retired=[],
        content=manifest.content,
    )
    checkpoint("compact:manifest")
    write_manifest(root, compacted)
    checkpoint("compact:done")
    # Reclaiming the space is the point: the replaced parts go now. A reader that has a
    # replaced part open keeps reading it; one opened before the compaction that opens a
    # part later finds it gone, and must be opened again.
    remove_unlisted(root, compacted)
    return compacted

"""A fixed history of an archive, for the crash tests of the index layout: a first scan,
changes (added, changed, removed files), a rescan, then a compaction.

Run as a script, it kills itself (SIGKILL) at the N-th step it reaches: every staged
part and every named step of a commit or a compaction counts. Every file it writes is
a copy (with its modification time) of a file prepared beforehand, so that two runs see
the same bytes.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from curate.index import build_index
from curate.index.compact import compact_index

SCAN = dict(progress=False, threads=1, batch_size=4, part_rows=8)
COMPACT_ROWS = 24


def mutate(src: Path, pool: Path) -> None:
    """Bring `src` to its second state: every step can be done twice."""
    for kind in ("added", "changed"):
        for path in sorted((pool / kind).rglob("*.dcm")):
            target = src / path.relative_to(pool / kind)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    for line in (pool / "removed.txt").read_text().split():
        (src / line).unlink(missing_ok=True)


def run(src: Path, idx: Path, pool: Path, step: Callable[[str], None]) -> None:
    build_index(src, idx, on_part=lambda _: step("part"), checkpoint=step, **SCAN)
    mutate(src, pool)
    build_index(src, idx, on_part=lambda _: step("part"), checkpoint=step, **SCAN)
    compact_index(idx, progress=False, checkpoint=step, target_rows=COMPACT_ROWS)


class Counter:
    """Counts the steps; kills the process at step `kill_at` (0: never)."""

    def __init__(self, kill_at: int = 0):
        self.kill_at, self.seen, self.names = kill_at, 0, []

    def __call__(self, name: str) -> None:
        self.seen += 1
        self.names.append(name)
        if self.seen == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    run(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), Counter(int(sys.argv[4])))

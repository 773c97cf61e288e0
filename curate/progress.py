"""Progress bars for long work: count, rate and ETA on stderr."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from collections.abc import Iterator

from tqdm import tqdm


@contextmanager
def progress_bar(total: int, what: str, enabled: bool = True, unit: str = "file") -> Iterator[tqdm]:
    """A tqdm bar showing files/s and ETA; silent when disabled or when stderr is not a terminal."""
    bar = tqdm(
        total=total,
        desc=what,
        unit=unit,
        unit_scale=True,
        smoothing=0.1,
        dynamic_ncols=True,
        file=sys.stderr,
        disable=True if not enabled else None,  # None: only on a terminal
    )
    try:
        yield bar
    finally:
        bar.close()

"""Progress bars for long work: count, rate and ETA on stderr."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from tqdm import tqdm


class ProgressBar(tqdm):
    """A tqdm bar whose total may grow while the work is being found (a walk that runs
    ahead of the parsing); until the total is final the description says so."""

    def set_total(self, total: int, final: bool) -> None:
        if self.disable:
            return
        if total != self.total or final != getattr(self, "_final", False):
            self._final = final
            self.total = total
            base = self.desc.removesuffix(" (still walking)")
            self.set_description_str(base if final else f"{base} (still walking)", refresh=False)
            self.refresh()


@contextmanager
def progress_bar(total: int | None, what: str, enabled: bool = True, unit: str = "file") -> Iterator[ProgressBar]:
    """A bar showing files/s and ETA; silent when disabled or when stderr is not a terminal."""
    bar = ProgressBar(
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

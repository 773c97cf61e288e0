"""What de-identification runs did to their stores, read from each store's run log.

`curate deid` appends one entry per run to the run log of the folder it wrote (counts
and digests only, see :mod:`curate.runlog`). The report reads those entries back, so it
can say how many files were written, redacted and quarantined, and why, without opening
a de-identified file. Stores are named by their place in the list (``store 1``), never
by their path: folders are often named after patients.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from curate.errors import SourceNotFoundError
from curate.runlog import RunLog

#: The counts a run's row shows, in the order shown (run log count name, label).
OUTCOMES = (
    ("files", "files"),
    ("written", "written"),
    ("already_done", "already written"),
    ("redacted", "redacted"),
    ("quarantined", "quarantined"),
    ("withheld", "withheld by a check"),
    ("failed", "failed"),
    ("verification_leaks", "leaks found"),
)
#: Runs shown per store (the most recent); the run log holds them all.
RUNS_SHOWN = 20


def deid_runs(stores: Iterable[str | os.PathLike[str]]) -> list[dict]:
    """One entry per store: its de-identification runs (time and counts, oldest first)
    and, for its last run, the quarantined and withheld files by reason."""
    found = []
    for number, store in enumerate(stores, 1):
        log = RunLog(store)
        if not Path(store).is_dir() or not log.exists():
            raise SourceNotFoundError(f"deid: no de-identified store (a folder with a run log) at {store}")
        runs = [_run(entry) for _, entry, _ in log.entries() if entry is not None and entry["stage"] == "deid"]
        last = runs[-1] if runs else None
        found.append(
            {
                "store": f"store {number}",
                "runs": runs[-RUNS_SHOWN:],
                "runs_in_log": len(runs),
                "last_quarantined_by_reason": last["quarantined_by_reason"] if last else {},
                "last_withheld_by_reason": last["withheld_by_reason"] if last else {},
            }
        )
    return found


def _run(entry: dict) -> dict:
    counts = entry["counts"]
    run = {"time": str(entry.get("time", "")), "seq": entry["seq"]}
    run.update({name: _count(counts.get(name)) for name, _ in OUTCOMES})
    run["quarantined_by_reason"] = _by_reason(counts, "quarantined.")
    run["withheld_by_reason"] = _by_reason(counts, "withheld.")
    return run


def _by_reason(counts: dict, prefix: str) -> dict[str, int]:
    reasons = {k.removeprefix(prefix).replace("_", " "): _count(v) for k, v in counts.items() if k.startswith(prefix)}
    return dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])))


def _count(value) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0

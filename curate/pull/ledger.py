"""The pull's ledger: what was asked for, what is done, what failed and why.

One SQLite file per index (``<index>/pull/ledger.sqlite``), owner-only: it holds UIDs.
Each series (of a study: a hostile or broken PACS can give two studies one series UID)
has one row per source and depth (``queued``, ``done`` or ``failed``, with
the PACS's count of its instances, the count fetched, attempts and the last reason);
each study is marked once all its series are queued, so that a resumed pull does not
ask for the series of a finished study again. Every change is committed at once: a
killed pull resumes from the last finished series, and fetches nothing twice.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path

QUEUED, DONE, FAILED = "queued", "done", "failed"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS series (
    source TEXT NOT NULL, depth TEXT NOT NULL, study TEXT NOT NULL, series TEXT NOT NULL,
    state TEXT NOT NULL, expected INTEGER, got INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0, reason TEXT, updated REAL NOT NULL,
    PRIMARY KEY (source, depth, study, series)
);
CREATE TABLE IF NOT EXISTS studies (
    source TEXT NOT NULL, depth TEXT NOT NULL, study TEXT NOT NULL, state TEXT NOT NULL, instances INTEGER,
    updated REAL NOT NULL, PRIMARY KEY (source, depth, study)
);
"""


class Ledger:
    def __init__(self, path: str | os.PathLike[str], source: str, depth: str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(self.path.parent, 0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)  # owner-only before the first byte
        os.close(fd)
        os.chmod(self.path, 0o600)
        self.source, self.depth = source, depth
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _run(self, sql: str, args: Iterable = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, tuple(args)).fetchall()

    # --- studies ---------------------------------------------------------------------------

    def study_done(self, study: str, instances: int | None = None) -> bool:
        """Whether the study was finished, and the PACS holds no more instances of it now
        than then (`instances`: its count of related instances, when it answers one)."""
        rows = self._run(
            "SELECT instances FROM studies WHERE source=? AND depth=? AND study=? AND state=?",
            (self.source, self.depth, study, DONE),
        )
        if not rows:
            return False
        return instances is None or rows[0][0] is None or rows[0][0] >= instances

    def finish_study(self, study: str, instances: int | None) -> None:
        self._run(
            "INSERT OR REPLACE INTO studies VALUES (?, ?, ?, ?, ?, ?)",
            (self.source, self.depth, study, DONE, instances, time.time()),
        )

    # --- series ----------------------------------------------------------------------------

    def queue(self, study: str, series: str, expected: int | None) -> str:
        """Add a series unless it is there; returns its state."""
        self._run(
            "INSERT OR IGNORE INTO series (source, depth, study, series, state, expected, updated) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (self.source, self.depth, study, series, QUEUED, expected, time.time()),
        )
        if expected is not None:  # the PACS may hold more now than at the last pull
            self._run(
                "UPDATE series SET expected=?, state=CASE WHEN state=? AND got<? THEN ? ELSE state END "
                "WHERE source=? AND depth=? AND study=? AND series=?",
                (expected, DONE, expected, QUEUED, self.source, self.depth, study, series),
            )
        return self.state(study, series)

    def state(self, study: str, series: str) -> str | None:
        rows = self._run(
            "SELECT state FROM series WHERE source=? AND depth=? AND study=? AND series=?",
            (self.source, self.depth, study, series),
        )
        return rows[0][0] if rows else None

    def attempt(self, study: str, series: str) -> None:
        self._run(
            "UPDATE series SET attempts=attempts+1, updated=? WHERE source=? AND depth=? AND study=? AND series=?",
            (time.time(), self.source, self.depth, study, series),
        )

    def done(self, study: str, series: str, got: int) -> None:
        self._set(study, series, DONE, got, None)

    def failed(self, study: str, series: str, got: int, reason: str) -> None:
        self._set(study, series, FAILED, got, reason)

    def _set(self, study: str, series: str, state: str, got: int, reason: str | None) -> None:
        self._run(
            "UPDATE series SET state=?, got=?, reason=?, updated=? WHERE source=? AND depth=? AND study=? AND series=?",
            (state, got, reason, time.time(), self.source, self.depth, study, series),
        )

    def counts(self) -> dict[str, int]:
        rows = self._run(
            "SELECT state, count(*) FROM series WHERE source=? AND depth=? GROUP BY state", (self.source, self.depth)
        )
        return {state: n for state, n in rows}

    def failures(self, limit: int = 20) -> list[tuple[str, int]]:
        """The most common failure reasons (no UIDs: the summary prints these)."""
        return self._run(
            "SELECT reason, count(*) FROM series WHERE source=? AND depth=? AND state=? GROUP BY reason "
            "ORDER BY count(*) DESC LIMIT ?",
            (self.source, self.depth, FAILED, limit),
        )

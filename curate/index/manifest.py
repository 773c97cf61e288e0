"""The index's manifest: which Parquet parts hold its rows, and which of their rows are
retired.

The index grows by appending. Each commit (a scan that found something new, changed or
gone; a compaction) is one *generation*: a folder of new parts under ``parts/`` and, for
a scan, one file under ``retired/`` naming the rows those parts supersede, as
(``part``, ``row_id``) pairs. Nothing already written is rewritten. The manifest is the
one file that says which parts and retired lists are live; it is replaced whole, by a
rename, and only after everything it names is on disk. A reader that opened the
previous manifest keeps reading the previous complete state; a commit that fails or is
killed leaves files that no manifest names, removed by the next one.

The current rows are the rows of the live parts, less the retired ones: exactly one per
file. A compacted index has no retired list, and its parts are plain Parquet.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from curate.errors import IndexBusyError
from curate.files import write_atomic

MANIFEST_FILE = "manifest.json"
PARTS_DIR = "parts"
RETIRED_DIR = "retired"
#: Bumped when the index layout changes. Format 4 (one sorted ``index.parquet``) is
#: converted in place by the next scan; older ones are rebuilt.
INDEX_FORMAT = 5
#: The single file of a format-4 index.
LEGACY_INDEX_FILE = "index.parquet"


@dataclass(frozen=True)
class Part:
    """One Parquet file of rows: its path under the index folder, and its row count."""

    file: str
    rows: int


@dataclass
class Manifest:
    """The live state of an index (what ``manifest.json`` holds)."""

    signature: dict
    generation: int = 0
    next_row_id: int = 0
    parts: list[Part] = field(default_factory=list)
    retired: list[Part] = field(default_factory=list)
    #: A hash chained over every commit that changed a row: a compaction keeps it, so a
    #: dataset built from the index before and after one has the same version.
    content: str = ""
    format: int = INDEX_FORMAT

    @property
    def rows(self) -> int:
        """Current rows: every row of the parts, less the retired ones."""
        return sum(p.rows for p in self.parts) - sum(r.rows for r in self.retired)

    @property
    def stored_rows(self) -> int:
        return sum(p.rows for p in self.parts)

    def files(self) -> set[str]:
        """Every file the manifest names (paths under the index folder)."""
        return {p.file for p in self.parts} | {r.file for r in self.retired}

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        raw = json.loads(text)
        raw["parts"] = [Part(**p) for p in raw.get("parts", [])]
        raw["retired"] = [Part(**p) for p in raw.get("retired", [])]
        return cls(**raw)


@contextlib.contextmanager
def writer_lock(root: Path) -> Iterator[None]:
    """Hold the index's lock: two writers (scans, compactions) must not stage into or
    commit to the same folder. The folder itself is locked, so no lock file is left
    behind; readers take no lock."""
    fd = os.open(root, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise IndexBusyError(f"another scan or compaction is writing the index in {root}") from None
        yield
    finally:
        os.close(fd)  # releases the lock


def read_manifest(root: Path) -> Manifest | None:
    """The manifest in `root`, or None when there is none (or it cannot be read)."""
    try:
        return Manifest.from_json((root / MANIFEST_FILE).read_text())
    except (OSError, ValueError, TypeError, KeyError):
        return None


def write_manifest(root: Path, manifest: Manifest) -> None:
    """Make `manifest` the index's state: one rename, after an fsync of the new parts'
    folder, so that no crash leaves a manifest naming files the disk does not hold."""
    for folder in (root / PARTS_DIR, root / RETIRED_DIR):
        if folder.exists():
            _fsync_dir(folder)
    write_atomic(root / MANIFEST_FILE, manifest.to_json(), mode=0o600)
    _fsync_dir(root)


def generation_name(generation: int) -> str:
    return f"{generation:08d}"


def chain(previous: str, *files: Path) -> str:
    """The next content hash: `previous`, then the bytes of every file a commit wrote."""
    h = hashlib.sha256(previous.encode())
    for path in files:
        h.update(path.name.encode())
        with open(path, "rb") as f:
            for block in iter(lambda f=f: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def remove_unlisted(root: Path, manifest: Manifest | None) -> None:
    """Delete every part and retired list the manifest does not name: what a failed or
    killed commit left, and what a compaction replaced. Only writers call this, under the
    index's lock."""
    keep = manifest.files() if manifest is not None else set()
    keep_dirs = {str(Path(f).parent) for f in keep}
    for top in (PARTS_DIR, RETIRED_DIR):
        folder = root / top
        if not folder.exists():
            continue
        for entry in folder.iterdir():
            relative = f"{top}/{entry.name}"
            if entry.is_dir():
                if relative not in keep_dirs:
                    shutil.rmtree(entry, ignore_errors=True)
                    continue
                for inner in entry.iterdir():
                    if f"{relative}/{inner.name}" not in keep:
                        inner.unlink(missing_ok=True)
            elif relative not in keep:
                entry.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

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
import errno
import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from curate.errors import IndexBusyError, IndexNotFoundError, IndexWriteError
from curate.files import atomic_path

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
        known = {f.name for f in fields(cls)}
        raw = {k: v for k, v in raw.items() if k in known}  # keys a later curate may add
        raw["parts"] = [Part(file=p["file"], rows=p["rows"]) for p in raw.get("parts", [])]
        raw["retired"] = [Part(file=p["file"], rows=p["rows"]) for p in raw.get("retired", [])]
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


#: What a write fails with when the disk (or a quota, or a size limit) has no room.
_NO_ROOM = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
#: How DuckDB says so: in a write, or when its spill folder may not grow.
_NO_ROOM_TEXT = ("no space left", "file too large", "quota", "max_temp_directory_size")


@contextlib.contextmanager
def no_room_is_an_error(root: Path) -> Iterator[None]:
    """A full disk is a clear error: the previous index is still the live one, and what a
    scan staged is kept for the next one."""
    import duckdb

    try:
        yield
    except OSError as e:
        if e.errno not in _NO_ROOM:
            raise
        raise IndexWriteError(_no_room_message(root, e.strerror)) from None
    except (duckdb.IOException, duckdb.OutOfMemoryException) as e:
        if not any(text in str(e).lower() for text in _NO_ROOM_TEXT):
            raise
        raise IndexWriteError(_no_room_message(root, "no space left")) from None


def _no_room_message(root: Path, why: str) -> str:
    return (
        f"cannot write the index in {root} ({why}): the previous index is unchanged and "
        "readable; free some space and run again (what was done is kept)"
    )


def read_manifest(root: Path) -> Manifest | None:
    """The manifest in `root`, or None when there is none. One that exists but cannot be
    read is an error, never "no index": a writer that took it for none would rebuild the
    index and renumber its rows."""
    path = root / MANIFEST_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise IndexNotFoundError(f"cannot read the index manifest {path}: {e.strerror}") from None
    try:
        manifest = Manifest.from_json(text)
    except (ValueError, TypeError, KeyError, AttributeError):
        raise IndexNotFoundError(
            f"the index manifest {path} is damaged; the index is left as it is (restore the file, "
            "or remove the index folder and scan again)"
        ) from None
    if manifest.format > INDEX_FORMAT:
        raise IndexNotFoundError(f"the index in {root} is of format {manifest.format}, newer than this curate reads")
    return manifest


def write_manifest(root: Path, manifest: Manifest) -> None:
    """Make `manifest` the index's state: one rename, after an fsync of every folder the
    new parts are in and of the manifest's bytes, so that no crash leaves a manifest
    naming files the disk does not hold, or an empty one."""
    folders = {root / PARTS_DIR, root / RETIRED_DIR} | {(root / p.file).parent for p in manifest.parts}
    for folder in folders:
        if folder.exists():
            _fsync_dir(folder)
    with atomic_path(root / MANIFEST_FILE, mode=0o600) as partial, open(partial, "r+b") as f:
        f.write(manifest.to_json().encode())
        f.truncate()
        f.flush()
        os.fsync(f.fileno())
    _fsync_dir(root)


def fsync_files(paths) -> None:
    """Flush files to disk: a manifest must never name bytes a power cut could lose."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def generation_name(generation: int) -> str:
    return f"{generation:08d}"


def log_run(root: Path, stage: str, settings: dict, counts: dict, before: Manifest | None) -> dict:
    """Append a run's entry to the index's run log (:mod:`curate.runlog`): its input is
    the content digest the index had, its output and state the one it has now. Called
    by writers, under the index's lock."""
    from curate.runlog import RunLog

    after = read_manifest(root)
    digest = {"content": after.content} if after is not None and after.content else {}
    previous = {"index": before.content} if before is not None and before.content else {}
    return RunLog(root).append(stage, settings, counts, previous, digest, digest or None)


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

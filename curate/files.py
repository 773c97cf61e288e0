"""Files curate writes and reads whole: nothing half-written is ever visible (a
temporary name beside the target, then a rename), and one way to hash a file."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

#: Every temporary file curate writes ends so; a later run removes those a killed run left.
PARTIAL_SUFFIX = ".partial"
_BLOCK = 1 << 20


def partial_name(path: Path) -> Path:
    """The temporary name `path` is written under: hidden, beside it, one per process."""
    return path.with_name(f".{path.name}.{os.getpid()}{PARTIAL_SUFFIX}")


def process_alive(pid: int) -> bool:
    """Whether process `pid` runs (on this machine): work named by its writer's pid is
    litter once the writer is gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    return True


def is_partial(path: Path) -> bool:
    """Whether `path` is a temporary file of :func:`atomic_path` (a killed run's litter)."""
    return path.name.startswith(".") and path.name.endswith(PARTIAL_SUFFIX)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], mode: int | None = None, replace: bool = True) -> Iterator[Path]:
    """A temporary path to write `path` through: renamed onto `path` when the block ends
    without an exception, removed when it raises. With `mode`, the file has exactly
    those permissions from its first byte, whatever the umask. With ``replace=False``,
    a `path` that exists (another writer's) is left alone and :class:`FileExistsError`
    raised, atomically: the file is published by a hard link, which never overwrites."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_name(path)
    try:
        if mode is not None:
            os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode))
            os.chmod(partial, mode)
        yield partial
        if mode is not None:
            os.chmod(partial, mode)  # a writer that recreated the file gets the mode back
        if replace:
            os.replace(partial, path)
        else:
            _publish_new(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _publish_new(partial: Path, path: Path) -> None:
    try:
        os.link(partial, path)
    except FileExistsError:
        raise
    except OSError:
        # A filesystem without hard links: a check, then a rename (a narrow race).
        if path.exists():
            raise FileExistsError(path) from None
        os.replace(partial, path)


def write_atomic(path: str | os.PathLike[str], data: str | bytes, mode: int | None = None) -> Path:
    """Write `data` (text as UTF-8) to `path` through :func:`atomic_path`."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_path(path, mode) as partial, open(partial, "r+b" if mode is not None else "wb") as f:
        f.write(payload)
        f.truncate()
    return Path(path)


def file_sha256(path: str | os.PathLike[str], from_offset: int | None = None) -> tuple[str, str | None]:
    """(sha256 of the file, sha256 of its bytes from `from_offset` on, or None without
    an offset), in one read of the file."""
    whole, tail = hashlib.sha256(), hashlib.sha256()
    position = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_BLOCK), b""):
            whole.update(block)
            if from_offset is not None and position + len(block) > from_offset:
                tail.update(block[max(0, from_offset - position) :])
            position += len(block)
    return whole.hexdigest(), tail.hexdigest() if from_offset is not None else None


def sha256_of(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file's bytes."""
    return file_sha256(path)[0]


class StreamedCsv:
    """A CSV written row by row under :func:`partial_name` and renamed onto `path` when
    closed: a killed run leaves litter a later run removes, never a half table. The
    file is created (owner-only, whatever the umask) on the first row, so a run with
    nothing to say writes nothing."""

    def __init__(self, path: str | os.PathLike[str], header: list[str], mode: int = 0o600):
        self.path, self.header, self.mode = Path(path), header, mode
        self._file = None

    def add(self, row: list) -> None:
        import csv

        if self._file is None:
            self._partial = partial_name(self.path)
            fd = os.open(self._partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, self.mode)
            os.fchmod(fd, self.mode)
            self._file = os.fdopen(fd, "w", newline="")
            self._writer = csv.writer(self._file)
            self._writer.writerow(self.header)
        self._writer.writerow(row)

    @property
    def started(self) -> bool:
        return self._file is not None

    def close(self) -> Path | None:
        """Publish the rows: the path, or None where no row was added."""
        if self._file is None:
            return None
        self._file.close()
        os.replace(self._partial, self.path)
        return self.path

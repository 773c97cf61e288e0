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


def is_partial(path: Path) -> bool:
    """Whether `path` is a temporary file of :func:`atomic_path` (a killed run's litter)."""
    return path.name.startswith(".") and path.name.endswith(PARTIAL_SUFFIX)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], mode: int | None = None) -> Iterator[Path]:
    """A temporary path to write `path` through: renamed onto `path` when the block ends
    without an exception, removed when it raises. With `mode`, the file has exactly
    those permissions from its first byte, whatever the umask."""
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
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


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

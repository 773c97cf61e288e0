"""Writing files so that nothing half-written is ever visible: a temporary name beside
the target, then a rename."""

from __future__ import annotations

import os
from pathlib import Path


def write_atomic(path: str | os.PathLike[str], data: str | bytes, mode: int | None = None) -> Path:
    """Write `data` to `path` through a temporary file and a rename (with `mode`, the file
    has those permissions from its first byte)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        payload = data.encode("utf-8") if isinstance(data, str) else data
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666 if mode is None else mode)
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        if mode is not None:
            os.chmod(partial, mode)  # exactly these permissions, whatever the umask
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path

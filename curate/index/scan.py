"""Scanning DICOM trees into Arrow: the Python face of the native scanner.

Parsing happens in Rust on all cores with the GIL released; batches arrive through the
Arrow C stream interface. ``scan_batches`` streams (memory stays flat at any corpus
size); ``scan`` collects one table.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import pyarrow as pa

from curate import _native
from curate.index.tags import ColumnSpec, resolve_tags

PathsLike = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]


def as_path_list(paths: PathsLike) -> list[str]:
    """One path or many, as a list of strings."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    return [os.fspath(p) for p in paths]


class ScanHandle:
    """A prepared scan. Nothing happens until :meth:`reader` is called; then one thread
    walks the paths while the others parse, and the counters move."""

    def __init__(self, native: _native.Scan):
        self._native = native

    @property
    def total(self) -> int:
        """Rows found so far: final once :attr:`walked` is true."""
        return self._native.total

    @property
    def done(self) -> int:
        """Rows parsed so far."""
        return self._native.done

    @property
    def walked(self) -> bool:
        """The walk is over: :attr:`total` is the row count of the whole scan."""
        return self._native.walked

    def reader(self) -> pa.RecordBatchReader:
        """Start walking and parsing; batches arrive in path order."""
        return pa.RecordBatchReader.from_stream(self._native)


def open_scan(
    paths: PathsLike,
    tags: Sequence[str] | None = None,
    threads: int | None = None,
    batch_size: int = _native.DEFAULT_BATCH_SIZE,
    extra_tags: Sequence[str] = (),
) -> ScanHandle:
    """Prepare a scan of `paths` (files, folders, or a list of both).

    `tags` replaces the default tag set; `extra_tags` adds to it. `threads` defaults to
    every core.
    """
    return open_columns(paths, resolve_tags(tags, extra_tags), threads, batch_size)


def open_columns(
    paths: PathsLike,
    columns: Sequence[ColumnSpec],
    threads: int | None = None,
    batch_size: int = _native.DEFAULT_BATCH_SIZE,
) -> ScanHandle:
    """:func:`open_scan` with columns already resolved."""
    native = _native.open_scan(as_path_list(paths), [c.as_native() for c in columns], threads or 0, batch_size)
    return ScanHandle(native)


def scan_batches(
    paths: PathsLike,
    tags: Sequence[str] | None = None,
    threads: int | None = None,
    batch_size: int = _native.DEFAULT_BATCH_SIZE,
    extra_tags: Sequence[str] = (),
) -> Iterator[pa.RecordBatch]:
    """Yield the index of `paths` as Arrow record batches, one row per file."""
    yield from open_scan(paths, tags, threads, batch_size, extra_tags).reader()


def scan(
    paths: PathsLike,
    tags: Sequence[str] | None = None,
    threads: int | None = None,
    extra_tags: Sequence[str] = (),
) -> pa.Table:
    """The index of `paths` as one Arrow table, one row per file.

    Every file gets a row: ``status`` is ``ok``, ``error``, ``not_dicom`` or ``dicomdir``
    and ``error`` says what went wrong (``kind: message``).
    """
    return open_scan(paths, tags, threads, extra_tags=extra_tags).reader().read_all()

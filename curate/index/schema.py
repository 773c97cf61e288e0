"""The row contract of the index, written once: the scanner (`_native`) exports its file
columns, statuses and error kinds, and everything in Python reads them from here."""

from __future__ import annotations

from curate import _native

#: Columns that describe the file rather than an attribute, in the scanner's order.
FILE_COLUMNS: tuple[str, ...] = tuple(_native.FILE_COLUMNS)
#: Every value of ``status``: the scanner's, and those set later (``vanished`` by a
#: rescan, ``remote`` for rows that describe an instance on a PACS).
STATUSES: tuple[str, ...] = tuple(_native.STATUSES)
#: Every kind an ``error`` message starts with (``kind: message``).
ERROR_KINDS: tuple[str, ...] = tuple(_native.ERROR_KINDS)
#: Rows that describe an image: a file that was read, or an instance on a PACS (pulled
#: metadata). Population and header checks read both; what needs the file reads ``ok``.
DESCRIBES_IMAGE = "status IN ('ok', 'remote')"
#: The column the index adds to every row: an id kept for a path across rescans, which
#: quality examples cite instead of paths.
ROW_ID = "row_id"
#: Every column of an index that is not an attribute or derived from one.
INDEX_FILE_COLUMNS: tuple[str, ...] = (*FILE_COLUMNS, ROW_ID)


def error_message(kind: str, message: str) -> str:
    """A row's ``error`` text: ``kind: message``, with a kind of :data:`ERROR_KINDS`."""
    if kind not in ERROR_KINDS:
        raise ValueError(f"unknown error kind {kind!r}")
    return f"{kind}: {message}"


def error_kind(message: str) -> str:
    """The kind a row's ``error`` text starts with."""
    return message.split(":", 1)[0]


#: :func:`error_kind` in DuckDB's SQL, over the ``error`` column.
ERROR_KIND_SQL = "split_part(error, ':', 1)"

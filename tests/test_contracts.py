"""The row contract is written once: the scanner exports it, and the README agrees."""

from __future__ import annotations

import re
from pathlib import Path

import curate
from curate import _native
from curate.index import schema

README = Path(__file__).resolve().parents[1] / "README.md"


def _readme_index_table() -> list[str]:
    """The first-column names of the README's table of file columns."""
    text = README.read_text()
    section = text[text.index("### The index") :]
    table = section[section.index("| column |") :].split("\n\n", 1)[0]
    rows = [line.split("|")[1] for line in table.splitlines()[2:]]
    return [name for cell in rows for name in re.findall(r"`([a-z_]+)`", cell)]


def test_readme_index_table_lists_exactly_the_file_columns():
    assert _readme_index_table() == list(schema.INDEX_FILE_COLUMNS)


def test_the_scanner_writes_its_exported_file_columns_first(pydicom_test_files):
    table = curate.scan(pydicom_test_files[:5])
    assert tuple(table.column_names[: len(_native.FILE_COLUMNS)]) == schema.FILE_COLUMNS


def test_every_status_and_error_kind_a_scan_writes_is_exported(tmp_path):
    (tmp_path / "note.txt").write_text("not DICOM")
    (tmp_path / "cut.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI")
    (tmp_path / "loop").symlink_to(tmp_path)
    table = curate.scan(tmp_path).to_pylist()
    assert {row["status"] for row in table} <= set(schema.STATUSES)
    kinds = {schema.error_kind(row["error"]) for row in table if row["error"]}
    assert kinds and kinds <= set(schema.ERROR_KINDS)
    assert {"vanished", "remote"} <= set(schema.STATUSES), "statuses set later are part of the contract"
    assert {"vanished", "symlink_loop", "not_a_file", "is_directory"} <= set(schema.ERROR_KINDS)


def test_the_classifier_never_learns_from_a_file_column():
    from curate.classify.table import NEVER_FEATURES

    assert all(NEVER_FEATURES.search(column) for column in schema.INDEX_FILE_COLUMNS)

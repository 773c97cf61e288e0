"""Index rows from a PACS's answers, in the index's own columns.

Each instance's answer (its study's, series' and own attributes, merged) becomes a
header-only Part 10 file in a private spool folder, which the scanner parses like any
other file: so a remote row holds exactly what a row of the same header read from disk
would, derived columns included. The path becomes the instance's source URI, the status
``remote``, and the file's own columns empty. Rows are staged as Parquet parts, written
under temporary names and renamed, and the spool is emptied after each part.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate.files import atomic_path
from curate.index.derive import DeriveCounts, add_derived_columns
from curate.index.remote import REMOTE
from curate.index.scan import open_columns
from curate.index.tags import ColumnSpec
from curate.pull.source import Answer

#: Attributes of a query's answer that describe the query, not the instance.
QUERY_ONLY = {"00080052", "00080054", "00081190", "00080056", "00041130"}
#: Rows per staged part.
PART_ROWS = 4096
#: Used in the file meta group of a spooled header whose answer has no SOP class.
UNKNOWN_CLASS = "1.2.840.10008.5.1.4.1.1.7"
_CLEARED = ("file_size", "mtime", "transfer_syntax", "pixel_data_offset", "pixel_data_length")


def merged(*answers: Answer) -> Answer:
    """One instance's attributes from its study's, series' and own answers (the more
    specific level wins)."""
    out: Answer = {}
    for answer in answers:
        out.update({tag: element for tag, element in answer.items() if tag not in QUERY_ONLY})
    return out


class RowStager:
    """Collects (URI, answer) pairs and writes them as staged parts of index rows."""

    def __init__(self, folder: Path, columns: Sequence[ColumnSpec]):
        self.folder = folder
        self.spool = folder / "spool"
        self.columns = list(columns)
        self.derive = DeriveCounts()
        self.skipped_elements = 0
        self._pending: dict[str, str] = {}  # spooled file -> URI
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)
        shutil.rmtree(self.spool, ignore_errors=True)
        self.spool.mkdir(mode=0o700)
        os.chmod(self.spool, 0o700)

    def parts(self) -> list[Path]:
        return sorted(self.folder.glob("part-*.parquet"))

    def add(self, uri: str, answer: Answer) -> None:
        path = self.spool / f"{len(self._pending):06d}.dcm"
        self.skipped_elements += _write_header(answer, path)
        self._pending[str(path)] = uri

    def __len__(self) -> int:
        return len(self._pending)

    def flush(self) -> Path | None:
        """Write what was added as one part; returns it (None when nothing was added)."""
        if not self._pending:
            return None
        reader = open_columns([str(self.spool)], self.columns, threads=None).reader()
        table = reader.read_all()
        uris = pa.array([self._pending[p] for p in table.column("path").to_pylist()], pa.string())
        table = table.set_column(table.schema.get_field_index("path"), "path", uris)
        for name in _CLEARED:
            i = table.schema.get_field_index(name)
            table = table.set_column(i, table.schema.field(i), pa.nulls(len(table), table.schema.field(i).type))
        ok = pc.equal(table.column("status"), "ok")
        status = pc.if_else(ok, pa.scalar(REMOTE), table.column("status"))
        table = table.set_column(table.schema.get_field_index("status"), "status", status)
        table = add_derived_columns(table, self.derive)
        number = len(self.parts())
        while (self.folder / f"part-{number:06d}.parquet").exists():
            number += 1
        target = self.folder / f"part-{number:06d}.parquet"
        with atomic_path(target, mode=0o600) as partial:
            pq.write_table(table, partial, compression="zstd")
        shutil.rmtree(self.spool)
        self.spool.mkdir(mode=0o700)
        os.chmod(self.spool, 0o700)
        self._pending.clear()
        return target

    def clear(self) -> None:
        """Remove the staged parts (once the index holds their rows)."""
        for part in self.parts():
            part.unlink()


def _write_header(answer: Answer, path: Path) -> int:
    """Write `answer` as a header-only Part 10 file; returns how many of its elements
    could not be read (a PACS may answer with values its VR does not allow)."""
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    ds = Dataset()
    skipped = 0
    for tag, element in answer.items():
        try:
            ds.update(Dataset.from_json({tag: element}))
        except Exception:  # noqa: BLE001 - one bad element must not lose the row
            skipped += 1
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.get("SOPClassUID") or UNKNOWN_CLASS
    meta.MediaStorageSOPInstanceUID = ds.get("SOPInstanceUID") or "1.2.3"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))  # owner-only before the first byte
    try:
        pydicom.dcmwrite(path, ds, enforce_file_format=True)
    except Exception:  # noqa: BLE001 - values pydicom cannot encode: keep what it can
        kept = Dataset()
        for element in ds:
            trial = Dataset()
            trial.add(element)
            try:
                trial.file_meta = meta
                pydicom.dcmwrite(path, trial, enforce_file_format=True)
                kept.add(element)
            except Exception:  # noqa: BLE001
                skipped += 1
        kept.file_meta = meta
        pydicom.dcmwrite(path, kept, enforce_file_format=True)
    return skipped

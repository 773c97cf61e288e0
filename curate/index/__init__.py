"""The index stage: scan DICOM headers into a Parquet index and keep it up to date.

- :mod:`.scan`: the Python face of the native scanner (Arrow batches, one row per file);
- :mod:`.tags`: which attributes become columns (keywords, tags, sequence paths);
- :mod:`.schema`: the row contract (file columns, statuses, error kinds);
- :mod:`.derive`: columns derived from the raw headers (age, sex, body part, view);
- :mod:`.build`: the incremental, crash-safe build of the index;
- :mod:`.dask`: the same build with parsing on a Dask cluster;
- :mod:`.summary`: what a scan found and did;
- :mod:`.store`: the index on disk, and the one way to open it for reading.
"""

from curate.index.build import build_index, list_files
from curate.index.scan import open_scan, scan, scan_batches
from curate.index.store import IndexStore, open_index, read_index
from curate.index.summary import ScanSummary

__all__ = [
    "IndexStore",
    "ScanSummary",
    "build_index",
    "list_files",
    "open_index",
    "open_scan",
    "read_index",
    "scan",
    "scan_batches",
]

"""curate: turn raw DICOM archives into versioned, de-identified, ML-ready datasets.

The scanner is the entry point::

    import curate
    table = curate.scan("/data/pacs-export")          # pyarrow.Table, one row per file
    for batch in curate.scan_batches("/data/pacs-export"):  # streaming, flat memory
        ...
"""

from curate._native import __version__
from curate.index.scan import open_scan, scan, scan_batches
from curate.index.tags import ColumnSpec, default_tags, resolve_tags

__all__ = [
    "__version__",
    "ColumnSpec",
    "default_tags",
    "open_scan",
    "resolve_tags",
    "scan",
    "scan_batches",
]

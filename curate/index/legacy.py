"""Indexes of format 4: one ``index.parquet``, sorted by path, with the build signature
in its Parquet metadata. The next scan converts one in place (the file becomes the first
part of the new layout; nothing is copied), so its rows and row ids are kept."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate.files import sha256_of
from curate.index.manifest import (
    LEGACY_INDEX_FILE,
    MANIFEST_FILE,
    PARTS_DIR,
    Manifest,
    Part,
    generation_name,
    write_manifest,
)
from curate.index.schema import ROW_ID

LEGACY_FORMAT = 4
#: The Parquet key-value metadata key that held a format-4 index's signature.
LEGACY_METADATA_KEY = b"curate_index"


def convert_legacy(root: Path, signature: dict) -> int | None:
    """Convert a format-4 index in `root` to the current layout; returns the format it
    had (None when there was nothing to convert). An index built with the same tag set
    keeps its rows; one built otherwise (or older than format 4) keeps its row ids at
    most, and the scan rebuilds it."""
    legacy = root / LEGACY_INDEX_FILE
    if not legacy.exists() or (root / MANIFEST_FILE).exists():
        return None
    try:
        meta = pq.read_metadata(legacy)
        raw = (meta.metadata or {}).get(LEGACY_METADATA_KEY)
        found = json.loads(raw) if raw else {}
        has_ids = ROW_ID in meta.schema.to_arrow_schema().names
    except (OSError, ValueError, pa.ArrowException):
        found, has_ids = {}, False
    if found.get("format") != LEGACY_FORMAT or not has_ids:
        legacy.unlink()  # too old to keep anything from: the scan rebuilds the index
        return found.get("format") or 0
    same = {k: v for k, v in found.items() if k != "format"} == {k: v for k, v in signature.items() if k != "format"}
    ids = pq.read_table(legacy, columns=[ROW_ID]).column(ROW_ID)
    generation = 1
    part = f"{PARTS_DIR}/{generation_name(generation)}/data_0.parquet"
    (root / part).parent.mkdir(parents=True, exist_ok=True)
    # A link first, the old name removed only once the manifest is written: killed at
    # any point, the folder holds the format-4 index or the converted one.
    (root / part).unlink(missing_ok=True)
    os.link(legacy, root / part)
    manifest = Manifest(
        # Another tag set: the rows are not reused, but their ids are (see _reusable).
        signature=signature if same else found,
        generation=generation,
        next_row_id=(pc.max(ids).as_py() + 1) if len(ids) else 0,
        parts=[Part(part, meta.num_rows)],
        content=sha256_of(root / part),  # the first digest: the bytes of its one file
    )
    write_manifest(root, manifest)
    legacy.unlink()
    return LEGACY_FORMAT

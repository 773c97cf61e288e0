"""The files of a dataset version, ``<root>/<name>/<version_id>/``: named here once."""

from __future__ import annotations

#: One row per instance: pseudonymous UIDs, path, sha256, split, label, series type.
MANIFEST = "manifest.parquet"
#: Parent version, counts, config, source-index digest, de-identification profile.
DESCRIPTION = "dataset.json"
#: The same, for people.
CARD = "DATASET_CARD.md"
#: The de-identified DICOM files, ``files/<split>/<study>/<series>/<instance>.dcm``.
FILES = "files"
#: The exported images (when the spec asks for them), mirroring ``files/``.
IMAGES = "images"
#: A version being built: hidden until it is renamed into place.
BUILDING_PREFIX = ".building-"

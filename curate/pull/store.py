"""The local store an images pull writes: ``<store>/<study UID>/<series UID>/<SOP UID>.dcm``.

Names come from UIDs only, never from header text (a patient's name or ID must not
become a folder name). A UID that is not a well-formed UID (digits and dots, at most 64
characters) is named by its digest instead, so that ``../../etc`` stays a name. Files
are written under a temporary name and renamed, owner-only: a killed pull leaves whole
files or none.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from curate.files import is_partial, write_atomic

_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
FILE_MODE = 0o600


def is_uid(text: str | None) -> bool:
    """A well-formed UID: digits and dots, at most 64 characters (PS3.5 9.1)."""
    return bool(text) and len(text) <= 64 and _UID.match(text) is not None


def safe_name(uid: str) -> str:
    if is_uid(uid):
        return uid
    return "x" + hashlib.sha256(uid.encode("utf-8", "surrogateescape")).hexdigest()[:40]


class InstanceStore:
    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)  # the store holds PHI

    def series_folder(self, study: str, series: str) -> Path:
        return self.root / safe_name(study) / safe_name(series)

    def path(self, study: str, series: str, instance: str) -> Path:
        return self.series_folder(study, series) / f"{safe_name(instance)}.dcm"

    def held(self, study: str, series: str) -> set[str]:
        """The file names (SOP UIDs, or their digests) of a series already stored."""
        folder = self.series_folder(study, series)
        if not folder.is_dir():
            return set()
        return {p.name[:-4] for p in folder.iterdir() if p.name.endswith(".dcm") and not p.name.startswith(".")}

    def write(self, study: str, series: str, instance: str, data: bytes) -> Path:
        folder = self.series_folder(study, series)
        if not folder.is_dir():
            for level in (folder.parent, folder):
                level.mkdir(mode=0o700, exist_ok=True)  # owner-only from the start
                os.chmod(level, 0o700)
        return write_atomic(self.path(study, series, instance), data, mode=FILE_MODE)

    def clear_partials(self, study: str, series: str) -> None:
        """Remove what a killed pull was writing in a series' folder (never indexed)."""
        folder = self.series_folder(study, series)
        if folder.is_dir():
            for path in folder.iterdir():
                if is_partial(path):
                    path.unlink(missing_ok=True)

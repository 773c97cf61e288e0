"""Looking at dataset versions: list them, show one, compare two."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from curate.dataset.build import DESCRIPTION, MANIFEST


def list_versions(root: str | os.PathLike[str]) -> list[dict]:
    """Every complete version under `root`, oldest first (folders being built are not versions)."""
    found = []
    for description in Path(root).glob(f"*/*/{DESCRIPTION}"):
        if description.parent.name.startswith("."):
            continue
        d = json.loads(description.read_text())
        found.append({"name": d["name"], "version_id": d["version_id"], "created": d["created"],
                      "instances": d["counts"]["instances"], "parent": d["parent_version"],
                      "path": str(description.parent)})
    return sorted(found, key=lambda v: (v["name"], v["created"]))


def show(version_dir: str | os.PathLike[str]) -> dict:
    return json.loads((Path(version_dir) / DESCRIPTION).read_text())


def diff(old_dir: str | os.PathLike[str], new_dir: str | os.PathLike[str]) -> dict:
    """What changed between two versions: instances added and removed (by pseudonymous
    SOP Instance UID, stable under one key), and label and split changes."""
    old = pd.read_parquet(Path(old_dir) / MANIFEST).set_index("sop_instance_uid")
    new = pd.read_parquet(Path(new_dir) / MANIFEST).set_index("sop_instance_uid")
    common = old.index.intersection(new.index)
    label_changed = (old.loc[common, "label"].fillna("") != new.loc[common, "label"].fillna(""))
    split_changed = old.loc[common, "split"] != new.loc[common, "split"]
    return {
        "added": sorted(new.index.difference(old.index)),
        "removed": sorted(old.index.difference(new.index)),
        "label_changed": sorted(common[label_changed.to_numpy()]),
        "split_changed": sorted(common[split_changed.to_numpy()]),
        "unchanged": int(len(common) - label_changed.sum()),
    }

"""Looking at dataset versions: list them, show one, compare two."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from curate.dataset.layout import DESCRIPTION, MANIFEST
from curate.errors import DatasetError


def list_versions(root: str | os.PathLike[str]) -> list[dict]:
    """Every complete version under `root`, oldest first (folders being built are not versions)."""
    found = []
    for description in Path(root).glob(f"*/*/{DESCRIPTION}"):
        if description.parent.name.startswith("."):
            continue
        d = json.loads(description.read_text())
        found.append(
            {
                "name": d["name"],
                "version_id": d["version_id"],
                "created": d["created"],
                "instances": d["counts"]["instances"],
                "parent": d["parent_version"],
                "path": str(description.parent),
            }
        )
    return sorted(found, key=lambda v: (v["name"], v["created"]))


def show(version_dir: str | os.PathLike[str]) -> dict:
    """What a version's ``dataset.json`` says."""
    description = Path(version_dir) / DESCRIPTION
    if not description.is_file():
        raise DatasetError(f"{version_dir} is not a dataset version (it has no {DESCRIPTION})")
    return json.loads(description.read_text())


def _manifest(version_dir: str | os.PathLike[str]) -> pd.DataFrame:
    path = Path(version_dir) / MANIFEST
    if not path.is_file():
        raise DatasetError(f"{version_dir} is not a dataset version (it has no {MANIFEST})")
    return pd.read_parquet(path)


def diff(old_dir: str | os.PathLike[str], new_dir: str | os.PathLike[str]) -> dict:
    """What changed between two versions: instances added and removed (by pseudonymous
    SOP Instance UID, stable under one key), and label and split changes."""
    old, new = (_manifest(d).set_index("sop_instance_uid") for d in (old_dir, new_dir))
    common = old.index.intersection(new.index)
    label_changed = old.loc[common, "label"].fillna("") != new.loc[common, "label"].fillna("")
    split_changed = old.loc[common, "split"] != new.loc[common, "split"]
    return {
        "added": sorted(new.index.difference(old.index)),
        "removed": sorted(old.index.difference(new.index)),
        "label_changed": sorted(common[label_changed.to_numpy()]),
        "split_changed": sorted(common[split_changed.to_numpy()]),
        "unchanged": int(len(common) - label_changed.sum()),
    }


def format_versions(versions: list[dict], root: str | os.PathLike[str]) -> str:
    """The versions of :func:`list_versions`, one line each."""
    if not versions:
        return f"no dataset versions under {root}"
    lines = []
    for v in versions:
        parent = f" (parent {v['parent']})" if v["parent"] else ""
        lines.append(f"{v['name']:<24} {v['version_id']}  {v['created'][:19]}  {v['instances']:>9,} instances{parent}")
    return "\n".join(lines)


def format_diff(changes: dict) -> str:
    """The counts of a :func:`diff`."""
    lines = [f"{key:<14} {len(changes[key]):>7,}" for key in ("added", "removed", "label_changed", "split_changed")]
    lines.append(f"{'unchanged':<14} {changes['unchanged']:>7,}")
    return "\n".join(lines)

"""Looking at dataset versions: list them, show one, compare two."""

from __future__ import annotations

import json
import os
from pathlib import Path

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


def _manifest(version_dir: str | os.PathLike[str]) -> Path:
    path = Path(version_dir) / MANIFEST
    if not path.is_file():
        raise DatasetError(f"{version_dir} is not a dataset version (it has no {MANIFEST})")
    return path


#: One row per instance that differs between two versions: what changed.
_CHANGES = """
SELECT coalesce(n.sop_instance_uid, o.sop_instance_uid) AS sop_instance_uid,
       CASE WHEN o.sop_instance_uid IS NULL THEN 'added'
            WHEN n.sop_instance_uid IS NULL THEN 'removed'
            WHEN coalesce(o.label, '') <> coalesce(n.label, '') AND o.split <> n.split THEN 'label_and_split_changed'
            WHEN coalesce(o.label, '') <> coalesce(n.label, '') THEN 'label_changed'
            WHEN o.split <> n.split THEN 'split_changed'
       END AS change
FROM old o FULL OUTER JOIN new n USING (sop_instance_uid)
"""


def _compare(old_dir, new_dir, spill: str):
    import duckdb

    from curate.index.store import limit_memory, sql_string

    old, new = _manifest(old_dir), _manifest(new_dir)
    con = duckdb.connect()
    limit_memory(con, spill)
    for name, path in (("old", old), ("new", new)):
        con.execute(
            f"CREATE VIEW {name} AS SELECT sop_instance_uid, label, split FROM read_parquet({sql_string(path)})"
        )
    con.execute(f"CREATE VIEW changes AS SELECT * FROM ({_CHANGES}) WHERE change IS NOT NULL")
    return con


def diff(
    old_dir: str | os.PathLike[str], new_dir: str | os.PathLike[str], out: str | os.PathLike[str] | None = None
) -> dict:
    """What changed between two versions, in counts: instances added and removed (by
    pseudonymous SOP Instance UID, stable under one key), label and split changes, and
    instances whose label is unchanged. With `out` (``.csv`` or ``.parquet``), the
    changed instances are written there, one row each (``sop_instance_uid``,
    ``change``). DuckDB compares the manifests within a memory limit, at any size."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="curate-diff-") as spill:
        return _diff(_compare(old_dir, new_dir, spill), out)


def _diff(con, out) -> dict:
    from curate.index.store import sql_string

    try:
        found = dict(con.execute("SELECT change, count(*) FROM changes GROUP BY change").fetchall())
        both = found.pop("label_and_split_changed", 0)
        common = con.execute("SELECT count(*) FROM old SEMI JOIN new USING (sop_instance_uid)").fetchall()[0][0]
        if out is not None:
            fmt = "csv" if str(out).endswith(".csv") else "parquet"
            con.execute(
                f"COPY (SELECT * FROM changes ORDER BY change, sop_instance_uid) TO {sql_string(out)} (FORMAT {fmt})"
            )
    finally:
        con.close()
    label_changed = found.get("label_changed", 0) + both
    return {
        "added": found.get("added", 0),
        "removed": found.get("removed", 0),
        "label_changed": label_changed,
        "split_changed": found.get("split_changed", 0) + both,
        "unchanged": common - label_changed,
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
    lines = [f"{key:<14} {changes[key]:>7,}" for key in ("added", "removed", "label_changed", "split_changed")]
    lines.append(f"{'unchanged':<14} {changes['unchanged']:>7,}")
    return "\n".join(lines)

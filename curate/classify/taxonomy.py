"""The series types curate knows, from ``conf/classify/taxonomy.yaml``."""

from __future__ import annotations

from functools import lru_cache

import yaml

from curate.paths import conf_dir


@lru_cache(maxsize=1)
def taxonomy() -> dict[str, dict[str, str]]:
    """{family: {series type: description}}."""
    return yaml.safe_load((conf_dir() / "classify" / "taxonomy.yaml").read_text(encoding="utf-8"))


def series_types() -> list[str]:
    return [t for family in taxonomy().values() for t in family]

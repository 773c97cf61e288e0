"""The series types curate knows, from ``conf/classify/taxonomy.yaml``, and the
modalities each family's types may be answered for."""

from __future__ import annotations

from functools import lru_cache

import yaml

from curate.paths import conf_dir


@lru_cache(maxsize=1)
def _families() -> dict[str, dict]:
    return yaml.safe_load((conf_dir() / "classify" / "taxonomy.yaml").read_text(encoding="utf-8"))


def taxonomy() -> dict[str, dict[str, str]]:
    """{family: {series type: description}}."""
    return {family: dict(spec["types"]) for family, spec in _families().items()}


def series_types() -> list[str]:
    return [t for family in taxonomy().values() for t in family]


@lru_cache(maxsize=1)
def modalities_of_type() -> dict[str, frozenset[str]]:
    """{series type: the modalities a file of that type declares}."""
    return {t: frozenset(spec["modalities"]) for spec in _families().values() for t in spec["types"]}


def known_modalities() -> frozenset[str]:
    """Modalities some family claims; a file declaring another one is not bounded."""
    return frozenset().union(*modalities_of_type().values())

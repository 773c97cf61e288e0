"""Which attributes a scan returns: resolving keywords, tags and sequence paths.

A tag spec is one of

* a keyword: ``PatientID``;
* a tag: ``(0019,10A0)``, ``0019,10A0`` or ``001910A0``;
* a sequence path: ``ViewCodeSequence[0].CodeMeaning`` (steps joined by ``.``, each
  sequence step with the item index to follow);
* any of these behind a column name: ``ViewName=ViewCodeSequence[0].CodeMeaning``.

Names, VRs and value multiplicities come from pydicom's data dictionary; the column type
follows the VR (text → string, IS/US/UL/SS/SL → int64, DS/FL/FD → float64, DA → date32)
and attributes that may hold several values become lists.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml
from pydicom import datadict

from curate import _native
from curate.errors import TagSpecError
from curate.paths import conf_dir

_TAG = re.compile(r"^\(?\s*([0-9A-Fa-f]{4})\s*,?\s*([0-9A-Fa-f]{4})\s*\)?$")
_STEP = re.compile(r"^(?P<attr>.+?)(?:\[(?P<item>\d+)\])?$")


@dataclass(frozen=True)
class ColumnSpec:
    """One index column: its name, the path to its attribute, dictionary VR, multiplicity."""

    name: str
    path: tuple[tuple[int, int | None], ...]
    vr: str
    multi: bool

    def as_native(self) -> tuple[str, list[tuple[int, int | None]], str, bool]:
        return (self.name, list(self.path), self.vr, self.multi)


def _parse_attribute(text: str, spec: str) -> int:
    text = text.strip()
    match = _TAG.match(text)
    if match:
        return int(match.group(1) + match.group(2), 16)
    tag = datadict.tag_for_keyword(text)
    if tag is None:
        raise TagSpecError(f"{spec!r}: {text!r} is neither a DICOM keyword nor a (gggg,eeee) tag")
    return int(tag)


def _dictionary_entry(tag: int) -> tuple[str, bool]:
    """(VR, may hold several values) for a tag; unknown and private tags are single text."""
    try:
        vr = datadict.dictionary_VR(tag)
        vm = datadict.dictionary_VM(tag)
    except KeyError:
        return _native.dictionary_vr(tag), False
    # "US or SS", "OB or OW": the first is what the file most often carries.
    return vr[:2], vm.strip() != "1"


def parse_tag_spec(spec: str) -> ColumnSpec:
    """Resolve one tag spec into a column."""
    name, sep, body = spec.partition("=")
    if not sep:
        name, body = "", spec
    body = body.strip()
    if not body:
        raise TagSpecError(f"{spec!r}: empty tag spec")
    steps = body.split(".")
    path: list[tuple[int, int | None]] = []
    for i, step in enumerate(steps):
        match = _STEP.match(step.strip())
        if match is None:
            raise TagSpecError(f"{spec!r}: cannot read step {step!r}")
        item = match.group("item")
        is_last = i == len(steps) - 1
        if is_last and item is not None:
            raise TagSpecError(f"{spec!r}: ends in a sequence item; name an attribute inside it")
        if not is_last and item is None:
            raise TagSpecError(f"{spec!r}: sequence step {step!r} needs an item index, e.g. {step}[0]")
        path.append((_parse_attribute(match.group("attr"), spec), None if item is None else int(item)))
    vr, multi = _dictionary_entry(path[-1][0])
    if not name:
        keyword = datadict.keyword_for_tag(path[-1][0]) if len(path) == 1 else ""
        name = keyword or body
    return ColumnSpec(name=name.strip(), path=tuple(path), vr=vr, multi=multi)


@lru_cache(maxsize=1)
def default_tags() -> tuple[str, ...]:
    """The default tag set, from ``conf/tags/default.yaml`` (read again when it changes)."""
    path = conf_dir() / "tags" / "default.yaml"
    return _tag_file(str(path), path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _tag_file(path: str, mtime_ns: int) -> tuple[str, ...]:
    return tuple(load_tag_file(Path(path)))


def load_tag_file(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as f:
        # libyaml's loader where PyYAML has it: the pure-Python one took 3 ms, more than
        # scanning a few hundred files.
        data = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
    keywords = data.get("keywords")
    if not isinstance(keywords, list):
        raise TagSpecError(f"{path}: expected a 'keywords:' list")
    return [str(k) for k in keywords]


def resolve_tags(
    tags: list[str] | tuple[str, ...] | None = None, extra: list[str] | tuple[str, ...] = ()
) -> list[ColumnSpec]:
    """Resolve tag specs (the default set when `tags` is None) plus `extra` into columns.

    A spec listed twice yields one column; two specs that would produce the same column
    name are an error.
    """
    return list(_resolve(tuple(default_tags() if tags is None else tags) + tuple(extra)))


@functools.lru_cache(maxsize=64)
def _resolve(specs: tuple[str, ...]) -> tuple[ColumnSpec, ...]:
    columns: dict[str, ColumnSpec] = {}
    for spec in specs:
        column = parse_tag_spec(spec)
        previous = columns.get(column.name)
        if previous is not None and previous != column:
            raise TagSpecError(f"two tag specs give the column name {column.name!r}; rename one with NAME=SPEC")
        columns[column.name] = column
    return tuple(columns.values())

"""Which UIDs identify something (an instance, a series, a frame of reference, a
device, an event) and which only name a kind of thing (a SOP class, a transfer syntax,
a coding scheme).

Every UID of the first kind is pseudonymised wherever it sits, listed in Table E.1-1
or not, at any depth, in private attributes kept by an option too: the same keyed
pseudonym for the same value, so references between files still hold. A UID is of
the second kind, and kept, when its attribute names a class, syntax or scheme, or
when its value is well known: in pydicom's dictionary of the UIDs DICOM registers, or
under the arcs of well-known frames of reference and coding schemes, or a placeholder
of fewer than three components.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

#: Arcs under DICOM's root whose every UID is registered, and names no one: well-known
#: frames of reference (1.4) and coding schemes and context groups (2). Not the whole
#: root: devices mint instance UIDs that start with a SOP class's UID.
WELL_KNOWN_ARCS = ("1.2.840.10008.1.4.", "1.2.840.10008.2.")
#: Attributes whose UIDs name a kind of thing, not one thing.
_KIND_KEYWORDS = re.compile(
    r"(Class|Syntax)UID|SOPClasses|CodingScheme|MappingResource|ContextGroupExtensionCreator|"
    r"PrivateInformationCreator|TemplateExtension(Organization|Creator)|CreatorVersion|^ContextUID$"
)
_PLACEHOLDER = re.compile(r"(\d+(\.\d+)?)?")
#: A placeholder is short: a long number, or two long ones, can be an instance's UID.
PLACEHOLDER_LENGTH = 8
#: Where a UID ends inside encoded bytes: anything but a digit or a dot.
_UID_CHARS = frozenset(b"0123456789.")


@lru_cache(maxsize=1)
def _registered() -> frozenset[str]:
    from pydicom.uid import UID_dictionary

    return frozenset(UID_dictionary)


def is_well_known(value: str) -> bool:
    """Registered, or too short to name anything (a placeholder such as ``0`` or ``1.2``:
    at most 8 characters, fewer than three components)."""
    value = value.strip().rstrip("\0")
    if len(value) <= PLACEHOLDER_LENGTH and _PLACEHOLDER.fullmatch(value):
        return True
    return value in _registered() or value.startswith(WELL_KNOWN_ARCS)


def names_a_kind(keyword: str | None) -> bool:
    """Whether the attribute `keyword` holds UIDs of classes, syntaxes or schemes."""
    return bool(keyword) and bool(_KIND_KEYWORDS.search(keyword))


def identifying_values(keyword: str | None, value) -> list[str]:
    """The values of a UI attribute that identify something (see the module text)."""
    if names_a_kind(keyword):
        return []
    values = value if isinstance(value, (list, tuple, MultiValue)) else [value]
    return [str(v) for v in values if v and not is_well_known(str(v))]


def identifying_uids(ds: Dataset) -> frozenset[str]:
    """Every identifying UID in `ds`, at any depth (the file meta group aside: it is rebuilt)."""
    found: set[str] = set()
    for element in ds.iterall():
        if element.VR == "UI" and element.value:
            found.update(identifying_values(element.keyword, element.value))
    return frozenset(found)


def uids_in(data: bytes, uids: Iterable[str]) -> list[str]:
    """Those of `uids` that `data` holds whole (not as part of a longer UID)."""
    present = []
    for uid in uids:
        needle = uid.encode("ascii", errors="ignore")
        at = data.find(needle)
        while at != -1:
            before = data[at - 1] if at else None
            after = data[at + len(needle)] if at + len(needle) < len(data) else None
            if before not in _UID_CHARS and after not in _UID_CHARS:
                present.append(uid)
                break
            at = data.find(needle, at + 1)
    return present

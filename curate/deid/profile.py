"""The Basic Application Level Confidentiality Profile of DICOM PS3.15 Annex E and its
options, as data: what to do with each attribute.

The table (E.1-1, 2026d edition, 657 rows) is the project's own data file,
``curate/deid/data/ps3.15-table-e1-1.json``. :class:`Profile` answers, for a tag and the
options in use, one of the actions of E.1.1:

====== ==========================================================================
``X``  remove
``Z``  replace with a zero-length value
``D``  replace with a dummy value consistent with the VR
``K``  keep (a sequence's items are still cleaned)
``C``  clean: replace with a value of similar meaning that identifies nobody
``U``  replace with a UID consistent across the whole set of instances
====== ==========================================================================

Compound codes (``X/Z``, ``X/D``, ``Z/D``, ``X/Z/D``, ``X/Z/U*``) depend on the attribute's
Type in the IOD, looked up in ``data/compound-types.json`` (PS3.3 Types per IOD, and per
enclosing sequence for nested attributes; see :func:`attribute_type`): Type 1 takes
``U`` or ``D``, Type 2 ``Z`` (``D`` for ``X/D``), so that the file stays valid. Type 3,
an unknown SOP class or an unknown context take the first, most removing code (the
safer choice). A condition (Type 1C, 2C) is taken as met: the attribute is present in
the file being cleaned.

Not in the table: a standard attribute the table does not list is kept when its VR
cannot carry a name, a date or free text (Rows, Pixel Data, Modality ...); unlisted
short text (SH, LO: Manufacturer, but also Overlay Description) is kept cleaned of the
patient's names and identifiers (C; a maker's name in Manufacturer is kept whole,
see :mod:`curate.deid.vendors`); unlisted person names and URLs are removed,
unlisted dates and times are handled as the listed ones (removed, shifted or kept by the
temporal options), unlisted free text is removed (or cleaned with Clean Descriptors). An
attribute the data dictionary does not know is removed, as are private attributes unless
Retain Safe Private keeps one that Table E.3.10-1 (``data/ps3.15-table-e3-10-1.json``) lists as safe.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path

from curate.errors import ConfigError

TABLE_FILE = Path(__file__).parent / "data" / "ps3.15-table-e1-1.json"
TABLE_EDITION = "2026d"
ACTIONS = ("X", "Z", "D", "K", "C", "U")
#: From most to least removing: when two active options disagree, the first wins.
PRIVACY_ORDER = ("X", "Z", "D", "U", "C", "K")

TYPES_FILE = Path(__file__).parent / "data" / "compound-types.json"
SAFE_PRIVATE_FILE = Path(__file__).parent / "data" / "ps3.15-table-e3-10-1.json"

TEXT_VALUE = 0x0040A160  # Text Value of a structured content item (not in Table E.1-1)
NUMBER_VRS = frozenset({"DS", "IS", "FL", "FD", "SS", "US", "SL", "UL", "SV", "UV", "OF", "OD"})

#: Standard attributes Table E.1-1 does not list that name people, their dates or their
#: accounts: removed as the listed ones of their kind are.
UNLISTED_IDENTIFYING: frozenset[str] = frozenset(
    {
        "PatientBirthDateInAlternativeCalendar",
        "PatientDeathDateInAlternativeCalendar",
        "IssuerOfPatientIDQualifiersSequence",
        "RequestingPhysicianIdentificationSequence",
        "DocumentAuthorIdentifierCodeSequenceTrial",
        "DocumentingObserverIdentifierCodeSequenceTrial",
        "HangingProtocolCreator",
        "HangingProtocolUserIdentificationCodeSequence",
        "HangingProtocolUserGroupName",
        "ContactDisplayName",
        "OwnerID",
        "AuthorIdentificationSequence",
        "InterlockResolutionUserSequence",
        "OOIOwnerSequence",
        "NTPSourceAddress",
    }
)

#: Compound-coded identifiers replaced by a keyed pseudonym (their ``D``), so that the
#: images of one patient stay linked in the output.
PSEUDONYMISED: frozenset[str] = frozenset({"PatientID"})


@dataclass(frozen=True)
class Options:
    """The options of PS3.15 E.3, each off by default (the Basic Profile alone)."""

    retain_safe_private: bool = False
    retain_uids: bool = False
    retain_device_identity: bool = False
    retain_institution_identity: bool = False
    retain_patient_characteristics: bool = False
    retain_longitudinal_full_dates: bool = False
    retain_longitudinal_modified_dates: bool = False
    clean_descriptors: bool = False
    clean_structured_content: bool = False
    clean_graphics: bool = False

    def __post_init__(self) -> None:
        if self.retain_longitudinal_full_dates and self.retain_longitudinal_modified_dates:
            raise ConfigError(
                "retain_longitudinal_full_dates and retain_longitudinal_modified_dates exclude each other: choose one"
            )

    def active(self) -> list[str]:
        return [f.name for f in fields(self) if getattr(self, f.name)]


@dataclass(frozen=True)
class Rule:
    """One row of Table E.1-1."""

    row: int
    tag: str
    name: str
    keyword: str | None
    basic: str
    options: dict[str, str]
    retired: bool
    in_iod: bool


@lru_cache(maxsize=1)
def rules() -> tuple[Rule, ...]:
    """Every row of the table, in its order."""
    raw = json.loads(TABLE_FILE.read_text(encoding="utf-8"))
    option_names = [f.name for f in fields(Options)]
    return tuple(
        Rule(
            row=r["row"],
            tag=r["tag"],
            name=r["name"],
            keyword=r["keyword"],
            basic=r["basic_profile"],
            options={o: r[o] for o in option_names if r[o] is not None},
            retired=r["retired"],
            in_iod=r["in_std_comp_iod"],
        )
        for r in raw
    )


_EXACT = re.compile(r"^\(([0-9A-F]{4}),([0-9A-F]{4})\)$")
_MASKED = re.compile(r"^\(([0-9A-Fx]{4}),([0-9A-Fx]{4})\)$")


def _mask(pattern: str) -> tuple[int, int]:
    """(mask, value) of a table tag such as ``(50xx,xxxx)``: x digits match anything."""
    digits = pattern[1:5] + pattern[6:10]
    mask = int("".join("0" if c == "x" else "F" for c in digits), 16)
    value = int("".join("0" if c == "x" else c for c in digits), 16)
    return mask, value


@lru_cache(maxsize=1)
def _index() -> tuple[dict[int, Rule], tuple[tuple[int, int, Rule], ...]]:
    exact: dict[int, Rule] = {}
    masked = []
    for rule in rules():
        if _EXACT.match(rule.tag):
            exact[int(rule.tag[1:5] + rule.tag[6:10], 16)] = rule
        elif _MASKED.match(rule.tag):
            masked.append((*_mask(rule.tag), rule))
        # The private-attributes row is handled by Profile.action, not by its tag text.
    return exact, tuple(masked)


def rule_for(tag: int) -> Rule | None:
    """The table row that covers `tag` (exact, or a repeating group such as 60xx)."""
    exact, masked = _index()
    if tag in exact:
        return exact[tag]
    for mask, value, rule in masked:
        if tag & mask == value:
            return rule
    return None


@lru_cache(maxsize=1)
def _types() -> dict:
    return json.loads(TYPES_FILE.read_text(encoding="utf-8"))


def attribute_type(keyword: str | None, sop_class: str | None = None, parent: str | None = None) -> int | None:
    """The PS3.3 Type (1 or 2) of a compound-coded attribute: in the IOD of `sop_class`
    when it sits in the data set itself, or inside the sequence `parent`. None for Type 3,
    an attribute the IOD does not have, or a SOP class the data does not know."""
    data = _types()
    entry = data["attributes"].get(keyword or "")
    if entry is None:
        return None
    if parent is not None:
        return entry["nested"].get(parent)
    iod = data["sop_class_iod"].get(sop_class or "")
    return entry["top"].get(iod) if iod else None


#: The choice for each Type, in order of preference among the codes offered: a Type 1
#: attribute needs a value, a Type 2 one needs to be present, a Type 3 one can go.
_BY_TYPE = {1: ("U", "D", "Z", "X"), 2: ("Z", "D", "X")}


def _resolve_compound(code: str, keyword: str | None, kind: int | None) -> str:
    if "/" not in code:
        return code
    choices = code.replace("*", "").split("/")
    if keyword in PSEUDONYMISED and "D" in choices:
        return "D"
    if "U*" in code.split("/"):
        # A sequence of references (X/Z/U*): kept, with every UID inside pseudonymised as
        # everywhere else, so that what an instance references (and what its Common
        # Instance Reference module says it references) still holds together.
        return "U"
    for choice in _BY_TYPE.get(kind or 3, ()):
        if choice in choices:
            return choice
    return choices[0]


class Profile:
    """The Basic Profile with a set of options: the action for any tag."""

    def __init__(self, options: Options | None = None):
        self.options = options or Options()
        self._active = self.options.active()

    def __eq__(self, other) -> bool:
        return isinstance(other, Profile) and other.options == self.options

    def __hash__(self) -> int:
        return hash(self.options)

    def action(self, tag: int, sop_class: str | None = None, parent: str | None = None) -> str:
        """One of X, Z, D, K, C, U for `tag` (group length and private creators included),
        in a file of `sop_class`, inside the sequence keyword `parent` (None at the top)."""
        return _action(self, tag, sop_class, parent)

    def _action(self, tag: int, sop_class: str | None, parent: str | None) -> str:
        group, element = tag >> 16, tag & 0xFFFF
        if element == 0x0000:
            return "X"  # group lengths: recomputed by the writer, never carried over
        if group & 1:
            return self.private_action(tag, None, None)
        rule = rule_for(tag)
        if rule is None:
            return self._unlisted_action(tag)
        return self.rule_action(rule, sop_class, parent)

    def _unlisted_action(self, tag: int) -> str:
        """A standard attribute the table does not list: kept when its VR cannot carry a
        name, a date or free text; otherwise treated like the listed ones of its kind."""
        from pydicom.datadict import dictionary_VR, keyword_for_tag

        try:
            vr = dictionary_VR(tag)  # repeating groups (60xx) included
        except KeyError:
            return "X"  # unknown to the dictionary
        if keyword_for_tag(tag) in UNLISTED_IDENTIFYING:
            return "X"
        if vr in ("DA", "DT", "TM"):
            if self.options.retain_longitudinal_full_dates:
                return "K"
            return "C" if self.options.retain_longitudinal_modified_dates else "X"
        if vr in ("LT", "ST", "UT", "UC"):
            if tag == TEXT_VALUE and self.options.clean_structured_content:
                return "C"  # the text of a content item, which that option cleans, not removes
            return "C" if self.options.clean_descriptors else "X"
        if vr in ("PN", "UR"):
            return "X"
        if vr in ("SH", "LO"):
            return "C"  # names and labels the table does not foresee (Overlay Description ...)
        return "K"

    def rule_action(self, rule: Rule, sop_class: str | None = None, parent: str | None = None) -> str:
        candidates = [rule.options[o] for o in self._active if o in rule.options]
        code = min(candidates, key=PRIVACY_ORDER.index) if candidates else rule.basic
        if "/" not in code:
            return code
        return _resolve_compound(code, rule.keyword, attribute_type(rule.keyword, sop_class, parent))

    def private_action(self, tag: int, creator: str | None, vr: str | None) -> str:
        """K or X for a private attribute, whose meaning depends on its block's `creator`
        (for a private creator element, its own value). Removed, unless Retain Safe Private
        is on and Table E.3.10-1 lists it (creator, group and element, with a matching VR
        where the file states one); a creator element is kept when the table lists it."""
        if not self.options.retain_safe_private or not creator:
            return "X"
        group, element = tag >> 16, tag & 0xFFFF
        creator = creator.strip()
        if 0x0010 <= element <= 0x00FF:
            return "K" if creator in _safe_creators() else "X"
        vrs = safe_private().get((creator, group, element & 0xFF))
        if vrs is None:
            return "X"  # not listed
        if vr in (None, "UN"):
            # Bytes nobody parsed: a listed sequence would keep whatever its items hold,
            # and a listed UID could not be pseudonymised.
            return "X" if (not vrs or "SQ" in vrs or "UI" in vrs) else "K"
        if vrs:
            return "K" if vr in vrs else "X"  # else a different attribute under a listed number
        # The table gives no VR (a few vendor numbers): kept only as numbers.
        return "K" if vr in NUMBER_VRS else "X"


@lru_cache(maxsize=1 << 16)
def _action(profile: Profile, tag: int, sop_class: str | None, parent: str | None) -> str:
    # Asked for each attribute of each file, several times (the identity, the profile walk,
    # the check), and the same for every file with these options: remembered.
    return profile._action(tag, sop_class, parent)


@lru_cache(maxsize=1)
def safe_private() -> dict[tuple[str, int, int], frozenset[str]]:
    """Table E.3.10-1 (2026d): (private creator, group, element byte) -> the listed VRs
    (empty where the table gives none)."""
    raw = json.loads(SAFE_PRIVATE_FILE.read_text(encoding="utf-8"))
    table: dict[tuple[str, int, int], frozenset[str]] = {}
    for row in raw["rows"]:
        group, element = row["tag"][1:-1].split(",")
        vrs = frozenset(v for v in row["vr"].split("/") if v)
        table[(row["private_creator"], int(group, 16), int(element[2:], 16))] = vrs
    return table


@lru_cache(maxsize=1)
def _safe_creators() -> frozenset[str]:
    return frozenset(creator for creator, _, _ in safe_private())

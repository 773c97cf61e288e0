"""De-identifying one data set: the profile's action on every attribute, recursively.

:func:`deidentify` walks the data set and every item of every sequence it keeps, at any
depth, and applies :class:`~curate.deid.profile.Profile` actions:

* ``X`` removes, ``Z`` empties, ``D`` puts a dummy of the attribute's VR (a keyed
  pseudonym for PatientID; a sequence has no valid dummy, and goes), ``U`` puts the
  keyed UID (a sequence of references keeps its items, UIDs pseudonymised), ``K``
  keeps, and a UID that names one thing is pseudonymised even where the table does
  not list it (:mod:`curate.deid.uids`);
* ``C`` cleans: dates move back by the patient's keyed shift (Retain Longitudinal
  Temporal Information with Modified Dates), free text loses the patient's own names and
  identifiers (Clean Descriptors), structured content and graphics are cleaned item by
  item;
* the file meta group is rebuilt around the new SOP Instance UID, and the attributes
  that record the de-identification are added (PS3.15 E.1.1, CID 7050);
* what the output must still be to stay valid: an overlay or curve whose data went
  loses its whole group, a report whose verifying observer went is UNVERIFIED.

Pixel data is never touched: its bytes are written back as they were read.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import unicodedata
import uuid
from collections import Counter
from dataclasses import dataclass, field

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence

from curate.deid import vendors
from curate.deid.identifiers import (
    ID_KEYWORDS,
    LOOKALIKES,
    MIN_LENGTH,
    TEXT_VRS,
    UNDECOMPOSED,
    WRITTEN_OUT,
    Finder,
    date_key,
    id_spellings,
    identifies,
    is_invisible,
    name_spellings,
    no_spaces_script,
    value_segments,
)
from curate.deid.profile import TABLE_EDITION, Options, Profile
from curate.deid.pseudonym import Pseudonymizer
from curate.deid.uids import identifying_uids, identifying_values, is_well_known
from curate.deid.vendors import VENDOR_TAGS

IMPLEMENTATION_VERSION = "CURATE_DEID_1"
#: curate's Implementation Class UID: a UUID-derived UID (PS3.5 B.2), the same everywhere.
IMPLEMENTATION_UID = f"2.25.{uuid.uuid5(uuid.NAMESPACE_URL, 'curate:deid').int}"
#: CID 7050 De-identification Method: the profile, then one code per option.
PROFILE_CODE = ("113100", "Basic Application Confidentiality Profile")
OPTION_CODES: dict[str, tuple[str, str]] = {
    "clean_graphics": ("113103", "Clean Graphics Option"),
    "clean_structured_content": ("113104", "Clean Structured Content Option"),
    "clean_descriptors": ("113105", "Clean Descriptors Option"),
    "retain_longitudinal_full_dates": ("113106", "Retain Longitudinal Temporal Information Full Dates Option"),
    "retain_longitudinal_modified_dates": ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
    "retain_patient_characteristics": ("113108", "Retain Patient Characteristics Option"),
    "retain_device_identity": ("113109", "Retain Device Identity Option"),
    "retain_uids": ("113110", "Retain UIDs Option"),
    "retain_safe_private": ("113111", "Retain Safe Private Option"),
    "retain_institution_identity": ("113112", "Retain Institution Identity Option"),
}

DUMMY_TEXT = "ANONYMIZED"
DUMMIES: dict[str, object] = {
    "AE": "ANON",
    "AS": "000Y",
    "CS": "ANON",
    "DA": "19000101",
    "DS": "0",
    "DT": "19000101000000",
    "IS": "0",
    "LO": DUMMY_TEXT,
    "LT": DUMMY_TEXT,
    "PN": "ANONYMOUS",
    "SH": DUMMY_TEXT,
    "ST": DUMMY_TEXT,
    "TM": "000000",
    "UC": DUMMY_TEXT,
    "UR": "urn:anonymized",
    "UT": DUMMY_TEXT,
    "FL": 0.0,
    "FD": 0.0,
    "SL": 0,
    "SS": 0,
    "UL": 0,
    "US": 0,
    "SV": 0,
    "UV": 0,
}
BINARY_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "UN"}
#: The repeating groups of overlays (60xx) and retired curves (50xx), and the element
#: that holds their data.
GRAPHIC_GROUPS = frozenset(range(0x6000, 0x6020, 2)) | frozenset(range(0x5000, 0x5020, 2))
DATA_ELEMENT = 0x3000
#: Ages above this many years become this age (HIPAA safe harbour), even when kept.
AGE_CAP_YEARS = 90
PATIENT_AGE = 0x00101010


@dataclass
class Identity:
    """What identifies this file's patient, gathered before anything is changed: the key
    for pseudonyms and date shifts, and the strings Clean Descriptors scrubs from text."""

    patient_key: str
    patient_id: str
    issuer: str
    words: list[str] = field(default_factory=list)
    #: Every identifying UID of the source (:mod:`curate.deid.uids`), which the output
    #: must not hold unless Retain UIDs keeps them.
    uids: frozenset[str] = frozenset()
    #: The header's dates (YYYYMMDD), found in text however they are written.
    dates: frozenset[str] = frozenset()

    @classmethod
    def of(cls, ds: Dataset, profile: Profile | None = None) -> Identity:
        """What identifies the patient of `ds` (:mod:`curate.deid.identifiers`); with
        `profile`, the values of the text attributes it removes or replaces too."""
        patient_id = str(ds.get("PatientID", "") or "")
        issuer = str(ds.get("IssuerOfPatientID", "") or "")
        words: set[str] = set()
        dates: set[str] = set()
        full_dates = profile is not None and profile.options.retain_longitudinal_full_dates
        sop_class = str(ds.get("SOPClassUID", "") or "")
        for element in ds.iterall():
            if element.tag.is_private or element.value in (None, ""):
                continue
            if element.VR == "PN" or _dictionary_vr(element.tag) == "PN":  # a name written with another VR too
                for value in _values(element.value):
                    words |= name_spellings(value)
            elif element.keyword in ID_KEYWORDS:
                for value in _values(element.value):
                    words |= id_spellings(value)
            elif element.VR == "DA" and (not full_dates or element.keyword == "PatientBirthDate"):
                dates.update(key for value in _values(element.value) if (key := date_key(value)))
            elif element.VR in TEXT_VRS and profile is not None:
                if identifies(element.keyword) and profile.action(int(element.tag), sop_class) in ("X", "Z", "D", "U"):
                    for value in _values(element.value):
                        words |= value_segments(element.keyword, value)
        return cls(
            patient_key=f"{issuer}\x00{patient_id}",
            patient_id=patient_id,
            issuer=issuer,
            words=sorted(words, key=len, reverse=True),
            uids=identifying_uids(ds),
            dates=frozenset(dates),
        )

    def pattern(self) -> Finder | None:
        """Every identifying value (:class:`curate.deid.identifiers.Finder`), built once:
        every cleaned value asks for it."""
        return self._pattern

    def header_pattern(self) -> Finder | None:
        """:meth:`pattern` without the IDs shorter than three characters, for the check
        of a written header: a code or number that equals "2" is no sign of a leak."""
        return self._header_pattern

    def long_pattern(self) -> Finder | None:
        """Only the values of three characters or more (two signs of a script without
        spaces), dates aside: for binary data (pixel data), where two letters or a run
        of digits occur by chance."""
        return self._long_pattern

    @functools.cached_property
    def _pattern(self) -> Finder | None:
        return _finder(self.words, self.dates)

    @functools.cached_property
    def _header_pattern(self) -> Finder | None:
        return _finder([w for w in self.words if len(w) >= MIN_LENGTH or not any(c.isdigit() for c in w)], self.dates)

    @functools.cached_property
    def _long_pattern(self) -> Finder | None:
        # Two signs of a script without spaces (a Chinese name) are as rare in bytes as
        # three letters.
        long = [w for w in self.words if len(w) >= MIN_LENGTH or (len(w) >= 2 and no_spaces_script(w))]
        return _finder(long, frozenset())


def _finder(words: list[str], dates: frozenset[str]) -> Finder | None:
    return Finder(words, dates) if words or dates else None


def _dictionary_vr(tag) -> str | None:
    try:
        return dictionary_VR(tag)
    except KeyError:
        return None


def _is_multi(value) -> bool:
    return isinstance(value, (list, tuple, MultiValue))


def _values(value) -> list:
    if value is None or value == "":
        return []
    if _is_multi(value):
        return [v for v in value if v not in (None, "")]
    return [value]


@dataclass
class _File:
    """What the walk of one file needs at every depth."""

    identity: Identity
    shift: dt.timedelta
    sop_class: str
    #: (attribute, outcome) -> count, for the run's audit (:data:`OUTCOMES`).
    audit: Counter = field(default_factory=Counter)


class Deidentifier:
    """Applies one profile with one key; reusable across files (it holds no file state)."""

    def __init__(self, profile: Profile, pseudonymizer: Pseudonymizer):
        self.profile = profile
        self.pseudo = pseudonymizer
        self.options: Options = profile.options

    def deidentify(self, ds: Dataset, identity: Identity | None = None, audit: Counter | None = None) -> Dataset:
        """De-identify `ds` in place (its file meta group included) and return it.
        `identity` is `Identity.of(ds)` where the caller already took it; `audit`, when
        given, gains one count per attribute and what became of it (:data:`OUTCOMES`),
        by keyword: never a value."""
        if identity is None:
            identity = Identity.of(ds, self.profile)
        # The IOD decides compound actions (X/Z/D ...): its SOP class is read before anything changes.
        file = _File(identity, self.pseudo.date_shift(identity.patient_key), str(ds.get("SOPClassUID", "") or ""))
        if audit is not None:
            file.audit = audit
        self._dataset(ds, file, None)
        _declare_undeclared_latin1(ds)
        _unverify_without_observer(ds)
        self._record_method(ds)
        self._rebuild_meta(ds)
        return ds

    # --- the walk -----------------------------------------------------------------------

    def _dataset(self, ds: Dataset, file: _File, parent: str | None) -> None:
        """Clean `ds`, the file's data set (`parent` None) or an item of the sequence `parent`."""
        private = False
        removed_groups: set[int] = set()
        outcomes: dict = {}
        for tag in list(ds.keys()):
            element = ds[tag]
            if tag.is_private:
                private = True
                action = self.profile.private_action(int(tag), _private_creator(ds, element), element.VR)
            else:
                action = self.profile.action(int(tag), file.sop_class, parent)
            if action == "C" and element.VR in BINARY_VRS:
                action = "X"  # bytes nobody can read (UN) or bitmaps (overlays) cannot be cleaned
            if action == "K" and element.VR == "UI" and not self.options.retain_uids:
                if identifying_values(element.keyword, element.value):
                    action = "U"  # a UID the table does not list still names one thing
            before = element.value
            if action == "X":
                del ds[tag]
                if tag.element == DATA_ELEMENT and tag.group in GRAPHIC_GROUPS:
                    removed_groups.add(tag.group)
            elif element.VR == "SQ" and action == "D":
                del ds[tag]  # see _sequence
                action = "X"
            elif element.VR == "SQ":
                self._sequence(element, action, file)
            elif action == "Z":
                element.value = b"" if element.VR in BINARY_VRS else ""
            elif action == "D":
                element.value = self._dummy(element, file.identity, ds if parent else None)
            elif action == "U":
                element.value = self._uids(element.value)
            elif action == "C":
                element.value = self._clean(element, file.identity, file.shift)
            elif action == "K" and int(tag) == PATIENT_AGE:
                element.value = _cap_age(element.value)
            outcomes[tag] = (_audit_name(tag, element), _outcome(action, element, before))
        if private:
            _drop_empty_private_blocks(ds)
        for tag in [t for t in ds.keys() if t.group in removed_groups]:
            # An overlay (or curve) without its data is no longer one: its other
            # attributes (rows, columns, origin, type) would leave a module missing a
            # Type 1 attribute, so the whole group goes.
            del ds[tag]
            outcomes[tag] = (outcomes[tag][0], "removed")
        file.audit.update(outcomes.values())

    def _sequence(self, element: DataElement, action: str, file: _File) -> None:
        if action == "Z":
            element.value = Sequence([])
            return
        if action == "D":
            # Gone: an item with nothing in it would lack the attributes its macro
            # requires (a content item's Relationship Type, an observer's name), an empty
            # sequence breaks a Type 1C one, and a cleaned copy is no dummy (items such as
            # Person Identification codes hold names in attributes kept elsewhere). The
            # caller removes it.
            return
        # K, C and U (X/Z/U*): keep the items, with everything inside them cleaned by the profile.
        for item in element.value:
            self._dataset(item, file, element.keyword or None)

    def _dummy(self, element: DataElement, identity: Identity, item: Dataset | None):
        if element.keyword == "PatientID":
            if item is None:
                return self.pseudo.patient_id(identity.patient_id, identity.issuer)
            # Another patient's ID in an item (a group of patients, other IDs): its own
            # pseudonym, under the issuer the item names.
            return self.pseudo.patient_id(str(element.value or ""), str(item.get("IssuerOfPatientID", "") or ""))
        if element.VR == "UI":
            return self._uids(element.value)
        if element.VR in BINARY_VRS:
            return b"\x00\x00"
        return DUMMIES.get(element.VR, DUMMY_TEXT)

    def _uids(self, value):
        # A well-known UID (a DICOM-defined frame of reference, a coding scheme) names
        # no one and keeps its meaning.
        if _is_multi(value):
            return [str(v) if is_well_known(str(v)) else self.pseudo.uid(str(v)) for v in value]
        return self.pseudo.uid(str(value)) if value and not is_well_known(str(value)) else value

    def _clean(self, element: DataElement, identity: Identity, shift: dt.timedelta):
        value = element.value
        if element.VR in ("DA", "DT") and self.options.retain_longitudinal_modified_dates:
            return _shift_dates(value, element.VR, shift)
        if element.VR in ("TM", "AS") or value in (None, ""):
            return value  # times of day and ages carry over; dates move
        if element.VR in ("LO", "LT", "SH", "ST", "UC", "UT", "PN"):
            return _scrub(value, identity.pattern(), keeps_vendor_words=int(element.tag) in VENDOR_TAGS)
        return value

    # --- what records the de-identification --------------------------------------------

    def _record_method(self, ds: Dataset) -> None:
        active = self.options.active()
        ds.PatientIdentityRemoved = "YES"
        # LO holds 64 characters a value, and the attribute takes several values: the
        # profile first, then each option by name.
        names = [OPTION_CODES[o][1] for o in active if o in OPTION_CODES]
        ds.DeidentificationMethod = [f"curate: PS3.15 {TABLE_EDITION} Basic Profile", *names]
        codes = [PROFILE_CODE] + [OPTION_CODES[o] for o in active if o in OPTION_CODES]
        items = []
        for value, meaning in codes:
            item = Dataset()
            item.CodeValue = value
            item.CodingSchemeDesignator = "DCM"
            item.CodeMeaning = meaning
            items.append(item)
        ds.DeidentificationMethodCodeSequence = Sequence(items)
        if self.options.retain_longitudinal_full_dates:
            ds.LongitudinalTemporalInformationModified = "UNMODIFIED"
        elif self.options.retain_longitudinal_modified_dates:
            ds.LongitudinalTemporalInformationModified = "MODIFIED"
        else:
            ds.LongitudinalTemporalInformationModified = "REMOVED"

    def _rebuild_meta(self, ds: Dataset) -> None:
        # The 128-byte preamble is free for applications to fill: writers have put names in it.
        ds.preamble = b"\0" * 128
        old = getattr(ds, "file_meta", None) or FileMetaDataset()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = ds.get("SOPClassUID", old.get("MediaStorageSOPClassUID", ""))
        meta.MediaStorageSOPInstanceUID = ds.get("SOPInstanceUID", "")
        if "TransferSyntaxUID" in old:
            meta.TransferSyntaxUID = old.TransferSyntaxUID
        meta.ImplementationClassUID = IMPLEMENTATION_UID
        meta.ImplementationVersionName = IMPLEMENTATION_VERSION
        ds.file_meta = meta


#: What became of an attribute, by action (``C`` says ``cleaned`` or ``shifted`` when it
#: changed the value, ``kept`` when it found nothing to change).
OUTCOMES = {"X": "removed", "Z": "emptied", "D": "replaced", "U": "pseudonymised", "K": "kept"}


def _outcome(action: str, element: DataElement, before) -> str:
    if element.VR == "SQ" and action in ("K", "C", "U"):
        return "kept, items cleaned"
    if action in ("C", "K"):
        if element.value == before:
            return "kept"
        if action == "K":
            return "capped"  # an age over the safe-harbour limit
        return "shifted" if element.VR in ("DA", "DT") else "cleaned"
    return OUTCOMES[action]


def _audit_name(tag, element: DataElement) -> str:
    """The attribute's keyword; a private one by its tag, its element byte masked (the
    block a creator got is the file's choice), with its creator left out."""
    if tag.is_private:
        return f"private ({tag.group:04X},xx{tag.element & 0xFF:02X})" if tag.element > 0xFF else "private creator"
    return element.keyword or f"({tag.group:04X},{tag.element:04X})"


def _unverify_without_observer(ds: Dataset) -> None:
    """A structured report said VERIFIED by an observer whom de-identification removed:
    it is no longer verified by anyone a reader can see (PS3.3 C.17.2: the observer is
    required only for a verified document)."""
    if str(ds.get("VerificationFlag", "")).upper() == "VERIFIED" and not ds.get("VerifyingObserverSequence"):
        ds.VerificationFlag = "UNVERIFIED"
        if "VerifyingObserverSequence" in ds:
            del ds.VerifyingObserverSequence


def _declare_undeclared_latin1(ds: Dataset) -> None:
    """Text outside ASCII with no Specific Character Set, or an empty or ISO_IR 6 one
    (common in the wild), was read as ISO 8859-1 and is written back as such: say so, so
    that the file is consistent."""
    declared = ds.get("SpecificCharacterSet")
    if declared not in (None, "", "ISO_IR 6"):
        return
    for element in ds.iterall():
        if element.VR in ("SH", "LO", "ST", "LT", "UC", "UT", "PN") and any(
            not str(v).isascii() for v in _values(element.value)
        ):
            ds.SpecificCharacterSet = "ISO_IR 100"
            return


def _private_creator(ds: Dataset, element: DataElement) -> str | None:
    """The creator of a private element's block (for a creator element, its own value)."""
    group, number = element.tag.group, element.tag.element
    if 0x0010 <= number <= 0x00FF:
        return str(element.value or "")
    creator = ds.get((group << 16) | (number >> 8))
    return str(creator.value or "") if creator is not None and number >> 8 >= 0x10 else None


def _drop_empty_private_blocks(ds: Dataset) -> None:
    """Private creator elements whose block has nothing left in it."""
    used = {(t.group, t.element >> 8) for t in ds.keys() if t.is_private and t.element >= 0x1000}
    for tag in [t for t in ds.keys() if t.is_private and 0x0010 <= t.element <= 0x00FF]:
        if (tag.group, tag.element) not in used:
            del ds[tag]


def _shift_dates(value, vr: str, shift: dt.timedelta):
    if _is_multi(value):
        return [_shift_one(str(v), vr, shift) for v in value]
    return _shift_one(str(value), vr, shift)


def _shift_one(text: str, vr: str, shift: dt.timedelta) -> str:
    text = text.strip()
    try:
        day = dt.datetime.strptime(text[:8], "%Y%m%d").date()
    except ValueError:
        return ""  # not a date: nothing of it can be kept safely
    return (day + shift).strftime("%Y%m%d") + (text[8:] if vr == "DT" else "")


def _scrub(value, pattern: Finder | None, keeps_vendor_words: bool = False):
    if _is_multi(value):
        return [_scrub(v, pattern, keeps_vendor_words) for v in value]
    text = str(value)
    if pattern is None:
        return text
    if keeps_vendor_words:  # "Philips" is the maker's, not a patient Philip's (vendors)
        return _starred(text, vendors.unexcused(text, _finds(text, pattern)))
    return _scrub_text(text, pattern)


def _finds(text: str, pattern: Finder) -> list[tuple[int, int]]:
    """Where `pattern` finds a value in `text`: as written, and as :func:`_folded_finds`."""
    return list(pattern.spans(text)) + _folded_finds(text, pattern)


def _folded_finds(text: str, pattern: Finder) -> list[tuple[int, int]]:
    """Where `pattern` finds a value in `text` without its accents or with them written
    out (:func:`_fold_indexed`), mapped back to `text`."""
    found = []
    for written_out in (False, True):
        folded, origin = _fold_indexed(text, written_out)
        found += [(origin[start], origin[end - 1] + 1) for start, end in pattern.spans(folded)]
    return found


def _starred(text: str, found: list[tuple[int, int]]) -> str:
    """`text` with one "*" over each of the `found` spans, overlapping ones as one."""
    out, last = [], 0
    for start, end in sorted(found):
        if start >= last:
            out += [text[last:start], "*"]
            last = end
        elif end > last:
            last = end  # reaches past the previous find: the star covers both
    return "".join(out) + text[last:]


def _scrub_text(text: str, pattern: Finder) -> str:
    scrubbed = pattern.sub("*", text)
    # A name written with accents in the header and without them in the text, or the
    # reverse: matched on the text without accents, replaced in the text as written (the
    # rest keeps its characters: "5 µg" must not become "5 μg").
    found = _folded_finds(scrubbed, pattern)
    return _starred(scrubbed, found) if found else scrubbed


def _fold_indexed(text: str, written_out: bool = False) -> tuple[str, list[int]]:
    """`text` without accents (Søren: Soren), or with them written out and apostrophes
    dropped (Soeren, OBrien), invisible characters dropped and Cyrillic and Greek
    lookalikes read as Latin either way, and for
    each of its characters the index of the character of `text` it came from: a name
    the header spells one way is found in text that spells it another."""
    if text.isascii() and "\x00" not in text and not (written_out and "'" in text):  # most text
        return (text.lower() if written_out else text), list(range(len(text)))
    folded, origin = [], []
    for i, c in enumerate(text):
        if (written_out and c in "'’") or is_invisible(c):
            continue  # O'Brien as a RIS writes it: OBRIEN; ZEB<soft hyphen>ULON: ZEBULON
        c = c.translate(LOOKALIKES)  # Smіth with a Cyrillic і: Smith
        plain = c.lower().translate(WRITTEN_OUT) if written_out else c.translate(UNDECOMPOSED)
        for d in unicodedata.normalize("NFKD", plain):
            if not unicodedata.combining(d):
                folded.append(d)
                origin.append(i)
    return "".join(folded), origin


def _cap_age(value):
    text = str(value or "").strip().upper()
    match = re.fullmatch(r"(\d{3})Y", text)
    if match and int(match.group(1)) >= AGE_CAP_YEARS:
        return f"{AGE_CAP_YEARS:03d}Y"
    return value

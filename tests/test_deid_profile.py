"""The PS3.15 table as the project carries it, the actions it gives, and keyed pseudonyms."""

from __future__ import annotations

import collections
import hashlib
import json
import re
from pathlib import Path

import pytest
from pydicom.datadict import tag_for_keyword

from curate.deid import DeidKeyError, Options, Profile, Pseudonymizer, load_key, rules
from curate.deid.profile import (
    SAFE_PRIVATE_FILE,
    TABLE_EDITION,
    TABLE_FILE,
    TYPES_FILE,
    attribute_type,
    rule_for,
    safe_private,
)

SHARED_TABLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "ps3.15-table-e1-1.json"


def tag(keyword: str) -> int:
    return int(tag_for_keyword(keyword))


def test_table_matches_the_standard():
    table = rules()
    assert TABLE_EDITION == "2026d"
    assert len(table) == 657
    assert [r.row for r in table] == list(range(1, 658))
    # Basic Profile codes of PS3.15 2026d Table E.1-1.
    assert collections.Counter(r.basic for r in table) == {
        "X": 417,
        "D": 93,
        "U": 55,
        "Z": 42,
        "X/D": 23,
        "X/Z": 11,
        "X/Z/D": 8,
        "Z/D": 6,
        "X/Z/U*": 2,
    }
    assert sum(r.retired for r in table) == 102 and sum(r.in_iod for r in table) == 473
    assert all(set(r.options.values()) <= {"K", "C"} for r in table)
    assert all(re.fullmatch(r"\(([0-9A-Fx]{4}),([0-9A-Fx]{4})\)", r.tag) or "odd" in r.tag for r in table)


@pytest.mark.skipif(not SHARED_TABLE.exists(), reason="the shared copy of the table is not beside the project")
def test_project_copy_is_the_shared_table():
    assert json.loads(TABLE_FILE.read_text()) == json.loads(SHARED_TABLE.read_text())


@pytest.mark.parametrize(
    "keyword, action",
    [
        ("PatientName", "Z"),
        ("PatientID", "D"),  # Z/D, taken as D: a keyed pseudonym links one patient's images
        ("AccessionNumber", "Z"),
        ("PatientBirthDate", "Z"),
        ("StudyInstanceUID", "U"),
        ("SOPInstanceUID", "U"),
        ("FrameOfReferenceUID", "U"),
        ("InstitutionName", "X"),  # X/Z/D, Type 3: removed
        ("ReferencedImageSequence", "U"),  # X/Z/U*: references kept, their UIDs pseudonymised
        ("ContrastBolusAgent", "Z"),  # Z/D, Type 2
        ("OtherPatientIDs", "X"),
        ("Rows", "K"),  # not in the table: a standard attribute that identifies nobody
        ("PixelData", "K"),
        ("Modality", "K"),
        ("Manufacturer", "C"),  # unlisted short text: kept, cleaned of the patient's names
        ("PatientBirthDateInAlternativeCalendar", "X"),  # not in the table, but a birth date
        ("ContactDisplayName", "X"),
        ("OwnerID", "X"),
        ("RequestingPhysicianIdentificationSequence", "X"),
    ],
)
def test_basic_profile_actions(keyword, action):
    assert Profile().action(tag(keyword)) == action


def test_repeating_groups_follow_their_vr():
    assert Profile().action(0x60220022) == "C"  # Overlay Description (60xx,0022), LO, not in the table
    assert Profile().action(0x60220010) == "K"  # Overlay Rows


CR = "1.2.840.10008.5.1.4.1.1.1"
ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.1"
SEGMENTATION = "1.2.840.10008.5.1.4.1.1.66.4"


def test_types_file_covers_exactly_the_compound_coded_attributes():
    data = json.loads(TYPES_FILE.read_text())
    compound = {
        r.keyword for r in rules() if r.keyword and ("/" in r.basic or any("/" in c for c in r.options.values()))
    }
    assert set(data["attributes"]) == compound and len(compound) == 50
    types = [t for a in data["attributes"].values() for part in ("top", "nested") for t in a[part].values()]
    assert set(types) == {1, 2}, "only Types 1 and 2 are recorded; Type 3 resolves like an absent attribute"
    assert set(data["sop_class_iod"].values()) >= {i for a in data["attributes"].values() for i in a["top"]}


@pytest.mark.parametrize(
    "keyword, sop_class, parent, expected",
    [
        # PS3.3: Enhanced MR Image module, Acquisition DateTime 1C; Enhanced General
        # Equipment, Device Serial Number 1; General Image, Content Date 2C; Patient, Patient ID 2.
        ("AcquisitionDateTime", ENHANCED_MR, None, 1),
        ("DeviceSerialNumber", ENHANCED_MR, None, 1),
        ("DeviceSerialNumber", SEGMENTATION, None, 1),
        ("DeviceSerialNumber", CR, None, None),  # General Equipment: Type 3
        ("ContentDate", CR, None, 2),
        ("PatientID", CR, None, 2),
        ("AcquisitionDateTime", CR, None, None),
        ("AcquisitionDateTime", "1.2.3.4.private", None, None),  # a SOP class nobody knows
        ("ReferencedImageSequence", CR, "ReferencedSeriesSequence", 1),
        ("InstitutionName", CR, "OperatorIdentificationSequence", 1),  # Person Identification Macro 1C
        ("StudyDescription", CR, None, None),  # not compound-coded
    ],
)
def test_attribute_types_from_ps3_3(keyword, sop_class, parent, expected):
    assert attribute_type(keyword, sop_class, parent) == expected


@pytest.mark.parametrize(
    "keyword, sop_class, parent, action",
    [
        ("AcquisitionDateTime", ENHANCED_MR, None, "D"),  # X/Z/D, Type 1: a dummy keeps the file valid
        ("AcquisitionDateTime", CR, None, "X"),  # not in the IOD: removed
        ("AcquisitionDateTime", None, None, "X"),  # no SOP class: the first, most removing code
        ("DeviceSerialNumber", ENHANCED_MR, None, "D"),
        ("DeviceSerialNumber", CR, None, "X"),
        ("ContentDate", ENHANCED_MR, None, "D"),  # Z/D, Type 1
        ("ContentDate", CR, None, "Z"),  # Z/D, Type 2
        ("SeriesDate", CR, None, "X"),  # X/D, Type 3
        ("ReferencedImageSequence", CR, "ReferencedSeriesSequence", "U"),  # X/Z/U*, Type 1
        ("SourceImageSequence", CR, "DerivationImageSequence", "U"),  # X/Z/U*: U whatever the Type
        ("InstitutionName", CR, "OperatorIdentificationSequence", "D"),
        ("PatientID", CR, "OtherPatientIDsSequence", "D"),  # the keyed pseudonym everywhere
    ],
)
def test_compound_actions_follow_the_type(keyword, sop_class, parent, action):
    assert Profile().action(tag(keyword), sop_class, parent) == action


def test_options_override_compound_codes_whatever_the_type():
    dates = Profile(Options(retain_longitudinal_modified_dates=True))
    assert dates.action(tag("AcquisitionDateTime"), ENHANCED_MR) == "C"
    assert Profile(Options(retain_device_identity=True)).action(tag("DeviceSerialNumber"), ENHANCED_MR) == "K"


def test_safe_private_table_is_the_standards():
    raw = json.loads(SAFE_PRIVATE_FILE.read_text())
    assert raw["edition"] == TABLE_EDITION
    # The source's checksum of its rows, recomputed over the project's copy.
    canonical = json.dumps(raw["rows"], sort_keys=True, separators=(",", ":")).encode()
    assert hashlib.sha256(canonical).hexdigest() == raw["source"]["content_sha256"]
    assert len(raw["rows"]) == 479 and len(safe_private()) == 479
    creators = collections.Counter(r["private_creator"] for r in raw["rows"])
    assert len(creators) == 20 and creators["Philips Imaging DD 001"] == 184 and creators["GEMS_ACQU_01"] == 4


@pytest.mark.parametrize(
    "tag_, creator, vr, action",
    [
        (0x00191023, "GEMS_ACQU_01", "DS", "K"),  # Table Speed
        (0x00191123, "GEMS_ACQU_01", "DS", "K"),  # the same attribute in another block
        (0x00191023, "GEMS_ACQU_01 ", "UN", "K"),  # padded creator, implicit VR
        (0x00191023, "GEMS_ACQU_01", "LO", "X"),  # a listed number holding text: not that attribute
        (0x00191023, "ACME", "DS", "X"),  # a listed number under another creator
        (0x00191099, "GEMS_ACQU_01", "LO", "X"),  # not listed
        (0x00190010, "GEMS_ACQU_01", "LO", "K"),  # the creator of a listed block
        (0x00190010, "GEMS_PATI_01", "LO", "X"),
        (0x20011003, "Philips Imaging DD 001", "FL", "K"),  # MR Image Diffusion B-Factor
        (0x20011003, None, "FL", "X"),  # no creator: nothing to go by
        (0x01191002, "SIEMENS Ultrasound SC2000", "UN", "X"),  # a listed sequence nobody parsed
        (0x01191002, "SIEMENS Ultrasound SC2000", "SQ", "K"),  # parsed: its items are cleaned
        (0x01191011, "SIEMENS Ultrasound SC2000", "LO", "X"),  # no VR in the table: numbers only
        (0x01191011, "SIEMENS Ultrasound SC2000", "FD", "K"),
    ],
)
def test_safe_private_attributes(tag_, creator, vr, action):
    assert Profile(Options(retain_safe_private=True)).private_action(tag_, creator, vr) == action
    assert Profile().private_action(tag_, creator, vr) == "X", "without the option every private attribute goes"


def test_groups_private_and_unknown_attributes():
    profile = Profile(Options(retain_safe_private=True))
    assert profile.action(0x60003000) == "X"  # overlay data, (60xx,3000)
    assert profile.action(0x60223000) == "X"
    assert profile.action(0x50000010) == "X"  # curve data, (50xx,xxxx)
    assert profile.action(0x00091001) == "X"  # private, its creator unknown
    assert profile.action(0x00190010) == "X"  # private creator
    assert profile.action(0x00080000) == "X"  # group length
    assert profile.action(0x00291234) == "X"  # odd group
    assert profile.action(0x00089999) == "X"  # unknown to the dictionary
    assert rule_for(0x60003000).tag == "(60xx,3000)"


def test_options_change_actions():
    retain = Profile(Options(retain_uids=True, retain_device_identity=True, retain_longitudinal_modified_dates=True))
    assert retain.action(tag("SOPInstanceUID")) == "K"
    assert retain.action(tag("DeviceSerialNumber")) == "K"
    assert retain.action(tag("StudyDate")) == "C"
    # Two options disagree (device identity keeps, modified dates cleans): the less revealing wins.
    assert retain.action(tag("DateOfLastDetectorCalibration")) == "C"
    assert Profile(Options(retain_longitudinal_full_dates=True)).action(tag("StudyDate")) == "K"
    assert Profile(Options(retain_institution_identity=True)).action(tag("InstitutionName")) == "K"
    assert Profile(Options(clean_descriptors=True)).action(tag("StudyDescription")) == "C"
    assert Profile().action(tag("StudyDescription")) == "X"
    with pytest.raises(ValueError, match="exclude each other"):
        Options(retain_longitudinal_full_dates=True, retain_longitudinal_modified_dates=True)


# --- keyed pseudonyms ------------------------------------------------------------------------

KEY = b"0123456789abcdef0123456789abcdef"
UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")


def test_uids_are_valid_stable_and_keyed():
    p = Pseudonymizer(KEY)
    originals = [f"1.2.840.113619.2.55.3.{i}.{i * 7}" for i in range(2000)]
    new = [p.uid(u) for u in originals]
    assert all(UID.match(u) and len(u) <= 64 and u.startswith("2.25.") for u in new)
    assert len(set(new)) == len(new)
    assert new == [Pseudonymizer(KEY).uid(u) for u in originals], "the same key gives the same UIDs"
    assert p.uid("1.2.3\x00") == p.uid("1.2.3"), "padding does not matter"
    other = Pseudonymizer(b"another key, also long enough for a key")
    assert not set(new) & {other.uid(u) for u in originals}
    rooted = Pseudonymizer(KEY, uid_root="1.2.826.0.1.3680043.10.543")
    assert all(UID.match(rooted.uid(u)) and len(rooted.uid(u)) <= 64 for u in originals[:100])
    with pytest.raises(ValueError):
        Pseudonymizer(KEY, uid_root="1.02.3")


def test_patient_pseudonyms_and_date_shifts():
    p = Pseudonymizer(KEY)
    assert p.patient_id("12345") == p.patient_id(" 12345 ")
    assert p.patient_id("12345") != p.patient_id("12346")
    assert p.patient_id("12345", issuer="A") != p.patient_id("12345", issuer="B")
    assert len(p.patient_id("12345")) == 16
    assert p.uid("12345") != p.patient_id("12345")
    shifts = {p.date_shift(f"P{i}").days for i in range(500)}
    assert all(-3650 <= d <= -1 for d in shifts) and len(shifts) > 400
    assert p.date_shift("P1") == Pseudonymizer(KEY).date_shift("P1")


def test_key_from_environment_or_file(monkeypatch, tmp_path):
    monkeypatch.delenv("CURATE_DEID_KEY", raising=False)
    with pytest.raises(DeidKeyError, match="CURATE_DEID_KEY"):
        load_key()
    monkeypatch.setenv("CURATE_DEID_KEY", "short")
    with pytest.raises(DeidKeyError, match="too short"):
        load_key()
    monkeypatch.setenv("CURATE_DEID_KEY", KEY.decode())
    assert load_key() == KEY
    key_file = tmp_path / "deid.key"
    key_file.write_text("a-key-file-key-of-quite-enough-length\n")
    key_file.chmod(0o600)
    assert load_key(key_file) == b"a-key-file-key-of-quite-enough-length"
    for mode in (0o640, 0o604, 0o660):
        key_file.chmod(mode)
        with pytest.raises(DeidKeyError, match="open to other users.*chmod 600"):
            load_key(key_file)
    with pytest.raises(DeidKeyError, match="cannot read"):
        load_key(tmp_path / "missing.key")

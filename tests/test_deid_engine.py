"""De-identifying real files with patient data planted where de-identifiers leak:
nested sequences, private blocks, other patient IDs, free text, references, file meta."""

from __future__ import annotations

import hashlib
import io

import pydicom
import pytest
from conftest import testdata
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from curate.deid import Options, Profile, Pseudonymizer
from curate.deid.engine import Deidentifier

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

KEY = b"0123456789abcdef0123456789abcdef"
NAME, PID, BIRTH = "Quux^Zebulon", "ZB-99881", "19420317"
PLANTED = [
    "Quux",
    "Zebulon",
    "ZEBULON",
    PID,
    "OTHER-7731",
    "ACC5544",
    BIRTH,
    "1942-03-17",
    "Zebulon General Hospital",
    "Dr^Mabuse",
]


def planted(name: str = "CT_small.dcm", pid: str = PID, patient: str = NAME) -> Dataset:
    ds = pydicom.dcmread(testdata(name))
    ds.PatientName = patient
    ds.PatientID = pid
    ds.PatientBirthDate = BIRTH
    ds.OtherPatientIDs = "OTHER-7731"
    other = Dataset()
    other.PatientID = "OTHER-7731"
    ds.OtherPatientIDsSequence = Sequence([other])
    ds.AccessionNumber = "ACC5544"
    ds.InstitutionName = "Zebulon General Hospital"
    ds.ReferringPhysicianName = "Dr^Mabuse"
    ds.StudyDescription = f"Chest CT for {patient.replace('^', ' ')} ({pid}) born 1942-03-17"
    ds.ImageComments = "Quux: follow-up"
    # A private block naming the patient.
    ds.add_new(0x00090010, "LO", "ACME PRIVATE")
    ds.add_new(0x00091001, "LO", f"{patient} {pid}")
    # Nested: a kept sequence (not in the table) holding a reference and, deeper, a name.
    ref = Dataset()
    ref.ReferencedSOPClassUID = ds.SOPClassUID
    ref.ReferencedSOPInstanceUID = "1.2.3.4.5.6.7.8.9"
    deeper = Dataset()
    deeper.PatientName = patient
    deeper.PatientID = pid
    ref.ReferencedInstanceSequence = Sequence([deeper])
    series = Dataset()
    series.SeriesInstanceUID = ds.SeriesInstanceUID
    series.ReferencedInstanceSequence = Sequence([ref])
    ds.ReferencedSeriesSequence = Sequence([series])
    ds.StudyDate = "20200115"
    ds.SeriesDate = "20200116"
    return ds


def written(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def deid(ds: Dataset, key: bytes = KEY, **options) -> Dataset:
    return Deidentifier(Profile(Options(**options)), Pseudonymizer(key)).deidentify(ds)


@pytest.mark.parametrize("options", [{}, {"clean_descriptors": True, "retain_longitudinal_modified_dates": True}])
def test_no_planted_value_survives_anywhere(options):
    original = planted()
    pixels = hashlib.sha256(original.PixelData).hexdigest()
    uids = [
        original.SOPInstanceUID,
        original.StudyInstanceUID,
        original.SeriesInstanceUID,
        original.FrameOfReferenceUID,
        "1.2.3.4.5.6.7.8.9",
    ]
    out = written(deid(original, **options))
    for value in PLANTED + uids:
        assert value.encode() not in out, value
    assert b"ACME PRIVATE" not in out
    back = pydicom.dcmread(io.BytesIO(out))
    assert hashlib.sha256(back.PixelData).hexdigest() == pixels, "pixel data is copied bit for bit"
    assert back.PatientIdentityRemoved == "YES"
    assert back.file_meta.MediaStorageSOPInstanceUID == back.SOPInstanceUID
    assert back.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
    assert not [e for e in back.iterall() if e.tag.is_private]


def test_references_stay_consistent_and_patients_keep_one_pseudonym():
    a, b = planted(), planted()
    b.SOPInstanceUID = "1.2.3.4.5.6.7.8.9"  # the instance a refers to
    c = planted("MR_small.dcm", pid="OTHER-PATIENT", patient="Smith^Jane")
    a, b, c = deid(a), deid(b), deid(c)
    ref = a.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0]
    assert ref.ReferencedSOPInstanceUID == b.SOPInstanceUID, "a reference follows its target"
    assert a.ReferencedSeriesSequence[0].SeriesInstanceUID == a.SeriesInstanceUID
    assert a.StudyInstanceUID == b.StudyInstanceUID and a.FrameOfReferenceUID == b.FrameOfReferenceUID
    assert a.PatientID == b.PatientID != c.PatientID
    deeper = ref.ReferencedInstanceSequence[0]
    assert deeper.PatientName == "" and deeper.PatientID == a.PatientID, "nested items are cleaned like the top level"
    assert all(len(u) <= 64 for u in (a.SOPInstanceUID, a.StudyInstanceUID, ref.ReferencedSOPInstanceUID))


def test_same_key_same_bytes_other_key_other_output():
    first, second = written(deid(planted())), written(deid(planted()))
    assert first == second
    other = deid(planted(), key=b"another key that is long enough to use")
    assert other.SOPInstanceUID != pydicom.dcmread(io.BytesIO(first)).SOPInstanceUID


def test_modified_dates_keep_intervals_within_a_patient():
    out = deid(planted(), retain_longitudinal_modified_dates=True)
    assert out.StudyDate != "20200115" and out.LongitudinalTemporalInformationModified == "MODIFIED"
    import datetime as dt

    study = dt.datetime.strptime(out.StudyDate, "%Y%m%d")
    series = dt.datetime.strptime(out.SeriesDate, "%Y%m%d")
    assert (series - study).days == 1
    assert "PatientBirthDate" not in out or out.PatientBirthDate in ("", None)
    basic = deid(planted())
    assert (
        basic.StudyDate == ""
        and "SeriesDate" not in basic
        and basic.LongitudinalTemporalInformationModified == "REMOVED"
    )


def test_clean_descriptors_scrubs_the_patient_from_free_text():
    out = deid(planted(), clean_descriptors=True)
    assert out.StudyDescription == "Chest CT for * * (*) born *"
    assert out.ImageComments == "*: follow-up"
    assert "StudyDescription" not in deid(planted()), "without the option free text is removed"


def test_ages_over_89_are_bucketed_when_kept():
    ds = planted()
    ds.PatientAge = "097Y"
    assert deid(ds, retain_patient_characteristics=True).PatientAge == "090Y"
    ds = planted()
    ds.PatientAge = "045Y"
    assert deid(ds, retain_patient_characteristics=True).PatientAge == "045Y"
    assert "PatientAge" not in deid(planted())


# --- places found by review ------------------------------------------------------------------


def test_the_preamble_is_cleared():
    ds = planted()
    ds.preamble = b"PATIENT QUUX ZEBULON ZB-99881".ljust(128, b"\0")
    out = written(deid(ds))
    assert out[:128] == b"\0" * 128


def test_unlisted_names_dates_and_text_are_not_kept():
    ds = planted()
    ds.SecondaryReviewerName = "Zebulon^Quux"  # PN not in Table E.1-1
    ds.ProcedureCreationDate = "20200101"  # DA not in the table
    ds.TextValue = "Patient Zebulon Quux ZB-99881 seen"  # UT not in the table (SR text)
    ds.Manufacturer = "ACME"  # LO not in the table: kept, it identifies no one
    out = deid(ds)
    assert "SecondaryReviewerName" not in out and "ProcedureCreationDate" not in out and "TextValue" not in out
    assert out.Manufacturer == "ACME" and out.Rows == ds.Rows
    shifted = deid(planted(), retain_longitudinal_modified_dates=True)
    assert shifted.StudyDate != ""
    cleaned = planted()
    cleaned.TextValue = "Patient Zebulon Quux ZB-99881 seen"
    assert deid(cleaned, clean_descriptors=True).TextValue == "Patient * * * seen"


def test_overlays_and_unreadable_values_are_removed_not_cleaned():
    ds = planted()
    ds.add_new(0x60000010, "US", 8)
    ds.add_new(0x60003000, "OW", b"\x01" * 8)
    ds.add_new(0x00100045, "UN", b"Zebulon Quux prefers ")  # a tag read as bytes
    out = deid(ds, clean_graphics=True, clean_descriptors=True)
    assert 0x60003000 not in out and 0x00100045 not in out
    # An overlay without its data is no overlay: its other attributes go with it, else
    # the Overlay Plane module would lack a Type 1 attribute.
    assert not [tag for tag in out.keys() if tag.group == 0x6000]


@pytest.mark.parametrize(
    "name, text, expected",
    [
        ("Li^Wu", "CT for Li Wu", "CT for * *"),
        ("Smith-Jones^Anne-Marie", "Anne Jones, CT", "* *, CT"),
        ("Müller^Jörg", "MULLER JORG chest", "* * chest"),
        ("山田^太郎", "山田太郎 CT", "* CT"),  # the whole name, run together, is one find
        ("Ann^Lee", "scanner channel, Ann", "scanner channel, *"),
        ("Doe^John", "DOE_JOHN annotated", "*_* annotated"),  # "_" and digits separate names
        ("Doe^John", "JOHN1960 chest", "*1960 chest"),
        # Names of six letters or more are found glued to other letters; shorter ones not.
        ("Zyxwbrook^Quentalia", "seen by MRZYXWBROOKQUENTALIA", "seen by MR**"),
        ("Doe^John", "JOHNDOE chest", "JOHNDOE chest"),
        # Characters that show nothing split no name.
        ("Zyxwbrook^Quentalia", "ZYX\u200bWBROOK seen", "* seen"),
        ("Zyxwbrook^Quentalia", "ZYXW\u00adBROOK seen", "* seen"),
        ("Zyxwbrook^Quentalia", "ZYXW\x00BROOK seen", "* seen"),
        ("Doe^John", "JO\u200dHN DOE", "* *"),
        ("Müller^Jörg", "Dose 5 µg for Müller ½", "Dose 5 µg for * ½"),  # the rest keeps its characters
    ],
)
def test_clean_descriptors_name_forms(name, text, expected):
    ds = planted(patient=name)
    ds.StudyDescription = text
    assert deid(ds, clean_descriptors=True).StudyDescription == expected


def test_other_people_in_free_text_are_scrubbed_and_empty_ids_stay_empty():
    ds = planted()
    ds.ImageComments = "Dr Mabuse asked for a repeat"
    # ReferringPhysicianName is "Dr^Mabuse": both of its parts go.
    assert deid(ds, clean_descriptors=True).ImageComments == "* * asked for a repeat"
    a, b = planted(pid=""), planted(pid="", patient="Other^Person")
    assert deid(a).PatientID == "" and deid(b).PatientID == ""


def _compound_attributes(ds: Dataset, sop_class: str, parent: str | None = None):
    """(parent sequence, keyword, Type, has a value) of every compound-coded attribute of
    Type 1 or 2 in `ds`, at any depth."""
    from curate.deid.profile import attribute_type

    for element in ds:
        kind = attribute_type(element.keyword, sop_class, parent) if element.keyword else None
        if kind is not None:
            yield parent, element.keyword, kind, element.VR == "SQ" or element.value not in (None, "", b"")
        if element.VR == "SQ":
            for item in element.value:
                yield from _compound_attributes(item, sop_class, element.keyword)


@pytest.mark.parametrize(
    "name",
    [
        "emri_small.dcm",
        "eCT_Supplemental.dcm",
        "liver.dcm",
        "RG1_UNCI.dcm",
        "CT_small.dcm",
        "MR_small.dcm",
        "JPEG2000.dcm",
    ],
)
def test_type_1_and_2_attributes_stay_so_the_file_stays_valid(name):
    """Compound codes (X/Z/D ...) follow the attribute's Type in the file's IOD: a Type 1
    attribute keeps a (dummy) value, a Type 2 one stays present."""
    original = pydicom.dcmread(testdata(name))
    sop_class = str(original.SOPClassUID)
    required = list(_compound_attributes(original, sop_class))
    out = pydicom.dcmread(io.BytesIO(written(deid(original))))
    present = {(parent, keyword): has_value for parent, keyword, _, has_value in _compound_attributes(out, sop_class)}
    kept_sequences = {e.keyword for e in out.iterall() if e.VR == "SQ"}
    checked = 0
    for parent, keyword, kind, _ in required:
        if parent is not None and parent not in kept_sequences:
            continue  # the whole sequence went, by its own action
        checked += 1
        assert (parent, keyword) in present, f"Type {kind} {keyword} (in {parent or 'the data set'}) was removed"
        if kind == 1:
            assert present[(parent, keyword)], f"Type 1 {keyword} (in {parent or 'the data set'}) was emptied"
    assert checked, f"{name} has no compound-coded attribute of Type 1 or 2"


def test_type_1_dummies_carry_nothing_of_the_source():
    original = pydicom.dcmread(testdata("emri_small.dcm"))
    assert original.AcquisitionDateTime.startswith("2012")
    out = deid(original)
    assert out.AcquisitionDateTime == "19000101000000", "a dummy date, not the source's"
    assert out.ContentDate == "19000101"
    shifted = deid(pydicom.dcmread(testdata("emri_small.dcm")), retain_longitudinal_modified_dates=True)
    assert shifted.AcquisitionDateTime[:8] not in ("20120820", "19000101"), "with Modified Dates the date moves"
    cr = deid(pydicom.dcmread(testdata("RG1_UNCI.dcm")))
    assert "DeviceSerialNumber" not in cr, "Type 3 in CR: removed"


SAFE_IN_CT_SMALL = {0x00191023, 0x00191024, 0x00191027, 0x00251007, 0x00431027}  # GE, listed in Table E.3.10-1


def test_retain_safe_private_keeps_exactly_the_listed_private_attributes():
    """CT_small.dcm is a real GE file: five of its private attributes are in Table
    E.3.10-1. Listed numbers under another creator, or unlisted ones under a listed
    creator, still go."""
    original = planted()
    source = {int(e.tag): e.value for e in original if int(e.tag) in SAFE_IN_CT_SMALL}
    assert set(source) == SAFE_IN_CT_SMALL
    original.add_new(0x00191099, "LO", "Quux Zebulon")  # GEMS_ACQU_01, element not listed
    original.add_new(0x00190011, "LO", "ACME")
    original.add_new(0x00191123, "LO", "Quux Zebulon")  # a listed number, ACME's block
    out = written(deid(original, retain_safe_private=True))
    back = pydicom.dcmread(io.BytesIO(out))
    kept = {int(e.tag): e.value for e in back if e.tag.is_private and e.tag.element >= 0x1000}
    assert kept == source, "the safe ones, with their values"
    creators = {str(e.value) for e in back if e.tag.is_private and e.tag.element < 0x1000}
    assert creators == {"GEMS_ACQU_01", "GEMS_SERS_01", "GEMS_PARM_01"}, "creators of emptied blocks go"
    for value in [*PLANTED, "ACME", "GEMS_PATI_01"]:
        assert value.encode() not in out, value
    assert "113111" in [item.CodeValue for item in back.DeidentificationMethodCodeSequence]
    without = pydicom.dcmread(io.BytesIO(written(deid(planted()))))
    assert not [e for e in without if e.tag.is_private], "without the option no private attribute stays"


def test_ids_are_found_between_underscores_not_inside_longer_numbers():
    ds = planted()
    ds.StudyDescription = f"{PID}_1 and X{PID}0"
    out = deid(ds, clean_descriptors=True)
    assert out.StudyDescription == f"*_1 and X{PID}0"


def test_other_patients_in_items_get_their_own_pseudonyms():
    ds = planted()
    members = []
    for pid, issuer in (("GROUP-1", "SITE A"), ("GROUP-2", "SITE A"), ("GROUP-1", "SITE B")):
        item = Dataset()
        item.PatientID, item.IssuerOfPatientID = pid, issuer
        members.append(item)
    ds.GroupOfPatientsIdentificationSequence = Sequence(members)
    out = deid(ds)
    pseudonyms = [item.PatientID for item in out.GroupOfPatientsIdentificationSequence]
    assert len(set(pseudonyms)) == 3 and out.PatientID not in pseudonyms
    again = deid(planted())
    assert again.PatientID == out.PatientID


def test_unparsed_or_untyped_safe_private_values_are_not_kept():
    """A safe-listed private sequence read as UN would keep its items' names unparsed;
    a listed attribute with no VR in the table is kept only as a number."""
    ds = planted()
    ds.add_new(0x01190010, "LO", "SIEMENS Ultrasound SC2000")
    ds.add_new(0x01191002, "UN", b"hidden sequence bytes Quux Zebulon")  # listed as SQ
    ds.add_new(0x01191011, "LO", "Quux Zebulon")  # listed with no VR: Stage Timer Time
    ds.add_new(0x01191012, "FL", 1.5)  # listed with no VR: Stop Watch Time
    out = deid(ds, retain_safe_private=True)
    assert 0x01191002 not in out and 0x01191011 not in out
    assert out[0x01191012].value == 1.5

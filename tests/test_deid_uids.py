"""Every UID that names one thing is pseudonymised wherever it sits, listed in Table
E.1-1 or not; UIDs that name a kind of thing stay; and a header that still holds a
source UID is never put in place."""

from __future__ import annotations

import random
from pathlib import Path

import pydicom
import pytest
from dicom_factory import image_dataset, write
from pydicom.datadict import DicomDictionary
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from curate.deid.profile import Options
from curate.deid.pseudonym import UUID_ROOT
from curate.deid.uids import is_well_known, names_a_kind
from curate.deid.worker import deidentify_file

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
KEY = b"test key, not a secret, 32 bytes"
UI_KEYWORDS = sorted(
    entry[4] for entry in DicomDictionary.values() if entry[0] == "UI" and entry[4] and not names_a_kind(entry[4])
)
SQ_KEYWORDS = sorted(entry[4] for entry in DicomDictionary.values() if entry[0] == "SQ" and entry[4])


def planted_uid(rng: random.Random) -> str:
    return "1.3.6.1.4.1." + ".".join(str(rng.randrange(1, 10**6)) for _ in range(rng.randrange(2, 6)))


def plant(ds: Dataset, rng: random.Random, count: int) -> list[str]:
    """`count` UIDs in UI attributes picked at random, at depths 0 to 3."""
    planted = []
    for _ in range(count):
        keyword = rng.choice(UI_KEYWORDS)
        if keyword in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "SOPClassUID"):
            continue
        target = ds
        for _depth in range(rng.randrange(4)):
            item = Dataset()
            setattr(target, rng.choice(SQ_KEYWORDS), Sequence([item]))
            target = item
        uid = planted_uid(rng)
        setattr(target, keyword, uid)
        planted.append(uid)
    return planted


@pytest.mark.parametrize("seed", range(6))
def test_a_uid_planted_anywhere_does_not_reach_the_output(tmp_path, seed):
    rng = random.Random(seed)
    ds = image_dataset(PatientName="Doe^Jane", PatientID="P-1")
    planted = plant(ds, rng, 12)
    source = write(ds, tmp_path / "src.dcm", ExplicitVRLittleEndian if seed % 2 else ImplicitVRLittleEndian)
    target = tmp_path / "out.dcm"
    assert deidentify_file(str(source), str(target), Options(), KEY, UUID_ROOT) == ("written", None)
    out = target.read_bytes()
    assert [uid for uid in planted if uid.encode() in out] == []


def test_the_same_uid_gets_the_same_pseudonym_in_a_listed_and_an_unlisted_attribute(tmp_path):
    frame = "1.3.6.1.4.1.9590.100.1.2.77"
    ds = image_dataset(FrameOfReferenceUID=frame, VolumeFrameOfReferenceUID=frame)
    ds.ReferencedColorPaletteInstanceUID = "1.3.6.1.4.1.9590.100.1.2.78"
    source = write(ds, tmp_path / "src.dcm")
    assert deidentify_file(str(source), str(tmp_path / "out.dcm"), Options(), KEY, UUID_ROOT)[0] == "written"
    out = pydicom.dcmread(tmp_path / "out.dcm")
    assert out.VolumeFrameOfReferenceUID == out.FrameOfReferenceUID != frame
    assert out.ReferencedColorPaletteInstanceUID != ds.ReferencedColorPaletteInstanceUID


def test_uids_that_name_a_kind_of_thing_stay(tmp_path):
    ds = image_dataset()
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "T-D3000", "SRT", "Chest"
    code.CodingSchemeUID = "2.16.840.1.113883.6.96"  # SNOMED CT
    code.ContextUID = "1.2.840.10008.6.1.2"
    ds.AnatomicRegionSequence = Sequence([code])
    ds.ReferencedSOPClassUID = CTImageStorage
    ds.FrameOfReferenceUID = "1.2.840.10008.1.4.1.1"  # a well-known frame of reference (Talairach)
    source = write(ds, tmp_path / "src.dcm")
    assert deidentify_file(str(source), str(tmp_path / "out.dcm"), Options(), KEY, UUID_ROOT)[0] == "written"
    out = pydicom.dcmread(tmp_path / "out.dcm")
    assert out.AnatomicRegionSequence[0].CodingSchemeUID == "2.16.840.1.113883.6.96"
    assert out.ReferencedSOPClassUID == CTImageStorage
    assert out.FrameOfReferenceUID == "1.2.840.10008.1.4.1.1"


def test_retain_uids_keeps_them(tmp_path):
    uid = "1.3.6.1.4.1.9590.100.1.2.99"
    ds = image_dataset(ConcatenationUID=uid)
    source = write(ds, tmp_path / "src.dcm")
    options = Options(retain_uids=True)
    assert deidentify_file(str(source), str(tmp_path / "out.dcm"), options, KEY, UUID_ROOT)[0] == "written"
    assert pydicom.dcmread(tmp_path / "out.dcm").ConcatenationUID == uid


def test_well_known_and_placeholder_values():
    assert is_well_known("1.2.840.10008.5.1.4.1.1.2") and is_well_known("0") and is_well_known("1.2")
    assert not is_well_known("1.3.6.1.4.1.5962.1.1.1")
    assert not is_well_known("2.25.123456789")


def test_a_header_still_holding_a_source_uid_is_not_put_in_place(tmp_path, monkeypatch):
    """The check reads the header back and searches it for every source UID, whatever
    put it there: here the engine is made to keep one."""
    import curate.deid.engine as engine

    uid = "1.3.6.1.4.1.9590.100.1.2.55"
    ds = image_dataset(ReferencedColorPaletteInstanceUID=uid)  # not in Table E.1-1
    source = write(ds, tmp_path / "src.dcm")
    monkeypatch.setattr(engine, "identifying_values", lambda keyword, value: [])
    target = Path(tmp_path / "out.dcm")
    assert deidentify_file(str(source), str(target), Options(), KEY, UUID_ROOT) == (
        "failed",
        "a source UID left in the header",
    )
    assert not target.exists()

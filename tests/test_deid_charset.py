"""Specific Character Set stays consistent with the values written: pydicom's real
character-set files (Latin, Cyrillic, Arabic, Greek, Hebrew, ISO 2022 Japanese and
Korean, UTF-8, GB18030) go through de-identification with Clean Descriptors."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_charset_files
from test_deid_engine import deid, testdata

from curate.deid import Options, Profile
from curate.deid.check import CHARSET_MISMATCH, HEADER_LEAK, decoded_text, header_bytes, header_problem
from curate.deid.engine import Identity

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

NAMED = sorted(Path(f).name for f in get_charset_files("chr*.dcm") if not Path(f).name.startswith("chrSQEncoding"))


def charset_file(name: str) -> pydicom.Dataset:
    return pydicom.dcmread(get_charset_files(name)[0])


def test_every_named_charset_file_is_covered():
    assert len(NAMED) == 15, NAMED


@pytest.mark.parametrize("name", NAMED)
def test_text_in_the_files_character_set_survives_and_the_name_does_not(name):
    ds = charset_file(name)
    declared = ds.SpecificCharacterSet
    groups = [g for g in str(ds.PatientName).split("=") if g]
    native = groups[-1]  # the ideographic or phonetic group where there is one
    family, *given = native.split("^")
    # Text in the file's own script that names nobody: the given name's characters
    # reversed (a family name of one CJK character would be found inside any text).
    other = "".join(reversed("".join(given) or family))
    ds.StudyDescription = f"{other} {family}"
    identity = Identity.of(ds)
    profile = Profile(Options(clean_descriptors=True))
    out = deid(ds, clean_descriptors=True)
    header = header_bytes(out)
    texts = decoded_text(header)  # strict: raises where bytes do not fit the declared set
    assert header_problem(out, identity, profile) is None
    back = pydicom.dcmread(io.BytesIO(header))
    assert back.SpecificCharacterSet == declared
    assert back.StudyDescription == f"{other} *", "the script survives, the family name does not"
    assert not any(family in t for t in texts)


@pytest.mark.parametrize("name", ["chrSQEncoding.dcm", "chrSQEncoding1.dcm"])
def test_sequence_items_are_decoded_under_their_own_character_set(name):
    # chrSQEncoding.dcm: UTF-8 at the top, an item declaring ISO 2022 Japanese; in
    # chrSQEncoding1.dcm the item inherits the top level's ISO 2022 sets.
    texts = decoded_text(Path(get_charset_files(name)[0]).read_bytes())
    assert "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう" in texts
    assert "Doctor^Who^^MD" in texts


def test_undeclared_latin1_text_is_declared():
    # Common in the wild: accented text and no Specific Character Set at all.
    ds = pydicom.dcmread(testdata("CT_small.dcm"))
    del ds.SpecificCharacterSet
    ds.StudyDescription = "Thorax Übersicht"
    raw = io.BytesIO()
    ds.save_as(raw, enforce_file_format=True)
    source = pydicom.dcmread(io.BytesIO(raw.getvalue()))
    out = deid(source, clean_descriptors=True)
    assert out.SpecificCharacterSet == "ISO_IR 100"
    back = pydicom.dcmread(io.BytesIO(header_bytes(out)))
    assert back.StudyDescription == "Thorax Übersicht"
    assert b"Thorax \xdcbersicht" in header_bytes(out), "the source's bytes, now declared"
    plain = pydicom.dcmread(testdata("CT_small.dcm"))
    del plain.SpecificCharacterSet
    assert "SpecificCharacterSet" not in deid(plain), "ASCII needs no declaration"


@pytest.mark.parametrize("declared", ["", "ISO_IR 6"])
def test_latin1_text_under_an_empty_or_ascii_declaration_is_declared(declared):
    ds = pydicom.dcmread(testdata("CT_small.dcm"))
    ds.SpecificCharacterSet = declared
    ds.Manufacturer = "Müller Klinik"
    raw = io.BytesIO()
    ds.save_as(raw, enforce_file_format=True)
    source = pydicom.dcmread(io.BytesIO(raw.getvalue()))
    identity = Identity.of(source)
    out = deid(source)
    assert out.SpecificCharacterSet == "ISO_IR 100"
    assert header_problem(out, identity, Profile()) is None
    assert pydicom.dcmread(io.BytesIO(header_bytes(out))).Manufacturer == "Müller Klinik"


def test_deflated_files_are_searched_as_they_read_not_as_compressed_bytes(tmp_path):
    """A two-letter name part matches somewhere in any long run of compressed bytes; the
    check must not fail a clean deflated file for that."""
    import random

    from pydicom.uid import DeflatedExplicitVRLittleEndian

    from curate.deid.check import file_problem

    ds = pydicom.dcmread(testdata("CT_small.dcm"))
    ds.PatientName = "LI^NA"
    ds.Rows = ds.Columns = 512
    ds.PixelData = random.Random(1).randbytes(512 * 512 * 2)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    source = tmp_path / "source.dcm"
    ds.save_as(source, enforce_file_format=True)
    read = pydicom.dcmread(source)
    identity, profile = Identity.of(read), Profile()
    out = deid(read)
    written = tmp_path / "out.dcm"
    out.save_as(written, enforce_file_format=True)
    assert identity.pattern().search(written.read_bytes().decode("latin-1")), "the compressed bytes do match"
    assert file_problem(written, out, identity, profile) is None
    out.StudyDescription = "for Li Na"
    out.save_as(written, enforce_file_format=True)
    assert file_problem(written, out, identity, profile) == HEADER_LEAK, "a real leak is still found"


def test_a_value_not_in_the_declared_set_is_caught():
    ds = deid(charset_file("chrFren.dcm"))
    identity = Identity.of(ds)
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.add_new(0x00081030, "LO", b"J\xe9r\xf4me's study")  # Latin-1 bytes in a UTF-8 file
    assert header_problem(ds, identity, Profile()) == CHARSET_MISMATCH


def test_a_name_in_a_non_latin_script_is_found_in_the_header():
    ds = charset_file("chrRuss.dcm")
    identity, name = Identity.of(ds), str(ds.PatientName)
    out = deid(ds)
    assert header_problem(out, identity, Profile()) is None
    out.StudyDescription = f"Пациент {name}"  # written as ISO 8859-5 bytes
    assert name.encode("utf-8") not in header_bytes(out), "not findable as UTF-8 bytes"
    assert header_problem(out, identity, Profile()) == HEADER_LEAK

"""Clean Descriptors finds every identifying value of the same header in free text, in
the spellings and formats people write them (the rule: :mod:`curate.deid.identifiers`)."""

from __future__ import annotations

import pytest
from dicom_factory import image_dataset
from test_deid_engine import deid

from curate.deid.identifiers import date_spellings, name_spellings

CLEAN = dict(clean_descriptors=True, retain_longitudinal_modified_dates=True)


def header(**attrs):
    values = dict(
        PatientName="O'Brien-Müller^Anne Groß",
        PatientID="12345",
        PatientBirthDate="19601231",
        StudyDate="20020512",
        AccessionNumber="ACC778",
        StudyID="7",
        PatientAddress="12 Elm Street, Springfield",
        PatientTelephoneNumbers="555-123-4567",
        InstitutionName="Saint Quux Hospital",
        ReferringPhysicianName="van der Berg^Piet",
    )
    values.update(attrs)
    return image_dataset(**values)


@pytest.mark.parametrize(
    "text",
    [
        "seen by OBRIEN",
        "MUELLER ANNE",
        "Mueller, Anne",
        "OBRIEN-MULLER",
        "GROSS",
        "Dr VANDERBERG",
        "MRN12345 chest",
        "ID:12345",
        "born 12/31/1960",
        "born 1960/12/31",
        "DOB 31.12.1960",
        "born Dec 31 1960",
        "born 31 December 1960",
        "study of 2002-05-12",
        "acc ACC778",
        "study 7 follow-up",
        "lives at 12 Elm Street",
        "from Springfield",
        "call (555) 123 4567",
        "at Saint Quux Hospital",
    ],
)
def test_an_identifying_value_in_free_text_is_cleaned(text):
    out = deid(header(StudyDescription=f"CHEST {text} PA"), **CLEAN)
    cleaned = str(out.StudyDescription)
    assert cleaned.startswith("CHEST ") and cleaned.endswith(" PA"), cleaned
    assert "*" in cleaned and text not in cleaned, cleaned


def test_words_of_no_one_stay():
    out = deid(header(StudyDescription="CHEST PA erect, 2 views"), **CLEAN)
    assert str(out.StudyDescription) == "CHEST PA erect, 2 views"


def test_spellings():
    assert {"obrien", "mueller", "muller", "gross"} <= {s.lower() for s in name_spellings("O'Brien^Müller Groß")}
    assert "vanderBerg" in name_spellings("van der Berg^Piet")
    assert {"1960-12-31", "12/31/1960", "31.12.1960", "Dec 31 1960", "31 December 1960"} <= date_spellings("19601231")
    assert date_spellings("1960") == set()

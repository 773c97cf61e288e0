"""Structured content (SR content trees, acquisition context) and graphics (annotations,
overlays): removed to a dummy by the Basic Profile, cleaned item by item under the Clean
Structured Content and Clean Graphics options."""

from __future__ import annotations

import io

import pydicom
import pytest
from conftest import testdata
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from test_deid_engine import deid, written

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

NAME = "Quux^Zebulon"


def code(value: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "99LOCAL", meaning
    return item


def report() -> Dataset:
    """pydicom's real Comprehensive SR, with the patient named in its content tree."""
    ds = pydicom.dcmread(testdata("test-SR.dcm"))
    ds.PatientName, ds.PatientID = NAME, "ZB-99881"
    text = ds.ContentSequence[1].ContentSequence[0]
    assert text.ValueType == "TEXT"
    text.TextValue = "A mass of 2 cm; Zebulon Quux to be recalled"
    person = Dataset()
    person.ValueType, person.ConceptNameCodeSequence = "PNAME", Sequence([code("121008", "Person Observer Name")])
    person.PersonName = "Mabuse^Dr"
    when = Dataset()
    when.ValueType, when.ConceptNameCodeSequence = "DATE", Sequence([code("111060", "Study Date")])
    when.Date = "20200115"
    ds.ContentSequence[1].ContentSequence.extend([person, when])
    observer = ds.VerifyingObserverSequence[0]
    observer.VerifyingObserverName = "Mabuse^Dr"
    ident = code("EMP-7731", "Mabuse Dr")  # a person's identification code names them
    observer.PersonIdentificationCodeSequence = Sequence([ident])
    return ds


def texts(ds: Dataset) -> list:
    return [e.value for e in ds.iterall() if e.keyword == "TextValue"]


def test_basic_profile_removes_the_content_tree():
    out = written(deid(report()))
    for value in ("Zebulon", "Quux", "Mabuse", "EMP-7731", "20200115", "A mass of"):
        assert value.encode() not in out, value
    back = pydicom.dcmread(io.BytesIO(out))
    # D on a sequence: no items. An empty item would lack its Relationship Type (Type 1),
    # an empty Content Sequence breaks its Type 1C; a root with no children is valid.
    assert "ContentSequence" not in back
    assert back.ValueType == "CONTAINER"


def test_clean_structured_content_keeps_the_tree_and_cleans_its_items():
    source = report()
    tree_shape = [i.ValueType for i in source.ContentSequence[1].ContentSequence]
    out = written(deid(source, clean_structured_content=True, retain_longitudinal_modified_dates=True))
    for value in ("Zebulon", "Quux", "Mabuse", "EMP-7731", "20200115"):
        assert value.encode() not in out, value
    back = pydicom.dcmread(io.BytesIO(out))
    container = back.ContentSequence[1]
    assert [i.ValueType for i in container.ContentSequence] == tree_shape, "every content item is kept"
    assert "A mass of 2 cm; * * to be recalled" in texts(back), "the text is cleaned, not removed"
    assert len(texts(back)) == len(texts(report())) == 7
    pname = [i for i in container.ContentSequence if i.ValueType == "PNAME"][0]
    assert pname.PersonName == "ANONYMOUS"
    date = [i for i in container.ContentSequence if i.ValueType == "DATE"][0]
    assert date.Date != "20200115" and len(date.Date) == 8, "dates move by the patient's shift"
    assert back.ContentSequence[0].UID != "1.2.3.4.5", "UIDREF items get the keyed UID"
    assert [c.CodeMeaning for c in container.ContentSequence[0].ContentSequence[0].ConceptCodeSequence] == [
        "Sample Code 1"
    ], "codes are kept"


def annotated() -> Dataset:
    ds = pydicom.dcmread(testdata("CT_small.dcm"))
    ds.PatientName = NAME
    text = Dataset()
    text.UnformattedTextValue = "Zebulon Quux: left lung nodule"
    text.AnchorPointAnnotationUnits, text.AnchorPoint, text.AnchorPointVisibility = "PIXEL", [10.0, 20.0], "Y"
    shape = Dataset()
    shape.GraphicAnnotationUnits, shape.GraphicDimensions, shape.NumberOfGraphicPoints = "PIXEL", 2, 2
    shape.GraphicData, shape.GraphicType = [1.0, 2.0, 30.0, 40.0], "POLYLINE"
    note = Dataset()
    note.GraphicLayer = "MEASUREMENTS"
    note.TextObjectSequence = Sequence([text])
    note.GraphicObjectSequence = Sequence([shape])
    ds.GraphicAnnotationSequence = Sequence([note])
    ds.add_new(0x60000022, "LO", "Zebulon Quux marked")  # Overlay Description
    ds.add_new(0x60004000, "LT", "Quux overlay comment")  # Overlay Comments
    return ds


def test_graphics_are_removed_without_clean_graphics():
    source = annotated()
    manufacturer = source.Manufacturer
    out = deid(source)
    assert out.Manufacturer == manufacturer, "unlisted short text without the patient's names is kept as it was"
    assert out[0x60000022].value == "* * marked", "Overlay Description (not in the table) is cleaned"
    # D on a sequence: gone (an empty item would lack its Graphic Layer, a Type 1 attribute).
    assert "GraphicAnnotationSequence" not in out
    assert b"Quux" not in written(out)


@pytest.mark.parametrize(
    "options, expected_text",
    [
        ({"clean_graphics": True}, "ANONYMIZED"),  # Unformatted Text Value: D
        ({"clean_graphics": True, "clean_descriptors": True}, "* *: left lung nodule"),  # C
    ],
)
def test_clean_graphics_keeps_shapes_and_cleans_text(options, expected_text):
    out = deid(annotated(), **options)
    note = out.GraphicAnnotationSequence[0]
    assert note.GraphicLayer == "MEASUREMENTS"
    assert list(note.GraphicObjectSequence[0].GraphicData) == [1.0, 2.0, 30.0, 40.0], "shapes carry no identity"
    assert note.TextObjectSequence[0].UnformattedTextValue == expected_text
    assert b"Quux" not in written(out) and b"Zebulon" not in written(out)

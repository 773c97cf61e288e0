"""Clean Descriptors finds every identifying value of the same header in free text, in
the spellings and formats people write them (the rule: :mod:`curate.deid.identifiers`)."""

from __future__ import annotations

import pytest
from dicom_factory import image_dataset
from test_deid_engine import deid

from curate.deid.identifiers import Finder, date_key, date_spellings, name_spellings

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
        "acc ACC-778",
        "acc AC.C 778",
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


@pytest.mark.parametrize(
    "name, text",
    [
        ("PALA^ANA", "CHEST P.A. L.A.T. views"),
        ("LATA^ANA", "L.A.T. A.P. views"),
        ("MARK^ANA", "M A R K E R placed"),
        ("SALA^ANA", "R.U.Q. S.A. L.A. fluid"),
    ],
)
def test_letters_spelled_out_for_other_words_are_no_name(name, text):
    """A name is found spelled out only with one separator throughout, and not inside a
    longer run of spelled letters."""
    out = deid(header(PatientName=name, StudyDescription=text), **CLEAN)
    assert str(out.StudyDescription) == text


@pytest.mark.parametrize(
    "key",
    [
        "18680512",
        "18991231",
        "19000101",
        "19260304",
        "19601231",
        "19890107",
        "19890108",
        "20190501",
        "20991231",
        "21000111",
    ],
)
def test_every_literal_spelling_of_a_date_is_read_back_as_that_date(key):
    """The literals a search of long bytes looks for (``date_spellings``) are what the
    pattern reads as the date: a two-digit year is never one outside 1900 to 2099, nor an
    era's year one of another era."""
    finder = Finder([], frozenset({key}))
    spellings = date_spellings(key)
    assert len(spellings) > 50
    assert [s for s in spellings if not finder.search(s)] == []


def test_spellings():
    assert {"obrien", "mueller", "muller", "gross"} <= {s.lower() for s in name_spellings("O'Brien^Müller Groß")}
    assert "vanderBerg" in name_spellings("van der Berg^Piet")
    dates = Finder((), frozenset({date_key("19601231")}))
    for written in ("1960-12-31", "12/31/1960", "31.12.1960", "Dec 31 1960", "31 December 1960"):
        assert dates.search(f"seen {written} ok"), written
    assert date_key("1960") is None


@pytest.mark.parametrize(
    "attrs, text",
    [
        (dict(PatientName="SOEREN^MARIA"), "Pt Søren seen"),
        (dict(PatientName="MUELLER^JORG"), "Pt Müller seen"),
        (dict(PatientName="OBRIEN^ANN"), "Pt O'Brien seen"),
        (dict(PatientName="Bjørnsen^Ola"), "Pt BJORNSEN seen"),
        (dict(PatientName="\u738b^\u660e"), "Pt \u738b\u660e seen"),  # 王^明 written 王明
        (dict(PatientName="ใจดี^สมชาย"), "Pt นายสมชาย seen"),  # Thai runs names into words
        (dict(PatientBirthDate="19601231"), "DOB \u5c45\u6c111960\u5e7412\u670831\u65e5"),  # 居民: no ROC year
        (dict(PatientBirthDate="19601231"), "DOB \u6c111960.12.31"),  # 民
        (dict(PatientBirthDate="19601231"), "DOB \u592712/31/1960"),  # 大
        (dict(PatientBirthDate="19601231"), "DOB S35\u30fb12\u30fb31"),  # ・
        (dict(PatientBirthDate="19601231"), "DOB 1960\u30fb12\u30fb31"),
        (dict(PatientBirthDate="19601231"), "DOB 31st Dec 1960"),
        (dict(PatientBirthDate="19601231"), "DOB 12-31-60"),
        (dict(PatientBirthDate="19601231"), "DOB 311260"),
        (dict(PatientBirthDate="19620926"), "born Sept 26, 1962"),
        (dict(PatientBirthDate="19600413", StudyID="4"), "DOB 4/13/1960"),
        (dict(PatientID="00548322"), "MRN 548322"),
        (dict(PatientID="548322"), "MRN 548-322"),
        (dict(PatientID="P55\0" + "71"), "MRN P5571"),
        (dict(PatientID="548322"), "MRN 548_322"),
        (dict(PatientID="548322"), "MRN 548:322"),
        (dict(PatientID="548322"), "MRN 548/322"),
        (dict(PatientID="12_345_678"), "MRN 12345678"),
        (dict(PatientID="12:345:678"), "MRN 12 345 678"),
        (dict(PatientID="PIDX9731"), "MRN PIDX_9731"),
        (dict(PatientID="PIDX9731"), "MRN PIDX--9731"),
        (dict(PatientID="PIDX#9731"), "MRN PIDX 9731"),
        (dict(PatientName="Kumar^Ana"), "Pt Kum\u0430r seen"),  # Cyrillic а
        (dict(PatientName="Smith^Ana"), "Pt \u0405m\u0456th seen"),  # Cyrillic Ѕ and і
        (dict(PatientName="Poole^Ana"), "Pt \u03a1\u03bf\u03bfle seen"),  # Greek Ρ and ο
        (dict(PatientName="Kumar^Ana"), "Pt k u m a r seen"),
        (dict(PatientName="\u0405mith^Ana"), "Pt Smith seen"),  # the header's name typed with a Cyrillic Ѕ
        (dict(PatientName="Kumar^Ana"), "Pt K.U.M.A.R. seen"),
        (dict(PatientName="Kumar^Ana"), "Pt k-u-m-a-r seen"),
        (dict(PatientName="Kumar^Ana"), "Pt K. U. M. A. R seen"),
        (dict(PatientName="Kumar^Ana"), "Pt k / u / m / a / r seen"),
        (dict(PatientName="Kumar^Ana"), "Pt K,U,M,A,R seen"),
        (dict(PatientBirthDate="19601231"), "DOB 31DEC1960"),
        (dict(PatientBirthDate="19601231"), "DOB 31. Dezember 1960"),
        (dict(PatientBirthDate="19601231"), "DOB 31 de diciembre de 1960"),
        (dict(PatientBirthDate="19601231"), "DOB 31 \u0434\u0435\u043a\u0430\u0431\u0440\u044f 1960"),
        (dict(PatientBirthDate="19601231"), "DOB 1960-Dec-31"),
        (dict(PatientBirthDate="19601231"), "DOB 60.12.31"),
        (dict(PatientBirthDate="19601231"), "DOB 31.XII.1960"),
        (dict(PatientBirthDate="19601231"), "DOB 19601231083000"),
        (dict(PatientBirthDate="19601231"), "DOB 1960\u201012\u201031"),  # Unicode hyphen
        (dict(PatientBirthDate="19601231"), "DOB 31\u201312\u20131960"),  # en dash
        (dict(PatientBirthDate="19601231"), "DOB 1960\u221212\u221231"),  # minus sign
        (dict(PatientBirthDate="19601231"), "DOB 1960_12_31"),
        (dict(PatientBirthDate="19601231"), "DOB 12 / 31 / 1960"),
        (dict(PatientBirthDate="19601231"), "DOB \uff11\uff19\uff16\uff10\uff0f\uff11\uff12\uff0f\uff13\uff11"),
        (dict(PatientBirthDate="19601231"), "DOB 1960\u5e7412\u670831\u65e5"),  # 年月日
        (dict(PatientBirthDate="19600105"), "DOB 1960\u5e74 1\u6708 5\u65e5"),
        (dict(PatientBirthDate="19601231"), "DOB 1960\ub144 12\uc6d4 31\uc77c"),  # 년월일
        (dict(PatientBirthDate="19601231"), "DOB \u662d\u548c35\u5e7412\u670831\u65e5"),  # Showa 35
        (dict(PatientBirthDate="19601231"), "DOB S35.12.31"),
        (dict(PatientBirthDate="19890108"), "DOB \u5e73\u6210\u5143\u5e741\u67088\u65e5"),  # Heisei 1 (元年)
        (dict(PatientBirthDate="19601231"), "DOB \u6c11\u570b49\u5e7412\u670831\u65e5"),  # ROC 49
        (dict(PatientBirthDate="19601231"), "DOB 049/12/31"),
        (dict(PatientBirthDate="19601231"), "DOB 0491231"),
        (dict(PatientBirthDate="19601231"), "DOB 31/12/2503"),  # Buddhist era
        (dict(PatientBirthDate="19601231"), "DOB \u0e53\u0e51/\u0e51\u0e52/\u0e52\u0e55\u0e50\u0e53"),  # Thai digits
        # Chinese numerals: 一九六〇年十二月三十一日
        (
            dict(PatientBirthDate="19601231"),
            "DOB \u4e00\u4e5d\u516d\u3007\u5e74\u5341\u4e8c\u6708\u4e09\u5341\u4e00\u65e5",
        ),
        (dict(PatientBirthDate="19601231"), "DOB Showa 35.12.31"),
        (dict(PatientBirthDate="19601231"), "DOB SHOWA 35/12/31"),
        (dict(PatientBirthDate="19601231"), "DOB Showa 35 12 31"),  # spaces after the era's name, not its initial
        (dict(PatientBirthDate="19601231"), "DOB \u662d\u548c35, 12, 31"),  # 昭和35, 12, 31
        (dict(PatientBirthDate="19601231"), "DOB \u662d35.12.31"),  # 昭, the era's first sign
        (dict(PatientBirthDate="19601231"), "DOB \u6c1149.12.31"),  # 民49
        (dict(PatientBirthDate="19601231"), "DOB ROC 49.12.31"),
        (dict(PatientBirthDate="19601231"), "DOB 31 \u0e18\u0e31\u0e19\u0e27\u0e32\u0e04\u0e21 2503"),  # ธันวาคม
        (dict(PatientBirthDate="19601231"), "DOB 31 \u0e18.\u0e04. 2503"),  # ธ.ค.
        # 31 เดือนธันวาคม พ.ศ.2503: "month" before its name, "Buddhist era" before the year
        (
            dict(PatientBirthDate="19601231"),
            "DOB 31 \u0e40\u0e14\u0e37\u0e2d\u0e19\u0e18\u0e31\u0e19\u0e27\u0e32\u0e04\u0e21 \u0e1e.\u0e28.2503",
        ),
        (
            dict(PatientBirthDate="19601231"),
            "DOB \u4e00\u4e5d\u516d\u3007\u5e74\u5341\u4e8c\u6708\u5345\u4e00\u65e5",
        ),  # 卅一
        (
            dict(PatientBirthDate="19601229"),
            "DOB \u4e00\u4e5d\u516d\u3007\u5e74\u5341\u4e8c\u6708\u5eff\u4e5d\u65e5",
        ),  # 廿九
        # 千九百六十年十二月三十一日, and in the financial numerals 壹玖陆零年拾贰月叁拾壹日
        (
            dict(PatientBirthDate="19601231"),
            "DOB \u5343\u4e5d\u767e\u516d\u5341\u5e74\u5341\u4e8c\u6708\u4e09\u5341\u4e00\u65e5",
        ),
        (
            dict(PatientBirthDate="19601231"),
            "DOB \u58f9\u7396\u9646\u96f6\u5e74\u62fe\u8d30\u6708\u53c1\u62fe\u58f9\u65e5",
        ),
    ],
)
def test_the_spellings_a_review_found_are_cleaned(attrs, text):
    out = deid(header(**attrs, StudyDescription=f"CHEST {text} PA"), **CLEAN)
    cleaned = str(out.StudyDescription)
    for word in text.split()[1:]:
        if any(c.isalnum() for c in word) and word not in ("seen", "Pt"):
            assert word.strip(",") not in cleaned, cleaned


@pytest.mark.parametrize("text", ["Sex M 12/31/1960 seen", "M 12,31,1960 seen", "ROC 1960/12/31 seen"])
def test_a_date_after_a_letter_that_may_begin_an_era_is_read_plain_too(text):
    """M may be Meiji, or the patient's sex: the numbers after it are also a date."""
    out = deid(header(PatientBirthDate="19601231", StudyDescription=text), **CLEAN)
    assert "1960" not in str(out.StudyDescription) and "31" not in str(out.StudyDescription)


def test_a_name_written_with_another_vr_is_still_a_name():
    ds = header(StudyDescription="CHEST Patient Lucinda Delacroix PA")
    del ds.PatientName
    ds.add_new(0x00100010, "LO", "DELACROIX^LUCINDA")
    out = deid(ds, **CLEAN)
    assert "Delacroix" not in str(out.StudyDescription) and "Lucinda" not in str(out.StudyDescription)


@pytest.mark.parametrize(
    "attrs, text",
    [
        (dict(PatientName="SMITH^JOHN^^MR^MD"), "MR BRAIN W/O, MD review"),
        (dict(PatientName="DE LA CRUZ^ANA"), "LA enlarged, de novo"),
        (dict(EthnicGroup="WHITE"), "white matter lesions"),
        (dict(PreMedication="NONE"), "contrast: none"),
        (dict(StudyID="1"), "AX T2 1.5 mm, 1-2 cm lesion"),
        # An era's initial or first sign alone takes no spaces or commas between numbers,
        # and a sign inside a word (水平, 最大) is no era.
        (dict(StudyDate="20200304"), "Lesion R 2, 3, 4 cm"),
        (dict(StudyDate="19900304"), "H2 3 4 mm"),
        (dict(StudyDate="19130506"), "MR T2 5 6 mm"),
        (dict(StudyDate="19890502"), "\u6c34\u5e731.5 2.0"),  # 水平
        (dict(StudyDate="19230503"), "\u6700\u5927 12.5.3"),  # 最大
    ],
)
def test_clinical_words_that_identify_no_one_stay(attrs, text):
    out = deid(header(**attrs, StudyDescription=text), **CLEAN)
    assert str(out.StudyDescription) == text


@pytest.mark.parametrize(
    "attrs",
    [
        dict(PatientName="LO^WING"),  # a VR code in every explicit header
        dict(PatientName="OB^^^^"),
        dict(PatientName="BASIC^AMIR"),  # a word of curate's own method text
        dict(SeriesDescription="LOCALIZER", ImageType=["ORIGINAL", "PRIMARY", "LOCALIZER"]),
    ],
)
def test_nothing_identifying_left_means_written(tmp_path, attrs):
    from dicom_factory import write

    from curate.deid.profile import Options
    from curate.deid.pseudonym import UUID_ROOT
    from curate.deid.worker import deidentify_file

    source = write(header(**attrs), tmp_path / "src.dcm")
    result = deidentify_file(str(source), str(tmp_path / "out.dcm"), Options(), b"k" * 32, UUID_ROOT)
    assert result == ("written", None)


@pytest.mark.parametrize(
    ("pid", "text", "found"),
    [
        ("14112", "SOP class 1.2.840.10008.5.1.4.1.1.2", False),  # a UID's arcs
        ("703125", "spacing 0.703125\\0.703125", False),  # a decimal's fraction
        ("14112", "version 14112.5", False),
        ("14112", "patient 14112.", True),  # a sentence's full stop is no decimal
        ("14112", "id 1-4112 seen", True),
        ("14112", "(14112)", True),
        ("703125", "MRN 703 125", True),
    ],
)
def test_a_number_equal_to_the_id_inside_a_uid_or_a_decimal_is_no_sign_of_it(pid, text, found):
    finder = Finder([pid], frozenset())
    assert finder.search(text) is found and bool(finder.presence.search(text)) is found

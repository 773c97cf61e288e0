"""What identifies a file's patient in free text, and the spellings it is written in.

Clean Descriptors and the check before a file is written search text for every
identifying value of the same header. The rule: a value identifies when it is at least
3 characters long, or is an ID (the value of an ID attribute), whatever its length. The
values:

* every person name anywhere in the header (a PN, or a name attribute written with
  another VR), by its parts: family, given and middle names, not the prefix or suffix
  (DR, MD) nor a particle alone (de, van); and as RIS systems spell them, both ways
  round: accents dropped (Muller for Müller, Bjornsen for Bjørnsen) or written out
  (MUELLER, GROSS for Groß), apostrophes dropped (OBRIEN), particles and hyphens run
  together (VANDERBERG, SMITHJONES);
* the patient's IDs, other IDs, accession numbers and study IDs, as written, without
  separators or leading zeros; an ID is found glued to a prefix (MRN12345), a long one
  with separators between its digits, a short one ("7") only as a word of its own and
  not inside a number or a range ("1.5 mm");
* every date of the header, however it is written (19601231, 1960-12-31, 12/31/60,
  31.12.1960, 311260, Dec 31 1960, 31st December 1960 ...): date-like text is read every
  way it can be, then compared with the header's dates;
* the values the profile removes or replaces of the attributes that name places,
  organisations, devices or records (addresses, telephones, institutions, departments,
  stations, IDs and numbers), whole, and addresses and telephones by their parts; not
  every removed value ("WHITE" or "NONE" name no one).

The check of a written header leaves out the IDs of one or two characters: a code or a
number that equals "2" is no sign of a leak.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import unicodedata
from collections.abc import Iterable, Iterator
from functools import lru_cache

MIN_LENGTH = 3
#: Words of letters this long are found glued to other letters too (DRZYXWBROOK): that
#: long, a name is rarely part of another word by chance. Shorter ones only whole.
GLUED_LENGTH = 6
#: IDs long enough to be written with separators between their digits (telephones).
SEPARATED_DIGITS = 5
#: Attributes that hold identifiers, whatever their action.
ID_KEYWORDS = ("PatientID", "OtherPatientIDs", "AccessionNumber", "MedicalRecordLocator", "StudyID")
#: Text VRs whose removed or replaced values are searched for in what is kept.
TEXT_VRS = frozenset({"SH", "LO", "ST", "LT", "UT", "UC"})
WRITTEN_OUT = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "ø": "oe", "å": "aa", "æ": "ae", "œ": "oe"})
_NAME_SEPARATORS = re.compile(r"[\^=\s,\-'’.()\x00]+")
#: Letters NFKD does not decompose, as people type them without their mark.
UNDECOMPOSED = str.maketrans({"ø": "o", "Ø": "O", "ł": "l", "Ł": "L", "đ": "d", "Đ": "D", "æ": "ae", "Æ": "AE"})
#: Cyrillic and Greek letters drawn as Latin ones are (Cyrillic о in "Smіth"), as their
#: Latin twins: a name written with them is found where it is written in Latin.
LOOKALIKES = str.maketrans(
    "аеорсухіјѕԁһӏԛԝкАВЕКМНОРСТХУІЈЅαιονρκυωχΑΒΕΖΗΙΚΜΝΟΡΤΥΧօᴏɑ",
    "aeopcyxijsdhlqwkABEKMHOPCTXYIJSaiovpkuwxABEZHIKMNOPTYXooa",
)
#: Names at least this long are also found spelled out letter by letter (S M I T H, S.M.I.T.H.).
SPELLED_LENGTH = 4
#: What may stand between the letters of a name spelled out: the same each time.
_SPELLING_MARK_CHARS = ".\\-_*/,\u00b7|+\u2013"
_SPELLING_MARKS = f"[{_SPELLING_MARK_CHARS}]"
_LETTER_SEPARATOR = rf"(?:\s*{_SPELLING_MARKS}\s*|\s+)"


#: Not after a letter standing alone and a separator (X M A R K): a longer spelling. The
#: same before every spelled word (one lookbehind for them all: compiling is the cost).
_ALONE = r"(?<![^\W\d_])[^\W\d_]"
_NOT_SPELLED_BEFORE = rf"(?<!{_ALONE}[{_SPELLING_MARK_CHARS}\s])(?<!{_ALONE}{_SPELLING_MARKS}\s)"


def _spelled_out(word: str, group: str) -> str:
    """`word` spelled letter by letter with one separator, the same throughout (K U M A R,
    K.U.M.A.R., K-u-m-a-r), not followed by more spelled letters (M A R K E R is no
    Mark; P.A. L.A.T. is no Pala: its separators differ); what may not stand before it is
    :data:`_NOT_SPELLED_BEFORE`, in :data:`_SPELLED`."""
    letters = [re.escape(c) for c in word]
    first = f"{letters[0]}(?P<{group}>{_LETTER_SEPARATOR})"
    rest = f"(?P={group})".join(letters[1:])
    after = rf"(?!(?P={group})[^\W\d_](?:(?P={group})|(?![^\W\d_])))"
    return first + rest + after


#: Name particles: identifying only as part of the name they belong to (van der Berg).
PARTICLES = frozenset(
    "de da di do du la le el al van von der den del della des dos das ter ten bin ben ibn af av zu y e st".split()
)
_SEGMENTS = re.compile(r"[,;\^\r\n]+")


#: Default-ignorable characters that are not format characters: the combining grapheme
#: joiner, Hangul fillers, variation selectors (Unicode's Default_Ignorable_Code_Point).
_IGNORABLE = frozenset(
    {
        "\u034f",
        "\u115f",
        "\u1160",
        "\u3164",
        "\uffa0",
        *map(chr, range(0x180B, 0x1810)),
        *map(chr, range(0xFE00, 0xFE10)),
    }
)


def is_invisible(c: str) -> bool:
    """A character that shows nothing and splits no word: a NUL, a soft hyphen, a
    zero-width space or joiner, a direction mark (Unicode's format characters), a
    combining grapheme joiner or a variation selector. Dropped before a text is
    searched, so that ZEB<U+200B>ULON is found."""
    return c == "\x00" or (not c.isascii() and (unicodedata.category(c) == "Cf" or c in _IGNORABLE))


def without_invisible(text: str) -> str:
    """`text` without the characters :func:`is_invisible` finds."""
    if text.isascii() and "\x00" not in text:
        return text
    return _invisible_pattern().sub("", text)


@functools.cache
def _invisible_pattern() -> re.Pattern:
    """One character class of what :func:`is_invisible` finds (format characters lie in
    the first two planes and in plane 14's tags): searched in C, not a character at a
    time in Python."""
    found = [chr(c) for c in (*range(0x80, 0x20000), *range(0xE0000, 0xE1000)) if is_invisible(chr(c))]
    return re.compile("[\x00" + "".join(re.escape(c) for c in found) + "]")


def latin_readings(text: str) -> list[str]:
    """`text`, and where it is not ASCII, `text` with Cyrillic and Greek lookalikes of
    Latin letters read as Latin (a name written "Smіth" with a Cyrillic і), and that
    read again without compatibility forms and marks (fullwidth, mathematical, circled
    letters as plain ones; accents dropped): the ways a written header or bytes are
    searched, so that a name disguised so is found."""
    if text.isascii():
        return [text]
    latin = text.translate(LOOKALIKES)
    plain = _COMBINING_MARKS.sub("", unicodedata.normalize("NFKD", latin))
    return list(dict.fromkeys([text, latin, plain]))


#: The combining marks NFKD leaves after a letter (Unicode's combining blocks).
_COMBINING_MARKS = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")


def is_identifying(value: str, is_id: bool = False) -> bool:
    return len(value) >= MIN_LENGTH or (is_id and bool(value))


def fold(text: str) -> str:
    """Accents removed (Müller -> Muller), as free text often spells names without them."""
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def no_spaces_script(word: str) -> bool:
    """Chinese, Japanese, Korean and Thai text: names run into the words around them."""
    return any(
        "\u3040" <= c <= "\u30ff" or "\u3400" <= c <= "\u9fff" or "\uac00" <= c <= "\ud7af" or "\u0e00" <= c <= "\u0e7f"
        for c in word
    )


def _variants(word: str) -> set[str]:
    """A word, accents dropped (Müller: Muller; Bjørn: Bjorn), accents written out
    (Mueller, Bjoern), and lookalike letters read as Latin (a name typed on a Cyrillic
    keyboard, Ѕmith, is Smith in the text)."""
    found = {word, fold(word.translate(UNDECOMPOSED)), fold(word.lower().translate(WRITTEN_OUT))}
    if not word.isascii():
        found |= {fold(w.translate(LOOKALIKES)) for w in list(found)}
    return found


def name_spellings(value) -> set[str]:
    """The parts of a person name (family, given and middle names: their words and
    hyphenated halves, two letters or more, any length in scripts written without
    spaces; not the prefix and suffix, titles such as DR or MD, nor particles such as
    de or van alone), and each name with its separators run together (O'Brien, van der
    Berg, Smith-Jones), and a name of a script without spaces run together whole (王明),
    in every variant."""
    spellings: set[str] = set()
    for group in str(value).replace("\0", " ").split("="):
        for component in group.split("^")[:3]:
            for part in _NAME_SEPARATORS.split(component):
                if (len(part) >= 2 and part.lower() not in PARTICLES) or (part and no_spaces_script(part)):
                    spellings |= _variants(part)
            # The component run together (van der Berg), and each of its words without
            # its apostrophes (O'Brien-Smith: OBrien).
            for piece in [component, *re.split(r"[\s\-]+", component)]:
                joined = _NAME_SEPARATORS.sub("", piece)
                if len(joined) >= MIN_LENGTH and joined != piece.strip():
                    spellings |= _variants(joined)
        # A name of a script without spaces is written family name first, run together
        # (王^明: 王明), however short its parts.
        family, given = [*group.split("^"), ""][:2]
        if family.strip() and given.strip() and no_spaces_script(family + given):
            spellings |= _variants(_NAME_SEPARATORS.sub("", family + given))
    return {s for s in spellings if s}


_MONTHS = [dt.date(2000, m, 1) for m in range(1, 13)]
#: Month names and abbreviations in German, French, Spanish, Italian, Portuguese, Dutch
#: and Russian (its genitive, as dates write it), with and without their accents.
_FOREIGN_MONTHS = (
    "januar jänner janvier janv enero ene gennaio gen janeiro januari января январь янв",
    "februar feber février fevrier févr fevr fév fev febrero febbraio fevereiro februari февраля февраль фев",
    "märz maerz marz mär mars marzo março marco maart марта март мар",
    "avril avr abril aprile апреля апрель апр",
    "mai mayo maggio maio mei мая май",
    "juni juin junio giugno junho июня июнь июн",
    "juli juillet juil julio luglio julho июля июль июл",
    "août aout agosto ago augustus августа август авг",
    "septembre septiembre setiembre settembre setembro set сентября сентябрь сен",
    "oktober okt octobre octubre ottobre ott outubro out октября октябрь окт",
    "novembre noviembre novembro ноября ноябрь ноя",
    "dezember dez décembre decembre déc diciembre dicembre dic dezembro декабря декабрь дек",
)
#: Thai month names and their abbreviations (31 ธ.ค. 2503), written with the year of the
#: Buddhist era.
_THAI_MONTHS = (
    "\u0e21\u0e01\u0e23\u0e32\u0e04\u0e21 \u0e21.\u0e04.",  # มกราคม ม.ค.
    "\u0e01\u0e38\u0e21\u0e20\u0e32\u0e1e\u0e31\u0e19\u0e18\u0e4c \u0e01.\u0e1e.",  # กุมภาพันธ์ ก.พ.
    "\u0e21\u0e35\u0e19\u0e32\u0e04\u0e21 \u0e21\u0e35.\u0e04.",  # มีนาคม มี.ค.
    "\u0e40\u0e21\u0e29\u0e32\u0e22\u0e19 \u0e40\u0e21.\u0e22.",  # เมษายน เม.ย.
    "\u0e1e\u0e24\u0e29\u0e20\u0e32\u0e04\u0e21 \u0e1e.\u0e04.",  # พฤษภาคม พ.ค.
    "\u0e21\u0e34\u0e16\u0e38\u0e19\u0e32\u0e22\u0e19 \u0e21\u0e34.\u0e22.",  # มิถุนายน มิ.ย.
    "\u0e01\u0e23\u0e01\u0e0e\u0e32\u0e04\u0e21 \u0e01.\u0e04.",  # กรกฎาคม ก.ค.
    "\u0e2a\u0e34\u0e07\u0e2b\u0e32\u0e04\u0e21 \u0e2a.\u0e04.",  # สิงหาคม ส.ค.
    "\u0e01\u0e31\u0e19\u0e22\u0e32\u0e22\u0e19 \u0e01.\u0e22.",  # กันยายน ก.ย.
    "\u0e15\u0e38\u0e25\u0e32\u0e04\u0e21 \u0e15.\u0e04.",  # ตุลาคม ต.ค.
    "\u0e1e\u0e24\u0e28\u0e08\u0e34\u0e01\u0e32\u0e22\u0e19 \u0e1e.\u0e22.",  # พฤศจิกายน พ.ย.
    "\u0e18\u0e31\u0e19\u0e27\u0e32\u0e04\u0e21 \u0e18.\u0e04.",  # ธันวาคม ธ.ค.
)
_MONTH_NUMBERS = (
    {d.strftime(f).lower(): d.month for d in _MONTHS for f in ("%b", "%B")}
    | {"sept": 9}
    | {name: month for month, names in enumerate(_FOREIGN_MONTHS, 1) for name in names.split()}
    | {name: month for month, names in enumerate(_THAI_MONTHS, 1) for name in names.split()}
)
#: Thai words about a date: month (เดือน) before its name, Buddhist era (พ.ศ.) before the year.
_THAI_MONTH_WORD, _THAI_ERA = "\u0e40\u0e14\u0e37\u0e2d\u0e19", r"\u0e1e\.\s*\u0e28\.?"
#: Months in Roman numerals (31.XII.1960), longest first.
_ROMAN_MONTHS = {r: i for i, r in enumerate("i ii iii iv v vi vii viii ix x xi xii".split(), 1)}
_ROMAN = "(?:" + "|".join(sorted(_ROMAN_MONTHS, key=len, reverse=True)) + ")"
_MONTH = "(?:" + "|".join(re.escape(m) for m in sorted(_MONTH_NUMBERS, key=len, reverse=True)) + ")"
_DAY = r"\d{1,2}(?:st|nd|rd|th)?\.?"
_YEAR = r"'?(?:\d{4}|\d{2})"
#: Between a date's numbers: a hyphen (ASCII or any Unicode dash, a minus sign), a slash,
#: a dot, an underscore, a colon, a comma, a bar or a middle dot (· or ・), with spaces about it,
#: or spaces alone.
_SEP = r"(?:\s*[-/._:,|\u00b7\u30fb\uff65\u2010-\u2015\u2212\ufe58\ufe63\uff0d\uff0e\uff0f]\s*|\s+)"
#: The year, month and day signs of Chinese and Japanese (年月日) and of Korean (년월일).
_CJK_YEAR, _CJK_MONTH, _CJK_DAY = "[\u5e74\ub144]", "[\u6708\uc6d4]", "[\u65e5\uc77c]"
#: A number in CJK writing: digits (any script's), or Chinese numerals, positional
#: (一九六〇) or with tens (三十一); 元 is the first year of an era (平成元年).
_CJK_NUMERALS = "\u3007\u96f6\u25cb\u4e00\u4e8c\u4e09\u56db\u4e94\u516d\u4e03\u516b\u4e5d"  # 〇零○一..九
_CJK_TEN, _FIRST_YEAR = "\u5341", "\u5143"  # 十, 元
#: The numerals of contracts and cheques (壹貳參, 拾), traditional and simplified.
_FINANCIAL_NUMERALS = {
    **dict.fromkeys("\u58f9", 1),  # 壹
    **dict.fromkeys("\u8cb3\u8d30", 2),  # 貳贰
    **dict.fromkeys("\u53c3\u53c1", 3),  # 參叁
    "\u8086": 4,  # 肆
    "\u4f0d": 5,  # 伍
    **dict.fromkeys("\u9678\u9646", 6),  # 陸陆
    "\u67d2": 7,  # 柒
    "\u634c": 8,  # 捌
    "\u7396": 9,  # 玖
}
#: Signs that multiply what stands before them (十 ten, 百 hundred, 千 thousand; 拾佰仟 in
#: the financial numerals), and those that stand for whole tens (廿 20, 卅 30, 卌 40).
_MULTIPLIERS = {"\u5341": 10, "\u62fe": 10, "\u767e": 100, "\u4f70": 100, "\u5343": 1000, "\u4edf": 1000}
_TENS = {"\u5eff": 20, "\u5345": 30, "\u534c": 40}
_CJK_NUMBER = rf"[\d{_CJK_NUMERALS}{''.join(_FINANCIAL_NUMERALS)}{''.join(_MULTIPLIERS)}{''.join(_TENS)}]"
#: The Japanese eras since 1868 by name and initial (昭和35年, S35.12.31), and the year
#: before each one's first (Showa 1 is 1926).
_ERAS = {
    "\u660e\u6cbb": 1867,  # 明治 Meiji
    "\u5927\u6b63": 1911,  # 大正 Taisho
    "\u662d\u548c": 1925,  # 昭和 Showa
    "\u5e73\u6210": 1988,  # 平成 Heisei
    "\u4ee4\u548c": 2018,  # 令和 Reiwa
}
#: By a sign alone (昭35.12.31), the first of the era's name.
_ERA_SIGNS = {name[0]: before for name, before in _ERAS.items()}
#: By initial or name in Latin letters (S35.12.31, Showa 35.12.31), read by the initial.
_ERA_INITIALS = {"m": 1867, "t": 1911, "s": 1925, "h": 1988, "r": 2018}
_ERA_LATIN = "meiji|taish[oō]u?|sh[oō]u?wa|heisei|reiwa"
#: Not after a CJK sign: 大, 明, 平, 民 alone are eras only where they begin a word (最大,
#: 水平, 居民 are words of their own).
_NOT_AFTER_CJK = r"(?<![\u3400-\u9fff])"
#: The Republic of China's calendar (Taiwan: 民國49年 is 1960), by its name; and by 民 alone
#: or ROC (:data:`_ROC_SHORT`).
_ROC = r"(?:\u4e2d\u83ef|\u4e2d\u534e)?\u6c11[\u570b\u56fd]"  # (中華|中华)民(國|国)
_ROC_SHORT = rf"(?:{_NOT_AFTER_CJK}\u6c11|(?<![^\W\d_])r\.?o\.?c\.?)"
_ROC_BEFORE = 1911
#: The Buddhist era's years (Thailand: 2503 is 1960): 543 after the common era's.
_BUDDHIST_OFFSET = 543
#: Between the numbers of an era's date: the CJK signs, a dot, slash, hyphen or middle dot
#: (・), with spaces about it; after the era's name also a comma, or spaces alone. After
#: an initial or a sign alone not those: "H2 3 4 mm" or "R 2, 3, 4 cm" is no date.
_ERA_SEP_SHORT = r"\s*[\u5e74\u6708./\-\u30fb]\s*"
_ERA_SEP = r"(?:\s*[\u5e74\u6708./\-\u30fb,]\s*|\s+)"
#: A date as people write it: numbers (a run of 6 or 8 digits read every way; year
#: first, or day and month first in either order, with 4- or 2-digit years), or with the month's
#: name or abbreviation, in English or another language, glued or not (ordinals too: 31st
#: December 1960, 31DEC1960, 31 de diciembre de 1960, 1960-Dec-31), in Roman numerals
#: (31.XII.1960), or with the year, month and day signs of Chinese, Japanese and Korean
#: (1960年12月31日, in Chinese numerals too: 一九六〇年十二月三十一日); and in the calendars
#: of other eras: Japanese (昭和35年12月31日, S35.12.31), the Republic of China's (民國49年,
#: 049/12/31, 0491231) and the Buddhist (31/12/2503, in Thai digits too). Which date a text means is
#: settled by :func:`_dates_of` trying every reading.
DATE_TOKEN = re.compile(
    r"(?<![0-9])(?:"
    r"(?P<stamp>\d{8})(?:\d{6}|\d{4})(?:\.\d{1,6})?"  # a date and time (DT, HL7): 19601231120000
    r"|(?P<digits>\d{8}|\d{6})"
    r"|(?P<roc7>\d{7})"  # the Republic of China's year in three digits: 0491231
    rf"|(?P<y1>\d{{3,4}}){_SEP}(?P<m1>\d{{1,2}}){_SEP}(?P<d1>\d{{1,2}})"
    rf"|(?P<a2>\d{{1,2}})\.?{_SEP}(?P<b2>\d{{1,2}})\.?{_SEP}(?P<y2>{_YEAR})"
    # A month's name first: tried only where letters run into a number (the many names
    # would otherwise be tried at every letter of a text).
    rf"|(?=[^\W\d_]{{3,12}}\.?[ \-/.]?\d)(?P<mn3>{_MONTH})\.?[ \-/.]?(?P<d3>{_DAY}),?[ \-/.]?\s*(?P<y3>{_YEAR})"
    rf"|(?P<d4>{_DAY})(?:\s*de|\s+of)?[ \-/.]?\s*(?:{_THAI_MONTH_WORD})?(?P<mn4>{_MONTH})\.?,?(?:\s+de)?[ \-/.]?\s*"
    rf"(?:{_THAI_ERA}\s*)?(?P<y4>{_YEAR})"
    rf"|(?P<y6>\d{{4}})[ \-/.]?(?P<mn6>{_MONTH})\.?[ \-/.]?(?P<d6>\d{{1,2}})"
    rf"|(?P<d7>\d{{1,2}})\s*[./\-]\s*(?P<r7>{_ROMAN})\s*[./\-]\s*(?P<y7>\d{{4}}|\d{{2}})"
    rf"|(?P<y5>{_CJK_NUMBER}{{1,5}})\s*{_CJK_YEAR}\s*(?P<m5>{_CJK_NUMBER}{{1,3}})\s*{_CJK_MONTH}\s*(?P<d5>{_CJK_NUMBER}{{1,4}})(?:\s*{_CJK_DAY})?"
    # A Japanese era's date, by the era's name or (not inside a word) its initial.
    rf"|(?:(?P<era8>{'|'.join(_ERAS)})|(?<![^\W\d_])(?P<initial8>{_ERA_LATIN})\.?)\s*"
    rf"(?P<y8>{_CJK_NUMBER}{{1,3}}|{_FIRST_YEAR}){_ERA_SEP}(?P<m8>{_CJK_NUMBER}{{1,3}}){_ERA_SEP}(?P<d8>{_CJK_NUMBER}{{1,4}})(?:\s*{_CJK_DAY})?"
    rf"|(?:{_NOT_AFTER_CJK}(?P<era10>[{''.join(_ERA_SIGNS)}])|(?<![^\W\d_])(?P<initial10>[mtshr])\.?)\s*"
    rf"(?P<y10>{_CJK_NUMBER}{{1,3}}|{_FIRST_YEAR}){_ERA_SEP_SHORT}(?P<m10>{_CJK_NUMBER}{{1,3}}){_ERA_SEP_SHORT}(?P<d10>{_CJK_NUMBER}{{1,4}})(?:\s*{_CJK_DAY})?"
    rf"|{_ROC}\s*(?P<y9>{_CJK_NUMBER}{{1,5}}|{_FIRST_YEAR}){_ERA_SEP}(?P<m9>{_CJK_NUMBER}{{1,3}}){_ERA_SEP}(?P<d9>{_CJK_NUMBER}{{1,4}})(?:\s*{_CJK_DAY})?"
    rf"|{_ROC_SHORT}\s*(?P<y11>{_CJK_NUMBER}{{1,5}}|{_FIRST_YEAR}){_ERA_SEP_SHORT}(?P<m11>{_CJK_NUMBER}{{1,3}}){_ERA_SEP_SHORT}(?P<d11>{_CJK_NUMBER}{{1,4}})(?:\s*{_CJK_DAY})?"
    r")(?![0-9])",
    re.IGNORECASE,
)


#: A date's literal spellings without separators, and with its month's name (those with
#: separators between numbers: :data:`_LITERAL_SEPARATORS`).
_DATE_FORMATS = [
    "%Y%m%d",
    "%d%m%Y",
    "%m%d%Y",
    "%y%m%d",
    "%d%m%y",
    "%m%d%y",
    "%d %b %Y",
    "%b %d %Y",
    "%d %B %Y",
    "%B %d %Y",
    "%b %d, %Y",
    "%B %d, %Y",
]


#: Between the numbers of a date written as a literal: the commonest of what :data:`_SEP`
#: reads, with spaces about some.
_LITERAL_SEPARATORS = ("-", "/", ".", " ", ":", "_", ". ", " - ", " / ", "\u2010", "\u2013", "\u2014", "\u2212")


#: The groups of the years of an era's or the Republic of China's dates.
_ERA_YEARS = ("y8", "y9", "y10", "y11")
#: How far from its nearest digit a date token reaches (31 de septiembre de 1960).
_DATE_REACH = 32
_DIGIT_RUNS = re.compile(rf"(?:{_CJK_NUMBER}|{_FIRST_YEAR})+")


def date_tokens(text: str) -> Iterator[tuple[int, re.Match]]:
    """(offset, match) of each :data:`DATE_TOKEN` in `text`, its span at offset +
    match.start(). Every date has a digit, so the pattern runs only around the digits
    (windows :data:`_DATE_REACH` wide about each run, merged where they meet): tried at
    every character, its many alternatives cost milliseconds a kilobyte."""
    windows: list[list[int]] = []
    for run in _DIGIT_RUNS.finditer(text):
        start, end = max(0, run.start() - _DATE_REACH), run.end() + _DATE_REACH
        if windows and start <= windows[-1][1]:
            windows[-1][1] = end
        else:
            windows.append([start, end])
    for start, end in windows:
        window = text[start:end]
        for match in DATE_TOKEN.finditer(window):
            yield start, match
            era = next((g for g in _ERA_YEARS if match.group(g)), None)
            if era is not None:
                # The numbers after an era's sign are also read as a plain date
                # (M 12/31/1960, 民1960.12.31): the sign may be a word of its own.
                plain = DATE_TOKEN.match(window, match.start(era))
                if plain is not None and not any(plain.group(g) for g in _ERA_YEARS):
                    yield start, plain


@lru_cache(maxsize=256)
def date_spellings(key: str) -> frozenset[str]:
    """The common ways of writing the date `key` (YYYYMMDD), as literals: what a search of
    bytes too long for :data:`DATE_TOKEN` looks for (made once a date)."""
    day = dt.datetime.strptime(key, "%Y%m%d")
    # A two-digit year is read in the 1900s or 2000s (68 is never 1868): none outside.
    two_digits = 1900 <= day.year < 2100
    found = set()
    for form in _DATE_FORMATS:
        if two_digits or "%y" not in form:
            text = day.strftime(form)
            found |= {text, text.upper(), text.lower()}
    for form in ("%d%b%Y", "%d%b%y", "%Y-%b-%d"):
        if two_digits or "%y" not in form:
            text = day.strftime(form)
            found |= {text, text.upper()}
    roman = next(r for r, n in _ROMAN_MONTHS.items() if n == day.month).upper()
    found |= {f"{day.day}.{roman}.{day.year}", f"{day.day:02d}.{roman}.{day.year}", f"{day.day}/{roman}/{day.year}"}
    year, short = str(day.year), f"{day.year % 100:02d}"
    if two_digits:
        found |= {f"{short}.{day.month:02d}.{day.day:02d}", f"{short}/{day.month:02d}/{day.day:02d}"}
    for sep in _LITERAL_SEPARATORS:
        for month in {f"{day.month:02d}", str(day.month)}:
            for date in {f"{day.day:02d}", str(day.day)}:
                found |= {sep.join(p) for p in ((year, month, date), (date, month, year), (month, date, year))}
                if two_digits:
                    found |= {sep.join((date, month, short)), sep.join((month, date, short))}
    for signs, space in (("\u5e74\u6708\u65e5", ""), ("\ub144\uc6d4\uc77c", " ")):  # 年月日, 년월일
        for month, date in {(f"{day.month:02d}", f"{day.day:02d}"), (str(day.month), str(day.day))}:
            found.add(f"{day.year}{signs[0]}{space}{month}{signs[1]}{space}{date}{signs[2]}")
    return frozenset(found | _era_spellings(day))


def _era_spellings(day: dt.date) -> set[str]:
    """The date `day` in the calendars of other eras, as literals: Japanese (by the era
    in force, and the one before in its first year), the Republic of China's and the
    Buddhist (with Thai month names too)."""
    found = set()
    numbers = {(f"{day.month:02d}", f"{day.day:02d}"), (str(day.month), str(day.day))}
    initials = {before: initial.upper() for initial, before in _ERA_INITIALS.items()}
    latin = {before: name for name, before in _ERA_LATIN_NAMES.items()}
    signs = {before: sign for sign, before in _ERA_SIGNS.items()}
    for name, before in sorted(_ERAS.items(), key=lambda era: era[1])[::-1]:
        year = day.year - before
        if year < 1:
            continue
        for month, date in numbers:
            found |= {f"{name}{year}\u5e74{month}\u6708{date}\u65e5", f"{initials[before]}{year}.{month}.{date}"}
            found |= {f"{initials[before]}{year:02d}{sep}{month}{sep}{date}" for sep in "./-"}
            found |= {f"{signs[before]}{year}.{month}.{date}"}  # 昭35.12.31
            found |= {f"{form} {year}.{month}.{date}" for form in (latin[before], latin[before].upper())}
        found.add(f"{name}{_chinese(year)}\u5e74{_chinese(day.month)}\u6708{_chinese(day.day)}\u65e5")
        if day.year > before + 1:
            break  # past its first year: no earlier era is in force
    roc = day.year - _ROC_BEFORE
    if roc >= 1:
        found |= {f"\u6c11{sign}{roc}\u5e74{day.month}\u6708{day.day}\u65e5" for sign in "\u570b\u56fd"}  # 民國 民国
        found |= {f"{roc:03d}{day:%m%d}"} | {f"{roc:03d}{sep}{day:%m}{sep}{day:%d}" for sep in "./-"}
        found |= {f"\u6c11{roc}.{day.month}.{day.day}", f"ROC {roc}.{day.month}.{day.day}"}
        found.add(f"\u6c11\u570b{_chinese(roc)}\u5e74{_chinese(day.month)}\u6708{_chinese(day.day)}\u65e5")
    buddhist = day.year + _BUDDHIST_OFFSET
    found |= {f"{date}{sep}{month}{sep}{buddhist}" for month, date in numbers for sep in "/.-"}
    for month in _THAI_MONTHS[day.month - 1].split():  # 31 ธันวาคม 2503, 31 ธ.ค. พ.ศ. 2503
        found |= {f"{day.day} {month} {era}{buddhist}" for era in ("", "\u0e1e.\u0e28. ")}
    # In Thai digits (๓๑/๑๒/๒๕๐๓), and the common era's in Chinese numerals and in
    # full-width digits (一九六〇年十二月三十一日, １９６０年１２月３１日).
    found |= {spelling.translate(_THAI_DIGITS) for spelling in found if str(buddhist) in spelling}
    positional = "".join(_CJK_NUMERALS[2 + int(d)] if d != "0" else "\u3007" for d in str(day.year))
    found.add(f"{positional}\u5e74{_chinese(day.month)}\u6708{_chinese(day.day)}\u65e5")
    wide = [f"{day.year}\u5e74{day.month}\u6708{day.day}\u65e5", f"{day.year}/{day.month:02d}/{day.day:02d}"]
    wide += [f"{day.year}-{day.month:02d}-{day.day:02d}", f"{day.year}.{day.month:02d}.{day.day:02d}"]
    found |= {spelling.translate(_FULL_WIDTH) for spelling in wide}
    return found


#: The eras' names in Latin letters (Showa 35.12.31), by the year before each one's first.
_ERA_LATIN_NAMES = {"Meiji": 1867, "Taisho": 1911, "Showa": 1925, "Heisei": 1988, "Reiwa": 2018}
_THAI_DIGITS = str.maketrans("0123456789", "\u0e50\u0e51\u0e52\u0e53\u0e54\u0e55\u0e56\u0e57\u0e58\u0e59")
_FULL_WIDTH = str.maketrans({c: chr(ord(c) + 0xFEE0) for c in "0123456789/-."})  # ０ to ９, ／, －, ．


def _chinese(number: int) -> str:
    """1 to 999 in Chinese numerals with tens and hundreds (十二, 三十一, 一百一十四), as
    months, days and the years of an era or of the Republic of China are written."""
    digit = _CJK_NUMERALS[3:]  # 一 to 九
    hundreds, rest = divmod(number, 100)
    tens, ones = divmod(rest, 10)
    text = digit[hundreds - 1] + "\u767e" if hundreds else ""  # 百
    if tens:
        text += (digit[tens - 1] if tens > 1 or hundreds else "") + _CJK_TEN
    elif hundreds and ones:
        text += "\u96f6"  # 零: 一百零五
    return text + (digit[ones - 1] if ones else "")


def date_key(value: str) -> str | None:
    """A DA value (YYYYMMDD) as the key dates in text are compared with; None if invalid."""
    try:
        return dt.datetime.strptime(str(value).strip()[:8], "%Y%m%d").strftime("%Y%m%d")
    except ValueError:
        return None


def _years(text: str) -> list[int]:
    digits = text.lstrip("'")
    if len(digits) == 4:
        year = int(digits)
        # A year of the Buddhist era (2503) is also read as the common era's (1960).
        return [year, year - _BUDDHIST_OFFSET] if year - _BUDDHIST_OFFSET >= 1800 else [year]
    if len(digits) == 3:  # the Republic of China's, as Taiwan writes it (049: 1960)
        return [_ROC_BEFORE + int(digits)]
    return [1900 + int(digits), 2000 + int(digits)]  # a 2-digit year: either century


_NUMERAL_VALUES = {c: max(0, i - 2) for i, c in enumerate(_CJK_NUMERALS)}  # 〇零○ are 0, then 一 to 九


def _number(text: str) -> int:
    """A number written in any script's digits or in Chinese numerals: positional
    (一九六〇: 1960), with tens, hundreds and thousands (三十一: 31, 十二: 12, 千九百六十:
    1960), with the signs of whole tens (卅一: 31), or in the financial numerals (拾貳: 12);
    元 (an era's first year): 1."""
    if text == _FIRST_YEAR:
        return 1
    value = current = 0
    for c in text:
        if c in _MULTIPLIERS:
            value += (current or 1) * _MULTIPLIERS[c]
            current = 0
        elif c in _TENS:
            value += current + _TENS[c]
            current = 0
        else:
            digit = _NUMERAL_VALUES.get(c, _FINANCIAL_NUMERALS.get(c))
            current = current * 10 + (int(c) if digit is None else digit)
    return value + current


def _cjk_years(text: str) -> list[int]:
    """A year written before 年: four digits as they read, fewer read as two-digit
    years (60年) and as the Republic of China's (49年: 1960)."""
    year = _number(text)
    if year >= 1000 or (len(text) >= 4 and not any(c in _MULTIPLIERS or c in _TENS for c in text)):
        return _years(f"{year:04d}")
    return [1900 + year % 100, 2000 + year % 100, _ROC_BEFORE + year]


def _day(text: str) -> str:
    return re.sub(r"\D", "", text)


def _dates_of(match: re.Match) -> set[str]:
    g = match.groupdict()
    if g["stamp"]:
        n = g["stamp"]
        readings = [(n[:4], n[4:6], n[6:])]
    elif g["digits"]:
        n = g["digits"]
        if len(n) == 8:  # YYYYMMDD, DDMMYYYY, MMDDYYYY
            readings = [(n[:4], n[4:6], n[6:]), (n[4:], n[2:4], n[:2]), (n[4:], n[:2], n[2:4])]
        else:  # YYMMDD, DDMMYY, MMDDYY
            readings = [(n[:2], n[2:4], n[4:]), (n[4:], n[2:4], n[:2]), (n[4:], n[:2], n[2:4])]
    elif g["roc7"]:
        n = g["roc7"]
        readings = [(n[:3], n[3:5], n[5:])]
    elif g["y1"]:
        readings = [(g["y1"], g["m1"], g["d1"])]
    elif g["y2"]:
        readings = [(g["y2"], g["b2"], g["a2"]), (g["y2"], g["a2"], g["b2"])]
        if len(g["a2"]) == 2 and len(g["y2"]) == 2:
            readings.append((g["a2"], g["b2"], g["y2"]))  # year first, in two digits: 60.12.31
    elif g["y5"]:
        return _full_dates(_cjk_years(g["y5"]), g["m5"], g["d5"])
    elif g["y8"]:
        before = _ERAS[g["era8"]] if g["era8"] else _ERA_INITIALS[g["initial8"][0].lower()]
        return _full_dates([before + _number(g["y8"])], g["m8"], g["d8"])
    elif g["y10"]:
        before = _ERA_SIGNS[g["era10"]] if g["era10"] else _ERA_INITIALS[g["initial10"].lower()]
        return _full_dates([before + _number(g["y10"])], g["m10"], g["d10"])
    elif g["y9"] or g["y11"]:
        n = "9" if g["y9"] else "11"
        return _full_dates([_ROC_BEFORE + _number(g[f"y{n}"])], g[f"m{n}"], g[f"d{n}"])
    elif g["y6"]:
        readings = [(g["y6"], _MONTH_NUMBERS[g["mn6"].lower()], g["d6"])]
    elif g["y7"]:
        readings = [(g["y7"], _ROMAN_MONTHS[g["r7"].lower()], g["d7"])]
    elif g["y3"]:
        readings = [(g["y3"], _MONTH_NUMBERS[g["mn3"].lower()], _day(g["d3"]))]
    else:
        readings = [(g["y4"], _MONTH_NUMBERS[g["mn4"].lower()], _day(g["d4"]))]
    return set().union(*(_full_dates(_years(str(year)), month, day) for year, month, day in readings))


def _full_dates(years: list[int], month, day) -> set[str]:
    """The valid dates (YYYYMMDD) of each of `years` on `month` and `day` (numbers,
    or numerals as :func:`_number` reads them)."""
    month, day = _number(str(month)), _number(str(day))
    found = set()
    for year in years:
        try:
            found.add(dt.date(year, month, day).strftime("%Y%m%d"))
        except ValueError:
            continue
    return found


class Finder:
    """The identifying values of one header, found in text: words by one pattern, dates
    by :data:`DATE_TOKEN`, read and compared with the header's dates."""

    def __init__(self, words: Iterable[str], dates: frozenset[str]):
        self.values, self.dates = frozenset(words), dates

    @functools.cached_property
    def words(self) -> re.Pattern | None:
        """:func:`word_pattern` of the words (compiled when first asked for: a file
        often needs only some of its patterns, and compiling is most of their cost)."""
        return word_pattern(self.values)

    @functools.cached_property
    def presence(self) -> re.Pattern | None:
        """:func:`presence_pattern` of the words: whether a text holds one, faster."""
        return presence_pattern(self.values)

    def spans(self, text: str) -> list[tuple[int, int]]:
        found = [(m.start(), m.end()) for m in self.words.finditer(text) if m.end() > m.start()] if self.words else []
        if self.dates:
            found += [(at + m.start(), at + m.end()) for at, m in date_tokens(text) if _dates_of(m) & self.dates]
        return sorted(found)

    def search(self, text: str) -> bool:
        if self.presence is not None and self.presence.search(text):
            return True
        return bool(self.dates) and any(_dates_of(m) & self.dates for _, m in date_tokens(text))

    def sub(self, replacement: str, text: str) -> str:
        """`text` with every identifying value replaced; overlapping finds (a short ID
        inside a date) are replaced as one."""
        out, last = [], 0
        for start, end in self.spans(text):
            if start >= last:
                out += [text[last:start], replacement]
            elif end > last:
                pass  # overlaps the previous find: extend it
            else:
                continue
            last = max(last, end)
        return "".join(out) + text[last:]


#: What people write between the parts of an ID (548-322, 548_322, PIDX#9731, 12:34).
_ID_SEPARATOR_CLASS = r"[\s\-/._:#]"
_ID_SEPARATORS = re.compile(_ID_SEPARATOR_CLASS)


def id_spellings(value) -> set[str]:
    """An ID as written, without its separators or NULs (548-322: 548322), and without
    leading zeros (00548322: 548322)."""
    text = str(value).replace("\0", "").strip()
    spellings = {text, _ID_SEPARATORS.sub("", text)}
    spellings |= {s.lstrip("0") for s in spellings if s.isdigit()}
    return {s for s in spellings if is_identifying(s, is_id=True)}


#: The removed text attributes whose values identify: addresses and telephones, the
#: institution, department and station, IDs, numbers and names of records and devices.
#: Not every removed value: a removed "WHITE" (ethnic group) or "NONE" (premedication)
#: names no one, and would scrub "white matter" from a description.
IDENTIFYING_KEYWORDS = re.compile(
    r"Address|Telephone|Institution|Department|Station|Accession|Email|Identifier|"
    r"(ID|IDs|Number|Numbers)$"
)


def identifies(keyword: str | None) -> bool:
    return bool(keyword) and bool(IDENTIFYING_KEYWORDS.search(keyword))


def value_segments(keyword: str | None, value) -> set[str]:
    """A removed text value, whole; an address or telephone number also by its comma- or
    line-separated parts (a street, a town)."""
    text = str(value).strip()
    segments = {text}
    if keyword and ("Address" in keyword or "Telephone" in keyword):
        segments |= {s.strip() for s in _SEGMENTS.split(text)}
    if keyword and "Telephone" in keyword:
        for number in _SEGMENTS.split(text):
            digits = re.sub(r"\D", "", number)
            if len(digits) >= SEPARATED_DIGITS:
                segments.add(digits)  # found however its digits are grouped
    return {s for s in segments if is_identifying(s)}


def word_pattern(words: Iterable[str]) -> re.Pattern | None:
    """:func:`_word_pattern`, compiled once for each set of words (the files of one
    patient share most of theirs)."""
    return _word_pattern(frozenset(words))


#: What must not touch a word of each kind, before and after it (see :func:`_alternatives`).
_ANYWHERE = ("", "")
_SHORT_ID = (r"(?<![^\W_])(?<![0-9][.,\-/:])", r"(?![^\W_])(?![.,\-/:x][0-9])")
#: A number not inside a longer one, nor a part of a decimal or a dotted code (a UID's
#: arc, a pixel spacing's fraction): a PatientID 703125 is no leak in "0.703125".
_NUMBER = (r"(?<![0-9])(?<![0-9]\.)", r"(?![0-9])(?!\.[0-9])")
_NAME = (r"(?<![^\W\d_])", r"(?![^\W\d_])")
#: A name spelled out: first, whether four letters stand apart here at all (checked once
#: a place for all the names: most text fails it at its first character).
_SPELLED = (
    _NAME[0]
    + _NOT_SPELLED_BEFORE
    + rf"(?=[^\W\d_]{_LETTER_SEPARATOR}[^\W\d_]{_LETTER_SEPARATOR}[^\W\d_]{_LETTER_SEPARATOR}[^\W\d_])",
    _NAME[1],
)


def _alternatives(words: frozenset[str]) -> list[tuple[tuple[str, str], str]]:
    """(its boundaries, a literal pattern) for each way each word is written, longest
    first: whole words for alphabetic scripts (so a name "Ann" does not eat "scanner",
    but "_" and digits separate words) unless :data:`GLUED_LENGTH` long, anywhere for
    scripts written without spaces;
    IDs and dates not inside a longer number, but glued to letters (MRN12345), and long
    runs of digits with separators between them."""
    found = []
    # The patterns ignore case: a word in capitals or small letters is one alternative.
    distinct = {word.lower(): word for word in sorted(words)}.values()
    for number, word in enumerate(sorted(distinct, key=len, reverse=True)):
        escaped = re.escape(word)
        digits = sum(c.isdigit() for c in word)
        if not word.isascii() and no_spaces_script(word):
            found.append((_ANYWHERE, escaped))
        elif digits and len(word) < MIN_LENGTH:
            # A short ID ("7"): a word of its own, not a digit of a longer code, nor of a
            # number or a range ("1.5 mm", "1-2 cm").
            found.append((_SHORT_ID, escaped))
        elif digits:
            found.append((_NUMBER, escaped))
            if digits >= SEPARATED_DIGITS and digits == len(word):
                # Up to two separators between digits: "(555) 123", "548 - 322", "548_322".
                found.append((_NUMBER, r"[\s\-()./_:#]{0,2}".join(word)))
            elif len(word) >= GLUED_LENGTH and word.isascii() and word.isalnum():
                # A code of letters and digits written with separators inside (PIDX-9731).
                found.append((_NUMBER, (_ID_SEPARATOR_CLASS + "{0,2}").join(word)))
        else:
            # Names: short ones not inside a longer word ("Ann" in "scanner"), but
            # "DOE_JOHN" and "JOHN1960" are found; long ones anywhere.
            found.append((_ANYWHERE if len(word) >= GLUED_LENGTH else _NAME, escaped))
            if len(word) >= SPELLED_LENGTH and word.isalpha():
                found.append((_SPELLED, _spelled_out(word, f"spelled{number}")))
    return found


@lru_cache(maxsize=256)
def _word_pattern(words: frozenset[str]) -> re.Pattern | None:
    """One pattern for all the words (:func:`_alternatives`), longest first at each place."""
    alternatives = [f"{before}{literal}{after}" for (before, after), literal in _alternatives(words)]
    return re.compile("|".join(alternatives), re.IGNORECASE) if alternatives else None


def presence_pattern(words: Iterable[str]) -> re.Pattern | None:
    """A pattern that matches where :func:`word_pattern` does, faster, for asking whether
    a text holds a word at all: the words are grouped by their boundaries, so that each
    place is tested once a kind, not once a word. (Its matches may be shorter.)"""
    return _presence_pattern(frozenset(words))


@lru_cache(maxsize=256)
def _presence_pattern(words: frozenset[str]) -> re.Pattern | None:
    groups: dict[tuple[str, str], list[str]] = {}
    for boundaries, literal in _alternatives(words):
        groups.setdefault(boundaries, []).append(literal)
    alternatives = [f"{before}(?:{'|'.join(literals)}){after}" for (before, after), literals in groups.items()]
    return re.compile("|".join(alternatives), re.IGNORECASE) if alternatives else None

"""What identifies a file's patient in free text, and the spellings it is written in.

Clean Descriptors and the check before a file is written search text for every
identifying value of the same header. The rule: a value identifies when it is at least
3 characters long, or is an ID (it holds a digit), whatever its length. The values:

* every person name anywhere in the header, by its parts, and as RIS systems spell
  them: accents dropped (Müller as Muller) or written out (MUELLER, GROSS for Groß),
  apostrophes dropped (O'Brien as OBRIEN), particles and hyphens run together
  (VANDERBERG, SMITHJONES);
* the patient's IDs, other IDs, accession numbers and study IDs; an ID is found glued
  to a prefix (MRN12345) and, when long, with separators between its digits
  (a telephone number written as (555) 123-4567);
* every date of the header, in the formats people write: 19601231, 1960-12-31,
  1960/12/31, 31/12/1960, 12/31/1960, 31.12.1960, Dec 31 1960, 31 December 1960 ...
  (any date-like text is read, then compared with the header's dates);
* the value of every text attribute the profile removes or replaces (addresses,
  telephone numbers, institutions, stations, departments), whole and by the parts a
  comma or a line separates.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

MIN_LENGTH = 3
#: IDs long enough to be written with separators between their digits (telephones).
SEPARATED_DIGITS = 7
#: Attributes that hold identifiers, whatever their action.
ID_KEYWORDS = ("PatientID", "OtherPatientIDs", "AccessionNumber", "MedicalRecordLocator", "StudyID")
#: Text VRs whose removed or replaced values are searched for in what is kept.
TEXT_VRS = frozenset({"SH", "LO", "ST", "LT", "UT", "UC"})
_WRITTEN_OUT = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "ø": "oe", "å": "aa", "æ": "ae", "œ": "oe"})
_NAME_SEPARATORS = re.compile(r"[\^=\s,\-'’.()]+")
_SEGMENTS = re.compile(r"[,;\^\r\n]+")


def is_identifying(value: str, is_id: bool = False) -> bool:
    return len(value) >= MIN_LENGTH or (is_id and bool(value))


def fold(text: str) -> str:
    """Accents removed (Müller -> Muller), as free text often spells names without them."""
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def no_spaces_script(word: str) -> bool:
    """Chinese, Japanese and Korean text: names run into the words around them."""
    return any("\u3040" <= c <= "\u30ff" or "\u3400" <= c <= "\u9fff" or "\uac00" <= c <= "\ud7af" for c in word)


def _variants(word: str) -> set[str]:
    """A word, accents dropped, and accents written out (Müller: Muller, Mueller)."""
    return {word, fold(word), fold(word.lower().translate(_WRITTEN_OUT))}


def name_spellings(value) -> set[str]:
    """The parts of a person name (components, words, hyphenated halves: two letters or
    more, any length in scripts written without spaces), and each component with its
    separators run together (O'Brien, van der Berg, Smith-Jones), in every variant."""
    spellings: set[str] = set()
    text = str(value)
    for part in _NAME_SEPARATORS.split(text):
        if len(part) >= 2 or (part and no_spaces_script(part)):
            spellings |= _variants(part)
    for component in re.split(r"[\^=]", text):
        # The component run together (van der Berg), and each of its words without its
        # apostrophes (O'Brien-Smith: OBrien).
        for piece in [component, *re.split(r"[\s\-]+", component)]:
            joined = _NAME_SEPARATORS.sub("", piece)
            if len(joined) >= MIN_LENGTH and joined != piece.strip():
                spellings |= _variants(joined)
    return {s for s in spellings if s}


_MONTHS = [dt.date(2000, m, 1) for m in range(1, 13)]
_MONTH_NUMBERS = {d.strftime(f).lower(): d.month for d in _MONTHS for f in ("%b", "%B")}
_MONTH = "(?:" + "|".join(sorted(_MONTH_NUMBERS, key=len, reverse=True)) + ")"
#: A date as people write it; which one it is (day first or month first) is settled by
#: :func:`_dates_of` trying both.
DATE_TOKEN = re.compile(
    r"(?<![0-9])(?:"
    r"(?P<y1>\d{4})[-/.]?(?P<m1>\d{1,2})[-/.]?(?P<d1>\d{1,2})"
    r"|(?P<a2>\d{1,2})[-/.](?P<b2>\d{1,2})[-/.](?P<y2>\d{4})"
    rf"|(?P<mn3>{_MONTH})\.?[ -](?P<d3>\d{{1,2}}),?[ -](?P<y3>\d{{4}})"
    rf"|(?P<d4>\d{{1,2}})[ -](?P<mn4>{_MONTH})\.?,?[ -](?P<y4>\d{{4}})"
    r")(?![0-9])",
    re.IGNORECASE,
)


def date_key(value: str) -> str | None:
    """A DA value (YYYYMMDD) as the key dates in text are compared with; None if invalid."""
    try:
        return dt.datetime.strptime(str(value).strip()[:8], "%Y%m%d").strftime("%Y%m%d")
    except ValueError:
        return None


def _dates_of(match: re.Match) -> set[str]:
    g = match.groupdict()
    if g["y1"]:
        candidates = [(g["y1"], g["m1"], g["d1"])]
    elif g["y2"]:
        candidates = [(g["y2"], g["b2"], g["a2"]), (g["y2"], g["a2"], g["b2"])]
    elif g["y3"]:
        candidates = [(g["y3"], _MONTH_NUMBERS[g["mn3"].lower()], g["d3"])]
    else:
        candidates = [(g["y4"], _MONTH_NUMBERS[g["mn4"].lower()], g["d4"])]
    found = set()
    for year, month, day in candidates:
        try:
            found.add(dt.date(int(year), int(month), int(day)).strftime("%Y%m%d"))
        except ValueError:
            continue
    return found


def date_spellings(value: str) -> set[str]:
    """A DA value in some of the formats people write it (for tests and documentation:
    text is searched with :data:`DATE_TOKEN`, which reads them all)."""
    key = date_key(value)
    if key is None:
        return set()
    day = dt.datetime.strptime(key, "%Y%m%d").date()
    y, m, d = key[:4], key[4:6], key[6:]
    month = _MONTHS[day.month - 1]
    return {f"{y}-{m}-{d}", f"{y}/{m}/{d}", f"{d}/{m}/{y}", f"{m}/{d}/{y}", f"{d}.{m}.{y}", key} | {
        f"{month.strftime('%b')} {day.day} {y}",
        f"{day.day} {month.strftime('%B')} {y}",
    }


class Finder:
    """The identifying values of one header, found in text: words by one pattern, dates
    by :data:`DATE_TOKEN`, read and compared with the header's dates."""

    def __init__(self, words: re.Pattern | None, dates: frozenset[str]):
        self.words, self.dates = words, dates

    def spans(self, text: str) -> list[tuple[int, int]]:
        found = [(m.start(), m.end()) for m in self.words.finditer(text) if m.end() > m.start()] if self.words else []
        if self.dates:
            found += [(m.start(), m.end()) for m in DATE_TOKEN.finditer(text) if _dates_of(m) & self.dates]
        return sorted(found)

    def search(self, text: str) -> bool:
        if self.words is not None and self.words.search(text):
            return True
        return bool(self.dates) and any(_dates_of(m) & self.dates for m in DATE_TOKEN.finditer(text))

    def sub(self, replacement: str, text: str) -> str:
        out, last = [], 0
        for start, end in self.spans(text):
            if start >= last:
                out += [text[last:start], replacement]
                last = end
        return "".join(out) + text[last:]


def id_spellings(value) -> set[str]:
    text = str(value).strip()
    return {text} if is_identifying(text, is_id=True) else set()


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


@lru_cache(maxsize=256)
def _word_pattern(words: frozenset[str]) -> re.Pattern | None:
    """One pattern for all the words: whole words for alphabetic scripts (so a name
    "Ann" does not eat "scanner", but "_" and digits separate words), anywhere for
    scripts written without spaces; IDs and dates not inside a longer number, but glued
    to letters (MRN12345), and long runs of digits with separators between them."""
    alternatives = []
    for word in sorted(set(words), key=len, reverse=True):
        escaped = re.escape(word)
        digits = sum(c.isdigit() for c in word)
        if not word.isascii() and no_spaces_script(word):
            alternatives.append(escaped)
        elif digits and len(word) < MIN_LENGTH:
            # A short ID ("7"): a word of its own, not a digit of a longer code.
            alternatives.append(rf"(?<![^\W_]){escaped}(?![^\W_])")
        elif digits:
            alternatives.append(rf"(?<![0-9]){escaped}(?![0-9])")
            if digits >= SEPARATED_DIGITS and digits == len(word):
                spaced = r"[\s\-().]{0,2}".join(word)
                alternatives.append(rf"(?<![0-9]){spaced}(?![0-9])")
        else:
            # Names: not inside a longer word, but "DOE_JOHN" and "JOHN1960" are found.
            alternatives.append(rf"(?<![^\W\d_]){escaped}(?![^\W\d_])")
    return re.compile("|".join(alternatives), re.IGNORECASE) if alternatives else None

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
  1960/12/31, 31/12/1960, 12/31/1960, 31.12.1960, Dec 31 1960, 31 December 1960 ...;
* the value of every text attribute the profile removes or replaces (addresses,
  telephone numbers, institutions, stations, departments), whole and by the parts a
  comma or a line separates.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Iterable

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


def date_spellings(value: str) -> set[str]:
    """A DA value (YYYYMMDD) in the formats people write it; nothing for an invalid date."""
    digits = str(value).strip()[:8]
    try:
        day = dt.datetime.strptime(digits, "%Y%m%d").date()
    except ValueError:
        return set()
    y, m, d = f"{day.year:04d}", f"{day.month:02d}", f"{day.day:02d}"
    month = _MONTHS[day.month - 1]
    short, long = month.strftime("%b"), month.strftime("%B")
    numeric = {f"{y}{m}{d}", f"{y}-{m}-{d}", f"{y}/{m}/{d}", f"{y}.{m}.{d}"}
    numeric |= {f"{d}/{m}/{y}", f"{m}/{d}/{y}", f"{d}.{m}.{y}", f"{d}-{m}-{y}", f"{m}-{d}-{y}"}
    unpadded = str(day.day)
    written = set()
    for name in (short, long):
        for dd in {d, unpadded}:
            written |= {f"{name} {dd} {y}", f"{name} {dd}, {y}", f"{dd} {name} {y}", f"{dd}-{name}-{y}"}
    return numeric | written


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

"""The patient's values looked for in bytes as literals, in every encoding they may be
written in, then confirmed in the bytes around each find, decoded.

A literal search finds a value's bytes at memory speed in megabytes (all of them in one
pass: :class:`curate._native.Literals`), where a pattern over every decoding would not;
the pattern, with its word boundaries, then reads each find in its context, so that a
value's bytes inside a longer word, or by chance in binary data, hold nothing back.

The legacy encodings of other scripts (:data:`LEGACY_CODECS`) are searched whatever
character set the header declares: a Cyrillic name may lie in an OB in Windows-1251 in a
UTF-8 header. A few bytes of them turn up by chance in binary data, so a spelling in one
is looked for only from :data:`LEGACY_MIN_BYTES` bytes on.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping

from curate._native import Literals

#: Encodings a value of another script may be written into bytes in, whatever the
#: header's character set says: Cyrillic, Greek and Central European (Windows and ISO),
#: Japanese, Chinese (traditional and simplified), Korean and Thai.
LEGACY_CODECS = (
    "cp1251",
    "koi8_r",
    "iso8859_5",
    "cp1253",
    "iso8859_7",
    "cp1250",
    "iso8859_2",
    "shift_jis",
    "euc_jp",
    "big5",
    "gb18030",
    "euc_kr",
    "cp874",
)
#: The fewest bytes a value in a legacy encoding is looked for with: three bytes of
#: Windows-1251 turn up by chance in binary data.
LEGACY_MIN_BYTES = 4
#: The fewest bytes a value is looked for with in the encodings of the header itself.
OWN_MIN_BYTES = 2
#: Finds a search confirms before it gives up and holds the file back (bytes built to
#: make the search slow are not worth its cost).
MAX_NEAR_MISSES = 2_000
#: Bytes read on either side of a find to confirm it.
AROUND = 128


def legacy_encodings(own: list[str]) -> dict[str, int]:
    """Each encoding to search -> the fewest bytes a spelling in it is looked for with:
    the `own` ones (the header's, UTF-8, Latin-1, UTF-16) from :data:`OWN_MIN_BYTES`,
    the legacy ones not among them, and ISO 2022 Japanese (a value's bytes are found
    inside a run of its set, and read from the escape before them), from
    :data:`LEGACY_MIN_BYTES`."""
    found = dict.fromkeys(own, OWN_MIN_BYTES)
    for codec in (*LEGACY_CODECS, "iso2022_jp"):
        found.setdefault(codec, LEGACY_MIN_BYTES)
    return found


def spellings_in(word: str, encodings: Mapping[str, int]) -> dict[bytes, str]:
    """`word` as written, in capitals, small letters and title case, in each of
    `encodings` (-> the fewest bytes a spelling in it is looked for with) that has its
    letters, ASCII letters lowered -> its encoding. Not in a legacy encoding where the
    word mixes Latin letters with another script's: that is a lookalike reading of a name
    (Ивaн with a Latin a), never written so, and its spellings would only add chances
    to find a few bytes in binary data."""
    mixed = _two_scripts(word)
    found: dict[bytes, str] = {}
    for form in dict.fromkeys((word, word.upper(), word.lower(), word.title())):
        for encoding, fewest in encodings.items():
            if mixed and fewest > OWN_MIN_BYTES:
                continue
            try:
                encoded = _inside_a_run(form.encode(encoding), encoding).lower()
            except UnicodeEncodeError:  # a letter this encoding has not: not written in it
                continue
            if len(encoded) >= fewest:
                found.setdefault(encoded, encoding)
    return found


#: The longest literal searched for: a longer spelling is found by its first bytes, and
#: confirmed whole (the automaton of many long, repetitive literals takes long to build:
#: a name of a thousand letters would cost a minute).
MAX_LITERAL = 64


class LiteralSearch:
    """Spellings (bytes, ASCII letters lowered -> their encoding) found in bytes in any
    ASCII case, each find confirmed in the bytes around it, decoded."""

    def __init__(self, spellings: Mapping[bytes, str]):
        self.spellings = list(spellings)
        self.encodings = [spellings[s] for s in self.spellings]
        starts = [s[:MAX_LITERAL] for s in self.spellings]
        self._literals = Literals(starts, ascii_case_insensitive=True) if starts else None

    def holds(self, data: bytes, confirm: Callable[[str], bool]) -> bool:
        """Whether a spelling occurs in `data` where `confirm` says the text around it,
        decoded by its encoding, holds the value; or more than :data:`MAX_NEAR_MISSES`
        spellings occur."""
        if self._literals is None or not data:
            return False
        finds = self._literals.find_all(data, limit=MAX_NEAR_MISSES + 1)
        if len(finds) > MAX_NEAR_MISSES:
            return True
        return any(confirm(around(data, at, len(self.spellings[i]), self.encodings[i])) for at, i in finds)


def _two_scripts(word: str) -> bool:
    """Whether `word` has Latin letters and letters of another script."""
    latin = other = False
    for c in word:
        if c.isalpha():
            if c.isascii() or unicodedata.name(c, "").startswith("LATIN"):
                latin = True
            else:
                other = True
    return latin and other


#: ISO 2022 Japanese: the escape into a double-byte set and back to ASCII.
_ISO2022_IN, _ISO2022_OUT = (b"\x1b$B", b"\x1b$@"), b"\x1b(B"


def _inside_a_run(encoded: bytes, encoding: str) -> bytes:
    """A value of one double-byte set in ISO 2022 Japanese without the escapes about it:
    inside a longer run of that set (患者山田様) its bytes stand with no escape of their own."""
    if not encoding.startswith("iso2022") or not encoded.endswith(_ISO2022_OUT):
        return encoded
    inner = encoded[3:-3]
    return inner if encoded[:3] in _ISO2022_IN and b"\x1b" not in inner else encoded


def around(data: bytes, at: int, length: int, encoding: str) -> str:
    """The bytes around `length` bytes found at `at`, decoded by `encoding` (what does not
    decode dropped). What lies before the find is decoded apart from the rest, so that a
    multi-byte encoding reads the find from its first byte; in ISO 2022, from the last
    escape before it (which says what its bytes are)."""
    if encoding.startswith("iso2022"):
        escape = data.rfind(b"\x1b", max(0, at - 8 * AROUND), at + 1)
        start = escape if escape != -1 else max(0, at - AROUND)
        return data[start : at + length + AROUND].decode(encoding, errors="ignore")
    back = min(at, AROUND)
    if back % 2 and encoding.startswith("utf-16"):
        back -= 1  # the window starts on the find's own alignment
    before = data[at - back : at].decode(encoding, errors="ignore")
    return before + data[at : at + length + AROUND].decode(encoding, errors="ignore")

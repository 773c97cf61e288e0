"""The words of device makers' names, excused where they stand in a manufacturer attribute.

A name of six letters or more is found anywhere in text (:data:`GLUED_LENGTH`), so a
patient called Philip would turn "Philips Medical Systems" into "*s Medical Systems".
In Manufacturer (and the other attributes of :data:`VENDOR_TAGS`) a find that lies
wholly inside a word of a maker's name is excused: the word names the device. A find
that reaches past it (an ID GE12345, a name Philips-en with an invisible character
inside) is not, and nor is anything outside the vendor words.

:func:`unexcused` keeps the finds that are not excused.
"""

from __future__ import annotations

import re

#: Manufacturer, Secondary Capture Device Manufacturer: attributes that name a maker.
VENDOR_TAGS = frozenset({0x00080070, 0x00181016})

#: Makers' names and the words of company names, as written in Manufacturer values.
VENDOR_WORDS = frozenset(
    """
    Agfa Allengers Bruker Canon Carestream Del Drgem Elekta Esaote Fuji Fujifilm GE
    Healthineers Hitachi Hologic Kodak Konica Lorad Medison Minolta Mindray Neusoft
    Philips Planmeca Rayence Samsung Shimadzu Siemens Sirona Swissray Toshiba Trophy UIH
    United Varian Vatech Vieworks Ziehm iCAD Instrumentarium Eastman Vital
    AG BV Co Company Corp Corporation Diagnostics Dynamics Electric Electronics
    Engineering Film General GmbH Group Health Healthcare Images Imaging Inc
    Industries International Limited LLC Ltd Medical NV Oy Photo SA Solutions Systems
    Technologies Technology
    """.split()
)

#: A vendor word as a word of its own: no letter touches it (digits, "_" and
#: punctuation do not join words here, as they do not in :mod:`curate.deid.identifiers`).
_VENDOR_WORD = re.compile(
    r"(?<![^\W\d_])(?:" + "|".join(sorted(map(re.escape, VENDOR_WORDS), key=len, reverse=True)) + r")(?![^\W\d_])",
    re.IGNORECASE,
)


def spans(text: str) -> list[tuple[int, int]]:
    """Where `text` holds vendor words (start, end)."""
    return [(m.start(), m.end()) for m in _VENDOR_WORD.finditer(text)]


def unexcused(text: str, finds: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Those of `finds` (spans of `text`) not wholly inside one vendor word of `text`."""
    words = spans(text)
    return [(a, b) for a, b in finds if not any(start <= a and b <= end for start, end in words)]

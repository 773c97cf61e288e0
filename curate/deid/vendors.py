"""The words of device makers' names, excused where they stand in a manufacturer attribute.

A name of six letters or more is found anywhere in text (:data:`GLUED_LENGTH`), so a
patient called Philip would turn "Philips Medical Systems" into "*s Medical Systems".
In Manufacturer (and the other attributes of :data:`VENDOR_TAGS`) the words of makers'
names are whole words of their own, not the patient's: they are kept, and only the text
between them is cleaned and searched. A patient named after a maker keeps that word in
these attributes alone, where it names the device.

:func:`pieces` splits a value at the vendor words; :func:`blank` writes spaces over
them (what the check searches).
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


def pieces(text: str) -> list[tuple[str, bool]]:
    """`text` cut at its vendor words: (piece, whether it is a vendor word), in order."""
    out, last = [], 0
    for match in _VENDOR_WORD.finditer(text):
        if match.start() > last:
            out.append((text[last : match.start()], False))
        out.append((match.group(), True))
        last = match.end()
    if last < len(text):
        out.append((text[last:], False))
    return out


def blank(text: str) -> str:
    """`text` with spaces over its vendor words."""
    return _VENDOR_WORD.sub(lambda m: " " * len(m.group()), text)

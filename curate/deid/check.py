"""Checks on a de-identified data set before its file is written.

The header as written (preamble, file meta group, every sequence, up to Pixel Data) is
read back from the file and must pass two checks:

* every value of a VR that the Specific Character Set governs (SH, LO, ST, LT, UC, UT, PN)
  decodes, strictly, under the character set in force where it sits (PS3.5 6.1): a
  reader must see the characters curate wrote;
* no text value holds one of the patient's identifying strings (names, IDs, birth date)
  as a whole word, outside text an option keeps on purpose. Values are searched as
  decoded under their character set (so Cyrillic, Greek or ISO 2022 Japanese names are
  found) and the raw bytes as UTF-8 and Latin-1 as well.

:func:`file_problem` says which check fails for a file just written, or None.
"""

from __future__ import annotations

import codecs as codecs_module
import functools
import io
import re
from collections.abc import Callable, Iterable

from pydicom import config, dcmread
from pydicom.charset import convert_encodings, decode_bytes
from pydicom.dataset import Dataset
from pydicom.uid import DeflatedExplicitVRLittleEndian
from pydicom.values import TEXT_VR_DELIMS

from curate._native import Literals
from curate.deid import vendors
from curate.deid.engine import OPTION_CODES, PROFILE_CODE, Identity
from curate.deid.identifiers import Finder, date_spellings, latin_readings, without_invisible
from curate.deid.literals import LEGACY_CODECS, LiteralSearch, legacy_encodings, spellings_in
from curate.deid.profile import Options, Profile
from curate.deid.uids import uids_in
from curate.deid.vendors import VENDOR_TAGS

HEADER_LEAK = "identifying text left in the header"
UID_LEAK = "a source UID left in the header"
CHARSET_MISMATCH = "text not in the declared Specific Character Set"
TEXT_VRS = {"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UT", "UR"}
#: The VRs :func:`_decode_all` reads as written: text, items, and UN (which pydicom
#: reads as its dictionary VR, text perhaps).
_READ_VRS = TEXT_VRS | {"SQ", "UN"}
#: The VRs whose values the Specific Character Set governs (PS3.5 6.1.2.3).
CHARSET_VRS = {"LO", "LT", "PN", "SH", "ST", "UC", "UT"}
PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)


def file_problem(path, ds: Dataset, identity: Identity, profile: Profile, trailer: bytes = b"") -> str | None:
    """Why the file just written at `path` from `ds` must not be put in place, or None.
    Its header is read back from the file, up to Pixel Data: the bytes as written; the
    `trailer` (the bytes written after Pixel Data) is searched with it."""
    with open(path, "rb") as fp:
        written = dcmread(fp, stop_before_pixels=True, force=True)
        end = fp.tell()  # pydicom stops at the start of the Pixel Data element
        fp.seek(0)
        header = fp.read(end)
    meta = getattr(written, "file_meta", None)
    if meta is not None and meta.get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian:
        # The file's bytes are compressed (and pydicom read them all): search the data set
        # as it reads, encoded plainly, not bytes a name could only match by chance; read
        # back from those bytes, as any other header is.
        header = _plain_bytes(written)
        written = dcmread(io.BytesIO(header), force=True)
    return _problem(header, written, ds, identity, profile, trailer)


def _plain_bytes(ds: Dataset) -> bytes:
    """`ds` without Pixel Data, encoded as explicit VR little endian."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    write_dataset(fp, _without_pixels(ds))
    return fp.getvalue()


def _without_pixels(ds: Dataset) -> Dataset:
    """A new data set sharing `ds`'s elements but Pixel Data (a copy.copy would share the
    element dict, and deleting Pixel Data from it would delete it from `ds`)."""
    header = Dataset()
    for element in ds:
        if element.tag not in PIXEL_TAGS:
            header.add(element)
    return header


def header_problem(ds: Dataset, identity: Identity, profile: Profile) -> str | None:
    """Why `ds` must not be written (:data:`CHARSET_MISMATCH` or :data:`HEADER_LEAK`), or
    None: :func:`file_problem` for a data set not written yet."""
    header = header_bytes(ds)
    return _problem(header, dcmread(io.BytesIO(header), force=True), ds, identity, profile)


def _problem(
    header: bytes, written: Dataset, ds: Dataset, identity: Identity, profile: Profile, trailer: bytes = b""
) -> str | None:
    texts: list[str] = []
    binary: list[bytes] = [trailer]
    excuses = _Excuses(keeps=_KeptOnPurpose(profile))
    try:
        _decode_all(written, None, texts, binary, excuses)
    except (UnicodeError, LookupError):  # bytes that do not fit, or a set no codec reads
        return CHARSET_MISMATCH
    if not profile.options.retain_uids and uids_in(header + trailer, identity.uids):
        return UID_LEAK
    # Not the IDs of one or two characters: a "2" is cleaned from free text, but a code
    # or a number that equals it is no sign of a leak.
    long = identity.header_pattern()
    if long is None:
        return None
    # Invisible characters (a soft hyphen, a zero-width space) split no name.
    searches = [(long.search, text) for text in latin_readings(without_invisible("\n".join(texts)))]
    for value in excuses.vendor_values:  # a find wholly inside a maker's word is excused
        value = without_invisible(value)
        if vendors.unexcused(value, long.spans(value)):
            return HEADER_LEAK
    # Raw bytes, where a value may hide in an attribute read as bytes (invisible characters
    # dropped there too): for values of three characters or more (two letters such as
    # "OB" or "LO" are also VR codes), and the
    # header's dates as people write them (in an ICC profile, an OB, after the pixels).
    # Dates only in the values that are not text (the text values are searched above):
    # a date pattern over every byte of the header would cost more than all the rest.
    long_words = identity.long_pattern()
    words = long_words.presence if long_words is not None else None
    # A name or a date of another script may be written into bytes in a legacy encoding
    # that is not the header's (a Cyrillic name in an OB in Windows-1251).
    foreign = [tuple(sorted(word for word in (long_words.values if long_words else ()) if not word.isascii()))]
    foreign += [_foreign_date_spellings(key) for key in sorted(identity.dates)]
    foreign = [values for values in foreign if values]
    raw = excuses.blanked(header) + trailer if words is not None or foreign else b""
    if words is not None:
        searches += [
            (words.search, read) for text in _raw_texts(raw, ds) for read in latin_readings(without_invisible(text))
        ]
    dates = Finder([], identity.dates) if identity.dates else None

    def confirm(text: str) -> bool:  # a legacy find in its context: the value itself, or a date
        reads = latin_readings(without_invisible(text))
        return any((words and words.search(r)) or (dates and dates.search(r)) for r in reads)

    if _holds_in_legacy_codecs(raw, foreign, confirm):
        return HEADER_LEAK
    if dates is not None:
        values = b"\n".join(binary)
        if len(values) > DATE_PATTERN_BYTES:
            if holds_a_date_literally(values, identity.dates):
                return HEADER_LEAK
        else:
            # Read as the text is (full-width digits and signs as plain ones).
            searches += [
                (dates.search, read)
                for text in _raw_texts(values, ds)
                for read in latin_readings(without_invisible(text))
            ]
    for search, text in searches:
        if search(text):
            return HEADER_LEAK
    return None


#: Bytes of binary values past which dates are looked for as literals, not by pattern: a
#: pattern reads every date-like run of digits in Python, and a header of megabytes of
#: them would take minutes.
DATE_PATTERN_BYTES = 65_536


def holds_a_date_literally(data: bytes, dates: frozenset[str]) -> bool:
    """Whether `data` holds one of `dates` in one of its common spellings (one byte a
    character, UTF-8, UTF-16 either way, and the legacy encodings): every spelling in one
    pass over the bytes (megabytes of a profile or a table)."""
    return _date_literals(tuple(sorted(dates))).occurs_in(data)


@functools.lru_cache(maxsize=64)
def _date_literals(dates: tuple[str, ...]) -> Literals:
    """The spellings of `dates` in every encoding they may be written in, as literals
    (made once a patient's dates; the files of a study lie together, so a few dozen kept
    serve them: each is some hundred kilobytes)."""
    encodings = ("latin-1", "utf-8", "utf-16-le", "utf-16-be", *LEGACY_CODECS)
    found = set()
    for key in dates:
        for spelling in date_spellings(key):
            for codec in encodings:
                try:
                    found.add(spelling.encode(codec))
                except UnicodeEncodeError:  # an en dash or a CJK sign has no Latin-1 byte
                    continue
    return Literals(sorted(found))


#: What the header check reads a value of another script in, in bytes (the header's own
#: encodings are read whole, decoded): the legacy encodings only.
_LEGACY_ONLY = legacy_encodings([])


def _holds_in_legacy_codecs(data: bytes, groups: list[tuple[str, ...]], confirm: Callable[[str], bool]) -> bool:
    """Whether `data` holds one of the values of `groups` (a patient's words; each date's
    spellings) encoded in one of :data:`LEGACY_CODECS` (:func:`_legacy_spellings`), where
    `confirm` says the bytes around it, decoded, hold the value: a pass over the bytes a
    group, each group's search made once (the files of a patient or a day share them)."""
    return any(_legacy_search(values).holds(data, confirm) for values in groups)


@functools.lru_cache(maxsize=64)
def _legacy_search(values: tuple[str, ...]) -> LiteralSearch:
    """The search for `values` in the legacy encodings."""
    found: dict[bytes, str] = {}
    for value in values:
        for spelling, codec in _legacy_spellings(value).items():
            found.setdefault(spelling, codec)
    return LiteralSearch(found)


@functools.lru_cache(maxsize=2048)
def _legacy_spellings(value: str) -> dict[bytes, str]:
    """:func:`curate.deid.literals.spellings_in` the legacy encodings (made once a value)."""
    return spellings_in(value, _LEGACY_ONLY)


@functools.lru_cache(maxsize=256)
def _foreign_date_spellings(key: str) -> tuple[str, ...]:
    """The spellings of the date `key` that are not ASCII (1960年12月31日)."""
    return tuple(spelling for spelling in date_spellings(key) if not spelling.isascii())


def _raw_texts(data: bytes, ds: Dataset) -> list[str]:
    """`data` read every way a value may be written into bytes: :func:`_raw_codecs`, and
    UTF-16 (a palette, an OB)."""
    return decodings(data, [*_raw_codecs(ds), "utf-16-le", "utf-16-be"])


def decodings(data: bytes, codecs: Iterable[str]) -> list[str]:
    """`data` decoded by each of `codecs`, UTF-16 at either byte alignment. A byte that
    does not decode becomes U+FFFD, which parts words: dropped, the letters on either
    side would join (an ECG's samples read as "ANn")."""
    return [
        data[skip:].decode(codec, errors="replace")
        for codec in codecs
        for skip in ((0, 1) if codec.startswith("utf-16") else (0,))
    ]


def _raw_codecs(ds: Dataset) -> list[str]:
    """UTF-8, Latin-1 and the codecs of the header's own character set (a Cyrillic name
    written into an OB in ISO_IR 144)."""
    codecs = ["utf-8", "latin-1"]
    charset = ds.get("SpecificCharacterSet")
    if charset:
        try:
            codecs += convert_encodings(charset)
        except Exception:  # a set no codec reads: the header check says so elsewhere
            pass
    found = {}
    for codec in codecs:
        try:
            found.setdefault(codecs_module.lookup(codec).name, codec)
        except LookupError:
            continue
    return list(found.values())


def header_bytes(ds: Dataset) -> bytes:
    """`ds` encoded as its file will be, without Pixel Data."""
    header = _without_pixels(ds)
    header.file_meta = ds.file_meta
    header.preamble = ds.preamble
    buffer = io.BytesIO()
    header.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def decoded_text(header: bytes) -> list[str]:
    """Every text value of an encoded header, decoded strictly under the character set in
    force where it sits; raises UnicodeError where a value's bytes do not fit it."""
    out: list[str] = []
    _decode_all(dcmread(io.BytesIO(header), force=True), None, out)
    return out


class _Excuses:
    """What is excused where it stands: the byte spans of a code word's value or of a
    maker's words in Manufacturer (:mod:`curate.deid.vendors`), each at the offset the
    header holds it at, blanked there and nowhere else before the raw search; and the
    decoded values of Manufacturer, searched with their own excuse."""

    def __init__(self, keeps: _KeptOnPurpose | None = None):
        self.at: list[tuple[int, bytes, list[tuple[int, int]]]] = []
        self.vendor_values: list[str] = []
        self.keeps = keeps

    def kept(self, element, values: list[str]) -> bool:
        """Whether `element` (its `values`) is text kept on purpose (:class:`_KeptOnPurpose`)."""
        return self.keeps is not None and self.keeps(element, values)

    def add(self, offset: int | None, value: bytes, spans: list[tuple[int, int]]) -> None:
        if offset is not None and spans:
            self.at.append((offset, value, spans))

    def blanked(self, header: bytes) -> bytes:
        """`header` with spaces over the excused spans of values found where recorded."""
        out = bytearray(header)
        for offset, value, spans in self.at:
            if out[offset : offset + len(value)] != value:
                continue  # not where it was read from: excused nowhere else
            for start, end in spans:
                out[offset + start : offset + end] = b" " * (end - start)
        return bytes(out)


#: The length of an element of undefined length (an item sequence read with its parent).
_UNDEFINED_LENGTH = 0xFFFFFFFF


def _decode_all(
    ds: Dataset,
    inherited,
    out: list[str],
    binary: list[bytes] | None = None,
    excuses: _Excuses | None = None,
    base: int | None = 0,
) -> None:
    """The text values of `ds` at any depth, decoded, into `out`; with `binary`, the bytes
    of the other values (numbers, binary data, unknown VRs; not UIDs) into it; with
    `excuses`, :func:`_is_code_word` values and Manufacturer's values into it, instead of
    into `out`. `base`: where the bytes `ds` was read from begin in the header (pydicom
    gives an item's offsets from the start of its sequence's value where that has a
    length; None where unknown). An offset is trusted only where the header holds the
    value's very bytes (:meth:`_Excuses.blanked`)."""
    charset = ds.SpecificCharacterSet if "SpecificCharacterSet" in ds else inherited
    # No Specific Character Set (or ISO_IR 6) means the default repertoire, ASCII, which
    # pydicom reads leniently as Latin-1; otherwise pydicom's reading of the terms (with its
    # fix-ups of misspellings) gives the codecs.
    encodings = convert_encodings(charset) if charset not in (None, "", "ISO_IR 6") else ["ascii"]
    for tag in list(ds.keys()):
        raw = ds.get_item(tag)
        written_vr = getattr(raw, "VR", None)  # None where the file is implicit VR
        if written_vr is not None and written_vr not in _READ_VRS:
            # Neither text nor items: not converted at all (the costly part).
            if binary is not None and written_vr != "UI" and isinstance(raw.value, (bytes, bytearray)):
                binary.append(bytes(raw.value))
            continue
        value = getattr(raw, "value", None)
        tell = getattr(raw, "value_tell", None)
        offset = None if base is None or tell is None else base + tell
        element = ds[tag]  # the VR, from the dictionary where the file is implicit VR
        if element.VR == "SQ":
            # A sequence of undefined length is read with its parent (its items' offsets
            # are the parent's); one with a length, later, from its own value's bytes.
            undefined = tell is None or getattr(raw, "length", None) == _UNDEFINED_LENGTH
            inner = base if undefined else offset
            for item in element.value:
                _decode_all(item, charset, out, binary, excuses, inner)
        elif element.VR in TEXT_VRS and element.value and not isinstance(value, (bytes, bytearray)):
            # Already decoded (a data set read whole): searched as is, and excused in the
            # text alone (where its bytes lie is not known).
            values = [str(v) for v in (element.value if element.VM > 1 else [element.value])]
            if excuses is not None and excuses.kept(element, values):
                continue
            if excuses is not None and int(tag) in VENDOR_TAGS:
                excuses.vendor_values.extend(values)
            elif excuses is None or not _is_code_word(tag, element.VR, values):
                out.extend(values)
        elif not isinstance(value, (bytes, bytearray)) or not value:
            continue
        elif element.VR in CHARSET_VRS:
            delimiters = {0x5E, 0x3D} if element.VR == "PN" else TEXT_VR_DELIMS
            with config.strict_reading():  # strict for this value's bytes only
                text = decode_bytes(bytes(value), encodings, delimiters)
            if excuses is not None and excuses.kept(element, text.split("\\")):
                excuses.add(offset, bytes(value), [(0, len(value))])  # kept on purpose, where it stands
            elif excuses is not None and int(tag) in VENDOR_TAGS:
                # A maker's name: its words are excused in its bytes where it stands (read
                # one byte a character, as a vendor word is ASCII in every set).
                excuses.vendor_values.append(text)
                excuses.add(offset, bytes(value), vendors.spans(bytes(value).decode("latin-1")))
            else:
                out.append(text)
        elif element.VR in TEXT_VRS:
            # Code strings, AE titles, URIs: the default repertoire, which the character
            # set does not change; read leniently (searched, not judged).
            text = bytes(value).decode("latin-1")
            words = text.split("\\")
            if excuses is not None and (_is_code_word(tag, element.VR, words) or excuses.kept(element, words)):
                excuses.add(offset, bytes(value), [(0, len(value))])
            else:
                out.append(text)
        elif binary is not None and element.VR != "UI":
            binary.append(bytes(value))


#: What curate itself writes into every output (the method of de-identification): it
#: shares words with names ("Basic") and is no leak.
OWN_TEXT_KEYWORDS = ("DeidentificationMethod", "CodeMeaning", "LongitudinalTemporalInformationModified")
#: The code meanings of curate's method codes (CID 7050), the only CodeMeanings it adds.
METHOD_MEANINGS = frozenset({PROFILE_CODE[1], *(name for _, name in OPTION_CODES.values())})


#: A code as a device writes one: a word of capital letters (HEAD, LATERAL).
_CODE_WORD = re.compile(r"[A-Z][A-Z_]*")


def _is_code_word(tag: int, vr: str, values: list[str]) -> bool:
    """Whether a code string or AE title the Basic Profile keeps holds only words of
    letters (HEAD): such a value is excused where it stands, even if the patient is
    called Head. A value with a space or a digit in it (a full name, an ID) is not a
    code word, and is searched like any text."""
    if vr not in ("CS", "AE") or _basic_profile().action(int(tag)) != "K":
        return False
    words = [v.strip() for v in values]
    return any(words) and all(not w or _CODE_WORD.fullmatch(w) for w in words)


@functools.lru_cache(maxsize=1)
def _basic_profile() -> Profile:
    return Profile(Options())


class _KeptOnPurpose:
    """Whether a text element is one an option keeps on purpose (such as Retain
    Institution Identity: what the Basic Profile alone would not keep), or text curate
    adds: not a leak, even where it shares a word with the patient's name. Such a value
    is excused where it stands (its own bytes), not wherever its words recur. What the
    Basic Profile keeps anyway (a code string, an AE title) is excused only as a code
    word (:func:`_is_code_word`)."""

    def __init__(self, profile: Profile):
        self.profile, self.basic = profile, _basic_profile()

    def __call__(self, element, values: list[str]) -> bool:
        if element.tag.is_private:
            return False
        if element.keyword in OWN_TEXT_KEYWORDS:
            return element.keyword != "CodeMeaning" or all(v.strip() in METHOD_MEANINGS for v in values)
        tag = int(element.tag)
        return self.profile.action(tag) == "K" and self.basic.action(tag) != "K"

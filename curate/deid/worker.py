"""One file through de-identification: the worker task that the tree runner and the
dataset build both use, and where its output goes."""

from __future__ import annotations

import io
import mmap
import os
import stat
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from pydicom.encaps import generate_fragments
from pydicom.uid import UID, ImplicitVRLittleEndian

from curate._native import Blake3, file_cells_or
from curate.deid.check import decodings, file_problem, holds_a_date_literally
from curate.deid.engine import Deidentifier, Identity
from curate.deid.identifiers import Finder, latin_readings, without_invisible
from curate.deid.literals import LiteralSearch, legacy_encodings, spellings_in
from curate.deid.pixels import PixelRedaction, record_redaction, redact_pixels
from curate.deid.profile import Options, Profile
from curate.deid.pseudonym import Pseudonymizer
from curate.deid.quarantine import held_back, quarantine_reasons
from curate.deid.segments import Unparsable, item_segments, text_segments
from curate.deid.split import (
    PIXEL_DATA,
    PIXEL_TAGS,
    VRS,
    CannotSplit,
    Fragment,
    Malformed,
    SplitFile,
    copy_range,
    encode_elements,
    split_file,
)
from curate.deid.strip import EXTENDED_OFFSETS, REMOVED, CannotStrip, strip_text
from curate.deid.unused_bits import CLEARED, BitLayoutError, canonical_by_or, canonical_pixels, layout
from curate.files import atomic_path
from curate.runlog import FILE_HASHES, file_digest

#: The folder name for a study or series whose UID the source lacks.
UNKNOWN_UID = "unknown"
#: Why a file is held back for what its encapsulated pixel data says.
PIXEL_TEXT_LEAK = "identifying text in a segment of encapsulated Pixel Data"
#: Native Pixel Data longer than its image, whose bytes past the image name the patient.
EXCESS_PIXEL_TEXT = "identifying text after the image in native Pixel Data"
#: A source replaced or written to while it was de-identified: what was checked may not
#: be what would be copied.
SOURCE_CHANGED = "the source changed while it was read"
#: Why a file is not written: another source file with its SOP Instance UID was.
SOP_INSTANCE_CLASH = "SOP Instance UID of another file already written"
#: A data set without its own SOP Instance UID (a fragment, a file meta group naming it
#: alone) is no instance a de-identified file can be written for.
NO_INSTANCE_UID = "no SOPInstanceUID"


class _Rejected(Exception):
    """A written header that failed its check: the file is not put in place."""


def pseudonymous_uids(pseudo: Pseudonymizer, row: dict) -> tuple[str, str, str]:
    """(study, series, instance): a file's pseudonymous UIDs, as its output path uses them."""
    study, series = (
        pseudo.uid(str(row[k])) if row.get(k) else UNKNOWN_UID for k in ("StudyInstanceUID", "SeriesInstanceUID")
    )
    return study, series, pseudo.uid(str(row["SOPInstanceUID"]))


def output_path(output: Path, pseudo: Pseudonymizer, row: dict) -> Path:
    """Where a file goes: built from its pseudonymous UIDs only, never from header text."""
    study, series, instance = pseudonymous_uids(pseudo, row)
    return output / study / series / f"{instance}.dcm"


def deidentify_task(
    source: str,
    target: str,
    options: Options,
    key: bytes,
    uid_root: str,
    pixels: PixelRedaction | None = None,
    file_hash: str = FILE_HASHES[0],
    quarantine: bool = True,
    stamp: bytes | None = None,
) -> tuple:
    """:func:`deidentify_file` as a worker process's task: (status, reason, the audit of
    the file written, empty if none was, the record of its pixels' redaction or None,
    the digest by `file_hash` of the file written or None). The file written is marked
    with `stamp` (:func:`source_stamp`), where the file system keeps extended attributes."""
    audit: Counter = Counter()
    record: dict = {}
    # Taken on the way only where the store is digested by BLAKE3.
    digests: dict | None = {} if file_hash == "blake3" else None
    status, reason = deidentify_file(
        source, target, options, key, uid_root, audit, pixels, record, digests, quarantine=quarantine
    )
    if status != "written":
        return status, reason, Counter(), None, None
    if stamp is not None:
        mark_source(target, stamp)
    # Hashed here, on the worker's core, for the store's run log (it is in the page cache).
    try:
        digest = (digests or {}).get(file_hash) or file_digest(target, file_hash)
    except OSError:  # gone already (removed by hand): the next verify shows it
        digest = None
    return status, reason, audit, record or None, digest


def deidentify_file(
    source: str,
    target: str,
    options: Options,
    key: bytes,
    uid_root: str,
    audit: Counter | None = None,
    pixels: PixelRedaction | None = None,
    record: dict | None = None,
    digests: dict | None = None,
    quarantine: bool = True,
) -> tuple[str, str | None]:
    """One worker task: read, de-identify, write under a temporary name, check, rename.
    Returns ("written", None), ("quarantined", why) for a file whose pixels' text could
    not be shown gone, or ("failed", the reason). `audit` gains what became of each
    attribute (:meth:`Deidentifier.deidentify`).

    Only the header and the elements after Pixel Data are parsed and rewritten; the
    pixel element's bytes are copied from the source by the kernel (:mod:`curate.deid.split`).
    A file that cannot be cut so is read and written whole by pydicom. With `pixels`,
    the text burned into its pixels is redacted first (:mod:`curate.deid.redact`): the
    file is read whole, and written uncompressed; `record` gains what was filled.
    `digests` gains the written file's BLAKE3 digest where it was taken on the way (a
    split file's pixels are read once, for the digest and the check of their unused bits).
    With `quarantine` (the default: a caller that turns it off takes on the text in the
    pixels), the data set read is held back for what its header says its pixels show
    (:mod:`curate.deid.quarantine`), whatever the plan read before; and a source
    that is not the same file from its first read to the last is not written. Every read
    after the first (the header, the pixels' check, digest and copy) goes through the
    descriptor `source` was opened as, whatever is renamed or linked onto the path
    meanwhile."""
    import logging
    import warnings

    # Invalid values in the source are the quality report's business, not this log's.
    logging.getLogger("pydicom").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=UserWarning, module="pydicom")

    try:
        source, fd = _pinned(source)
    except _Unreadable as err:
        return "failed", f"unreadable: {err}"
    try:
        split = None
        try:
            before = _identity_of_file(fd)
            try:
                if pixels is not None:
                    raise CannotSplit("its pixels are rewritten")
                split = split_file(source)
                ds = split.dataset
            except CannotSplit:
                ds = read_whole(source)
        except Malformed as err:
            return "failed", f"unreadable: {err}"
        except Exception as err:  # pydicom raises many kinds on broken files
            return "failed", f"unreadable: {type(err).__name__}"
        if not str(ds.get("SOPInstanceUID", "") or "").strip():
            return "failed", NO_INSTANCE_UID
        if quarantine:
            held = held_back(quarantine_reasons(ds), pixels is not None)
            if held:
                return "quarantined", held
        try:
            profile = Profile(options)
            identity = Identity.of(ds, profile)
            if split is not None and split.fragments:
                problem = _pixel_text(source, ds, split.fragments, identity)
            elif split is None and "PixelData" in ds and _encapsulated(ds):
                problem = _pixel_text(source, ds, None, identity)
            else:
                if _excess_pixel_text(source, ds, split, identity):
                    return "failed", EXCESS_PIXEL_TEXT  # nothing to cut it from: held back
                problem = None
            if problem:
                try:
                    _strip_pixel_text(source, ds, split, identity)
                except CannotStrip:
                    return "failed", problem
                split = None  # the data set holds the new pixel data: written whole
                if audit is not None:
                    audit["PixelData", REMOVED] += 1
            if pixels is not None:
                unredacted = redact_pixels(ds, pixels, record if record is not None else {})
                if unredacted:
                    return "quarantined", unredacted
            Deidentifier(profile, Pseudonymizer(key, uid_root)).deidentify(ds, identity, audit)
            if pixels is not None:
                record_redaction(ds)
            try:
                planned = None if split is None else _SplitWrite.of(source, ds, split, digest=digests is not None)
                value = _canonical_unused_bits(ds) if planned is None else planned.value
            except BitLayoutError as err:
                return "failed", f"pixel data whose bits the header does not describe ({err})"
            if value is not None and audit is not None:
                audit["PixelData", CLEARED] += 1
            # Never over another file: two sources with one SOP Instance UID share a target.
            with atomic_path(target, replace=False) as partial:
                if planned is None:
                    ds.save_as(partial, enforce_file_format=True)
                    trailer = _after_pixels(ds)
                else:
                    planned.write(partial, source)
                    trailer = planned.trailer
                # The header as written must decode under its own character set and must not
                # hold the patient's names, IDs or birth date: else the file is not put in place.
                problem = file_problem(partial, ds, identity, profile, trailer)
                if problem:
                    raise _Rejected(problem)  # leaving the block by an exception removes the file
                if _identity_of_file(fd) != before:
                    raise _Rejected(SOURCE_CHANGED)
        except _Rejected as rejected:
            return "failed", str(rejected)
        except FileExistsError:
            return "failed", SOP_INSTANCE_CLASH
        except Exception as err:
            return "failed", f"cannot write: {type(err).__name__}"
        if digests is not None and planned is not None:
            digests["blake3"] = planned.digest
        return "written", None
    finally:
        os.close(fd)


#: The extended attribute that marks a written file with the source it was written from.
SOURCE_XATTR = "user.curate.source"


def source_stamp(key: bytes, size, mtime) -> bytes:
    """Which source file (by its size and modification time, keyed: the stamp tells
    nothing of them without the key) a file was written from: a later run that meets
    the file already written can tell whether its own source with that SOP Instance UID
    is the same file."""
    import hashlib
    import hmac

    return hmac.new(key, f"source stamp\0{size}:{mtime}".encode(), hashlib.sha256).digest()[:16]


def mark_source(target: str | os.PathLike[str], stamp: bytes) -> None:
    try:
        os.setxattr(target, SOURCE_XATTR, stamp)
    except OSError:  # a file system without extended attributes: resumed by name alone
        pass


def marked_source(target: str | os.PathLike[str]) -> bytes | None:
    """The stamp `target` was marked with (:func:`mark_source`), or None."""
    try:
        return os.getxattr(target, SOURCE_XATTR)
    except OSError:
        return None


#: Why a file that is neither Part 10 nor a data set pydicom could read is not written.
NOT_DICOM = "unreadable: not DICOM (no preamble, file meta group or data set at its start)"


def read_whole(source: str):
    """The whole file by pydicom; a raw data set (no preamble and no file meta group, as
    ACR-NEMA era exports and some archives hold them; the scanner indexes them) too, its
    transfer syntax named from the encoding it was read in, so that it is written as a
    Part 10 file. :class:`Malformed` for a file that starts like neither."""
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian

    try:
        ds = pydicom.dcmread(source)
    except InvalidDicomError:
        with open(source, "rb") as fp:
            start = fp.read(8)
        if not _starts_like_a_data_set(start):
            raise Malformed(NOT_DICOM.removeprefix("unreadable: ")) from None
        ds = pydicom.dcmread(source, force=True)
        if "TransferSyntaxUID" not in ds.file_meta:  # a meta group without its preamble names one
            implicit, little = ds.original_encoding
            if implicit and not little:
                raise Malformed("a data set in implicit VR big endian, which no transfer syntax names") from None
            ds.file_meta.TransferSyntaxUID = (
                ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little else ExplicitVRBigEndian
            )
    pixels = ds.get_item(PIXEL_DATA) if PIXEL_DATA in ds else None
    undefined = pixels is not None and getattr(pixels, "length", 0) == 0xFFFFFFFF
    if undefined and not UID(str(ds.file_meta.TransferSyntaxUID)).is_encapsulated:
        # Fragments whose compression no transfer syntax names: their text segments would
        # go unsearched, and no reader could decode them.
        raise Malformed("encapsulated Pixel Data under a native transfer syntax")
    return ds


def _starts_like_a_data_set(start: bytes) -> bool:
    """The scanner's test (``looks_like_dataset`` in curate-dicom's parser): an even group
    from 0002 to 0028 little endian with a VR or a plausible length after it, or group
    0008 big endian with a VR."""
    if len(start) < 8:
        return False
    group = int.from_bytes(start[:2], "little")
    if 0x0002 <= group <= 0x0028 and group % 2 == 0:
        return start[4:6].decode("latin-1") in VRS or int.from_bytes(start[4:8], "little") < 0x0100_0000
    return int.from_bytes(start[:2], "big") == 0x0008 and start[4:6].decode("latin-1") in VRS


class _Unreadable(Exception):
    pass


def _pinned(source: str) -> tuple[str, int]:
    """(a path that opens the very file `source` names now, its descriptor): a FIFO put
    there does not block, and anything but a regular file is :class:`_Unreadable`."""
    try:
        fd = os.open(source, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as err:
        raise _Unreadable(type(err).__name__) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise _Unreadable("not a regular file")
    pinned = f"/proc/self/fd/{fd}"
    # No /proc: the path, with the check of the descriptor's identity.
    return (pinned if os.path.exists(pinned) else source), fd


def _identity_of_file(fd: int) -> tuple[int, ...]:
    """What changes when the open file is written to (its size, its times)."""
    st = os.fstat(fd)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _pixel_text(source: str, ds, fragments: list[Fragment] | None, identity: Identity) -> str | None:
    """Why the file is held back for what its encapsulated pixel data says, or None: a
    codestream segment that holds the patient's names, IDs, birth date or original UIDs
    (text segments are searched for every identifying value, binary ones for those of
    three characters or more), in UTF-8, Latin-1, UTF-16 or the header's own character
    set. Codestreams that cannot be walked, and pixel data read whole, are searched
    whole. `fragments` is None for a data set read whole by pydicom."""
    search = _IdentitySearch(identity, _encodings(ds))
    if fragments is not None:
        try:
            segments = text_segments(source, fragments, str(ds.file_meta.TransferSyntaxUID))
        except Unparsable:
            pass
        else:
            for segment in segments:
                if search.holds(segment.data, 0, len(segment.data), short=segment.text):
                    return PIXEL_TEXT_LEAK
            return None
        with open(source, "rb") as fp, mmap.mmap(fp.fileno(), 0, access=mmap.ACCESS_READ) as data:
            # The fragments' values joined, as a reader of the stream sees them: a name
            # cut at a fragment's end is whole again, not split by an item header.
            joined = b"".join(data[f.offset : f.offset + f.length] for f in fragments)
        return PIXEL_TEXT_LEAK if search.holds(joined, 0, len(joined)) else None
    pixels = bytes(ds.PixelData)
    try:
        items = list(generate_fragments(pixels))
    except (ValueError, TypeError):  # not items at all: searched as they are
        return PIXEL_TEXT_LEAK if search.holds(pixels, 0, len(pixels)) else None
    try:
        segments = item_segments(items, str(ds.file_meta.TransferSyntaxUID))
    except Unparsable:  # searched whole
        joined = b"".join(items)
        return PIXEL_TEXT_LEAK if search.holds(joined, 0, len(joined)) else None
    return PIXEL_TEXT_LEAK if any(search.holds(s.data, 0, len(s.data), short=s.text) for s in segments) else None


#: Float and Double Float Pixel Data: 32 and 64 bits a value whatever Bits Allocated says.
_FLOAT_BITS = {0x7FE00008: 32, 0x7FE00009: 64}
_NATIVE_PIXEL_TAGS = (PIXEL_DATA, *_FLOAT_BITS)


def image_bytes(ds, pixel_tag: int = PIXEL_DATA) -> int | None:
    """How many bytes the frames of `ds`'s native pixel data (Pixel Data, or its float
    kinds) take, by its header (None where the header does not say)."""
    try:
        cells = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel") or 1)
        cells *= int(ds.get("NumberOfFrames") or 1)
        bits = _FLOAT_BITS.get(pixel_tag) or int(ds.BitsAllocated)
    except (AttributeError, TypeError, ValueError):
        return None
    return (cells * bits + 7) // 8 if cells > 0 and bits > 0 else None


def _excess_pixel_text(source: str, ds, split: SplitFile | None, identity: Identity) -> bool:
    """Whether native pixel data (Pixel Data, Float or Double Float Pixel Data) holds
    bytes past its image (and its pad byte) that name the patient: no reader shows them,
    and anything may hide there."""
    value = None
    if split is not None:
        if split.fragments:
            return False
        pixel_tag, start, end = split.pixel_tag, split.value_start, split.pixel_end
    else:
        pixel_tag = next((tag for tag in _NATIVE_PIXEL_TAGS if tag in ds), None)
        if pixel_tag is None or (pixel_tag == PIXEL_DATA and _encapsulated(ds)):
            return False
        value = ds[pixel_tag].value
        if not isinstance(value, (bytes, bytearray)):
            return False
        start, end = 0, len(value)
    expected = image_bytes(ds, pixel_tag)
    if expected is None or end - start <= expected + 1:
        return False
    search = _IdentitySearch(identity, _encodings(ds))
    if value is not None:
        return search.holds(value, start + expected, end)
    with open(source, "rb") as fp, mmap.mmap(fp.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return search.holds(data, start + expected, end)


def _strip_pixel_text(source: str, ds, split: SplitFile | None, identity: Identity) -> None:
    """Cut the text segments out of `ds`'s encapsulated pixel data (:mod:`curate.deid.strip`)
    and give `ds` the new value; :class:`CannotStrip` where that cannot be shown safe."""
    search = _IdentitySearch(identity, _encodings(ds))
    if split is not None:
        with open(source, "rb") as fp, mmap.mmap(fp.fileno(), 0, access=mmap.ACCESS_READ) as data:
            items = [bytes(data[f.offset : f.offset + f.length]) for f in split.fragments]
    else:
        try:
            items = list(generate_fragments(ds.PixelData))
        except (ValueError, TypeError) as err:
            raise CannotStrip(str(err)) from None
    value = strip_text(
        items,
        ds,
        lambda s: search.holds(s.data, 0, len(s.data), short=s.text),
        lambda data: search.holds(data, 0, len(data)),
    )
    for tag in EXTENDED_OFFSETS:
        if tag in ds:
            del ds[tag]
    ds.PixelData = value
    ds["PixelData"].VR = "OB"


#: Bytes of pixel data (a text segment, what lies past an image) up to which the search
#: also reads them as text every way the header check reads a header: a name split by an
#: invisible character or written with lookalike letters, a date in any spelling.
DECODED_SEARCH_BYTES = 65_537  # a codestream segment at its longest, its marker included


def _encodings(ds) -> dict[str, int]:
    """The encodings pixel bytes are searched in -> the fewest bytes a spelling in each is
    looked for with (:func:`curate.deid.literals.legacy_encodings`): UTF-8, Latin-1,
    UTF-16 both ways and the codecs of the header's character set; the legacy encodings."""
    from pydicom.charset import convert_encodings

    own = ["utf-8", "latin-1", "utf-16-le", "utf-16-be"]
    try:
        own += convert_encodings(ds.get("SpecificCharacterSet")) if ds.get("SpecificCharacterSet") else []
    except Exception:  # a character set pydicom does not know: the others still apply
        pass
    return legacy_encodings(list(dict.fromkeys(own)))


class _IdentitySearch:
    """The patient's values and original UIDs searched for in bytes: a literal search
    for every spelling in every encoding at once (:mod:`curate.deid.literals`), in any
    ASCII case (ZyXwBrook is found as zyxwbrook, in any encoding), then the header check's
    own pattern, with its word boundaries, around each find in the bytes as they are.
    The spellings are encoded once a file, for all its segments."""

    def __init__(self, identity: Identity, encodings: dict[str, int]):
        self.identity, self.encodings = identity, encodings
        self._searches: dict[bool, LiteralSearch] = {}
        self._uids = [uid.encode("ascii", errors="ignore") for uid in identity.uids]

    def search(self, short: bool) -> LiteralSearch:
        """The spellings of every value with `short` (and each date's year, around which
        the pattern looks for the date), else of the long pattern's values (three
        characters or more, two signs of a script without spaces)."""
        if short not in self._searches:
            long = self.identity.long_pattern()
            kept = long.values if long is not None else frozenset()
            words = [w for w in self.identity.words if short or w in kept]
            if short:  # a date is written many ways, each with its year: the pattern reads it
                words += sorted({date[:4] for date in self.identity.dates})
            found: dict[bytes, str] = {}
            for word in words:
                for spelling, encoding in spellings_in(word, self.encodings).items():
                    found.setdefault(spelling, encoding)
            self._searches[short] = LiteralSearch(found)
        return self._searches[short]

    def holds(self, data, start: int, end: int, short: bool = False) -> bool:
        """Whether bytes [start, end) of `data` hold one of the values (see
        :meth:`search`), in any case, or an original UID."""
        pattern = self.identity.pattern() if short else self.identity.long_pattern()
        part = bytes(data[start:end])
        if pattern is not None and self.search(short).holds(part, lambda text: bool(pattern.search(text))):
            return True
        if any(data.find(uid, start, end) != -1 for uid in self._uids):
            return True
        if end - start > DECODED_SEARCH_BYTES:
            # Too long to read as text every way: a date is looked for in its spellings.
            return not short and bool(self.identity.dates) and holds_a_date_literally(part, self.identity.dates)
        return self._reads_as_text(part, short)

    def _reads_as_text(self, data: bytes, short: bool) -> bool:
        """Whether `data`, read as text in each encoding (UTF-16 at both alignments),
        with invisible characters dropped and lookalike letters read as Latin
        (:func:`curate.deid.identifiers.latin_readings`), names the patient or holds one
        of the header's dates: what a literal search of the spellings misses."""
        finder = self.identity.pattern() if short else self.identity.long_pattern()
        dates = Finder([], self.identity.dates) if self.identity.dates and not short else None
        for text in decodings(data, self.encodings):
            for read in latin_readings(without_invisible(text)):
                if (finder is not None and finder.search(read)) or (dates is not None and dates.search(read)):
                    return True
        return False


def _encapsulated(ds) -> bool:
    syntax = ds.file_meta.get("TransferSyntaxUID") if getattr(ds, "file_meta", None) else None
    return bool(syntax) and UID(str(syntax)).is_encapsulated


def _canonical_unused_bits(ds) -> bytes | None:
    """For a data set read whole: its native Pixel Data, set to carry nothing in its
    unused bits (:mod:`curate.deid.unused_bits`) where they carried something (and
    returned), else None."""
    # Whatever VR the file gives it (OL, OF, UN ...): its bytes are cells all the same.
    if "PixelData" not in ds or _encapsulated(ds) or not isinstance(ds.PixelData, (bytes, bytearray)):
        return None
    if layout(ds) is None:
        return None
    little = UID(str(ds.file_meta.TransferSyntaxUID)).is_little_endian
    value = canonical_pixels(ds.PixelData, ds, little_endian=little)
    if value is not None:
        ds.PixelData = value
    return value


def _around_pixels(ds, pixel_tag: int | None):
    """(the elements of `ds` before `pixel_tag`, those after it) as two data sets, the
    pixel element in neither; everything is before where there is no pixel element."""
    from pydicom.dataset import Dataset

    head, tail = Dataset(), Dataset()
    for element in ds:
        if pixel_tag is None or element.tag < pixel_tag:
            head.add(element)
        elif element.tag > pixel_tag:
            tail.add(element)
    return head, tail


def _encoded(elements, ds) -> bytes:
    """`elements` encoded as `ds`'s transfer syntax writes them (b"" for none)."""
    if not len(elements):
        return b""
    return encode_elements(elements, ds.file_meta.get("TransferSyntaxUID") == ImplicitVRLittleEndian)


def _after_pixels(ds) -> bytes:
    """The elements of `ds` after its pixel element, encoded: the header check reads a
    written file up to its pixels, and these are searched with it."""
    pixel = next((tag for tag in PIXEL_TAGS if tag in ds), None)
    return _encoded(_around_pixels(ds, pixel)[1], ds) if pixel is not None else b""


@dataclass
class _SplitWrite:
    """A split file as it is to be written: the de-identified header (up to the pixel
    element) and trailer (the elements after it) encoded, the pixel element's bytes read
    once, natively, for the file's digest (where one is wanted) and the check of their
    unused bits, and the new pixel value where those bits carried something (None: the
    source's bytes are copied by the kernel)."""

    split: SplitFile
    header: bytes
    trailer: bytes
    value: bytes | None
    digest: str | None

    @classmethod
    def of(cls, source: str, ds, split: SplitFile, digest: bool = True) -> _SplitWrite:
        head, tail = _around_pixels(ds, split.pixel_tag or None)
        head.file_meta, head.preamble = ds.file_meta, ds.preamble
        trailer = _encoded(tail, ds)
        buffer = io.BytesIO()
        head.save_as(buffer, enforce_file_format=True)
        header = buffer.getvalue()
        hasher, value = (Blake3() if digest else None), None
        if hasher is not None:
            hasher.update(header)
        if split.pixel_tag:
            found = layout(ds) if not split.fragments and split.pixel_tag == PIXEL_DATA else None
            cell = found[0] // 8 if found is not None else 0
            length = split.pixel_end - split.value_start
            if hasher is not None:
                hasher.update_from_file(source, split.pixel_start, split.value_start - split.pixel_start)
                ored, tail_or = hasher.update_from_file(source, split.value_start, length, cell)
            elif found is not None:
                ored, tail_or = file_cells_or(source, split.value_start, length, cell)
            if found is not None and not canonical_by_or(found, ored, tail_or):
                with open(source, "rb") as fp, mmap.mmap(fp.fileno(), 0, access=mmap.ACCESS_READ) as data:
                    with memoryview(data)[split.value_start : split.pixel_end] as view:
                        value = canonical_pixels(view, ds)
                if value is not None and hasher is not None:  # the digest is of the bytes written
                    hasher = Blake3()
                    hasher.update(header)
                    hasher.update_from_file(source, split.pixel_start, split.value_start - split.pixel_start)
                    hasher.update(value)
        if hasher is None:
            return cls(split, header, trailer, value, None)
        hasher.update(trailer)
        return cls(split, header, trailer, value, hasher.hexdigest())

    def write(self, partial: Path, source: str) -> None:
        """The header, the source's pixel element (or its header and the new value), the trailer."""
        split = self.split
        with open(source, "rb") as src, open(partial, "wb") as out:
            out.write(self.header)
            if self.value is None:
                copy_range(src, out, split.pixel_start, split.pixel_end - split.pixel_start)
            else:
                copy_range(src, out, split.pixel_start, split.value_start - split.pixel_start)
                out.write(self.value)
            out.write(self.trailer)

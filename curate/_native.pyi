"""Type stubs for the compiled module `curate._native` (rust/curate-native)."""

from collections.abc import Sequence
from os import PathLike

__version__: str
#: Rows per record batch unless a caller asks otherwise.
DEFAULT_BATCH_SIZE: int
#: The file columns every index batch starts with, in schema order (the attribute
#: columns follow): path, file_size, mtime, status, error, transfer_syntax,
#: pixel_data_offset, pixel_data_length, invalid_attributes.
FILE_COLUMNS: tuple[str, ...]
#: Every value of the `status` column: ok, error, not_dicom, dicomdir (set by the
#: scanner), vanished (set by the index's merge: a file gone since the last scan) and
#: remote (a row pulled from a PACS, not a local file).
STATUSES: tuple[str, ...]
#: Every kind an `error` value (``kind: message``) can start with: not_dicom, truncated,
#: corrupt, unreadable, vanished, symlink_loop, not_a_file, is_directory.
ERROR_KINDS: tuple[str, ...]

class CurateError(Exception):
    """Base of every error curate raises."""

class SelectionError(CurateError, ValueError):
    """A column spec the scanner refuses."""

class ScanError(CurateError, RuntimeError):
    """A scan that cannot start or run."""

ColumnTuple = tuple[str, Sequence[tuple[int, int | None]], str, bool]

class Scan:
    """A prepared scan: walking and parsing start when the stream is taken."""

    @property
    def total(self) -> int:
        """Rows found so far (files, plus paths that could not be walked); final once `walked`."""

    @property
    def done(self) -> int:
        """Rows parsed so far."""

    @property
    def walked(self) -> bool:
        """Whether the walk is over, so that `total` is the final row count."""

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        """Start the scan; an Arrow C stream of record batches (PyCapsule protocol).

        Raises `ScanError` when the scan was already started or cannot start."""

def open_scan(
    paths: Sequence[str | PathLike[str]],
    columns: Sequence[ColumnTuple],
    threads: int = 0,
    batch_size: int = ...,
    parse: bool = True,
) -> Scan:
    """Prepare a scan of `columns` (name, path, VR, multi-valued) over `paths`; with
    ``parse=False`` a listing: each file's size and modification time, no file read.

    Raises `SelectionError` for a column spec the scanner refuses, `ScanError` when the
    scan's threads cannot be made."""

def dictionary_vr(tag: int) -> str:
    """The VR the standard dictionary gives `tag`; "UN" for private or unknown tags."""

def file_blake3(path: str | PathLike[str]) -> str:
    """The BLAKE3 digest (hex) of a file's bytes; raises OSError as open() would."""

def file_cells_or(
    path: str | PathLike[str], offset: int, length: int, cell_bytes: int, little_endian: bool = True
) -> tuple[int, int]:
    """(the OR of every whole cell of `cell_bytes` bytes, the OR of the bytes after the
    last whole cell) of `length` bytes of the file from `offset`, without hashing them."""

class Blake3:
    """An incremental BLAKE3 digest of bytes handed in, and of ranges of files."""

    def __init__(self) -> None: ...
    def update(self, data: bytes) -> None:
        """Add `data`."""

    def update_from_file(
        self, path: str | PathLike[str], offset: int, length: int, cell_bytes: int = 0, little_endian: bool = True
    ) -> tuple[int, int]:
        """Add `length` bytes of the file from `offset`; with `cell_bytes`, also (the OR of
        every whole cell, the OR of the bytes after the last whole cell)."""

    def hexdigest(self) -> str:
        """The digest so far, in hex."""

class Literals:
    """A set of byte literals, built once and searched for in many buffers at once
    (Aho-Corasick): one pass over the bytes, however many literals."""

    def __init__(self, needles: Sequence[bytes], ascii_case_insensitive: bool = False) -> None:
        """`needles` (none empty); with `ascii_case_insensitive`, an ASCII letter matches
        in either case. Raises ValueError for an empty literal."""

    def find_all(self, data: bytes, limit: int = ...) -> list[tuple[int, int]]:
        """Every place a literal occurs in `data`, overlapping ones included, as (start,
        the literal's index), in the order they end; at most `limit`."""

    def occurs_in(self, data: bytes) -> bool:
        """Whether one of the literals occurs in `data`."""

    def __len__(self) -> int: ...

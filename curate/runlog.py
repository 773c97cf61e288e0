"""The run log of a store: one append-only line per run that wrote to it, each chained
to the one before by its hash, so that an edit, a removal or an insertion shows.

Every store curate writes (an index, a de-identified tree, a folder of digitised films,
the dataset versions) keeps ``.curate-audit/runs.jsonl`` (0600, in a 0700 folder). An
entry holds, and may hold, only::

    seq, stage, time (UTC), curate (version), settings (a sha256 of the run's settings),
    input, output, state (digests), counts (numbers), journals (names), prev, hash

never a path, a header value or an identifier: the digests are hex, and the counts are
numbers under names the code chose. ``hash`` is the sha256 of the entry's canonical JSON
without it; ``prev`` is the previous entry's hash (64 zeros for the first).

``state`` says what the store holds after the run, so that `curate audit verify
contents=true` can tell whether it was changed outside the logged runs: an index's
content digest, or for a tree of files a :class:`FileSet` over every file in it, with
the name of the digest its files were read by (``file_hash``: BLAKE3, several times
sha256's speed on the megabytes of an image; a tree whose log began with sha256, which
states without the name used, keeps it, so that its states still add up).

Only the process that drives a run appends (the Dask client, never a worker), under an
exclusive lock, so two runs never fork the chain. Files a run writes are journalled as
they land (:class:`Journal`); a killed run's journal is adopted by the next run's entry,
so the state stays true across kills.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import re
import stat
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from curate.errors import AuditError

#: The folder, in a store, of its run log and audits.
AUDIT_DIR = ".curate-audit"
LOG_FILE = "runs.jsonl"
GENESIS = "0" * 64
_DIGEST = re.compile(r"^[0-9a-f]{16,128}$")
_JOURNAL = re.compile(r"^journal-\d+-\d+\.tsv$")
_MASK = (1 << 256) - 1
#: The digests a tree store's files are read by (see the module text), the first for new stores.
FILE_HASHES = ("blake3", "sha256")
#: What a logged tree state without a ``file_hash`` was read by.
LEGACY_FILE_HASH = "sha256"


def canonical(value) -> bytes:
    """The one JSON encoding an entry is hashed in."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def settings_digest(settings: Mapping) -> str:
    """The sha256 of a run's settings: the log says whether two runs were alike without
    holding a value (settings hold paths)."""
    return hashlib.sha256(canonical(settings)).hexdigest()


@dataclass
class FileSet:
    """A digest of a set of files, each by its path in the store and the digest of its
    bytes (:func:`file_digest`), that does not depend on their order: the sum, modulo
    2**256, of a sha256 of each (path, content) pair. Two sets add up to the digest of
    their union, so a run adds what it wrote to the store's state without reading the
    rest again."""

    count: int = 0
    total: int = 0

    def add(self, relative: str, content: str) -> None:
        pair = hashlib.sha256(os.fsencode(relative) + b"\0" + bytes.fromhex(content)).digest()
        self.total = (self.total + int.from_bytes(pair, "big")) & _MASK
        self.count += 1

    def __add__(self, other: FileSet) -> FileSet:
        return FileSet(self.count + other.count, (self.total + other.total) & _MASK)

    @property
    def digest(self) -> str:
        return f"{self.total:064x}"

    def as_state(self, file_hash: str) -> dict:
        return {"files": self.count, "digest": self.digest, "file_hash": file_hash}

    @classmethod
    def from_state(cls, state: Mapping) -> FileSet:
        return cls(int(state["files"]), int(state["digest"], 16))


def state_file_hash(state: Mapping | None) -> str:
    """The digest a logged tree state's files were read by (a new store's, without one)."""
    if state is None:
        return FILE_HASHES[0]
    return str(state.get("file_hash", LEGACY_FILE_HASH))


def file_digest(path: str | os.PathLike[str], file_hash: str) -> str:
    """The hex digest of a file's bytes by `file_hash` (one of :data:`FILE_HASHES`)."""
    if file_hash == "blake3":
        from curate._native import file_blake3

        return file_blake3(path)
    if file_hash == "sha256":
        from curate.files import sha256_of

        return sha256_of(path)
    raise AuditError(f"a run log reads files by {' or '.join(FILE_HASHES)}, not {file_hash!r}")


#: The top-level bookkeeping file (a tree store's settings, a JSON object).
_SETTINGS_FILE = ".curate-deid.json"
#: The names curate keeps its own bookkeeping under, at the top of a tree store (not its content).
OWN_NAMES = (AUDIT_DIR, _SETTINGS_FILE, ".curate-digitize")
_BEING_WRITTEN = re.compile(r"^\..+\.(\d+)\.partial$")
#: What curate's bookkeeping folders hold; anything else in them counts as the store's.
_BOOKKEEPING = {
    AUDIT_DIR: re.compile(r"^(runs\.jsonl|runs\.lock|journal-\d+-\d+\.tsv|(redactions|deid)-\d{8}T\d{6}Z\.csv)$"),
    ".curate-digitize": re.compile(r"^errors\.csv$"),
}
#: A path in a tree store as curate names it: study / series / instance UIDs.
_UID_PATH = r"[0-9.]{1,64}/[0-9.]{1,64}/[0-9.]{1,64}\.dcm"
_LINE_SHAPES = {
    "redactions": re.compile(
        rf"(file,frames,boxes,fixed_boxes,area_px,regions|{_UID_PATH}(,\d+){{4}},\"?\[[\[\], 0-9]*\]\"?)\r?\n"
    ),
    "errors": re.compile(r"(row,file,reason|\d+,.*)\r?\n"),
}
#: An attribute as the de-identification audit names it (a keyword is checked against the dictionary).
_AUDIT_ATTRIBUTE = re.compile(
    r"[A-Za-z][A-Za-z0-9]*|\([0-9A-F]{4},[0-9A-F]{4}\)|private \([0-9A-F]{4},xx[0-9A-F]{2}\)|private creator"
)


def _shaped_as_written(name: str, path: Path) -> bool:
    """Whether a file named like curate's bookkeeping holds what curate writes under that
    name: else it is the store's, and verify counts it (identifying data can be planted
    under any name). A FIFO or device file holds nothing at rest and is passed over; a
    link counts."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return not path.is_symlink()
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return True
        if name == "runs.jsonl":
            return True  # verify reads it entry by entry, and names every line that is not one
        if name == "runs.lock":
            return not f.read(1)
        if name == _SETTINGS_FILE:
            return _json_object(f.read((1 << 16) + 1))
        if name.startswith("deid-"):
            return _audit_csv(f)
        if name.startswith("journal-"):
            return _journal_lines(f, path.parent.parent)
        return _lines_shaped(f, _LINE_SHAPES["redactions" if name.startswith("redactions-") else "errors"])


def _json_object(data: bytes) -> bool:
    if len(data) > 1 << 16:
        return False
    try:
        return isinstance(json.loads(data), dict)
    except ValueError:
        return False


def _lines_shaped(f, shape: re.Pattern) -> bool:
    return all(shape.fullmatch(line.decode("ascii", errors="replace")) for line in f)


def _journal_lines(f, store: Path) -> bool:
    """A journal lists files of the store, a digest each; its last line may be cut short
    by a kill. (A file listed that is not in the store makes the journal the store's.)"""
    for line in f:
        relative, tab, digest = line.decode("utf-8", errors="surrogateescape").rstrip("\n").partition("\t")
        if not line.endswith(b"\n"):
            return bool(re.fullmatch(r"[0-9a-f]{0,64}", digest)) and _in_store(store, relative, partly=not tab)
        if not re.fullmatch(r"[0-9a-f]{64}", digest) or not _in_store(store, relative):
            return False
    return True


def _in_store(store: Path, relative: str, partly: bool = False) -> bool:
    """Whether `relative` names a file in `store` (with `partly`, or begins the name of one
    in its folder: a line cut short)."""
    parts = relative.split("/")
    if not relative or relative.startswith("/") or ".." in parts or "\0" in relative:
        return False
    target = store.joinpath(*parts)
    if os.path.isfile(target):
        return True
    return partly and os.path.isdir(target.parent) and any(n.startswith(parts[-1]) for n in os.listdir(target.parent))


def _audit_csv(f) -> bool:
    """The de-identification audit: a header of outcome words, then an attribute and counts a row."""
    import csv
    import io

    from pydicom.datadict import tag_for_keyword

    rows = csv.reader(io.TextIOWrapper(f, encoding="ascii", errors="replace", newline=""))
    try:
        header = next(rows, None)
        if not header or header[0] != "attribute" or not all(re.fullmatch(r"[a-z ,]{1,40}", h) for h in header[1:]):
            return False
        for row in rows:
            attribute = row[0] if row else ""
            if (
                len(row) != len(header)
                or not all(c.isdigit() for c in row[1:])
                or not _AUDIT_ATTRIBUTE.fullmatch(attribute)
            ):
                return False
            if attribute[0].isalpha() and not attribute.startswith("private") and tag_for_keyword(attribute) is None:
                return False
    except csv.Error:
        return False
    return True


def _own(name: str, top: bool, writing: bool) -> bool:
    """Curate's bookkeeping (at the top only), or, while a run writes to the store, a
    file a live process is writing aside. With no run live, a half file is litter or
    planted (process 1 is always alive), and counts."""
    from curate.files import process_alive

    if top and name in OWN_NAMES:
        return True
    being_written = _BEING_WRITTEN.match(name)
    return writing and being_written is not None and process_alive(int(being_written.group(1)))


def _walk(folder: Path, skip_folder, skip_file) -> Iterator[Path]:
    """Every file and link (to a file or a folder, not followed) under `folder`, but the
    folders ``skip_folder(name, top)`` and the files ``skip_file(name, top)`` name
    (`top`: directly in `folder`)."""
    for current, dirs, files in os.walk(folder):
        top = Path(current) == folder
        links = [d for d in dirs if os.path.islink(os.path.join(current, d))]
        dirs[:] = sorted(d for d in dirs if d not in links and not skip_folder(d, top))
        for name in sorted([*files, *links]):
            if not skip_file(name, top):
                yield Path(current, name)


def tree_files(root: Path) -> Iterator[Path]:
    """Every file a tree store holds, hidden ones too, and every link (to a file or a
    folder, not followed); curate's own bookkeeping at its top (but what curate does not
    write there) and files that live processes are writing aside (a killed writer's
    half file counts: it is there)."""
    root = Path(root)
    writing = _held_journals(root / AUDIT_DIR) > 0
    for name, expected in _BOOKKEEPING.items():
        folder = root / name
        if folder.is_dir() and not folder.is_symlink():

            def ours(name: str, top: bool, expected=expected, folder=folder) -> bool:
                if top and expected.match(name):
                    return _shaped_as_written(name, folder / name)
                return _own(name, False, writing)

            yield from _walk(folder, lambda name, top: False, ours)

    def ours_at_root(name: str, top: bool) -> bool:
        if top and name == _SETTINGS_FILE and not (root / name).is_dir():
            return _shaped_as_written(name, root / name)
        return _own(name, top, writing)

    yield from _walk(root, lambda name, top: _own(name, top, writing), ours_at_root)


def content_digest(path: Path, file_hash: str) -> str:
    """A file's digest (:func:`file_digest`); a link's is the sha256 of where it points
    (a store curate wrote holds none, so one shows)."""
    if path.is_symlink():
        return hashlib.sha256(b"link\0" + os.fsencode(os.readlink(path))).hexdigest()
    return file_digest(path, file_hash)


def tree_state(root: Path, file_hash: str, threads: int | None = None, progress=None) -> FileSet:
    """The :class:`FileSet` of every file under `root` (:func:`tree_files`), read by
    `file_hash` on `threads` threads (both digests let go of the interpreter)."""
    from concurrent.futures import ThreadPoolExecutor

    found = FileSet()
    with ThreadPoolExecutor(max_workers=threads or os.cpu_count() or 1) as pool:
        pending: list = []
        for path in tree_files(root):
            pending.append((path, pool.submit(content_digest, path, file_hash)))
            if len(pending) >= 256:  # bounded: the tree is streamed, not listed
                _drain(root, pending, found, progress)
        _drain(root, pending, found, progress)
    return found


def _drain(root: Path, pending: list, found: FileSet, progress) -> None:
    for path, future in pending:
        found.add(path.relative_to(root).as_posix(), future.result())
        if progress is not None:
            progress.update(1)
    pending.clear()


class RunLog:
    """The run log of the store at `root` (see the module text)."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)
        self.folder = self.root / AUDIT_DIR
        self.path = self.folder / LOG_FILE

    def exists(self) -> bool:
        return self.path.exists()

    def entries(self) -> Iterator[tuple[int, dict | None, str]]:
        """(line number, the entry or None where the line is not a well-formed entry, the line)."""
        if not self.path.exists():
            return
        with open(self.path, "rb") as f:
            for number, raw in enumerate(f, 1):
                line = raw.decode("utf-8", errors="replace").rstrip("\n")
                try:
                    entry = json.loads(line)
                except ValueError:
                    entry = None
                yield number, entry if well_formed(entry) else None, line

    def last(self) -> dict | None:
        """The last whole entry, or None."""
        found = None
        for _, entry, _ in self.entries():
            if entry is not None:
                found = entry
        return found

    def last_state(self, kind: str) -> dict | None:
        """The state the last entry that recorded one of `kind` ("files", "content") gave."""
        found = None
        for _, entry, _ in self.entries():
            state = (entry or {}).get("state") or {}
            if kind in state:
                found = state
        return found

    def folded_journals(self) -> set[str]:
        return {name for _, entry, _ in self.entries() for name in (entry or {}).get("journals", [])}

    def _prepare(self) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self._prepare()
        fd = os.open(self.folder / "runs.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def append(
        self,
        stage: str,
        settings: Mapping,
        counts: Mapping[str, float] | None = None,
        inputs: Mapping[str, str] | None = None,
        outputs: Mapping[str, str] | None = None,
        state: Mapping | None = None,
        journals: Iterable[str] = (),
    ) -> dict:
        """Append one run's entry, chained to the last, and return it. Raises
        :class:`AuditError` for a value the log may not hold, or a log it cannot write."""
        from curate import __version__

        entry = {
            "stage": _name(stage),
            "time": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "curate": __version__,
            "settings": settings_digest(settings),
            "input": _digests(inputs or {}),
            "output": _digests(outputs or {}),
            "state": _state(state) if state else None,
            "counts": _counts(counts or {}),
            "journals": sorted(_journal_name(j) for j in journals),
        }
        try:
            with self._locked():
                last = self.last()
                entry["seq"] = int(last["seq"]) + 1 if last else 1
                entry["prev"] = str(last["hash"]) if last else GENESIS
                entry["hash"] = entry_hash(entry)
                line = canonical(entry) + b"\n"
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.fchmod(fd, 0o600)
                    if os.fstat(fd).st_size and not _ends_with_newline(self.path):
                        line = b"\n" + line  # a torn last line stays as it is, for verify to name
                    os.write(fd, line)
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except OSError as err:
            raise AuditError(f"cannot append to the run log of the store: {err.strerror or err}") from None
        return entry

    def journal(self) -> Journal:
        """A journal of the files a run writes to this store (see :class:`Journal`)."""
        self._prepare()
        return Journal(self)


def well_formed(entry) -> bool:
    """Whether a parsed line has an entry's fields, each of its kind (a line edited into
    something else is not read as an entry: verify names it)."""
    if not isinstance(entry, dict):
        return False
    kinds = {"seq": int, "stage": str, "hash": str, "prev": str, "counts": dict, "input": dict, "output": dict}
    if any(not isinstance(entry.get(k), t) or isinstance(entry.get(k), bool) for k, t in kinds.items()):
        return False
    journals = entry.get("journals", [])
    if not isinstance(journals, list) or not all(isinstance(j, str) for j in journals):
        return False
    state = entry.get("state")
    if state is None:
        return True
    if not isinstance(state, dict):
        return False
    if "files" in state and (
        not isinstance(state["files"], int) or not re.fullmatch(r"[0-9a-f]{64}", str(state.get("digest")))
    ):
        return False
    if "file_hash" in state and state["file_hash"] not in FILE_HASHES:
        return False
    return "content" not in state or isinstance(state["content"], str)


def entry_hash(entry: Mapping) -> str:
    return hashlib.sha256(canonical({k: v for k, v in entry.items() if k != "hash"})).hexdigest()


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def _name(value: str) -> str:
    if not re.fullmatch(r"[a-z_]{1,32}", value):
        raise AuditError(f"a run log stage name must be a short lower-case word, not {value!r}")
    return value


def _digests(values: Mapping[str, str]) -> dict[str, str]:
    out = {}
    for name, value in values.items():
        if not _DIGEST.match(str(value)):
            raise AuditError(f"the run log holds hex digests only; {_name(name)!r} is not one")
        out[_name(name)] = str(value)
    return out


def _state(state: Mapping) -> dict:
    out: dict = {}
    for name, value in state.items():
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise AuditError(f"a run log state is digests and counts; {name!r} is neither")
        if name == "file_hash" and value in FILE_HASHES:
            pass
        elif isinstance(value, str) and not _DIGEST.match(value):
            raise AuditError(f"the run log holds hex digests only; state {name!r} is not one")
        out[_name(name)] = value
    return out


def _counts(counts: Mapping[str, float]) -> dict[str, float]:
    out = {}
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise AuditError(f"run log counts are numbers; {name!r} is not")
        # Names come from the code (a reason, a kind); anything else in them is dropped.
        plain = re.sub(r"[^A-Za-z0-9_.()\-]", "_", str(name))[:100]
        out[plain] = round(value, 3) if isinstance(value, float) else value
    return out


def _journal_name(name: str) -> str:
    if not _JOURNAL.match(name):
        raise AuditError(f"not a journal's name: {name!r}")
    return name


class Journal:
    """The files one run wrote to a store, a line each (path in the store, digest), as
    they land, flushed batch by batch: ``journal-<pid>-<time>.tsv`` beside the log. The
    run holds a lock on it while it lives; a journal nobody holds is a killed run's,
    and the next entry adopts what it lists (:meth:`fold`)."""

    def __init__(self, log: RunLog):
        self.log = log
        self.name = f"journal-{os.getpid()}-{time.time_ns()}.tsv"
        self.path = log.folder / self.name
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._file = os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape")
        self.written = FileSet()

    def add(self, relative: str, content: str) -> None:
        if "\t" in relative or "\n" in relative:
            raise AuditError("a journalled path holds a tab or a line break")
        self._file.write(f"{relative}\t{content}\n")
        self.written.add(relative, content)

    def flush(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())

    def fold(self) -> tuple[FileSet, list[str]]:
        """What killed runs' journals list, not yet in an entry (:func:`unfolded_journals`)."""
        return unfolded_journals(self.log, skip=self.name)

    def close(self, journals: Iterable[str]) -> None:
        """Once the entry is in the log: remove this journal and the adopted ones."""
        self._file.close()
        for name in {self.name, *journals}:
            (self.log.folder / name).unlink(missing_ok=True)

    def abandon(self) -> None:
        """A run that fails before its entry: the journal stays, for the next to adopt."""
        with contextlib.suppress(OSError):
            self.flush()
        self._file.close()


def unfolded_journals(log: RunLog, skip: str | None = None) -> tuple[FileSet, list[str]]:
    """What the journals of killed runs list, that no entry has adopted yet: (their
    files, their names). A journal a live run holds is left alone, and so are lines cut
    short by a kill (their file was never counted as written), and journals that are not
    this user's and owner-only (curate writes them so)."""
    adopted, names = FileSet(), []
    folded = log.folded_journals()
    for path in sorted(log.folder.glob("journal-*.tsv")):
        if path.name == skip or path.name in folded or not _JOURNAL.match(path.name):
            continue
        fd = _open_journal(path)
        if fd is None:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # a live run's
            os.close(fd)
            continue
        with os.fdopen(fd, "r", encoding="utf-8", errors="surrogateescape") as f:
            for line in f:
                relative, _, digest = line.rstrip("\n").partition("\t")
                if line.endswith("\n") and re.fullmatch(r"[0-9a-f]{64}", digest):
                    adopted.add(relative, digest)
        names.append(path.name)
    return adopted, names


def live_journals(log: RunLog) -> int:
    """How many runs are writing to the store now (they hold their journals)."""
    return _held_journals(log.folder)


def _open_journal(path: Path) -> int | None:
    """A descriptor of the journal at `path` if curate wrote it: a regular, owner-only
    file of this user, not a link (a FIFO named so would block a reader); else None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        os.close(fd)
        return None
    return fd


def _held_journals(folder: Path) -> int:
    """How many of `folder`'s journals (:func:`_open_journal`) a live run holds."""
    live = 0
    for path in folder.glob("journal-*.tsv") if folder.exists() else []:
        fd = _open_journal(path)
        if fd is None:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            live += 1
        finally:
            os.close(fd)
    return live


@dataclass
class RunOfFiles:
    """The bookkeeping of a run that writes files into a tree store: its journal, the
    store's state before it, and the entry at the end (:meth:`finish`)."""

    store: Path
    stage: str
    log: RunLog = field(init=False)
    journal: Journal = field(init=False)
    was_empty: bool = True

    def __post_init__(self):
        self.store = Path(self.store)
        self.log = RunLog(self.store)
        self.journal = self.log.journal()
        #: What the files this run writes are digested by (:func:`file_digest`): the store's.
        self.file_hash = state_file_hash(self.log.last_state("files"))

    def wrote(self, target: str | os.PathLike[str], content: str) -> None:
        """A file the run wrote, by its digest (by :attr:`file_hash`)."""
        self.journal.add(Path(target).relative_to(self.store).as_posix(), content)

    def finish(self, settings: Mapping, counts: Mapping[str, float], inputs: Mapping[str, str] | None = None) -> dict:
        """Append the run's entry: its output is what it wrote; the store's state is the
        last state plus what this run and killed runs wrote, or, for a store that held
        files before its log began, a new reading of the whole tree."""
        self.journal.flush()
        adopted, names = self.journal.fold()
        before = self.log.last_state("files")  # now: a run that ended meanwhile is in it
        if before is not None:
            state = FileSet.from_state(before) + adopted + self.journal.written
        elif self.was_empty:
            state = adopted + self.journal.written
        else:
            state = tree_state(self.store, self.file_hash)
        counts = {**counts, "adopted_files": adopted.count}
        entry = self.log.append(
            self.stage,
            settings,
            counts,
            inputs,
            {"files": self.journal.written.digest},
            state.as_state(self.file_hash),
            names,
        )
        self.journal.close(names)
        return entry

    def abandon(self) -> None:
        self.journal.abandon()

"""The film import: a manifest's rows to DICOM files, on all cores, resumable.

Each row's image is read, hashed and given its UIDs; a file already written under those
UIDs (a rerun, or a killed run resumed) is left as it is. Every other film is written
owner-only to ``<output>/<StudyUID>/<SeriesUID>/<SOPInstanceUID>.dcm`` (UIDs only in
names: a manifest's file names often hold patients' names), through a temporary name.
A row that cannot be imported is counted by reason and listed, with its line and file,
in ``<output>/.curate-digitize/errors.csv`` (owner-only, as the films are); the
summary and MLflow get the counts only.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path

from curate.digitize.film import Digitizer, encode, film_dataset, film_uids
from curate.digitize.image import image_digest, read_film
from curate.digitize.manifest import FilmRow, FilmRowError, read_manifest
from curate.errors import ConfigError, SourceNotFoundError
from curate.files import PARTIAL_SUFFIX, StreamedCsv, atomic_path, process_alive, sha256_of, write_atomic
from curate.progress import progress_bar
from curate.runlog import FILE_HASHES, RunOfFiles, file_digest, tree_files
from curate.tracking import StageResult

ERRORS_DIR = ".curate-digitize"
OWNER_ONLY_DIR, OWNER_ONLY_FILE = 0o700, 0o600


@dataclass
class DigitizeResult(StageResult):
    rows: int = 0
    written: int = 0
    already_done: int = 0
    failed: Counter = field(default_factory=Counter)
    bytes: int = 0
    seconds: float = 0.0
    lossy: int = 0
    errors_file: Path | None = None

    def params(self) -> dict[str, object]:
        return {}

    def metrics(self) -> dict[str, float]:
        values = {
            "rows": self.rows,
            "written": self.written,
            "already_done": self.already_done,
            "failed": sum(self.failed.values()),
            "lossy_sources": self.lossy,
            "bytes": self.bytes,
            "seconds": self.seconds,
            "films_per_s": self.written / self.seconds if self.seconds else 0.0,
        }
        return values

    def format(self) -> str:
        rows = [("manifest rows", self.rows), ("films written", self.written)]
        if self.already_done:
            rows.append(("already written (resumed)", self.already_done))
        if self.lossy:
            rows.append(("  from lossy JPEG scans", self.lossy))
        rows.append(("failed", sum(self.failed.values())))
        rows += [(f"  {reason}", n) for reason, n in self.failed.most_common(12)]
        if len(self.failed) > 12:
            rows.append(
                (f"  ({len(self.failed) - 12} other reasons)", sum(n for _, n in self.failed.most_common()[12:]))
            )
        width = max(len(k) for k, _ in rows)
        lines = [f"{k.ljust(width)}  {v:>9,}" for k, v in rows]
        rate = self.written / self.seconds if self.seconds else 0.0
        lines.append(f"{'time'.ljust(width)}  {self.seconds:>8.2f}s  ({rate:,.1f} films/s, {self.bytes / 1e6:,.0f} MB)")
        if self.errors_file is not None:
            lines.append(f"failed rows, with their line and file: {ERRORS_DIR}/{self.errors_file.name} (in the output)")
        return "\n".join(lines)


def digitize(
    source: str | os.PathLike[str],
    manifest: str | os.PathLike[str],
    output: str | os.PathLike[str],
    digitizer: Digitizer | None = None,
    uid_root: str = "2.25",
    workers: int | None = None,
    progress: bool = True,
) -> DigitizeResult:
    """Import the scanned films that `manifest` lists (paths relative to `source`) into
    `output` as DICOM Secondary Capture files; see :mod:`curate.digitize`."""
    source, output = Path(source), Path(output)
    if not source.is_dir():
        raise SourceNotFoundError(f"source is not a folder: {source}")
    if not Path(manifest).is_file():
        raise SourceNotFoundError(f"the manifest does not exist: {manifest}")
    if not uid_root.replace(".", "").isdigit() or len(uid_root) > 40:
        raise ConfigError(f"uid_root must be a UID root of digits and dots (at most 40 characters), not {uid_root!r}")
    digitizer = digitizer or Digitizer()
    _owner_only_dir(output)
    result = DigitizeResult()
    started = time.perf_counter()
    workers = workers or os.cpu_count() or 1
    errors = _ErrorList(output / ERRORS_DIR / "errors.csv")
    run = RunOfFiles(output, "digitize", was_empty=next(tree_files(output), None) is None)
    try:
        _import_all(source, manifest, output, digitizer, uid_root, workers, progress, result, errors, run)
    except BaseException:
        run.abandon()
        raise
    result.errors_file = errors.close()
    result.seconds = time.perf_counter() - started
    settings = {"digitizer": asdict(digitizer), "uid_root": uid_root}
    result.run_entry = run.finish(settings, result.metrics(), {"manifest": sha256_of(manifest)})
    return result


def _import_all(
    source: Path,
    manifest,
    output: Path,
    digitizer: Digitizer,
    uid_root: str,
    workers: int,
    progress: bool,
    result: DigitizeResult,
    errors: _ErrorList,
    run: RunOfFiles,
) -> None:
    """Every row of `manifest` through :func:`import_film` on `workers` processes, a few
    rows in flight a worker, counted in `result` and journalled in `run` as each lands."""
    with (
        ProcessPoolExecutor(max_workers=workers) as pool,
        progress_bar(_count_rows(Path(manifest)), "digitize", enabled=progress, unit="film") as bar,
    ):
        pending: dict[Future, FilmRow] = {}

        def collect(done) -> None:
            for future in done:
                row = pending.pop(future)
                outcome, detail, size, lossy, digest = future.result()
                if outcome == "written":
                    result.written += 1
                    result.bytes += size
                    result.lossy += lossy
                    run.journal.add(detail, digest)
                elif outcome == "already":
                    result.already_done += 1
                else:
                    result.failed[detail] += 1
                    errors.add(row.number, row.file, detail)
                bar.update(1)

        for item in read_manifest(manifest):
            result.rows += 1
            if isinstance(item, FilmRowError):
                number, _, reason = str(item).partition(": ")
                result.failed[reason] += 1
                errors.add(int(number.removeprefix("row ")), None, reason)
                bar.update(1)
                continue
            job = pool.submit(import_film, str(source), str(output), item, digitizer, uid_root, run.file_hash)
            pending[job] = item
            if len(pending) >= 4 * workers:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                collect(done)
                run.journal.flush()
        collect(list(pending))


def import_film(
    source: str, output: str, row: FilmRow, digitizer: Digitizer, uid_root: str, file_hash: str = FILE_HASHES[0]
) -> tuple:
    """One row, in a worker process: ("written" | "already" | "failed", the reason a
    row failed or the written file's name in `output`, bytes written, whether the scan
    was lossy, the digest by `file_hash` of the file written or None)."""
    from curate import __version__

    try:
        path = _film_path(Path(source), row.file)
        try:
            digest, data = image_digest(path)
        except OSError as e:
            raise FilmRowError(f"the image cannot be read ({e.strerror or type(e).__name__})") from None
        uids = film_uids(row, digest, uid_root)
        target = Path(output) / uids.study / uids.series / f"{uids.instance}.dcm"
        if target.exists():
            return "already", "", 0, False, None
        image = read_film(path, data, digest)
        if not (row.dpi or image.dpi):
            raise FilmRowError("dpi is empty and the image records no resolution of its own")
        scanned = _scan_moment(row, path)
        encoded = encode(film_dataset(row, image, uids, digitizer, scanned, f"curate {__version__}"))
        _owner_only_dir(target.parent, parents_under=Path(output))
        _remove_dead_partials(target)
        try:
            with atomic_path(target, mode=OWNER_ONLY_FILE, replace=False) as partial:
                partial.write_bytes(encoded)
        except FileExistsError:  # another row with the same image and values
            return "already", "", 0, False, None
        name = target.relative_to(output).as_posix()
        return "written", name, len(encoded), image.lossy, file_digest(target, file_hash)
    except FilmRowError as e:
        return "failed", str(e), 0, False, None
    except OSError as e:
        return "failed", f"the output cannot be written ({e.strerror or type(e).__name__})", 0, False, None


def _remove_dead_partials(target: Path) -> None:
    """Remove what a killed run left half-written of `target` (a temporary name holding
    the writer's process id; a live writer's is left alone)."""
    for partial in target.parent.glob(f".{target.name}.*{PARTIAL_SUFFIX}"):
        pid = partial.name[len(target.name) + 2 : -len(PARTIAL_SUFFIX)]
        if pid.isdigit() and not process_alive(int(pid)):
            partial.unlink(missing_ok=True)


def _film_path(source: Path, name: str) -> Path:
    """The image a row names, which must be a file inside `source` (a manifest is not
    allowed to point elsewhere: ``../../etc/passwd``, an absolute path, a link out)."""
    candidate = Path(name)
    if candidate.is_absolute() or ".." in candidate.parts:
        raise FilmRowError("file must be a path relative to the source folder, inside it")
    path = source / candidate
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):
        raise FilmRowError("file does not exist in the source folder") from None
    if not real.is_relative_to(source.resolve()):
        raise FilmRowError("file is a link to somewhere outside the source folder")
    if not real.is_file():
        raise FilmRowError("file is not a regular file")
    return real


def _scan_moment(row: FilmRow, path: Path) -> tuple[str, str]:
    """When the film was digitised: the manifest's scan_date, else the image file's
    modification time (the scanner wrote it)."""
    if row.scan_date:
        return row.scan_date, ""
    moment = time.localtime(path.stat().st_mtime)
    return time.strftime("%Y%m%d", moment), time.strftime("%H%M%S", moment)


def _owner_only_dir(path: Path, parents_under: Path | None = None) -> None:
    """Create `path` (and its parents up to `parents_under`) as owner-only folders: the
    films hold names, IDs and birth dates."""
    missing = []
    current = path
    while not current.exists() and current != parents_under:
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=OWNER_ONLY_DIR)
        except FileExistsError:
            continue
        os.chmod(folder, OWNER_ONLY_DIR)


def _count_rows(manifest: Path) -> int | None:
    """Rows in the manifest, for the progress bar (lines less the header; a quoted
    value holding a line break makes it an estimate)."""
    try:
        with manifest.open("rb") as f:
            return max(0, sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b"")) - 1)
    except OSError:
        return None


class _ErrorList:
    """The failed rows, streamed to a CSV (written only when a row failed)."""

    HEADER = ["row", "file", "reason"]

    def __init__(self, path: Path):
        self.path = path
        self._rows = StreamedCsv(path, self.HEADER, mode=OWNER_ONLY_FILE)

    def add(self, number: int, file: str | None, reason: str) -> None:
        if not self._rows.started:
            _owner_only_dir(self.path.parent)
        self._rows.add([number, file or "", reason])

    def close(self) -> Path | None:
        if not self._rows.started:
            if self.path.exists():  # none failed this time
                write_atomic(self.path, ",".join(self.HEADER) + "\n", mode=OWNER_ONLY_FILE)
            return None
        return self._rows.close()

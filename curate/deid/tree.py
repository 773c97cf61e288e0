"""De-identifying a whole tree: on all cores, crash-safe, resumable, verified.

1. The native scanner reads what the run needs from every header (identity, modality,
   burned-in flags), and the run is planned and driven batch by batch from that stream:
   what it holds does not grow with the tree. Unreadable and non-DICOM files are
   reported, never copied.
2. Files that may carry identifying text in their pixels (BurnedInAnnotation YES,
   secondary captures, ultrasound, scanned documents, photographs) are quarantined: not
   written, counted by reason.
3. Every other file is de-identified in a worker process and written under a name built
   from its pseudonymous UIDs only (``<study>/<series>/<instance>.dcm``), to a temporary
   name first; its header, read back, must pass :mod:`curate.deid.check` (text
   consistent with its Specific Character Set, none of the patient's identifiers) before
   it is renamed into place, else it is deleted. A rerun skips files already written
   and deletes what a killed run left half-done, so it resumes and gives the same bytes.
   Each file is marked (an extended attribute) with a keyed stamp of its source's size
   and time: a later source whose SOP Instance UID is that of a file written from
   another source is counted as a clash, not as done.
4. The output is scanned again; the run fails if any attribute the profile removes or
   replaces still holds one of the source's values.
5. The run appends its entry to the output's run log (:mod:`curate.runlog`): settings
   digest, counts, the digest of the files it wrote and of the output as it now is.
"""

from __future__ import annotations

import csv
import hashlib
import os
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, as_completed, wait
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate.deid.check import HEADER_LEAK, UID_LEAK
from curate.deid.ocr import check_tesseract
from curate.deid.pixels import PixelRedaction
from curate.deid.profile import Options, Profile
from curate.deid.pseudonym import UUID_ROOT, Pseudonymizer
from curate.deid.quarantine import held_back, quarantine_reasons
from curate.deid.redact import FixedRegion
from curate.deid.worker import (
    EXCESS_PIXEL_TEXT,
    NO_INSTANCE_UID,
    PIXEL_TEXT_LEAK,
    SOP_INSTANCE_CLASH,
    deidentify_task,
    marked_source,
    output_path,
    source_stamp,
)
from curate.errors import ConfigError, DeidOutputError, SourceNotFoundError
from curate.files import StreamedCsv, atomic_path, is_partial, write_atomic
from curate.index.dask import DaskOptions, task_executor
from curate.index.schema import error_kind
from curate.index.store import GROUPING_MEMORY, limit_memory, sql_string
from curate.runlog import AUDIT_DIR, FileSet, RunOfFiles, tree_files
from curate.tracking import StageResult

#: What the run reads from every header before deciding what to do with the file.
PLAN_TAGS = [
    "SOPInstanceUID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPClassUID",
    "Modality",
    "BurnedInAnnotation",
    "RecognizableVisualFeatures",
    "ImageType",
    "ConversionType",
    "PatientID",
    "IssuerOfPatientID",
]
MANIFEST = ".curate-deid.json"
#: What a check says of a file it holds back: never written, so never a leak.
WITHHELD = (HEADER_LEAK, UID_LEAK, PIXEL_TEXT_LEAK, EXCESS_PIXEL_TEXT)
SPOOL_BATCH_ROWS = 65_536
#: Raised whenever what curate writes for the same input, settings and key changes: an
#: output folder begun under other rules is not resumed (its files would differ).
RULES_VERSION = 6
#: Attributes whose source values must not reappear in the output (checked after writing).
VERIFY_TAGS = [
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "OtherPatientIDs",
    "AccessionNumber",
    "InstitutionName",
    "ReferringPhysicianName",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "FrameOfReferenceUID",
    "StudyID",
    "StationName",
    "OperatorsName",
    "PerformingPhysicianName",
    "DeviceSerialNumber",
]


@dataclass
class DeidSummary(StageResult):
    files: int = 0
    written: int = 0
    already_done: int = 0
    quarantined: Counter = field(default_factory=Counter)
    #: Files a check held back (identifying data found before they were put in place).
    withheld: Counter = field(default_factory=Counter)
    failed: Counter = field(default_factory=Counter)
    #: Source files whose SOP Instance UID another file had (duplicates or clashes).
    clashes: int = 0
    #: Source values the verification found in the output: the only real leaks.
    leaks: int = 0
    #: (attribute keyword, outcome) -> count over the files this run wrote.
    audit: Counter = field(default_factory=Counter)
    #: Where the audit was written (beside the output), once it was.
    audit_file: Path | None = None
    seconds: float = 0.0
    #: The settings of the run (logged beside the counts).
    options: list[str] = field(default_factory=list)
    quarantine: bool = True
    #: ``quarantine`` or ``redact`` (held-back files' pixel text redacted instead).
    pixels: str = "quarantine"
    #: Files written with the text in their pixels filled (pixels=redact).
    redacted: int = 0
    #: Where the redactions were recorded (boxes and counts, no text), once one was.
    redaction_file: Path | None = None
    #: ``local`` (this machine's processes) or ``dask``.
    backend: str = "local"

    @property
    def ok(self) -> bool:
        return self.leaks == 0

    @property
    def exit_code(self) -> int:
        """3 when the output still holds source values: it must not be released."""
        return 0 if self.ok else 3

    @property
    def failure(self) -> str | None:
        return None if self.ok else "the output still holds source values: do not release it"

    def params(self) -> dict[str, object]:
        return {
            "options": ",".join(self.options) or "basic",
            "quarantine": self.quarantine,
            "pixels": self.pixels,
            "backend": self.backend,
        }

    def artifacts(self) -> list[Path]:
        return [p for p in (self.audit_file, self.redaction_file) if p is not None]

    def metrics(self) -> dict[str, float]:
        values = {
            "files": self.files,
            "written": self.written,
            "already_done": self.already_done,
            "quarantined": sum(self.quarantined.values()),
            "redacted": self.redacted,
            "withheld": sum(self.withheld.values()),
            "sop_instance_clashes": self.clashes,
            "failed": sum(self.failed.values()),
            "verification_leaks": self.leaks,
            "seconds": self.seconds,
        }
        values.update({f"quarantined.{k.replace(' ', '_')}": v for k, v in self.quarantined.items()})
        values.update({f"withheld.{k.replace(' ', '_')}": v for k, v in self.withheld.items()})
        values.update({f"failed.{k}": v for k, v in self.failed.items()})
        return values

    def format(self) -> str:
        rows = [("files", self.files), ("written", self.written)]
        if self.already_done:
            rows.append(("already written (resumed)", self.already_done))
        if self.pixels == "redact":
            rows.append(("  of them redacted (text in pixels filled)", self.redacted))
        rows.append(("quarantined", sum(self.quarantined.values())))
        rows += [(f"  {k}", v) for k, v in self.quarantined.most_common()]
        rows.append(("withheld by a check", sum(self.withheld.values())))
        rows += [(f"  {k}", v) for k, v in self.withheld.most_common()]
        rows.append(("same SOP Instance UID as another file", self.clashes))
        rows.append(("failed", sum(self.failed.values())))
        rows += [(f"  {k}", v) for k, v in self.failed.most_common()]
        width = max(len(k) for k, _ in rows)
        lines = [f"{k.ljust(width)}  {v:>9,}" for k, v in rows]
        lines.append(f"{'time'.ljust(width)}  {self.seconds:>8.2f}s")
        if self.audit_file is not None:
            changed = sum(n for (_, outcome), n in self.audit.items() if outcome != "kept")
            lines.append(f"audit: {changed:,} values removed, emptied, replaced or changed; by attribute in")
            lines.append(f"  {AUDIT_DIR}/{self.audit_file.name} (in the output folder)")
        if self.redaction_file is not None:
            lines.append(f"redactions (boxes and counts per file): {AUDIT_DIR}/{self.redaction_file.name}")
        lines.append(
            "verification: " + ("passed" if self.ok else f"FAILED, {self.leaks} source values found in the output")
        )
        lines.append(
            "  (each file written: its header at any depth, file meta, private elements and what follows the\n"
            "  pixels searched for its source's names, IDs, dates and UIDs before it was put in place; then\n"
            f"  {len(VERIFY_TAGS)} attributes of every output compared with every source's values)"
        )
        return "\n".join(lines)


def deidentify_tree(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    key: bytes,
    options: Options | None = None,
    uid_root: str = UUID_ROOT,
    quarantine: bool = True,
    mapping: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    progress: bool = True,
    pixels: str = "quarantine",
    pixel_regions: Sequence[FixedRegion] = (),
    dask: DaskOptions | None = None,
) -> DeidSummary:
    """De-identify every DICOM file under `source` into `output`; see the module text.
    With ``pixels="redact"``, the held-back files whose pixels are an image with text
    on it are redacted instead (:mod:`curate.deid.pixels`; `pixel_regions`: the fixed
    regions of known devices), and written only once no text is read in them. With
    `dask`, the files are de-identified by Dask tasks (workers must see the source and
    the output at the same paths, and the key travels to them with each task: use a
    cluster whose connections are encrypted); the plan, the counts, the verification
    and the run log stay with this process, and the output is the local run's.

    The tree is planned and driven from a stream of scan batches: what a run holds does
    not grow with the tree. What the mapping and the verification need of every source
    file is spooled to Parquet in a private (0700) temporary folder, removed at the end,
    and joined there by DuckDB."""
    import tempfile

    from curate.index.scan import open_scan
    from curate.progress import progress_bar

    options = options or Options()
    source, output = Path(source), Path(output)
    _check_paths(source, output, mapping)
    pseudo = Pseudonymizer(key, uid_root)
    if pixels not in ("quarantine", "redact"):
        raise ConfigError(f"pixels must be 'quarantine' or 'redact', not {pixels!r}")
    redaction = None
    if pixels == "redact":
        check_tesseract()
        redaction = PixelRedaction(tuple(pixel_regions))
    manifest = _manifest(options, uid_root, quarantine, pseudo)
    if redaction is not None:
        manifest["pixels"] = {"redact": True, "regions": [repr(r) for r in redaction.fixed_regions]}
    _check_manifest(output, manifest)
    _remove_partials(output)
    started = time.perf_counter()
    summary = DeidSummary(
        options=options.active(), quarantine=quarantine, pixels=pixels, backend="local" if dask is None else "dask"
    )
    profile = Profile(options)
    checked = _checked_tags(profile)
    output.mkdir(parents=True, exist_ok=True)
    run = RunOfFiles(output, "deid", was_empty=next(tree_files(output), None) is None)
    sources = FileSet()
    handle = open_scan(source, tags=PLAN_TAGS + VERIFY_TAGS)
    try:
        with (
            tempfile.TemporaryDirectory(prefix="curate-deid-") as private,  # mode 0700
            task_executor(workers, dask) as (pool, slots),
            progress_bar(None, "deid", enabled=progress) as bar,
        ):
            spool = _Spool(Path(private), checked, pseudo if mapping is not None else None)
            redactions = _RedactionLog(output / AUDIT_DIR)
            files = _InFlight(pool, slots, summary, bar, redactions, run)
            job = (options, key, uid_root, run.file_hash, quarantine)
            for batch in handle.reader():
                walked = handle.walked  # read first: once true, the total read next is final
                bar.set_total(handle.total, final=walked)
                spool.add(batch)
                tasks = _tasks(
                    batch.to_pylist(), output, pseudo, quarantine, summary, redaction is not None, sources, key
                )
                bar.update(batch.num_rows - len(tasks))
                for src, dst, redact, stamp in tasks:
                    files.submit(src, dst, job, redaction if redact else None, stamp)
                run.journal.flush()
            files.drain()
            run.journal.flush()
            spool.close()
            summary.redaction_file = redactions.close()
            if mapping is not None:
                spool.write_mapping(Path(mapping))
            summary.leaks += spool.count_in(output)
        summary.seconds = time.perf_counter() - started
        summary.audit_file = write_audit(output, summary.audit)
    except BaseException:
        run.abandon()
        raise
    summary.run_entry = run.finish(manifest, summary.metrics(), {"sources": sources.digest})
    return summary


def write_audit(output: Path, audit: Counter) -> Path:
    """The run's audit, MIDI-B style, in ``<output>/.curate-audit/deid-<time>.csv``: per
    attribute keyword, how many values were kept, removed, emptied, replaced,
    pseudonymised, shifted or cleaned. Keywords and counts only: no value, no path."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = output / AUDIT_DIR / f"deid-{stamp}.csv"
    outcomes = sorted({outcome for _, outcome in audit})
    by_attribute: dict[str, Counter] = {}
    for (attribute, outcome), count in audit.items():
        by_attribute.setdefault(attribute, Counter())[outcome] += count
    with atomic_path(path) as partial, open(partial, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["attribute", *outcomes])
        for attribute in sorted(by_attribute):
            writer.writerow([attribute, *(by_attribute[attribute][o] for o in outcomes)])
    return path


def _checked_tags(profile: Profile) -> list[str]:
    """The attributes whose source values must not reappear: those the profile removes
    or replaces (kept ones, under an option, are not checked)."""
    from pydicom.datadict import tag_for_keyword

    return [k for k in VERIFY_TAGS if profile.action(int(tag_for_keyword(k))) != "K"]


def _check_paths(source: Path, output: Path, mapping: str | os.PathLike[str] | None) -> None:
    if not source.exists():
        raise SourceNotFoundError(f"source does not exist: {source}")
    if output.resolve().is_relative_to(source.resolve()):
        raise DeidOutputError("the output folder must not be inside the source")
    if mapping is not None and Path(mapping).resolve().is_relative_to(output.resolve()):
        raise DeidOutputError("the identifier mapping must not be written inside the output folder")


def _tasks(
    plan: list[dict],
    output: Path,
    pseudo: Pseudonymizer,
    quarantine: bool,
    summary: DeidSummary,
    redact: bool,
    sources: FileSet,
    key: bytes,
) -> list[tuple[str, str, bool, bytes]]:
    """(source, target, whether its pixels are redacted, its source stamp) of every
    file of `plan` to write now; the others are counted, by reason. `sources` gains each
    file to be written (or written before), by its output name, size and time, for the
    run log. A file already written counts as done when it is marked with this source's
    stamp (keyed by `key`), or with none; else as a clash of SOP Instance UIDs."""
    summary.files += len(plan)
    tasks: list[tuple[str, str, bool, bytes]] = []
    for row in plan:
        if row["status"] != "ok":
            summary.failed[error_kind(row["error"] or row["status"])] += 1
            continue
        if not row.get("SOPInstanceUID"):
            summary.failed[NO_INSTANCE_UID] += 1
            continue
        reasons = quarantine_reasons(row) if quarantine else []
        held = held_back(reasons, redact)
        if held:
            summary.quarantined[held] += 1
            continue
        target = output_path(output, pseudo, row)
        listed = hashlib.sha256(f"{row.get('file_size')}:{row.get('mtime')}".encode()).hexdigest()
        sources.add(target.relative_to(output).as_posix(), listed)
        stamp = source_stamp(key, row.get("file_size"), row.get("mtime"))
        if target.exists():
            earlier = marked_source(target)
            if earlier is not None and earlier != stamp:
                # Written by an earlier run from another source with this SOP Instance UID
                # (or from this one before it changed): not this file's output.
                summary.clashes += 1
            else:
                summary.already_done += 1
            continue
        tasks.append((row["path"], str(target), bool(reasons), stamp))
    return tasks


class _InFlight:
    """The files being de-identified: submitted to the workers as the plan streams in,
    at most a few per worker slot at a time, and counted (and journalled in `run`) as
    each one ends. A batch's last files do not hold the next batch's first ones back."""

    def __init__(self, pool: Executor, slots: int, summary: DeidSummary, bar, redactions=None, run=None):
        self.pool, self.window = pool, 4 * max(1, slots)
        self.summary, self.bar, self.redactions, self.run = summary, bar, redactions, run
        self.pending: dict = {}

    def submit(
        self, source: str, target: str, job: tuple, redaction: PixelRedaction | None, stamp: bytes | None = None
    ) -> None:
        """De-identify `source` into `target`, marked with `stamp`; `job`: (options, key,
        UID root, file hash, whether to quarantine)."""
        options, key, uid_root, file_hash, quarantine = job
        while len(self.pending) >= self.window:
            done, _ = wait(self.pending, return_when=FIRST_COMPLETED)
            self._count(done)
        future = self.pool.submit(
            deidentify_task, source, target, options, key, uid_root, redaction, file_hash, quarantine, stamp
        )
        self.pending[future] = target

    def drain(self) -> None:
        """Wait for every file submitted."""
        self._count(list(as_completed(list(self.pending))))

    def _count(self, done) -> None:
        summary = self.summary
        for future in done:
            target = self.pending.pop(future)
            status, reason, audit, record, digest = future.result()
            if status == "written":
                summary.written += 1
                summary.audit.update(audit)
                if self.run is not None and digest is not None:
                    self.run.wrote(target, digest)
                if record is not None:
                    summary.redacted += 1
                    summary.audit["PixelData", "redacted"] += 1  # the boxes are in the redaction log
                    if self.redactions is not None:
                        self.redactions.add(Path(target), record)
            elif status == "quarantined":
                summary.quarantined[reason] += 1
            elif reason in WITHHELD:
                summary.withheld[reason] += 1  # held back, so nothing leaked
            elif reason == SOP_INSTANCE_CLASH:
                summary.clashes += 1
            else:
                summary.failed[reason or "failed"] += 1
            self.bar.update(1)


class _RedactionLog:
    """Per file redacted, in ``<output>/.curate-audit/redactions-<time>.csv``: its output
    name (pseudonymous UIDs), frames, boxes, fixed boxes, filled pixels and the boxes
    (frame, x0, y0, x1, y1). Boxes and counts only, never the text read."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._rows: StreamedCsv | None = None

    def add(self, target: Path, record: dict) -> None:
        import json

        if self._rows is None:
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            self.folder.mkdir(parents=True, exist_ok=True)
            header = ["file", "frames", "boxes", "fixed_boxes", "area_px", "regions"]
            self._rows = StreamedCsv(self.folder / f"redactions-{stamp}.csv", header)
        name = "/".join(target.parts[-3:])
        fields = ("frames", "boxes", "fixed_boxes", "area_px")
        self._rows.add([name, *(record[f] for f in fields), json.dumps(record["regions"])])

    @property
    def path(self) -> Path | None:
        return None if self._rows is None else self._rows.path

    def close(self) -> Path | None:
        return None if self._rows is None else self._rows.close()


def _remove_partials(output: Path) -> None:
    """Files a killed run was writing, or had written but not checked: never kept."""
    if output.exists():
        for partial in output.rglob(".*"):
            if is_partial(partial):
                partial.unlink(missing_ok=True)


def _manifest(options: Options, uid_root: str, quarantine: bool, pseudo: Pseudonymizer) -> dict:
    """What decides the output's bytes. The key appears only as a keyed fingerprint."""
    from curate.deid.profile import TABLE_EDITION

    return {
        "rules": RULES_VERSION,
        "edition": TABLE_EDITION,
        "options": options.active(),
        "uid_root": uid_root,
        "quarantine": quarantine,
        "key_fingerprint": pseudo.uid("curate key fingerprint")[-12:],
    }


def _check_manifest(output: Path, manifest: dict) -> None:
    """A rerun may resume an output folder only if it was written with the same settings
    and key: otherwise files of two different de-identifications would mix."""
    import json

    path = output / MANIFEST
    if path.exists():
        try:
            found = json.loads(path.read_text())
        except ValueError:
            found = None
        if found != manifest:
            raise DeidOutputError(
                f"{output} holds output written with other options, UID root or key, or by another "
                "version of curate's rules; "
                "de-identify into a new folder (or remove it)"
            )
        return
    if output.exists() and any(output.iterdir()):
        raise DeidOutputError(f"{output} is not empty and was not written by curate deid; choose an empty folder")
    write_atomic(path, json.dumps(manifest, indent=2))


def _append_columns(
    writer: pq.ParquetWriter | None, path: Path, batch: pa.RecordBatch, columns: list[str]
) -> pq.ParquetWriter:
    """Append `columns` of `batch` to the Parquet file at `path` (begun by this call when
    `writer` is None); the writer to append with next time."""
    table = pa.Table.from_batches([batch]).select(columns)
    writer = writer or pq.ParquetWriter(path, table.schema)
    writer.write_table(table)
    return writer


class _Spool:
    """What the mapping and the verification need of every source file, spooled to
    Parquet as the plan streams by: the checked attributes' values, and (when a mapping
    is asked for) original -> pseudonym pairs in plan order."""

    MAPPED = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
    PAIRS = pa.schema(
        [("seq", pa.int64()), ("attribute", pa.string()), ("original", pa.string()), ("pseudonym", pa.string())]
    )

    def __init__(self, folder: Path, checked: list[str], pseudo: Pseudonymizer | None):
        self.folder, self.checked, self.pseudo = folder, checked, pseudo
        self._values: pq.ParquetWriter | None = None
        self._pairs = pq.ParquetWriter(folder / "pairs.parquet", self.PAIRS) if pseudo is not None else None
        self._seq = 0

    def add(self, batch: pa.RecordBatch) -> None:
        if self.checked:
            self._values = _append_columns(self._values, self.folder / "source.parquet", batch, self.checked)
        if self._pairs is not None:
            ok = batch.filter(pc.equal(batch.column("status"), "ok"))
            if ok.num_rows:
                self._pairs.write_table(self._pairs_of(ok.to_pylist()))

    def _pairs_of(self, rows: list[dict]) -> pa.Table:
        pairs: dict[str, list] = {name: [] for name in self.PAIRS.names}

        def add(attribute: str, original: str, pseudonym: str) -> None:
            for name, value in zip(self.PAIRS.names, (self._seq, attribute, original, pseudonym), strict=True):
                pairs[name].append(value)
            self._seq += 1

        for row in rows:
            if row.get("PatientID") is not None:
                issuer = row.get("IssuerOfPatientID") or ""
                add("PatientID", row["PatientID"], self.pseudo.patient_id(row["PatientID"], issuer))
            for attribute in self.MAPPED:
                if row.get(attribute):
                    add(attribute, row[attribute], self.pseudo.uid(row[attribute]))
        return pa.table(pairs, schema=self.PAIRS)

    def close(self) -> None:
        for writer in (self._values, self._pairs):
            if writer is not None:
                writer.close()

    def _connect(self):
        import duckdb

        con = duckdb.connect()
        # The joins here group every identifying value of the tree.
        limit_memory(con, self.folder / "spill", GROUPING_MEMORY)
        con.execute("SET preserve_insertion_order = false")
        return con

    def write_mapping(self, path: Path) -> None:
        """Original -> pseudonymous identifiers, each pair once, in the order first met,
        for the user who asked to keep them: owner-only, since it re-identifies everyone."""
        con = self._connect()
        try:
            reader = con.sql(
                "SELECT attribute, original, pseudonym FROM (SELECT attribute, original, pseudonym, min(seq) AS first "
                f"FROM read_parquet({sql_string(self.folder / 'pairs.parquet')}) GROUP BY ALL) ORDER BY first"
            ).to_arrow_reader(SPOOL_BATCH_ROWS)
            with atomic_path(path, mode=0o600) as partial, open(partial, "w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(["attribute", "original", "pseudonym"])
                for batch in reader:
                    writer.writerows(zip(*(batch.column(i).to_pylist() for i in range(3)), strict=True))
        finally:
            con.close()

    def count_in(self, output: Path) -> int:
        """How many values of the source the output still holds in the checked attributes."""
        from curate.index.scan import scan_batches

        source = self.folder / "source.parquet"
        if not self.checked or not source.exists() or not output.exists():
            return 0
        found = self.folder / "output.parquet"
        writer = None
        for batch in scan_batches(output, tags=self.checked):
            writer = _append_columns(writer, found, batch, self.checked)
        if writer is None:
            return 0
        writer.close()
        con = self._connect()
        try:
            return int(
                con.execute(
                    f"SELECT count(*) FROM ({self._values_sql(found)}) SEMI JOIN "
                    f"(SELECT DISTINCT attribute, value FROM ({self._values_sql(source)})) USING (attribute, value)"
                ).fetchone()[0]
            )
        finally:
            con.close()

    def _values_sql(self, path: Path) -> str:
        """(attribute, value) of every non-empty checked value in a spooled file, list
        elements one by one, as text."""
        schema = pq.read_schema(path)
        parts = []
        for name in self.checked:
            column = f'"{name}"'
            if pa.types.is_list(schema.field(name).type):
                column = f'unnest("{name}")'
            parts.append(
                f"SELECT * FROM (SELECT {sql_string(name)} AS attribute, CAST({column} AS VARCHAR) AS value "
                f"FROM read_parquet({sql_string(path)})) WHERE value IS NOT NULL AND value <> ''"
            )
        return " UNION ALL ".join(parts)

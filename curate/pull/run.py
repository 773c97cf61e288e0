"""``curate pull``: metadata or images from a PACS, gently, resumably, exactly once.

The work is one task per study, run by as many threads as the concurrency cap allows;
every request to the PACS goes through the :class:`~curate.pull.throttle.Throttle`
(concurrency, request rate, time windows, back-off when the PACS's response to a probe
slows down). The ledger says what is done, so a killed pull resumes where it stopped.

``level=metadata`` writes a row per instance from the query answers into the index,
with ``status = 'remote'``; ``level=images`` retrieves each series into the local store
(named by UIDs), fetches again what is missing, and then brings the index up to date
over the store.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from curate.errors import ConfigError, PacsError
from curate.index.manifest import PARTS_DIR, generation_name
from curate.index.remote import check_signature, commit_remote_rows
from curate.index.tags import resolve_tags
from curate.progress import progress_bar
from curate.pull.ledger import DONE, Ledger
from curate.pull.rows import PART_ROWS, RowStager, merged
from curate.pull.selection import Selection
from curate.pull.source import (
    Answer,
    Answers,
    Connection,
    InstanceError,
    Query,
    Source,
    TransientError,
    value,
    values,
    with_retries,
)
from curate.pull.split import CappedFinder
from curate.pull.store import InstanceStore, safe_name
from curate.pull.throttle import Prober, Throttle
from curate.tracking import StageResult

LEVELS = ("metadata", "images")
#: The folder in the index that holds the pull's ledger and its staged rows.
PULL_DIR = "pull"
#: Bytes an instance of each modality usually takes, for the dry run's estimate.
TYPICAL_BYTES = {"CR": 10e6, "DX": 12e6, "MG": 40e6, "CT": 0.5e6, "MR": 0.3e6, "US": 1e6, "XA": 20e6, "PT": 0.3e6}
DEFAULT_BYTES = 2e6
BASELINE_PROBES = 5


@dataclass
class ThrottleOptions:
    max_concurrency: int = 4
    min_concurrency: int = 1
    rate: float | None = None
    windows: tuple[str, ...] = ()
    timezone: str | None = None
    probe_interval: float = 0.2
    slow_factor: float = 2.0


@dataclass
class PullResult(StageResult):
    source_kind: str = ""
    level: str = ""
    selection: str = ""
    check: bool = False
    studies: int = 0
    series: int = 0
    instances: int = 0
    skipped_studies: int = 0
    skipped_series: int = 0
    failed_series: int = 0
    bytes: int = 0
    estimated_bytes: float = 0.0
    rows_committed: int = 0
    seconds: float = 0.0
    retries: int = 0
    queries: int = 0
    capped: int = 0
    unsplittable: int = 0
    throttle: dict = field(default_factory=dict)
    idle_latency: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    failures: list[tuple[str, int]] = field(default_factory=list)
    windows: str = "always"

    def params(self):
        return {"source": self.source_kind, "level": self.level, "check": self.check, "windows": self.windows}

    def metrics(self):
        out = {
            "studies": self.studies,
            "series": self.series,
            "instances": self.instances,
            "failed_series": self.failed_series,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "instances_per_s": self.instances / self.seconds if self.seconds else 0.0,
            "mb_per_s": self.bytes / 1e6 / self.seconds if self.seconds else 0.0,
            "queries": self.queries,
            "capped_answers": self.capped,
            "unsplittable_answers": self.unsplittable,
            "retries": self.retries,
        }
        out.update({f"throttle_{k}": float(v) for k, v in self.throttle.items() if isinstance(v, (int, float))})
        for name, seconds in (("idle_latency", self.idle_latency), ("probe_latency", self.latencies)):
            if seconds:
                out[f"{name}_p50_ms"] = _percentile(seconds, 50) * 1000
                out[f"{name}_p95_ms"] = _percentile(seconds, 95) * 1000
        return out

    def format(self) -> str:
        what = "would pull" if self.check else "pulled"
        lines = [f"curate pull ({self.source_kind}, level={self.level}, {self.selection}): {what}"]
        lines.append(f"  studies {self.studies:,}  series {self.series:,}  instances {self.instances:,}")
        if self.check:
            lines.append(f"  estimated bytes {self.estimated_bytes / 1e6:,.1f} MB (from typical sizes per modality)")
        else:
            rate = self.instances / self.seconds if self.seconds else 0.0
            lines.append(
                f"  {self.bytes / 1e6:,.1f} MB in {self.seconds:,.1f} s ({rate:,.1f} instances/s); "
                f"already done: {self.skipped_studies:,} studies, {self.skipped_series:,} series; "
                f"{self.rows_committed:,} index rows written"
            )
        lines.append(
            f"  queries {self.queries:,} (capped answers split: {self.capped:,}; unsplittable: {self.unsplittable:,})"
        )
        t = self.throttle
        if t:
            lines.append(
                f"  throttle: concurrency {t.get('min_limit')}..{t.get('max_limit')}, "
                f"back-offs {t.get('backoff', 0)}, grows {t.get('grow', 0)}, rate waits {t.get('rate_wait', 0)}, "
                f"window pauses {t.get('window_pause', 0)} (windows: {self.windows})"
            )
        if self.idle_latency and self.latencies:
            idle, busy = self.idle_latency, self.latencies
            lines.append(
                f"  PACS probe latency: idle p50 {_percentile(idle, 50) * 1000:.1f} ms; during the pull "
                f"p50 {_percentile(busy, 50) * 1000:.1f} ms, p95 {_percentile(busy, 95) * 1000:.1f} ms"
            )
        if self.retries:
            lines.append(f"  {self.retries:,} transient failures retried")
        if self.failed_series:
            lines.append(f"  FAILED series: {self.failed_series:,}")
            lines += [f"    {count:,} x {reason}" for reason, count in self.failures]
        return "\n".join(lines)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


class _Connections:
    """One connection per worker thread (a DIMSE association is not shared)."""

    def __init__(self, source: Source):
        self.source = source
        self._local = threading.local()
        self._all: list[Connection] = []
        self._lock = threading.Lock()

    def get(self) -> Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self.source.connect()
            self._local.connection = connection
            with self._lock:
                self._all.append(connection)
        return connection

    def release(self) -> None:
        """Let go of this thread's association between tasks: an idle one would hold one of
        the PACS's few association threads (Orthanc has 4 by default) until it times out."""
        connection = getattr(self._local, "connection", None)
        if connection is not None and self.source.kind == "dimse":
            connection.close()

    def cancel_all(self) -> None:
        with self._lock:
            for connection in self._all:
                cancel = getattr(connection, "cancel", None)
                if cancel is not None:
                    cancel()

    def close(self) -> None:
        with self._lock:
            for connection in self._all:
                try:
                    connection.close()
                except Exception:  # noqa: BLE001 - closing what may already be gone
                    pass
            self._all.clear()


class _Pull:
    def __init__(
        self,
        source: Source,
        index: Path,
        store: Path | None,
        level: str,
        selection: Selection,
        find_limit: int,
        throttle: ThrottleOptions,
        retries: int,
        tags,
        extra_tags,
        progress: bool,
        clock=None,
    ):
        self.source, self.index, self.level, self.selection = source, index, level, selection
        self.columns = resolve_tags(tags, extra_tags)
        self.store = InstanceStore(store) if store is not None else None
        self.options = throttle
        self.connections = _Connections(source)
        self.throttle = Throttle(
            max_concurrency=throttle.max_concurrency,
            min_concurrency=throttle.min_concurrency,
            rate=throttle.rate,
            windows=_windows(throttle),
            clock=clock,
            slow_factor=throttle.slow_factor,
            on_pause=self.connections.cancel_all,
        )
        self.retries = retries
        self.retried = 0
        self.finder = CappedFinder(self._find, find_limit, selection.modalities)
        self.result = PullResult(source_kind=source.kind, level=level, selection=selection.describe())
        self.progress = progress
        self._lock = threading.Lock()
        self._stager: RowStager | None = None
        self._staged_series: list[tuple[str, int]] = []
        self._bar = None

    # --- requests, each through the throttle and retried -----------------------------------

    def _request(self, call: Callable[[Connection], object]):
        def once():
            with self.throttle.slot():
                try:
                    return call(self.connections.get())
                except TransientError:
                    self._drop_connection()
                    raise

        return with_retries(once, attempts=self.retries, on_retry=self._count_retry)

    def _count_retry(self, _: Exception) -> None:
        with self._lock:
            self.retried += 1

    def _drop_connection(self) -> None:
        connection = getattr(self.connections._local, "connection", None)
        if connection is not None:
            try:
                connection.close()
            except Exception:  # noqa: BLE001
                pass
            self.connections._local.connection = None

    def _find(self, level: str, query: Query) -> Answers:
        return self._request(lambda c: c.find(level, query))

    # --- the run ---------------------------------------------------------------------------

    def probe(self) -> float:
        connection = self.source.connect()
        try:
            return connection.echo()
        finally:
            connection.close()

    def verify(self) -> None:
        """C-ECHO or a QIDO probe: the connection works and the idle baseline is measured."""
        try:
            idle = [with_retries(self.probe, attempts=2) for _ in range(BASELINE_PROBES)]
        except TransientError as e:
            raise PacsError(f"{self.source.describe()} cannot be reached: {e}") from None
        self.result.idle_latency = idle
        self.throttle.set_baseline(statistics.median(idle))

    def run(self, check: bool) -> PullResult:
        started = time.perf_counter()
        self.verify()
        self.result.check = check
        self.result.windows = self.throttle.windows.describe() if self.throttle.windows else "always"
        ledger_path = self.index / PULL_DIR / "ledger.sqlite"
        prober = Prober(self.probe, self.throttle, interval=self.options.probe_interval)
        try:
            if check:
                self._dry_run()
            else:
                if self.level == "metadata":
                    self._stager = RowStager(self.index / PULL_DIR / "staged", self.columns)
                with Ledger(ledger_path, self.source.describe(), self.level) as ledger, prober:
                    self._each_study(lambda study: self._study(ledger, study), ledger)
                    self.result.failures = ledger.failures()
                self._finish()
        finally:
            self.connections.close()
            self.throttle.close()
        self.result.latencies = list(prober.latencies())
        self.result.throttle = self.throttle.stats()
        self.result.queries = self.finder.counts.queries
        self.result.capped = self.finder.counts.capped
        self.result.unsplittable = self.finder.counts.unsplittable
        self.result.retries = self.retried
        self.result.seconds = time.perf_counter() - started
        return self.result

    def _studies(self) -> Iterator[Answer]:
        # Only a CSV's queries can answer a study twice (two accessions of one study);
        # the splits of one query are disjoint, so nothing is held for them.
        seen: set[str] | None = set() if self.selection.ids else None
        for query in self.selection.study_queries(match_modalities=self.finder.find_limit == 0):
            for study in self.finder.studies(query):
                uid = value(study, "StudyInstanceUID")
                if not uid or not self.selection.wants_study(values(study, "ModalitiesInStudy")):
                    continue
                if seen is not None:
                    if uid in seen:
                        continue
                    seen.add(uid)
                yield study

    def _dry_run(self) -> None:
        def count(study: Answer) -> None:
            try:
                wanted = self._wanted_series(study)
            finally:
                self.connections.release()
            with self._lock:
                for series in wanted:
                    self.result.series += 1
                    instances = int(value(series, "NumberOfSeriesRelatedInstances") or 0)
                    self.result.instances += instances
                    typical = TYPICAL_BYTES.get(value(series, "Modality") or "", DEFAULT_BYTES)
                    self.result.estimated_bytes += instances * typical

        self._each_study(count)

    def _wanted_series(self, study: Answer) -> list[Answer]:
        uid = value(study, "StudyInstanceUID")
        return [
            s
            for s in self.finder.series(self.selection.series_query(uid))
            if self.selection.wants_series(value(s, "Modality"), value(s, "BodyPartExamined"))
        ]

    def _each_study(self, work: Callable[[Answer], None], ledger: Ledger | None = None) -> None:
        """`work(study)` for every study selected, on the worker threads, as the studies
        are found (a bounded queue: memory stays flat however many there are)."""
        workers = self.options.max_concurrency
        with (
            progress_bar(
                None, f"pull {self.level}", enabled=self.progress and ledger is not None, unit="instance"
            ) as bar,
            ThreadPoolExecutor(workers, thread_name_prefix="curate-pull") as pool,
        ):
            self._bar = bar
            pending: set[Future] = set()
            for study in self._studies():
                self.result.studies += 1
                count = value(study, "NumberOfStudyRelatedInstances")
                if ledger is not None and ledger.study_done(value(study, "StudyInstanceUID"), _int(count)):
                    self.result.skipped_studies += 1
                    continue
                pending.add(pool.submit(work, study))
                if len(pending) >= 2 * workers:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        future.result()
            for future in pending:
                future.result()

    def _study(self, ledger: Ledger, study: Answer) -> None:
        try:
            self._study_series(ledger, study)
        finally:
            self.connections.release()

    def _study_series(self, ledger: Ledger, study: Answer) -> None:
        uid = value(study, "StudyInstanceUID")
        finished = True
        for series in self._wanted_series(study):
            series_uid = value(series, "SeriesInstanceUID")
            if not series_uid:
                continue
            expected = value(series, "NumberOfSeriesRelatedInstances")
            with self._lock:
                self.result.series += 1
            state = ledger.queue(uid, series_uid, int(expected) if expected else None)
            if state == DONE:
                with self._lock:
                    self.result.skipped_series += 1
                continue
            ledger.attempt(series_uid)
            try:
                if self.level == "metadata":
                    self._series_metadata(ledger, study, series)
                    finished = False  # the study is done once its staged rows are written
                else:
                    finished &= self._series_images(ledger, study, series)
            except (InstanceError, TransientError) as e:
                ledger.failed(series_uid, 0, _reason(e))
                finished = False
                with self._lock:
                    self.result.failed_series += 1
        if finished:
            ledger.finish_study(uid, _int(value(study, "NumberOfStudyRelatedInstances")))

    # --- metadata ----------------------------------------------------------------------------

    def _series_metadata(self, ledger: Ledger, study: Answer, series: Answer) -> None:
        study_uid, series_uid = value(study, "StudyInstanceUID"), value(series, "SeriesInstanceUID")
        instances, _ = self.finder.instances(self.selection.instance_query(study_uid, series_uid))
        with self._lock:
            for instance in instances:
                sop = value(instance, "SOPInstanceUID")
                if sop:
                    self._stager.add(
                        self.source.instance_uri(study_uid, series_uid, sop), merged(study, series, instance)
                    )
            self._staged_series.append((series_uid, len(instances)))
            self.result.instances += len(instances)
            if self._bar is not None:
                self._bar.update(len(instances))
            if len(self._stager) >= PART_ROWS:
                self._flush_rows(ledger)

    def _flush_rows(self, ledger: Ledger) -> None:
        """Write the staged rows as a part; only then are their series done."""
        self._stager.flush()
        for series_uid, count in self._staged_series:
            ledger.done(series_uid, count)
        self._staged_series.clear()

    # --- images ------------------------------------------------------------------------------

    def _series_images(self, ledger: Ledger, study: Answer, series: Answer) -> bool:
        study_uid, series_uid = value(study, "StudyInstanceUID"), value(series, "SeriesInstanceUID")
        instances, capped = self.finder.instances(self.selection.instance_query(study_uid, series_uid))
        wanted = {value(i, "SOPInstanceUID"): value(i, "SOPClassUID") for i in instances}
        wanted.pop(None, None)
        expected = max(len(wanted), int(value(series, "NumberOfSeriesRelatedInstances") or 0))
        sop_classes = sorted({c for c in wanted.values() if c})

        def sink(sop: str, data: bytes) -> None:
            self.store.write(study_uid, series_uid, sop, data)
            with self._lock:
                self.result.instances += 1
                self.result.bytes += len(data)
                if self._bar is not None:
                    self._bar.update(1)

        self.connections.release()  # the retrieval opens its own association
        reason = None
        for _ in range(self.retries):
            held = self.store.held(study_uid, series_uid)
            missing = [sop for sop in wanted if safe_name(sop) not in held]
            if not missing and len(held) >= expected:
                break
            if self.source.kind == "dimse":
                # One retrieval: the whole series when nothing is held or the instance list
                # was capped, else only what is missing.
                asks = [[] if not held or capped else missing]
            else:
                asks = [[sop] for sop in missing]  # one request each: the rate limit counts them
            if not asks:
                break
            for ask in asks:
                try:
                    self._request(lambda c, ask=ask: c.retrieve(study_uid, series_uid, ask, sop_classes, sink))
                except InstanceError as e:
                    reason = _reason(e)
        held = self.store.held(study_uid, series_uid)
        if len(held) >= expected and all(safe_name(s) in held for s in wanted):
            ledger.done(series_uid, len(held))
            return True
        missing = max(expected - len(held), sum(safe_name(s) not in held for s in wanted))
        ledger.failed(series_uid, len(held), reason or f"{missing} of {expected} instances did not arrive")
        with self._lock:
            self.result.failed_series += 1
        return False

    # --- the end -----------------------------------------------------------------------------

    def _finish(self) -> None:
        if self.level == "metadata":
            if self._stager is None:
                return
            parts = self._stager.parts()
            with Ledger(self.index / PULL_DIR / "ledger.sqlite", self.source.describe(), self.level) as ledger:
                if len(self._stager):
                    self._flush_rows(ledger)
                parts = self._stager.parts()
            if parts:
                manifest = commit_remote_rows(self.index, parts, self.columns, self.index / PULL_DIR / "work")
                if manifest is not None:
                    fresh = f"{PARTS_DIR}/{generation_name(manifest.generation)}/"
                    self.result.rows_committed = sum(p.rows for p in manifest.parts if p.file.startswith(fresh))
                self._stager.clear()
        else:
            from curate.index.build import build_index

            summary = build_index(self.store.root, self.index, progress=self.progress)
            self.result.rows_committed = summary.scanned


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text else None
    except ValueError:
        return None


def _windows(options: ThrottleOptions):
    if not options.windows:
        return None
    from curate.pull.windows import TimeWindows

    return TimeWindows.parse(list(options.windows), tz=options.timezone)


def _reason(error: Exception) -> str:
    """A failure's reason for the ledger and the summary: the kind and the server's
    words, cut short (no path: the store's names are UIDs)."""
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text[:160]


def pull(
    source: Source,
    index: str | Path,
    level: str = "metadata",
    store: str | Path | None = None,
    selection: Selection | None = None,
    find_limit: int = 0,
    check: bool = False,
    throttle: ThrottleOptions | None = None,
    retries: int = 4,
    tags=None,
    extra_tags=(),
    progress: bool = True,
    clock=None,
) -> PullResult:
    """Pull from `source` into the index at `index` (and, for images, the store at `store`).

    ``check=True`` verifies the connection and counts what would be pulled, then stops.
    """
    if level not in LEVELS:
        raise ConfigError(f"level must be one of {', '.join(LEVELS)}, not {level!r}")
    if level == "images" and store is None and not check:
        raise ConfigError("level=images needs store=DIR: the folder the instances are written to")
    if find_limit < 0:
        raise ConfigError(f"find_limit must be 0 (no cap) or the server's cap on answers, not {find_limit}")
    index = Path(index)
    if (index / "manifest.json").exists():
        check_signature(index, resolve_tags(tags, extra_tags))
    job = _Pull(
        source,
        index,
        Path(store) if store is not None else None,
        level,
        selection or Selection(),
        find_limit,
        throttle or ThrottleOptions(),
        retries,
        tags,
        extra_tags,
        progress,
        clock,
    )
    return job.run(check)


__all__ = ["LEVELS", "PullResult", "ThrottleOptions", "pull"]

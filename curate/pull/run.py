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

import contextlib
import logging
import os
import statistics
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from curate.errors import ConfigError, CurateError, PacsError, QueryError
from curate.index.manifest import PARTS_DIR, generation_name
from curate.index.remote import check_signature, commit_remote_rows
from curate.index.tags import resolve_tags
from curate.progress import progress_bar
from curate.pull.ledger import DONE, Ledger
from curate.pull.probe import process_probe
from curate.pull.rows import PART_ROWS, RowStager, merged
from curate.pull.selection import Selection
from curate.pull.source import (
    REQUIRED_KEYS,
    Answer,
    Answers,
    Connection,
    InstanceError,
    Query,
    QueryRefused,
    Source,
    TransientError,
    check_instance,
    tag_hex,
    value,
    values,
    with_retries,
    without_bulk_data,
)
from curate.pull.split import CappedFinder
from curate.pull.store import InstanceStore, is_uid, safe_name
from curate.pull.throttle import Prober, Throttle, percentile
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
    recover_factor: float = 1.3


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
    extra_requests: int = 0
    extra_bytes: float = 0.0
    rows_committed: int = 0
    seconds: float = 0.0
    retries: int = 0
    degraded_queries: int = 0
    #: Series retrieved whole with no instance-level query (DIMSE: see _Pull._whole_series).
    whole_series: int = 0
    queries: int = 0
    capped: int = 0
    unsplittable: int = 0
    #: Studies without a StudyDate kept from capped answers (more may exist: see split).
    undated: int = 0
    throttle: dict = field(default_factory=dict)
    #: (seconds since the start, concurrency limit) at each change of the limit.
    limit_history: list[tuple[float, int]] = field(default_factory=list)
    idle_latency: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    failures: list[tuple[str, int]] = field(default_factory=list)
    failed_studies: int = 0
    study_failures: list[tuple[str, int]] = field(default_factory=list)
    windows: str = "always"

    def params(self):
        return {"source": self.source_kind, "level": self.level, "check": self.check, "windows": self.windows}

    def metrics(self):
        out = {
            "studies": self.studies,
            "series": self.series,
            "instances": self.instances,
            "failed_series": self.failed_series,
            "failed_studies": self.failed_studies,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "instances_per_s": self.instances / self.seconds if self.seconds else 0.0,
            "mb_per_s": self.bytes / 1e6 / self.seconds if self.seconds else 0.0,
            "queries": self.queries,
            "capped_answers": self.capped,
            "unsplittable_answers": self.unsplittable,
            "undated_studies": self.undated,
            "retries": self.retries,
            "degraded_queries": self.degraded_queries,
            "whole_series": self.whole_series,
        }
        out.update({f"throttle_{k}": float(v) for k, v in self.throttle.items() if isinstance(v, (int, float))})
        for name, seconds in (("idle_latency", self.idle_latency), ("probe_latency", self.latencies)):
            if seconds:
                out[f"{name}_p50_ms"] = percentile(seconds, 50) * 1000
                out[f"{name}_p95_ms"] = percentile(seconds, 95) * 1000
        return out

    def format(self) -> str:
        what = "would pull" if self.check else "pulled"
        lines = [f"curate pull ({self.source_kind}, level={self.level}, {self.selection}): {what}"]
        lines.append(f"  studies {self.studies:,}  series {self.series:,}  instances {self.instances:,}")
        if self.check:
            lines.append(f"  estimated bytes {self.estimated_bytes / 1e6:,.1f} MB (from typical sizes per modality)")
            if self.extra_requests:
                lines.append(
                    f"  metadata=full costs the PACS {self.extra_requests:,} more requests (one a series)"
                    + (f", about {self.extra_bytes / 1e6:,.1f} MB of sample instances" if self.extra_bytes else "")
                )
        else:
            rate = self.instances / self.seconds if self.seconds else 0.0
            moved = f"{self.bytes / 1e6:,.1f} MB" if self.level == "images" else "metadata only"
            lines.append(
                f"  {moved} in {self.seconds:,.1f} s ({rate:,.1f} instances/s); "
                f"already done: {self.skipped_studies:,} studies, {self.skipped_series:,} series; "
                f"{self.rows_committed:,} index rows written"
            )
        lines.append(
            f"  queries {self.queries:,} (capped answers split: {self.capped:,}; unsplittable: {self.unsplittable:,})"
            + (f"; series retrieved whole, unlisted: {self.whole_series:,}" if self.whole_series else "")
        )
        if self.undated:
            lines.append(
                f"  warning: {self.undated:,} studies without a StudyDate were seen in capped answers and kept; "
                "no date query finds such studies, so the PACS may hold more of them"
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
                f"  PACS probe latency: idle p50 {percentile(idle, 50) * 1000:.1f} ms; during the pull "
                f"p50 {percentile(busy, 50) * 1000:.1f} ms, p95 {percentile(busy, 95) * 1000:.1f} ms"
            )
        if self.retries:
            lines.append(f"  {self.retries:,} transient failures retried")
        if self.degraded_queries:
            lines.append(f"  {self.degraded_queries:,} queries refused, then answered with the required keys only")
        if self.failed_studies:
            lines.append(f"  FAILED studies (their series could not be listed): {self.failed_studies:,}")
            lines += [f"    {count:,} x {reason}" for reason, count in self.study_failures]
        if self.failed_series:
            lines.append(f"  FAILED series: {self.failed_series:,}")
            lines += [f"    {count:,} x {reason}" for reason, count in self.failures]
        return "\n".join(lines)


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

    def drop(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            try:
                connection.close()
            except Exception:  # noqa: BLE001 - closing what may already be gone
                pass
            self._local.connection = None
            with self._lock:
                self._all.remove(connection)

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
        metadata: str = "query",
    ):
        self.source, self.index, self.level, self.selection = source, index, level, selection
        self.metadata = metadata
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
            recover_factor=throttle.recover_factor,
            on_pause=self.connections.cancel_all,
        )
        self.retries = retries
        self.retried = 0
        self.finder = CappedFinder(self._find, find_limit, selection.modalities)
        self.result = PullResult(source_kind=source.kind, level=level, selection=selection.describe())
        self.progress = progress
        self._lock = threading.Lock()
        self._stager: RowStager | None = None
        self._staged_series: list[tuple[str, str, int]] = []
        self._bar = None
        self.local: LocalInstances | None = None
        self._study_failures: Counter[str] = Counter()

    # --- requests, each through the throttle and retried -----------------------------------

    def _request(self, call: Callable[[Connection], object]):
        return with_retries(lambda: self._request_once(call), attempts=self.retries, on_retry=self._count_retry)

    def _request_once(self, call: Callable[[Connection], object]):
        # An association held while this thread waits would be one of the PACS's few
        # association threads, idle: let go first.
        with self.throttle.slot(idle=self.connections.release):
            try:
                return call(self.connections.get())
            except TransientError:
                self.connections.drop()  # a broken connection: the next try opens a new one
                raise

    def _count_retry(self, _: Exception) -> None:
        with self._lock:
            self.retried += 1

    def _find(self, level: str, query: Query) -> Answers:
        try:
            return self._request(lambda c: c.find(level, query))
        except QueryRefused:
            # Asked again with the keys every PACS must answer, and the matching keys: a
            # PACS may fail on a key it must read from a file it cannot read.
            fewer = {k: v for k, v in query.items() if v or k in REQUIRED_KEYS[level]}
            if fewer == dict(query):
                raise
            answers = self._request(lambda c: c.find(level, fewer))
            with self._lock:
                self.result.degraded_queries += 1
            return answers

    # --- the run ---------------------------------------------------------------------------

    def probe(self) -> float:
        """Seconds for a C-ECHO or a one-study QIDO, timed in a process of its own (see
        :mod:`curate.pull.probe`), or here for a source that cannot be described to one."""
        spec = getattr(self.source, "probe_spec", None)
        if spec is not None:
            return process_probe(spec(), getattr(self.source, "timeout", 60.0))
        return self._probe_here()

    def _probe_here(self) -> float:
        connection = self.source.connect()
        try:
            return connection.echo()
        finally:
            connection.close()

    def verify(self) -> None:
        """C-ECHO or a QIDO probe: the connection works (checked here, where a refusal has
        its own error), and the idle baseline is measured the way the probes will be."""
        try:
            with_retries(self._probe_here, attempts=2)
            idle = [with_retries(self.probe, attempts=2) for _ in range(BASELINE_PROBES)]
        except TransientError as e:
            why = str(e).removeprefix(f"{self.source.describe()}: ")
            raise PacsError(f"{self.source.describe()} cannot be reached: {why}") from None
        self.result.idle_latency = idle
        self.throttle.set_baseline(statistics.median(idle))

    def run(self, check: bool) -> PullResult:
        storage = getattr(self.source, "storage", None)  # C-MOVE's destination: curate's own SCP
        with _quiet_pydicom():
            if storage is not None and not check and self.level == "images":
                storage.start()
            try:
                return self._run(check)
            finally:
                if storage is not None:
                    storage.stop()

    def _run(self, check: bool) -> PullResult:
        started = time.perf_counter()
        self.verify()
        if not check:
            self.index.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self.index, 0o700)  # it holds PHI from the first row staged
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
                else:
                    self.local = LocalInstances.of_index(self.index, self.index / PULL_DIR / "work")
                with Ledger(ledger_path, self.source.describe(), self._depth()) as ledger, prober:
                    self._each_study(lambda study: self._study(ledger, study), ledger)
                    self.result.failures = ledger.failures()
                    self.result.study_failures = self._study_failures.most_common(20)
                self._finish()
        finally:
            self.connections.close()
            self.throttle.close()
            if self.local is not None:
                self.local.close()
        self.result.latencies = list(prober.latencies())
        self.result.throttle = self.throttle.stats()
        history = self.throttle.history
        self.result.limit_history = [(t - history[0][0], limit) for t, limit in history]
        self.result.queries = self.finder.counts.queries
        self.result.capped = self.finder.counts.capped
        self.result.unsplittable = self.finder.counts.unsplittable
        self.result.undated = self.finder.counts.undated
        self.result.retries = self.retried
        self.result.seconds = time.perf_counter() - started
        return self.result

    def _planned_studies(self) -> Iterator[Answer]:
        """The studies of the index's remote rows that `select.where` keeps, each with its
        series and instances (the PACS is not asked again what the index already says)."""
        from curate.index.store import IndexStore

        store = IndexStore(self.index)
        if not store.exists():
            raise ConfigError("select.where filters the index's remote rows: pull level=metadata into it first")
        columns = ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID"]
        where = f"status = 'remote' AND SeriesInstanceUID IS NOT NULL AND ({self.selection.where})"
        try:
            for table in store.grouped_batches(columns, "StudyInstanceUID", where=where):
                yield from _planned(table.to_pylist(), self.selection.one_per_series)
        except Exception as e:  # noqa: BLE001 - DuckDB's own errors: the SQL is the user's
            if isinstance(e, CurateError):
                raise
            raise QueryError(f"select.where cannot be run over the index: {e}") from None

    def _studies(self) -> Iterator[Answer]:
        if self.selection.where:
            yield from self._planned_studies()
            return
        # Only a CSV's queries can answer a study twice (two accessions of one study);
        # the splits of one query are disjoint, so nothing is held for them.
        seen: set[str] | None = set() if self.selection.ids else None
        for query in self.selection.study_queries(match_modalities=self.finder.find_limit == 0):
            for study in self._refused_is_an_error(self.finder.studies(query)):
                uid = value(study, "StudyInstanceUID")
                if not uid or not self.selection.wants_study(values(study, "ModalitiesInStudy")):
                    continue
                if seen is not None:
                    if uid in seen:
                        continue
                    seen.add(uid)
                yield study

    def _depth(self) -> str:
        """The ledger's name for what this pull fetches: a series done at one depth is not
        done at another."""
        return "metadata-full" if self.level == "metadata" and self.metadata == "full" else self.level

    def _refused_is_an_error(self, studies: Iterator[Answer]) -> Iterator[Answer]:
        """The studies; a refused study query stops the pull (nothing can be found)."""
        try:
            yield from studies
        except InstanceError as e:
            raise PacsError(f"{self.source.describe()} refused the study query: {e}") from None
        except TransientError as e:
            raise PacsError(f"{self.source.describe()} stopped answering the study query: {e}") from None

    def _dry_run(self) -> None:
        def count(study: Answer) -> None:
            try:
                wanted = self._wanted_series(study)
            finally:
                self.connections.release()
            with self._lock:
                for series in wanted:
                    self.result.series += 1
                    instances = _int(value(series, "NumberOfSeriesRelatedInstances")) or 0
                    self.result.instances += instances
                    typical = TYPICAL_BYTES.get(value(series, "Modality") or "", DEFAULT_BYTES)
                    self.result.estimated_bytes += instances * typical
                    if self.metadata == "full":  # one more request a series
                        self.result.extra_requests += 1
                        if self.source.kind == "dimse":
                            self.result.extra_bytes += typical

        self._each_study(count)

    def _wanted_series(self, study: Answer) -> list[Answer]:
        if PLANNED in study:
            return study[PLANNED]
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
            retrieves = self.level == "images" or self.metadata == "full"
            # The study's finds and retrievals share one association (DIMSE).
            self.connections.get().study((values(study, "SOPClassesInStudy") or []) if retrieves else None)
            self._study_series(ledger, study)
        finally:
            self.connections.release()

    def _study_series(self, ledger: Ledger, study: Answer) -> None:
        uid = value(study, "StudyInstanceUID")
        finished = True
        if self.level == "images" and not is_uid(uid):
            self._fail_study("its StudyInstanceUID is not a UID (digits and dots, at most 64)")
            return
        try:
            wanted = self._wanted_series(study)
        except (InstanceError, TransientError) as e:
            self._fail_study(_reason(e))  # its series are not known: the next pull asks again
            return
        for series in wanted:
            series_uid = value(series, "SeriesInstanceUID")
            if not series_uid:
                continue
            if self.level == "images" and not is_uid(series_uid):
                self._fail_study("a SeriesInstanceUID is not a UID (digits and dots, at most 64)")
                finished = False
                continue
            expected = value(series, "NumberOfSeriesRelatedInstances")
            with self._lock:
                self.result.series += 1
            state = ledger.queue(uid, series_uid, _int(expected))
            if state == DONE:
                with self._lock:
                    self.result.skipped_series += 1
                continue
            ledger.attempt(uid, series_uid)
            try:
                if self.level == "metadata":
                    self._series_metadata(ledger, study, series)
                    finished = False  # the study is done once its staged rows are written
                else:
                    finished &= self._series_images(ledger, study, series)
            except (InstanceError, TransientError) as e:
                ledger.failed(uid, series_uid, 0, _reason(e))
                finished = False
                with self._lock:
                    self.result.failed_series += 1
        if finished and PLANNED not in study:
            ledger.finish_study(uid, _int(value(study, "NumberOfStudyRelatedInstances")))

    def _fail_study(self, reason: str) -> None:
        with self._lock:
            self.result.failed_studies += 1
            self._study_failures[reason] += 1

    # --- metadata ----------------------------------------------------------------------------

    def _series_metadata(self, ledger: Ledger, study: Answer, series: Answer) -> None:
        study_uid, series_uid = value(study, "StudyInstanceUID"), value(series, "SeriesInstanceUID")
        instances, _ = self.finder.instances(self.selection.instance_query(study_uid, series_uid))
        headers = self._full_headers(study_uid, series_uid, instances) if self.metadata == "full" else {}
        with self._lock:
            for instance in instances:
                sop = value(instance, "SOPInstanceUID")
                if sop:
                    header = headers.get(sop) or headers.get(SAMPLE) or {}
                    self._stager.add(
                        self.source.instance_uri(study_uid, series_uid, sop), merged(header, study, series, instance)
                    )
            self._staged_series.append((study_uid, series_uid, len(instances)))
            self.result.instances += len(instances)
            if self._bar is not None:
                self._bar.update(len(instances))
            if len(self._stager) >= PART_ROWS:
                self._flush_rows(ledger)

    def _full_headers(self, study: str, series: str, instances: list[Answer]) -> dict[str, Answer]:
        """Whole headers: every instance's over DICOMweb (WADO-RS metadata, one request a
        series), or one instance's over DIMSE (one C-GET a series) standing for the rest
        (under :data:`SAMPLE`); the query answers still win where they answer."""
        if self.source.kind == "dicomweb":
            found = self._request(lambda c: c.metadata(study, series))
            return {value(a, "SOPInstanceUID"): a for a in found if value(a, "SOPInstanceUID")}
        first = min((value(i, "SOPInstanceUID") for i in instances if value(i, "SOPInstanceUID")), default=None)
        if first is None:
            return {}
        classes = [c for c in (value(i, "SOPClassUID") for i in instances) if c]
        got: list[bytes] = []
        self._request(lambda c: c.retrieve(study, series, [first], classes, lambda _, data: got.append(data)))
        if not got:
            return {}
        import io

        import pydicom

        ds = pydicom.dcmread(io.BytesIO(got[0]), stop_before_pixels=True, force=True)
        with self._lock:
            self.result.bytes += len(got[0])
        return {SAMPLE: without_bulk_data(ds.to_json_dict(bulk_data_threshold=1 << 30))}

    def _flush_rows(self, ledger: Ledger) -> None:
        """Write the staged rows as a part; only then are their series done."""
        self._stager.flush()
        for study_uid, series_uid, count in self._staged_series:
            ledger.done(study_uid, series_uid, count)
        self._staged_series.clear()

    # --- images ------------------------------------------------------------------------------

    def _series_images(self, ledger: Ledger, study: Answer, series: Answer) -> bool:
        study_uid, series_uid = value(study, "StudyInstanceUID"), value(series, "SeriesInstanceUID")
        self.store.clear_partials(study_uid, series_uid)  # a killed pull's half-written file
        if self._whole_series(ledger, study, series):
            return True
        if PLANNED in series:
            instances, capped = series[PLANNED], False
        else:
            instances, capped = self.finder.instances(self.selection.instance_query(study_uid, series_uid))
        wanted = {value(i, "SOPInstanceUID"): value(i, "SOPClassUID") for i in instances}
        wanted.pop(None, None)
        not_uids = [sop for sop in wanted if not is_uid(sop)]
        for sop in not_uids:  # nothing could tell its file from another: not fetched
            del wanted[sop]
        if self.selection.one_per_series and wanted:
            first = min(wanted)
            wanted, capped = {first: wanted[first]}, False
        local = self.local.of(series_uid) if self.local is not None else set()
        for sop in local:
            wanted.pop(sop, None)  # held as a file elsewhere in the index: not fetched again
        planned = PLANNED in series or self.selection.one_per_series
        related = 0 if planned else (_int(value(series, "NumberOfSeriesRelatedInstances")) or 0)
        expected = max(len(wanted), related - len(local))
        sop_classes = sorted({c for c in wanted.values() if c})
        sink = self._sink(study_uid, series_uid, None if capped else wanted)
        reason = None
        for _ in range(self.retries):
            held = self.store.held(study_uid, series_uid)
            missing = [sop for sop in wanted if safe_name(sop) not in held]
            if not missing and len(held) >= expected:
                break
            if self.source.kind == "dimse":
                # One retrieval: the whole series when none of it is here and all of it is
                # wanted (or its instance list was capped), else only what is missing.
                whole = capped or not (held or local or planned)
                asks = [[] if whole else missing]
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
        if not_uids:
            reason = f"{len(not_uids)} instances have a SOPInstanceUID that is not a UID: not fetched"
        elif len(held) >= expected and all(safe_name(s) in held for s in wanted):
            ledger.done(study_uid, series_uid, len(held))
            return True
        missing = max(expected - len(held), sum(safe_name(s) not in held for s in wanted))
        ledger.failed(study_uid, series_uid, len(held), reason or f"{missing} of {expected} instances did not arrive")
        with self._lock:
            self.result.failed_series += 1
        return False

    def _whole_series(self, ledger: Ledger, study: Answer, series: Answer) -> bool:
        """Over DIMSE, a series none of whose instances is here yet, and all of them
        wanted, is retrieved whole at once, with no instance-level C-FIND: the series'
        count of instances says when it is complete, and each file's own UIDs say what it
        is (the SOP classes to negotiate come from the study's answer, SOP Classes in Study).
        True when every instance arrived; else the caller asks for the instance list and
        fetches what is missing."""
        study_uid, series_uid = value(study, "StudyInstanceUID"), value(series, "SeriesInstanceUID")
        related = _int(value(series, "NumberOfSeriesRelatedInstances")) or 0
        if (
            self.source.kind != "dimse"
            or PLANNED in series
            or self.selection.one_per_series
            or related <= 0
            or (self.local is not None and self.local.of(series_uid))
            or self.store.held(study_uid, series_uid)
        ):
            return False
        classes = set(values(study, "SOPClassesInStudy") or [])
        sink = self._sink(study_uid, series_uid, None)
        try:
            # Once: a retry would fetch again what arrived before the failure.
            self._request_once(lambda c: c.retrieve(study_uid, series_uid, [], sorted(classes), sink))
        except TransientError as e:
            self._count_retry(e)
            return False  # the instance list tells what is missing, and it is retried
        except InstanceError:
            return False
        held = len(self.store.held(study_uid, series_uid))
        if held < related:
            return False
        with self._lock:
            self.result.whole_series += 1
        ledger.done(study_uid, series_uid, held)
        return True

    def _sink(self, study_uid: str, series_uid: str, wanted: dict | None) -> Callable[[str, bytes], None]:
        """What stores each instance the server sends: named by the file's own
        SOPInstanceUID, once the file is of the series asked for and (with `wanted`)
        one of the instances asked for."""

        def sink(_: str, data: bytes) -> None:
            sop = check_instance(data, study_uid, series_uid)
            if not is_uid(sop):
                raise InstanceError("the server sent an instance whose SOPInstanceUID is not a UID")
            if wanted is not None and sop not in wanted:
                raise InstanceError("the server sent an instance that was not asked for")
            try:
                self.store.write(study_uid, series_uid, sop, data)
            except OSError as e:
                raise InstanceError(f"the store cannot be written ({_errno(e)})") from None
            with self._lock:
                self.result.instances += 1
                self.result.bytes += len(data)
                if self._bar is not None:
                    self._bar.update(1)

        return sink

    # --- the end -----------------------------------------------------------------------------

    def _finish(self) -> None:
        if self.level == "metadata":
            if self._stager is None:
                return
            parts = self._stager.parts()
            with Ledger(self.index / PULL_DIR / "ledger.sqlite", self.source.describe(), self._depth()) as ledger:
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


#: Where a series' sampled header is kept, for the instances that have none of their own.
SAMPLE = "*"
#: How much a metadata pull asks: the query answers, or whole headers too.
METADATA = ("query", "full")
#: The key of a study's (or series') planned children, when the selection came from the index.
PLANNED = "planned"


def _planned(rows: list[dict], one_per_series: bool) -> Iterator[Answer]:
    """Study answers, each holding its series and their instances, from index rows of
    whole studies."""
    studies: dict[str, dict[str, list[dict]]] = {}
    for row in rows:
        studies.setdefault(row["StudyInstanceUID"], {}).setdefault(row["SeriesInstanceUID"], []).append(row)
    for study_uid, series in studies.items():
        planned = []
        for series_uid, instances in series.items():
            instances = sorted((i for i in instances if i["SOPInstanceUID"]), key=lambda i: i["SOPInstanceUID"])
            if one_per_series:
                instances = instances[:1]
            planned.append({**_answer(SeriesInstanceUID=series_uid), PLANNED: [
                _answer(SOPInstanceUID=i["SOPInstanceUID"], SOPClassUID=i["SOPClassUID"]) for i in instances
            ]})  # fmt: skip
        yield {**_answer(StudyInstanceUID=study_uid), PLANNED: planned}


def _answer(**keywords: str | None) -> Answer:
    return {tag_hex(k): {"vr": "UI", "Value": [v]} for k, v in keywords.items() if v}


class LocalInstances:
    """The SOP Instance UIDs the index holds as files, by series, in a DuckDB table sorted
    by series (so that a lookup reads one row group, at any index size)."""

    def __init__(self, con):
        self.con = con
        self._lock = threading.Lock()

    @classmethod
    def of_index(cls, index: Path, work: Path) -> LocalInstances | None:
        import duckdb

        from curate.index.store import IndexStore, limit_memory

        store = IndexStore(index)
        if not store.exists() or not {"SOPInstanceUID", "SeriesInstanceUID"} <= store.columns():
            return None
        work.mkdir(parents=True, exist_ok=True)
        database = work / "local.duckdb"
        database.unlink(missing_ok=True)
        con = duckdb.connect(str(database))
        limit_memory(con, work / "spill")
        con.execute(
            f"CREATE TABLE local AS SELECT SeriesInstanceUID AS series, SOPInstanceUID AS sop "
            f"FROM ({store.rows_sql()}) WHERE status = 'ok' AND SOPInstanceUID IS NOT NULL ORDER BY 1"
        )
        return cls(con)

    def of(self, series: str) -> set[str]:
        with self._lock:
            return {r[0] for r in self.con.execute("SELECT sop FROM local WHERE series = ?", [series]).fetchall()}

    def close(self) -> None:
        self.con.close()


@contextlib.contextmanager
def _quiet_pydicom() -> Iterator[None]:
    """pydicom warns and logs about values that break their VR, quoting them: header values
    from a PACS must not reach a log. The quality checks report such values instead."""
    from pydicom import config

    loggers = [logging.getLogger(name) for name in ("pydicom", "pynetdicom")]
    levels = [logger.level for logger in loggers]
    modes = config.settings.reading_validation_mode, config.settings.writing_validation_mode
    for logger, quiet in zip(loggers, (logging.ERROR, logging.CRITICAL), strict=True):
        logger.setLevel(max(quiet, logger.level))
    config.settings.reading_validation_mode = config.settings.writing_validation_mode = config.IGNORE
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module="pydicom")
            warnings.filterwarnings("ignore", module="pynetdicom")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
        config.settings.reading_validation_mode, config.settings.writing_validation_mode = modes


def _errno(error: OSError) -> str:
    import errno

    return errno.errorcode.get(error.errno or 0, type(error).__name__)


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text else None
    except (ValueError, TypeError):
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
    metadata: str = "query",
) -> PullResult:
    """Pull from `source` into the index at `index` (and, for images, the store at `store`).

    ``check=True`` verifies the connection and counts what would be pulled, then stops.
    ``metadata="full"`` (level=metadata) adds whole headers: WADO-RS metadata, or one
    instance of each series over DIMSE.
    """
    if metadata not in METADATA:
        raise ConfigError(f"metadata must be one of {', '.join(METADATA)}, not {metadata!r}")
    if level not in LEVELS:
        raise ConfigError(f"level must be one of {', '.join(LEVELS)}, not {level!r}")
    if level == "images" and store is None and not check:
        raise ConfigError("level=images needs store=DIR: the folder the instances are written to")
    if level == "metadata" and selection is not None and (selection.where or selection.one_per_series):
        raise ConfigError(
            "select.where and select.one_per_series choose images to retrieve: use them with level=images"
        )
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
        metadata,
    )
    return job.run(check)


__all__ = ["LEVELS", "PullResult", "ThrottleOptions", "pull"]

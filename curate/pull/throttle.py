"""The throttle that keeps a pull gentle on a hospital PACS.

A PACS that is busy serving a pull is slow for the radiologists reading on it, so every
request of a pull goes through one :class:`Throttle`, which holds it back until

* a permitted time window is open (nights, weekends: :mod:`curate.pull.windows`),
* fewer requests than the current concurrency limit are in flight, and
* the request rate limit allows one more.

The concurrency limit adapts to how the PACS is doing: a :class:`Prober` sends a small probe
query every fraction of a second and the throttle compares its response time with the idle
baseline, backing off when the PACS slows down and growing again when it recovers.

All waiting for time goes through a :class:`Clock`, in short sleeps, so a fake clock drives
the throttle in tests and a closed throttle releases its waiters within one sleep.
"""

from __future__ import annotations

import logging
import math
import statistics
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Protocol

from curate.errors import ConfigError
from curate.pull.windows import TimeWindows

log = logging.getLogger(__name__)

# A probe answered faster than this is measured mostly as timer noise: a baseline below it
# would make every ordinary jitter look like a slow-down.
_MIN_BASELINE_S = 1e-3
# A wait for a window re-reads the wall clock at least this often, so a clock set by NTP
# (or by hand) during a night-long wait is noticed.
_WINDOW_RECHECK_S = 300.0
# Decisions always present in stats(), so a summary has the same shape on every run.
_EVENT_NAMES = (
    "slot",
    "slot_wait",
    "rate_wait",
    "window_pause",
    "window_resume",
    "probe",
    "probe_failed",
    "slow",
    "backoff",
    "grow",
)


def percentile(values: Sequence[float], q: float) -> float:
    """The `q`-th percentile of `values` by nearest rank: the smallest value that at least
    `q`% of them do not exceed (always one of the values; a median of an even count is the
    lower middle one). The one definition the pull's summaries use."""
    if not values:
        raise ValueError("no values to take a percentile of")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


class Clock(Protocol):
    """Time as the throttle sees it: a monotonic clock for intervals, the wall clock for
    windows, and a sleep that a fake clock can turn into advancing its time."""

    def monotonic(self) -> float: ...

    def now(self) -> datetime: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class ThrottleClosed(RuntimeError):
    """The throttle was closed while a caller waited for it: the pull is stopping."""


class Throttle:
    """Admission control for the requests of one pull; safe to share between threads.

    ``max_concurrency``/``min_concurrency`` bound the adaptive concurrency limit (it starts
    at the maximum), ``rate`` caps requests per second (None: no cap), ``windows`` are the
    permitted time windows (None: always). The back-off is tuned by ``slow_factor`` (a probe
    this many times the baseline is slow), ``recover_factor`` (below this many times is
    healthy), ``recover_probes`` and ``baseline_probes``; see :meth:`observe`.

    ``on_pause``/``on_resume`` are called (from whichever thread notices, outside the lock)
    when a window closes or opens, e.g. for a DIMSE caller to send C-CANCEL for a move in
    progress. ``poll_s`` is the longest single sleep, i.e. how soon :meth:`close` is noticed.
    """

    def __init__(
        self,
        max_concurrency: int = 4,
        min_concurrency: int = 1,
        rate: float | None = None,
        windows: TimeWindows | Sequence[str] | None = None,
        clock: Clock | None = None,
        slow_factor: float = 2.0,
        recover_factor: float = 1.3,
        recover_probes: int = 3,
        baseline_probes: int = 5,
        *,
        on_pause: Callable[[], object] | None = None,
        on_resume: Callable[[], object] | None = None,
        poll_s: float = 1.0,
    ) -> None:
        if not 1 <= min_concurrency <= max_concurrency:
            raise ConfigError(
                f"pull concurrency must satisfy 1 <= min <= max, got min {min_concurrency}, max {max_concurrency}"
            )
        if rate is not None and not rate > 0:
            raise ConfigError(f"pull rate must be a positive number of requests per second, got {rate!r}")
        if not 1 <= recover_factor < slow_factor:
            raise ConfigError(
                f"pull back-off needs 1 <= recover_factor < slow_factor, got {recover_factor!r} and {slow_factor!r}"
            )
        if recover_probes < 1 or baseline_probes < 1:
            raise ConfigError(
                f"pull back-off needs at least one probe, got recover_probes {recover_probes!r}, "
                f"baseline_probes {baseline_probes!r}"
            )
        if not poll_s > 0:
            raise ConfigError(f"poll_s must be positive, got {poll_s!r}")
        if windows is not None and not isinstance(windows, TimeWindows):
            windows = TimeWindows.parse(windows)
        self._windows = None if windows is None or windows.always_open else windows
        self._clock: Clock = clock or SystemClock()
        self._min = min_concurrency
        self._max = max_concurrency
        self._interval = 1.0 / rate if rate is not None else 0.0
        self._slow_factor = slow_factor
        self._recover_factor = recover_factor
        self._recover_probes = recover_probes
        self._baseline_probes = baseline_probes
        self._on_pause = on_pause
        self._on_resume = on_resume
        self._poll_s = poll_s

        self._cond = threading.Condition()
        self._closed = False
        self._in_flight = 0
        self._limit = max_concurrency
        self._next_start = -math.inf  # monotonic time the next request may start (rate limit)
        self._paused = False
        self._events: Counter[str] = Counter()
        self._history = [(self._clock.monotonic(), self._limit)]  # starts with the initial limit
        self._lowest = self._highest = self._limit
        self._baseline: float | None = None
        self._warmup: list[float] = []
        self._fast_streak = 0
        self._cooldown = 0

    # -- state --------------------------------------------------------------------------

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def windows(self) -> TimeWindows | None:
        """The permitted windows; None when always open."""
        return self._windows

    @property
    def limit(self) -> int:
        """The current concurrency limit."""
        with self._cond:
            return self._limit

    @property
    def in_flight(self) -> int:
        """Requests holding a slot now."""
        with self._cond:
            return self._in_flight

    @property
    def baseline(self) -> float | None:
        """The idle probe latency in seconds; None until measured."""
        with self._cond:
            return self._baseline

    @property
    def events(self) -> Counter[str]:
        """How often each decision was taken (a copy)."""
        with self._cond:
            return Counter(self._events)

    @property
    def history(self) -> list[tuple[float, int]]:
        """(monotonic time, limit) at the start and at each change of the limit (a copy)."""
        with self._cond:
            return list(self._history)

    def stats(self) -> dict[str, float | int | None]:
        """Decision counts, the current, lowest and highest limit and the baseline, for the run's summary."""
        with self._cond:
            out: dict[str, float | int | None] = {name: self._events.get(name, 0) for name in _EVENT_NAMES}
            out.update(self._events)
            out.update(limit=self._limit, min_limit=self._lowest, max_limit=self._highest, baseline_s=self._baseline)
            return out

    # -- admission ----------------------------------------------------------------------

    @contextmanager
    def slot(self, idle: Callable[[], None] | None = None) -> Iterator[None]:
        """Hold one request slot: waits for an open window, a free slot and the rate limit.
        `idle` is called before a long wait (:meth:`_waits_long`): a caller lets go there
        of what it holds on the server, such as an association."""
        self._acquire(idle)
        try:
            yield
        finally:
            self._release()

    def close(self) -> None:
        """Stop admitting: every caller waiting now or later raises :class:`ThrottleClosed`.
        Slots already held are unaffected."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def in_window(self) -> bool:
        """Whether a permitted window is open now."""
        return self._windows is None or self._windows.is_open(self._clock.now())

    def window_closes_at(self) -> datetime | None:
        """When the current window closes (now, if it is closed); None when always open.
        Long transfers compare it with ``clock.now()`` between requests."""
        if self._windows is None:
            return None
        return self._windows.closes_at(self._clock.now())

    def poll_window(self) -> bool:
        """Like :meth:`in_window`, and also notes a window closing or opening (counting it and
        calling ``on_pause``/``on_resume``) when no request is waiting to notice it."""
        is_open = self.in_window()
        self._window_changed(is_open)
        return is_open

    def wait_open(self) -> None:
        """Block until a permitted window is open (for callers that only need the window)."""
        if self._windows is None:
            self._check_closed()
            return
        while True:
            self._check_closed()
            now = self._clock.now()
            is_open = self._windows.is_open(now)
            self._window_changed(is_open)
            if is_open:
                return
            wait = (self._windows.next_open(now) - now).total_seconds()
            # At least a millisecond, so a fake clock whose time rounds to just before the
            # opening still moves on; at most a few minutes, to re-read the wall clock.
            self._sleep(min(max(wait, 1e-3), _WINDOW_RECHECK_S))

    def _acquire(self, idle: Callable[[], None] | None = None) -> None:
        while True:
            if idle is not None and self._waits_long():
                idle()  # outside the lock: letting go may talk to the server
            self.wait_open()
            with self._cond:
                if self._in_flight >= self._limit and not self._closed:
                    self._events["slot_wait"] += 1
                    while self._in_flight >= self._limit and not self._closed:
                        self._cond.wait()
                self._check_closed()
                self._in_flight += 1
                start = None
                if self._interval:
                    # Minimal spacing between request starts (a token bucket of burst 1):
                    # N requests take (N - 1) / rate seconds however many threads ask.
                    now = self._clock.monotonic()
                    start = max(self._next_start, now)
                    self._next_start = start + self._interval
                    if start > now:
                        self._events["rate_wait"] += 1
            try:
                if start is not None:
                    self._sleep_until(start)
                # The window may have closed while this request waited for a slot.
                if self._windows is None or self.poll_window():
                    with self._cond:
                        self._events["slot"] += 1
                    return
            except BaseException:
                self._release()
                raise
            self._release()

    def _waits_long(self) -> bool:
        """Whether a request asking now would wait for long: for a closed window to open,
        or for a slot while the limit is backed off (the server is slow). At the full limit
        a slot frees as soon as one of the pull's own requests ends."""
        with self._cond:
            if self._closed:
                return False  # no wait: the caller is turned away
            if self._in_flight >= self._limit and self._limit < self._max:
                return True
        return not self.in_window()

    def _release(self) -> None:
        with self._cond:
            self._in_flight -= 1
            self._cond.notify()

    def _window_changed(self, is_open: bool) -> None:
        callback = None
        with self._cond:
            if is_open and self._paused:
                self._paused = False
                self._events["window_resume"] += 1
                callback = self._on_resume
            elif not is_open and not self._paused:
                self._paused = True
                self._events["window_pause"] += 1
                callback = self._on_pause
        if callback is not None:
            try:
                callback()
            except Exception:  # a failed cancel must not take the worker thread down with it
                log.exception("pull window callback failed")
                with self._cond:
                    self._events["callback_failed"] += 1

    def _check_closed(self) -> None:
        if self._closed:
            raise ThrottleClosed("the pull throttle was closed")

    def _sleep(self, seconds: float) -> None:
        self._sleep_until(self._clock.monotonic() + seconds)

    def _sleep_until(self, deadline: float) -> None:
        """Sleep through the clock in steps of at most ``poll_s``, noticing :meth:`close`."""
        while True:
            self._check_closed()
            remaining = deadline - self._clock.monotonic()
            if remaining <= 0:
                return
            self._clock.sleep(min(max(remaining, 1e-6), self._poll_s))

    # -- adaptive back-off --------------------------------------------------------------

    def set_baseline(self, seconds: float) -> None:
        """Set the idle probe latency, measured before the pull started, instead of taking
        it from the first probes. Anything under a millisecond counts as one millisecond."""
        if not seconds >= 0:
            raise ValueError(f"a probe baseline must be non-negative seconds, got {seconds!r}")
        with self._cond:
            self._baseline = max(seconds, _MIN_BASELINE_S)
            self._warmup.clear()

    def observe(self, latency_s: float) -> None:
        """Feed the response time of one probe query; adjusts the concurrency limit.

        This is AIMD, as in TCP congestion control: the limit is halved when the PACS is
        slow and grows by one when it is healthy, so the pull quickly leaves room for the
        clinical users and only slowly takes it back.

        * The first ``baseline_probes`` probes (unless :meth:`set_baseline` was called) set
          the idle baseline, their median.
        * A probe slower than ``slow_factor`` x baseline halves the limit (not below the
          minimum), at most once per ``recover_probes`` probes: the requests already in flight
          keep the PACS busy for a while after a halving, and the probes in that time would
          otherwise collapse the limit to the minimum at the first slow burst.
        * ``recover_probes`` probes in a row faster than ``recover_factor`` x baseline grow
          the limit by one (not above the maximum). A probe in between breaks the streak.
        """
        if not latency_s >= 0:
            raise ValueError(f"a probe latency must be non-negative seconds, got {latency_s!r}")
        with self._cond:
            self._events["probe"] += 1
            if self._baseline is None:
                self._warmup.append(latency_s)
                if len(self._warmup) >= self._baseline_probes:
                    self._baseline = max(statistics.median(self._warmup), _MIN_BASELINE_S)
                    self._warmup.clear()
                return
            self._judge(
                slow=latency_s > self._slow_factor * self._baseline,
                fast=latency_s < self._recover_factor * self._baseline,
            )

    def observe_failure(self) -> None:
        """A probe that failed (timed out, refused): counted, and treated as a slow probe,
        also before the baseline is known."""
        with self._cond:
            self._events["probe_failed"] += 1
            self._judge(slow=True, fast=False)

    def _judge(self, slow: bool, fast: bool) -> None:
        if self._cooldown:
            self._cooldown -= 1
        if slow:
            self._fast_streak = 0
            self._events["slow"] += 1
            if not self._cooldown and self._limit > self._min:
                self._set_limit(max(self._min, self._limit // 2))
                self._events["backoff"] += 1
                self._cooldown = self._recover_probes
        elif fast:
            self._fast_streak += 1
            if self._fast_streak >= self._recover_probes:
                self._fast_streak = 0
                if self._limit < self._max:
                    self._set_limit(self._limit + 1)
                    self._events["grow"] += 1
        else:
            self._fast_streak = 0

    def _set_limit(self, limit: int) -> None:
        self._limit = limit
        self._history.append((self._clock.monotonic(), limit))
        self._lowest = min(self._lowest, limit)
        self._highest = max(self._highest, limit)
        self._cond.notify_all()


class Prober:
    """A daemon thread that sends a probe every ``interval`` seconds and feeds the throttle.

    ``probe`` does one small query (a C-ECHO or a one-study C-FIND) and returns its response
    time in seconds; an exception counts as ``probe_failed`` and as a slow probe. No probes
    are sent while the window is closed, but window changes are still noticed (so the
    throttle's ``on_pause`` fires even when every worker is busy with a long transfer).
    The last ``keep`` latencies are kept for the run's summary.
    """

    def __init__(
        self,
        probe: Callable[[], float],
        throttle: Throttle,
        interval: float = 0.2,
        clock: Clock | None = None,
        keep: int = 10_000,
    ) -> None:
        if not interval > 0:
            raise ConfigError(f"probe interval must be positive seconds, got {interval!r}")
        self._probe = probe
        self._throttle = throttle
        self._interval = interval
        self._clock = clock or throttle.clock
        self._latencies: deque[float] = deque(maxlen=keep)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Prober:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="curate-pull-prober", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop probing; waits for the probe in progress (up to ``timeout`` seconds)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def __enter__(self) -> Prober:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def probe_once(self) -> float | None:
        """Send one probe now and feed the throttle; the latency, or None if it failed."""
        try:
            latency = float(self._probe())
        except Exception as exc:
            log.debug("pull probe failed: %s", exc)
            latency = math.nan
        if not latency >= 0:  # an exception, NaN or a negative time: no usable answer
            self._throttle.observe_failure()
            return None
        with self._lock:
            self._latencies.append(latency)
        self._throttle.observe(latency)
        return latency

    def latencies(self) -> list[float]:
        """The kept probe latencies in seconds, oldest first."""
        with self._lock:
            return list(self._latencies)

    def summary(self) -> dict[str, float | int | None]:
        """Probe count, median and 95th percentile (:func:`percentile`) of the kept latencies."""
        values = self.latencies()
        if not values:
            return {"probes": 0, "median_s": None, "p95_s": None}
        return {"probes": len(values), "median_s": percentile(values, 50), "p95_s": percentile(values, 95)}

    def _run(self) -> None:
        next_at = self._clock.monotonic()
        while not self._stop.is_set():
            try:
                if self._throttle.poll_window():
                    self.probe_once()
            except Exception:  # keep probing: a broken probe must not silently end the back-off
                log.exception("pull prober step failed")
            next_at += self._interval
            now = self._clock.monotonic()
            if next_at < now:  # a probe took longer than the interval: do not burst to catch up
                next_at = now
            elif not self._stop.is_set():
                self._clock.sleep(next_at - now)

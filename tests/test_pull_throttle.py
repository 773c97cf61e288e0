"""The pull stage's time windows and throttle: wall-clock windows across midnight and clock
changes, and the throttle's concurrency, rate, window and back-off decisions, driven by a
fake clock so that nothing waits for real time."""

from __future__ import annotations

import random
import re
import threading
import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from curate.errors import ConfigError
from curate.pull.throttle import Prober, SystemClock, Throttle, ThrottleClosed, percentile
from curate.pull.windows import TimeWindows

BERLIN = ZoneInfo("Europe/Berlin")
UTC = timezone.utc


class FakeClock:
    """A clock whose time moves only when someone sleeps on it (or the test advances it)."""

    def __init__(self, start: datetime) -> None:
        self._lock = threading.Lock()
        self._mono = 1000.0
        self._now = start.astimezone(UTC)
        self.slept = 0.0

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)
        with self._lock:
            self.slept += seconds
        time.sleep(0)  # let other threads run, as a real sleep would

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._mono += seconds
            self._now += timedelta(seconds=seconds)


def berlin(*args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=BERLIN, fold=fold)


def real_seconds(start: datetime, end: datetime) -> float:
    """Elapsed real time; subtracting two datetimes of one zone would give wall-clock time."""
    return (end.astimezone(UTC) - start.astimezone(UTC)).total_seconds()


def wait_for(condition, timeout: float = 5.0) -> None:
    """Wait for another thread to get somewhere; the timeout only guards against a hang."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the other threads"
        time.sleep(0.001)


# -- windows -----------------------------------------------------------------------------
# January 2026: Thursday the 1st, so Friday 16, Saturday 17, Sunday 18, Monday 19.


def test_weekday_window_runs_across_midnight_into_the_next_day() -> None:
    windows = TimeWindows.parse(["mon-fri 19:00-07:00"], "Europe/Berlin")
    assert not windows.is_open(berlin(2026, 1, 16, 18, 59, 59))
    assert windows.is_open(berlin(2026, 1, 16, 19))
    assert windows.is_open(berlin(2026, 1, 17, 6, 59, 59))  # Saturday morning: Friday's window
    assert not windows.is_open(berlin(2026, 1, 17, 7))
    assert not windows.is_open(berlin(2026, 1, 17, 20))  # no Saturday window
    assert not windows.is_open(berlin(2026, 1, 19, 6))  # no Sunday window to run into Monday
    assert windows.is_open(berlin(2026, 1, 19, 19))
    assert windows.is_open(berlin(2026, 1, 20, 3))
    assert windows.closes_at(berlin(2026, 1, 16, 23)) == berlin(2026, 1, 17, 7)


def test_day_ranges_wrap_and_lists_combine() -> None:
    wrapped = TimeWindows.parse(["fri-mon 10:00-11:00"], "Europe/Berlin")
    open_days = {day for day in range(16, 23) if wrapped.is_open(berlin(2026, 1, day, 10, 30))}
    assert open_days == {16, 17, 18, 19}  # Friday to Monday
    listed = TimeWindows.parse(["Tuesday, thu 10:00-11:00", "sat,sun 12:00-13:00"], "Europe/Berlin")
    assert {day for day in range(16, 23) if listed.is_open(berlin(2026, 1, day, 10, 30))} == {20, 22}
    assert {day for day in range(16, 23) if listed.is_open(berlin(2026, 1, day, 12, 30))} == {17, 18}
    daily = TimeWindows.parse(["daily 22:00-06:00"], "Europe/Berlin")
    assert all(daily.is_open(berlin(2026, 1, day, 23)) for day in range(16, 23))
    assert not any(daily.is_open(berlin(2026, 1, day, 12)) for day in range(16, 23))


def test_24_00_end_and_touching_windows_merge() -> None:
    weekend = TimeWindows.parse(["sat,sun 00:00-24:00"], "Europe/Berlin")
    assert not weekend.is_open(berlin(2026, 1, 16, 23, 59, 59))
    assert weekend.is_open(berlin(2026, 1, 17, 0))
    assert weekend.is_open(berlin(2026, 1, 18, 23, 59, 59))
    assert not weekend.is_open(berlin(2026, 1, 19, 0))
    assert weekend.closes_at(berlin(2026, 1, 17, 10)) == berlin(2026, 1, 19, 0)  # Saturday and Sunday as one

    evening = TimeWindows.parse(["mon 19:00-24:00", "mon 08:00-09:30"], "Europe/Berlin")
    assert evening.is_open(berlin(2026, 1, 19, 9, 29, 59))
    assert not evening.is_open(berlin(2026, 1, 19, 9, 30))
    assert evening.closes_at(berlin(2026, 1, 19, 20)) == berlin(2026, 1, 20, 0)
    assert evening.next_open(berlin(2026, 1, 19, 10)) == berlin(2026, 1, 19, 19)

    site = TimeWindows.parse(["mon-fri 19:00-07:00", "sat,sun 00:00-24:00"], "Europe/Berlin")
    assert site.closes_at(berlin(2026, 1, 16, 20)) == berlin(2026, 1, 19, 0)
    assert site.next_open(berlin(2026, 1, 19, 0)) == berlin(2026, 1, 19, 19)


def test_window_on_the_night_the_clocks_go_forward_is_two_hours() -> None:
    windows = TimeWindows.parse(["daily 01:00-04:00"], "Europe/Berlin")
    opens = windows.next_open(berlin(2026, 3, 28, 12))
    closes = windows.closes_at(opens)
    assert opens == datetime(2026, 3, 29, 0, tzinfo=UTC)  # 01:00 CET
    assert closes == datetime(2026, 3, 29, 2, tzinfo=UTC)  # 04:00 CEST
    assert real_seconds(opens, closes) == 2 * 3600
    assert not windows.is_open(opens - timedelta(seconds=1))
    assert windows.is_open(opens)
    assert windows.is_open(closes - timedelta(seconds=1))
    assert not windows.is_open(closes)


def test_window_on_the_night_the_clocks_go_back_is_four_hours() -> None:
    windows = TimeWindows.parse(["daily 01:00-04:00"], "Europe/Berlin")
    opens = windows.next_open(berlin(2026, 10, 24, 12))
    closes = windows.closes_at(opens)
    assert opens == datetime(2026, 10, 24, 23, tzinfo=UTC)  # 01:00 CEST
    assert closes == datetime(2026, 10, 25, 3, tzinfo=UTC)  # 04:00 CET
    assert real_seconds(opens, closes) == 4 * 3600
    assert windows.is_open(berlin(2026, 10, 25, 2, 30, fold=0))  # both readings of 02:30
    assert windows.is_open(berlin(2026, 10, 25, 2, 30, fold=1))
    assert windows.is_open(closes - timedelta(seconds=1))
    assert not windows.is_open(closes)
    assert not windows.is_open(opens - timedelta(seconds=1))


def test_wall_times_the_clock_skips_or_repeats() -> None:
    # A start in the gap (02:00-03:00 does not happen on 29 March) opens at the end of the gap.
    gap = TimeWindows.parse(["sun 02:30-05:00"], "Europe/Berlin")
    assert gap.next_open(berlin(2026, 3, 29, 0)) == datetime(2026, 3, 29, 1, tzinfo=UTC)  # 03:00 CEST
    # An end in the gap closes at the end of the gap too.
    ends = TimeWindows.parse(["sat 22:00-02:30"], "Europe/Berlin")
    assert ends.closes_at(berlin(2026, 3, 28, 23)) == datetime(2026, 3, 29, 1, tzinfo=UTC)
    # A wall time that happens twice (25 October) means its first reading.
    assert gap.next_open(berlin(2026, 10, 25, 0)) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert gap.closes_at(berlin(2026, 10, 25, 3)) == datetime(2026, 10, 25, 4, tzinfo=UTC)
    # A window entirely inside the gap never opens that night, and opens the next week.
    never = TimeWindows.parse(["sun 02:10-02:50"], "Europe/Berlin")
    assert never.next_open(berlin(2026, 3, 29, 0)) == berlin(2026, 4, 5, 2, 10)


def test_next_open_from_inside_and_outside_in_any_zone() -> None:
    windows = TimeWindows.parse(["mon-fri 19:00-07:00"], "Europe/Berlin")
    inside = datetime(2026, 1, 16, 22, tzinfo=UTC)
    assert windows.next_open(inside) is inside
    outside = datetime(2026, 1, 17, 12, tzinfo=UTC)  # Saturday noon
    opens = windows.next_open(outside)
    assert opens == berlin(2026, 1, 19, 19)
    assert opens.tzinfo is UTC
    assert windows.closes_at(outside) is outside  # closed: it has closed already


def test_no_windows_or_full_cover_means_always_open() -> None:
    when = datetime(2026, 1, 17, 12, tzinfo=UTC)
    for specs in (
        [],
        ["daily 00:00-24:00"],
        ["daily 07:00-07:00"],
        ["mon-fri 08:00-20:00", "daily 20:00-08:00", "sat,sun 08:00-20:00"],
    ):
        windows = TimeWindows.parse(specs, "Europe/Berlin")
        assert windows.always_open, specs
        assert windows.is_open(when)
        assert windows.next_open(when) is when
        assert windows.closes_at(when) is None
    assert not TimeWindows.parse(["mon-fri 08:00-20:00", "daily 20:00-08:00"], "Europe/Berlin").always_open
    assert TimeWindows.parse([], "Europe/Berlin").describe() == "always open"


def test_describe_is_canonical() -> None:
    windows = TimeWindows.parse(["MON-fri 19:00 - 7:00", "sun, sat 0:00-24:00", "fri-mon 1:00-2:00"], "Europe/Berlin")
    assert windows.describe() == ("mon-fri 19:00-07:00; sat,sun 00:00-24:00; fri-mon 01:00-02:00 (Europe/Berlin)")
    assert TimeWindows.parse("daily 22:00-06:00", "UTC").describe() == "daily 22:00-06:00 (UTC)"


def test_local_zone_follows_tz(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    windows = TimeWindows.parse(["daily 09:00-10:00"])
    assert windows.zone_name == "Asia/Tokyo"
    assert windows.is_open(datetime(2026, 1, 17, 0, 30, tzinfo=UTC))  # 09:30 in Tokyo


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        TimeWindows.parse(["daily 01:00-02:00"], "UTC").is_open(datetime(2026, 1, 1, 1, 30))


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ("", "DAYS HH:MM-HH:MM"),
        ("mon", "DAYS HH:MM-HH:MM"),
        ("mon 19:00", "DAYS HH:MM-HH:MM"),
        ("mon 7pm-8am", "DAYS HH:MM-HH:MM"),
        ("mon 19:00-07:00 extra", "DAYS HH:MM-HH:MM"),
        ("19:00-07:00", "names no days"),
        ("mox 19:00-07:00", "unknown day 'mox'"),
        ("weekdays 19:00-07:00", "unknown day 'weekdays'"),
        ("mon-fri-sat 01:00-02:00", "more than two ends"),
        ("mon,,tue 01:00-02:00", "empty day"),
        ("mon 25:00-07:00", "not a time of day"),
        ("mon 19:60-07:00", "not a time of day"),
        ("mon 19:00-24:01", "not a time of day"),
        ("mon 24:00-07:00", "only as an end"),
    ],
)
def test_bad_spec_names_the_spec_and_the_problem(spec: str, why: str) -> None:
    with pytest.raises(ConfigError) as caught:
        TimeWindows.parse(["daily 01:00-02:00", spec], "UTC")
    assert repr(spec) in str(caught.value)
    assert why in str(caught.value)


def test_unknown_zone_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=re.escape("'Mars/Olympus_Mons'")):
        TimeWindows.parse(["daily 01:00-02:00"], "Mars/Olympus_Mons")


# -- throttle: admission -------------------------------------------------------------------


def test_concurrency_never_exceeds_the_limit_with_real_threads() -> None:
    throttle = Throttle(max_concurrency=4, clock=SystemClock())
    lock = threading.Lock()
    inside = peak = 0
    together = threading.Barrier(8)  # all eight contend, however the threads are scheduled

    def work() -> None:
        nonlocal inside, peak
        together.wait(timeout=30)
        for _ in range(25):
            with throttle.slot():
                with lock:
                    inside += 1
                    peak = max(peak, inside)
                time.sleep(0.0005)
                with lock:
                    inside -= 1

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert 1 < peak <= 4
    assert throttle.in_flight == 0
    assert throttle.events["slot"] == 200
    assert throttle.events["slot_wait"] > 0


def test_a_lowered_limit_holds_new_requests_until_enough_finish() -> None:
    throttle = Throttle(max_concurrency=4, clock=SystemClock())
    throttle.set_baseline(0.010)
    gates = [threading.Event() for _ in range(5)]
    entered: list[int] = []

    def work(i: int) -> None:
        with throttle.slot():
            entered.append(i)
            gates[i].wait(10)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(5)]
    for thread in threads:
        thread.start()
    wait_for(lambda: len(entered) == 4 and throttle.events["slot_wait"] == 1)
    time.sleep(0.02)
    assert len(entered) == 4 and throttle.in_flight == 4  # the fifth waits for a slot

    throttle.observe(0.050)  # slow: halve to 2
    assert throttle.limit == 2
    for n, i in enumerate(entered[:2], start=1):
        gates[i].set()
        wait_for(lambda n=n: throttle.in_flight == 4 - n)
    time.sleep(0.02)
    assert len(entered) == 4  # two still in flight: at the new limit, nobody new may start
    gates[entered[2]].set()
    wait_for(lambda: len(entered) == 5)
    assert throttle.in_flight == 2
    for gate in gates:
        gate.set()
    for thread in threads:
        thread.join()
    assert throttle.in_flight == 0


def test_rate_limit_spaces_requests_on_the_fake_clock() -> None:
    clock = FakeClock(berlin(2026, 1, 14, 12))
    throttle = Throttle(rate=5, clock=clock)
    starts = []
    for _ in range(11):
        with throttle.slot():
            starts.append(clock.monotonic())
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert gaps == pytest.approx([0.2] * 10)
    assert clock.slept == pytest.approx(10 / 5)
    assert throttle.events["rate_wait"] == 10
    clock.advance(5)  # idle time earns no burst: one request at once, the next after 0.2 s
    with throttle.slot():
        pass
    with throttle.slot():
        pass
    assert clock.slept == pytest.approx(2.2)


def test_rate_limit_holds_across_threads() -> None:
    clock = FakeClock(berlin(2026, 1, 14, 12))
    throttle = Throttle(max_concurrency=4, rate=20, clock=clock)
    begin = clock.monotonic()

    def work() -> None:
        for _ in range(10):
            with throttle.slot():
                pass

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert clock.monotonic() - begin >= 39 / 20 - 1e-9  # 40 starts, 1/20 s apart
    assert throttle.events["slot"] == 40


def test_window_pause_then_resume_on_the_fake_clock() -> None:
    clock = FakeClock(berlin(2026, 1, 14, 6, 59, 59))  # a Wednesday
    calls: list[str] = []
    throttle = Throttle(
        windows=TimeWindows.parse(["daily 07:00-19:00"], "Europe/Berlin"),
        clock=clock,
        on_pause=lambda: calls.append("pause"),
        on_resume=lambda: calls.append("resume"),
    )
    assert not throttle.in_window()
    with throttle.slot():
        assert clock.now() == berlin(2026, 1, 14, 7)
    assert clock.slept == pytest.approx(1.0)
    assert calls == ["pause", "resume"]
    assert throttle.events["window_pause"] == 1 and throttle.events["window_resume"] == 1
    assert throttle.window_closes_at() == berlin(2026, 1, 14, 19)


def test_what_a_caller_holds_is_let_go_before_a_long_wait_only() -> None:
    clock = FakeClock(berlin(2026, 1, 14, 6, 59, 59))
    throttle = Throttle(
        max_concurrency=2,
        windows=TimeWindows.parse(["mon-fri 19:00-07:00"], "Europe/Berlin"),
        clock=clock,
        poll_s=3600,
    )
    throttle.set_baseline(0.010)
    idled: list[str] = []
    done = threading.Event()

    def hold(name: str) -> None:
        with throttle.slot(idle=lambda: idled.append(name)):
            done.wait(10)

    holders = [threading.Thread(target=hold, args=(name,)) for name in ("first", "second")]
    for thread in holders:
        thread.start()
    wait_for(lambda: throttle.in_flight == 2)
    assert idled == []  # free slots in an open window: nothing to let go
    at_full = threading.Thread(target=hold, args=("at the full limit",))
    at_full.start()
    wait_for(lambda: throttle.events["slot_wait"] == 1)
    assert idled == []  # a slot frees as soon as one of the pull's requests ends
    throttle.observe(0.050)  # the server is slow: the limit is halved
    backed_off = threading.Thread(target=hold, args=("backed off",))
    backed_off.start()
    wait_for(lambda: throttle.events["slot_wait"] == 2)
    assert idled == ["backed off"]  # a wait as long as the server is slow
    done.set()
    for thread in [*holders, at_full, backed_off]:
        thread.join(10)
    clock.advance(1)  # the window closes
    with throttle.slot(idle=lambda: idled.append("night")):
        assert clock.now() == berlin(2026, 1, 14, 19)
    assert idled == ["backed off", "night"]  # let go before the night's wait


def test_window_closing_pauses_until_it_opens_again() -> None:
    clock = FakeClock(berlin(2026, 1, 14, 6, 59, 59))
    calls: list[str] = []
    throttle = Throttle(
        windows=TimeWindows.parse(["mon-fri 19:00-07:00"], "Europe/Berlin"),
        clock=clock,
        on_pause=lambda: calls.append("pause"),
        on_resume=lambda: calls.append("resume"),
        poll_s=60,  # a twelve-hour wait in minute steps rather than 43,200 one-second ones
    )
    with throttle.slot():  # still open: no wait
        assert throttle.window_closes_at() == berlin(2026, 1, 14, 7)
    assert clock.slept == 0
    clock.advance(1)
    assert not throttle.in_window()
    assert throttle.poll_window() is False  # noticed without a request, e.g. by the prober
    assert calls == ["pause"]
    throttle.wait_open()
    assert clock.now() == berlin(2026, 1, 14, 19)
    assert clock.slept == pytest.approx(12 * 3600)
    assert calls == ["pause", "resume"]
    assert throttle.events["window_pause"] == 1 and throttle.events["window_resume"] == 1


def test_a_window_that_closes_while_waiting_for_a_slot_pauses_the_request() -> None:
    clock = FakeClock(berlin(2026, 1, 14, 18, 59, 59))
    throttle = Throttle(
        max_concurrency=1, windows=TimeWindows.parse(["daily 07:00-19:00"], "Europe/Berlin"), clock=clock, poll_s=60
    )
    started: list[datetime] = []

    def work() -> None:
        with throttle.slot():
            started.append(clock.now())

    with throttle.slot():
        thread = threading.Thread(target=work)
        thread.start()
        wait_for(lambda: throttle.events["slot_wait"] == 1)
        clock.advance(2)  # 19:00:01: closed by the time the slot comes free
    thread.join(5)
    assert started == [berlin(2026, 1, 15, 7)]
    assert throttle.events["window_pause"] == 1 and throttle.events["window_resume"] == 1


def test_a_failing_window_callback_does_not_stop_the_request() -> None:
    def cancel() -> None:
        raise ConnectionResetError("C-CANCEL failed")

    clock = FakeClock(berlin(2026, 1, 14, 6, 59))
    throttle = Throttle(windows=TimeWindows.parse(["daily 07:00-19:00"], "Europe/Berlin"), clock=clock, on_pause=cancel)
    with throttle.slot():
        assert clock.now() == berlin(2026, 1, 14, 7)
    assert throttle.events["callback_failed"] == 1


def test_close_releases_a_waiting_caller() -> None:
    throttle = Throttle(max_concurrency=1, clock=SystemClock())
    outcome: list[str] = []

    def work() -> None:
        try:
            with throttle.slot():
                outcome.append("ran")
        except ThrottleClosed:
            outcome.append("closed")

    with throttle.slot():
        thread = threading.Thread(target=work)
        thread.start()
        wait_for(lambda: throttle.events["slot_wait"] == 1)
        throttle.close()
        thread.join(5)
    assert outcome == ["closed"]
    with pytest.raises(ThrottleClosed):
        throttle.wait_open()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_concurrency": 0},
        {"min_concurrency": 5, "max_concurrency": 4},
        {"rate": 0},
        {"slow_factor": 1.2, "recover_factor": 1.3},
        {"recover_probes": 0},
        {"windows": ["mon 25:00-07:00"]},
    ],
)
def test_bad_throttle_settings_are_config_errors(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        Throttle(**kwargs)


# -- throttle: adaptive back-off ---------------------------------------------------------------


def test_backoff_when_probes_slow_down_and_recovery_when_they_speed_up() -> None:
    clock = FakeClock(berlin(2026, 1, 14, 12))
    throttle = Throttle(max_concurrency=8, min_concurrency=1, clock=clock)
    for latency in (0.010, 0.012, 0.009, 0.011, 0.010):
        throttle.observe(latency)
    assert throttle.baseline == pytest.approx(0.010)
    assert throttle.limit == 8

    limits = []
    for _ in range(12):  # 3x the baseline: halve, but only every third probe
        throttle.observe(0.030)
        limits.append(throttle.limit)
    assert limits == [4, 4, 4, 2, 2, 2, 1, 1, 1, 1, 1, 1]
    assert throttle.events["backoff"] == 3

    limits = []
    for _ in range(24):  # back to the baseline: one more every third probe, up to the maximum
        throttle.observe(0.011)
        limits.append(throttle.limit)
    assert limits[2::3] == [2, 3, 4, 5, 6, 7, 8, 8]
    assert throttle.limit == 8
    assert throttle.events["grow"] == 7
    assert [limit for _, limit in throttle.history] == [8, 4, 2, 1, 2, 3, 4, 5, 6, 7, 8]
    stats = throttle.stats()
    assert stats["min_limit"] == 1 and stats["max_limit"] == 8 and stats["limit"] == 8
    assert stats["backoff"] == 3 and stats["grow"] == 7 and stats["probe"] == 41
    assert stats["window_pause"] == 0  # always present, for a summary of fixed shape


def test_a_middling_probe_breaks_the_recovery_streak() -> None:
    throttle = Throttle(max_concurrency=4, clock=FakeClock(berlin(2026, 1, 14, 12)))
    throttle.set_baseline(0.010)
    throttle.observe(0.050)
    assert throttle.limit == 2
    for latency in (0.011, 0.011, 0.015, 0.011, 0.011):  # 1.5x: neither slow nor healthy
        throttle.observe(latency)
    assert throttle.limit == 2
    throttle.observe(0.011)
    assert throttle.limit == 3


def test_limit_stays_within_its_bounds() -> None:
    throttle = Throttle(max_concurrency=6, min_concurrency=2, clock=FakeClock(berlin(2026, 1, 14, 12)))
    throttle.set_baseline(0.010)
    rng = random.Random(7)
    for _ in range(3000):
        throttle.observe(rng.choice([0.005, 0.010, 0.012, 0.018, 0.025, 0.100]))
        assert 2 <= throttle.limit <= 6
    assert all(2 <= limit <= 6 for _, limit in throttle.history)
    stats = throttle.stats()
    assert stats["min_limit"] == 2 and stats["max_limit"] == 6
    assert stats["backoff"] > 0 and stats["grow"] > 0


# -- prober ----------------------------------------------------------------------------------


def test_a_failing_probe_counts_and_backs_off() -> None:
    def probe() -> float:
        raise TimeoutError("no answer to C-ECHO")

    throttle = Throttle(max_concurrency=4, clock=FakeClock(berlin(2026, 1, 14, 12)))
    prober = Prober(probe, throttle)
    assert prober.probe_once() is None
    assert throttle.events["probe_failed"] == 1
    assert throttle.limit == 2  # a failure is a slow probe, even before the baseline is known
    assert prober.latencies() == []


def test_prober_thread_feeds_the_throttle_through_the_clock() -> None:
    clock = FakeClock(berlin(2026, 1, 14, 12))
    throttle = Throttle(max_concurrency=4, clock=clock)
    answers = iter([0.010] * 5 + [0.100] * 1000)

    def probe() -> float:
        return next(answers)

    with Prober(probe, throttle, interval=0.2) as prober:
        wait_for(lambda: throttle.events["backoff"] >= 1)
    assert throttle.baseline == pytest.approx(0.010)
    assert clock.slept >= 0.2 * 5
    latencies = prober.latencies()
    assert latencies[:6] == [0.010] * 5 + [0.100]
    summary = prober.summary()
    assert summary["probes"] == len(latencies)
    assert (summary["median_s"], summary["p95_s"]) == (percentile(latencies, 50), percentile(latencies, 95))


def test_one_percentile_by_nearest_rank() -> None:
    values = [0.5, 0.1, 0.4, 0.2, 0.3]
    assert [percentile(values, q) for q in (0, 20, 21, 50, 95, 100)] == [0.1, 0.1, 0.2, 0.3, 0.5, 0.5]
    assert percentile([2.0, 1.0], 50) == 1.0  # the lower middle one: always a value seen
    assert percentile(list(range(1, 101)), 95) == 95
    with pytest.raises(ValueError):
        percentile([], 50)


def test_prober_thread_counts_failed_probes() -> None:
    clock = FakeClock(berlin(2026, 1, 14, 12))
    throttle = Throttle(max_concurrency=4, clock=clock)

    def probe() -> float:
        raise ConnectionRefusedError("association rejected")

    prober = Prober(probe, throttle, interval=0.2).start()
    # 4 -> 2 at the first failure, then a cooldown of three probes, 2 -> 1 at the fourth.
    wait_for(lambda: throttle.events["probe_failed"] >= 4)
    prober.stop(5)
    failed = throttle.events["probe_failed"]
    time.sleep(0.01)
    assert throttle.events["probe_failed"] == failed  # stopped
    assert throttle.limit == 1
    assert prober.summary() == {"probes": 0, "median_s": None, "p95_s": None}


def test_prober_skips_probes_while_the_window_is_closed() -> None:
    clock = FakeClock(berlin(2026, 1, 14, 12))
    calls: list[str] = []
    throttle = Throttle(
        windows=TimeWindows.parse(["daily 19:00-07:00"], "Europe/Berlin"),
        clock=clock,
        on_pause=lambda: calls.append("pause"),
    )
    probes = []
    with Prober(lambda: probes.append(1) or 0.01, throttle, interval=0.2):
        wait_for(lambda: clock.slept >= 1.0)
    assert probes == []
    assert calls == ["pause"]

"""Permitted time windows for pulling from a hospital PACS.

A PACS serves the wards during the day; a bulk pull is allowed only when the site says so,
usually nights and weekends. A window is written as ``DAYS START-END``::

    mon-fri 19:00-07:00     each weekday evening until seven the next morning
    sat,sun 00:00-24:00     all weekend
    daily 22:00-06:00       every night
    mon 08:00-09:30         one morning slot

Days are ``mon`` .. ``sun`` (full names too), ranges that may wrap (``fri-mon``), comma
lists and ``daily``. A window starts on each listed day at START and ends at END, on the
next day when END <= START; ``24:00`` is allowed as an end. No windows at all means always open.

Times are wall-clock times in the site's zone, because that is how the site states its rules:
on the night the clocks go forward a 01:00-04:00 window lasts two real hours, on the night
they go back it lasts four.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from curate.errors import ConfigError

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_NUMBERS = {name: i for i, name in enumerate(_DAYS)} | {
    full: i for i, full in enumerate(("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"))
}
_SPEC = re.compile(r"\s*(?P<days>[^\d]*?)\s*(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})\s*")
_WEEK = 7 * 1440
_UTC = timezone.utc
# Days computed around a query: two back (a window that started yesterday or, for the
# clocks going back at midnight, the day before) and nine ahead (a run of merged windows
# lasts less than a week unless the windows cover the whole week, which parse detects).
_LOOKBACK_DAYS = 2
_LOOKAHEAD_DAYS = 9
_CACHE_DAYS = 64


@dataclass(frozen=True)
class _Window:
    """One parsed spec: weekdays (0 = Monday) and start/end as minutes after midnight."""

    days: frozenset[int]
    start: int
    end: int

    def wall_span(self, day: date) -> tuple[datetime, datetime]:
        """The naive wall-clock start and end of the window that starts on ``day``."""
        midnight = datetime.combine(day, time())
        end = self.end + (1440 if self.end <= self.start else 0)
        return midnight + timedelta(minutes=self.start), midnight + timedelta(minutes=end)

    def describe(self) -> str:
        return f"{_describe_days(self.days)} {_hhmm(self.start)}-{_hhmm(self.end)}"


@dataclass(frozen=True)
class TimeWindows:
    """The weekly windows in which a pull may talk to the PACS, in one time zone.

    Build it with :meth:`parse`. The queries take aware datetimes in any zone and answer
    in UTC: Python compares and subtracts datetimes of one zone by wall clock, and calls an
    ambiguous local time unequal to every other zone's, so local results would mislead at
    exactly the clock changes this class is careful about. Format with ``.astimezone(zone)``.
    """

    windows: tuple[_Window, ...] = ()
    zone: tzinfo = field(default_factory=lambda: _local_zone()[0])
    zone_name: str = ""
    _always: bool = field(init=False, repr=False, compare=False)
    _cache: dict[date, list[tuple[datetime, datetime]]] = field(
        init=False, repr=False, compare=False, hash=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "_always", _covers_week(self.windows))
        if not self.zone_name:
            object.__setattr__(self, "zone_name", getattr(self.zone, "key", None) or str(self.zone))

    @classmethod
    def parse(cls, specs: Sequence[str], tz: str | None = None) -> TimeWindows:
        """Windows from specs like ``"mon-fri 19:00-07:00"``; ``tz`` is an IANA zone name
        (None: this machine's zone). Raises ConfigError naming the spec that is wrong."""
        if isinstance(specs, str):  # one spec given bare: not a list of one-letter specs
            specs = [specs]
        if tz is None:
            zone, name = _local_zone()
        else:
            try:
                zone, name = ZoneInfo(tz), tz
            except (ZoneInfoNotFoundError, ValueError, OSError):
                raise ConfigError(
                    f"unknown time zone {tz!r} for pull windows (use an IANA name like 'Europe/Berlin')"
                ) from None
        return cls(tuple(_parse_spec(spec) for spec in specs), zone, name)

    @property
    def always_open(self) -> bool:
        """True when there are no windows, or when they cover every minute of the week."""
        return self._always

    def is_open(self, when: datetime) -> bool:
        """Whether a pull may run at the instant ``when``."""
        if self._always:
            return True
        return self._run_containing(when) is not None

    def next_open(self, when: datetime) -> datetime:
        """``when`` itself if a window is open then, else the instant the next one opens."""
        if self._always:
            return when
        if self._run_containing(when) is not None:
            return when
        instant = _utc(when)
        for start, _end in self._runs(self._local_day(when)):
            if start > instant:
                return start
        raise AssertionError(f"no window opens within {_LOOKAHEAD_DAYS} days of {when}")  # every spec names a day

    def closes_at(self, when: datetime) -> datetime | None:
        """The instant the window that ``when`` is in closes (windows that touch or overlap
        count as one); None when always open, ``when`` itself when no window is open."""
        if self._always:
            return None
        run = self._run_containing(when)
        if run is None:
            return when
        return run[1]

    def describe(self) -> str:
        """Short text for a run's summary, e.g. ``mon-fri 19:00-07:00; sat,sun 00:00-24:00 (Europe/Berlin)``."""
        if not self.windows:
            return "always open"
        return f"{'; '.join(w.describe() for w in self.windows)} ({self.zone_name})"

    # -- internals ----------------------------------------------------------------------

    def _local_day(self, when: datetime) -> date:
        return _utc(when).astimezone(self.zone).date()

    def _run_containing(self, when: datetime) -> tuple[datetime, datetime] | None:
        instant = _utc(when)
        for start, end in self._runs(self._local_day(when)):
            if start <= instant < end:
                return start, end
            if start > instant:
                break
        return None

    def _runs(self, day: date) -> list[tuple[datetime, datetime]]:
        """The merged windows (UTC instants, sorted) that start from two days before ``day``
        to nine after: enough for any query on ``day``, at a few dozen zone lookups."""
        runs = self._cache.get(day)
        if runs is not None:
            return runs
        spans = []
        for offset in range(-_LOOKBACK_DAYS, _LOOKAHEAD_DAYS + 1):
            start_day = day + timedelta(days=offset)
            for window in self.windows:
                if start_day.weekday() in window.days:
                    wall_start, wall_end = window.wall_span(start_day)
                    start, end = _instant(wall_start, self.zone), _instant(wall_end, self.zone)
                    if start < end:  # both ends in the gap of clocks going forward: never happens
                        spans.append((start, end))
        spans.sort()
        runs = []
        for start, end in spans:
            if runs and start <= runs[-1][1]:
                runs[-1] = (runs[-1][0], max(runs[-1][1], end))
            else:
                runs.append((start, end))
        if len(self._cache) >= _CACHE_DAYS:
            self._cache.clear()
        self._cache[day] = runs
        return runs


def _instant(wall: datetime, zone: tzinfo) -> datetime:
    """The first instant (UTC) at which the zone's clock reads ``wall`` or later.

    That one rule settles both awkward cases. When the clocks go back a wall time happens
    twice: it is the first time (fold=0), so a window starting at 02:30 opens at the first
    02:30 and one ending at 02:30 closes then, not an hour later. When the clocks go forward
    a wall time inside the gap never happens: it is the end of the gap, so a window starting
    at 02:30 opens at 03:00 and one ending at 02:30 closes at 03:00 (the same instant as 02:00).
    """
    utc = wall.replace(tzinfo=zone, fold=0).astimezone(_UTC)
    if utc.astimezone(zone).replace(tzinfo=None) == wall:
        return utc
    # In the gap: reading ``wall`` with either offset gives an instant on each side of the
    # jump. Transitions fall on whole seconds, so a bisection over seconds finds it exactly.
    other = wall.replace(tzinfo=zone, fold=1).astimezone(_UTC)
    lo, hi = math.floor(min(utc, other).timestamp()), math.ceil(max(utc, other).timestamp())
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, zone).replace(tzinfo=None) >= wall:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, _UTC)


def _utc(when: datetime) -> datetime:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"pull windows need an aware datetime, got naive {when.isoformat()}")
    return when.astimezone(_UTC)


def _covers_week(windows: tuple[_Window, ...]) -> bool:
    """Whether the windows leave no minute of the (wall-clock) week closed; no windows
    at all also means always open. Clock changes only stretch or squeeze wall time, so
    full wall-clock cover is full real cover."""
    if not windows:
        return True
    spans = []
    for window in windows:
        length = (window.end - window.start) % 1440 or 1440
        for day in window.days:
            start = day * 1440 + window.start
            end = start + length
            if end > _WEEK:
                spans += [(start, _WEEK), (0, end - _WEEK)]
            else:
                spans.append((start, end))
    reached = 0
    for start, end in sorted(spans):
        if start > reached:
            return False
        reached = max(reached, end)
    return reached >= _WEEK


def _parse_spec(spec: str) -> _Window:
    if not isinstance(spec, str):
        raise ConfigError(f"pull window {spec!r} is not text (expected e.g. 'mon-fri 19:00-07:00')")
    match = _SPEC.fullmatch(spec)
    if match is None:
        raise ConfigError(f"pull window {spec!r} is not 'DAYS HH:MM-HH:MM' (e.g. 'mon-fri 19:00-07:00')")
    if not match["days"]:
        raise ConfigError(f"pull window {spec!r} names no days (e.g. 'daily {match['start']}-{match['end']}')")
    days = _parse_days(spec, match["days"])
    start = _parse_time(spec, match["start"], is_end=False)
    end = _parse_time(spec, match["end"], is_end=True)
    return _Window(days, start, end)


def _parse_days(spec: str, text: str) -> frozenset[int]:
    days: set[int] = set()
    for item in re.sub(r"\s+", "", text.lower()).split(","):
        if not item:
            raise ConfigError(f"pull window {spec!r} has an empty day in its list {text!r}")
        if item == "daily":
            days.update(range(7))
            continue
        ends = item.split("-")
        if len(ends) > 2:
            raise ConfigError(f"pull window {spec!r}: day range {item!r} has more than two ends (use e.g. 'fri-mon')")
        numbers = []
        for name in ends:
            if name not in _DAY_NUMBERS:
                raise ConfigError(
                    f"pull window {spec!r}: unknown day {name!r} (use mon..sun, ranges like fri-mon, "
                    "comma lists or daily)"
                )
            numbers.append(_DAY_NUMBERS[name])
        first, last = numbers[0], numbers[-1]
        days.update((first + i) % 7 for i in range((last - first) % 7 + 1))  # a range may wrap past Sunday
    return frozenset(days)


def _parse_time(spec: str, text: str, is_end: bool) -> int:
    hours, minutes = (int(part) for part in text.split(":"))
    if hours == 24 and minutes == 0:
        if is_end:
            return 1440
        raise ConfigError(f"pull window {spec!r} starts at 24:00; 24:00 is allowed only as an end (use 00:00)")
    if hours > 23 or minutes > 59:
        raise ConfigError(f"pull window {spec!r}: {text!r} is not a time of day (00:00 to 23:59, or 24:00 as an end)")
    return hours * 60 + minutes


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _describe_days(days: frozenset[int]) -> str:
    """Days as compact text: ``daily``, ``mon-fri``, ``fri-mon``, ``sat,sun``, ``mon,wed``."""
    if len(days) == 7:
        return "daily"
    # Start after a missing day, so that a run wrapping past Sunday stays one run.
    first = next(d for d in range(7) if (d - 1) % 7 not in days and d in days)
    runs: list[list[int]] = []
    for i in range(7):
        day = (first + i) % 7
        if day not in days:
            continue
        if runs and (runs[-1][-1] + 1) % 7 == day:
            runs[-1].append(day)
        else:
            runs.append([day])
    parts = []
    for run in runs:
        if len(run) >= 3:
            parts.append(f"{_DAYS[run[0]]}-{_DAYS[run[-1]]}")
        else:
            parts.extend(_DAYS[d] for d in run)
    return ",".join(parts)


def _local_zone() -> tuple[tzinfo, str]:
    """This machine's zone with its rules (so clock changes are known), and its name.

    ``datetime.now().astimezone()`` would give only today's fixed offset; the TZ variable
    and /etc/localtime give the full rules. A fixed offset is the last resort.
    """
    name = os.environ.get("TZ", "").lstrip(":")
    if name:
        try:
            return ZoneInfo(name), name
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass
    target = os.path.realpath("/etc/localtime")
    if "/zoneinfo/" in target:
        key = target.split("/zoneinfo/", 1)[1]
        try:
            return ZoneInfo(key), key
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass
    try:
        with open("/etc/localtime", "rb") as file:
            return ZoneInfo.from_file(file, key="localtime"), "localtime"
    except (OSError, ValueError):
        pass
    zone = datetime.now().astimezone().tzinfo or _UTC
    return zone, str(zone)

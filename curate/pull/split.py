"""Finding everything behind a capped C-FIND or QIDO.

PACS servers stop at a maximum number of answers, often without saying so. An answer
the server marked as cut short, or one as large as the configured ``find_limit``, is
taken as capped, and the query is split until no answer is: studies by date range
(halves, down to one day; a query of all dates also asks before 1980 and after today,
and keeps the undated studies its capped answer showed, which no date query matches),
then by the time of day (halves on the hour, down to one
minute), then by modality; series by modality within their study. Time before modality:
some servers (Orthanc among them) apply their cap before they match ModalitiesInStudy,
so a modality query under a cap loses studies without looking capped. Instances have
no key a query can range over, so a capped instance answer is counted as unsplittable
(an images pull over DIMSE still fetches the whole series with one retrieval).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from curate.pull.source import IMAGE, SERIES, STUDY, UID_OF, Answer, Answers, Query, value

#: Modalities a capped hour (or a capped study's series) is split by when the
#: selection names none.
COMMON_MODALITIES = (
    "CR", "DX", "CT", "MR", "US", "MG", "NM", "PT", "XA", "RF", "OT", "SC", "SR", "PR", "KO", "DOC",
    "IO", "PX", "ES", "XC", "OP", "RG", "SM", "ECG", "RTIMAGE", "RTSTRUCT", "RTPLAN", "RTDOSE", "SEG", "REG",
)  # fmt: skip
#: Where a split of a query without a date range starts: older studies are rare.
EARLIEST = date(1980, 1, 1)

MINUTES = 24 * 60

Find = Callable[[str, Query], Answers]


@dataclass
class SplitCounts:
    """How many queries the splitting took: shown in the pull's summary."""

    queries: int = 0
    capped: int = 0
    unsplittable: int = 0
    by_level: dict[str, int] = field(default_factory=dict)
    #: Studies without a StudyDate seen in capped answers: no date query matches them,
    #: so a capped archive may hold more than these.
    undated: int = 0


class CappedFinder:
    def __init__(
        self,
        find: Find,
        find_limit: int = 0,
        modalities: Sequence[str] = (),
        today: date | None = None,
    ):
        self.find = find
        self.find_limit = find_limit
        self.modalities = tuple(modalities) or COMMON_MODALITIES
        self.today = today or date.today()
        self.counts = SplitCounts()

    def _ask(self, level: str, query: Query) -> tuple[Answers, bool]:
        self.counts.queries += 1
        self.counts.by_level[level] = self.counts.by_level.get(level, 0) + 1
        answers = self.find(level, query)
        capped = answers.capped or (self.find_limit > 0 and len(answers) >= self.find_limit)
        if capped:
            self.counts.capped += 1
        return answers, capped

    # --- studies -------------------------------------------------------------------------

    def studies(self, query: Query) -> Iterator[Answer]:
        """Every study that `query` matches, each once."""
        answers, capped = self._ask(STUDY, query)
        if not capped:
            yield from answers
            return
        first, last = _date_range(query.get("StudyDate", ""), self.today)
        if query.get("StudyTime") or first is None:
            # A time or a single date the caller gave cannot be split by date.
            yield from self._by_time_then_modality(query, answers)
            return
        if query.get("StudyDate"):
            yield from self._by_dates(query, first, last)
            return
        # All dates were asked for: also before EARLIEST and after today (a wrong clock),
        # and the studies without a date that the capped answer showed, unless a date
        # query found them after all (a server that matches dates it does not return).
        undated = {value(a, "StudyInstanceUID"): a for a in answers if not value(a, "StudyDate")}
        ranges = (
            self._by_dates(query, first, last),
            self._open_range(query, f"-{EARLIEST - timedelta(days=1):%Y%m%d}"),
            self._open_range(query, f"{self.today + timedelta(days=1):%Y%m%d}-"),
        )
        for found in ranges:
            for answer in found:
                undated.pop(value(answer, "StudyInstanceUID"), None)
                yield answer
        self.counts.undated += len(undated)
        yield from undated.values()

    def _open_range(self, query: Query, match: str) -> Iterator[Answer]:
        asked = {**query, "StudyDate": match}
        answers, capped = self._ask(STUDY, asked)
        yield from (self._by_time_then_modality(asked, answers) if capped else answers)

    def _by_dates(self, query: Query, first: date, last: date) -> Iterator[Answer]:
        pending = [(first, last)]
        while pending:
            lo, hi = pending.pop()
            asked = {**query, "StudyDate": _date_match(lo, hi)}
            answers, capped = self._ask(STUDY, asked)
            if not capped:
                yield from answers
            elif lo < hi:
                middle = lo + (hi - lo) // 2
                pending += [(middle + timedelta(days=1), hi), (lo, middle)]
            else:
                yield from self._by_time_then_modality(asked, answers)

    def _by_time_then_modality(self, query: Query, capped_answers: Answers) -> Iterator[Answer]:
        if query.get("StudyTime"):
            yield from self._by_modality(query, capped_answers)
            return
        pending = [(0, MINUTES)]  # minutes of the day: halves, down to one minute
        while pending:
            lo, hi = pending.pop()
            asked = {**query, "StudyTime": f"{lo // 60:02d}{lo % 60:02d}00-{(hi - 1) // 60:02d}{(hi - 1) % 60:02d}59"}
            answers, capped = self._ask(STUDY, asked)
            if not capped:
                yield from answers
            elif hi - lo > 1:
                middle = _split_point(lo, hi)
                pending += [(middle, hi), (lo, middle)]
            else:
                yield from self._by_modality(asked, answers)

    def _by_modality(self, query: Query, capped_answers: Answers) -> Iterator[Answer]:
        asked_for = query.get("ModalitiesInStudy")
        if asked_for and "\\" not in asked_for:
            self.counts.unsplittable += 1
            yield from capped_answers
            return
        choices = asked_for.split("\\") if asked_for else self.modalities
        seen: set[str] = set()
        for modality in choices:
            answers, capped = self._ask(STUDY, {**query, "ModalitiesInStudy": modality})
            if capped:
                self.counts.unsplittable += 1
            for answer in answers:
                uid = value(answer, "StudyInstanceUID")
                if uid not in seen:  # a study of several modalities answers several times
                    seen.add(uid)
                    yield answer

    # --- series and instances ----------------------------------------------------------

    def series(self, query: Query) -> list[Answer]:
        """Every series of one study (`query` holds its StudyInstanceUID)."""
        answers, capped = self._ask(SERIES, query)
        if not capped:
            return list(answers)
        found: dict[str, Answer] = {}
        for modality in (query.get("Modality") or "").split("\\") if query.get("Modality") else self.modalities:
            part, still = self._ask(SERIES, {**query, "Modality": modality})
            if still:
                self.counts.unsplittable += 1
            for answer in part:
                found.setdefault(value(answer, UID_OF[SERIES]), answer)
        return list(found.values())

    def instances(self, query: Query) -> tuple[list[Answer], bool]:
        """The instances of one series, and whether the answer was capped."""
        answers, capped = self._ask(IMAGE, query)
        if capped:
            self.counts.unsplittable += 1
        return list(answers), capped


def _split_point(lo: int, hi: int) -> int:
    """Where to halve a span of minutes: on an hour while the span is longer than one."""
    middle = (lo + hi) // 2
    if hi - lo > 60:
        middle = max(lo + 60, min(hi - 60, round(middle / 60) * 60))
    return middle


def _date_range(match: str, today: date) -> tuple[date | None, date | None]:
    """The (first, last) days of a StudyDate match: a range, open at either end, or none
    (all dates); (None, None) for a single date, which no split can narrow."""
    if match and "-" not in match:
        return None, None
    lo, _, hi = match.partition("-")
    return (_parse(lo) if lo else EARLIEST), (_parse(hi) if hi else today)


def _parse(text: str) -> date:
    return date(int(text[:4]), int(text[4:6]), int(text[6:8]))


def _date_match(lo: date, hi: date) -> str:
    return lo.strftime("%Y%m%d") if lo == hi else f"{lo:%Y%m%d}-{hi:%Y%m%d}"

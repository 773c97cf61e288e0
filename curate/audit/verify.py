"""`curate audit verify`: is a store's run log whole, and does the store hold what it says?

The chain is read entry by entry: each line must be whole JSON, its hash must be the
hash of what it holds, its ``prev`` the hash of the line before, its ``seq`` one more.
Each break is named by its line. With ``contents=True`` the store itself is read as
well: an index's content digest must be the last one logged, and a tree's files must
add up to the last logged state (with what killed runs journalled).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from curate.errors import AuditError
from curate.runlog import (
    GENESIS,
    FileSet,
    RunLog,
    entry_hash,
    live_journals,
    state_file_hash,
    tree_files,
    tree_state,
    unfolded_journals,
)
from curate.tracking import StageResult

#: The count an entry is summarised by: the first of these it has.
SHOWN_COUNTS = ("written", "parsed", "rows", "instances", "files")


@dataclass
class AuditReport(StageResult):
    entries: int = 0
    head: str = GENESIS
    #: (line number, what is wrong there), in log order.
    breaks: list[tuple[int, str]] = field(default_factory=list)
    #: The last entries, for the summary: (seq, time, stage, its first :data:`SHOWN_COUNTS`).
    recent: list[tuple] = field(default_factory=list)
    #: None when the contents were not read; else whether they match, and why not.
    contents_ok: bool | None = None
    contents_note: str = ""
    live_runs: int = 0

    @property
    def ok(self) -> bool:
        return not self.breaks and self.contents_ok is not False

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    @property
    def failure(self) -> str | None:
        return None if self.ok else "the run log or the store was changed outside curate's runs"

    def format(self) -> str:
        lines = [f"{'seq':>5}  {'time (UTC)':<20}  {'stage':<9}  files written, parsed or rows"]
        for seq, when, stage, written in self.recent:
            lines.append(f"{seq:>5}  {when:<20}  {stage:<9}  {'' if written is None else f'{written:,}'}")
        if self.entries > len(self.recent):
            lines.insert(1, f"{'':>5}  ({self.entries - len(self.recent):,} earlier entries)")
        lines.append("")
        if self.breaks:
            lines.append(f"chain: BROKEN in {len(self.breaks)} place(s), {self.entries} entries")
            lines += [f"  line {number}: {why}" for number, why in self.breaks]
        else:
            lines.append(f"chain: intact, {self.entries} entries, head {self.head[:16]}")
        if self.contents_ok is not None:
            lines.append(f"contents: {'match' if self.contents_ok else 'DIFFER'}, {self.contents_note}")
        if self.live_runs:
            lines.append(f"note: {self.live_runs} run(s) writing to the store now; their entries are not in yet")
        return "\n".join(lines)


def verify_store(store: str | Path, contents: bool = False, recent: int = 10, progress: bool = True) -> AuditReport:
    """Check the run log of the store at `store` (and with `contents`, the store)."""
    log = RunLog(store)
    if not log.exists():
        raise AuditError(f"no run log in {store} (a store curate wrote keeps .curate-audit/runs.jsonl)")
    report = AuditReport()
    prev, seq = GENESIS, 0
    for number, entry, _ in log.entries():
        report.entries += 1
        if entry is None:
            report.breaks.append((number, "not a whole, well-formed entry (cut short or edited)"))
            continue
        if entry.get("hash") != entry_hash(entry):
            report.breaks.append((number, "its hash does not match what it holds (the entry was edited)"))
        if entry.get("prev") != prev:
            report.breaks.append((number, "it does not follow the entry before it (one was removed, added or edited)"))
        if entry.get("seq") != seq + 1:
            report.breaks.append((number, f"its seq is {entry.get('seq')!r}, not {seq + 1}"))
        prev, seq = str(entry.get("hash")), _as_int(entry.get("seq"), seq + 1)
        counts = entry.get("counts") or {}
        written = next((counts[k] for k in SHOWN_COUNTS if isinstance(counts.get(k), (int, float))), None)
        shown = (entry.get("seq"), entry.get("time"), entry.get("stage"), written)
        report.recent = [*report.recent[-(recent - 1) :], shown]
    report.head = prev
    report.live_runs = live_journals(log)
    if contents:
        _check_contents(log, report, progress)
    return report


def _as_int(value, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _check_contents(log: RunLog, report: AuditReport, progress: bool) -> None:
    from curate.index.manifest import MANIFEST_FILE, read_manifest

    index_state = log.last_state("content")
    if index_state is not None and (log.root / MANIFEST_FILE).exists():
        manifest = read_manifest(log.root)
        found = manifest.content if manifest is not None else ""
        report.contents_ok = found == index_state["content"]
        report.contents_note = (
            "the index's content digest is the last one logged"
            if report.contents_ok
            else "the index's rows are not those the last logged run left (changed outside curate's runs)"
        )
        return
    files_state = log.last_state("files")
    if files_state is None:
        report.contents_ok = None if next(tree_files(log.root), None) is None else False
        report.contents_note = "the log records no state of the store's files"
        return
    from curate.progress import progress_bar

    journalled, names = unfolded_journals(log)
    expected = FileSet.from_state(files_state) + journalled
    with progress_bar(expected.count, "verify", enabled=progress) as bar:
        found = tree_state(log.root, state_file_hash(files_state), progress=bar)
    # Files only a killed run's journal lists are there, but no entry vouches for them yet.
    report.contents_ok = found == expected and not journalled.count
    if found == expected and journalled.count:
        report.contents_note = (
            f"{found.count:,} files, {journalled.count:,} of them only in the journal of {len(names)} run(s) "
            "killed before their entry, not in the log (the next run's entry takes them in)"
        )
    elif report.contents_ok:
        report.contents_note = f"{found.count:,} files, as logged"
    elif found.count != expected.count:
        report.contents_note = f"the store holds {found.count:,} files, the log says {expected.count:,}"
    else:
        report.contents_note = f"{found.count:,} files as logged, but not the same bytes (one was edited or replaced)"

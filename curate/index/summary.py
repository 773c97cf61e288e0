"""What a scan found and did: counts for the terminal and for experiment tracking."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from curate.index.derive import DeriveCounts
from curate.tracking import StageResult


@dataclass
class ScanSummary(StageResult):
    """What a scan found and did, in counts only (nothing identifying)."""

    listed: int = 0
    unchanged: int = 0
    scanned: int = 0
    resumed: int = 0
    vanished: int = 0
    rows: int = 0
    by_status: Counter = field(default_factory=Counter)
    errors_by_kind: Counter = field(default_factory=Counter)
    derive: DeriveCounts = field(default_factory=DeriveCounts)
    full_rescan_reason: str | None = None
    #: The format of an older index this scan converted (its rows kept), if any.
    converted_from: int | None = None
    #: Whether the scan changed the index (an unchanged rescan writes nothing).
    committed: bool = False
    seconds: float = 0.0
    index_path: Path | None = None
    #: The settings the scan ran with (logged beside the counts; never a path).
    threads: int | None = None
    rescan: str = "changed"
    backend: str = "local"
    columns: int = 0

    @property
    def rate(self) -> float:
        """Files covered per second: parsed, or found unchanged."""
        return self.listed / self.seconds if self.seconds > 0 else 0.0

    def params(self) -> dict[str, object]:
        """Settings for experiment tracking: the source and index paths can name patients."""
        return {"threads": self.threads, "rescan": self.rescan, "backend": self.backend, "columns": self.columns}

    def metrics(self) -> dict[str, float]:
        """Counts for experiment tracking (nothing identifying)."""
        values = {
            "files": self.listed,
            "parsed": self.scanned,
            "unchanged": self.unchanged,
            "resumed": self.resumed,
            "seconds": self.seconds,
            "files_per_s": self.rate,
        }
        values.update({f"status.{k}": v for k, v in self.by_status.items()})
        values.update({f"errors.{k}": v for k, v in self.errors_by_kind.items()})
        values.update({f"nulled.{k.replace(' ', '_')}": v for k, v in self.derive.nulled.items()})
        return values

    def format(self) -> str:
        """A short table for the terminal."""
        rows = [("files", f"{self.listed:,}")]
        if self.unchanged or self.vanished or self.resumed:
            rows += [("  unchanged", f"{self.unchanged:,}"), ("  parsed", f"{self.scanned:,}")]
            if self.resumed:
                rows.append(("  from the interrupted scan", f"{self.resumed:,}"))
            if self.vanished:
                rows.append(("  vanished", f"{self.vanished:,}"))
        for status in ("ok", "not_dicom", "dicomdir", "vanished", "error"):
            if self.by_status.get(status):
                rows.append((status, f"{self.by_status[status]:,}"))
        for kind, count in sorted(self.errors_by_kind.items(), key=lambda kv: (-kv[1], kv[0])):
            rows.append((f"  {kind}", f"{count:,}"))
        for reason, count in sorted(self.derive.nulled.items()):
            rows.append((f"nulled: {reason}", f"{count:,}"))
        rows.append(("time", f"{self.seconds:.2f} s"))
        rows.append(("rate", f"{self.rate:,.0f} files/s"))
        width = max(len(k) for k, _ in rows)
        number_width = max(len(v) for _, v in rows)
        lines = [f"{k.ljust(width)}  {v.rjust(number_width)}" for k, v in rows]
        if self.converted_from is not None:
            lines.append(f"(the index was converted from format {self.converted_from}; its rows are kept)")
        if self.full_rescan_reason:
            lines.append(f"(every file parsed: {self.full_rescan_reason})")
        if self.index_path is not None:
            lines.append(f"{'index'.ljust(width)}  {self.index_path}")
        return "\n".join(lines)

"""Helpers shared by the benchmark scripts: corpora, file lists, the printed table,
and running a command in a child process while measuring its peak memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

try:
    import psutil
except ImportError:  # optional: without it, peak memory is the largest single process
    psutil = None

BENCH_DIR = Path(__file__).resolve().parent
CORPUS_ROOT = BENCH_DIR / "corpus"
RESULTS_DIR = BENCH_DIR / "results"
# Pixel data per generated file: about a compressed chest radiograph.
DEFAULT_PIXEL_BYTES = 1024 * 1024


def list_files(root: Path) -> list[str]:
    """Regular files under `root`, sorted, skipping hidden and partly written ones."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found.extend(
            os.path.join(folder, name) for name in files if not name.startswith(".") and not name.endswith(".part")
        )
    found.sort()
    return found


#: Bumped when make_corpus.py writes other bytes: 2, pixel values within Bits Stored.
CORPUS_VERSION = 2


def ensure_corpus(count: int, pixel_bytes: int, seed: int, decodable: bool = False) -> Path:
    """A generated corpus under benchmarks/corpus/, reused when already complete.
    `decodable`: native pixel data exactly as large as Rows x Columns say, as a real
    image's (``make_corpus.py --decodable``).

    The folder name records the parameters, so a reused folder always holds
    exactly what was asked for; an incomplete one is completed by writing over it
    (generation is deterministic, so existing files are rewritten identically).
    """
    out = CORPUS_ROOT / f"n{count}-px{pixel_bytes}-seed{seed}{'-decodable' if decodable else ''}-v{CORPUS_VERSION}"
    if out.is_dir() and len(list_files(out)) == count:
        print(f"reusing corpus {out}")
        return out
    cmd = [
        sys.executable,
        str(BENCH_DIR / "make_corpus.py"),
        str(out),
        "--count",
        str(count),
        "--pixel-bytes",
        str(pixel_bytes),
        "--seed",
        str(seed),
        "--overwrite",
        *(["--decodable"] if decodable else []),
    ]
    subprocess.run(cmd, check=True)
    return out


def print_table(headers: list[str], rows: list[list], formats: list[str] | None = None) -> None:
    """Print `rows` under `headers`, each column as wide as its widest cell: numbers right
    aligned (formatted by `formats`, one ``format`` spec a column, e.g. ``",.1f"``; "" for
    ``str``), text left aligned. A cell that is None prints as "-"."""
    formats = formats or [""] * len(headers)
    cells = [[_cell(v, f) for v, f in zip(row, formats, strict=True)] for row in rows]
    numeric = [all(isinstance(row[i], (int, float)) or row[i] is None for row in rows) for i in range(len(headers))]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]

    def line(values: list[str]) -> str:
        aligned = (v.rjust(w) if right else v.ljust(w) for v, w, right in zip(values, widths, numeric, strict=True))
        return "  ".join(aligned).rstrip()

    print(line(headers))
    for row in cells:
        print(line(row))


def _cell(value, spec: str) -> str:
    if value is None:
        return "-"
    return format(value, spec) if spec and isinstance(value, (int, float)) else str(value)


def write_json(path: Path, payload: dict) -> None:
    """Write `payload` as indented JSON (temp name, then rename), making the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    partial.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(partial, path)
    print(f"wrote {path}")


def peak_rss_kib() -> int | None:
    """This process's peak resident memory (VmHWM) in KiB, where Linux reports it.

    Measured children report this themselves because their ru_maxrss is no
    use: Linux carries the parent's peak across fork and exec into it.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


@dataclass
class ChildRun:
    """How a measured child process ended."""

    returncode: int
    stdout: str
    stderr: str
    wall_seconds: float
    tree_peak_bytes: int

    def last_json(self) -> dict | None:
        """The last line of stdout parsed as a JSON object, if it is one."""
        lines = self.stdout.strip().splitlines()
        try:
            value = json.loads(lines[-1]) if lines else None
        except json.JSONDecodeError:
            return None
        return value if isinstance(value, dict) else None

    def peak_rss_bytes(self) -> int:
        """The larger of the child's own VmHWM (reported as "vm_hwm_kib" in its
        JSON) and the sampled peak of its process tree."""
        reported = (self.last_json() or {}).get("vm_hwm_kib") or 0
        return max(reported * 1024, self.tree_peak_bytes)

    def error_tail(self, lines: int = 3) -> str:
        """The end of stderr, for reporting why a run failed."""
        tail = self.stderr.strip().splitlines()[-lines:]
        return " | ".join(tail) or f"exit status {self.returncode}"


class _TreeSampler(threading.Thread):
    """Samples the summed RSS of a process and all its descendants.

    For tools that fan out to several processes, whose own VmHWM covers only
    the parent. Shared pages count once per process, so the sum can overstate.
    """

    def __init__(self, pid: int, interval: float = 0.05):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self.stopped.is_set():
            try:
                tree = [root, *root.children(recursive=True)]
            except psutil.Error:  # the child has exited
                return
            total = 0
            for proc in tree:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    continue
            self.peak = max(self.peak, total)
            self.stopped.wait(self.interval)


def run_measured(cmd: list[str], sample_tree: bool = False) -> ChildRun:
    """Run `cmd` to completion, recording its output and wall time.

    With `sample_tree` (and psutil installed) the summed memory of the child's
    process tree is sampled while it runs; sampling costs CPU, so it is only
    asked for where a tool runs several processes.
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        sampler = _TreeSampler(proc.pid) if sample_tree and psutil else None
        if sampler:
            sampler.start()
        proc.wait()
        wall = time.perf_counter() - start
        if sampler:
            sampler.stopped.set()
            sampler.join()
        out.seek(0)
        err.seek(0)
        tree_peak = sampler.peak if sampler else 0
        return ChildRun(proc.returncode, out.read(), err.read(), wall, tree_peak)

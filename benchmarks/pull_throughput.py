"""How fast ``curate pull`` brings a PACS's metadata and images over, next to DCMTK, and how
slow the PACS gets for everyone else while it does.

Generates an archive (``curate.pull.sandbox.generate_archive``), loads it into a local
Orthanc (DICOMweb plugin on, C-FIND answers uncapped by default) and then, one after the
other, each into a fresh index and store:

* curate, level=metadata, over DICOMweb and over DIMSE (default settings);
* curate, level=images, over DICOMweb and over DIMSE, default settings (adaptive back-off,
  at most 4 requests in flight);
* curate, level=images, unthrottled: the concurrency pinned (``min = max``) and
  ``slow_factor=1e9``, so the back-off never triggers: 8 in flight (Orthanc's
  ``DicomThreadsCount`` in the sandbox: as much as the server serves at once) over DIMSE
  and DICOMweb, and 4 in flight over DIMSE (the default's ceiling, so the difference to the
  default run is the back-off alone);
* DCMTK: ``getscu`` (C-GET) one study per process, 4 at a time and 1 at a time, and
  ``movescu`` (C-MOVE) to a DCMTK ``storescp`` on loopback, 4 at a time and 1 at a time.

Orthanc runs pinned to one CPU and everything on the client side (this process, its
threads, the DCMTK programs, storescp, the probes) to another, so that the client's work
does not slow the server down by taking its CPU.

A probe measures the PACS's response time throughout: a QIDO ``GET /studies?limit=1``
every 200 ms, idle (before any pull) and during every run; each run reports the probe's
median and 95th percentile and its p95 over the idle p95. The probe runs twice, side by
side: in a thread of this process with its own ``requests.Session`` (it shares the GIL
with curate's threads, so busy curate threads show in it), and in a separate process on
the client's CPU (which does not share the GIL, so it shows the server more than the client).

Each run also records the CPU seconds Orthanc, the client side and the rest of the machine
(other people's processes on a shared machine) spent during it; before each run the
benchmark waits (up to ``--quiet-wait`` seconds) for a second in which the rest is quiet.

DCMTK as Debian builds it (Orthanc's DIMSE side links it) leaves Nagle's algorithm on
unless the environment says ``TCP_NODELAY=1``; ``--tcp-nodelay`` sets it for Orthanc and
the DCMTK programs (curate's pynetdicom client turns Nagle off on its own sockets anyway).

Prints a table and the targets and writes ``benchmarks/results/pull_throughput.json``.

  python benchmarks/pull_throughput.py              # 300 studies
  python benchmarks/pull_throughput.py --quick      # 60 studies, a smoke run
  python benchmarks/pull_throughput.py --tcp-nodelay --json benchmarks/results/pull_throughput-nodelay.json
  python benchmarks/pull_throughput.py --runs curate-images-dimse,getscu-x4
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from benchlib import RESULTS_DIR, write_json  # noqa: E402

#: A metadata pull of this many studies should take under TARGET_METADATA_S.
TARGET_STUDIES = 300
TARGET_METADATA_S = 30.0
#: A default-settings pull may make the probe's p95 at most this many times its idle p95.
TARGET_P95_RATIO = 2.0
#: A default-settings pull should keep at least this share of the unthrottled rate.
TARGET_RATE_SHARE = 0.5
#: Seconds between runs, so one run's tail does not fall into the next run's probes.
SETTLE_S = 2.0
STORE_AET = "BENCHSCP"
#: CPU seconds a second that other processes may use for the machine to count as quiet.
QUIET_CPU = 0.15


# --- pinning ------------------------------------------------------------------------------------


def pin(pid: int, cpu: int) -> int:
    """Pin every thread of process `pid` to `cpu` (``sched_setaffinity`` acts on one thread:
    a process's threads started before the call keep their old mask). Returns the count."""
    tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    for tid in tids:
        try:
            os.sched_setaffinity(tid, {cpu})
        except ProcessLookupError:  # a thread that ended meanwhile
            pass
    return len(tids)


def affinities(pid: int) -> list[list[int]]:
    """The distinct CPU masks of the threads of `pid` now."""
    masks = set()
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            masks.add(tuple(sorted(os.sched_getaffinity(int(tid)))))
        except (ProcessLookupError, OSError):
            pass
    return [list(m) for m in sorted(masks)]


class Pinning:
    """Server on the first CPU this process may use, client on the second; nothing when
    there are fewer than two."""

    def __init__(self, enabled: bool):
        cpus = sorted(os.sched_getaffinity(0))
        self.cpus = cpus
        self.enabled = enabled and len(cpus) >= 2
        self.server_cpu = cpus[0] if self.enabled else None
        self.client_cpu = cpus[1] if self.enabled else None
        if not enabled:
            self.note = "pinning off (--no-pin)"
        elif not self.enabled:
            self.note = f"pinning skipped: only {len(cpus)} CPU(s) available"
        else:
            self.note = (
                f"Orthanc pinned to CPU {self.server_cpu} (every thread); this process, its threads, "
                f"the DCMTK programs, storescp and the probe process pinned to CPU {self.client_cpu}"
            )

    def client(self) -> None:
        if self.enabled:
            pin(os.getpid(), self.client_cpu)

    def server(self, pid: int) -> None:
        if self.enabled:
            pin(pid, self.server_cpu)

    def prefix(self) -> list[str]:
        """The command prefix that starts a client-side program on the client CPU."""
        return ["taskset", "-c", str(self.client_cpu)] if self.enabled and shutil.which("taskset") else []

    def describe(self) -> dict:
        return {
            "enabled": self.enabled,
            "cpus_available": self.cpus,
            "server_cpu": self.server_cpu,
            "client_cpu": self.client_cpu,
            "note": self.note,
        }


# --- the probe ----------------------------------------------------------------------------------


def nearest_rank(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


@dataclass
class Samples:
    """(monotonic start, latency in seconds or None for a failed probe), oldest first."""

    points: list[tuple[float, float | None]] = field(default_factory=list)

    def between(self, start: float, end: float) -> list[tuple[float, float | None]]:
        return [p for p in self.points if start <= p[0] < end]

    @staticmethod
    def stats(points: list[tuple[float, float | None]]) -> dict:
        ok = [lat for _, lat in points if lat is not None]
        p50, p95 = nearest_rank(ok, 50), nearest_rank(ok, 95)
        return {
            "probes": len(points),
            "failed": len(points) - len(ok),
            "p50_ms": p50 * 1000 if p50 is not None else None,
            "p95_ms": p95 * 1000 if p95 is not None else None,
            "max_ms": max(ok) * 1000 if ok else None,
        }


def probe_once(session, url: str) -> float | None:
    started = time.perf_counter()
    try:
        response = session.get(f"{url}/studies", params={"limit": 1}, timeout=30)
        response.raise_for_status()
        response.content  # noqa: B018 - the whole answer, as a client would read it
    except Exception:  # noqa: BLE001 - a failed probe is a sample too
        return None
    return time.perf_counter() - started


class ThreadProbe(threading.Thread):
    """The probe in a thread of this process, with its own session."""

    def __init__(self, url: str, interval: float):
        super().__init__(name="bench-probe", daemon=True)
        self.url, self.interval = url, interval
        self.samples = Samples()
        self.stopped = threading.Event()

    def run(self) -> None:
        import requests

        with requests.Session() as session:
            next_at = time.monotonic()
            while not self.stopped.is_set():
                started = time.monotonic()
                self.samples.points.append((started, probe_once(session, self.url)))
                next_at = max(next_at + self.interval, time.monotonic())
                self.stopped.wait(next_at - time.monotonic())

    def stop(self) -> None:
        self.stopped.set()
        self.join(10)


class ProcessProbe:
    """The probe in its own process (no GIL shared with curate), writing its samples to a file.
    CLOCK_MONOTONIC is system-wide, so its times line up with this process's."""

    def __init__(self, url: str, interval: float, out: Path, prefix: list[str]):
        self.out = out
        cmd = [*prefix, sys.executable, __file__, "--probe-child", url, str(out), str(interval)]
        self.process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)

    def samples(self) -> Samples:
        points = []
        if self.out.exists():
            for line in self.out.read_text().splitlines():
                parts = line.split()
                if len(parts) == 2:
                    points.append((float(parts[0]), None if parts[1] == "nan" else float(parts[1])))
        return Samples(points)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def probe_child(url: str, out: str, interval: float) -> None:
    import requests

    with requests.Session() as session, open(out, "a", buffering=1) as f:
        next_at = time.monotonic()
        while True:
            started = time.monotonic()
            latency = probe_once(session, url)
            f.write(f"{started:.6f} {'nan' if latency is None else f'{latency:.6f}'}\n")
            next_at = max(next_at + interval, time.monotonic())
            time.sleep(max(0.0, next_at - time.monotonic()))


# --- the runs -----------------------------------------------------------------------------------


@dataclass
class Run:
    name: str
    tool: str
    protocol: str
    level: str
    settings: str
    instances: int = 0
    bytes: int = 0
    seconds: float = 0.0
    ok: bool = True
    note: str = ""
    start: float = 0.0
    end: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.instances / self.seconds if self.seconds else 0.0

    @property
    def mb_s(self) -> float:
        return self.bytes / 1e6 / self.seconds if self.seconds else 0.0


class Bench:
    def __init__(self, args, work: Path, pinning: Pinning):
        self.args, self.work, self.pinning = args, work, pinning
        self.server = None
        self.archive = None
        self.study_uids: list[str] = []
        self.dcmtk: dict[str, str] = {}

    # curate

    def curate(self, run: Run, source_kind: str, level: str, throttle=None) -> None:
        from curate.pull import ThrottleOptions, pull
        from curate.pull.dicomweb import DicomWebSource
        from curate.pull.dimse import DimseSource

        if source_kind == "dicomweb":
            source = DicomWebSource(self.server.dicomweb_url)
        else:
            source = DimseSource("127.0.0.1", self.server.dicom_port, self.server.aet)
        folder = self.work / run.name
        store = folder / "store" if level == "images" else None
        started = time.perf_counter()
        result = pull(
            source,
            folder / "index",
            level=level,
            store=store,
            find_limit=self.args.find_limit,
            throttle=throttle or ThrottleOptions(),
            progress=False,
        )
        wall = time.perf_counter() - started
        run.instances, run.bytes, run.seconds = result.instances, result.bytes, result.seconds
        if level == "metadata":
            run.bytes = 0
        expected = self.archive.instances
        run.ok = result.instances == expected and not result.failed_series
        if not run.ok:
            run.note = f"{result.instances} of {expected} instances, {result.failed_series} failed series"
        t = result.throttle
        own = {
            "idle_p50_ms": _ms(nearest_rank(result.idle_latency, 50)),
            "idle_p95_ms": _ms(nearest_rank(result.idle_latency, 95)),
            "during_p50_ms": _ms(nearest_rank(result.latencies, 50)),
            "during_p95_ms": _ms(nearest_rank(result.latencies, 95)),
            "probes": len(result.latencies),
        }
        run.extra = {
            "wall_seconds": wall,
            "studies": result.studies,
            "series": result.series,
            "failed_series": result.failed_series,
            "queries": result.queries,
            "retries": result.retries,
            "rows_committed": result.rows_committed,
            "throttle": {k: v for k, v in t.items() if isinstance(v, (int, float)) or v is None},
            "curate_own_probe": own,
        }
        if level == "images":
            files = [p for p in store.rglob("*.dcm")]
            run.extra["store_files"] = len(files)
            run.extra["store_bytes"] = sum(p.stat().st_size for p in files)

    # DCMTK

    def _parallel(self, command: Callable[[str], list[str]], workers: int) -> list[int]:
        def one(uid: str) -> int:
            done = subprocess.run(
                [*self.pinning.prefix(), *command(uid)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            if done.returncode:
                self._errors.append(done.stderr.strip().splitlines()[-1:] or [f"exit {done.returncode}"])
            return done.returncode

        self._errors: list = []
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(one, self.study_uids))

    def _count(self, run: Run, folder: Path, codes: list[int], seconds: float) -> None:
        files = [p for p in folder.rglob("*") if p.is_file()]
        run.instances, run.bytes, run.seconds = len(files), sum(p.stat().st_size for p in files), seconds
        failed = sum(1 for c in codes if c)
        run.ok = run.instances == self.archive.instances and not failed
        if not run.ok:
            first = self._errors[0][0] if self._errors else ""
            run.note = f"{run.instances} of {self.archive.instances} files, {failed} failed studies {first}".strip()
        run.extra = {"processes": len(codes), "failed_processes": failed}

    def getscu(self, run: Run, workers: int) -> None:
        out = self.work / run.name
        out.mkdir(parents=True)

        def command(uid: str) -> list[str]:
            keys = ["-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={uid}"]
            peer = ["127.0.0.1", str(self.server.dicom_port)]
            return [self.dcmtk["getscu"], "-S", "-aec", self.server.aet, *keys, "-od", str(out), *peer]

        started = time.perf_counter()
        codes = self._parallel(command, workers)
        self._count(run, out, codes, time.perf_counter() - started)

    def movescu(self, run: Run, workers: int) -> None:
        out = self.work / run.name
        out.mkdir(parents=True)
        scp_cmd = [*self.pinning.prefix(), self.dcmtk["storescp"], "--fork", "-aet", STORE_AET]
        scp_cmd += ["-od", str(out), str(self.store_port)]
        log = open(self.work / f"{run.name}-storescp.log", "wb")  # noqa: SIM115 - the process holds it
        scp = subprocess.Popen(scp_cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        try:
            _wait_port(self.store_port, scp)

            def command(uid: str) -> list[str]:
                keys = ["-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={uid}"]
                peer = ["127.0.0.1", str(self.server.dicom_port)]
                return [self.dcmtk["movescu"], "-S", "-aec", self.server.aet, "-aem", STORE_AET, *keys, *peer]

            started = time.perf_counter()
            codes = self._parallel(command, workers)
            seconds = time.perf_counter() - started
        finally:
            scp.terminate()
            try:
                scp.wait(10)
            except subprocess.TimeoutExpired:
                scp.kill()
                scp.wait()
        self._count(run, out, codes, seconds)
        run.extra["storescp"] = "--fork (a process per association)"


class CpuMeter:
    """CPU seconds spent from now until :meth:`read`: by Orthanc, by this process and the
    children it waited for (DCMTK, storescp), by the probe process, and by the whole machine
    (``/proc/stat``), so that the rest - other people's processes on a shared machine, and
    the kernel's work for loopback traffic - shows as ``other_s``."""

    tick = os.sysconf("SC_CLK_TCK")

    def __init__(self, server_pid: int, probe_pid: int | None = None):
        self.server_pid, self.probe_pid = server_pid, probe_pid
        self.start = self._now()

    @classmethod
    def _process(cls, pid: int | None) -> float:
        if pid is None:
            return 0.0
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / cls.tick  # utime, stime (all threads)

    @staticmethod
    def _client() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    @classmethod
    def _machine(cls) -> dict[str, float]:
        busy = {}
        for line in Path("/proc/stat").read_text().splitlines():
            name, *values = line.split()
            if name.startswith("cpu") and name != "cpu":
                v = [int(x) for x in values]
                busy[name] = (sum(v[:8]) - v[3] - v[4]) / cls.tick  # all but idle and iowait
        return busy

    def _now(self) -> tuple[float, float, float, dict[str, float]]:
        return self._process(self.server_pid), self._client(), self._process(self.probe_pid), self._machine()

    def read(self) -> dict:
        now = self._now()
        server, client, probe = (round(b - a, 3) for a, b in zip(self.start[:3], now[:3], strict=True))
        per_cpu = {name: round(now[3][name] - self.start[3].get(name, 0.0), 3) for name in now[3]}
        total = sum(per_cpu.values())
        return {
            "server_s": server,
            "client_s": client,
            "probe_process_s": probe,
            "machine_busy_s": round(total, 3),
            "machine_busy_by_cpu_s": per_cpu,
            "other_s": round(total - server - client - probe, 3),
        }


def wait_quiet(server_pid: int, probe_pid: int | None, limit_s: float, threshold: float) -> dict:
    """Wait (up to `limit_s`) for a second in which processes other than the benchmark's
    used less than `threshold` of a CPU: on a shared machine, a run started while someone
    else's tests run measures them as much as the pull."""
    started = time.monotonic()
    while True:
        meter = CpuMeter(server_pid, probe_pid)
        time.sleep(1.0)
        other = meter.read()["other_s"]
        waited = time.monotonic() - started
        if other < threshold or waited >= limit_s:
            return {"waited_s": round(waited, 1), "other_cpu_last_s": other, "quiet": other < threshold}


def _loads(loads: tuple[float, float, float]) -> str:
    return " ".join(f"{x:.2f}" for x in loads)


def _ms(seconds: float | None) -> float | None:
    return seconds * 1000 if seconds is not None else None


def _wait_port(port: int, process: subprocess.Popen, timeout: float = 10.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"storescp exited with {process.returncode}")
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"storescp did not listen on port {port} within {timeout:.0f} s")


def find_dcmtk() -> dict[str, str]:
    """DCMTK's programs. Not simply the first on PATH: pynetdicom installs Python apps
    with the same names (getscu, movescu, storescp...) into the virtual environment."""
    found = {}
    dirs = [*os.environ.get("PATH", "").split(os.pathsep), "/usr/bin", "/usr/local/bin"]
    for name in ("getscu", "movescu", "storescp"):
        for folder in dirs:
            path = Path(folder) / name
            if not (path.is_file() and os.access(path, os.X_OK)):
                continue
            version = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=10)
            if "dcmtk" in (version.stdout + version.stderr).lower():
                found[name] = str(path)
                found.setdefault("version", (version.stdout.strip().splitlines() or [""])[0].strip("$ "))
                break
    return found


#: (name, tool, protocol, level, settings)
RUNS = (
    ("curate-metadata-dicomweb", "curate", "DICOMweb", "metadata", "default"),
    ("curate-metadata-dimse", "curate", "DIMSE", "metadata", "default"),
    ("curate-images-dicomweb", "curate", "DICOMweb", "images", "default"),
    ("curate-images-dimse", "curate", "DIMSE", "images", "default"),
    ("curate-images-dicomweb-unthrottled", "curate", "DICOMweb", "images", "unthrottled x8"),
    ("curate-images-dimse-unthrottled", "curate", "DIMSE", "images", "unthrottled x8"),
    ("curate-images-dimse-unthrottled-x4", "curate", "DIMSE", "images", "unthrottled x4"),
    ("getscu-x4", "dcmtk getscu", "DIMSE C-GET", "images", "4 parallel"),
    ("getscu-x1", "dcmtk getscu", "DIMSE C-GET", "images", "1 at a time"),
    ("movescu-x4", "dcmtk movescu", "DIMSE C-MOVE", "images", "4 parallel"),
    ("movescu-x1", "dcmtk movescu", "DIMSE C-MOVE", "images", "1 at a time"),
)


def execute(bench: Bench, run: Run) -> None:
    from curate.pull import ThrottleOptions

    unthrottled = {
        "unthrottled x8": ThrottleOptions(max_concurrency=8, min_concurrency=8, slow_factor=1e9),
        "unthrottled x4": ThrottleOptions(max_concurrency=4, min_concurrency=4, slow_factor=1e9),
    }
    if run.tool == "curate":
        kind = "dicomweb" if run.protocol == "DICOMweb" else "dimse"
        bench.curate(run, kind, run.level, unthrottled.get(run.settings))
    elif run.tool == "dcmtk getscu":
        bench.getscu(run, 4 if run.settings.startswith("4") else 1)
    else:
        bench.movescu(run, 4 if run.settings.startswith("4") else 1)


# --- the report ---------------------------------------------------------------------------------


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table(rows: list[dict]) -> str:
    head = (
        "| run | tool | protocol | level | settings | instances | seconds | inst/s | MB/s "
        "| probe p50/p95 ms | p95 vs idle | process probe p50/p95 ms | p95 vs idle | Orthanc CPU s | other CPU s |"
    )
    lines = [head, "| " + " | ".join(["---"] * 5 + ["---:"] * 10) + " |"]
    for r in rows:
        t, p, cpu = r["probe_thread"], r["probe_process"], r.get("cpu", {})
        lines.append(
            f"| {r['name']} | {r['tool']} | {r['protocol']} | {r['level']} | {r['settings']} "
            f"| {r['instances']:,}{'' if r['ok'] else ' (!)'} | {r['seconds']:.1f} | {r['instances_per_s']:.1f} "
            f"| {'-' if r['level'] == 'metadata' else format(r['mb_per_s'], '.2f')} "
            f"| {_fmt(t['p50_ms'], '.1f')} / {_fmt(t['p95_ms'], '.1f')} | {_fmt(t['p95_vs_idle'], '.2f')}x "
            f"| {_fmt(p['p50_ms'], '.1f')} / {_fmt(p['p95_ms'], '.1f')} | {_fmt(p['p95_vs_idle'], '.2f')}x "
            f"| {_fmt(cpu.get('server_s'), '.1f')} | {_fmt(cpu.get('other_s'), '.1f')} |"
        )
    return "\n".join(lines)


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "MISSED")


def targets(rows: dict[str, dict], studies: int) -> list[dict]:
    out = []
    limit = TARGET_METADATA_S * studies / TARGET_STUDIES
    scaled = "" if studies == TARGET_STUDIES else f" (scaled from {TARGET_METADATA_S:.0f} s for {TARGET_STUDIES})"
    for name in ("curate-metadata-dicomweb", "curate-metadata-dimse"):
        r = rows.get(name)
        ok = None if r is None else (r["seconds"] < limit and r["ok"])
        value = None if r is None else f"{r['seconds']:.1f} s"
        out.append({"target": f"{name}: {studies} studies in under {limit:.1f} s{scaled}", "value": value, "met": ok})
    for name in ("curate-metadata-dicomweb", "curate-metadata-dimse", "curate-images-dicomweb", "curate-images-dimse"):
        r = rows.get(name)
        for probe in ("probe_thread", "probe_process"):
            ratio = None if r is None else r[probe]["p95_vs_idle"]
            out.append(
                {
                    "target": f"{name}: {probe.replace('_', ' ')} p95 during / idle p95 <= {TARGET_P95_RATIO:.0f}x",
                    "value": None if ratio is None else f"{ratio:.3f}x",
                    "met": None if ratio is None else ratio <= TARGET_P95_RATIO,
                }
            )
    for default, fast in (
        ("curate-images-dimse", "curate-images-dimse-unthrottled"),
        ("curate-images-dicomweb", "curate-images-dicomweb-unthrottled"),
        ("curate-images-dimse", "curate-images-dimse-unthrottled-x4"),
    ):
        a, b = rows.get(default), rows.get(fast)
        share = a["instances_per_s"] / b["instances_per_s"] if a and b and b["instances_per_s"] else None
        out.append(
            {
                "target": f"{default} rate / {fast} rate >= {TARGET_RATE_SHARE:.0%}",
                "value": None if share is None else f"{share:.0%}",
                "met": None if share is None else share >= TARGET_RATE_SHARE,
            }
        )
    return out


def machine() -> dict:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def orthanc_version(server) -> str:
    try:
        with server.session() as s:
            return s.get(f"{server.url}/system", timeout=10).json().get("Version", "")
    except Exception:  # noqa: BLE001
        return ""


# --- main ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=int, default=TARGET_STUDIES, help="studies in the generated archive")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 60 studies, 2 s idle")
    parser.add_argument("--seed", type=int, default=0, help="the archive's seed")
    parser.add_argument("--find-limit", type=int, default=0, help="Orthanc's cap on C-FIND answers (0: none)")
    parser.add_argument("--idle-seconds", type=float, default=5.0, help="idle probing before the first run")
    parser.add_argument("--probe-interval", type=float, default=0.2, help="seconds between probes")
    parser.add_argument("--runs", help=f"comma-separated subset of: {', '.join(r[0] for r in RUNS)}")
    parser.add_argument("--no-pin", action="store_true", help="do not pin the server and the client to CPUs")
    parser.add_argument(
        "--tcp-nodelay",
        action="store_true",
        help="set TCP_NODELAY=1 in the environment of Orthanc and the DCMTK programs (DCMTK as Debian builds it "
        "leaves Nagle's algorithm on without it; curate's pynetdicom client turns it off on its own side)",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=60.0,
        help=f"before each run, wait up to this many seconds for a second in which other processes use "
        f"under {QUIET_CPU * 100:.0f}%% of a CPU (0: do not wait)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder (printed)")
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "pull_throughput.json", help="where the JSON goes")
    parser.add_argument("--probe-child", nargs=3, metavar=("URL", "OUT", "INTERVAL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe_child:
        url, out, interval = args.probe_child
        probe_child(url, out, float(interval))
        return
    if args.quick:
        args.studies = min(args.studies, 60)
        args.idle_seconds = min(args.idle_seconds, 2.0)
    wanted = [r for r in RUNS if not args.runs or r[0] in args.runs.split(",")]
    unknown = set(args.runs.split(",")) - {r[0] for r in RUNS} if args.runs else set()
    if unknown:
        parser.error(f"unknown runs: {', '.join(sorted(unknown))}")

    from curate.pull.sandbox import LocalOrthanc, free_port, generate_archive, orthanc_available

    if not orthanc_available():
        raise SystemExit("needs Orthanc and its DICOMweb plugin (apt-get install orthanc orthanc-dicomweb)")
    if args.tcp_nodelay:
        os.environ["TCP_NODELAY"] = "1"  # read by DCMTK: Orthanc's DIMSE server and DCMTK's programs
    nodelay = os.environ.get("TCP_NODELAY")
    pinning = Pinning(not args.no_pin)
    pinning.client()  # before any thread starts, so that every later thread inherits it
    print(pinning.note)
    print(f"TCP_NODELAY for DCMTK (Orthanc's DIMSE side, getscu, movescu, storescp): {nodelay or 'unset'}")
    dcmtk = find_dcmtk()
    if any(r[1].startswith("dcmtk") for r in wanted) and not {"getscu", "movescu", "storescp"} <= set(dcmtk):
        raise SystemExit("needs DCMTK's getscu, movescu and storescp (apt-get install dcmtk)")

    load_start = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="curate-pull-bench-"))
    bench = Bench(args, work, pinning)
    bench.dcmtk = dcmtk
    bench.store_port = free_port()
    thread_probe = process_probe = None
    process_samples = Samples()
    try:
        started = time.perf_counter()
        bench.archive = generate_archive(work / "archive", studies=args.studies, seed=args.seed)
        print(
            f"archive: {bench.archive.studies:,} studies, {bench.archive.series:,} series, "
            f"{bench.archive.instances:,} instances, {bench.archive.bytes / 1e6:.1f} MB "
            f"({time.perf_counter() - started:.1f} s)"
        )
        bench.server = server = LocalOrthanc(
            work / "orthanc",
            find_limit=args.find_limit,
            modalities={STORE_AET: (STORE_AET, "127.0.0.1", bench.store_port)},
        ).start()
        pinning.server(server.process.pid)
        started = time.perf_counter()
        server.upload(bench.archive.files)
        stats = server.statistics()
        version = orthanc_version(server)
        loaded = time.perf_counter() - started
        print(f"Orthanc {version}: {stats['CountInstances']:,} instances loaded ({loaded:.1f} s)")
        with server.session() as s:
            studies = s.get(f"{server.url}/studies", params={"expand": ""}, timeout=60).json()
        bench.study_uids = sorted(st["MainDicomTags"]["StudyInstanceUID"] for st in studies)

        thread_probe = ThreadProbe(server.dicomweb_url, args.probe_interval)
        process_probe = ProcessProbe(
            server.dicomweb_url, args.probe_interval, work / "probe-process.txt", pinning.prefix()
        )
        thread_probe.start()
        idle_start = time.monotonic()
        time.sleep(args.idle_seconds)
        idle_end = time.monotonic()

        runs: list[Run] = []
        for name, tool, protocol, level, settings in wanted:
            time.sleep(SETTLE_S)
            run = Run(name, tool, protocol, level, settings)
            print(f"  {name} ...", end="", flush=True)
            quiet = None
            if args.quiet_wait > 0:
                quiet = wait_quiet(server.process.pid, process_probe.process.pid, args.quiet_wait, QUIET_CPU)
                if quiet["waited_s"] > 1.5:
                    state = "" if quiet["quiet"] else ", still busy"
                    print(f" (waited {quiet['waited_s']:.0f} s for a quiet machine{state})", end="", flush=True)
            cpu = CpuMeter(server.process.pid, process_probe.process.pid)
            run.start = time.monotonic()
            try:
                execute(bench, run)
            except Exception as e:  # noqa: BLE001 - one failed run is a row, not the end
                run.ok, run.note = False, f"{type(e).__name__}: {e}"
            run.end = time.monotonic()
            run.extra["cpu"] = cpu.read()
            run.extra["quiet_wait"] = quiet
            if not run.seconds:
                run.seconds = run.end - run.start
            print(f" {run.instances:,} instances in {run.seconds:.1f} s{'' if run.ok else '  ' + run.note}")
            runs.append(run)
        time.sleep(SETTLE_S)
        after_start = time.monotonic()
        time.sleep(args.idle_seconds)
        after_end = time.monotonic()
        server_masks = affinities(server.process.pid)
        client_masks = affinities(os.getpid())
    finally:
        if thread_probe is not None:
            thread_probe.stop()
        if process_probe is not None:
            process_probe.stop()
            process_samples = process_probe.samples()  # before the work folder goes
        if bench.server is not None:
            bench.server.stop()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    probes = {"probe_thread": thread_probe.samples, "probe_process": process_samples}
    idle = {k: Samples.stats(s.between(idle_start, idle_end)) for k, s in probes.items()}
    idle_after = {k: Samples.stats(s.between(after_start, after_end)) for k, s in probes.items()}
    rows = []
    for run in runs:
        row = {
            "name": run.name,
            "tool": run.tool,
            "protocol": run.protocol,
            "level": run.level,
            "settings": run.settings,
            "instances": run.instances,
            "bytes": run.bytes,
            "seconds": run.seconds,
            "instances_per_s": run.rate,
            "mb_per_s": run.mb_s,
            "ok": run.ok,
            "note": run.note,
            "window_s": [round(run.start - idle_start, 3), round(run.end - idle_start, 3)],  # as probe_samples
            **run.extra,
        }
        for key, samples in probes.items():
            st = Samples.stats(samples.between(run.start, run.end))
            base = idle[key]["p95_ms"]
            st["p95_vs_idle"] = st["p95_ms"] / base if st["p95_ms"] is not None and base else None
            row[key] = st
        rows.append(row)
    verdicts = targets({r["name"]: r for r in rows}, args.studies)

    a = bench.archive
    print(
        f"\n{a.studies:,} studies, {a.series:,} series, {a.instances:,} instances ({a.bytes / 1e6:.1f} MB), "
        f"find_limit {args.find_limit}, TCP_NODELAY {nodelay or 'unset'}; {pinning.note}"
    )
    for key, label in (("probe_thread", "probe (thread)"), ("probe_process", "probe (process)")):
        i, j = idle[key], idle_after[key]
        print(
            f"{label}: idle before p50 {_fmt(i['p50_ms'], '.1f')} / p95 {_fmt(i['p95_ms'], '.1f')} ms "
            f"({i['probes']} probes); idle after p50 {_fmt(j['p50_ms'], '.1f')} / p95 {_fmt(j['p95_ms'], '.1f')} ms"
        )
    end_load = os.getloadavg()
    print(f"load average (1, 5, 15 min): {_loads(load_start)} at the start, {_loads(end_load)} at the end")
    print()
    print(table(rows))
    if not all(r["ok"] for r in rows):
        print("\n(!): not every instance arrived, or a process failed; see the JSON's note")
    print()
    for v in verdicts:
        print(f"  {verdict(v['met']):<7} {v['target']}: {v['value'] or '-'}")
    write_json(
        args.json,
        {
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": machine(),
            "pinning": {**pinning.describe(), "server_thread_masks": server_masks, "client_thread_masks": client_masks},
            "orthanc": {"version": version, "find_limit": args.find_limit},
            "dcmtk": dcmtk.get("version", ""),
            "tcp_nodelay_env": nodelay,
            "archive": {
                "studies": a.studies,
                "series": a.series,
                "instances": a.instances,
                "bytes": a.bytes,
                "seed": args.seed,
            },
            "probe": {
                "interval_s": args.probe_interval,
                "query": "GET {dicomweb}/studies?limit=1",
                "idle_before": idle,
                "idle_after": idle_after,
            },
            "load_average": {"start": load_start, "end": end_load},
            "runs": rows,
            "targets": verdicts,
            "probe_samples": {
                key: [[round(t - idle_start, 3), None if lat is None else round(lat * 1000, 2)] for t, lat in s.points]
                for key, s in probes.items()
            },
        },
    )


if __name__ == "__main__":
    main()

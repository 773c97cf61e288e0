"""Compare DICOM header parsers side by side on the same files in one run.

The files are listed once and read once to put them in the page cache, so every
tool is timed on the same warm files. Each tool then runs in a fresh process
(peak memory is its own) and only its parsing is timed. Tools:

  floor       native-baselines/floor: open, read the first 8 KiB, close
  curate      curate.scan(paths, threads=T)
  dicomrs     native-baselines/dicomrs: dicom-rs 0.10, read until Pixel Data
  gdcm        python-gdcm's gdcm.Scanner (one thread)
  dcmtk       dcmdump over batches of files, T processes at a time
  pydicom-mp  pydicom dcmread(stop_before_pixels=True), a pool of T processes
  pydicom     the same in one process

A tool that is missing is reported as unavailable, with the reason. The slow
tools (gdcm, dcmtk, pydicom, pydicom-mp) can be timed on an evenly spread
subset (--max-files-slow); their rows say so, and their files/s are the
subset's.

Build the native baselines first:
  cargo build --release --manifest-path benchmarks/native-baselines/Cargo.toml
"""

from __future__ import annotations

import argparse
import datetime
import operator
import os
import platform
import sys
import tempfile
from pathlib import Path

from benchlib import (
    BENCH_DIR,
    DEFAULT_PIXEL_BYTES,
    RESULTS_DIR,
    ensure_corpus,
    list_files,
    print_table,
    run_measured,
    write_json,
)

TOOLS = ["floor", "curate", "dicomrs", "gdcm", "dcmtk", "pydicom-mp", "pydicom"]
NATIVE_TOOLS = {"floor", "dicomrs"}
SLOW_TOOLS = {"gdcm", "dcmtk", "pydicom-mp", "pydicom"}
# Tools that run several processes: their memory is sampled over the process tree.
MULTI_PROCESS_TOOLS = {"dcmtk", "pydicom-mp"}
# Leave this much memory free when deciding whether whole files fit in the page cache.
CACHE_HEADROOM = 2 * 1024**3
# Bytes per file warmed when whole files do not fit: far more than any header here.
HEADER_WARM_BYTES = 256 * 1024


def default_native_dir() -> Path:
    """Where cargo puts the baseline binaries (CARGO_TARGET_DIR if set)."""
    target = os.environ.get("CARGO_TARGET_DIR")
    base = Path(target) if target else BENCH_DIR / "native-baselines" / "target"
    return base / "release"


def available_memory() -> int:
    """MemAvailable from /proc/meminfo, in bytes (0 where there is none)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def warm_page_cache(paths: list[str]) -> str:
    """Read the files once so that no tool pays for the disk.

    Whole files are read when they fit in free memory; otherwise only their
    first HEADER_WARM_BYTES, which holds every header a tool reads here.
    Returns what was warmed, for the report.
    """
    total = sum(os.path.getsize(p) for p in paths)
    whole = total + CACHE_HEADROOM < available_memory()
    limit = None if whole else HEADER_WARM_BYTES
    for path in paths:
        with open(path, "rb") as f:
            if limit:
                f.read(limit)
            else:
                while f.read(1 << 20):
                    pass
    if whole:
        return f"whole files ({total / 1024**2:,.0f} MiB)"
    return (
        f"first {HEADER_WARM_BYTES // 1024} KiB of each file "
        f"({total / 1024**3:,.1f} GiB of files do not fit in free memory)"
    )


def spread_subset(paths: list[str], size: int) -> list[str]:
    """`size` paths spread evenly over the sorted list, so the subset has the
    corpus's mix of patients and modalities rather than its first folders."""
    if size >= len(paths):
        return paths
    return [paths[i * len(paths) // size] for i in range(size)]


def tool_command(tool: str, list_file: str, threads: int, native_dir: Path) -> list[str] | str:
    """The command that runs one tool once, or why it cannot run."""
    if tool in NATIVE_TOOLS:
        binary = native_dir / tool
        if not binary.is_file():
            return f"{binary} not built (cargo build --release --manifest-path benchmarks/native-baselines/Cargo.toml)"
        return [str(binary), "--list", list_file, "--threads", str(threads)]
    return [
        sys.executable,
        str(BENCH_DIR / "parsers.py"),
        tool,
        list_file,
        "--threads",
        str(threads),
    ]


def measure_tool(tool: str, paths: list[str], args: argparse.Namespace, workdir: str) -> dict:
    """Run one tool `args.repeat` times; keep the fastest run and the highest memory."""
    subset = tool in SLOW_TOOLS and args.max_files_slow and len(paths) > args.max_files_slow
    files = spread_subset(paths, args.max_files_slow) if subset else paths
    list_file = os.path.join(workdir, f"{tool}.txt")
    with open(list_file, "w") as f:
        f.write("\n".join(files) + "\n")
    row = {"tool": tool, "subset": bool(subset), "corpus_files": len(paths)}
    command = tool_command(tool, list_file, args.threads, args.native_dir)
    if isinstance(command, str):
        return {**row, "status": "unavailable", "reason": command}
    runs = []
    for _ in range(args.repeat):
        child = run_measured(command, sample_tree=tool in MULTI_PROCESS_TOOLS)
        result = child.last_json()
        if child.returncode != 0 or result is None:
            return {**row, "status": "failed", "reason": child.error_tail()}
        if "unavailable" in result:
            return {**row, "status": "unavailable", "reason": result["unavailable"]}
        runs.append((result, child.peak_rss_bytes()))
    best = min(runs, key=lambda run: run[0]["seconds"])[0]
    seconds = best["seconds"]
    return {
        **row,
        "status": "ok",
        "files": best["files"],
        "ok": best["ok"],
        "workers": best.get("workers", best.get("threads")),
        "version": best.get("version"),
        "seconds": seconds,
        "all_seconds": [run[0]["seconds"] for run in runs],
        "files_per_s": best["files"] / seconds if seconds > 0 else None,
        "peak_rss_mib": max(run[1] for run in runs) / 1024**2,
    }


def add_ratios(rows: list[dict]) -> None:
    """files/s of each tool relative to the floor and to pydicom in one process."""
    speed = {r["tool"]: r.get("files_per_s") for r in rows if r["status"] == "ok"}
    for row in rows:
        for key, reference in (("x_floor", "floor"), ("x_pydicom", "pydicom")):
            mine, ref = row.get("files_per_s"), speed.get(reference)
            row[key] = mine / ref if mine and ref else None


def check_targets(rows: list[dict]) -> list[dict]:
    """The project's targets for curate, each met, missed or not measurable."""
    speed = {r["tool"]: r.get("files_per_s") for r in rows if r["status"] == "ok"}
    curate = speed.get("curate")
    targets = [
        ("curate >= 50% of the floor's files/s", "floor", operator.ge, 0.5),
        ("curate >= 40x pydicom (one process)", "pydicom", operator.ge, 40.0),
        ("curate >= 10x GDCM", "gdcm", operator.ge, 10.0),
        ("curate ahead of dicom-rs", "dicomrs", operator.gt, 1.0),
    ]
    checked = []
    for text, reference, compare, factor in targets:
        ref = speed.get(reference)
        ratio = curate / ref if curate and ref else None
        verdict = "n/a" if ratio is None else ("met" if compare(ratio, factor) else "missed")
        checked.append({"target": text, "ratio": ratio, "verdict": verdict})
    return checked


def print_results(rows: list[dict]) -> None:
    for r in rows:
        if r["status"] != "ok":
            print(f"{r['tool']}: {r['status']}: {r['reason']}")
    table = []
    for r in rows:
        if r["status"] != "ok":
            continue
        note = ""
        if r["subset"]:
            estimate = r["corpus_files"] / r["files_per_s"]
            note = f"subset of {r['corpus_files']:,} files (all: ~{estimate:,.0f} s)"
        table.append(
            [r["tool"], r["workers"], r["files"], r["ok"], r["seconds"], r["files_per_s"], r["x_floor"],
             r["x_pydicom"], r["peak_rss_mib"], note]
        )  # fmt: skip
    print_table(
        ["tool", "workers", "files", "ok", "seconds", "files/s", "x floor", "x pydicom", "peak MiB", "note"],
        table,
        ["", "", ",", ",", ".3f", ",.0f", ".3f", ".1f", ".1f", ""],
    )


def print_targets(targets: list[dict]) -> None:
    print()
    for t in targets:
        ratio = "" if t["ratio"] is None else f" (ratio {t['ratio']:.2f})"
        print(f"  [{t['verdict']:^6}] {t['target']}{ratio}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("corpus", nargs="?", type=Path, help="folder of DICOM files")
    source.add_argument(
        "--generate",
        type=int,
        metavar="N",
        help="generate (or reuse) an N-file corpus under benchmarks/corpus/",
    )
    parser.add_argument(
        "--pixel-bytes",
        type=int,
        default=DEFAULT_PIXEL_BYTES,
        help=f"with --generate: pixel data bytes per file (default {DEFAULT_PIXEL_BYTES})",
    )
    parser.add_argument("--seed", type=int, default=0, help="with --generate: seed (default 0)")
    parser.add_argument(
        "--tools",
        default=",".join(TOOLS),
        help=f"comma-separated tools to run (default: {','.join(TOOLS)})",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count() or 1,
        help="threads or processes for the parallel tools (default: all cores)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs per tool; the fastest is reported (default 1)",
    )
    parser.add_argument(
        "--max-files-slow",
        type=int,
        default=10000,
        metavar="M",
        help="time gdcm, dcmtk and pydicom on at most M files (default 10000; 0 = all files)",
    )
    parser.add_argument(
        "--native-dir",
        type=Path,
        default=default_native_dir(),
        help="folder holding the floor and dicomrs binaries",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=RESULTS_DIR / "compare_parsers.json",
        help="results file (default benchmarks/results/compare_parsers.json)",
    )
    args = parser.parse_args(argv)
    args.tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = sorted(set(args.tools) - set(TOOLS))
    if unknown:
        parser.error(f"unknown tools {unknown}; choose from {TOOLS}")
    if args.repeat < 1 or args.threads < 1 or args.max_files_slow < 0:
        parser.error("--repeat and --threads must be positive, --max-files-slow not negative")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    corpus = args.corpus or ensure_corpus(args.generate, args.pixel_bytes, args.seed)
    paths = list_files(corpus)
    if not paths:
        sys.exit(f"no files under {corpus}")
    print(f"{len(paths):,} files under {corpus}; {args.threads} threads; ", end="")
    print(f"best of {args.repeat}")
    warmed = warm_page_cache(paths)
    print(f"page cache: warmed {warmed}\n")
    with tempfile.TemporaryDirectory() as workdir:
        rows = [measure_tool(tool, paths, args, workdir) for tool in args.tools]
    add_ratios(rows)
    targets = check_targets(rows) if "curate" in args.tools else []
    print_results(rows)
    if targets:
        print_targets(targets)
    write_json(
        args.json,
        {
            "corpus": str(corpus.resolve()),
            "files": len(paths),
            "threads": args.threads,
            "repeat": args.repeat,
            "max_files_slow": args.max_files_slow,
            "page_cache": warmed,
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "python": platform.python_version(),
            },
            "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "results": rows,
            "targets": targets,
        },
    )


if __name__ == "__main__":
    main()

"""How much a rescan of an unchanged tree costs next to the first scan.

Builds the index of a corpus from nothing, then rescans it unchanged, then again after
touching a small share of the files, each in a fresh process (so the peak memory is the
run's own). Prints a table (seconds, ratio to the first scan, peak memory, memory per
file) and the index's size per file, and writes JSON.

  python benchmarks/rescan.py                    # generates 100,000 files without pixel data
  python benchmarks/rescan.py /data/corpus       # your own tree
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from benchlib import RESULTS_DIR, ensure_corpus, list_files, peak_rss_kib, print_table, run_measured, write_json


def child(source: str, index: str, threads: int) -> None:
    """One build_index run; prints JSON."""
    from curate.index import build_index

    start = time.perf_counter()
    summary = build_index(source, index, threads=threads or None, progress=False)
    print(
        json.dumps(
            {
                "seconds": time.perf_counter() - start,
                "files": summary.listed,
                "parsed": summary.scanned,
                "peak_kib": peak_rss_kib(),
            }
        )
    )


def measure(source: Path, index: Path, threads: int) -> dict:
    cmd = [sys.executable, __file__, "--child", str(source), str(index), "--threads", str(threads)]
    run = run_measured(cmd)
    if run.returncode != 0:
        raise SystemExit(f"scan failed:\n{run.stderr[-3000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", help="the tree to index (default: a generated corpus)")
    parser.add_argument("--count", type=int, default=100_000, help="files in the generated corpus")
    parser.add_argument("--touch", type=float, default=0.01, help="share of files touched before the last rescan")
    parser.add_argument("--threads", type=int, default=0, help="parser threads (0: every core)")
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "rescan.json")
    parser.add_argument("--child", nargs=2, metavar=("SOURCE", "INDEX"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child, args.threads)
        return

    source = Path(args.folder) if args.folder else ensure_corpus(args.count, 0, 0)
    files = list_files(source)
    workdir = Path(tempfile.mkdtemp(prefix="curate-rescan-"))
    index = workdir / "index"
    try:
        first = measure(source, index, args.threads)
        unchanged = measure(source, index, args.threads)
        touched = files[:: max(1, int(1 / args.touch))] if args.touch > 0 else []
        now = time.time()
        for path in touched:
            os.utime(path, (now, now))
        after_touch = measure(source, index, args.threads)
        size = sum(p.stat().st_size for p in (index / "parts").rglob("*.parquet"))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    rows = [("first scan", first), ("rescan, unchanged", unchanged), (f"rescan, {len(touched):,} touched", after_touch)]
    print(f"\n{len(files):,} files under {source}\n")
    print_table(
        ["run", "files", "parsed", "seconds", "x first", "peak MiB", "KiB/file"],
        [
            [
                name,
                r["files"],
                r["parsed"],
                r["seconds"],
                r["seconds"] / first["seconds"],
                (r["peak_kib"] or 0) / 1024,
                (r["peak_kib"] or 0) / max(1, r["files"]),
            ]
            for name, r in rows
        ],
        ["", ",", ",", ".2f", ".2f", ".1f", ".2f"],
    )
    print(f"\nindex parts: {size / 2**20:.1f} MiB, {size / max(1, len(files)):.0f} bytes per file")
    write_json(
        args.json,
        {
            "files": len(files),
            "runs": {name: r for name, r in rows},
            "index_bytes": size,
            "index_bytes_per_file": size / max(1, len(files)),
            "unchanged_rescan_ratio": unchanged["seconds"] / first["seconds"],
        },
    )


if __name__ == "__main__":
    main()

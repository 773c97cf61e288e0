"""Check that curate.scan_batches uses the same memory whatever the corpus size.

Scans two corpora (by default generated ones of 10,000 and 100,000 files with
no pixel data, which scan the same way and need far less disk), each in a fresh
process that consumes the record batches without keeping them, and reports each
process's peak resident memory and the ratio large / small. A streaming scanner
keeps that ratio near 1; one that accumulates rows grows with the file count.

  python benchmarks/memory_flat.py                       # generate 10k and 100k
  python benchmarks/memory_flat.py SMALL_DIR LARGE_DIR   # your own corpora
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from benchlib import (
    RESULTS_DIR,
    ensure_corpus,
    list_files,
    peak_rss_kib,
    print_table,
    run_measured,
    write_json,
)


def child(folder: str, threads: int) -> None:
    """Scan `folder` with scan_batches, dropping each batch; print JSON.

    Memory after the imports is reported too, so the scan's own growth can be
    told apart from the interpreter, pyarrow and curate themselves.
    """
    try:
        import curate

        scan_batches = curate.scan_batches
    # ImportError, or AttributeError from a package built without its native module.
    except Exception as exc:
        print(json.dumps({"unavailable": f"import curate failed: {type(exc).__name__}: {exc}"}))
        return
    after_import = peak_rss_kib()
    rows = ok = 0
    start = time.perf_counter()
    for batch in scan_batches(folder, threads=threads):
        rows += batch.num_rows
        if "status" in batch.schema.names:
            ok += sum(1 for s in batch.column("status").to_pylist() if s == "ok")
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "rows": rows,
                "ok": ok,
                "seconds": seconds,
                "after_import_kib": after_import,
                "vm_hwm_kib": peak_rss_kib(),
            }
        )
    )


def measure(folder: Path, threads: int) -> dict:
    """Run the child on one corpus; exits with the reason if curate cannot run."""
    files = len(list_files(folder))
    run = run_measured([sys.executable, __file__, "--child", str(folder), "--threads", str(threads)])
    result = run.last_json()
    if run.returncode != 0 or result is None:
        sys.exit(f"scan of {folder} failed: {run.error_tail()}")
    if "unavailable" in result:
        sys.exit(f"curate unavailable: {result['unavailable']}")
    return {
        "corpus": str(folder.resolve()),
        "files": files,
        "rows": result["rows"],
        "ok": result["ok"],
        "seconds": result["seconds"],
        "after_import_mib": (result["after_import_kib"] or 0) / 1024,
        "peak_rss_mib": run.peak_rss_bytes() / 1024**2,
    }


def report(small: dict, large: dict, tolerance: float) -> dict:
    """Print both runs and the verdict; returns the ratios and verdict."""
    print_table(
        ["files", "rows", "seconds", "after import MiB", "peak MiB"],
        [[r["files"], r["rows"], r["seconds"], r["after_import_mib"], r["peak_rss_mib"]] for r in (small, large)],
        [",", ",", ".2f", ".1f", ".1f"],
    )
    ratio = large["peak_rss_mib"] / small["peak_rss_mib"]
    growth_small = small["peak_rss_mib"] - small["after_import_mib"]
    growth_large = large["peak_rss_mib"] - large["after_import_mib"]
    verdict = "flat" if ratio <= tolerance else "grows"
    scale = large["files"] / small["files"]
    print(
        f"\npeak ratio {ratio:.2f} for {scale:.0f}x the files "
        f"(scan's own growth {growth_small:.1f} -> {growth_large:.1f} MiB): "
        f"{verdict} (tolerance {tolerance})"
    )
    return {"peak_ratio": ratio, "tolerance": tolerance, "verdict": verdict}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "folders",
        nargs="*",
        type=Path,
        help="two corpus folders, smaller first (default: generate them)",
    )
    parser.add_argument(
        "--sizes",
        default="10000,100000",
        help="file counts of the generated corpora (default 10000,100000)",
    )
    parser.add_argument(
        "--pixel-bytes",
        type=int,
        default=0,
        help="pixel data bytes per generated file (default 0)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated corpora")
    parser.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count() or 1,
        help="scan threads (default: all cores)",
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=1.2,
        help="largest peak ratio still called flat (default 1.2)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=RESULTS_DIR / "memory_flat.json",
        help="results file (default benchmarks/results/memory_flat.json)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.child and len(args.folders) not in (0, 2):
        parser.error("give two folders, or none to generate them")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        child(args.child, args.threads)
        return
    if args.folders:
        folders = args.folders
    else:
        sizes = sorted(int(s) for s in args.sizes.split(","))
        if len(sizes) != 2:
            sys.exit("--sizes needs two counts")
        folders = [ensure_corpus(n, args.pixel_bytes, args.seed) for n in sizes]
    small, large = (measure(folder, args.threads) for folder in folders)
    verdict = report(small, large, args.tolerance)
    write_json(args.json, {"threads": args.threads, "runs": [small, large], **verdict})


if __name__ == "__main__":
    main()

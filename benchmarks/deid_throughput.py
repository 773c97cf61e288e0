"""De-identification throughput on CXR-sized files, side by side with a plain copy.

Generates (or reuses) a corpus of files with about 10 MB of pixel data each, then times,
one after the other on the same files with the page cache warm:

* ``copy``: a plain copy of every file (the floor: reading and writing the bytes);
* ``curate``: ``curate.deid.tree.deidentify_tree`` on every core (quarantine off, so that
  every tool handles the same files);
* ``pydicom``: a minimal pydicom de-identifier (read, blank the patient's name and ID,
  write) on every core, the least a pydicom-based tool does;
* ``dicognito``: dicognito's ``Anonymizer`` on every core, if it is installed.

Prints files/s, MB/s and the ratio to the copy, and writes JSON.

  python benchmarks/deid_throughput.py --count 100
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from benchlib import RESULTS_DIR, ensure_corpus, list_files, write_json

KEY = b"benchmark key, not a secret: 0123456789abcdef"


def _copy(args: tuple[str, str]) -> None:
    shutil.copyfile(*args)


def _pydicom_minimal(args: tuple[str, str]) -> None:
    import pydicom

    ds = pydicom.dcmread(args[0])
    ds.PatientName = ""
    ds.PatientID = "ANON"
    ds.save_as(args[1], enforce_file_format=True)


def _dicognito(args: tuple[str, str]) -> None:
    import pydicom
    from dicognito.anonymizer import Anonymizer

    ds = pydicom.dcmread(args[0])
    Anonymizer(seed="benchmark").anonymize(ds)
    ds.save_as(args[1], enforce_file_format=True)


def _per_file(function, files: list[str], out: Path, workers: int) -> float:
    out.mkdir(parents=True)
    jobs = [(f, str(out / f"{i:06d}.dcm")) for i, f in enumerate(files)]
    start = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(function, jobs, chunksize=4))
    return time.perf_counter() - start


def _curate(source: Path, out: Path, workers: int) -> tuple[float, int]:
    from curate.deid.tree import deidentify_tree

    start = time.perf_counter()
    summary = deidentify_tree(source, out, KEY, quarantine=False, workers=workers, progress=False)
    return time.perf_counter() - start, summary.written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", help="corpus folder (default: generated)")
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--pixel-bytes", type=int, default=10_000_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "deid_throughput.json")
    args = parser.parse_args()

    source = Path(args.folder) if args.folder else ensure_corpus(args.count, args.pixel_bytes, 0)
    files = list_files(source)
    megabytes = sum(os.path.getsize(f) for f in files) / 1e6
    for f in files:  # warm the page cache
        Path(f).read_bytes()
    work = Path(tempfile.mkdtemp(prefix="curate-deid-bench-"))
    rows = []
    try:
        rows.append(("copy", len(files), _per_file(_copy, files, work / "copy", args.workers)))
        seconds, written = _curate(source, work / "curate", args.workers)
        rows.append(("curate", written, seconds))
        rows.append(
            ("pydicom (minimal)", len(files), _per_file(_pydicom_minimal, files, work / "pydicom", args.workers))
        )
        try:
            import dicognito  # noqa: F401

            rows.append(("dicognito", len(files), _per_file(_dicognito, files, work / "dicognito", args.workers)))
        except ImportError:
            print("dicognito is not installed (pip install dicognito): skipped", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    copy_rate = rows[0][1] / rows[0][2]
    print(f"\n{len(files):,} files, {megabytes:,.0f} MB, {args.workers} workers\n")
    print(f"{'tool':<20}{'files':>7}{'seconds':>10}{'files/s':>10}{'MB/s':>9}{'x copy':>8}")
    results = []
    for name, count, seconds in rows:
        rate = count / seconds
        mb = megabytes * count / len(files) / seconds
        print(f"{name:<20}{count:>7,}{seconds:>10.2f}{rate:>10.1f}{mb:>9.0f}{rate / copy_rate:>8.2f}")
        results.append(
            {
                "tool": name,
                "files": count,
                "seconds": seconds,
                "files_per_s": rate,
                "mb_per_s": mb,
                "x_copy": rate / copy_rate,
            }
        )
    write_json(args.json, {"files": len(files), "megabytes": megabytes, "workers": args.workers, "results": results})


if __name__ == "__main__":
    main()

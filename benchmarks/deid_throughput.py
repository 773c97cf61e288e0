"""De-identification throughput on CXR-sized files, side by side with a plain copy.

Generates (or reuses) a corpus of files with about 10 MB of pixel data each, exactly as
large as Rows x Columns say, as a real radiograph's (bytes past the image are searched for
the patient's values: megabytes of random bytes there would time that search, which real
files rarely need), then times, one after the other on the same files with the page
cache warm, in interleaved rounds:

* ``cp``: ``cp -r --reflink=never`` of the tree (the baseline the target is set against);
* ``copy``: a plain copy of every file on every core (reading and writing the bytes);
* ``curate``: ``curate.deid.tree.deidentify_tree`` on every core (quarantine off, so that
  every tool handles the same files), verification and run log included;
* ``pydicom``: a minimal pydicom de-identifier (read, blank the patient's name and ID,
  write) on every core, the least a pydicom-based tool does;
* ``dicognito``: dicognito's ``Anonymizer`` on every core, if it is installed.

Dirty pages are written back (``sync``) before each timing, so that no tool pays for
the one before it; each tool's best round is kept (the disk's writeback swings rates
between rounds). Prints files/s, MB/s, the ratio to ``cp`` and to the parallel copy,
the target (curate at least 0.5x ``cp``), and writes JSON.

  python benchmarks/deid_throughput.py --count 100 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from benchlib import RESULTS_DIR, ensure_corpus, list_files, print_table, write_json

KEY = b"benchmark key, not a secret: 0123456789abcdef"
#: curate's files/s against cp --reflink=never's, verification included.
TARGET = 0.5


def _cp(source: Path, out: Path) -> tuple[int, float]:
    start = time.perf_counter()
    subprocess.run(["cp", "-r", "--reflink=never", str(source), str(out)], check=True)
    return len(list_files(out)), time.perf_counter() - start


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
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds; each tool's best is kept")
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "deid_throughput.json")
    args = parser.parse_args()

    source = Path(args.folder) if args.folder else ensure_corpus(args.count, args.pixel_bytes, 0, decodable=True)
    files = list_files(source)
    megabytes = sum(os.path.getsize(f) for f in files) / 1e6
    for f in files:  # warm the page cache
        Path(f).read_bytes()
    work = Path(tempfile.mkdtemp(prefix="curate-deid-bench-"))
    timings: dict[str, list[tuple[int, float]]] = {}
    tools = [
        ("cp", lambda out: _cp(source, out)),
        ("copy", lambda out: (len(files), _per_file(_copy, files, out, args.workers))),
        ("curate", lambda out: _curate(source, out, args.workers)[::-1]),
        ("pydicom (minimal)", lambda out: (len(files), _per_file(_pydicom_minimal, files, out, args.workers))),
    ]
    try:
        import dicognito  # noqa: F401

        tools.append(("dicognito", lambda out: (len(files), _per_file(_dicognito, files, out, args.workers))))
    except ImportError:
        print("dicognito is not installed (pip install dicognito): skipped", file=sys.stderr)
    try:
        for round_ in range(args.repeat):
            for name, run in tools:
                out = work / f"{name.split()[0]}-{round_}"
                os.sync()
                timings.setdefault(name, []).append(run(out))
                shutil.rmtree(out, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    best = {name: min(runs, key=lambda r: r[1] / max(r[0], 1)) for name, runs in timings.items()}
    cp_rate = best["cp"][0] / best["cp"][1]
    copy_rate = best["copy"][0] / best["copy"][1]
    print(f"\n{len(files):,} files, {megabytes:,.0f} MB, {args.workers} workers, best of {args.repeat} rounds\n")
    results, table = [], []
    for name, (count, seconds) in best.items():
        rate = count / seconds
        mb = megabytes * count / len(files) / seconds
        table.append([name, count, seconds, rate, mb, rate / cp_rate, rate / copy_rate])
        rates = [c / s for c, s in timings[name]]
        results.append(
            {
                "tool": name,
                "files": count,
                "seconds": seconds,
                "files_per_s": rate,
                "files_per_s_rounds": rates,
                "mb_per_s": mb,
                "x_cp": rate / cp_rate,
                "x_copy": rate / copy_rate,
            }
        )
    print_table(
        ["tool", "files", "seconds", "files/s", "MB/s", "x cp", "x copy"],
        table,
        ["", ",", ".2f", ".1f", ".0f", ".2f", ".2f"],
    )
    curate_x = best["curate"][0] / best["curate"][1] / cp_rate
    verdict = "met" if curate_x >= TARGET else "missed"
    print(f"\ntarget: curate at least {TARGET}x cp --reflink=never: {verdict} ({curate_x:.2f}x)")
    target = {"x_cp": curate_x, "target": TARGET, "verdict": verdict}
    write_json(
        args.json,
        {
            "files": len(files),
            "megabytes": megabytes,
            "workers": args.workers,
            "repeat": args.repeat,
            "results": results,
            "target": target,
        },
    )


if __name__ == "__main__":
    main()

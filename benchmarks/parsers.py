"""One benchmark run of one parser, in its own process.

compare_parsers.py starts this script once per tool and run, so that each
tool's peak memory is its own and no tool benefits from another's imports:

    python benchmarks/parsers.py TOOL LIST_FILE --threads N

LIST_FILE holds one path per line. The last line printed on stdout is JSON:
{"files", "ok", "seconds", "workers", "version", "vm_hwm_kib"} on success, or
{"unavailable": reason} when the tool is not installed. Only the parsing is
timed: starting Python, importing the tool and reading the list are not.
pydicom, GDCM and DCMTK read the same handful of attributes per file (TAGS), as
the dicom-rs baseline does, so that each does the work of a header scan.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import multiprocessing
import os
import shutil
import subprocess
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

from benchlib import peak_rss_kib

TAGS = ("PatientID", "Modality", "SOPInstanceUID", "Rows")
# (group, element) of TAGS, for the tools that take numeric tags.
TAG_NUMBERS = ((0x0010, 0x0020), (0x0008, 0x0060), (0x0008, 0x0018), (0x0028, 0x0010))
DCMDUMP_BATCH = 256


def start_clock() -> float:
    """Collect garbage, then read the clock: the full collection that importing a
    library leaves pending would otherwise land in the timed part (15-20 ms)."""
    gc.collect()
    return time.perf_counter()


class Unavailable(Exception):
    """The tool is not installed or cannot be used; the message says why."""


def run_curate(paths: list[str], threads: int) -> dict:
    """curate.scan over the list; a row counts as parsed when its status is ok.

    curate extracts its default tag set, which is more than TAGS.
    """
    try:
        import curate

        scan = curate.scan
    # ImportError, or AttributeError from a package built without its native module.
    except Exception as exc:
        raise Unavailable(f"import curate failed: {type(exc).__name__}: {exc}") from exc
    start = start_clock()
    table = scan(paths, threads=threads)
    seconds = time.perf_counter() - start
    if "status" in table.column_names:
        ok = sum(1 for s in table.column("status").to_pylist() if s == "ok")
    else:
        ok = table.num_rows
    version = getattr(curate, "__version__", "unknown")
    return dict(files=len(paths), ok=ok, seconds=seconds, workers=threads, version=version)


def _pydicom_chunk(paths: list[str]) -> int:
    """Parse each header with pydicom and read TAGS; returns how many parsed."""
    from pydicom import dcmread

    warnings.simplefilter("ignore")
    ok = 0
    for path in paths:
        try:
            ds = dcmread(path, stop_before_pixels=True)
            for keyword in TAGS:
                ds.get(keyword)
        except Exception:
            continue
        ok += 1
    return ok


def _import_pydicom() -> str:
    try:
        import pydicom
    except ImportError as exc:
        raise Unavailable(f"import pydicom failed: {exc}") from exc
    return pydicom.__version__


def run_pydicom(paths: list[str], threads: int) -> dict:
    """pydicom in this one process, file after file."""
    version = _import_pydicom()
    start = start_clock()
    ok = _pydicom_chunk(paths)
    seconds = time.perf_counter() - start
    return dict(files=len(paths), ok=ok, seconds=seconds, workers=1, version=version)


def run_pydicom_mp(paths: list[str], threads: int) -> dict:
    """pydicom in a pool of `threads` processes; starting the pool is timed too,
    since anyone who parallelises pydicom this way pays for it."""
    version = _import_pydicom()
    chunk = max(1, min(500, len(paths) // (threads * 16)))
    chunks = [paths[i : i + chunk] for i in range(0, len(paths), chunk)]
    start = start_clock()
    with multiprocessing.Pool(threads) as pool:
        ok = sum(pool.imap_unordered(_pydicom_chunk, chunks))
    seconds = time.perf_counter() - start
    return dict(files=len(paths), ok=ok, seconds=seconds, workers=threads, version=version)


def run_gdcm(paths: list[str], threads: int) -> dict:
    """gdcm.Scanner (one thread) reading TAGS; the files it could read are its keys."""
    try:
        import gdcm
    except ImportError as exc:
        raise Unavailable(f"import gdcm failed (pip install python-gdcm): {exc}") from exc
    start = start_clock()
    scanner = gdcm.Scanner()
    for group, element in TAG_NUMBERS:
        scanner.AddTag(gdcm.Tag(group, element))
    scanner.Scan(paths)
    seconds = time.perf_counter() - start
    ok = len(scanner.GetKeys())
    version = gdcm.Version.GetVersion()
    return dict(files=len(paths), ok=ok, seconds=seconds, workers=1, version=version)


def _dcmdump_command(paths: list[str]) -> list[str]:
    """dcmdump printing only TAGS, stopping before Pixel Data, skipping long values."""
    searches = [arg for g, e in TAG_NUMBERS for arg in ("+P", f"{g:04x},{e:04x}")]
    return ["dcmdump", "-q", "-M", "+sb", "7fe0,0010", *searches, *paths]


def _dcmdump_ok(paths: list[str]) -> bool:
    done = subprocess.run(_dcmdump_command(paths), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return done.returncode == 0


def run_dcmtk(paths: list[str], threads: int) -> dict:
    """dcmdump over batches of files, `threads` processes at a time, output discarded.

    dcmdump's exit status only says whether a whole batch parsed, so files of
    failed batches are re-checked one by one after the clock has stopped.
    """
    dcmdump = shutil.which("dcmdump")
    if dcmdump is None:
        raise Unavailable("dcmdump not found (apt-get install dcmtk)")
    banner = subprocess.run([dcmdump, "--version"], capture_output=True, text=True).stdout
    version = next((w for w in banner.split() if w[:1] == "v" and w[1:2].isdigit()), "unknown")
    size = max(1, min(DCMDUMP_BATCH, math.ceil(len(paths) / (threads * 4))))
    batches = [paths[i : i + size] for i in range(0, len(paths), size)]
    start = start_clock()
    with ThreadPoolExecutor(threads) as pool:
        batch_ok = list(pool.map(_dcmdump_ok, batches))
    seconds = time.perf_counter() - start
    ok = sum(
        len(batch) if good else sum(_dcmdump_ok([p]) for p in batch)
        for batch, good in zip(batches, batch_ok, strict=True)
    )
    return dict(files=len(paths), ok=ok, seconds=seconds, workers=threads, version=version)


RUNNERS = {
    "curate": run_curate,
    "pydicom": run_pydicom,
    "pydicom-mp": run_pydicom_mp,
    "gdcm": run_gdcm,
    "dcmtk": run_dcmtk,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tool", choices=sorted(RUNNERS))
    parser.add_argument("list_file", help="file with one path per line")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    with open(args.list_file) as f:
        paths = [line.rstrip("\n") for line in f if line.strip()]
    try:
        result = RUNNERS[args.tool](paths, args.threads)
    except Unavailable as exc:
        result = {"unavailable": str(exc)}
    else:
        result["vm_hwm_kib"] = peak_rss_kib()
    print(json.dumps(result))


if __name__ == "__main__":
    main()

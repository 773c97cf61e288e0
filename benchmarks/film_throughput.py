"""Film import throughput on chest-film-sized scans (2,000 x 2,500, 16-bit), side by side.

Generates (or reuses) scans with ``curate.digitize.sandbox``: 16-bit PNG and
uncompressed 16-bit TIFF, half each, and a manifest. Then times, one after the other on
the same files with the page cache warm, on every core:

* ``copy``: a plain copy of every scan (reading and writing the bytes: the floor);
* ``decode``: Pillow decoding every scan to an array, writing nothing (the least any
  importer does);
* ``curate``: ``curate.digitize.digitize`` (decode, check, build the SC data set,
  write owner-only through a temporary name), into a fresh output each time;
* ``curate-rerun``: the same import again over its own output (every film is already
  there: a resumed run's cost).

Prints films/s, MB/s of scans read and the ratio to ``decode``, and writes JSON.

  python benchmarks/film_throughput.py --count 40
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from benchlib import RESULTS_DIR, print_table, write_json

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from curate.digitize import Digitizer, digitize  # noqa: E402
from curate.digitize.manifest import REQUIRED_COLUMNS  # noqa: E402
from curate.digitize.sandbox import film_pixels, save_image  # noqa: E402

ROWS, COLUMNS = 2500, 2000


def make_scans(root: Path, count: int) -> tuple[Path, Path, list[Path]]:
    scans, manifest = root / "scans", root / "manifest.csv"
    paths = [scans / f"{i:04d}.{'png' if i % 2 == 0 else 'tif'}" for i in range(count)]
    if not all(p.exists() for p in paths):
        scans.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(0)
        for path in paths:
            save_image(film_pixels(ROWS, COLUMNS, 16, rng), path)
    with manifest.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(REQUIRED_COLUMNS))
        writer.writeheader()
        for i, path in enumerate(paths):
            writer.writerow(
                {
                    "file": path.name,
                    "patient_id": f"B{i // 2:05d}",
                    "patient_name": f"Bench^{i // 2}",
                    "birth_date": "19500101",
                    "sex": "F",
                    "study_date": "19990101",
                    "description": "CHEST",
                    "body_part": "CHEST",
                    "view": "PA" if i % 2 == 0 else "LATERAL",
                    "laterality": "",
                    "dpi": "150",
                }
            )
    return scans, manifest, paths


def _copy(args: tuple[str, str]) -> None:
    shutil.copyfile(*args)


def _decode(path: str) -> int:
    from PIL import Image

    with Image.open(path) as image:
        return int(np.asarray(image).shape[0])


def timed(work) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--corpus", type=Path, default=Path(tempfile.gettempdir()) / "curate-bench-films")
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "film_throughput.json")
    args = parser.parse_args()
    scans, manifest, paths = make_scans(args.corpus / str(args.count), args.count)
    megabytes = sum(p.stat().st_size for p in paths) / 1e6
    for path in paths:  # warm the page cache
        path.read_bytes()
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="curate-bench-film-out-") as out:
        out = Path(out)
        copies = out / "copy"
        copies.mkdir()
        with ProcessPoolExecutor(args.workers) as pool:
            results["copy"] = timed(lambda: list(pool.map(_copy, [(str(p), str(copies / p.name)) for p in paths])))
            results["decode"] = timed(lambda: list(pool.map(_decode, [str(p) for p in paths])))
        films = out / "films"
        digitizer = Digitizer("BENCH", "scanner")
        imported = None

        def run() -> None:
            nonlocal imported
            imported = digitize(scans, manifest, films, digitizer, workers=args.workers, progress=False)

        results["curate"] = timed(run)
        assert imported.written == args.count, imported.format()
        results["curate-rerun"] = timed(run)
        assert imported.already_done == args.count
        written = sum(p.stat().st_size for p in films.rglob("*.dcm")) / 1e6
    print(f"{args.count} scans of {COLUMNS} x {ROWS}, 16-bit ({megabytes:,.0f} MB; {written:,.0f} MB of DICOM written)")
    print_table(
        ["run", "seconds", "films/s", "MB/s read", "x decode"],
        [[name, t, args.count / t, megabytes / t, results["decode"] / t] for name, t in results.items()],
        ["", ".2f", ".1f", ".0f", ".2f"],
    )
    write_json(
        args.json,
        {
            "count": args.count,
            "rows": ROWS,
            "columns": COLUMNS,
            "workers": args.workers,
            "megabytes": megabytes,
            "seconds": results,
            "films_per_s": {k: args.count / v for k, v in results.items()},
            "ratio_to_decode": {k: results["decode"] / v for k, v in results.items()},
        },
    )
    print(f"written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

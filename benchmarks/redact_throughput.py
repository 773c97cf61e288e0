"""Pixel redaction throughput on chest-film-sized images (2,000 x 2,500, 16-bit).

Generates secondary captures of film-like images with a label burned in (a name, an ID,
two dates, one word turned a quarter), then times, one after the other on every core:

* ``display``: decoding and displaying every frame (what any redaction does first);
* ``find``: finding the text once (stroke regions read by Tesseract, and Tesseract on
  the whole frame), filling nothing;
* ``redact``: ``curate.deid.redact.redact``: find, fill, and read again until a reading
  finds nothing (at least two readings a file);
* ``deid-redact``: ``curate.deid.tree.deidentify_tree`` with ``pixels=redact`` (the
  above, the header's de-identification and the checks, written uncompressed).

Prints files/s and the ratio to ``display``, checks that every burned-in box was filled,
and writes JSON.

  python benchmarks/redact_throughput.py --count 6
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from benchlib import RESULTS_DIR, print_table, write_json

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from curate.deid.sandbox import Burned, burn, image_dataset  # noqa: E402
from curate.digitize.sandbox import film_pixels  # noqa: E402

ROWS, COLUMNS = 2500, 2000
KEY = b"benchmark key, not a secret: 0123456789abcdef"
LABEL = [
    Burned("DOE^JANE", 120, 100, 64),
    Burned("4711-0815", 120, 200, 48, "LiberationMono-Regular.ttf"),
    Burned("1998-03-04", 1300, 2300, 52, "DejaVuSans-Bold.ttf"),
    Burned("1961-07-14", 120, 280, 40),
    Burned("ST.MARY", 1880, 900, 56, "LiberationSans-Regular.ttf", turn=1),
]


def make_files(folder: Path, count: int) -> list[tuple[Path, list]]:
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for i in range(count):
        image, truth = burn(film_pixels(ROWS, COLUMNS, 16, np.random.default_rng(i)), LABEL)
        ds = image_dataset(image, PatientName="DOE^JANE", PatientID="4711-0815", BurnedInAnnotation="YES")
        path = folder / f"{i:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        made.append((path, truth))
    return made


def _display(path: str) -> int:
    import pydicom

    from curate.deid.display import displayed, stored_frames

    ds = pydicom.dcmread(path)
    return sum(int(g[0, 0]) for g in displayed(ds, stored_frames(ds)))


def _find(path: str) -> int:
    import pydicom

    from curate.deid.display import displayed, stored_frames
    from curate.deid.redact import FrameText

    ds = pydicom.dcmread(path)
    return sum(len(FrameText.of(g).regions) for g in displayed(ds, stored_frames(ds)))


def _redact(path: str) -> tuple[bool, list]:
    import pydicom

    from curate.deid.redact import redact

    result = redact(pydicom.dcmread(path))
    return result.clean, result.boxes


def timed(work) -> tuple[float, object]:
    started = time.perf_counter()
    value = work()
    return time.perf_counter() - started, value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=6)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "redact_throughput.json")
    args = parser.parse_args()
    from curate.deid.tree import deidentify_tree

    with tempfile.TemporaryDirectory(prefix="curate-bench-redact-") as work:
        work = Path(work)
        files = make_files(work / "src", args.count)
        paths = [str(p) for p, _ in files]
        seconds: dict[str, float] = {}
        with ProcessPoolExecutor(args.workers) as pool:
            seconds["display"], _ = timed(lambda: list(pool.map(_display, paths)))
            seconds["find"], _ = timed(lambda: list(pool.map(_find, paths)))
            seconds["redact"], results = timed(lambda: list(pool.map(_redact, paths)))
        covered = 0
        for (_, truth), (clean, boxes) in zip(files, results, strict=True):
            mask = np.zeros((ROWS, COLUMNS), bool)
            for _, x0, y0, x1, y1 in boxes:
                mask[y0:y1, x0:x1] = True
            covered += clean and all(mask[y0:y1, x0:x1].all() for x0, y0, x1, y1 in truth)
        seconds["deid-redact"], summary = timed(
            lambda: deidentify_tree(
                work / "src", work / "out", KEY, pixels="redact", workers=args.workers, progress=False
            )
        )
    print(
        f"{args.count} images of {COLUMNS} x {ROWS}, 16-bit, {len(LABEL)} words burned in each, {args.workers} workers"
    )
    print_table(
        ["run", "seconds", "files/s", "x display"],
        [[name, t, args.count / t, seconds["display"] / t] for name, t in seconds.items()],
        ["", ".2f", ".2f", ".3f"],
    )
    print(f"every burned-in box filled and verified: {covered} of {args.count}; deid wrote {summary.redacted} redacted")
    write_json(
        args.json,
        {
            "count": args.count,
            "rows": ROWS,
            "columns": COLUMNS,
            "workers": args.workers,
            "seconds": seconds,
            "files_per_s": {k: args.count / v for k, v in seconds.items()},
            "covered": covered,
            "redacted_by_deid": summary.redacted,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

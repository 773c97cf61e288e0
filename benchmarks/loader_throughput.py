"""Images per second through CuratedDataset + DataLoader: from DICOM, and from the
version's exported PNG16 and NPY images.

Generates a decodable corpus (make_corpus --decodable), scans it, builds one dataset
version per export format, then times one pass over the training split with each
source, in the same run. Needs the [torch] extra.

  python benchmarks/loader_throughput.py --count 600 --pixel-bytes 524288
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import BENCH_DIR, RESULTS_DIR, print_table, write_json

KEY = b"benchmark key, not a secret: 0123456789abcdef"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=600)
    parser.add_argument("--pixel-bytes", type=int, default=524_288, help="512 x 512 x 16 bits by default")
    parser.add_argument("--size", type=int, default=256, help="longer side of the images the model sees")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "loader_throughput.json")
    args = parser.parse_args()

    import torch
    from torch.utils.data import DataLoader

    from curate.dataset import DatasetSpec, build_dataset
    from curate.index import build_index
    from curate.torch import CuratedDataset

    work = Path(tempfile.mkdtemp(prefix="curate-loader-bench-"))
    try:
        subprocess.run(
            [
                sys.executable,
                str(BENCH_DIR / "make_corpus.py"),
                str(work / "dicom"),
                "--count",
                str(args.count),
                "--pixel-bytes",
                str(args.pixel_bytes),
                "--decodable",
            ],
            check=True,
        )
        build_index(work / "dicom", work / "index", progress=False)
        base = {"select": "Rows IS NOT NULL", "split": {"train": 1.0, "val": 0.0, "test": 0.0}}
        versions = {}
        for name, export in (
            ("png16", {"format": "png16", "size": args.size}),
            ("npy", {"format": "npy", "size": args.size}),
        ):
            spec = DatasetSpec.from_dict({**base, "name": f"bench_{name}", "export": export})
            versions[name] = build_dataset(spec, work / "index", work / "datasets", KEY).path

        def pad(batch):
            images = [
                torch.nn.functional.pad(x, (0, args.size - x.shape[-1], 0, args.size - x.shape[-2])) for x, _ in batch
            ]
            return torch.stack(images), torch.tensor([y for _, y in batch])

        rows = []
        for label, version, source in (
            ("DICOM (decode, LUT, resize)", versions["png16"], "dicom"),
            ("exported PNG16", versions["png16"], "export"),
            ("exported NPY (float16)", versions["npy"], "export"),
        ):
            data = CuratedDataset(version, split="train", size=args.size, source=source)
            loader = DataLoader(data, batch_size=args.batch, num_workers=args.workers, collate_fn=pad)
            start = time.perf_counter()
            seen = sum(len(labels) for _, labels in loader)
            seconds = time.perf_counter() - start
            rows.append({"source": label, "images": seen, "seconds": seconds, "images_per_s": seen / seconds})
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"\n{args.workers} DataLoader workers, batches of {args.batch}, images {args.size} px\n")
    print_table(
        ["source", "images", "seconds", "images/s"],
        [[r["source"], r["images"], r["seconds"], r["images_per_s"]] for r in rows],
        ["", ",", ".2f", ".0f"],
    )
    write_json(args.json, {"results": rows, "size": args.size, "workers": args.workers})


if __name__ == "__main__":
    main()

"""Peak memory and time of `classify_index` at growing index sizes, each in a fresh process.

The index is synthetic (rows of the metadata generator, repeated with fresh series and
instance UIDs), written straight to Parquet: what is measured is the classification of
an index, not the scan. Beside curate's streamed classification it runs the way it was
done before (the whole index read into pandas, then predicted at once), for the ratio.

    python benchmarks/classify_memory.py --rows 100000 1000000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from benchlib import RESULTS_DIR, peak_rss_kib, print_table, run_measured, write_json  # noqa: E402


def make_index(folder: Path, rows: int) -> None:
    """An index of `rows` rows: generated series, repeated with fresh UIDs."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from curate.classify.synth import generate
    from curate.index.manifest import Manifest, Part, write_manifest
    from curate.index.schema import ROW_ID

    template = generate(3000, sites=10, seed=0).drop(columns=["series_type", "site"])
    template["status"] = "ok"
    template["path"], template[ROW_ID] = "", 0  # in the schema the writer takes from it
    part = "parts/00000001/data_0.parquet"
    (folder / part).parent.mkdir(parents=True, exist_ok=True)
    written = copy = 0
    with pq.ParquetWriter(folder / part, pa.Table.from_pandas(template, preserve_index=False).schema) as w:
        while written < rows:
            chunk = template.head(rows - written).copy()
            for column in ("SeriesInstanceUID", "StudyInstanceUID", "SOPInstanceUID"):
                chunk[column] = chunk[column].astype(str) + f".{copy}"
            chunk["path"] = [f"/archive/{copy}/{i}.dcm" for i in range(len(chunk))]
            chunk[ROW_ID] = range(written, written + len(chunk))  # what the index's readers key rows by
            w.write_table(pa.Table.from_pandas(chunk, preserve_index=False, schema=w.schema))
            written += len(chunk)
            copy += 1
    # One part, no retired row: the layout a compacted index has.
    write_manifest(
        folder,
        Manifest(
            signature={"synthetic": True},
            parts=[Part(part, rows)],
            content=hashlib.sha256(f"rows{rows}".encode()).hexdigest(),
            next_row_id=rows,
        ),
    )


def child(mode: str, index: str) -> None:
    """One measured run (in its own process): prints seconds, peak KiB and series."""
    from curate.classify import load_default_model

    model = load_default_model()
    started = time.perf_counter()
    if mode == "streamed":
        from curate.classify.train import classify_index

        series = sum(classify_index(index, model, "default").counts.values())
    else:  # the whole index in pandas, predicted at once
        from curate.index import read_index

        frame = read_index(index).to_pandas()
        series = len(model.predict_series(frame[frame.status == "ok"]))
    print(json.dumps({"seconds": time.perf_counter() - started, "peak_kib": peak_rss_kib(), "series": series}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--work", type=Path, default=BENCH_DIR / "corpus" / "classify-index")
    parser.add_argument("--modes", nargs="+", default=["streamed", "whole"])
    args = parser.parse_args()
    results = []
    for rows in args.rows:
        folder = args.work / f"rows{rows}"
        if not (folder / "manifest.json").exists():
            make_index(folder, rows)
        for mode in args.modes:
            run = run_measured([sys.executable, __file__, "--child", mode, str(folder)])
            if run.returncode != 0:
                results.append({"rows": rows, "mode": mode, "failed": run.stderr.strip().splitlines()[-1:]})
                continue
            measured = json.loads(run.stdout.strip().splitlines()[-1])
            results.append(
                {"rows": rows, "mode": mode, **measured, "bytes_per_row": measured["peak_kib"] * 1024 / rows}
            )
    for r in results:
        if "failed" in r:
            print(f"{r['rows']:,} rows, {r['mode']}: failed: {r['failed']}")
    print_table(
        ["rows", "mode", "seconds", "µs/row", "peak MiB", "B/row", "series"],
        [
            [
                r["rows"],
                r["mode"],
                r["seconds"],
                r["seconds"] / r["rows"] * 1e6,
                r["peak_kib"] / 1024,
                r["bytes_per_row"],
                r["series"],
            ]
            for r in results
            if "failed" not in r
        ],  # fmt: skip
        [",", "", ".1f", ".1f", ".0f", ".0f", ","],
    )
    write_json(RESULTS_DIR / "classify_memory.json", {"results": results})


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
    else:
        main()

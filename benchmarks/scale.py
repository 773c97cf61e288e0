"""Every stage at 100,000 and 1,000,000 files (3,000,000 with --large), each in a fresh
process: seconds, peak RSS and bytes per file, stage by stage, and the scale targets.

Two kinds of tree, both cheap to make:

- *linked*: hard links of a generated 10,000-file corpus under many folders (repeated
  UIDs do not matter to scan, rescan, compact, query, quality and report). The 1% rescan
  touches 1% of the corpus's files, which changes 1% of the paths (each file has as many
  links as copies).
- *distinct*: small distinct files (template bytes with patched UIDs and patient IDs, no
  pixel data) where identities matter: classify, de-identification planning and the
  dataset build's plan. The template is a secondary capture, which de-identification
  quarantines, so the deid row plans, spools and verifies every file but writes none;
  the build row is `plan_dataset` (selection, quality, dedupe with every file hashed,
  patients, splits, version id) without the de-identified copies. Both are planning
  modes: the disk and the hour stay bounded.

    python benchmarks/scale.py                      # 100k and 1M
    python benchmarks/scale.py --sizes 100000       # one size
    python benchmarks/scale.py --large              # and 3M
    sudo python benchmarks/scale.py --cold          # scans and rescans from a cold page cache

Writes benchmarks/results/scale.json (scale-cold.json with --cold).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from benchlib import RESULTS_DIR, peak_rss_kib, print_table, run_measured, write_json  # noqa: E402

BASE_FILES = 10_000
LINKED_STAGES = ("scan", "rescan_unchanged", "rescan_1pct", "compact", "query", "quality", "report")
DISTINCT_STAGES = ("scan_distinct", "rescan_distinct", "classify", "classify_adapted", "deid_plan", "build_plan")
#: (first scan, unchanged rescan) of each kind of tree: a linked tree has more folders
#: than files (a series a folder, as chest radiograph exports are), a distinct one a
#: thousand files a folder. A rescan that changes nothing walks the tree, so its cost
#: follows the folders.
RESCAN_PAIRS = (("scan", "rescan_unchanged"), ("scan_distinct", "rescan_distinct"))
QUERY = "SELECT Modality, body_part, count(*) AS n FROM idx GROUP BY ALL ORDER BY n DESC"


# --- trees ----------------------------------------------------------------------------------


def base_corpus(work: Path) -> Path:
    base = work / "base"
    if not (base / ".complete").exists():
        shutil.rmtree(base, ignore_errors=True)
        cmd = [sys.executable, str(BENCH_DIR / "make_corpus.py"), str(base), "--count", str(BASE_FILES)]
        subprocess.run([*cmd, "--pixel-bytes", "512"], check=True)
        (base / ".complete").write_text("")
    return base


def linked_tree(work: Path, base: Path, files: int) -> Path:
    """`files` paths: hard links of the base corpus, one folder per copy."""
    tree = work / f"linked-{files}"
    if not (work / f".linked-{files}.complete").exists():
        shutil.rmtree(tree, ignore_errors=True)
        tree.mkdir(parents=True)
        for copy in range(files // BASE_FILES):
            subprocess.run(["cp", "-al", str(base), str(tree / f"copy{copy:04d}")], check=True)
            (tree / f"copy{copy:04d}" / ".complete").unlink(missing_ok=True)
        (work / f".linked-{files}.complete").write_text("")
    return tree


def _template() -> tuple[bytes, dict[str, bytes]]:
    """A small secondary-capture file whose identifiers are fixed-width placeholders."""
    import io

    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    placeholders = {
        "study": "1.2.826.0.1.3680043.10.1.1.99999999999999999999",
        "series": "1.2.826.0.1.3680043.10.1.2.99999999999999999999",
        "instance": "1.2.826.0.1.3680043.10.1.3.99999999999999999999",
        "patient": "PID9999999999",
    }
    ds = pydicom.Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = placeholders["instance"]
    ds.StudyInstanceUID = placeholders["study"]
    ds.SeriesInstanceUID = placeholders["series"]
    ds.PatientID = placeholders["patient"]
    ds.PatientName = "SCALE^TEST"
    ds.PatientSex = "F"
    ds.PatientAge = "054Y"
    ds.Modality = "CR"
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = "PA"
    ds.StudyDate = "20240101"
    ds.SeriesNumber = "1"
    ds.InstanceNumber = "1"
    ds.Rows, ds.Columns = 2048, 2048
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue(), {k: v.encode() for k, v in placeholders.items()}


def distinct_tree(work: Path, files: int) -> Path:
    """`files` distinct small files: 2 instances a series, 2 series a study, 1 study a
    patient; 1,000 files a folder."""
    tree = work / f"distinct-{files}"
    done = work / f".distinct-{files}.complete"
    if done.exists():
        return tree
    shutil.rmtree(tree, ignore_errors=True)
    data, marks = _template()
    started = time.perf_counter()
    for n in range(files):
        if n % 1000 == 0:
            folder = tree / f"d{n // 1000:05d}"
            folder.mkdir(parents=True)
        out = data
        for name, value in (("instance", n), ("series", n // 2), ("study", n // 4), ("patient", n // 4)):
            width = 10 if name == "patient" else 20
            out = out.replace(marks[name][-width:], f"{value:0{width}d}".encode())
        (folder / f"i{n:08d}.dcm").write_bytes(out)
    done.write_text("")
    print(f"generated {files:,} distinct files in {time.perf_counter() - started:.0f} s", flush=True)
    return tree


def touch_one_percent(base: Path) -> None:
    """Change 1% of the base corpus's files (and so 1% of every linked tree's paths)."""
    files = sorted(p for p in base.rglob("*.dcm"))[::100]
    now = time.time()
    for path in files:
        os.utime(path, (now, now))


# --- one stage, in its own process ------------------------------------------------------------


def child(stage: str, args: dict) -> None:
    started = time.perf_counter()
    extra: dict = {}
    if stage in ("scan", "rescan_unchanged", "rescan_1pct", "scan_distinct", "rescan_distinct"):
        from curate.index import build_index

        summary = build_index(args["source"], args["index"], progress=False)
        extra = {"parsed": summary.scanned, "rows": summary.rows}
    elif stage == "compact":
        from curate.index.compact import compact_index

        summary = compact_index(args["index"], progress=False)
        extra = {"retired_dropped": summary.retired_dropped, "parts_rewritten": summary.parts_rewritten}
    elif stage == "query":
        from curate.inspect import query

        query.write(args["index"], QUERY, args["out"])
    elif stage == "quality":
        from curate.inspect.quality import check_index

        check_index(args["index"])
    elif stage == "report":
        from curate.inspect.report import build_report

        build_report(args["index"], args["out"])
    elif stage == "classify":
        from curate.classify import load_default_model
        from curate.classify.train import classify_index

        result = classify_index(args["index"], load_default_model(), "default")
        extra = {"series": sum(result.counts.values())}
    elif stage == "classify_adapted":
        # What `curate classify` does with no model: a bounded sample, the adapted model, every series.
        from curate.classify import adapt_to_archive
        from curate.classify.adapt import sample_index
        from curate.classify.train import classify_index

        model = adapt_to_archive(sample_index(args["index"]))
        result = classify_index(args["index"], model, "adapted")
        extra = {"series": sum(result.counts.values()), "sampled": model.report_.sampled}
    elif stage == "deid_plan":
        from curate.deid.tree import deidentify_tree

        summary = deidentify_tree(args["source"], args["out"], b"k" * 32, progress=False)
        extra = {"written": summary.written, "quarantined": sum(summary.quarantined.values())}
    elif stage == "build_plan":
        from curate.dataset import DatasetSpec, plan_dataset

        spec = DatasetSpec.from_dict({"name": "scale", "select": "Modality = 'CR'", "label": "view"})
        planned = plan_dataset(spec, args["index"], b"k" * 32)
        extra = {"instances": planned["instances"], "patients": planned["patients"]}
    else:
        raise SystemExit(f"unknown stage {stage}")
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "vm_hwm_kib": peak_rss_kib(), **extra}))


SCAN_STAGES = ("scan", "rescan_unchanged", "rescan_1pct", "scan_distinct", "rescan_distinct")
DROP_CACHES = Path("/proc/sys/vm/drop_caches")
#: Whether scans and rescans start from a cold page cache (``--cold``): an archive of
#: millions of files is not in memory the next day, its folders and inodes included.
cold = False


def drop_page_cache() -> None:
    os.sync()
    DROP_CACHES.write_text("3\n")


def measure(stage: str, files: int, **args) -> dict:
    if cold and stage in SCAN_STAGES:
        drop_page_cache()
    run = run_measured([sys.executable, __file__, "--child", stage, json.dumps({k: str(v) for k, v in args.items()})])
    row = {"stage": stage, "files": files}
    if run.returncode != 0:
        row["failed"] = run.error_tail()
        print(f"{stage:<17} {files:>10,}  failed: {row['failed']}", flush=True)
        return row
    got = run.last_json()
    row.update(got)
    row["peak_mib"] = run.peak_rss_bytes() / 2**20
    row["bytes_per_file"] = run.peak_rss_bytes() / files
    row["us_per_file"] = got["seconds"] / files * 1e6
    print(f"{stage:<17} {files:>10,}  {got['seconds']:>8.1f} s  {row['peak_mib']:>7.0f} MiB", flush=True)
    return row


def run_size(work: Path, base: Path, files: int) -> list[dict]:
    rows = []
    linked = linked_tree(work, base, files)
    index = work / f"index-linked-{files}"
    shutil.rmtree(index, ignore_errors=True)
    rows.append(measure("scan", files, source=linked, index=index))
    rows.append(measure("rescan_unchanged", files, source=linked, index=index))
    touch_one_percent(base)
    rows.append(measure("rescan_1pct", files, source=linked, index=index))
    rows.append(measure("compact", files, index=index))
    rows.append(measure("query", files, index=index, out=work / "query.parquet"))
    rows.append(measure("quality", files, index=index))
    rows.append(measure("report", files, index=index, out=work / f"report-{files}"))
    shutil.rmtree(index, ignore_errors=True)
    distinct = distinct_tree(work, files)
    index = work / f"index-distinct-{files}"
    shutil.rmtree(index, ignore_errors=True)
    rows.append(measure("scan_distinct", files, source=distinct, index=index))
    rows.append(measure("rescan_distinct", files, source=distinct, index=index))
    rows.append(measure("classify", files, index=index))
    rows.append(measure("classify_adapted", files, index=index))
    rows.append(measure("build_plan", files, index=index))
    out = work / f"deid-{files}"
    shutil.rmtree(out, ignore_errors=True)
    rows.append(measure("deid_plan", files, source=distinct, out=out))
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(index, ignore_errors=True)
    return rows


def targets(rows: list[dict], small: int, large: int) -> list[tuple[str, float, float, bool]]:
    """(what, measured, limit, met) for each target of the scale issue."""
    by = {(r["stage"], r["files"]): r for r in rows if "failed" not in r}
    found = []
    for stage in LINKED_STAGES + DISTINCT_STAGES:
        a, b = by.get((stage, small)), by.get((stage, large))
        if a and b:
            found.append((f"{stage}: peak RSS {large:,} / {small:,}", b["peak_mib"] / a["peak_mib"], 1.5))
            found.append((f"{stage}: time per file {large:,} / {small:,}", b["us_per_file"] / a["us_per_file"], 1.3))
    for files in (small, large):
        same, one = by.get(("rescan_unchanged", files)), by.get(("rescan_1pct", files))
        if same and one:
            found.append((f"rescan 1% / unchanged rescan at {files:,}", one["seconds"] / same["seconds"], 1.5))
        for first, again in RESCAN_PAIRS:
            scan, rescan = by.get((first, files)), by.get((again, files))
            if scan and rescan:
                what = f"{again} / {first} at {files:,}"
                found.append((what, rescan["seconds"] / scan["seconds"], 0.15))
    return [(what, value, limit, value <= limit) for what, value, limit in found]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--large", action="store_true", help="also 3,000,000 files")
    parser.add_argument("--work", type=Path, default=BENCH_DIR / "corpus" / "scale")
    parser.add_argument("--cold", action="store_true", help="drop the page cache before each scan (needs root)")
    args = parser.parse_args()
    global cold
    cold = args.cold
    if cold and not os.access(DROP_CACHES, os.W_OK):
        parser.error(f"--cold writes {DROP_CACHES}, which needs root")
    sizes = sorted(set(args.sizes + ([3_000_000] if args.large else [])))
    args.work.mkdir(parents=True, exist_ok=True)
    base = base_corpus(args.work)
    rows = [row for files in sizes for row in run_size(args.work, base, files)]
    print()
    for r in rows:
        if "failed" in r:
            print(f"{r['stage']} at {r['files']:,} files: failed: {r['failed']}")
    print_table(
        ["stage", "files", "seconds", "µs/file", "peak MiB", "B/file"],
        [
            [r["stage"], r["files"], r["seconds"], r["us_per_file"], r["peak_mib"], r["bytes_per_file"]]
            for r in rows
            if "failed" not in r
        ],
        ["", ",", ".1f", ".1f", ".0f", ".0f"],
    )
    checks = targets(rows, sizes[0], sizes[1]) if len(sizes) > 1 else []
    if checks:
        print()
        for what, value, limit, met in checks:
            print(f"{'met ' if met else 'MISS'} {what:<52} {value:>6.2f} (target <= {limit})")
    write_json(
        RESULTS_DIR / ("scale-cold.json" if cold else "scale.json"),
        {
            "sizes": sizes,
            "cold_page_cache": cold,
            "results": rows,
            "targets": [dict(zip(("what", "value", "limit", "met"), c, strict=True)) for c in checks],
        },
    )


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(sys.argv[2], json.loads(sys.argv[3]))
    else:
        main()

"""What a small spread-out change costs in two index layouts: Delta Lake (delta-rs, the
``deltalake`` package) and curate's append-and-retire parts.

Three tables, each ordered by path and stored in files of about 32,768 rows:

- *synthetic*: N index-like rows (path, size, mtime, status, identifiers, a few more
  columns) written as a Delta table, once as is and once with the table's
  ``delta.enableDeletionVectors`` property set. A MERGE on path updates 1% of the rows
  (chosen uniformly at random, so spread across every file); a DELETE, on a table
  written afresh, removes another 1%.
- *dicom*, curate: N small distinct DICOM files (scale.py's generator) scanned with
  ``build_index``; 1% of the files are touched (mtime moved) and rescanned, then
  another 1% are removed and rescanned (their rows are kept as ``vanished``). This is
  curate's own code path, so its seconds include listing the whole tree and parsing
  the changed files; the commit alone is timed too.
- *dicom*, Delta: the same index's rows as a Delta table (written twice, one copy for
  each change), given the same two changes: a MERGE of the rescan's new rows, a DELETE
  of the removed paths.

For each operation: seconds, bytes and number of new data files it wrote (files under
the table's folder that were not there before), how many live data files it replaced,
and what it wrote as a share of the table's data bytes and per changed row. Metadata
(Delta's log entries, curate's manifest) is counted apart.

    python benchmarks/layout_choice.py                 # 100,000 rows
    python benchmarks/layout_choice.py --rows 10000

Needs ``deltalake`` (benchmarks/requirements.txt). Writes benchmarks/results/layout_choice.json.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from benchlib import RESULTS_DIR, write_json  # noqa: E402

#: Rows per data file and per row group: what curate's parts hold (PART_ROWS, ROW_GROUP_ROWS).
FILE_ROWS = 32_768
#: How far a changed row's mtime moves.
MTIME_STEP_S = 10


@dataclass
class Result:
    layout: str
    data: str
    operation: str
    rows: int
    changed_rows: int
    seconds: float
    bytes_written: int
    files_written: int
    files_rewritten: int
    table_bytes: int
    table_files: int
    meta_bytes_written: int
    extra: dict = field(default_factory=dict)

    @property
    def written_share(self) -> float:
        return self.bytes_written / self.table_bytes if self.table_bytes else 0.0

    @property
    def bytes_per_changed_row(self) -> float:
        return self.bytes_written / self.changed_rows if self.changed_rows else 0.0


# --- measuring a folder ---------------------------------------------------------------------


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under `folder`: relative path -> (size, mtime_ns)."""
    found = {}
    for parent, _, files in os.walk(folder):
        for name in files:
            path = Path(parent) / name
            st = path.stat()
            found[str(path.relative_to(folder))] = (st.st_size, st.st_mtime_ns)
    return found


def added(before: dict, after: dict, keep: Callable[[str], bool]) -> list[str]:
    return sorted(p for p in after if p not in before and keep(p))


def changed_in_place(before: dict, after: dict) -> list[str]:
    """Files that were there before and now differ: neither layout should have any."""
    return sorted(p for p in before if p in after and before[p] != after[p] and not p.endswith("manifest.json"))


# --- Delta ----------------------------------------------------------------------------------


def _is_delta_data(relative: str) -> bool:
    return relative.endswith(".parquet") and not relative.startswith("_delta_log")


def _is_delta_log(relative: str) -> bool:
    return relative.startswith("_delta_log")


def delta_writer_properties():
    from deltalake import WriterProperties

    # As curate writes its parts: zstd, 32,768-row row groups.
    return WriterProperties(compression="ZSTD", max_row_group_size=FILE_ROWS)


def write_delta(folder: Path, table, deletion_vectors: bool) -> None:
    """`table` as a Delta table of FILE_ROWS-row files, one append each (delta-rs sizes
    files by bytes, ``target_file_size``; one write a file gives the row count exactly)."""
    from deltalake import write_deltalake

    shutil.rmtree(folder, ignore_errors=True)
    configuration = {"delta.enableDeletionVectors": "true"} if deletion_vectors else None
    for start in range(0, table.num_rows, FILE_ROWS):
        write_deltalake(
            str(folder),
            table.slice(start, FILE_ROWS),
            mode="append" if start else "error",
            writer_properties=delta_writer_properties(),
            configuration=configuration if not start else None,
        )


def live_delta_files(folder: Path) -> set[str]:
    from deltalake import DeltaTable

    dt = DeltaTable(str(folder))
    return {str(Path(uri.removeprefix("file://")).resolve().relative_to(folder.resolve())) for uri in dt.file_uris()}


def delta_op(layout: str, data: str, folder: Path, operation: str, changed: int, run: Callable) -> Result:
    """Run `run(DeltaTable)` and measure what it wrote and replaced."""
    from deltalake import DeltaTable

    live_before = live_delta_files(folder)
    before = snapshot(folder)
    table_bytes = sum(before[p][0] for p in live_before)
    dt = DeltaTable(str(folder))
    rows = dt.count()
    started = time.perf_counter()
    metrics = run(dt)
    seconds = time.perf_counter() - started
    after = snapshot(folder)
    live_after = live_delta_files(folder)
    new_data = added(before, after, _is_delta_data)
    new_log = added(before, after, _is_delta_log)
    dt = DeltaTable(str(folder))
    dv_files = dt.deletion_vectors().read_all().num_rows
    result = Result(
        layout=layout,
        data=data,
        operation=operation,
        rows=rows,
        changed_rows=changed,
        seconds=seconds,
        bytes_written=sum(after[p][0] for p in new_data),
        files_written=len(new_data),
        files_rewritten=len(live_before - live_after),
        table_bytes=table_bytes,
        table_files=len(live_before),
        meta_bytes_written=sum(after[p][0] for p in new_log),
        extra={
            "rows_after": dt.count(),
            "files_with_deletion_vectors": dv_files,
            "files_changed_in_place": changed_in_place(before, after),
            "metrics": {k: v for k, v in metrics.items() if isinstance(v, int | float | str)},
        },
    )
    report(result)
    return result


def delta_merge(source) -> Callable:
    def run(dt):
        return (
            dt.merge(
                source,
                "t.path = s.path",
                source_alias="s",
                target_alias="t",
                writer_properties=delta_writer_properties(),
            )
            .when_matched_update_all()
            .execute()
        )

    return run


def delta_delete(paths: Sequence[str]) -> Callable:
    predicate = "path IN (" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + ")"

    def run(dt):
        return dt.delete(predicate, writer_properties=delta_writer_properties())

    return run


# --- the synthetic table ----------------------------------------------------------------------


def synthetic_table(rows: int, seed: int):
    """`rows` index-like rows, ordered by path; row_id is the position."""
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    n = np.arange(rows)
    patient, series = n // 40, n // 10
    path = [f"/archive/p{p:06d}/s{s % 4}/im{i:08d}.dcm" for p, s, i in zip(patient, series, n, strict=True)]
    modalities = np.array(["CR", "DX", "CT", "MR", "US", "MG"])
    makers = np.array(["ACME Imaging", "Example Medical", "Contoso Radiology", "Northwind Systems"])
    descriptions = np.array(["CHEST PA", "CHEST LAT", "ABDOMEN", "HEAD W/O", "KNEE LEFT", "SPINE L"])
    base_us = 1_700_000_000_000_000
    table = pa.table(
        {
            "path": pa.array(path, pa.string()),
            "file_size": pa.array(rng.integers(200_000, 30_000_000, rows), pa.int64()),
            "mtime": pa.array(base_us + rng.integers(0, 10**14, rows), pa.timestamp("us", tz="UTC")),
            "status": pa.array(np.where(rng.random(rows) < 0.995, "ok", "error"), pa.string()),
            "PatientID": pa.array([f"PID{p:08d}" for p in patient], pa.string()),
            "StudyInstanceUID": pa.array([f"1.2.826.0.1.3680043.10.1.{p}" for p in patient], pa.string()),
            "SeriesInstanceUID": pa.array([f"1.2.826.0.1.3680043.10.2.{s}" for s in series], pa.string()),
            "SOPInstanceUID": pa.array([f"1.2.826.0.1.3680043.10.3.{i}" for i in n], pa.string()),
            "Modality": pa.array(modalities[series % len(modalities)], pa.string()),
            "Manufacturer": pa.array(makers[patient % len(makers)], pa.string()),
            "SeriesDescription": pa.array(descriptions[series % len(descriptions)], pa.string()),
            "Rows": pa.array(rng.choice([512, 1024, 2048, 3000], rows), pa.int64()),
            "Columns": pa.array(rng.choice([512, 1024, 2048, 2500], rows), pa.int64()),
            "PixelSpacing": pa.array(np.round(rng.uniform(0.1, 1.0, rows), 3), pa.float64()),
            "age_years": pa.array(np.round(rng.uniform(0, 95, rows), 1), pa.float64()),
        }
    )
    table = table.take(pa.compute.sort_indices(table, [("path", "ascending")]))
    return table.append_column("row_id", pa.array(np.arange(rows), pa.int64()))


def changed_rows(table, positions: Sequence[int]):
    """The rows at `positions` as a rescan would find them: new mtime and size."""
    import pyarrow as pa
    import pyarrow.compute as pc

    rows = table.take(pa.array(positions, pa.int64()))
    mtime = pc.add(rows["mtime"], pa.scalar(MTIME_STEP_S * 10**6, pa.duration("us")))
    rows = rows.set_column(rows.schema.get_field_index("mtime"), "mtime", mtime)
    size = pc.add(rows["file_size"], 1)
    return rows.set_column(rows.schema.get_field_index("file_size"), "file_size", size)


def run_synthetic(work: Path, rows: int, touch: list[int], remove: list[int], seed: int) -> list[Result]:
    table = synthetic_table(rows, seed)
    source = changed_rows(table, touch)
    removed_paths = table["path"].take(remove).to_pylist()
    results = []
    for layout, dv in (("delta", False), ("delta+dv", True)):
        # Each change starts from a freshly written table, so both see the same files.
        folder = work / f"synthetic-{layout}"
        write_delta(folder, table, dv)
        results.append(delta_op(layout, "synthetic", folder, "merge 1%", len(touch), delta_merge(source)))
        write_delta(folder, table, dv)
        results.append(delta_op(layout, "synthetic", folder, "delete 1%", len(remove), delta_delete(removed_paths)))
    return results


# --- curate's index, by its own scan ---------------------------------------------------------------


def curate_rescan(index: Path, tree: Path, operation: str, changed: int) -> Result:
    from curate.index import build_index
    from curate.index.manifest import read_manifest

    manifest = read_manifest(index)
    before = snapshot(index)
    live_before = manifest.files()
    stamps: dict[str, float] = {}

    def checkpoint(step: str) -> None:
        stamps.setdefault(step, time.perf_counter())

    started = time.perf_counter()
    summary = build_index(tree, index, progress=False, checkpoint=checkpoint)
    seconds = time.perf_counter() - started
    after = snapshot(index)
    manifest_after = read_manifest(index)
    is_data = lambda p: p.startswith(("parts/", "retired/")) and p.endswith(".parquet")  # noqa: E731
    new_data = added(before, after, is_data)
    new_parts = [p for p in new_data if p.startswith("parts/")]
    result = Result(
        layout="curate",
        data="dicom",
        operation=operation,
        rows=manifest.rows,
        changed_rows=changed,
        seconds=seconds,
        bytes_written=sum(after[p][0] for p in new_data),
        files_written=len(new_data),
        files_rewritten=len(live_before - manifest_after.files()),
        table_bytes=sum(before[p][0] for p in live_before),
        table_files=len(live_before),
        meta_bytes_written=after["manifest.json"][0],
        extra={
            "rows_after": manifest_after.rows,
            "stored_rows_after": manifest_after.stored_rows,
            "parsed": summary.scanned,
            "vanished": summary.vanished,
            "commit_seconds": stamps["commit:done"] - stamps["commit:start"] if "commit:done" in stamps else None,
            "part_bytes_written": sum(after[p][0] for p in new_parts),
            "retired_bytes_written": sum(after[p][0] for p in new_data if p.startswith("retired/")),
            "files_changed_in_place": changed_in_place(before, after),
        },
    )
    report(result)
    return result


def run_dicom(work: Path, rows: int, touch: list[int], remove: list[int]) -> list[Result]:
    import pyarrow as pa
    import pyarrow.compute as pc
    from scale import distinct_tree

    from curate.index import build_index, read_index

    # The generator's files are changed below, so every run makes them afresh.
    (work / f".distinct-{rows}.complete").unlink(missing_ok=True)
    tree = distinct_tree(work, rows)
    files = sorted(str(p) for p in tree.rglob("*.dcm"))
    index = work / "index"
    shutil.rmtree(index, ignore_errors=True)
    started = time.perf_counter()
    build_index(tree, index, progress=False)
    print(f"scanned {rows:,} files in {time.perf_counter() - started:.1f} s", flush=True)
    # Delta copies of the same rows, in the same order and file size: one for each change,
    # so that both start from the files the first scan wrote.
    current = read_index(index)
    current = current.take(pc.sort_indices(current, [("path", "ascending")]))
    delta_merged, delta_deleted = work / "dicom-delta-merge", work / "dicom-delta-delete"
    write_delta(delta_merged, current, deletion_vectors=False)
    write_delta(delta_deleted, current, deletion_vectors=False)

    results = []
    for position in touch:
        st = os.stat(files[position])
        os.utime(files[position], ns=(st.st_atime_ns, st.st_mtime_ns + MTIME_STEP_S * 10**9))
    results.append(curate_rescan(index, tree, "rescan 1% changed", len(touch)))
    touched = pa.array([files[p] for p in touch])
    now = read_index(index)
    source = now.filter(pc.is_in(now["path"], value_set=touched))
    results.append(delta_op("delta", "dicom", delta_merged, "merge 1%", len(touch), delta_merge(source)))

    removed = [files[p] for p in remove]
    for path in removed:
        os.unlink(path)
    results.append(curate_rescan(index, tree, "rescan 1% removed", len(remove)))
    results.append(delta_op("delta", "dicom", delta_deleted, "delete 1%", len(remove), delta_delete(removed)))
    return results


# --- output ------------------------------------------------------------------------------------------

HEADER = (
    f"{'layout':<9} {'data':<10} {'operation':<18} {'rows':>9} {'changed':>8} {'seconds':>8} {'bytes written':>14} "
    f"{'files written':>13} {'files rewritten':>15} {'table bytes':>12} {'written/table':>13} {'B/changed row':>13}"
)


def report(r: Result) -> None:
    print(
        f"{r.layout:<9} {r.data:<10} {r.operation:<18} {r.rows:>9,} {r.changed_rows:>8,} {r.seconds:>8.2f} "
        f"{r.bytes_written:>14,} {r.files_written:>13} {r.files_rewritten:>8} of {r.table_files:<4} "
        f"{r.table_bytes:>12,} {r.written_share:>13.1%} {r.bytes_per_changed_row:>13,.0f}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--fraction", type=float, default=0.01, help="share of the rows each change touches")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=BENCH_DIR / "corpus" / "layout-choice")
    parser.add_argument("--keep", action="store_true", help="keep the tables and files under --work")
    args = parser.parse_args()

    import deltalake

    rng = random.Random(args.seed)
    count = max(1, round(args.rows * args.fraction))
    picked = rng.sample(range(args.rows), 2 * count)
    touch, remove = sorted(picked[:count]), sorted(picked[count:])
    work = args.work / f"rows{args.rows}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    print(f"deltalake {deltalake.__version__}; {count:,} rows a change, spread over {args.rows:,}", flush=True)
    print(HEADER, flush=True)
    results = run_synthetic(work, args.rows, touch, remove, args.seed)
    results += run_dicom(work, args.rows, touch, remove)

    print()
    print(HEADER)
    for r in results:
        report(r)
    for r in results:
        if r.layout == "curate":
            print(
                f"curate {r.operation}: commit {r.extra['commit_seconds']:.2f} s of {r.seconds:.2f} s "
                f"(the rest lists {r.rows:,} files and parses the changed ones); "
                f"parts {r.extra['part_bytes_written']:,} B, retired list {r.extra['retired_bytes_written']:,} B, "
                f"manifest {r.meta_bytes_written:,} B"
            )
        else:
            print(f"{r.layout} {r.data} {r.operation}: log {r.meta_bytes_written:,} B")
    dv_written = sum(r.extra["files_with_deletion_vectors"] for r in results if r.layout != "curate")
    in_place = [p for r in results for p in r.extra["files_changed_in_place"]]
    print(f"Delta files with deletion vectors afterwards: {dv_written}; files changed in place: {len(in_place)}")
    write_json(
        RESULTS_DIR / "layout_choice.json",
        {
            "rows": args.rows,
            "fraction": args.fraction,
            "seed": args.seed,
            "file_rows": FILE_ROWS,
            "deltalake": deltalake.__version__,
            "results": [
                {**asdict(r), "written_share": r.written_share, "bytes_per_changed_row": r.bytes_per_changed_row}
                for r in results
            ],
        },
    )
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

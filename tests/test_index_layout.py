"""What the append-and-retire layout of the index promises: a rescan writes in
proportion to what changed, readers see one current row per file whatever happened to
it, compaction changes no row, a reader keeps the state it opened, a full disk leaves
the previous index, and a scan or compaction killed at any step ends, once rerun, in
the same index as a run that was never interrupted."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dicom_factory import make_dataset, write
from layout_scenario import Counter, run

from curate.errors import IndexNotFoundError
from curate.index import build_index, read_index
from curate.index.compact import compact_index
from curate.index.manifest import LEGACY_INDEX_FILE, MANIFEST_FILE, PARTS_DIR
from curate.index.store import IndexStore

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
TESTS = Path(__file__).parent


def make_files(root: Path, names: list[str], tag: str = "") -> None:
    for i, rel in enumerate(names):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        write(make_dataset(PatientID=f"PID{tag}{i:04d}", InstanceNumber=str(i)), root / rel)


def names(count: int, start: int = 0) -> list[str]:
    return [f"p{i % 5}/im{i:04d}.dcm" for i in range(start, start + count)]


def by_relative_path(table: pa.Table, root: Path) -> pa.Table:
    """The table with paths relative to `root`, sorted by them (two trees compare equal)."""
    relative = [os.path.relpath(p, root) for p in table.column("path").to_pylist()]
    table = table.set_column(table.schema.get_field_index("path"), "path", pa.array(relative)).sort_by("path")
    return table.cast(pa.schema([f.with_nullable(True) for f in table.schema]))


def assert_one_row_per_file(idx: Path) -> pa.Table:
    store = IndexStore(idx)
    table = store.read()
    assert len(set(table.column("path").to_pylist())) == table.num_rows == store.rows()
    assert len(set(table.column("row_id").to_pylist())) == table.num_rows
    con = store.connect()
    duplicated = con.execute("SELECT count(*) FROM (SELECT path FROM idx GROUP BY path HAVING count(*) > 1)").fetchone()
    assert duplicated == (0,)
    assert con.execute("SELECT count(*) FROM idx").fetchone()[0] == table.num_rows
    return table


def test_a_rescan_writes_in_proportion_to_what_changed(tmp_path):
    src, idx = tmp_path / "src", tmp_path / "idx"
    make_files(src, names(60))
    build_index(src, idx, progress=False)
    store = IndexStore(idx)
    first = store.manifest()
    before = {p.file: (idx / p.file).stat() for p in first.parts}
    for k in (1, 4):
        for rel in names(k, start=10 * k):
            write(make_dataset(PatientID=f"NEW{k}"), src / rel)
        summary = build_index(src, idx, progress=False)
        manifest = store.manifest()
        new_parts = manifest.parts[len(first.parts) :]
        assert summary.scanned == k
        assert sum(p.rows for p in new_parts) == k, "only the changed rows are written"
        assert manifest.retired[-1].rows == k, "and the rows they supersede retired"
        for file, stat in before.items():
            after = (idx / file).stat()
            assert (after.st_ino, after.st_mtime_ns, after.st_size) == (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        first = manifest
    assert store.rows() == 60
    assert (idx.stat().st_mode & 0o777, (idx / MANIFEST_FILE).stat().st_mode & 0o777) == (0o700, 0o600), "it holds PHI"
    changed = read_index(idx).filter(pa.compute.starts_with(read_index(idx).column("PatientID"), "NEW"))
    assert changed.num_rows == 5


def test_readers_see_one_current_row_per_file_after_any_history(tmp_path):
    src, idx = tmp_path / "src", tmp_path / "idx"
    rng = random.Random(11)
    pool = names(40)
    present: dict[str, str] = {}
    known: set[str] = set()
    for round_ in range(8):
        for rel in rng.sample(pool, 12):
            if rel in present and rng.random() < 0.4:
                (src / rel).unlink()  # vanish
                del present[rel]
            else:  # add, change, or reappear
                pid = f"R{round_}-{rel}"
                (src / rel).parent.mkdir(parents=True, exist_ok=True)
                write(make_dataset(PatientID=pid), src / rel)
                present[rel] = pid
        if not present:
            continue
        build_index(src, idx, progress=False)
        known |= set(present)
        table = assert_one_row_per_file(idx)
        rows = {os.path.relpath(r["path"], src): r for r in table.to_pylist()}
        assert set(rows) == known
        for rel in known:
            if rel in present:
                assert (rows[rel]["status"], rows[rel]["PatientID"]) == ("ok", present[rel]), (round_, rel)
            else:
                assert rows[rel]["status"] == "vanished", (round_, rel)
        if round_ == 4:
            compact_index(idx, progress=False)
            assert IndexStore(idx).manifest().retired == []


def test_compaction_changes_no_row_and_leaves_plain_parquet(tmp_path):
    src, idx = tmp_path / "src", tmp_path / "idx"
    make_files(src, names(50))
    build_index(src, idx, progress=False, part_rows=8)
    for step in range(3):
        make_files(src, names(6, start=step * 7), tag=f"c{step}")
        (src / names(1, start=40 + step)[0]).unlink()
        build_index(src, idx, progress=False)
    store = IndexStore(idx)
    before, digest, row_count = store.read(), store.digest(), store.rows()
    assert store.manifest().retired, "the rescans retired rows"
    summary = compact_index(idx, progress=False, target_rows=16)
    assert summary.retired_dropped > 0 and summary.parts_rewritten > 0
    assert store.read().equals(before)
    assert (store.digest(), store.rows()) == (digest, row_count), "a dataset built from it keeps its version"
    manifest = store.manifest()
    assert manifest.retired == [] and not (idx / "retired").exists() or not any((idx / "retired").iterdir())
    # Plain Parquet: every file under parts/ is the table, nothing more.
    plain = pq.read_table(idx / PARTS_DIR)
    assert by_relative_path(plain, src).equals(by_relative_path(store.read(), src))
    assert sorted(str(p.relative_to(idx)) for p in (idx / PARTS_DIR).rglob("*.parquet")) == sorted(
        p.file for p in manifest.parts
    )
    assert "nothing to compact" in compact_index(idx, progress=False, target_rows=16).format()


def test_a_reader_keeps_the_state_it_opened(tmp_path):
    src, idx = tmp_path / "src", tmp_path / "idx"
    make_files(src, names(20))
    build_index(src, idx, progress=False)
    con = IndexStore(idx).connect()
    make_files(src, names(30, start=20))
    (src / names(1)[0]).unlink()
    build_index(src, idx, progress=False)
    assert con.execute("SELECT count(*), count(*) FILTER (status = 'ok') FROM idx").fetchone() == (20, 20)
    assert IndexStore(idx).connect().execute("SELECT count(*) FROM idx").fetchone() == (50,)


NO_ROOM = textwrap.dedent(
    """
    import resource, signal, sys
    from curate.errors import IndexWriteError
    from curate.index import build_index

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails, as on a full disk
    limit = int(sys.argv[3])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    try:
        build_index(sys.argv[1], sys.argv[2], progress=False)
    except IndexWriteError as e:
        print(e)
        sys.exit(2)
    """
)


@pytest.mark.parametrize("limit", [2_000, 40_000])
def test_a_full_disk_fails_cleanly_and_leaves_the_previous_index(tmp_path, limit):
    src, idx = tmp_path / "src", tmp_path / "idx"
    make_files(src, names(10))
    build_index(src, idx, progress=False)
    before = read_index(idx)
    make_files(src, names(300, start=10))
    done = subprocess.run(
        [sys.executable, "-c", NO_ROOM, str(src), str(idx), str(limit)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2, done.stderr[-3000:]
    assert "cannot write the index" in done.stdout and "previous index is unchanged" in done.stdout
    assert read_index(idx).equals(before)
    again = build_index(src, idx, progress=False)
    assert read_index(idx).num_rows == 310 and again.scanned + again.resumed == 300
    assert_one_row_per_file(idx)


def make_history(root: Path) -> tuple[Path, Path]:
    """A source tree and the files of its second state (see layout_scenario)."""
    src, pool = root / "src", root / "pool"
    make_files(src, names(40))
    make_files(pool / "added", names(12, start=40), tag="a")
    make_files(pool / "changed", names(10, start=3), tag="c")
    (pool / "removed.txt").write_text("\n".join(names(4, start=30)))
    return src, pool


def test_killed_at_any_step_a_rerun_gives_the_same_index(tmp_path):
    src, pool = make_history(tmp_path / "history")
    original = tmp_path / "original"
    shutil.copytree(src, original, copy_function=shutil.copy2)
    steps = Counter()
    run(src, tmp_path / "idx", pool, steps)
    expected = by_relative_path(read_index(tmp_path / "idx"), src)
    assert {"part", "commit:parts-written", "commit:retired-written", "commit:manifest", "compact:part"} <= set(
        steps.names
    )
    points = sorted(random.Random(20).sample(range(1, steps.seen + 1), min(24, steps.seen)))
    assert len(points) >= 20
    for point in points:
        case = tmp_path / f"kill{point}"
        tree = case / "src"
        shutil.copytree(original, tree, copy_function=shutil.copy2)
        killed = subprocess.run(
            [sys.executable, str(TESTS / "layout_scenario.py"), str(tree), str(case / "idx"), str(pool), str(point)],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=TESTS,
        )
        assert killed.returncode == -9, (point, steps.names[point - 1], killed.stderr[-2000:])
        run(tree, case / "idx", pool, Counter())
        got = by_relative_path(read_index(case / "idx"), tree)
        assert got.equals(expected), (point, steps.names[point - 1])
        assert_one_row_per_file(case / "idx")
        shutil.rmtree(case)


def make_format_4_index(src: Path, idx: Path, count: int) -> pa.Table:
    """An index of `count` files as format 4 wrote it (one file, its signature in the
    Parquet metadata); returns its rows."""
    import json

    make_files(src, names(count))
    build_index(src, idx, progress=False)
    current = read_index(idx)
    signature = dict(IndexStore(idx).signature(), format=4)
    shutil.rmtree(idx)
    idx.mkdir()
    legacy = current.replace_schema_metadata({b"curate_index": json.dumps(signature).encode()})
    pq.write_table(legacy, idx / LEGACY_INDEX_FILE)
    return current


def test_a_format_4_index_is_converted_in_place(tmp_path):
    src, idx = tmp_path / "src", tmp_path / "idx"
    current = make_format_4_index(src, idx, 12)
    with pytest.raises(IndexNotFoundError, match="older format: run `curate scan`"):
        IndexStore(idx).require()
    summary = build_index(src, idx, progress=False)
    assert summary.converted_from == 4 and summary.scanned == 0, "its rows are kept"
    assert "converted from format 4" in summary.format()
    assert read_index(idx).equals(current)
    assert not (idx / LEGACY_INDEX_FILE).exists() and (idx / MANIFEST_FILE).exists()


def test_a_damaged_manifest_stops_a_scan_and_keeps_every_part(tmp_path):
    src, idx = tmp_path / "src", tmp_path / "idx"
    make_files(src, names(8))
    build_index(src, idx, progress=False)
    parts = sorted(p.relative_to(idx) for p in (idx / PARTS_DIR).rglob("*.parquet"))
    (idx / MANIFEST_FILE).write_text((idx / MANIFEST_FILE).read_text()[:40])  # cut short
    with pytest.raises(IndexNotFoundError, match="damaged"):
        build_index(src, idx, progress=False)
    with pytest.raises(IndexNotFoundError, match="damaged"):
        IndexStore(idx).read()
    assert sorted(p.relative_to(idx) for p in (idx / PARTS_DIR).rglob("*.parquet")) == parts


def test_a_manifest_with_keys_a_later_version_adds_is_read(tmp_path):
    import json

    src, idx = tmp_path / "src", tmp_path / "idx"
    make_files(src, names(5))
    build_index(src, idx, progress=False)
    raw = json.loads((idx / MANIFEST_FILE).read_text())
    (idx / MANIFEST_FILE).write_text(json.dumps({**raw, "written_by": "a later curate"}))
    assert build_index(src, idx, progress=False).scanned == 0
    assert IndexStore(idx).rows() == 5


def test_an_empty_source_gives_an_index_with_its_columns(tmp_path):
    src, idx = tmp_path / "src", tmp_path / "idx"
    src.mkdir()
    assert build_index(src, idx, progress=False).rows == 0
    store = IndexStore(idx)
    assert {"path", "status", "row_id", "PatientID"} <= store.columns()
    assert store.connect().execute("SELECT count(*) FROM idx WHERE status = 'ok'").fetchall() == [(0,)]
    make_files(src, names(3))
    assert build_index(src, idx, progress=False).rows == 3
    # A rebuild of a source that is empty for a while (an unmounted share) is not a dead end.
    shutil.move(src, tmp_path / "away")
    src.mkdir()
    assert build_index(src, idx, progress=False, rescan="all").rows == 0
    src.rmdir()
    shutil.move(tmp_path / "away", src)
    assert build_index(src, idx, progress=False).rows == 3


def test_an_index_folder_whose_path_holds_glob_characters(tmp_path):
    src, idx = tmp_path / "study[1]*" / "src", tmp_path / "study[1]*" / "idx"
    make_files(src, names(6))
    build_index(src, idx, progress=False)
    write(make_dataset(PatientID="CHANGED"), src / names(1)[0])
    build_index(src, idx, progress=False)
    compact_index(idx, progress=False)
    assert_one_row_per_file(idx)
    assert IndexStore(idx).rows() == 6


def test_the_same_history_gives_the_same_digest(tmp_path):
    src, pool = make_history(tmp_path / "history")
    original = tmp_path / "original"
    shutil.copytree(src, original, copy_function=shutil.copy2)
    digests = []
    for _ in range(2):
        shutil.rmtree(src)
        shutil.copytree(original, src, copy_function=shutil.copy2)
        shutil.rmtree(tmp_path / "idx", ignore_errors=True)
        build_index(src, tmp_path / "idx", progress=False)
        first = IndexStore(tmp_path / "idx").digest()
        run(src, tmp_path / "idx", pool, Counter())
        digests.append((first, IndexStore(tmp_path / "idx").digest()))
    assert digests[0] == digests[1] and digests[0][0] != digests[0][1]


class Stop(Exception):
    pass


def test_a_compaction_resumed_with_another_plan_starts_over(tmp_path):
    src, idx = tmp_path / "src", tmp_path / "idx"
    make_files(src, names(60))
    build_index(src, idx, progress=False, part_rows=8)
    for step in range(3):
        make_files(src, names(5, start=step * 9), tag=f"c{step}")
        build_index(src, idx, progress=False)
    before = IndexStore(idx).read()

    def stop_after_two(name, seen=[]):  # noqa: B006 - the calls so far
        seen.append(name)
        if seen.count("compact:part") == 2:
            raise Stop

    with pytest.raises(Stop):
        compact_index(idx, progress=False, checkpoint=stop_after_two, target_rows=32)
    summary = compact_index(idx, progress=False, target_rows=16)
    assert summary.resumed == 0
    assert IndexStore(idx).read().equals(before)
    assert_one_row_per_file(idx)


def test_a_big_part_is_split_by_compaction(tmp_path):
    src, idx = tmp_path / "src", tmp_path / "idx"
    make_files(src, names(40))
    build_index(src, idx, progress=False)  # one part of 40 rows
    write(make_dataset(PatientID="CHANGED"), src / names(1)[0])
    build_index(src, idx, progress=False)
    before = IndexStore(idx).read()
    compact_index(idx, progress=False, target_rows=16)
    rows = [p.rows for p in IndexStore(idx).manifest().parts]
    assert sum(rows) == 40 and max(rows) <= 16
    assert IndexStore(idx).read().equals(before)


def test_a_conversion_killed_before_its_manifest_converts_on_the_rerun(tmp_path):
    src, idx = tmp_path / "src", tmp_path / "idx"
    current = make_format_4_index(src, idx, 7)
    # What a conversion killed before its manifest leaves: the link, and the old file.
    (idx / PARTS_DIR / "00000001").mkdir(parents=True)
    os.link(idx / LEGACY_INDEX_FILE, idx / PARTS_DIR / "00000001" / "data_0.parquet")
    summary = build_index(src, idx, progress=False)
    assert summary.converted_from == 4 and summary.scanned == 0
    assert read_index(idx).equals(current)


NO_ROOM_TO_COMPACT = NO_ROOM.replace(
    "from curate.index import build_index", "from curate.index.compact import compact_index"
)
NO_ROOM_TO_COMPACT = NO_ROOM_TO_COMPACT.replace(
    "build_index(sys.argv[1], sys.argv[2], progress=False)",
    "compact_index(sys.argv[2], progress=False, target_rows=64)",
)


def test_a_full_disk_during_compaction_leaves_the_index(tmp_path):
    src, idx = tmp_path / "src", tmp_path / "idx"
    make_files(src, names(200))
    build_index(src, idx, progress=False, part_rows=16)
    make_files(src, names(20, start=3), tag="c")
    build_index(src, idx, progress=False)
    before, manifest = read_index(idx), (idx / MANIFEST_FILE).read_text()
    done = subprocess.run(
        [sys.executable, "-c", NO_ROOM_TO_COMPACT, str(src), str(idx), "3000"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr[-3000:]
    assert "cannot write the index" in done.stdout
    assert (idx / MANIFEST_FILE).read_text() == manifest and read_index(idx).equals(before)
    compact_index(idx, progress=False, target_rows=64)
    assert read_index(idx).equals(before)


def test_files_with_no_size_or_mtime_are_not_rewritten_by_every_rescan(tmp_path):
    src, idx = tmp_path / "src", tmp_path / "idx"
    make_files(src, names(6))
    (src / "dangling.dcm").symlink_to(src / "nowhere.dcm")
    os.mkfifo(src / "pipe.dcm")
    build_index(src, idx, progress=False)
    before = IndexStore(idx).read()
    assert before.filter(pa.compute.is_null(before.column("file_size"))).num_rows >= 1
    again = build_index(src, idx, progress=False)
    assert (again.scanned, again.committed) == (0, False)
    assert IndexStore(idx).read().equals(before)


def test_a_scan_killed_after_its_commit_counts_no_file_as_resumed(tmp_path):
    src, idx = tmp_path / "src", tmp_path / "idx"
    make_files(src, names(20))
    build_index(src, idx, progress=False)
    make_files(src, names(4, start=20))

    def stop_when_done(name):
        if name == "commit:done":
            raise Stop

    with pytest.raises(Stop):
        build_index(src, idx, progress=False, checkpoint=stop_when_done)
    before = IndexStore(idx).read()
    again = build_index(src, idx, progress=False)
    assert (again.resumed, again.scanned, again.unchanged, again.committed) == (0, 0, 24, False)
    assert IndexStore(idx).read().equals(before)


def test_a_scan_that_commits_drops_a_killed_compactions_work(tmp_path):
    src, idx = tmp_path / "src", tmp_path / "idx"
    make_files(src, names(40))
    build_index(src, idx, progress=False, part_rows=8)
    make_files(src, names(5), tag="c")
    build_index(src, idx, progress=False)

    def stop_after_one(name):
        if name == "compact:part":
            raise Stop

    with pytest.raises(Stop):
        compact_index(idx, progress=False, checkpoint=stop_after_one, target_rows=16)
    assert (idx / ".compacting").exists()
    make_files(src, names(3, start=40))
    build_index(src, idx, progress=False)
    assert not (idx / ".compacting").exists()
    before = IndexStore(idx).read()
    compact_index(idx, progress=False, target_rows=16)
    assert IndexStore(idx).read().equals(before)
    assert_one_row_per_file(idx)

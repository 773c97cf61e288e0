"""The index of a growing archive: rescans parse only what changed, a killed scan
resumes, the visible index is never half-written, and derived columns are normalised."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import testdata
from dicom_factory import make_dataset, write

from curate.errors import IndexBusyError
from curate.index import build_index, read_index
from curate.index.manifest import MANIFEST_FILE, PARTS_DIR
from curate.index.store import STAGING_DIR, IndexStore
from curate.runlog import AUDIT_DIR

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def make_tree(root: Path, count: int, start: int = 0) -> dict[str, str]:
    """`count` small CT files in a few folders; returns {relative path: PatientID}."""
    made = {}
    for i in range(start, start + count):
        rel = f"p{i % 7}/s{i % 3}/im{i:04d}.dcm"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        pid = f"PID{i:04d}"
        write(make_dataset(PatientID=pid, InstanceNumber=str(i), PatientAge="040Y"), root / rel)
        made[rel] = pid
    return made


def rows_by_rel(table, root: Path) -> dict[str, dict]:
    return {os.path.relpath(r["path"], root): r for r in table.to_pylist()}


def test_first_scan_writes_a_sorted_index_with_derived_columns(tmp_path):
    src = tmp_path / "src"
    make_tree(src, 30)
    shutil.copy(testdata("CT_small.dcm"), src / "ct_small.dcm")
    summary = build_index(src, tmp_path / "idx", progress=False)
    table = read_index(tmp_path / "idx")
    assert table.num_rows == 31 == summary.listed == summary.scanned
    assert table.column("path").to_pylist() == sorted(table.column("path").to_pylist())
    for column in ("age_years", "sex", "study_year", "body_part", "view", "monochrome1"):
        assert column in table.column_names
    rows = rows_by_rel(table, src)
    assert rows["p0/s0/im0000.dcm"]["age_years"] == 40.0
    assert rows["ct_small.dcm"]["sex"] == "O"  # PatientSex 'O' in pydicom's CT_small.dcm
    assert rows["ct_small.dcm"]["age_years"] == 0.0  # PatientAge '000Y'
    assert rows["ct_small.dcm"]["study_year"] == 2004
    assert sorted(p.name for p in (tmp_path / "idx").iterdir()) == [AUDIT_DIR, MANIFEST_FILE, PARTS_DIR]


def test_rescan_parses_exactly_the_new_and_changed_files(tmp_path):
    src, idx = tmp_path / "src", tmp_path / "idx"
    made = make_tree(src, 40)
    build_index(src, idx, progress=False)
    before = rows_by_rel(read_index(idx), src)

    added = make_tree(src, 2, start=100)
    changed = "p1/s1/im0001.dcm"
    write(make_dataset(PatientID="CHANGED", PatientAge="050Y"), src / changed)
    os.utime(src / changed, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    deleted = "p2/s2/im0002.dcm"
    (src / deleted).unlink()
    # Same size and mtime, different content: a rescan trusts (size, mtime) and skips it.
    disguised = "p3/s0/im0003.dcm"
    stat = (src / disguised).stat()
    data = (src / disguised).read_bytes().replace(b"PID0003", b"PIDXXXX")
    (src / disguised).write_bytes(data)
    os.utime(src / disguised, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    summary = build_index(src, idx, progress=False)
    assert (summary.scanned, summary.vanished, summary.unchanged) == (3, 1, 38)
    after = rows_by_rel(read_index(idx), src)
    assert set(after) == set(made) | set(added)
    for rel in added:
        assert after[rel]["PatientID"] == added[rel] and after[rel]["status"] == "ok"
    assert after[changed]["PatientID"] == "CHANGED" and after[changed]["age_years"] == 50.0
    assert after[deleted]["status"] == "vanished"
    assert after[deleted]["error"].startswith("vanished: ")
    assert after[deleted]["PatientID"] == made[deleted], "a vanished file keeps what was known of it"
    assert after[disguised]["PatientID"] == "PID0003"
    untouched = set(made) - {changed, deleted}
    for rel in untouched:
        assert after[rel] == before[rel], rel

    # Nothing changed: nothing parsed, nothing written.
    mtime = (idx / MANIFEST_FILE).stat().st_mtime_ns
    again = build_index(src, idx, progress=False)
    assert (again.scanned, again.unchanged, again.committed) == (0, 41, False)
    assert (idx / MANIFEST_FILE).stat().st_mtime_ns == mtime
    # A vanished file that comes back is parsed again.
    write(make_dataset(PatientID="BACK"), src / deleted)
    back = build_index(src, idx, progress=False)
    assert back.scanned == 1
    assert rows_by_rel(read_index(idx), src)[deleted]["status"] == "ok"


def test_a_file_keeps_its_row_id_across_rescans(tmp_path):
    src, idx = tmp_path / "src", tmp_path / "idx"
    make_tree(src, 12)
    build_index(src, idx, progress=False)
    first = {rel: row["row_id"] for rel, row in rows_by_rel(read_index(idx), src).items()}
    assert sorted(first.values()) == list(range(12))

    # New files that sort before and among the old ones, one changed file, one deleted.
    write(make_dataset(PatientID="EARLY"), src / "a0" / "first.dcm")
    make_tree(src, 2, start=100)
    changed = "p1/s1/im0001.dcm"
    write(make_dataset(PatientID="CHANGED"), src / changed)
    os.utime(src / changed, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    deleted = "p2/s2/im0002.dcm"
    (src / deleted).unlink()
    build_index(src, idx, progress=False)
    after = {rel: row["row_id"] for rel, row in rows_by_rel(read_index(idx), src).items()}
    assert {rel: after[rel] for rel in first} == first, "old paths (changed and vanished too) keep their ids"
    new = sorted(after[rel] for rel in set(after) - set(first))
    assert new == [12, 13, 14], "paths new to the index get ids after the largest so far"
    build_index(src, idx, progress=False, rescan="all")
    assert {rel: row["row_id"] for rel, row in rows_by_rel(read_index(idx), src).items()} == {
        rel: i for rel, i in after.items() if rel != deleted
    }, "a full rescan keeps the ids too"


def test_rescan_all_and_a_new_tag_set_parse_everything(tmp_path):
    src, idx = tmp_path / "src", tmp_path / "idx"
    make_tree(src, 10)
    build_index(src, idx, progress=False)
    assert build_index(src, idx, progress=False, rescan="all").scanned == 10
    wider = build_index(src, idx, progress=False, extra_tags=["(0019,10A0)"])
    assert wider.scanned == 10 and "tag set" in wider.full_rescan_reason
    assert "(0019,10A0)" in read_index(idx).column_names


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from curate.index import build_index

    def die_after(parts):
        if parts == int(sys.argv[3]):
            os.kill(os.getpid(), signal.SIGKILL)

    build_index(sys.argv[1], sys.argv[2], progress=False, threads=1, batch_size=10, part_rows=20,
                on_part=die_after)
    """
)


def kill_after_parts(src: Path, idx: Path, parts: int) -> None:
    done = subprocess.run(
        [sys.executable, "-c", KILLER, str(src), str(idx), str(parts)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == -signal.SIGKILL, done.stderr


def test_a_killed_scan_resumes_and_gives_the_same_index(tmp_path):
    src = tmp_path / "src"
    make_tree(src, 150)
    kill_after_parts(src, tmp_path / "idx", parts=3)
    assert not (tmp_path / "idx" / MANIFEST_FILE).exists(), "no index is visible before a scan completes"
    assert len(list((tmp_path / "idx" / STAGING_DIR).glob("part-*.parquet"))) == 3

    resumed = build_index(src, tmp_path / "idx", progress=False, threads=1, batch_size=10, part_rows=20)
    assert resumed.resumed == 60 and resumed.scanned == 90
    whole = build_index(src, tmp_path / "whole", progress=False)
    assert whole.scanned == 150
    assert read_index(tmp_path / "idx").equals(read_index(tmp_path / "whole"))
    assert not (tmp_path / "idx" / STAGING_DIR).exists()


def test_a_killed_rescan_leaves_the_previous_index_intact(tmp_path):
    src, idx = tmp_path / "src", tmp_path / "idx"
    make_tree(src, 20)
    build_index(src, idx, progress=False)
    before = read_index(idx)
    make_tree(src, 100, start=200)
    kill_after_parts(src, idx, parts=2)
    assert read_index(idx).equals(before), "the visible index is the previous complete one"
    summary = build_index(src, idx, progress=False, threads=1, batch_size=10, part_rows=20)
    assert (summary.resumed, summary.scanned, summary.unchanged) == (40, 60, 20)
    assert read_index(idx).num_rows == 120


def test_a_second_scan_of_the_same_index_is_refused(tmp_path):
    import fcntl

    src, idx = tmp_path / "src", tmp_path / "idx"
    make_tree(src, 3)
    idx.mkdir()
    fd = os.open(idx, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(IndexBusyError, match="another scan"):
            build_index(src, idx, progress=False)
    finally:
        os.close(fd)
    assert build_index(src, idx, progress=False).scanned == 3


def test_derived_columns_on_planted_values(tmp_path):
    planted = {
        "age_string.dcm": dict(
            PatientAge="006M", PatientSex="M", BodyPartExamined="TORAX", ViewPosition="POSTEROANTERIOR"
        ),
        "birth_date.dcm": dict(
            PatientBirthDate="19800615",
            StudyDate="20200615",
            PatientSex="F",
            BodyPartExamined="Port Chest",
            ViewPosition="LL",
        ),
        "implausible.dcm": dict(PatientAge="150Y", PatientSex="", BodyPartExamined="THORAX", ViewPosition="AP"),
        "negative.dcm": dict(
            PatientBirthDate="20300101", StudyDate="20200101", PhotometricInterpretation="MONOCHROME1"
        ),
    }
    src = tmp_path / "src"
    src.mkdir()
    for name, attrs in planted.items():
        write(make_dataset(**attrs), src / name)
    summary = build_index(src, tmp_path / "idx", progress=False)
    rows = rows_by_rel(read_index(tmp_path / "idx"), src)
    assert rows["age_string.dcm"]["age_years"] == 0.5
    assert rows["birth_date.dcm"]["age_years"] == pytest.approx(40.0, abs=0.01)
    assert rows["implausible.dcm"]["age_years"] is None
    assert rows["negative.dcm"]["age_years"] is None
    assert summary.derive.nulled == {"age outside 0-120 years": 2}
    assert [rows[n]["sex"] for n in planted] == ["M", "F", "unknown", "unknown"]
    assert [rows[n]["body_part"] for n in planted] == ["CHEST", "CHEST", "CHEST", None]
    assert [rows[n]["view"] for n in planted] == ["PA", "LATERAL", "AP", None]
    assert rows["birth_date.dcm"]["study_year"] == 2020
    assert rows["negative.dcm"]["monochrome1"] is True
    assert "nulled: age outside 0-120 years" in summary.format()


def test_index_metadata_records_how_it_was_built(tmp_path):
    src = tmp_path / "src"
    make_tree(src, 2)
    build_index(src, tmp_path / "idx", progress=False)
    signature = IndexStore(tmp_path / "idx").signature()
    assert set(signature) == {"format", "derive", "columns"}
    assert "PID0000" not in (tmp_path / "idx" / MANIFEST_FILE).read_text()

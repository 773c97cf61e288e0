"""Run logs: every store a stage writes keeps a hash-chained, append-only log of its runs,
with no path or identifier in it, and `curate audit verify` finds every edit."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import stat
from pathlib import Path

import pytest
from conftest import testdata
from test_cli import run_curate
from test_deid_engine import KEY, NAME, PID
from test_deid_tree import deid_cli, tree  # noqa: F401 (a fixture)

from curate.audit import verify_store
from curate.deid.tree import deidentify_tree
from curate.errors import AuditError
from curate.index import build_index
from curate.index.compact import compact_index
from curate.runlog import AUDIT_DIR, LOG_FILE, FileSet, RunLog, RunOfFiles, entry_hash, file_digest, tree_state

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def log_lines(store: Path) -> list[str]:
    return (store / AUDIT_DIR / LOG_FILE).read_text().splitlines()


def write_lines(store: Path, lines: list[str]) -> None:
    (store / AUDIT_DIR / LOG_FILE).write_text("\n".join(lines) + "\n")


def deid_twice(source: Path, out: Path) -> None:
    for _ in range(2):
        assert deidentify_tree(source, out, KEY, workers=1, progress=False).ok


def test_a_deid_run_logs_digests_and_counts_and_nothing_identifying(tree, tmp_path):  # noqa: F811
    out = tmp_path / "out"
    done = deid_cli(tree, str(out), tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "run log: entry 1 (" in done.stdout
    raw = (out / AUDIT_DIR / LOG_FILE).read_bytes()
    for value in (NAME, PID, "Quux", "Zebulon", str(tmp_path), "src", "hostile", "../../x"):
        assert value.encode() not in raw, value
    entry = json.loads(raw)
    assert entry["seq"] == 1 and entry["stage"] == "deid" and entry["prev"] == "0" * 64
    assert entry["counts"]["written"] == 3 and entry["counts"]["quarantined"] == 2
    written = [p for p in out.rglob("*.dcm")]
    assert entry["state"]["files"] == len(written) == 3
    assert set(entry) == {
        "seq", "stage", "time", "curate", "settings", "input", "output", "state", "counts", "journals", "prev", "hash"
    }  # fmt: skip
    # The store's log is its owner's alone.
    assert stat.S_IMODE((out / AUDIT_DIR).stat().st_mode) == 0o700
    assert stat.S_IMODE((out / AUDIT_DIR / LOG_FILE).stat().st_mode) == 0o600
    check = run_curate("audit", "verify", str(out), "contents=true", "progress=false", cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "chain: intact, 1 entries" in check.stdout and "contents: match, 3 files" in check.stdout


def test_an_edited_removed_or_cut_entry_is_named_by_its_line(tree, tmp_path):  # noqa: F811
    out = tmp_path / "out"
    deid_twice(tree, out)
    deidentify_tree(tree, out, KEY, workers=1, progress=False)
    good = log_lines(out)
    assert len(good) == 3 and verify_store(out).ok

    edited = json.loads(good[1])
    edited["counts"]["written"] = 7
    write_lines(out, [good[0], json.dumps(edited), good[2]])
    report = verify_store(out)
    assert not report.ok and report.exit_code == 1
    assert [n for n, _ in report.breaks] == [2] and "edited" in report.breaks[0][1]

    # An edit that recomputes the entry's own hash breaks the link to the next one.
    from curate.runlog import entry_hash

    edited["hash"] = entry_hash(edited)
    write_lines(out, [good[0], json.dumps(edited), good[2]])
    assert [n for n, _ in verify_store(out).breaks] == [3]

    write_lines(out, [good[0], good[2]])  # the middle entry removed
    assert {n for n, _ in verify_store(out).breaks} == {2}

    write_lines(out, [good[0], good[1], good[2][:40]])  # the last cut short
    assert verify_store(out).breaks == [(3, "not a whole, well-formed entry (cut short or edited)")]

    write_lines(out, good)
    check = run_curate("audit", "verify", str(out), cwd=tmp_path)
    assert check.returncode == 0 and "chain: intact, 3 entries" in check.stdout
    write_lines(out, [good[1], good[0], good[2]])  # reordered
    check = run_curate("audit", "verify", str(out), cwd=tmp_path)
    assert check.returncode == 1 and "BROKEN" in check.stdout and "line 1:" in check.stdout


def test_contents_show_a_file_edited_added_or_removed_outside_a_run(tree, tmp_path):  # noqa: F811
    out = tmp_path / "out"
    deid_twice(tree, out)
    assert verify_store(out, contents=True, progress=False).contents_ok is True
    victim = next(out.rglob("*.dcm"))
    original = victim.read_bytes()
    victim.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    report = verify_store(out, contents=True, progress=False)
    assert report.contents_ok is False and "not the same bytes" in report.contents_note and report.exit_code == 1
    assert verify_store(out).ok  # the chain itself is whole: only the store changed
    victim.write_bytes(original)
    (victim.parent / "extra.dcm").write_bytes(original)
    report = verify_store(out, contents=True, progress=False)
    assert not report.contents_ok and "holds 4 files, the log says 3" in report.contents_note
    (victim.parent / "extra.dcm").unlink()
    victim.unlink()
    assert "holds 2 files" in verify_store(out, contents=True, progress=False).contents_note


def test_a_killed_runs_files_are_adopted_by_the_next_entry(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    killed = RunOfFiles(store, "deid")
    (store / "a.dcm").write_bytes(b"a" * 100)
    killed.wrote(store / "a.dcm", file_digest(store / "a.dcm", killed.file_hash))
    (store / "b.dcm").write_bytes(b"b" * 100)  # in place, but its line was cut by the kill
    killed.journal._file.write("b.dcm\tdead")
    killed.abandon()  # no entry: as a killed run leaves it
    assert not RunLog(store).exists()

    (store / "b.dcm").unlink()
    run = RunOfFiles(store, "deid")
    (store / "c.dcm").write_bytes(b"c" * 100)
    run.wrote(store / "c.dcm", file_digest(store / "c.dcm", run.file_hash))
    entry = run.finish({"setting": 1}, {"written": 1})
    assert entry["counts"]["adopted_files"] == 1 and entry["state"]["files"] == 2
    assert entry["journals"] and not list((store / AUDIT_DIR).glob("journal-*"))
    assert verify_store(store, contents=True, progress=False).contents_ok is True
    # A later run does not adopt the same journal twice.
    again = RunOfFiles(store, "deid").finish({"setting": 1}, {"written": 0})
    assert again["counts"]["adopted_files"] == 0 and again["state"]["files"] == 2


def test_files_are_read_by_blake3_and_a_store_logged_by_sha256_keeps_it(tree, tmp_path):  # noqa: F811
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    # BLAKE3's published digest of no bytes: the native digest is the real one.
    assert file_digest(empty, "blake3") == "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
    with pytest.raises(AuditError, match="blake3 or sha256"):
        file_digest(empty, "md5")
    out = tmp_path / "out"
    deid_twice(tree, out)
    states = [json.loads(line)["state"] for line in log_lines(out)]
    assert [s["file_hash"] for s in states] == ["blake3", "blake3"]
    assert tree_state(out, "blake3").as_state("blake3") == states[-1]
    # A store whose log began before file_hash was named: its states are sha256 sums.
    part, legacy = tmp_path / "part", tmp_path / "legacy"
    shutil.copytree(tree, part)
    sorted(part.rglob("*.dcm"))[0].unlink()
    assert deidentify_tree(part, legacy, KEY, workers=1, progress=False).written == 2
    old = json.loads(log_lines(legacy)[-1])
    old["state"] = tree_state(legacy, "sha256").as_state("sha256")
    del old["state"]["file_hash"]
    old["hash"] = entry_hash(old)
    write_lines(legacy, [json.dumps(old)])
    assert deidentify_tree(tree, legacy, KEY, workers=1, progress=False).written == 1
    assert json.loads(log_lines(legacy)[-1])["state"]["file_hash"] == "sha256"
    report = verify_store(legacy, contents=True, progress=False)
    assert report.ok and report.contents_ok is True, report.contents_note
    # A state naming another digest is not an entry.
    old["state"]["file_hash"] = "md5"
    old["hash"] = entry_hash(old)
    write_lines(legacy, [json.dumps(old)])
    assert not verify_store(legacy).ok


def test_a_store_written_before_its_log_is_read_whole_once(tmp_path):
    store = tmp_path / "store"
    (store / "x").mkdir(parents=True)
    (store / "x" / "old.dcm").write_bytes(b"old")
    run = RunOfFiles(store, "deid", was_empty=False)
    (store / "x" / "new.dcm").write_bytes(b"new")
    run.wrote(store / "x" / "new.dcm", file_digest(store / "x" / "new.dcm", run.file_hash))
    entry = run.finish({}, {"written": 1})
    assert entry["state"] == tree_state(store, "blake3").as_state("blake3") and entry["state"]["files"] == 2


def test_the_log_takes_digests_and_numbers_only(tmp_path):
    log = RunLog(tmp_path)
    with pytest.raises(AuditError, match="hex digests only"):
        log.append("deid", {}, outputs={"files": "/home/smith/export"})
    with pytest.raises(AuditError, match="numbers"):
        log.append("deid", {}, counts={"patient": "SMITH^JOHN"})
    with pytest.raises(AuditError, match="stage name"):
        log.append("Smith John", {})
    entry = log.append("deid", {"source": "/home/smith"}, counts={"failed.no such file: /x": 1})
    assert "smith" not in json.dumps(entry) and "/x" not in json.dumps(entry)


def _append_many(root: str, count: int) -> None:
    log = RunLog(root)
    for i in range(count):
        log.append("scan", {"i": i}, counts={"n": i})


def test_runs_appending_at_once_keep_one_chain(tmp_path):
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append_many, args=(str(tmp_path), 15)) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    report = verify_store(tmp_path)
    assert report.ok and report.entries == 45


def test_the_index_logs_scans_compactions_and_types(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "JPEG2000.dcm"):
        (src / name).write_bytes(testdata(name).read_bytes())
    index = tmp_path / "idx"
    first = build_index(src, index, progress=False, part_rows=2)
    os.utime(src / "CT_small.dcm", (1e9, 1e9))  # changed: a rescan commits a new generation
    build_index(src, index, progress=False)
    compact_index(index, progress=False)
    from curate.classify import load_default_model
    from curate.classify.train import classify_index

    typed = classify_index(index, load_default_model(), model_version="default")
    stages = [json.loads(line)["stage"] for line in log_lines(index)]
    assert stages[:2] == ["scan", "scan"] and stages[-1] == "classify"
    assert first.run_entry["seq"] == 1 and typed.run_entry["seq"] == len(stages)
    report = verify_store(index, contents=True)
    assert report.ok and report.contents_ok is True
    # A manifest changed outside curate's runs shows.
    manifest = json.loads((index / "manifest.json").read_text())
    manifest["content"] = "f" * 64
    (index / "manifest.json").write_text(json.dumps(manifest))
    assert verify_store(index, contents=True).contents_ok is False


def test_verify_names_a_store_without_a_log(tmp_path):
    done = run_curate("audit", "verify", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 2 and "no run log" in done.stderr
    assert FileSet().digest == "0" * 64


@pytest.mark.parametrize(
    "line",
    ['{"seq":2,"counts":[1]}', '{"journals":5}', '{"state":{"files":"abc"}}', '{"seq":{"a":1}}', "[1, 2]"],
)
def test_a_line_edited_into_something_else_is_named_and_later_runs_go_on(tree, tmp_path, line):  # noqa: F811
    out = tmp_path / "out"
    deid_twice(tree, out)
    lines = log_lines(out)
    write_lines(out, [lines[0], line, lines[1]])
    report = verify_store(out, contents=True, progress=False)
    assert [n for n, _ in report.breaks][:1] == [2] and report.exit_code == 1
    assert deidentify_tree(tree, out, KEY, workers=1, progress=False).run_entry["seq"] == 3
    assert not list((out / AUDIT_DIR).glob("journal-*"))


def test_hidden_files_links_and_odd_names_in_a_store_show(tree, tmp_path):  # noqa: F811
    out = tmp_path / "out"
    deid_twice(tree, out)
    study = next(p for p in out.iterdir() if p.is_dir() and not p.name.startswith("."))
    (study / ".hidden.dcm").write_bytes(b"x")
    assert "holds 4 files" in verify_store(out, contents=True, progress=False).contents_note
    (study / ".hidden.dcm").unlink()
    (study / "elsewhere").symlink_to(tmp_path)
    assert verify_store(out, contents=True, progress=False).contents_ok is False
    (study / "elsewhere").unlink()
    (study / os.fsdecode(b"\xff\xfe.dcm")).write_bytes(b"x")  # a name that is not UTF-8
    report = verify_store(out, contents=True, progress=False)
    assert report.contents_ok is False and "holds 4 files" in report.contents_note


def test_a_killed_runs_journal_is_named_by_verify(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    RunOfFiles(store, "deid").finish({}, {"written": 0})
    killed = RunOfFiles(store, "deid")
    (store / "a.dcm").write_bytes(b"a")
    killed.wrote(store / "a.dcm", file_digest(store / "a.dcm", killed.file_hash))
    killed.abandon()
    report = verify_store(store, contents=True, progress=False)
    assert report.contents_ok is False and "only in the journal of 1 run(s) killed" in report.contents_note
    # A journal that is not owner-only was not written by curate: not taken in.
    forged = store / AUDIT_DIR / "journal-1-1.tsv"
    (store / "b.dcm").write_bytes(b"b")
    forged.write_text(f"b.dcm\t{file_digest(store / 'b.dcm', 'blake3')}\n")
    forged.chmod(0o644)
    entry = RunOfFiles(store, "deid").finish({}, {"written": 0})
    assert entry["counts"]["adopted_files"] == 1  # a.dcm, the killed run's
    report = verify_store(store, contents=True, progress=False)
    assert report.contents_ok is False and "holds 2 files, the log says 1" in report.contents_note  # b.dcm: no one's


def test_bookkeeping_names_below_the_top_and_a_dead_writers_half_file_count(tree, tmp_path):  # noqa: F811
    out = tmp_path / "out"
    deid_twice(tree, out)
    series = next(p for p in out.rglob("*") if p.is_dir() and p.parent != out and not p.name.startswith("."))
    for name in (".curate-deid.json", ".curate-audit", ".x.dcm.999999999.partial"):
        planted = series / name
        if name == ".curate-audit":
            planted.mkdir()
            planted = planted / "x.dcm"
        planted.write_bytes(b"raw")
        assert verify_store(out, contents=True, progress=False).contents_ok is False, name
        planted.unlink()


def test_what_curate_does_not_write_in_its_bookkeeping_counts(tree, tmp_path):  # noqa: F811
    """A file planted among the run log, the digitize errors or the journals, or a half
    file whose writer is 'alive' (process 1 always is) when no run writes, is the store's."""
    out = tmp_path / "out"
    deid_twice(tree, out)
    assert verify_store(out, contents=True, progress=False).contents_ok is True
    series = next(p for p in out.rglob("*") if p.is_dir() and p.parent != out and not p.name.startswith("."))
    for planted in (
        out / AUDIT_DIR / "notes.dcm",
        out / AUDIT_DIR / "sub" / "runs.jsonl",
        out / ".curate-digitize" / "x.dcm",
        series / ".leak.dcm.1.partial",
    ):
        planted.parent.mkdir(parents=True, exist_ok=True)
        planted.write_bytes(b"raw")
        report = verify_store(out, contents=True, progress=False)
        assert report.contents_ok is False and "holds 4 files" in report.contents_note, planted
        planted.unlink()
    assert verify_store(out, contents=True, progress=False).contents_ok is True


def test_a_fifo_named_as_a_journal_neither_blocks_verify_nor_makes_the_store_live(tree, tmp_path):  # noqa: F811
    out = tmp_path / "out"
    deid_twice(tree, out)
    os.mkfifo(out / AUDIT_DIR / "journal-1-1.tsv")
    assert verify_store(out, contents=True, progress=False).contents_ok is True
    series = next(p for p in out.rglob("*") if p.is_dir() and p.parent != out and not p.name.startswith("."))
    (series / ".leak.dcm.1.partial").write_bytes(b"raw")
    assert verify_store(out, contents=True, progress=False).contents_ok is False


def test_identifying_data_under_a_bookkeeping_name_is_the_stores(tree, tmp_path):  # noqa: F811
    """A file named like one of curate's own (a journal, an audit, the lock, the settings)
    is passed over only if it holds what curate writes there: else it is the store's, and
    verify counts it."""
    from curate.deid.tree import _RedactionLog
    from curate.runlog import tree_files

    out = tmp_path / "out"
    deid_twice(tree, out)
    written = sorted(p for p in out.rglob("*.dcm") if AUDIT_DIR not in p.parts)
    relative = written[0].relative_to(out).as_posix()
    log = _RedactionLog(out / AUDIT_DIR)  # a real redaction log, as curate writes it
    log.add(written[0], {"frames": 1, "boxes": 2, "fixed_boxes": 0, "area_px": 300, "regions": [[0, 1, 2, 3, 4]]})
    log.close()
    journal = out / AUDIT_DIR / "journal-1-1.tsv"  # a killed run's, cut short mid-line
    journal.write_text(f"{relative}\t{'a' * 64}\n{relative[:30]}")
    assert set(tree_files(out)) == set(written), "curate's own files are not the store's"
    journal.unlink()
    assert verify_store(out, contents=True, progress=False).contents_ok is True
    settings = (out / ".curate-deid.json").read_bytes()
    planted = {
        out / AUDIT_DIR / "journal-1-1.tsv": f"{NAME}\t{'a' * 64}\n",
        out / AUDIT_DIR / "journal-2-2.tsv": f"{relative}\t{'a' * 64}\n{NAME}",
        out / AUDIT_DIR / "deid-20260101T000000Z.csv": f"attribute,kept\nPatientName,1\n{NAME},1\n",
        out / AUDIT_DIR / "deid-20260102T000000Z.csv": "attribute,kept\nZyxwbrook,1\n",
        out
        / AUDIT_DIR
        / "redactions-20260101T000000Z.csv": f"file,frames,boxes,fixed_boxes,area_px,regions\n{PID},1,1,0,1,[]\n",
        out / AUDIT_DIR / "runs.lock": PID,
        out / ".curate-deid.json": settings.decode() + f"\n{NAME}\n",
        out / ".curate-digitize" / "errors.csv": f"{NAME}\n",
    }
    for path, text in planted.items():
        before = path.read_bytes() if path.exists() else None
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
        path.chmod(0o600)
        assert path in set(tree_files(out)), path.name
        if path.name != "journal-1-1.tsv":  # (that one a verify also reads as a killed run's journal)
            assert verify_store(out, contents=True, progress=False).contents_ok is False, path.name
        if before is None:
            path.unlink()
        else:
            path.write_bytes(before)
    assert verify_store(out, contents=True, progress=False).contents_ok is True

"""The `curate scan` command, run as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import testdata


def run_curate(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, CURATE_RUNS_DIR=str(cwd / "runs"), **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "curate.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture()
def small_tree(tmp_path: Path) -> Path:
    tree = tmp_path / "export"
    (tree / "a").mkdir(parents=True)
    for name in ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm"):
        (tree / "a" / name).write_bytes(testdata(name).read_bytes())
    (tree / "notes.txt").write_text("not an image")
    (tree / "cut.dcm").write_bytes(testdata("CT_small.dcm").read_bytes()[:700])
    return tree


def test_scan_writes_index_and_summary(small_tree: Path, tmp_path: Path):
    result = run_curate("scan", f"source={small_tree}", "index=idx", "progress=false", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    table = pq.read_table(tmp_path / "idx" / "parts")
    assert table.num_rows == 5
    rows = {Path(r["path"]).name: r for r in table.to_pylist()}
    assert rows["CT_small.dcm"]["status"] == "ok"
    assert rows["CT_small.dcm"]["Modality"] == "CT"
    assert rows["notes.txt"]["status"] == "not_dicom"
    assert rows["cut.dcm"]["status"] == "error"
    assert rows["cut.dcm"]["error"].startswith("truncated:")
    out = result.stdout
    assert "files" in out and "5" in out
    assert "truncated" in out and "files/s" in out
    # Nothing half-written is left beside the index.
    assert sorted(p.name for p in (tmp_path / "idx").iterdir()) == [".curate-audit", "manifest.json", "parts"]
    assert "run log: entry 1 (" in out
    # No composed config is kept with the run: it would hold the source's path (folders
    # are named after patients); the run's settings go to MLflow, paths left out.
    assert not list((tmp_path / "runs").rglob("config.yaml"))
    assert not list((tmp_path / "runs").rglob("overrides.yaml"))


def test_extra_tags_and_overrides(small_tree: Path, tmp_path: Path):
    result = run_curate(
        "scan",
        f"source={small_tree}",
        "index=idx",
        "threads=1",
        'extra_tags=["(0018,5100)","Frames=NumberOfFrames",00280008]',
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    table = pq.read_table(tmp_path / "idx" / "parts")
    assert "PatientPosition" in table.column_names  # (0018,5100) by its keyword
    assert "Frames" in table.column_names
    assert "NumberOfFrames" in table.column_names  # also in the default set; 00280008 names it too


@pytest.mark.parametrize(
    "stage", ["scan", "compact", "report", "deid", "train", "classify", "build", "datasets", "query", "quality"]
)
def test_every_stage_explains_itself(stage, tmp_path: Path):
    helped = run_curate(stage, "--help", cwd=tmp_path)
    assert helped.returncode == 0, helped.stderr[-2000:]
    assert f"curate {stage}" in helped.stdout and "Configuration (defaults shown)" in helped.stdout
    assert "$$" not in helped.stdout, "Hydra's template escapes are not shown"


def test_help_and_cfg(tmp_path: Path):
    top = run_curate("--help", cwd=tmp_path)
    assert top.returncode == 0 and "scan" in top.stdout
    helped = run_curate("scan", "--help", cwd=tmp_path)
    assert helped.returncode == 0
    assert "source" in helped.stdout and "extra_tags" in helped.stdout and "PatientID" in helped.stdout
    cfg = run_curate("scan", "source=x", "index=y", "threads=3", "--cfg", "job", cwd=tmp_path)
    assert cfg.returncode == 0 and "threads: 3" in cfg.stdout


def test_clear_errors(tmp_path: Path):
    missing = run_curate("scan", f"source={tmp_path / 'nope'}", "index=idx", cwd=tmp_path)
    assert missing.returncode != 0
    assert "source does not exist" in missing.stderr
    assert not (tmp_path / "idx" / "manifest.json").exists()
    unknown = run_curate("scna", cwd=tmp_path)
    assert unknown.returncode == 2 and "unknown stage" in unknown.stderr
    bad_tag = run_curate("scan", f"source={tmp_path}", "index=idx", "extra_tags=[NotAKeyword]", cwd=tmp_path)
    assert bad_tag.returncode != 0 and "NotAKeyword" in bad_tag.stderr


def test_the_configs_live_inside_the_package_so_a_wheel_carries_them():
    # Wheels hold no symbolic links: a config folder reached through one is left out,
    # and an installed `curate` could not compose any stage.
    from curate.paths import conf_dir

    assert conf_dir().is_dir() and not conf_dir().is_symlink()
    assert (conf_dir() / "scan.yaml").is_file() and (conf_dir() / "tags" / "default.yaml").is_file()

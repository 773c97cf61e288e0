"""One error tree: every stage ends a request it cannot do as a CurateError message
(exit 2, no traceback), and anything else shows as the bug it is."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import testdata

from curate import errors
from curate.index import build_index

KEY = "k" * 64
TRACKED = {"scan", "report", "deid", "train", "classify", "build"}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A small source tree and its index."""
    root = tmp_path_factory.mktemp("errors")
    (root / "src").mkdir()
    (root / "src" / "ct.dcm").write_bytes(testdata("CT_small.dcm").read_bytes())
    build_index(root / "src", root / "idx", progress=False)
    return root


def curate_cli(*args: str, cwd: Path, key: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CURATE_DEID_KEY"}
    env.update(CURATE_RUNS_DIR=str(cwd / "runs"))
    if key:
        env["CURATE_DEID_KEY"] = key
    tracking = ["tracking=off"] if args[0] in TRACKED else []
    return subprocess.run(
        [sys.executable, "-m", "curate.cli", *args, *tracking],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


BAD_REQUESTS = [
    ("scan", ["source=nowhere", "index=idx2"], None, "source does not exist"),
    ("scan", ["source=src", "index=idx2", "extra_tags=[NotAnAttribute]"], None, "neither a DICOM keyword"),
    ("scan", ["source=src", "index=idx2", "rescan=sometimes"], None, "rescan must be"),
    ("scan", ["source=src", "index=idx2", "backend=spark"], None, "backend must be"),
    ("report", ["index=nowhere", "out=rep"], None, "no index at nowhere"),
    ("quality", ["index=nowhere"], None, "no index at nowhere"),
    ("query", ["SELEC 1", "index=idx"], None, "SELEC"),
    ("query", ["SELECT 1", "index=idx", "out=result.txt"], None, "must end in .csv or .parquet"),
    ("deid", ["source=src", "output=out"], None, "no de-identification key"),
    ("deid", ["source=nowhere", "output=out"], KEY, "source does not exist"),
    ("deid", ["source=src", "output=src/out"], KEY, "must not be inside the source"),
    ("deid", ["source=src", "output=out", "uid_root=01.2"], KEY, "not a usable UID root"),
    ("train", ["data.source=web"], None, "data.source must be"),
    ("train", ["model=svm", "data.series=60", "data.sites=3"], None, "model must be one of"),
    ("classify", ["index=idx", "model=missing.joblib"], None, "no model file at missing.joblib"),
    ("build", ["index=nowhere", "out=ds"], KEY, "no index at nowhere"),
    ("build", ["index=idx", "out=ds", "dataset.split.train=2"], KEY, "split ratios"),
    ("build", ["index=idx", "out=ds", "dataset.select='nonsense ('"], KEY, "select cannot run"),
    ("datasets", ["action=merge"], None, "action must be list, show or diff"),
    ("datasets", ["show", "version=nowhere"], None, "is not a dataset version"),
]


@pytest.mark.parametrize(
    ("stage", "args", "key", "message"), BAD_REQUESTS, ids=[f"{s}-{m}" for s, _, _, m in BAD_REQUESTS]
)
def test_a_request_that_cannot_be_done_ends_as_a_message(workspace, stage, args, key, message):
    done = curate_cli(stage, *args, cwd=workspace, key=key)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"curate {stage}: "), done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_a_bug_shows_its_traceback(workspace):
    # A library error that is not a CurateError (here a TypeError from a broken call)
    # must not pass for a user error.
    script = (
        "import sys; from curate import cli\n"
        "def broken(cfg): return len(None)\n"
        "cli.STAGES['query'] = (broken, False, 'broken')\n"
        "sys.exit(cli.main(['query', 'SELECT 1', 'index=idx']))\n"
    )
    env = dict(os.environ, CURATE_RUNS_DIR=str(workspace / "runs"), HYDRA_FULL_ERROR="1")
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=workspace, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode not in (0, 2)
    assert "Traceback" in done.stderr and "TypeError" in done.stderr


def test_every_error_is_a_curate_error_and_the_builtin_it_replaces():
    assert issubclass(errors.SelectionError, errors.CurateError) and issubclass(errors.SelectionError, ValueError)
    assert issubclass(errors.ScanError, errors.CurateError) and issubclass(errors.ScanError, RuntimeError)
    assert errors.CurateError.__module__ == "curate._native", "the base is the native module's own"
    builtins = {
        errors.ConfigError: ValueError,
        errors.TagSpecError: ValueError,
        errors.SourceNotFoundError: FileNotFoundError,
        errors.IndexNotFoundError: FileNotFoundError,
        errors.IndexBusyError: RuntimeError,
        errors.QueryError: ValueError,
        errors.LabelsError: ValueError,
        errors.ModelNotFoundError: FileNotFoundError,
        errors.DatasetError: ValueError,
        errors.DeidKeyError: RuntimeError,
        errors.DeidOutputError: ValueError,
        errors.AuditError: ValueError,
    }
    for error, builtin in builtins.items():
        assert issubclass(error, errors.CurateError) and issubclass(error, builtin), error
    assert set(errors.__all__) == {n for n in dir(errors) if isinstance(getattr(errors, n), type)} - {"annotations"}


def test_the_native_module_raises_its_own_errors():
    from curate import _native

    with pytest.raises(errors.SelectionError):
        _native.open_scan(["."], [("X", [(0x00100010, None)], "Q", False)])
    scan = _native.open_scan([str(testdata("CT_small.dcm"))], [])
    scan.__arrow_c_stream__()
    with pytest.raises(errors.ScanError, match="already started"):
        scan.__arrow_c_stream__()

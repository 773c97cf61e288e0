"""`backend=dask`: the same native scanner on Dask workers gives the same index."""

from __future__ import annotations

import shutil

import pytest
from conftest import testdata
from dicom_factory import make_dataset, write
from test_cli import run_curate

from curate.index import build_index, read_index
from curate.index.dask import DaskOptions

pytest.importorskip("distributed")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    src = tmp_path_factory.mktemp("dask") / "src"
    for i in range(45):
        write(
            make_dataset(PatientID=f"D{i:03d}", PatientAge=f"{i:03d}Y", BodyPartExamined="TORAX"),
            src / f"s{i % 4}" / f"{i}.dcm",
        )
    shutil.copy(testdata("MR_small.dcm"), src / "mr.dcm")
    (src / "cut.dcm").write_bytes(testdata("CT_small.dcm").read_bytes()[:900])
    (src / "notes.txt").write_text("not DICOM")
    return src


def test_dask_backend_gives_the_same_index_as_the_local_one(tree, tmp_path):
    local = build_index(tree, tmp_path / "local", progress=False)
    options = DaskOptions(workers=2, threads_per_task=1, shard_files=5)  # more shards than are sent at once
    distributed = build_index(tree, tmp_path / "dask", progress=False, dask=options)
    assert distributed.scanned == local.scanned == 48
    assert distributed.by_status == local.by_status
    assert read_index(tmp_path / "dask").equals(read_index(tmp_path / "local"))
    # A rescan on Dask parses only what changed.
    write(make_dataset(PatientID="NEW"), tree / "new.dcm")
    again = build_index(tree, tmp_path / "dask", progress=False, dask=options)
    assert (again.scanned, again.unchanged) == (1, 48)


def test_cli_backend_dask(tree, tmp_path):
    done = run_curate(
        "scan",
        f"source={tree}",
        "index=idx",
        "backend=dask",
        "dask.workers=2",
        "dask.shard_files=20",
        "progress=false",
        "tracking=off",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert read_index(tmp_path / "idx").num_rows >= 48
    bad = run_curate("scan", f"source={tree}", "index=idx2", "backend=spark", "tracking=off", cwd=tmp_path)
    assert bad.returncode == 2 and "backend must be" in bad.stderr


def test_classification_on_dask_writes_the_same_series_types(tree, tmp_path):
    import pyarrow.parquet as pq

    from curate.classify import load_default_model
    from curate.classify.train import classify_index

    build_index(tree, tmp_path / "idx", progress=False)
    model = load_default_model()
    local = classify_index(tmp_path / "idx", model, "default", batch_rows=8)
    expected = pq.read_table(tmp_path / "idx" / "series_types.parquet")
    assert expected.num_rows > 10, "several batches of series"
    options = DaskOptions(workers=2)
    distributed = classify_index(tmp_path / "idx", model, "default", batch_rows=8, dask=options)
    assert distributed.counts == local.counts
    assert pq.read_table(tmp_path / "idx" / "series_types.parquet").equals(expected)


def test_cli_classify_on_dask(tree, tmp_path):
    import joblib

    from curate.classify import load_default_model

    build_index(tree, tmp_path / "idx", progress=False)
    joblib.dump(load_default_model(), tmp_path / "model.joblib")
    done = run_curate(
        "classify", "index=idx", "model=model.joblib", "backend=dask", "dask.workers=2", "tracking=off", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "idx" / "series_types.parquet").exists()


def test_a_resumed_dask_scan_keeps_every_file(tree, tmp_path):
    """Dask shards finish in any order: a killed run leaves gaps in the staged parts
    (here, only the fourth), and the rerun's parts must not overwrite them."""
    import json

    from curate.index.build import index_signature
    from curate.index.dask import scan_shard
    from curate.index.store import STAGING_DIR
    from curate.index.tags import resolve_tags

    columns = resolve_tags(None, ())
    staging = tmp_path / "idx" / STAGING_DIR
    staging.mkdir(parents=True)
    (staging / "signature.json").write_text(json.dumps(index_signature(columns)))
    some = sorted(str(p) for p in tree.rglob("*.dcm"))[:5]
    scan_shard(some, columns, 1, str(staging / "part-000003.parquet"))
    summary = build_index(tree, tmp_path / "idx", progress=False, dask=DaskOptions(workers=2, shard_files=10))
    assert summary.resumed == 5
    expected = build_index(tree, tmp_path / "local", progress=False)
    assert read_index(tmp_path / "idx").num_rows == expected.rows


def test_deid_on_dask_writes_the_local_runs_output(tree, tmp_path):
    """The same files, byte for byte, the same counts; the run log written by this
    process alone, its files journalled from the Dask tasks' answers."""
    from test_deid_tree import hashes

    from curate.audit import verify_store
    from curate.deid.tree import deidentify_tree

    key = b"0123456789abcdef0123456789abcdef"
    local = deidentify_tree(tree, tmp_path / "local", key, workers=1, progress=False)
    dask = deidentify_tree(tree, tmp_path / "dask", key, progress=False, dask=DaskOptions(workers=2))
    assert dask.backend == "dask" and dask.ok
    assert (dask.written, dask.failed, dask.quarantined) == (local.written, local.failed, local.quarantined)
    assert local.written >= 46  # the fixture's files (other tests of this module add some)
    assert hashes(tmp_path / "dask") == hashes(tmp_path / "local")
    assert dask.run_entry["state"] == local.run_entry["state"]
    assert verify_store(tmp_path / "dask", contents=True, progress=False).ok


def test_cli_deid_on_dask(tree, tmp_path):
    done = run_curate(
        "deid",
        f"source={tree}",
        f"output={tmp_path / 'out'}",
        "backend=dask",
        "dask.workers=1",
        "progress=false",
        cwd=tmp_path,
        env={"CURATE_DEID_KEY": "0123456789abcdef0123456789abcdef"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    written = int(next(line.split()[-1] for line in done.stdout.splitlines() if line.startswith("written")))
    assert "verification: passed" in done.stdout and len(list((tmp_path / "out").rglob("*.dcm"))) == written >= 46


def test_a_dataset_built_on_dask_is_the_local_build(tmp_path):
    """The same version id, manifest and files, byte for byte; the files written by the
    Dask tasks, the plan and the manifest by this process."""
    import pandas as pd
    from test_dataset import KEY, SPEC, make_archive
    from test_deid_tree import hashes

    from curate.dataset import DatasetSpec, build_dataset
    from curate.dataset.build import MANIFEST

    build_index(make_archive(tmp_path), tmp_path / "idx", progress=False)
    spec = DatasetSpec.from_dict(SPEC)
    local = build_dataset(spec, tmp_path / "idx", tmp_path / "local", KEY, workers=1)
    dask = build_dataset(spec, tmp_path / "idx", tmp_path / "dask", KEY, dask=DaskOptions(workers=2))
    assert dask.created and dask.version_id == local.version_id
    assert dask.description["counts"] == local.description["counts"]
    # Every file but the description and its card (they say when each was built).
    files = {k: v for k, v in hashes(dask.path).items() if k not in ("dataset.json", "DATASET_CARD.md")}
    assert len(files) > 10 and files == {k: v for k, v in hashes(local.path).items() if k in files}
    assert set(hashes(dask.path)) == set(hashes(local.path))
    pd.testing.assert_frame_equal(pd.read_parquet(dask.path / MANIFEST), pd.read_parquet(local.path / MANIFEST))


def test_cli_build_on_dask(tmp_path):
    from test_dataset import KEY, make_archive

    build_index(make_archive(tmp_path), tmp_path / "idx", progress=False)
    done = run_curate(
        "build",
        f"index={tmp_path / 'idx'}",
        f"out={tmp_path / 'out'}",
        "backend=dask",
        "dask.workers=2",
        "dataset.quality.min_rows=0",
        "dataset.quality.min_columns=0",
        "tracking=off",
        cwd=tmp_path,
        env={"CURATE_DEID_KEY": KEY.decode()},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(list((tmp_path / "out").rglob("*.dcm"))) > 10

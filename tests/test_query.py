"""`curate query`: SQL over the index, printed or written, with clear errors."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import testdata
from test_cli import run_curate

from curate.index import build_index
from curate.inspect import query


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("query")
    src = root / "src"
    src.mkdir()
    for name in ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "JPEG2000.dcm"):
        shutil.copy(testdata(name), src / name)
    (src / "notes.txt").write_text("not DICOM")
    build_index(src, root / "idx", progress=False)
    return root / "idx"


def test_query_returns_arrow(index_dir):
    table = query.query(
        index_dir, "SELECT Modality, count(*) AS n FROM idx WHERE status = 'ok' GROUP BY ALL ORDER BY ALL"
    )
    assert dict(zip(table.column("Modality").to_pylist(), table.column("n").to_pylist(), strict=True)) == {
        "CT": 1,
        "MR": 1,
        "NM": 1,  # JPEG2000.dcm
        "RTPLAN": 1,
    }


def test_show_limits_rows_and_says_so(index_dir):
    text = query.show(index_dir, "SELECT path FROM idx ORDER BY path", max_rows=2)
    assert "CT_small.dcm" in text and "rtplan.dcm" not in text
    assert "5 rows, 2 shown" in text


def test_write_csv_and_parquet(index_dir, tmp_path):
    sql = "SELECT regexp_extract(path, '[^/]+$') AS name, status FROM idx ORDER BY name"
    assert query.write(index_dir, sql, tmp_path / "out" / "r.csv") == 5
    with open(tmp_path / "out" / "r.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows[0] == {"name": "CT_small.dcm", "status": "ok"}
    assert {r["name"]: r["status"] for r in rows}["notes.txt"] == "not_dicom"
    assert query.write(index_dir, sql, tmp_path / "r.parquet") == 5
    assert pq.read_table(tmp_path / "r.parquet").num_rows == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "r.parquet"], "no partial file is left"
    with pytest.raises(ValueError, match=r"\.csv or \.parquet"):
        query.write(index_dir, sql, tmp_path / "r.xlsx")


def test_bad_sql_and_missing_index_are_clear(index_dir, tmp_path):
    with pytest.raises(query.QueryError, match="SELEC"):
        query.query(index_dir, "SELEC 1")
    with pytest.raises(FileNotFoundError, match="curate scan"):
        query.query(tmp_path, "SELECT 1")


def test_cli_takes_the_sql_as_its_first_argument(index_dir, tmp_path):
    done = run_curate(
        "query",
        "SELECT status, count(*) AS n FROM idx WHERE status IN ('ok', 'not_dicom') GROUP BY ALL ORDER BY ALL",
        f"index={index_dir}",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "not_dicom" in done.stdout and "│ ok" in done.stdout
    out = run_curate("query", "SELECT * FROM idx", f"index={index_dir}", "out=all.parquet", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "5 rows written" in out.stdout
    bad = run_curate("query", "SELECT nope FROM idx", f"index={index_dir}", cwd=tmp_path)
    assert bad.returncode == 2 and "nope" in bad.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["all.parquet"], "a query leaves no log or run folder"

"""The population report: right numbers, small cells suppressed, plots that render in a
real browser, and nothing identifying in the report or in MLflow."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from dicom_factory import make_dataset, write
from pydicom.uid import generate_uid
from test_cli import run_curate

from curate.index import build_index
from curate.inspect.population import SUPPRESSED, population
from curate.inspect.report import build_report

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

# Identifying values planted in the headers (and in the folder names, as real exports do).
PHI = ["Zyxwolski^Quentin", "ZQX-774411", "ZYXWOLSKI", "19370415", "Hospital Quentinopolis", "Zyx Dept"]


def patient_files(
    root: Path, pid: str, name: str, sex: str, age: str, studies: int, modality: str = "DX", maker: str = "Big Vendor"
) -> None:
    for s in range(studies):
        study = generate_uid()
        ds = make_dataset(
            PatientID=pid,
            PatientName=name,
            PatientSex=sex,
            PatientAge=age,
            PatientBirthDate="19370415",
            InstitutionName="Hospital Quentinopolis",
            InstitutionalDepartmentName="Zyx Dept",
            StudyInstanceUID=study,
            StudyDate=f"2021{(s % 12) + 1:02d}15",
            Modality=modality,
            BodyPartExamined="THORAX",
            ViewPosition="PA" if s % 2 == 0 else "LL",
            ExposureIndex=str(300 + s),
            DeviationIndex=str(-4 + s),
            KVP="120",
            Manufacturer=maker,
        )
        write(ds, root / name.replace("^", "_") / f"study{s}.dcm")


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("archive")
    src = root / "src"
    patient_files(src, "ZQX-774411", "Zyxwolski^Quentin", "M", "084Y", studies=7)
    for i in range(6):
        patient_files(src, f"F{i}", f"Other^F{i}", "F", "045Y", studies=1)
    for i in range(5):
        patient_files(src, f"M{i}", f"Other^M{i}", "M", "045Y", studies=1, modality="CR", maker="Small Vendor")
    build_index(src, root / "idx", progress=False)
    return root


def test_population_numbers(archive):
    stats = population(archive / "idx", min_cell=1)
    assert stats["totals"] == {"files": 18, "images": 18, "series": 18, "studies": 18, "patients": 12}
    assert {r["modality"]: r["studies"] for r in stats["by_modality"]} == {"DX": 13, "CR": 5}
    assert stats["age_sex"]["bands"]["40-49"] == {"F": 6, "M": 5}
    assert stats["age_sex"]["bands"]["80-89"] == {"M": 1}
    assert stats["studies_per_patient"]["bands"]["80-89"]["6-10"] == 1
    [dx] = [r for r in stats["top_utilisers"] if r["modality"] == "DX"]
    assert dx["patients"][0] == {"patient": "#1", "studies": 7}
    assert {(r["view"]): r["images"] for r in stats["chest_views"] if r["modality"] == "DX"} == {"PA": 10, "LATERAL": 3}
    assert stats["body_part_spellings"] == [{"written": "THORAX", "normalised": "CHEST", "images": 18}]
    # DeviationIndex -4..2 for the 7-study patient and -4 for the others: outside +/-3 are the -4s.
    assert stats["deviation_index"]["outside_3"] == 12 and stats["deviation_index"]["n"] == 18


def test_small_cells_are_suppressed(archive):
    stats = population(archive / "idx", min_cell=6)
    assert stats["totals"]["patients"] == 12
    assert stats["age_sex"]["bands"]["40-49"] == {"F": 6, "M": SUPPRESSED}
    assert stats["age_sex"]["bands"]["80-89"] == {"M": SUPPRESSED}
    small = [r for r in stats["xray_dose"] if r["manufacturer"] == "Small Vendor"]
    assert small and all(r["n"] == SUPPRESSED and "median" not in r for r in small), "no statistic of a small group"
    big = [r for r in stats["xray_dose"] if r["manufacturer"] == "Big Vendor" and r["indicator"] == "kVp"]
    assert big == [
        {
            "indicator": "kVp",
            "manufacturer": "Big Vendor",
            "body_part": "CHEST",
            "n": 13,
            "p25": 120.0,
            "median": 120.0,
            "p75": 120.0,
        }
    ]


def test_report_files_hold_nothing_identifying(archive, tmp_path):
    report = build_report(archive / "idx", tmp_path / "rep", min_cell=5)
    text = report.html_path.read_text() + report.summary_path.read_text()
    for value in PHI:
        assert value not in text
    assert "&lt;5" in report.html_path.read_text()
    summary = json.loads(report.summary_path.read_text())
    assert summary["population"]["totals"]["studies"] == 18
    assert {c["name"] for c in summary["quality"]["checks"]} >= {"unreadable_files", "duplicate_instances"}


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_report_plots_render_in_a_headless_browser(archive, tmp_path):
    browser = chromium()
    if browser is None:
        if os.environ.get("CURATE_REQUIRE_BROWSER"):
            pytest.fail("no chromium on PATH, and CURATE_REQUIRE_BROWSER is set")
        pytest.skip("no chromium on PATH (apt-get install chromium)")
    report = build_report(archive / "idx", tmp_path / "rep")
    done = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", report.html_path.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    import re

    match = re.search(r'id="rendered" data-rendered="(\d+)" data-plots="(\d+)"', dom)
    assert match, "the page's render check did not run"
    rendered, plots = map(int, match.groups())
    assert plots >= 5 and rendered == plots, f"{rendered} of {plots} plots rendered"


def test_nothing_identifying_reaches_mlflow(archive, tmp_path):
    store = tmp_path / "mlflow"
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{store}/mlflow.db"}
    store.mkdir()
    overrides = [f"tracking.artifacts={store / 'artifacts'}"]
    scan = run_curate(
        "scan", f"source={archive / 'src'}", "index=idx", "progress=false", *overrides, cwd=tmp_path, env=env
    )
    assert scan.returncode == 0, scan.stderr
    done = run_curate("report", "index=idx", "out=rep", *overrides, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert "MLflow run" in done.stdout
    written = [p for p in store.rglob("*") if p.is_file()]
    assert any(p.name == "report.html" for p in written) and any(p.name == "summary.json" for p in written)
    for path in written:
        data = path.read_bytes()
        for value in PHI + [str(archive)]:
            assert value.encode() not in data, f"{value!r} in {path.relative_to(store)}"

    import mlflow

    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    runs = mlflow.search_runs(experiment_names=["curate"])
    assert sorted(runs["tags.curate.stage"]) == ["report", "scan"]
    report_run = runs[runs["tags.curate.stage"] == "report"].iloc[0]
    assert report_run["metrics.population.studies"] == 18
    assert report_run["metrics.quality.unreadable_files"] == 0

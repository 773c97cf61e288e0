"""curate digitize: scanned films and a manifest into DICOM, validated by dciodvfy and
read back by pydicom and by curate's own scanner."""

from __future__ import annotations

import csv
import os
import stat
import subprocess
from pathlib import Path

import duckdb
import numpy as np
import pydicom
import pytest
from conftest import dciodvfy
from PIL import Image
from pydicom.data import get_testdata_file

from curate.digitize import Digitizer, digitize
from curate.digitize.manifest import REQUIRED_COLUMNS
from curate.digitize.sandbox import film_pixels, generate_films, save_image
from curate.errors import ConfigError
from curate.index.build import build_index
from curate.index.store import IndexStore
from curate.inspect.population import population

VIDAR = Digitizer(manufacturer="VIDAR", model="DiagnosticPRO Advantage", software="VIDAR 5.1", device_id="FILMSCAN1")


def films_in(output: Path) -> list[Path]:
    return sorted(output.rglob("*.dcm"))


def write_manifest(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(REQUIRED_COLUMNS))
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in REQUIRED_COLUMNS})
    return path


def row(file: str, **values: str) -> dict:
    base = {
        "file": file,
        "patient_id": "P1",
        "patient_name": "Doe^Jane",
        "birth_date": "19500102",
        "sex": "F",
        "study_date": "19980304",
        "description": "CHEST PA",
        "body_part": "CHEST",
        "view": "PA",
        "laterality": "",
        "dpi": "150",
    }
    return {**base, **values}


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    root = tmp_path_factory.mktemp("films")
    films = generate_films(root, count=8)
    result = digitize(films.source, films.manifest, root / "out", VIDAR, workers=2, progress=False)
    return films, root / "out", result


def test_every_film_is_written_and_valid(imported):
    films, out, result = imported
    assert result.written == 8 and not result.failed
    tool = dciodvfy()
    for path in films_in(out):
        run = subprocess.run([tool, str(path)], capture_output=True, text=True, errors="replace", timeout=60)
        report = run.stdout + run.stderr
        assert "SCImage" in report
        assert [line for line in report.splitlines() if line.startswith("Error")] == [], path.name


def test_the_header_says_what_the_film_is(imported):
    films, out, _ = imported
    by_file = {r["file"]: r for r in films.rows}
    seen = set()
    for path in films_in(out):
        ds = pydicom.dcmread(path)
        assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"
        assert ds.ConversionType == "DF" and ds.Modality == "RG"
        assert ds.BurnedInAnnotation == "YES"
        assert "PixelSpacing" not in ds
        assert [float(v) for v in ds.NominalScannedPixelSpacing] == pytest.approx([25.4 / 150] * 2, rel=1e-5)
        assert ds.SecondaryCaptureDeviceManufacturer == "VIDAR"
        assert ds.SecondaryCaptureDeviceManufacturerModelName == "DiagnosticPRO Advantage"
        assert ds.SecondaryCaptureDeviceSoftwareVersions[0] == "VIDAR 5.1"
        assert ds.SecondaryCaptureDeviceID == "FILMSCAN1"
        assert len(ds.DateOfSecondaryCapture) == 8
        source = next(
            r for r in films.rows if r["patient_id"] == ds.PatientID and r["view"].startswith(ds.ViewPosition[:2])
        )
        assert ds.StudyDate == source["study_date"].replace("-", "")
        assert str(ds.PatientName) == source["patient_name"]
        seen.add(source["file"])
        # The pixels are the scan's, as it is displayed (lossy only where the scan was a JPEG).
        scan = np.asarray(Image.open(films.source / source["file"]))
        assert ds.LossyImageCompression == ("01" if source["file"].endswith(".jpg") else "00")
        assert ds.BitsStored == (8 if scan.dtype == np.uint8 else 16)
        assert np.array_equal(ds.pixel_array, scan)
    assert seen == set(by_file)


def test_one_study_per_patient_and_date_one_series_per_view(imported):
    _, out, _ = imported
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in films_in(out)]
    studies = {(h.PatientID, h.StudyDate): h.StudyInstanceUID for h in headers}
    assert len(set(studies.values())) == len(studies) == 4
    assert all(h.StudyInstanceUID == studies[(h.PatientID, h.StudyDate)] for h in headers)
    series = {(h.StudyInstanceUID, h.ViewPosition) for h in headers}
    assert len({h.SeriesInstanceUID for h in headers}) == len(series) == 8
    for h in headers:
        for uid in (h.StudyInstanceUID, h.SeriesInstanceUID, h.SOPInstanceUID):
            assert pydicom.uid.UID(uid).is_valid, uid
    # Named by UIDs only: the scans' folders are named after patients.
    for path in out.rglob("*"):
        assert "atient" not in str(path.relative_to(out))


def test_films_are_owner_only(imported):
    _, out, _ = imported
    for path in [out, *out.rglob("*")]:
        assert stat.S_IMODE(path.stat().st_mode) == (0o700 if path.is_dir() else 0o600), path


def test_a_rerun_writes_nothing_twice_and_resumes_a_killed_run(imported, tmp_path):
    films, out, _ = imported
    again = digitize(films.source, films.manifest, out, VIDAR, progress=False)
    assert again.written == 0 and again.already_done == 8
    # A killed run: two films never written, one left half-written by a process now gone.
    copy = tmp_path / "out"
    subprocess.run(["cp", "-a", str(out), str(copy)], check=True)
    gone = films_in(copy)[:2]
    for path in gone:
        path.unlink()
    half = gone[0].with_name(f".{gone[0].name}.999999999.partial")
    half.write_bytes(b"half")
    names_before = {p.relative_to(out) for p in films_in(out)}
    resumed = digitize(films.source, films.manifest, copy, VIDAR, progress=False)
    assert resumed.written == 2 and resumed.already_done == 6
    assert {p.relative_to(copy) for p in films_in(copy)} == names_before
    assert not half.exists()
    for path in gone:
        assert pydicom.dcmread(path).SOPInstanceUID == path.stem


def test_bad_rows_are_reported_and_the_others_go_on(tmp_path):
    scans = tmp_path / "scans"
    scans.mkdir()
    rng = np.random.default_rng(1)
    save_image(film_pixels(64, 48, 16, rng), scans / "good.png")
    good = (scans / "good.png").read_bytes()
    (scans / "broken.png").write_bytes(good[: len(good) // 2])  # a scan cut short
    (scans / "notes.txt").write_text("not an image")
    colour = np.zeros((40, 30, 3), np.uint8)
    colour[..., 0] = 200
    Image.fromarray(colour).save(scans / "colour.png")
    pages = [Image.fromarray(film_pixels(32, 32, 8, rng)) for _ in range(2)]
    pages[0].save(scans / "pages.tif", save_all=True, append_images=pages[1:])
    outside = tmp_path / "outside.png"
    save_image(film_pixels(16, 16, 8, rng), outside)
    (scans / "link.png").symlink_to(outside)
    manifest = write_manifest(
        tmp_path / "films.csv",
        [
            row("good.png", patient_id="../../etc"),  # a hostile ID goes in the header, never in a path
            row("missing.png"),
            row("broken.png"),
            row("notes.txt"),
            row("colour.png"),
            row("pages.tif"),
            row("good.png", study_date="1998-02-30"),
            row("good.png", birth_date="2001-01-01", study_date="19990101"),
            row("good.png", sex="X"),
            row("good.png", dpi="0"),
            row("good.png", view="PA/LAT"),
            row("../outside.png"),
            row(str(outside)),
            row("link.png"),
        ],
    )
    result = digitize(scans, manifest, tmp_path / "out", progress=False)
    assert result.rows == 14 and result.written == 1
    written = films_in(tmp_path / "out")
    assert len(written) == 1 and pydicom.dcmread(written[0]).PatientID == "../../etc"
    assert not (tmp_path / "etc").exists()
    with open(tmp_path / "out" / ".curate-digitize" / "errors.csv", newline="") as f:
        errors = {int(r["row"]): r["reason"] for r in csv.DictReader(f)}
    assert sorted(errors) == list(range(3, 16))
    expected = {
        3: "file does not exist",
        4: "cannot be decoded",
        5: "not an image",
        6: "in colour",
        7: "2 pages",
        8: "study_date is not a date",
        9: "birth_date is after the study date",
        10: "sex is not",
        11: "dpi is not",
        12: "view is not",
        13: "relative to the source folder",
        14: "relative to the source folder",
        15: "outside the source folder",
    }
    for number, words in expected.items():
        assert words in errors[number], (number, errors[number])
    assert stat.S_IMODE((tmp_path / "out" / ".curate-digitize" / "errors.csv").stat().st_mode) == 0o600
    assert sum(result.failed.values()) == 13
    # What is printed and logged holds reasons and counts, no file name or value.
    text = result.format() + repr(result.metrics())
    for leaked in ("missing.png", "broken", "outside.png", "link.png", "Doe", "etc"):
        assert leaked not in text


def test_a_manifest_without_the_required_columns_is_refused(tmp_path):
    manifest = tmp_path / "films.csv"
    manifest.write_text("file,patient_id\na.png,P1\n")
    (tmp_path / "scans").mkdir()
    with pytest.raises(ConfigError, match="lacks the column"):
        digitize(tmp_path / "scans", manifest, tmp_path / "out", progress=False)


def test_grey_saved_as_rgb_and_dpi_from_the_image(tmp_path):
    scans = tmp_path / "scans"
    scans.mkdir()
    grey = film_pixels(50, 40, 8, np.random.default_rng(2))
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(scans / "rgb.tif", dpi=(300, 300))
    manifest = write_manifest(tmp_path / "films.csv", [row("rgb.tif", dpi="", patient_name="Müller^Jörg")])
    result = digitize(scans, manifest, tmp_path / "out", progress=False)
    assert result.written == 1, result.failed
    ds = pydicom.dcmread(films_in(tmp_path / "out")[0])
    assert np.array_equal(ds.pixel_array, grey)
    assert [float(v) for v in ds.NominalScannedPixelSpacing] == pytest.approx([25.4 / 300] * 2, rel=1e-5)
    assert ds.SpecificCharacterSet == "ISO_IR 192" and str(ds.PatientName) == "Müller^Jörg"


def test_films_scan_into_the_index_and_the_report_counts_them_by_year(imported, tmp_path):
    films, out, _ = imported
    records = out / ".curate-digitize"  # what a run with failed rows leaves beside the films
    records.mkdir(mode=0o700, exist_ok=True)
    (records / "errors.csv").write_text("row,file,reason\n")
    (records / "errors.csv").chmod(0o600)
    digital = tmp_path / "digital"
    digital.mkdir()
    for name in ("CT_small.dcm", "MR_small.dcm"):
        (digital / name).write_bytes(Path(get_testdata_file(name)).read_bytes())
    index = tmp_path / "index"
    build_index([str(out), str(digital)], str(index), progress=False)
    con = duckdb.connect()
    rows = con.execute(
        f"SELECT status, digitized_film, Modality, study_year FROM ({IndexStore(index).rows_sql()})"
    ).fetchall()
    assert len(rows) == 10 and {r[0] for r in rows} == {"ok"}  # curate's own records are not scanned
    assert sorted(r[1] for r in rows) == [False] * 2 + [True] * 8
    assert {r[2] for r in rows if r[1]} == {"RG"}
    by_year = population(index, min_cell=1)["film_by_year"]
    film_years = {r["year"]: r["film_images"] for r in by_year if r["film_images"]}
    expected: dict[int, int] = {}
    for r in films.rows:
        expected[int(r["study_date"][:4])] = expected.get(int(r["study_date"][:4]), 0) + 1
    assert film_years == expected
    assert sum(r["digital_images"] for r in by_year) == 2


def test_the_command_line_runs_the_import(tmp_path):
    from curate.cli import main

    films = generate_films(tmp_path, count=2)
    os.environ.setdefault("CURATE_RUNS_DIR", str(tmp_path / "runs"))
    code = main(
        [
            "digitize",
            f"source={films.source}",
            f"manifest={films.manifest}",
            f"output={tmp_path / 'out'}",
            "digitizer.manufacturer=VIDAR",
            "tracking=off",
            "progress=false",
        ]
    )
    assert code == 0
    assert len(films_in(tmp_path / "out")) == 2

"""Shared fixtures: pydicom's bundled test files are real DICOM written by many vendors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file


@pytest.fixture(scope="session")
def pydicom_test_dirs() -> list[Path]:
    """The folders of pydicom's bundled test files: general files and character sets."""
    data = Path(get_testdata_file("CT_small.dcm")).parent.parent
    dirs = [data / "test_files", data / "charset_files"]
    try:  # pydicom-data (the dev extra) holds the larger files pydicom keeps out of its wheel
        import data_store

        dirs.append(Path(data_store.__file__).parent / "data")
    except ImportError:
        pass
    return dirs


@pytest.fixture(scope="session")
def pydicom_test_files(pydicom_test_dirs: list[Path]) -> list[Path]:
    return sorted(p for d in pydicom_test_dirs for p in d.rglob("*") if p.is_file())


def testdata(name: str) -> Path:
    path = get_testdata_file(name)
    assert path is not None, f"pydicom test file {name} is missing"
    return Path(os.fspath(path))


testdata.__test__ = False  # a helper, not a test, when imported into a test module


@pytest.fixture(scope="session", autouse=True)
def mlflow_store(tmp_path_factory):
    """One MLflow store for the session (commands started by tests inherit it), so that
    no test writes into the working directory and the database is created once."""
    store = tmp_path_factory.mktemp("mlflow")
    previous = {name: os.environ.get(name) for name in ("MLFLOW_TRACKING_URI", "CURATE_HOME")}
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{store}/mlflow.db"
    os.environ["CURATE_HOME"] = str(store / "curate-home")  # artifacts too, not ~/.local
    yield store
    for name, value in previous.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


# --- a real PACS: Orthanc on loopback, with a generated archive --------------------------


def after_meta(data: bytes) -> bytes:
    """A Part 10 file's data set: every byte after the file meta group."""
    assert data[128:132] == b"DICM"
    group_length = int.from_bytes(data[140:144], "little")  # (0002,0000) UL, explicit VR
    return data[144 + group_length :]


def assert_store_matches(store: Path, archive, uids=None) -> None:
    """The store holds exactly the instances `uids` (all of `archive`'s by default), each
    with the data set the archive's file has."""
    files = sorted(p for p in store.rglob("*.dcm"))
    wanted = set(uids if uids is not None else archive.by_uid)
    assert {p.stem for p in files} == wanted
    for path in files:
        assert after_meta(path.read_bytes()) == after_meta(archive.by_uid[path.stem].read_bytes()), path.stem


#: Orthanc's cap on C-FIND and QIDO answers in the shared server: small enough that the
#: generated archive's 300 studies (and its busy day) need splitting.
FIND_LIMIT = 40


def need_orthanc() -> None:
    from curate.pull.sandbox import orthanc_available

    if not orthanc_available():
        if os.environ.get("CURATE_REQUIRE_ORTHANC"):
            pytest.fail("no Orthanc with its DICOMweb plugin (apt-get install orthanc orthanc-dicomweb)")
        pytest.skip("no Orthanc (apt-get install orthanc orthanc-dicomweb)")


@pytest.fixture(scope="session")
def pacs_archive(tmp_path_factory):
    from curate.pull.sandbox import generate_archive

    return generate_archive(tmp_path_factory.mktemp("pacs-archive"), studies=300, seed=3)


@pytest.fixture(scope="session")
def orthanc(pacs_archive, tmp_path_factory):
    """An Orthanc holding the generated archive, its answers capped at FIND_LIMIT."""
    need_orthanc()
    from curate.pull.sandbox import LocalOrthanc, free_port

    move_port = free_port()  # where curate's storage SCP listens for a C-MOVE
    server = LocalOrthanc(
        tmp_path_factory.mktemp("orthanc"),
        find_limit=FIND_LIMIT,
        modalities={"CURATEMOVE": ("CURATEMOVE", "127.0.0.1", move_port)},
    ).start()
    server.move_port = move_port
    try:
        server.upload(pacs_archive.files)
        yield server
    finally:
        server.stop()


def dciodvfy() -> str:
    """dciodvfy (Debian's dicom3tools): the validator of what curate writes."""
    import shutil

    found = shutil.which("dciodvfy")
    if found is None:
        if os.environ.get("CURATE_REQUIRE_DCIODVFY"):
            pytest.fail("no dciodvfy on PATH (apt-get install dicom3tools), and CURATE_REQUIRE_DCIODVFY is set")
        pytest.skip("dciodvfy is not installed (apt-get install dicom3tools)")
    return found


def need_tesseract() -> None:
    """Tesseract and the fonts the redaction tests draw with, or a skip (a failure in CI)."""
    import shutil

    from curate.deid.sandbox import font_path

    if shutil.which("tesseract") is None or font_path("DejaVuSans.ttf") is None:
        if os.environ.get("CURATE_REQUIRE_TESSERACT"):
            pytest.fail("no tesseract or no fonts (apt-get install tesseract-ocr fonts-dejavu fonts-liberation)")
        pytest.skip("tesseract-ocr and fonts-dejavu, fonts-liberation are not installed")

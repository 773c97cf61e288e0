"""curate pull against hostile servers and hostile headers: a real Orthanc holding files
with odd UIDs and values, and, where Orthanc cannot be made to answer badly, a small
DICOMweb server on loopback written here that answers exactly as badly as a test asks.

What every test holds the pull to: nothing identifying and no path in what it prints,
logs or records; owner-only folders and files from the first byte; a bad answer fails
its series with a reason and the pull goes on; nothing written outside the store, and
nothing in the store that is not what its name says.
"""

from __future__ import annotations

import io
import json
import logging
import os
import sqlite3
import stat
import subprocess
import sys
import threading
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

import duckdb
import pydicom
import pytest
from conftest import need_orthanc
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from curate.errors import PacsError
from curate.index.store import IndexStore
from curate.pull import pull
from curate.pull.dicomweb import DicomWebSource
from curate.pull.dimse import DimseSource
from curate.pull.run import ThrottleOptions
from curate.pull.sandbox import LocalOrthanc
from curate.pull.store import safe_name

#: What a hostile header carries that must never show up in a log or a summary.
PHI = "DOE^JANE-1980"
SECONDARY = "1.2.840.10008.5.1.4.1.1.7"
ONE = ThrottleOptions(max_concurrency=1, probe_interval=0.1)


# --- helpers -----------------------------------------------------------------------------


def part10(study: str, series: str, sop: str, **attrs) -> bytes:
    """A small, valid Part 10 file (any value accepted: hostile ones are the point)."""
    from pydicom import config

    ds = Dataset()
    if "SpecificCharacterSet" in attrs:
        ds.SpecificCharacterSet = attrs.pop("SpecificCharacterSet")
    ds.SOPClassUID = SECONDARY
    ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID = sop, study, series
    ds.PatientID, ds.PatientName, ds.PatientBirthDate = "PAT1", "Test^Patient", "19800101"
    ds.StudyDate, ds.StudyTime, ds.AccessionNumber, ds.Modality = "20240101", "101010", "ACC1", "OT"
    ds.SeriesNumber, ds.InstanceNumber = 1, 1
    ds.Rows = ds.Columns = 8
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation, ds.PixelData = 7, 0, bytes(64)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = SECONDARY, sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    before = config.settings.writing_validation_mode
    config.settings.writing_validation_mode = config.IGNORE
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for keyword, value in attrs.items():
                setattr(ds, keyword, value)
            out = io.BytesIO()
            pydicom.dcmwrite(out, ds, enforce_file_format=True)
    finally:
        config.settings.writing_validation_mode = before
    return out.getvalue()


@pytest.fixture()
def orthanc_with(tmp_path):
    """A fresh Orthanc holding the files given: ``orthanc_with({"a.dcm": bytes, ...})``."""
    need_orthanc()
    started = []

    def start(files: dict[str, bytes]) -> LocalOrthanc:
        folder = tmp_path / "upload"
        folder.mkdir(exist_ok=True)
        paths = []
        for name, data in files.items():
            (folder / name).write_bytes(data)
            paths.append(folder / name)
        server = LocalOrthanc(tmp_path / f"orthanc{len(started)}").start()
        started.append(server)
        server.upload(paths)
        return server

    yield start
    for server in started:
        server.kill()  # a test server's storage is thrown away: no need to wait


def index_rows(index: Path, columns: str = "*") -> list[tuple]:
    return duckdb.connect().execute(f"SELECT {columns} FROM ({IndexStore(index).rows_sql()})").fetchall()


def ledger_reasons(index: Path) -> list[str]:
    with sqlite3.connect(index / "pull" / "ledger.sqlite") as db:
        return [r for (r,) in db.execute("SELECT reason FROM series WHERE reason IS NOT NULL")]


def headers_match_folders(store: Path) -> list[str]:
    """The store's files whose header does not say what their folder and name say."""
    wrong = []
    for path in store.rglob("*.dcm"):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            names = (safe_name(str(ds.StudyInstanceUID)), safe_name(str(ds.SeriesInstanceUID)))
            names += (safe_name(str(ds.SOPInstanceUID)) + ".dcm",)
        except Exception:  # noqa: BLE001 - not DICOM at all: wrong too
            names = ()
        if names != path.relative_to(store).parts:
            wrong.append(str(path.relative_to(store)))
    return wrong


# --- a DICOMweb server that answers as badly as asked ------------------------------------


def _element(vr: str, value) -> dict:
    if value is None:
        return {"vr": vr}
    if vr == "PN":
        return {"vr": vr, "Value": [{"Alphabetic": value}]}
    return {"vr": vr, "Value": value if isinstance(value, list) else [value]}


class HostileWeb:
    """DICOMweb on loopback over a list of (study, series, sop) instances. Each test sets
    `hooks[name]` (``studies``, ``series``, ``instances``, ``wado``) to a function of
    (uids, params) that returns (status, content type, body), "drop" to cut the
    connection, or None for the default answer. `paths` records every request's raw path."""

    BOUNDARY = "hostile-boundary"

    def __init__(self, instances: list[tuple[str, str, str]], extra: dict | None = None, page_size: int | None = None):
        self.instances = instances
        self.extra = extra or {}  # tag -> element, added to every instance answer
        self.hooks: dict = {}
        self.paths: list[str] = []
        self.page_size = page_size
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                server.paths.append(self.path)
                got = server.answer(self.path)
                if got == "drop":  # no answer at all: the connection is cut
                    self.close_connection = True
                    return
                status, ctype, body = got
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/dicom-web"

    def __enter__(self) -> HostileWeb:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def answer(self, raw: str) -> tuple[int, str, bytes]:
        parts = urlsplit(raw)
        params = dict(parse_qsl(parts.query))
        segments = [unquote(s) for s in parts.path.split("/")]
        if segments[:2] != ["", "dicom-web"]:
            return 404, "text/plain", b"not here"
        segments = segments[2:]
        names = {1: "studies", 3: "series", 5: "instances", 6: "wado"}
        name = names.get(len(segments))
        if name is None or segments[0] != "studies" or (len(segments) > 2 and segments[2] != "series"):
            return 404, "text/plain", b"not here"
        uids = segments[1::2]
        hook = self.hooks.get(name)
        got = hook(uids, params) if hook else None
        if got is not None:
            return got
        if name == "wado":
            found = [i for i in self.instances if list(i) == uids]
            if not found:
                return 404, "text/plain", b"no such instance"
            return self.multipart([part10(*found[0])])
        answers = getattr(self, f"_{name}")(*uids)
        offset, limit = int(params.get("offset", 0)), int(params.get("limit", 10**9))
        if self.page_size is not None:
            limit = min(limit, self.page_size)
        return self.json(answers[offset : offset + limit])

    @staticmethod
    def json(answers) -> tuple[int, str, bytes]:
        return 200, "application/dicom+json", json.dumps(answers).encode()

    @classmethod
    def multipart(cls, bodies: list[bytes], boundary: str | None = BOUNDARY) -> tuple[int, str, bytes]:
        out = b""
        for body in bodies:
            out += f"--{cls.BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode() + body + b"\r\n"
        out += f"--{cls.BOUNDARY}--\r\n".encode()
        ctype = 'multipart/related; type="application/dicom"'
        if boundary is not None:
            ctype += f"; boundary={boundary}"
        return 200, ctype, out

    def _studies(self) -> list[dict]:
        seen = {}
        for study, _, _ in self.instances:
            seen.setdefault(study, None)
        return [
            {
                "0020000D": _element("UI", s),
                "00100020": _element("LO", "PAT1"),
                "00100010": _element("PN", "Test^Patient"),
                "00080020": _element("DA", "20240101"),
            }
            for s in seen
        ]

    def _series(self, study: str) -> list[dict]:
        seen: dict[str, int] = {}
        for s, r, _ in self.instances:
            if s == study:
                seen[r] = seen.get(r, 0) + 1
        return [
            {"0020000E": _element("UI", r), "00080060": _element("CS", "OT"), "00201209": _element("IS", n)}
            for r, n in seen.items()
        ]

    def _instances(self, study: str, series: str) -> list[dict]:
        return [
            {"00080018": _element("UI", i), "00080016": _element("UI", SECONDARY), **self.extra}
            for s, r, i in self.instances
            if (s, r) == (study, series)
        ]


GOOD = [("1.2.10", "1.2.10.1", "1.2.10.1.1"), ("1.2.20", "1.2.20.1", "1.2.20.1.1")]


def web_pull(server: HostileWeb, tmp_path: Path, **kwargs):
    kwargs.setdefault("progress", False)
    kwargs.setdefault("retries", 2)
    kwargs.setdefault("throttle", ONE)
    return pull(DicomWebSource(server.url, timeout=5), tmp_path / "index", **kwargs)


# --- 1. a bad answer for one study or series must not stop the pull ----------------------


def test_a_study_uid_with_a_slash_on_a_real_orthanc_does_not_stop_the_pull(orthanc_with, tmp_path):
    """Orthanc answers 404 to the series query of a study whose UID holds '/' (curate
    sends the '/' unescaped); that refusal escapes the per-series handling and the
    whole pull dies with QueryRefused."""
    server = orthanc_with(
        {"good.dcm": part10("1.2.30", "1.2.30.1", "1.2.30.1.1"), "bad.dcm": part10("1.2/../../x", "1.2.31", "1.2.31.1")}
    )
    index = tmp_path / "index"
    result = pull(DicomWebSource(server.dicomweb_url), index, progress=False, retries=2, throttle=ONE)
    assert "1.2.30.1.1" in {uid for (uid,) in index_rows(index, "SOPInstanceUID")}
    assert result.studies == 2


def test_a_series_query_refused_for_one_study_fails_that_study_and_the_pull_goes_on(tmp_path):
    with HostileWeb(GOOD) as server:
        server.hooks["series"] = lambda uids, _: (400, "text/plain", b"cannot read") if uids[0] == "1.2.10" else None
        result = web_pull(server, tmp_path)
    assert {uid for (uid,) in index_rows(tmp_path / "index", "SOPInstanceUID")} == {"1.2.20.1.1"}
    assert result.studies == 2


def test_a_qido_answer_that_is_not_json_fails_its_series_and_the_pull_goes_on(tmp_path):
    with HostileWeb(GOOD) as server:
        server.hooks["instances"] = lambda uids, _: (
            (200, "text/html", b"<html>proxy error</html>") if uids[0] == "1.2.10" else None
        )
        result = web_pull(server, tmp_path)
    assert result.failed_series == 1
    assert {uid for (uid,) in index_rows(tmp_path / "index", "SOPInstanceUID")} == {"1.2.20.1.1"}
    assert result.failures and "json" in result.failures[0][0].lower()


def test_a_study_answer_that_is_not_json_stops_the_pull_with_a_clear_error(tmp_path):
    """The study query is what the pull is: its failure may stop the pull, but as a
    PacsError (a message), not a raw JSONDecodeError (a traceback, and Hydra's
    'Error executing job with overrides: [... index=/path ...]')."""
    with HostileWeb(GOOD) as server:
        server.hooks["studies"] = lambda uids, params: (
            None if "includefield" not in params else (200, "application/dicom+json", b"{not json")
        )
        with pytest.raises(PacsError):
            web_pull(server, tmp_path)


@pytest.mark.parametrize(
    "body",
    [
        {"error": "an object, not a list"},
        ["1.2.10.1.1"],
        [{"00080018": "1.2.10.1.1"}],
    ],
    ids=["object", "list-of-strings", "element-not-an-object"],
)
def test_a_qido_answer_of_the_wrong_shape_fails_its_series_and_the_pull_goes_on(tmp_path, body):
    with HostileWeb(GOOD) as server:
        server.hooks["instances"] = lambda uids, _: HostileWeb.json(body) if uids[0] == "1.2.10" else None
        result = web_pull(server, tmp_path)
    assert result.failed_series == 1
    assert {uid for (uid,) in index_rows(tmp_path / "index", "SOPInstanceUID")} == {"1.2.20.1.1"}


@pytest.mark.parametrize("count", ["many", 2.5])
def test_a_count_that_is_not_an_integer_does_not_stop_the_pull(tmp_path, count):
    """NumberOfSeriesRelatedInstances goes through int() unguarded (run.py, ledger.queue's
    argument): a server that answers "many" for it stops the whole pull with ValueError."""
    with HostileWeb(GOOD) as server:

        def series(uids, _):
            if uids[0] != "1.2.10":
                return None
            answer = server._series(uids[0])
            answer[0]["00201209"] = {"vr": "IS", "Value": [count]}
            return HostileWeb.json(answer)

        server.hooks["series"] = series
        web_pull(server, tmp_path)
    assert "1.2.20.1.1" in {uid for (uid,) in index_rows(tmp_path / "index", "SOPInstanceUID")}


def test_a_uid_given_as_a_string_not_a_list_is_not_read_as_its_first_character(tmp_path):
    """PS3.18 F.2: "Value" is an array. Given a bare string, curate reads its first
    character as the UID: the study "1.2.10" becomes study "1"."""
    with HostileWeb(GOOD) as server:

        def studies(uids, params):
            if "includefield" not in params and params.get("limit") == "1":
                return None  # the probe
            return HostileWeb.json([{"0020000D": {"vr": "UI", "Value": "1.2.10"}}, *server._studies()[1:]])

        server.hooks["studies"] = studies
        web_pull(server, tmp_path)
    assert not [p for p in server.paths if p.startswith("/dicom-web/studies/1/")]


def test_a_qido_server_that_ignores_offset_does_not_page_forever(tmp_path):
    """A server that answers every page with the same full page (it ignores `offset`):
    the paging loop never ends and holds every page in memory."""
    with HostileWeb(GOOD[:1]) as server:
        server.hooks["studies"] = lambda uids, params: (
            None if "includefield" not in params else HostileWeb.json(server._studies() * 2)
        )
        outcome = {}

        def run():
            try:
                outcome["result"] = pull(
                    DicomWebSource(server.url, timeout=5, page=2), tmp_path / "index", progress=False, retries=1
                )
            except Exception as e:  # noqa: BLE001
                outcome["error"] = e

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        worker.join(timeout=60)
        alive = worker.is_alive()
        pages = sum(1 for p in server.paths if "includefield" in p)
    assert not alive, f"still paging after 60 s ({pages} pages asked for)"
    assert pages <= 4  # it stops at the first page that repeats one, however fast it runs


# --- 2. hostile UIDs in paths and URIs ------------------------------------------------------


HOSTILE_STUDY = "1.2/../../../admin"


def test_a_uid_with_a_slash_stays_one_path_segment_of_the_request(tmp_path):
    """quote() keeps '/', and requests then removes the dot segments: the series query of
    study '1.2/../../../admin' goes to /admin/series on the PACS, with the credentials."""
    with HostileWeb([(HOSTILE_STUDY, "1.2.40.1", "1.2.40.1.1"), *GOOD]) as server:
        try:
            web_pull(server, tmp_path)
        except Exception:  # noqa: BLE001 - the point is where the requests went
            pass
    outside = [p for p in server.paths if not p.startswith("/dicom-web/")]
    assert not outside, outside
    asked = [[unquote(s) for s in urlsplit(p).path.split("/")] for p in server.paths]
    assert ["", "dicom-web", "studies", HOSTILE_STUDY, "series"] in asked


def test_two_instances_never_share_a_source_uri(tmp_path):
    """The remote rows are keyed by their URI: UIDs that hold '/' can make two instances'
    URIs the same, and one of the rows is lost."""
    instances = [("1.2", "3/series/4", "5"), ("1.2/series/3", "4", "5")]
    for source in (DicomWebSource("http://pacs/dicom-web"), DimseSource("pacs", 104, "PACS")):
        uris = {source.instance_uri(*i) for i in instances}
        assert len(uris) == 2, (source.kind, uris)


def test_hostile_uids_on_a_real_orthanc_stay_inside_the_store(orthanc_with, tmp_path):
    outside = tmp_path / "outside"
    files = {
        "travel.dcm": part10("1.2.50", "1.2.50.1", f"../../../../{outside.name}/x"),
        "nonascii.dcm": part10("1.2.51", "1.2.51.1", "1.2.51.1.\u00e9", SpecificCharacterSet="ISO_IR 192"),
        "long.dcm": part10("1.2.52", "1.2.52.1", "1." + "2" * 120),
        "patient.dcm": part10("1.2.53", "1.2.53.1", "1.2.53.1.1", PatientID="../../etc"),
    }
    server = orthanc_with(files)
    store = tmp_path / "store"
    result = pull(
        DimseSource("127.0.0.1", server.dicom_port, server.aet),
        tmp_path / "index",
        level="images",
        store=store,
        progress=False,
        retries=2,
        throttle=ONE,
    )
    assert not outside.exists() and not list(tmp_path.glob("x*"))
    for path in store.rglob("*"):
        assert path.resolve().is_relative_to(store.resolve())
        assert all(part.startswith("x") or part.replace(".dcm", "").replace(".", "").isdigit()
                   for part in path.relative_to(store).parts)  # fmt: skip
    # An instance whose UID the server spells differently in its C-FIND answer and in its
    # C-STORE (non-ASCII, longer than 64) arrives, is not recognised, is fetched again and
    # again, and its series fails with "did not arrive".
    assert result.instances <= 4, result.format()
    assert not [r for r, _ in result.failures if "did not arrive" in r], result.format()


# --- 3. what the store holds is what its names say ---------------------------------------


@pytest.mark.parametrize("kind", ["dimse", "dicomweb"])
def test_a_series_uid_shared_by_two_studies_on_a_real_orthanc(orthanc_with, tmp_path, kind):
    """Orthanc answers a series-level C-GET with every instance of that SeriesInstanceUID,
    whatever the study: curate files study B's instance under study A. And the ledger
    keys series without their study, so over DICOMweb study B's series is 'already done'
    and never fetched."""
    server = orthanc_with(
        {
            "a.dcm": part10("1.2.100", "1.2.999", "1.2.100.1"),
            "b.dcm": part10("1.2.200", "1.2.999", "1.2.200.1", PatientID="PAT2"),
        }
    )
    if kind == "dimse":
        source = DimseSource("127.0.0.1", server.dicom_port, server.aet)
    else:
        source = DicomWebSource(server.dicomweb_url)
    store = tmp_path / "store"
    pull(source, tmp_path / "index", level="images", store=store, progress=False, throttle=ONE, retries=2)
    assert headers_match_folders(store) == []
    assert sorted(p.stem for p in store.rglob("*.dcm")) == ["1.2.100.1", "1.2.200.1"]


@pytest.mark.parametrize("answer", ["another-instance", "not-dicom"])
def test_a_wado_answer_that_is_not_the_instance_asked_for_is_not_stored(tmp_path, answer):
    with HostileWeb(GOOD) as server:

        def wado(uids, _):
            if uids[0] != "1.2.10":
                return None
            if answer == "not-dicom":
                return HostileWeb.multipart([b"<html>session expired</html>"])
            return HostileWeb.multipart([part10("9.9.9", "9.9.9.1", "9.9.9.1.1")])

        server.hooks["wado"] = wado
        result = web_pull(server, tmp_path, level="images", store=tmp_path / "store")
    assert headers_match_folders(tmp_path / "store") == []
    assert result.failed_series == 1
    assert result.failures and result.failures[0][0]


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (lambda: HostileWeb.multipart([]), "0 parts"),
        (lambda: HostileWeb.multipart([part10(*GOOD[0]), part10(*GOOD[0])]), "2 parts"),
        (lambda: HostileWeb.multipart([part10(*GOOD[0])], boundary=None), "boundary"),
    ],
    ids=["no-part", "two-parts", "no-boundary"],
)
def test_a_wado_answer_of_the_wrong_shape_fails_its_series_clearly(tmp_path, answer, words):
    with HostileWeb(GOOD) as server:
        server.hooks["wado"] = lambda uids, _: answer() if uids[0] == "1.2.10" else None
        result = web_pull(server, tmp_path, level="images", store=tmp_path / "store")
    assert result.failed_series == 1
    assert words in result.failures[0][0]
    assert [p.stem for p in (tmp_path / "store").rglob("*.dcm")] == ["1.2.20.1.1"]
    assert not [p for p in (tmp_path / "store").rglob("*") if p.name.startswith(".")]


# --- 4. nothing identifying, no path, in what the pull says -------------------------------


@pytest.mark.parametrize("kind", ["dimse", "dicomweb"])
def test_a_store_that_cannot_be_written_fails_the_series_without_naming_the_path(orthanc_with, tmp_path, kind):
    server = orthanc_with({"a.dcm": part10(*GOOD[0]), "b.dcm": part10(*GOOD[1])})
    if kind == "dimse":
        source = DimseSource("127.0.0.1", server.dicom_port, server.aet)
    else:
        source = DicomWebSource(server.dicomweb_url)
    patient_folder = tmp_path / "Doe_Jane_19800101"
    store, index = patient_folder / "store", patient_folder / "index"
    (store / "1.2.10").mkdir(parents=True)
    (store / "1.2.10" / "1.2.10.1").write_text("a file where the series folder goes")
    result = pull(source, index, level="images", store=store, progress=False, throttle=ONE, retries=2)
    assert result.failed_series == 1
    said = result.format() + "\n".join(ledger_reasons(index))
    assert "Doe_Jane" not in said and str(tmp_path) not in said, said
    assert (store / "1.2.20" / "1.2.20.1" / "1.2.20.1.1.dcm").exists()


def _wrong_vr_server(orthanc_with) -> LocalOrthanc:
    return orthanc_with({"a.dcm": part10(*GOOD[0], PatientBirthDate=PHI, PatientSex=PHI)})


@pytest.mark.parametrize("kind", ["dimse", "dicomweb"])
def test_values_of_the_wrong_vr_stay_out_of_the_logs(orthanc_with, tmp_path, caplog, kind):
    """pydicom's 'Invalid value for VR DA: ...' carries the value itself, to the logger
    (which Hydra writes to pull.log and stderr) and as a warning (stderr)."""
    server = _wrong_vr_server(orthanc_with)
    if kind == "dimse":
        source = DimseSource("127.0.0.1", server.dicom_port, server.aet)
    else:
        source = DicomWebSource(server.dicomweb_url)
    caplog.set_level(logging.INFO)
    caplog.clear()  # what building the hostile file logged is not the pull's
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = pull(source, tmp_path / "index", progress=False, throttle=ONE)
    assert result.instances == 1
    logged = [r.getMessage() for r in caplog.records] + [str(w.message) for w in caught]
    assert not [m for m in logged if "DOE" in m], logged


def test_the_cli_keeps_header_values_and_paths_out_of_its_output_and_run_folder(orthanc_with, tmp_path):
    server = _wrong_vr_server(orthanc_with)
    patient_folder = tmp_path / "Doe_Jane_19800101"
    runs = tmp_path / "runs"
    args = [
        sys.executable, "-m", "curate.cli", "pull", "source=dicomweb", f"url={server.dicomweb_url}",
        f"index={patient_folder / 'index'}", "tracking=off", "progress=false",
    ]  # fmt: skip
    env = dict(os.environ, CURATE_RUNS_DIR=str(runs), PYTHONWARNINGS="default")
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    written = [done.stdout, done.stderr]
    written += [p.read_text(errors="replace") for p in runs.rglob("*") if p.is_file()]
    for text in written:
        assert "DOE" not in text and "Doe_Jane" not in text, text[-2000:]


def test_a_url_that_is_refused_is_not_echoed_with_its_password():
    for url in ("ftp://curate:s3cret-pw@pacs.example.org/dicom-web", "curate:s3cret-pw@pacs.example.org/dicom-web"):
        with pytest.raises(PacsError) as refused:
            DicomWebSource(url)
        assert "s3cret-pw" not in str(refused.value), str(refused.value)


def test_a_pacs_that_goes_away_mid_query_is_reported_without_the_query(tmp_path):
    """requests' ConnectionError text holds the URL with its query string: the PatientID
    asked for (from select.ids) goes into the PacsError that `curate pull` prints, and a
    series' URL (its UIDs) into the ledger's reasons and the summary."""
    from curate.pull.selection import Selection

    ids = tmp_path / "ids.csv"
    ids.write_text("PatientID\nSECRETPID42\n")
    with HostileWeb(GOOD) as server:

        def studies(uids, params):
            if not params.get("PatientID"):
                return None
            # The PACS goes away: this answer is cut short, and the retry finds no one.
            threading.Thread(target=lambda: (server.httpd.shutdown(), server.httpd.server_close())).start()
            return "drop"

        server.hooks["studies"] = studies
        with pytest.raises(PacsError) as stopped:
            web_pull(server, tmp_path, selection=Selection(ids=str(ids)))
    assert "SECRETPID42" not in str(stopped.value), str(stopped.value)


def test_the_storage_scp_takes_c_stores_only_from_the_pacs():
    """curate's C-MOVE destination accepts any peer, and routes a C-STORE to the running
    retrieval's sink by its Move Originator Message ID - which counts up from 1. Any host
    that can reach the port can put its own instance into the series being fetched."""
    from pynetdicom import AE

    from curate.pull.dimse import StorageSCP
    from curate.pull.sandbox import free_port

    port = free_port()
    scp = StorageSCP("CURATEMOVE", port).start()
    reached = []
    try:
        msg_id = scp.expect(lambda event: reached.append(str(event.request.AffectedSOPInstanceUID)) or 0)
        rogue = AE(ae_title="ROGUE")
        rogue.add_requested_context(SECONDARY)
        assoc = rogue.associate("127.0.0.1", port, ae_title="CURATEMOVE")
        if assoc.is_established:
            ds = pydicom.dcmread(io.BytesIO(part10("6.6.6", "6.6.6.1", "6.6.6.1.1")))
            assoc.send_c_store(ds, originator_aet="ROGUE", originator_id=msg_id)
            assoc.release()
    finally:
        scp.stop()
    assert reached == []


def test_params_metrics_and_summary_hold_no_identifier(tmp_path):
    """Sound today: the MLflow params and metrics are settings and counts."""
    with HostileWeb(GOOD) as server:
        result = web_pull(server, tmp_path)
    text = repr(result.params()) + repr(result.metrics()) + result.format()
    for forbidden in ("PAT1", "Test^Patient", "1.2.10", str(tmp_path), "127.0.0.1"):
        assert forbidden not in text, forbidden
    assert all(isinstance(v, (int, float)) for v in result.metrics().values())


# --- 5. owner-only from the first byte ------------------------------------------------------


def test_the_index_and_the_pull_folder_are_owner_only_while_the_pull_runs(tmp_path, monkeypatch):
    """Looked at mid-pull, at each instance query: the index folder, ``pull/``, the spool
    and its header files, and the staged parts."""
    import curate.pull.run as run

    monkeypatch.setattr(run, "PART_ROWS", 2)  # a part is staged after the second study
    index = tmp_path / "index"
    seen: dict[str, int] = {}
    three = [*GOOD, ("1.2.30", "1.2.30.1", "1.2.30.1.1")]
    with HostileWeb(three) as server:

        def instances(uids, _):
            for path in [index, *index.rglob("*")]:
                seen[str(path.relative_to(tmp_path))] = stat.S_IMODE(path.stat().st_mode)
            return None

        server.hooks["instances"] = instances
        web_pull(server, tmp_path)
    assert any(name.endswith(".parquet") for name in seen), seen  # a staged part was there
    assert any(name.endswith(".dcm") for name in seen), seen  # and a spooled header
    loose = {name: oct(mode) for name, mode in seen.items() if mode & 0o077}
    assert not loose, loose


# --- 6. a killed pull leaves nothing half-written ------------------------------------------


def test_a_killed_pulls_partial_file_is_cleared_on_resume_and_never_indexed(orthanc_with, tmp_path):
    """atomic_path's temporary file survives a SIGKILL (its `finally` never runs); the
    resumed pull leaves it in the store and the index scan of the store reads it."""
    server = orthanc_with({"a.dcm": part10(*GOOD[0]), "b.dcm": part10(*GOOD[1])})
    store, index = tmp_path / "store", tmp_path / "index"
    folder = store / "1.2.10" / "1.2.10.1"
    folder.mkdir(parents=True)
    litter = folder / ".1.2.10.1.1.dcm.4242.partial"  # what a pull killed mid-write leaves
    litter.write_bytes(part10(*GOOD[0])[:300])
    result = pull(DicomWebSource(server.dicomweb_url), index, level="images", store=store, progress=False, throttle=ONE)
    assert result.failed_series == 0
    assert not [p for p in index_rows(index, "path") if p[0].endswith(".partial")]
    assert not litter.exists()

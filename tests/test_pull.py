"""curate pull against a real Orthanc (DIMSE and DICOMweb) holding a generated archive.

The server caps its C-FIND and QIDO answers (``LimitFindResults``), so every pull here
also exercises the splitting of capped queries.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pydicom
import pytest
from conftest import FIND_LIMIT, assert_store_matches

from curate.errors import PacsError
from curate.index.store import IndexStore
from curate.pull import pull
from curate.pull.dicomweb import DicomWebSource
from curate.pull.dimse import DimseSource
from curate.pull.run import ThrottleOptions
from curate.pull.selection import Selection

COMPARED = ["PatientID", "PatientSex", "StudyDate", "AccessionNumber", "Modality", "BodyPartExamined", "ViewPosition"]


def dicomweb(server) -> DicomWebSource:
    return DicomWebSource(server.dicomweb_url)


def dimse(server, aet: str | None = None) -> DimseSource:
    return DimseSource("127.0.0.1", server.dicom_port, aet or server.aet)


def rows(index: Path, columns: str = "*", where: str = "true") -> list[tuple]:
    con = duckdb.connect()
    return con.execute(f"SELECT {columns} FROM ({IndexStore(index).rows_sql()}) WHERE {where}").fetchall()


def test_metadata_pull_over_dicomweb_fills_an_index_the_report_reads(orthanc, pacs_archive, tmp_path):
    index = tmp_path / "index"
    result = pull(dicomweb(orthanc), index, find_limit=FIND_LIMIT, progress=False)
    assert (result.studies, result.series, result.instances) == (300, pacs_archive.series, pacs_archive.instances)
    assert result.capped > 0 and result.unsplittable == 0  # the cap was met, and split around
    got = rows(index, "status, path, SOPInstanceUID, PatientID, Modality, StudyDate")
    assert len(got) == pacs_archive.instances
    assert {r[0] for r in got} == {"remote"}
    assert len({r[2] for r in got}) == pacs_archive.instances
    assert all(r[1].startswith(orthanc.dicomweb_url + "/studies/") and r[1].endswith(r[2]) for r in got)
    for _, _, uid, patient, modality, study_date in got[::50]:
        ds = pydicom.dcmread(pacs_archive.by_uid[uid], stop_before_pixels=True)
        assert (patient, modality, study_date.strftime("%Y%m%d")) == (ds.PatientID, ds.Modality, ds.StudyDate)
    assert stat.S_IMODE(os.stat(index).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(index / "pull" / "ledger.sqlite").st_mode) == 0o600

    from curate.inspect.report import build_report

    report = build_report(index, tmp_path / "report")
    assert report.summary["population"]["totals"]["studies"] == 300
    assert report.summary["population"]["totals"]["images"] == pacs_archive.instances
    assert "curate pull (dicomweb" in result.format()


def test_metadata_over_dimse_is_the_same_as_over_dicomweb(orthanc, tmp_path):
    web, dicom = tmp_path / "web", tmp_path / "dimse"
    pull(dicomweb(orthanc), web, find_limit=FIND_LIMIT, progress=False)
    result = pull(dimse(orthanc), dicom, find_limit=FIND_LIMIT, progress=False)
    assert result.capped > 0
    columns = ", ".join(["SOPInstanceUID", *COMPARED])
    assert sorted(rows(web, columns)) == sorted(rows(dicom, columns))
    assert all(p.startswith("dicom://ORTHANC@127.0.0.1:") for (p,) in rows(dicom, "path"))


def test_a_second_metadata_pull_asks_for_nothing_again(orthanc, tmp_path):
    index = tmp_path / "index"
    pull(dicomweb(orthanc), index, find_limit=FIND_LIMIT, progress=False)
    generation = IndexStore(index).manifest().generation
    again = pull(dicomweb(orthanc), index, find_limit=FIND_LIMIT, progress=False)
    assert again.instances == 0 and again.skipped_series == again.series > 0
    assert IndexStore(index).manifest().generation == generation  # nothing was written


def test_check_counts_what_would_be_pulled_and_writes_no_rows(orthanc, pacs_archive, tmp_path):
    result = pull(dimse(orthanc), tmp_path / "index", find_limit=FIND_LIMIT, check=True, progress=False)
    assert (result.studies, result.series, result.instances) == (300, pacs_archive.series, pacs_archive.instances)
    assert result.estimated_bytes > 0
    assert not (tmp_path / "index" / "manifest.json").exists()
    assert "would pull" in result.format()


def test_selection_by_modality_and_body_part(orthanc, pacs_archive, tmp_path):
    result = pull(
        dicomweb(orthanc),
        tmp_path / "i",
        find_limit=FIND_LIMIT,
        progress=False,
        selection=Selection(modalities=("CR",)),
    )
    assert result.studies == pacs_archive.modalities["CR"]
    assert {m for (m,) in rows(tmp_path / "i", "Modality")} == {"CR"}
    head = pull(
        dicomweb(orthanc), tmp_path / "h", find_limit=FIND_LIMIT, progress=False, selection=Selection(body_part="head")
    )
    assert head.instances > 0 and {m for (m,) in rows(tmp_path / "h", "DISTINCT Modality")} == {"MR"}


def test_selection_from_a_csv_of_accession_numbers(orthanc, tmp_path):
    ids = tmp_path / "ids.csv"
    ids.write_text("AccessionNumber\nACC000007\nACC000008\nACC000008\nACC*\n\nACC999999\n")
    result = pull(dimse(orthanc), tmp_path / "i", progress=False, selection=Selection(ids=str(ids)))
    assert result.studies == 2  # the duplicate once, the wildcard refused, the unknown one absent
    assert sorted({a for (a,) in rows(tmp_path / "i", "AccessionNumber")}) == ["ACC000007", "ACC000008"]


def test_images_over_dimse_arrive_exactly_and_named_by_uids(orthanc, pacs_archive, tmp_path):
    store, index = tmp_path / "store", tmp_path / "index"
    result = pull(dimse(orthanc), index, level="images", store=store, find_limit=FIND_LIMIT, progress=False)
    assert result.failed_series == 0 and result.instances == pacs_archive.instances
    assert_store_matches(store, pacs_archive)
    # Every series new and its count answered: each retrieved whole, with no instance-level C-FIND.
    assert result.whole_series == result.series == pacs_archive.series
    for path in store.rglob("*"):
        relative = path.relative_to(store)
        assert all(part.replace(".dcm", "").replace(".", "").isdigit() for part in relative.parts), relative
        assert stat.S_IMODE(path.stat().st_mode) == (0o700 if path.is_dir() else 0o600)
    assert stat.S_IMODE(store.stat().st_mode) == 0o700
    statuses = rows(index, "status, count(*)", "true GROUP BY status")
    assert statuses == [("ok", pacs_archive.instances)]
    again = pull(dimse(orthanc), index, level="images", store=store, find_limit=FIND_LIMIT, progress=False)
    assert again.instances == 0 and again.skipped_studies == 300


@pytest.fixture
def associations(monkeypatch) -> list[str]:
    """The threads each association to the PACS was opened from, in order."""
    from pynetdicom import AE

    opened: list[str] = []
    associate = AE.associate

    def counted(self, *args, **kwargs):
        assoc = associate(self, *args, **kwargs)
        if assoc.is_established:
            opened.append(threading.current_thread().name)
        return assoc

    monkeypatch.setattr(AE, "associate", counted)
    return opened


@pytest.mark.parametrize("move", [False, True], ids=["c-get", "c-move"])
def test_a_study_is_found_and_retrieved_over_one_association(orthanc, pacs_archive, tmp_path, associations, move):
    """Each association costs the PACS a thread and a handshake: a study's series query
    and the retrievals of its series (two each here) share one."""
    from curate.pull.dimse import StorageSCP

    storage = StorageSCP("CURATEMOVE", orthanc.move_port) if move else None
    source = DimseSource("127.0.0.1", orthanc.dicom_port, orthanc.aet, storage=storage)
    result = pull(
        source,
        tmp_path / "index",
        level="images",
        store=tmp_path / "store",
        find_limit=FIND_LIMIT,
        selection=Selection(modalities=("CT", "MR")),
        # Never backed off (a backed-off pull lets go of an association while it waits).
        throttle=ThrottleOptions(min_concurrency=4),
        progress=False,
    )
    assert result.failed_series == 0 and result.series == 2 * result.studies > 0
    uids = [u for u, p in pacs_archive.by_uid.items() if pydicom.dcmread(p, stop_before_pixels=True).Modality in "CTMR"]
    assert_store_matches(tmp_path / "store", pacs_archive, uids)
    assert sum(name.startswith("curate-pull") for name in associations) == result.studies


def test_arriving_files_supersede_the_remote_rows(orthanc, pacs_archive, tmp_path):
    store, index = tmp_path / "store", tmp_path / "index"
    pull(dicomweb(orthanc), index, find_limit=FIND_LIMIT, progress=False)
    dx = Selection(modalities=("DX",))
    result = pull(
        dicomweb(orthanc), index, level="images", store=store, selection=dx, find_limit=FIND_LIMIT, progress=False
    )
    dx_uids = {p.stem for p in store.rglob("*.dcm")}
    assert result.studies == pacs_archive.modalities["DX"]
    assert result.failed_series == 0 and len(dx_uids) == result.instances > 0
    assert_store_matches(store, pacs_archive, dx_uids)
    current = rows(index, "SOPInstanceUID, status, Modality")
    assert len(current) == pacs_archive.instances == len({r[0] for r in current})  # one row per instance
    assert {r[1] for r in current if r[2] == "DX"} == {"ok"}
    assert {r[1] for r in current if r[2] != "DX"} == {"remote"}
    # A later metadata pull does not bring the remote rows of the files back.
    pull(dicomweb(orthanc), index, find_limit=FIND_LIMIT, progress=False)
    assert sorted(rows(index, "SOPInstanceUID, status, Modality")) == sorted(current)


def test_images_by_c_move_to_curates_own_storage_scp(orthanc, pacs_archive, tmp_path):
    from curate.pull.dimse import StorageSCP
    from curate.pull.sandbox import free_port

    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in pacs_archive.by_uid.values()]
    accessions = sorted({ds.AccessionNumber for ds in headers if ds.Modality == "CR"})[:8]
    uids = [ds.SOPInstanceUID for ds in headers if ds.AccessionNumber in accessions]
    csv = tmp_path / "cr.csv"
    csv.write_text("AccessionNumber\n" + "\n".join(accessions) + "\n")
    source = DimseSource(
        "127.0.0.1", orthanc.dicom_port, orthanc.aet, storage=StorageSCP("CURATEMOVE", orthanc.move_port)
    )
    result = pull(source, tmp_path / "i", level="images", store=tmp_path / "s", selection=Selection(ids=str(csv)))
    assert result.failed_series == 0 and result.instances == len(uids)
    assert_store_matches(tmp_path / "s", pacs_archive, uids)
    stranger = DimseSource("127.0.0.1", orthanc.dicom_port, orthanc.aet, storage=StorageSCP("STRANGER", free_port()))
    ids = tmp_path / "one.csv"
    ids.write_text("AccessionNumber\nACC000001\n")
    refused = pull(stranger, tmp_path / "j", level="images", store=tmp_path / "t", selection=Selection(ids=str(ids)))
    assert refused.failed_series > 0 and refused.instances == 0
    assert "move destination" in refused.failures[0][0]


def test_a_killed_images_pull_resumes_without_fetching_twice(orthanc, pacs_archive, tmp_path):
    store, index = tmp_path / "store", tmp_path / "index"
    args = [
        sys.executable, "-m", "curate.cli", "pull", "source=dimse", "host=127.0.0.1", f"port={orthanc.dicom_port}",
        f"called_aet={orthanc.aet}", "level=images", f"store={store}", f"index={index}", f"find_limit={FIND_LIMIT}",
        "select.modalities=[CR,DX]", "tracking=off", "progress=false",
    ]  # fmt: skip
    radiographs = Selection(modalities=("CR", "DX"))
    uids = [u for u, p in pacs_archive.by_uid.items() if pydicom.dcmread(p, stop_before_pixels=True).Modality in "CRDX"]
    env = dict(os.environ, CURATE_RUNS_DIR=str(tmp_path / "runs"))
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(store.rglob("*.dcm"))) < 100:
        assert process.poll() is None, process.stderr.read().decode()
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = len(list(store.rglob("*.dcm")))
    assert 0 < before < len(uids)
    result = pull(
        dimse(orthanc), index, level="images", store=store, find_limit=FIND_LIMIT, selection=radiographs, progress=False
    )
    assert result.instances == len(uids) - before  # nothing fetched twice
    assert result.skipped_studies + result.skipped_series > 0
    assert_store_matches(store, pacs_archive, uids)
    assert not [p for p in store.rglob("*") if p.name.startswith(".")]  # no half-written file
    assert rows(index, "count(*)", "status = 'ok'") == [(len(uids),)]


def test_a_wrong_called_ae_title_is_a_clear_error(orthanc, tmp_path):
    with pytest.raises(PacsError, match="rejected the association"):
        pull(dimse(orthanc, aet="NOT_ORTHANC"), tmp_path / "i", progress=False)
    assert not (tmp_path / "i" / "manifest.json").exists()


def test_a_server_that_is_not_there_is_a_clear_error(tmp_path):
    from curate.pull.sandbox import free_port

    port = free_port()
    with pytest.raises(PacsError, match="cannot be reached"):
        pull(DimseSource("127.0.0.1", port, "NOBODY", timeout=2), tmp_path / "i", progress=False)
    with pytest.raises(PacsError, match="cannot be reached"):
        pull(DicomWebSource(f"http://127.0.0.1:{port}/dicom-web", timeout=2), tmp_path / "j", progress=False)


def test_images_chosen_by_sql_over_the_metadata_index(orthanc, pacs_archive, tmp_path):
    index, store = tmp_path / "index", tmp_path / "store"
    pull(dicomweb(orthanc), index, find_limit=FIND_LIMIT, progress=False)
    frontal = Selection(where="Modality = 'CR' AND ViewPosition = 'PA'")
    result = pull(dimse(orthanc), index, level="images", store=store, selection=frontal, progress=False)
    wanted = {u for (u,) in rows(index, "SOPInstanceUID", "Modality = 'CR' AND ViewPosition = 'PA'")}
    assert result.queries == 0  # the index said what to fetch: the PACS was not queried again
    assert result.failed_series == 0 and len(wanted) == result.instances > 0
    assert_store_matches(store, pacs_archive, wanted)
    one = Selection(where="Modality = 'MR'", one_per_series=True)
    result = pull(dicomweb(orthanc), index, level="images", store=tmp_path / "mr", selection=one, progress=False)
    series = rows(index, "count(DISTINCT SeriesInstanceUID)", "Modality = 'MR'")[0][0]
    assert result.instances == series == len(list((tmp_path / "mr").rglob("*.dcm")))
    with pytest.raises(Exception, match="select.where"):
        pull(dimse(orthanc), index, level="images", store=store, selection=Selection(where="no_such_column = 1"))


def test_instances_already_in_the_index_as_files_are_not_fetched(orthanc, pacs_archive, tmp_path):
    from curate.index.build import build_index

    export = tmp_path / "export"
    dx = [p for p in pacs_archive.files if pydicom.dcmread(p, stop_before_pixels=True).Modality == "DX"]
    for number, path in enumerate(dx):
        (export / f"{number:04d}.dcm").parent.mkdir(parents=True, exist_ok=True)
        (export / f"{number:04d}.dcm").write_bytes(path.read_bytes())
    index = tmp_path / "index"
    build_index(export, index, progress=False)
    result = pull(
        dimse(orthanc),
        index,
        level="images",
        store=tmp_path / "store",
        selection=Selection(modalities=("DX",)),
        find_limit=FIND_LIMIT,
        progress=False,
    )
    assert result.instances == 0 and result.failed_series == 0 and result.series == len(dx)
    assert not list((tmp_path / "store").rglob("*.dcm"))
    # The store's scan keeps the rows of the export: it vanishes only what was under the store.
    assert rows(index, "status, count(*)", "true GROUP BY status") == [("ok", len(dx))]


@pytest.mark.parametrize("protocol", ["dicomweb", "dimse"])
def test_full_metadata_adds_whole_headers(orthanc, pacs_archive, tmp_path, protocol):
    source = dicomweb(orthanc) if protocol == "dicomweb" else dimse(orthanc)
    ids = tmp_path / "ids.csv"
    ids.write_text("AccessionNumber\nACC000002\nACC000003\n")  # a CT and an MR study
    selection = Selection(ids=str(ids))
    dry = pull(source, tmp_path / "dry", check=True, metadata="full", selection=selection, progress=False)
    assert dry.extra_requests == dry.series > 0 and "metadata=full costs the PACS" in dry.format()
    index = tmp_path / "index"
    pull(source, index, selection=selection, progress=False)
    if protocol == "dimse":  # Orthanc's C-FIND answers no BitsAllocated (its QIDO reads the files)
        assert rows(index, "count(BitsAllocated), count(*)") == [(0, dry.instances)]
    full = pull(source, index, selection=selection, metadata="full", progress=False)
    assert full.instances == dry.instances
    got = rows(index, "SOPInstanceUID, status, BitsAllocated, SamplesPerPixel, PatientID")
    assert len(got) == dry.instances and {r[1] for r in got} == {"remote"}  # the rows were replaced, not added
    for uid, _, bits, samples, patient in got:
        ds = pydicom.dcmread(pacs_archive.by_uid[uid], stop_before_pixels=True)
        assert (bits, samples, patient) == (ds.BitsAllocated, ds.SamplesPerPixel, ds.PatientID)


def test_no_c_find_answer_is_lost_to_a_thread_polling_the_association(orthanc, pacs_archive):
    """pynetdicom's reactor polls the association's messages while a C-FIND is answered,
    and could take a pending answer for itself (a study missing, without an error). Here
    a thread polls the way the reactor does, all through twenty C-FINDs."""
    import threading

    dates = sorted({pydicom.dcmread(p, stop_before_pixels=True).StudyDate for p in pacs_archive.files})
    by_date: dict[str, set[str]] = {}
    for path in pacs_archive.files:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        by_date.setdefault(ds.StudyDate, set()).add(ds.StudyInstanceUID)
    last, wanted = dates[0], set()
    for day in dates:  # the earliest days, as many studies as an answer holds uncapped
        if len(wanted | by_date[day]) >= FIND_LIMIT:
            break
        last, wanted = day, wanted | by_date[day]
    assert len(wanted) > 10
    connection = dimse(orthanc).connect()
    query = {"StudyInstanceUID": None, "StudyDate": f"{dates[0]}-{last}"}
    connection.find("STUDY", query)  # opens the association
    taken: list = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            _, message = connection._assoc.dimse.get_msg(block=False)
            if message is not None:
                taken.append(message)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        answers = [{a["0020000D"]["Value"][0] for a in connection.find("STUDY", query)} for _ in range(20)]
    finally:
        stop.set()
        poller.join()
        connection.close()
    assert taken == []
    assert all(found == wanted for found in answers)


def test_studies_before_1980_after_today_and_undated_are_not_lost_behind_a_cap(tmp_path):
    """A capped archive is split by dates from 1980 to today: the studies outside that
    (old films, a scanner with a wrong clock) are asked for too, and the undated ones a
    capped answer showed are kept and counted (no date query can match them)."""
    from conftest import need_orthanc
    from dicom_factory import image_dataset, write

    from curate.pull.sandbox import LocalOrthanc

    need_orthanc()
    dates = ["", "", "19750601", "20310101", "20200105", "20200210", "20200315", "20200420"]
    files = []
    for i, day in enumerate(dates):
        ds = image_dataset(PatientID=f"U{i}", Modality="CR", StudyDate=day or None, AccessionNumber=f"A{i}")
        files.append(write(ds, tmp_path / "files" / f"{i}.dcm"))
    with LocalOrthanc(tmp_path / "orthanc", find_limit=4) as pacs:
        pacs.upload(files)
        result = pull(dicomweb(pacs), tmp_path / "index", find_limit=4, progress=False)
    found = {r[0]: r[1] for r in rows(tmp_path / "index", "AccessionNumber, StudyDate")}
    assert {"A2", "A3", "A4", "A5", "A6", "A7"} <= set(found), found
    undated = {a for a in found if a in ("A0", "A1")}
    assert result.undated == len(undated) and len(found) == 6 + len(undated)
    if result.undated:
        assert "studies without a StudyDate" in result.format()

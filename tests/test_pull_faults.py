"""curate pull when things go wrong, against real Orthanc servers of their own: https with a
test CA, credentials, a server killed and started again mid-pull, a server that slows
down, and an instance the server cannot read."""

from __future__ import annotations

import os
import threading
import time

import duckdb
import pytest
from conftest import assert_store_matches, need_orthanc

from curate.errors import ConfigError, PacsError
from curate.index.store import IndexStore
from curate.pull import pull, source_from_config
from curate.pull.credentials import Credentials, load_credentials
from curate.pull.dicomweb import DicomWebSource
from curate.pull.dimse import DimseSource
from curate.pull.run import ThrottleOptions
from curate.pull.sandbox import LocalOrthanc, LoopbackProxy, generate_archive, make_test_ca


@pytest.fixture(scope="module")
def small_archive(tmp_path_factory):
    return generate_archive(tmp_path_factory.mktemp("small-archive"), studies=40, seed=11)


@pytest.fixture()
def server(small_archive, tmp_path):
    need_orthanc()
    orthanc = LocalOrthanc(tmp_path / "orthanc", users={"curate": "right-password"}).start()
    try:
        orthanc.upload(small_archive.files)
        yield orthanc
    finally:
        orthanc.stop()


def test_https_with_a_test_ca_and_credentials_from_the_environment(server, small_archive, tmp_path, monkeypatch):
    ca, pem = make_test_ca(tmp_path / "ca")
    with LoopbackProxy(server.http_port, certificate=pem) as tls:
        config = {"source": "dicomweb", "url": tls.url + "/dicom-web", "ca_bundle": str(ca)}
        config["auth"] = {"kind": "basic", "env": "CURATE_TEST_PACS_SECRET"}
        monkeypatch.setenv("CURATE_TEST_PACS_SECRET", "curate:right-password")
        source = source_from_config(config)
        assert "right-password" not in repr(source.credentials)
        result = pull(source, tmp_path / "index", progress=False)
        assert result.instances == small_archive.instances
        monkeypatch.setenv("CURATE_TEST_PACS_SECRET", "curate:wrong-password")
        with pytest.raises(PacsError, match="refused the credentials"):
            pull(source_from_config(config), tmp_path / "other", progress=False)
        untrusted = DicomWebSource(tls.url + "/dicom-web", Credentials("basic", "curate:right-password"))
        with pytest.raises(PacsError, match="TLS certificate was not accepted"):
            pull(untrusted, tmp_path / "third", progress=False)


def test_secrets_come_from_owner_only_files_or_the_environment(tmp_path, monkeypatch):
    secret = tmp_path / "token"
    secret.write_text("abc\n")
    secret.chmod(0o644)
    with pytest.raises(ConfigError, match="can be read by others"):
        load_credentials("bearer", file=str(secret))
    secret.chmod(0o600)
    assert load_credentials("bearer", file=str(secret)) == Credentials("bearer", "abc")
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    with pytest.raises(ConfigError, match="not set"):
        load_credentials("basic", env="NOT_SET_ANYWHERE")
    with pytest.raises(ConfigError, match="exactly one"):
        load_credentials("basic")
    with pytest.raises(PacsError, match="must not hold credentials"):
        DicomWebSource("http://user:pw@127.0.0.1:8042/dicom-web")


def test_a_server_killed_and_started_again_mid_pull(server, small_archive, tmp_path):
    store, index = tmp_path / "store", tmp_path / "index"
    source = DicomWebSource(server.dicomweb_url, Credentials("basic", "curate:right-password"), timeout=5)
    outcome = {}

    def run():
        # Slow enough (20 requests/s) that the kill lands mid-pull.
        outcome["result"] = pull(
            source, index, level="images", store=store, throttle=ThrottleOptions(rate=20), retries=8, progress=False
        )

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 60
    while len(list(store.rglob("*.dcm"))) < 20 and time.monotonic() < deadline:
        time.sleep(0.02)
    server.kill()
    killed_at = len(list(store.rglob("*.dcm")))
    time.sleep(1.5)
    server.start()
    worker.join(timeout=180)
    assert not worker.is_alive()
    result = outcome["result"]
    assert 0 < killed_at < small_archive.instances
    assert result.retries > 0  # it noticed, and rode it out
    assert result.failed_series == 0
    assert_store_matches(store, small_archive)
    ok = duckdb.sql(f"SELECT count(*) FROM ({IndexStore(index).rows_sql()}) WHERE status = 'ok'").fetchall()
    assert ok == [(small_archive.instances,)]


class _SlowPhase:
    """Delays the requests between the `start`-th and the `end`-th: a server that slows
    down for a stretch of the pull, whatever the machine's speed."""

    def __init__(self, start: int, end: int, delay: float):
        self.count, self.start, self.end, self.slow = 0, start, end, delay
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            self.count += 1
            return self.slow if self.start <= self.count < self.end else 0.0


def test_the_throttle_backs_off_when_the_server_slows_and_recovers(orthanc, pacs_archive, tmp_path):
    # A slow stretch of 500 ms a request: "slow" below is 8x the idle probe (a QIDO timed
    # on loopback, 7 to 20 ms here), so this holds while the idle probe stays under 60 ms,
    # however loaded the machine.
    phase = _SlowPhase(start=200, end=230, delay=0.5)
    with LoopbackProxy(orthanc.http_port, delay=phase) as proxy:
        result = pull(
            DicomWebSource(proxy.url + "/dicom-web"),
            tmp_path / "index",
            # Factors well above what this machine's own load does to the probe (client
            # and server share two cores), and well below the slow stretch's delay.
            throttle=ThrottleOptions(max_concurrency=4, probe_interval=0.05, slow_factor=8, recover_factor=5),
            find_limit=40,
            progress=False,
        )
    stats = result.throttle
    assert phase.count > phase.end  # the pull went on past the slow stretch
    assert result.instances == pacs_archive.instances
    assert stats["backoff"] >= 1 and stats["min_limit"] < 4  # it slowed down with the server
    limits = [limit for _, limit in result.limit_history]
    lowest = limits.index(min(limits))
    assert stats["grow"] >= 1 and max(limits[lowest:]) == 4  # and came back once the server did
    assert max(result.latencies) > phase.slow > min(result.latencies)
    print(f"idle {result.idle_latency}, throttle {stats}")


def test_an_instance_the_server_cannot_read_fails_its_series_and_the_pull_goes_on(server, small_archive, tmp_path):
    session = server.session()
    uid = sorted(small_archive.by_uid)[5]
    found = session.post(f"{server.url}/tools/lookup", data=uid).json()
    attachment = session.get(f"{server.url}/instances/{found[0]['ID']}/attachments/dicom/info").json()["Uuid"]
    stored = server.workdir / "storage" / attachment[:2] / attachment[2:4] / attachment
    stored.write_bytes(stored.read_bytes()[:700])  # the header cut short on the server's disk
    store, index = tmp_path / "store", tmp_path / "index"
    result = pull(
        DimseSource("127.0.0.1", server.dicom_port, server.aet), index, level="images", store=store, progress=False
    )
    assert result.failed_series == 1
    assert result.instances == small_archive.instances - 1
    assert result.failures and "C-GET" in result.failures[0][0]
    assert "FAILED series: 1" in result.format()
    got = {p.stem for p in store.rglob("*.dcm")}
    assert got == set(small_archive.by_uid) - {uid}
    # Over DICOMweb this Orthanc refuses the QIDO queries that need the unreadable file
    # (the study query itself, when that study is among its answers): clear either way.
    web = DicomWebSource(server.dicomweb_url, Credentials("basic", "curate:right-password"))
    try:
        answered = pull(web, tmp_path / "web", progress=False)
    except PacsError as e:
        assert "refused the study query" in str(e)
    else:
        assert answered.failed_studies + answered.failed_series > 0 and "FAILED" in answered.format()
    assert os.path.exists(index / "pull" / "ledger.sqlite")

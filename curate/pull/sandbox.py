"""A PACS to pull from without a hospital: a generated archive served by a local Orthanc.

The demo, the tests and the pull benchmark use it. The archive has the shape that
exercises a pull: several modalities (chest radiographs among them), patients with
several studies, studies spread over two years, and one busy day whose studies crowd
into a few hours (so that a capped C-FIND must split by date, then hours, then
modality). Every file is a valid Part 10 file with real pixel data, so what a pull
brings back can be compared element by element with the server's copy.

Orthanc runs on loopback only, from a config this module writes (see ``NOTES.md``):
it serves DIMSE and, with its plugin, DICOMweb.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np

#: Where Debian's orthanc-dicomweb package puts the plugin.
DICOMWEB_PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"
ORTHANC = "Orthanc"

CR_STORAGE = "1.2.840.10008.5.1.4.1.1.1"
DX_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"
CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_STORAGE = "1.2.840.10008.5.1.4.1.1.4"

#: (modality, SOP class, body part, series per study: (description, view, images)).
_STUDY_KINDS = (
    ("CR", CR_STORAGE, "CHEST", (("PA", "PA", 1), ("LAT", "LL", 1))),
    ("DX", DX_STORAGE, "CHEST", (("AP portable", "AP", 1),)),
    ("CT", CT_STORAGE, "CHEST", (("Thorax 1.0", None, 4), ("Scout", None, 1))),
    ("MR", MR_STORAGE, "HEAD", (("T1 SAG", None, 3), ("T2 AX", None, 3))),
)
_FIRST_DAY = date(2024, 1, 1)
_DAYS = 730


@dataclass
class GeneratedArchive:
    """What :func:`generate_archive` wrote: counts, for tests and the demo's summary."""

    root: Path
    studies: int = 0
    series: int = 0
    instances: int = 0
    bytes: int = 0
    busy_day: str = ""
    modalities: dict[str, int] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    #: SOPInstanceUID -> the file written for it.
    by_uid: dict[str, Path] = field(default_factory=dict)


def generate_archive(out: str | os.PathLike[str], studies: int = 300, seed: int = 0) -> GeneratedArchive:
    """Write `studies` studies of small but valid images under `out` (folders named by
    number, never by patient). The same seed gives the same UIDs and pixels."""
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    rng = random.Random(seed)
    pixels = np.random.default_rng(seed)
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    result = GeneratedArchive(root=root)
    busy = _FIRST_DAY + timedelta(days=400)
    result.busy_day = busy.strftime("%Y%m%d")
    patients = max(1, studies * 2 // 3)
    uid_root = f"1.2.826.0.1.3680043.10.1234.{seed}."
    for number in range(studies):
        kind = _STUDY_KINDS[number % len(_STUDY_KINDS)] if number % 5 else _STUDY_KINDS[number % 2]
        modality, sop_class, body_part, series_kinds = kind
        patient = rng.randrange(patients)
        # A fifth of the studies fall on one busy day, most of them in two hours.
        if number % 5 == 1:
            day, hour = busy, 10 if rng.random() < 0.7 else rng.randrange(7, 19)
        else:
            day, hour = _FIRST_DAY + timedelta(days=rng.randrange(_DAYS)), rng.randrange(7, 19)
        study_uid = f"{uid_root}{number + 1}"
        result.studies += 1
        result.modalities[modality] = result.modalities.get(modality, 0) + 1
        for s, (description, view, images) in enumerate(series_kinds, start=1):
            series_uid = f"{study_uid}.{s}"
            result.series += 1
            for i in range(1, images + 1):
                ds = Dataset()
                ds.SOPClassUID = sop_class
                ds.SOPInstanceUID = f"{series_uid}.{i}"
                ds.StudyInstanceUID = study_uid
                ds.SeriesInstanceUID = series_uid
                ds.PatientID = "../../etc/passwd" if patient == 0 else f"PAT{patient:05d}"
                ds.PatientName = f"Test^Patient{patient}"
                ds.PatientBirthDate = f"{1930 + patient % 70}{1 + patient % 12:02d}15"
                ds.PatientSex = "MF"[patient % 2]
                ds.StudyDate = ds.SeriesDate = ds.ContentDate = day.strftime("%Y%m%d")
                ds.StudyTime = ds.SeriesTime = f"{hour:02d}{rng.randrange(60):02d}{rng.randrange(60):02d}"
                ds.AccessionNumber = f"ACC{number + 1:06d}"
                ds.StudyID = str(number + 1)
                ds.StudyDescription = f"{modality} {body_part.lower()}"
                ds.ReferringPhysicianName = "Referrer^Test"
                ds.InstitutionName = "Generated Hospital"
                ds.Modality = modality
                ds.SeriesNumber = s
                ds.SeriesDescription = description
                ds.BodyPartExamined = body_part
                ds.InstanceNumber = i
                ds.Manufacturer = "GENERATED"
                if view is not None:
                    ds.ViewPosition = view
                if modality in ("CR", "DX"):
                    ds.KVP = 110 + rng.randrange(15)
                    ds.Exposure = rng.randrange(2, 8)
                side = 64 if modality in ("CR", "DX") else 32
                ds.Rows = ds.Columns = side
                ds.SamplesPerPixel = 1
                ds.PhotometricInterpretation = "MONOCHROME2"
                ds.BitsAllocated = ds.BitsStored = 16
                ds.HighBit = 15
                ds.PixelRepresentation = 0
                ds.PixelData = pixels.integers(0, 4096, (side, side), dtype=np.uint16).tobytes()
                meta = FileMetaDataset()
                meta.MediaStorageSOPClassUID = sop_class
                meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
                meta.TransferSyntaxUID = ExplicitVRLittleEndian
                ds.file_meta = meta
                path = root / f"{number + 1:05d}" / f"{s:02d}" / f"{i:04d}.dcm"
                path.parent.mkdir(parents=True, exist_ok=True)
                pydicom.dcmwrite(path, ds, enforce_file_format=True)
                result.instances += 1
                result.bytes += path.stat().st_size
                result.files.append(path)
                result.by_uid[ds.SOPInstanceUID] = path
    return result


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def orthanc_available() -> bool:
    return shutil.which(ORTHANC) is not None and Path(DICOMWEB_PLUGIN).exists()


class LocalOrthanc:
    """An Orthanc on loopback with its own storage under `workdir`.

    `find_limit` caps C-FIND answers (``LimitFindResults`` / ``LimitFindInstances``);
    `users` turns on HTTP basic auth; `certificate` (a PEM holding key and certificate)
    turns on https, and `ca` is what this object's own requests trust (Debian's Orthanc
    1.10 crashes with it: use :class:`LoopbackProxy` for https)."""

    def __init__(
        self,
        workdir: str | os.PathLike[str],
        aet: str = "ORTHANC",
        find_limit: int = 0,
        users: dict[str, str] | None = None,
        certificate: str | os.PathLike[str] | None = None,
        ca: str | os.PathLike[str] | None = None,
        modalities: dict[str, tuple[str, str, int]] | None = None,
        http_port: int | None = None,
        dicom_port: int | None = None,
    ):
        self.workdir = Path(workdir)
        self.aet = aet
        self.http_port = http_port or free_port()
        self.dicom_port = dicom_port or free_port()
        self.users = users
        self.certificate = certificate
        self.ca = ca
        self.process: subprocess.Popen | None = None
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = {
            "Name": "curate-sandbox",
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": aet,
            "StorageDirectory": str(self.workdir / "storage"),
            "IndexDirectory": str(self.workdir / "storage"),
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": bool(users),
            "RegisteredUsers": users or {},
            "DicomCheckCalledAet": True,
            "DicomAlwaysAllowEcho": True,
            "DicomAlwaysAllowFind": True,
            "DicomAlwaysAllowGet": True,
            "DicomAlwaysAllowMove": True,
            "DicomAlwaysAllowStore": True,
            "LimitFindResults": find_limit,
            "LimitFindInstances": find_limit,
            "DicomModalities": {name: list(spec) for name, spec in (modalities or {}).items()},
            "Plugins": [DICOMWEB_PLUGIN],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "StudiesMetadata": "Full", "SeriesMetadata": "Full"},
            "StableAge": 1,
            "HttpTimeout": 60,
            "ConcurrentJobs": 2,
            "DicomThreadsCount": 8,
            "MaximumStorageCacheSize": 0,  # serve what is on disk (tests corrupt it there)
        }
        if certificate is not None:
            config.update({"SslEnabled": True, "SslCertificate": str(certificate)})
        self.config_path = self.workdir / "orthanc.json"
        self.config_path.write_text(json.dumps(config, indent=1))

    @property
    def scheme(self) -> str:
        return "https" if self.certificate is not None else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.url}/dicom-web"

    def start(self, timeout: float = 30.0) -> LocalOrthanc:
        log = open(self.workdir / "orthanc.log", "ab")  # noqa: SIM115 - the process holds it
        # DCMTK 3.6.7 (which Debian's Orthanc links) leaves Nagle's algorithm on unless
        # TCP_NODELAY=1 is in its environment: every DIMSE exchange then waits out a
        # delayed ACK (a C-ECHO took 44 ms instead of 2.5).
        self.process = subprocess.Popen(
            [ORTHANC, str(self.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "TCP_NODELAY": "1"},
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Orthanc exited with {self.process.returncode}; see {self.workdir / 'orthanc.log'}")
            if self._answers():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"Orthanc did not answer within {timeout:.0f} s")

    def _answers(self) -> bool:
        for port in (self.http_port, self.dicom_port):
            with socket.socket() as s:
                s.settimeout(0.2)
                if s.connect_ex(("127.0.0.1", port)) != 0:
                    return False
        return True

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        """Stop it the hard way, as a crash or a power cut would."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def __enter__(self) -> LocalOrthanc:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def session(self):
        import requests

        session = requests.Session()
        if self.users:
            session.auth = next(iter(self.users.items()))
        if self.ca is not None:
            session.verify = str(self.ca)
            session.trust_env = False  # else REQUESTS_CA_BUNDLE wins over `verify` (requests #3829)
        return session

    def upload(self, files: Iterable[str | os.PathLike[str]]) -> int:
        """POST every file to Orthanc's REST API; returns how many it stored."""
        stored = 0
        with self.session() as session:
            for path in files:
                response = session.post(f"{self.url}/instances", data=Path(path).read_bytes(), timeout=60)
                response.raise_for_status()
                stored += 1
        return stored

    def statistics(self) -> dict:
        with self.session() as session:
            return session.get(f"{self.url}/statistics", timeout=30).json()


class LoopbackProxy:
    """A TCP proxy on loopback in front of a server: it can add a delay to every request
    (a PACS under load) and terminate TLS with a test certificate. `delay` is seconds, or
    a function called for each chunk a client sends (each request, near enough) that
    returns them.

    Debian's Orthanc 1.10 crashes (civetweb segfaults) on its first request with
    ``SslEnabled``, so https is served by this proxy in front of its plain HTTP port."""

    def __init__(
        self,
        target_port: int,
        certificate: str | os.PathLike[str] | None = None,
        delay: float | Callable[[], float] = 0.0,
    ):
        import ssl

        self.target_port = target_port
        self.delay = delay
        self.context = None
        if certificate is not None:
            self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.context.load_cert_chain(str(certificate))
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._stopped = False
        self._threads: list = []

    @property
    def url(self) -> str:
        return f"{'https' if self.context else 'http'}://127.0.0.1:{self.port}"

    def start(self) -> LoopbackProxy:
        import threading

        self.listener.listen(64)
        thread = threading.Thread(target=self._accept, daemon=True, name="curate-proxy")
        thread.start()
        return self

    def stop(self) -> None:
        self._stopped = True
        self.listener.close()

    def __enter__(self) -> LoopbackProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _accept(self) -> None:
        import threading

        while not self._stopped:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        import threading

        try:
            if self.context is not None:
                client = self.context.wrap_socket(client, server_side=True)
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
        except OSError:
            client.close()
            return
        upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        back = threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True)
        back.start()
        self._pipe(client, upstream, True)

    def _pipe(self, source: socket.socket, target: socket.socket, delayed: bool) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if delayed:
                    pause = self.delay() if callable(self.delay) else self.delay
                    if pause:
                        time.sleep(pause)
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()


def make_test_ca(
    folder: str | os.PathLike[str], names: Sequence[str] = ("127.0.0.1", "localhost")
) -> tuple[Path, Path]:
    """A CA and a server certificate it signed, made with openssl for a test: returns
    (the CA's certificate, a PEM with the server's key and certificate for Orthanc)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca_crt = folder / "ca.key", folder / "ca.crt"
    key, csr, crt = folder / "server.key", folder / "server.csr", folder / "server.crt"
    ext = folder / "san.ext"
    ext.write_text("subjectAltName=" + ",".join(("IP:" if n[0].isdigit() else "DNS:") + n for n in names) + "\n")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca_crt),
            "-days", "2", "-subj", "/CN=curate test CA")  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key), "-CAcreateserial",
            "-out", str(crt), "-days", "2", "-extfile", str(ext))  # fmt: skip
    pem = folder / "server.pem"
    pem.write_bytes(key.read_bytes() + crt.read_bytes())
    return ca_crt, pem

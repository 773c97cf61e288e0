"""DICOMweb: QIDO-RS to find, WADO-RS to retrieve, over http or https.

QIDO answers are paged with ``limit`` and ``offset`` until a page comes back short, so
a server that caps its answers still gives all of them. Instances are retrieved one
request each, as stored (``transfer-syntax=*``): a killed pull loses at most the
requests in flight, and the request-rate limit means what it says.
"""

from __future__ import annotations

import time
from urllib.parse import quote, urlsplit

from curate.errors import PacsError
from curate.pull.credentials import Credentials
from curate.pull.source import (
    IMAGE,
    SERIES,
    STUDY,
    Answer,
    Answers,
    InstanceError,
    Query,
    QueryRefused,
    Sink,
    TransientError,
    tag_hex,
    well_formed,
    without_bulk_data,
)

#: Answers per QIDO request.
PAGE = 500
ACCEPT_DICOM = 'multipart/related; type="application/dicom"; transfer-syntax=*'


class DicomWebSource:
    kind = "dicomweb"

    def __init__(
        self,
        url: str,
        credentials: Credentials | None = None,
        ca_bundle: str | None = None,
        timeout: float = 60.0,
        page: int = PAGE,
    ):
        try:
            parts = urlsplit(url)
            port = parts.port  # a port that is not a number raises here
        except ValueError:
            raise PacsError("url is not a URL (it is not echoed: it may hold a secret)") from None
        if parts.username or parts.password or "@" in parts.netloc:
            raise PacsError("url must not hold credentials: give them with auth.env or auth.file")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PacsError("url must be an http or https DICOMweb root, such as https://pacs.example.org/dicom-web")
        if parts.query or parts.fragment:
            raise PacsError("url must not hold a query or a fragment (a token there would go into every row)")
        del port
        self.url = url.rstrip("/")
        self.credentials = credentials or Credentials()
        self.ca_bundle = ca_bundle
        self.timeout = timeout
        self.page = page

    def describe(self) -> str:
        parts = urlsplit(self.url)
        host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return f"DICOMweb at {parts.scheme}://{host}:{port}"

    def instance_uri(self, study: str, series: str, instance: str) -> str:
        return f"{self.url}{instance_path(study, series, instance)}"

    def probe_spec(self) -> tuple:
        """What :mod:`curate.pull.probe` needs to probe this source from another process."""
        return ("dicomweb", self.url, self.credentials.kind, self.credentials.secret, self.ca_bundle, self.timeout)

    def connect(self) -> DicomWebConnection:
        return DicomWebConnection(self)


class DicomWebConnection:
    def __init__(self, source: DicomWebSource):
        import requests

        self.source = source
        self.session = requests.Session()
        source.credentials.apply(self.session)
        # Given with every request: a session's own `verify` loses to REQUESTS_CA_BUNDLE
        # in the environment (requests issue #3829).
        self.verify = source.ca_bundle or True

    def close(self) -> None:
        self.session.close()

    def study(self, sop_classes: list[str] | None) -> None:
        """Nothing to prepare: each request is its own (the session keeps the connection)."""

    def __enter__(self) -> DicomWebConnection:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _get(self, path: str, params=None, accept: str = "application/dicom+json"):
        import requests

        url = self.source.url + path
        try:
            response = self.session.get(
                url, params=params, headers={"Accept": accept}, timeout=self.source.timeout, verify=self.verify
            )
        except requests.exceptions.SSLError as e:
            raise PacsError(
                f"{self.source.describe()}: the TLS certificate was not accepted ({_tls_reason(e)})"
            ) from None
        except requests.exceptions.Timeout:
            raise TransientError(f"{self.source.describe()}: no answer within {self.source.timeout:g} s") from None
        except requests.exceptions.ConnectionError:
            # Not the exception's text: it quotes the URL, and the URL the query (a PatientID).
            raise TransientError(f"{self.source.describe()}: the connection failed or was dropped") from None
        if response.status_code in (401, 403):
            raise PacsError(f"{self.source.describe()} refused the credentials (HTTP {response.status_code})")
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientError(f"{self.source.describe()} answered HTTP {response.status_code}")
        return response

    def echo(self) -> float:
        """Seconds for the smallest QIDO query: the connection check and the probe."""
        started = time.perf_counter()
        response = self._get("/studies", params={"limit": 1})
        if response.status_code >= 400:
            raise PacsError(f"{self.source.describe()} answered HTTP {response.status_code} to a QIDO query")
        return time.perf_counter() - started

    def find(self, level: str, query: Query) -> Answers:
        path = _qido_path(level, query)
        params = [(k, v) for k, v in query.items() if v and not _is_parent(level, k)]
        # One includefield per key: PS3.18 allows a comma list too, but servers (Orthanc's
        # plugin among them) read only its first key.
        params += [("includefield", tag_hex(k)) for k, v in query.items() if not v]
        answers = Answers()
        first_of_last_page = None
        while True:
            page = self._get(path, params=[*params, ("limit", self.source.page), ("offset", len(answers))])
            if page.status_code == 204:
                break
            if page.status_code >= 400:
                # A refusal of this query alone (Orthanc answers 400 when it cannot read a
                # file the query needs): the series fails, the pull goes on.
                raise QueryRefused(f"QIDO-RS answered HTTP {page.status_code} at {level.lower()} level")
            try:
                got = page.json() if page.content else []
            except ValueError:
                raise QueryRefused(f"the QIDO-RS answer at {level.lower()} level is not JSON") from None
            got = well_formed(got, f"the QIDO-RS answer at {level.lower()} level")
            if got and got[0] == first_of_last_page:
                raise QueryRefused("the QIDO-RS server ignores offset (the same page came back twice)")
            first_of_last_page = got[0] if got else None
            answers.extend(got)
            if len(got) < self.source.page:
                break
        return answers

    def metadata(self, study: str, series: str) -> list[Answer]:
        """WADO-RS metadata of every instance of a series: whole headers, bulk data left out."""
        response = self._get(f"{series_path(study, series)}/metadata")
        if response.status_code >= 400:
            raise QueryRefused(f"WADO-RS metadata answered HTTP {response.status_code}")
        try:
            answers = response.json()
        except ValueError:
            raise InstanceError("WADO-RS metadata is not JSON") from None
        if not isinstance(answers, list) or not all(isinstance(a, dict) for a in answers):
            raise InstanceError("WADO-RS metadata is not a list of DICOM JSON objects")
        return [without_bulk_data(a) for a in answers]

    def retrieve(self, study: str, series: str, instances: list[str], sop_classes: list[str], sink: Sink) -> None:
        for instance in instances:
            response = self._get(instance_path(study, series, instance), accept=ACCEPT_DICOM)
            if response.status_code == 404:
                raise InstanceError("the server no longer has the instance (HTTP 404)")
            if response.status_code >= 400:
                raise InstanceError(f"WADO-RS answered HTTP {response.status_code}")
            parts = multipart_bodies(response.content, response.headers.get("Content-Type", ""))
            if len(parts) != 1:
                raise InstanceError(f"WADO-RS sent {len(parts)} parts for one instance")
            sink(instance, parts[0])


def _is_parent(level: str, keyword: str) -> bool:
    return (level in (SERIES, IMAGE) and keyword == "StudyInstanceUID") or (
        level == IMAGE and keyword == "SeriesInstanceUID"
    )


def _segment(uid: str) -> str:
    """A UID as one path segment: '/' and '..' in a hostile UID must not change the path."""
    return quote(uid, safe="") if uid not in (".", "..") else quote(uid.replace(".", "%2E"), safe="%")


def series_path(study: str, series: str) -> str:
    return f"/studies/{_segment(study)}/series/{_segment(series)}"


def instance_path(study: str, series: str, instance: str) -> str:
    return f"{series_path(study, series)}/instances/{_segment(instance)}"


def _qido_path(level: str, query: Query) -> str:
    if level == STUDY:
        return "/studies"
    study = query.get("StudyInstanceUID")
    if not study:
        raise ValueError("a series or instance query needs its StudyInstanceUID")
    if level == SERIES:
        return f"/studies/{_segment(study)}/series"
    series = query.get("SeriesInstanceUID")
    if not series:
        raise ValueError("an instance query needs its SeriesInstanceUID")
    return f"{series_path(study, series)}/instances"


def multipart_bodies(content: bytes, content_type: str) -> list[bytes]:
    """The bodies of a ``multipart/related`` answer (RFC 2046), headers dropped."""
    boundary = None
    for param in content_type.split(";")[1:]:
        name, _, val = param.strip().partition("=")
        if name.lower() == "boundary":
            boundary = val.strip('"')
    if not boundary:
        raise InstanceError(f"a WADO-RS answer without a multipart boundary ({content_type.split(';')[0]})")
    delimiter = b"--" + boundary.encode()
    bodies = []
    for chunk in content.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break  # the closing delimiter
        head, sep, body = chunk.partition(b"\r\n\r\n")
        if not sep:
            raise InstanceError("a WADO-RS part without headers")
        if body.endswith(b"\r\n"):
            body = body[:-2]
        bodies.append(body)
    return bodies


def _tls_reason(error: Exception) -> str:
    """What the TLS layer objected to, without the URL that requests' message quotes."""
    import re

    found = re.search(r"certificate verify failed: ([^(')]*)", str(error))
    return found.group(1).strip() if found else "the handshake failed"

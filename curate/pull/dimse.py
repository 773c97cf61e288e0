"""DIMSE: C-ECHO, C-FIND and C-GET (or C-MOVE to curate's own storage SCP) via pynetdicom.

C-GET is the default: the instances come back on the association curate opened, so the
PACS needs no entry for curate's AE title, host and port. Each connection is one
association (the pull's concurrency cap is a cap on associations); an aborted one is
opened again on the next request. A study's finds and retrievals share one association:
told the study's SOP classes (:meth:`DimseConnection.study`), the connection opens it
with the storage contexts of all of them, and each retrieval whose classes it holds goes
over it; every association costs the PACS a thread and a handshake.

A retrieval proposes, for each SOP class the series holds, one presentation context per
common transfer syntax, so that the PACS can send every file as it stored it rather than
transcode it.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time

from pydicom.dataset import Dataset
from pydicom.uid import (
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pynetdicom import ALL_TRANSFER_SYNTAXES as ALL_SYNTAXES

from curate.errors import PacsError
from curate.pull.source import IMAGE, SERIES, Answers, InstanceError, Query, QueryRefused, Sink, TransientError

# pynetdicom logs every request at INFO and data sets at DEBUG: identifiers must not go
# into a log, and Hydra turns INFO on for every logger.
# Its errors are reported by curate, with what they mean: its own log line only repeats them.
logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)

FIND_MODEL = "1.2.840.10008.5.1.4.1.2.2.1"  # Study Root Query/Retrieve - FIND
GET_MODEL = "1.2.840.10008.5.1.4.1.2.2.3"  # Study Root Query/Retrieve - GET
MOVE_MODEL = "1.2.840.10008.5.1.4.1.2.2.2"  # Study Root Query/Retrieve - MOVE
VERIFICATION = "1.2.840.10008.1.1"
#: Transfer syntaxes proposed for each stored SOP class, one context each.
STORE_SYNTAXES = (
    (ExplicitVRLittleEndian, ImplicitVRLittleEndian),
    (DeflatedExplicitVRLittleEndian,),
    (ExplicitVRBigEndian,),
    (JPEGBaseline8Bit,),
    (JPEGExtended12Bit,),
    (JPEGLosslessSV1,),
    (JPEGLSLossless,),
    (JPEGLSNearLossless,),
    (JPEG2000Lossless,),
    (JPEG2000,),
    (RLELossless,),
)
#: Storage SOP classes proposed when the instances' classes are not known.
COMMON_STORAGE = (
    "1.2.840.10008.5.1.4.1.1.1",  # CR
    "1.2.840.10008.5.1.4.1.1.1.1",  # DX for presentation
    "1.2.840.10008.5.1.4.1.1.1.1.1",  # DX for processing
    "1.2.840.10008.5.1.4.1.1.2",  # CT
    "1.2.840.10008.5.1.4.1.1.4",  # MR
    "1.2.840.10008.5.1.4.1.1.6.1",  # US
    "1.2.840.10008.5.1.4.1.1.7",  # secondary capture
    "1.2.840.10008.5.1.4.1.1.1.2",  # MG for presentation
    "1.2.840.10008.5.1.4.1.1.12.1",  # XA
    "1.2.840.10008.5.1.4.1.1.2.1",  # enhanced CT
    "1.2.840.10008.5.1.4.1.1.4.1",  # enhanced MR
)
#: Presentation contexts an association may propose (PS3.8: at most 128).
MAX_CONTEXTS = 128
#: The storage classes one association can retrieve: verification, find and retrieve
#: take a context each, and each class one a group of syntaxes.
MAX_STORED_CLASSES = (MAX_CONTEXTS - 3) // len(STORE_SYNTAXES)
SUCCESS, PENDING = 0x0000, (0xFF00, 0xFF01)
CANCELLED = 0xFE00


class DimseSource:
    kind = "dimse"

    def __init__(
        self,
        host: str,
        port: int,
        called_aet: str,
        calling_aet: str = "CURATE",
        timeout: float = 60.0,
        storage: StorageSCP | None = None,
    ):
        for name, aet in (("called_aet", called_aet), ("calling_aet", calling_aet)):
            if not aet or len(aet) > 16 or "\\" in aet:
                raise PacsError(f"{name} must be 1 to 16 characters without a backslash, not {aet!r}")
        self.host, self.port = host, int(port)
        self.called_aet, self.calling_aet = called_aet, calling_aet
        self.timeout = timeout
        self.storage = storage  # None: C-GET
        if storage is not None:
            storage.accept_from(called_aet, host)

    def describe(self) -> str:
        return f"DIMSE {self.called_aet} at {self.host}:{self.port}"

    def instance_uri(self, study: str, series: str, instance: str) -> str:
        from curate.pull.dicomweb import instance_path

        return f"dicom://{self.called_aet}@{self.host}:{self.port}{instance_path(study, series, instance)}"

    def probe_spec(self) -> tuple:
        """What :mod:`curate.pull.probe` needs to probe this source from another process."""
        return ("dimse", self.host, self.port, self.called_aet, self.calling_aet, self.timeout)

    def connect(self) -> DimseConnection:
        return DimseConnection(self)


class DimseConnection:
    """One association at a time, for finds and retrievals: opened when first needed,
    with the storage contexts of the study's SOP classes (:meth:`study`), and opened
    again only for a retrieval of a class it was not opened with."""

    def __init__(self, source: DimseSource):
        self.source = source
        self._assoc = None
        #: The storage classes the association was opened with (None: finds only).
        self._holds: frozenset[str] | None = None
        #: The storage classes of the study the next requests are for (None: not told).
        self._scope: frozenset[str] | None = None
        #: Where the instances of the retrieval in progress go (a C-STORE handler).
        self._store = None
        self._messages = itertools.count(1)  # a request's Message ID, new on the association
        self._cancel = threading.Event()

    def _ae(self):
        from pynetdicom import AE

        ae = AE(ae_title=self.source.calling_aet)
        for timeout in ("acse_timeout", "dimse_timeout", "network_timeout"):
            setattr(ae, timeout, self.source.timeout)
        ae.connection_timeout = min(self.source.timeout, 10.0)
        return ae

    def _associate(self, ae, **kwargs):
        assoc = ae.associate(self.source.host, self.source.port, ae_title=self.source.called_aet, **kwargs)
        if assoc.is_established:
            _no_delay(assoc)
            _reactor_takes_only_requests(assoc)
            return assoc
        if assoc.is_rejected:
            raise PacsError(
                f"{self.source.describe()} rejected the association from {self.source.calling_aet} "
                "(check the called and calling AE titles, and that the PACS knows the calling one)"
            )
        raise TransientError(f"{self.source.describe()}: no association (the server did not answer)")

    def study(self, sop_classes: list[str] | None) -> None:
        """The requests that follow are for a study of `sop_classes` (SOP Classes in Study;
        empty where the PACS did not answer it; None where nothing is retrieved): the
        association opened next can retrieve its instances as well as find them."""
        self._scope = None if sop_classes is None else _storage_classes(sop_classes)

    def _open(self, classes: frozenset[str] | None):
        """A new association (the last one released): verification and finds, and with
        `classes`, retrievals of them (C-GET with their storage contexts, or C-MOVE)."""
        from pynetdicom import build_role, evt

        self.close()
        ae = self._ae()
        ae.add_requested_context(VERIFICATION)
        ae.add_requested_context(FIND_MODEL)
        kwargs = {}
        if classes is not None and self.source.storage is not None:
            ae.add_requested_context(MOVE_MODEL)
        elif classes is not None:
            ae.add_requested_context(GET_MODEL)
            for sop_class in sorted(classes):
                for syntaxes in STORE_SYNTAXES:
                    ae.add_requested_context(sop_class, list(syntaxes))
            kwargs = {
                "ext_neg": [build_role(sop_class, scp_role=True) for sop_class in sorted(classes)],
                "evt_handlers": [(evt.EVT_C_STORE, self._on_store)],
            }
        self._assoc = self._associate(ae, **kwargs)
        self._holds = classes
        return self._assoc

    def _on_store(self, event) -> int:
        store = self._store
        return 0xA700 if store is None else store(event)  # out of resources: nothing asked for

    def _finder(self):
        if self._assoc is None or not self._assoc.is_established:
            return self._open(self._scope)
        return self._assoc

    def _retriever(self, sop_classes: list[str]):
        """An association that can retrieve instances of `sop_classes`: this one where it
        was opened with them, else one opened with them (and the study's, where all fit)."""
        wanted = _storage_classes(sop_classes)
        held = self._holds
        if self._assoc is not None and self._assoc.is_established and held is not None:
            if self.source.storage is not None or wanted <= held:
                return self._assoc
        scope = self._scope or frozenset()
        both = wanted | scope
        return self._open(both if len(both) <= MAX_STORED_CLASSES else wanted)

    def close(self) -> None:
        if self._assoc is not None and self._assoc.is_established:
            self._assoc.release()
        self._assoc, self._holds = None, None

    def __enter__(self) -> DimseConnection:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def cancel(self) -> None:
        """Ask a retrieval in progress to stop (a C-CANCEL goes to the PACS)."""
        self._cancel.set()

    def echo(self) -> float:
        started = time.perf_counter()
        status = self._finder().send_c_echo()
        if not status or status.Status != SUCCESS:
            self.close()
            raise TransientError(f"{self.source.describe()}: C-ECHO failed")
        return time.perf_counter() - started

    def find(self, level: str, query: Query) -> Answers:
        identifier = Dataset()
        identifier.QueryRetrieveLevel = level
        for keyword, match in query.items():
            setattr(identifier, keyword, match or None)  # None: an empty return key of any VR
        assoc = self._finder()
        answers = Answers()
        for status, found in assoc.send_c_find(identifier, FIND_MODEL):
            if not status:
                self.close()
                raise TransientError(f"{self.source.describe()}: the C-FIND was cut off")
            if status.Status in PENDING:
                if found is not None:
                    answers.append(found.to_json_dict())
            elif status.Status == CANCELLED:
                answers.capped = True
            elif status.Status & 0xFF00 == 0xA700:
                raise TransientError(f"{self.source.describe()}: C-FIND out of resources (0x{status.Status:04X})")
            elif status.Status != SUCCESS:
                raise QueryRefused(f"C-FIND failed with status 0x{status.Status:04X} at {level.lower()} level")
        return answers

    def retrieve(self, study: str, series: str, instances: list[str], sop_classes: list[str], sink: Sink) -> None:
        """C-GET `instances` of one series (all of them when the list is empty), or C-MOVE
        them to curate's own storage SCP when the source has one."""
        failures: list[str] = []

        def store(event) -> int:
            try:
                sink(str(event.request.AffectedSOPInstanceUID), event.encoded_dataset(include_meta=True))
            except Exception as e:  # noqa: BLE001 - reported to the PACS and to the pull
                failures.append(
                    str(e) if isinstance(e, InstanceError) else f"the instance was not stored ({type(e).__name__})"
                )
                return 0xA700  # out of resources
            return SUCCESS

        move = self.source.storage
        assoc = self._retriever(sop_classes)
        if move is None:
            model, msg_id = GET_MODEL, next(self._messages)
            self._store = store
        else:
            model, msg_id = MOVE_MODEL, move.expect(store)
        self._cancel.clear()
        identifier = Dataset()
        identifier.StudyInstanceUID = study
        identifier.SeriesInstanceUID = series
        if instances:
            identifier.QueryRetrieveLevel = IMAGE
            identifier.SOPInstanceUID = instances if len(instances) > 1 else instances[0]
        else:
            identifier.QueryRetrieveLevel = SERIES
        final = None
        try:
            if move is None:
                responses = assoc.send_c_get(identifier, model, msg_id=msg_id)
            else:
                responses = assoc.send_c_move(identifier, move.aet, model, msg_id=msg_id)
            for status, _ in responses:
                if not status:
                    raise TransientError(f"{self.source.describe()}: the retrieval was cut off")
                final = status.Status
                if self._cancel.is_set() and final in PENDING:
                    assoc.send_c_cancel(msg_id, query_model=model)
        finally:
            self._store = None  # the association stays open for the study's next request
            if move is not None:
                move.forget(msg_id)
        if failures:
            raise InstanceError(failures[0])
        name = "C-GET" if move is None else "C-MOVE"
        if final == 0xA801:
            raise PacsError(f"{self.source.describe()} does not know the move destination {move.aet}")
        if final not in (SUCCESS, CANCELLED, 0xB000):  # 0xB000: some sub-operations failed
            text = f"{name} ended with status 0x{final:04X}" if final is not None else f"{name} had no answer"
            if move is not None:
                text += f" (does the PACS know {move.aet} as a move destination, with this host and port?)"
            raise InstanceError(text)


class StorageSCP:
    """curate's own storage SCP, for C-MOVE: the PACS opens associations to it and sends
    the instances there. Each C-STORE names the message ID of the C-MOVE it belongs to
    (Move Originator Message ID), which routes it to that retrieval's sink."""

    def __init__(self, aet: str, port: int, bind: str = "127.0.0.1"):
        self.aet, self.port, self.bind = aet, int(port), bind
        self._sinks: dict[int, object] = {}
        self._next = 1
        self._peers: set[str] = set()
        self._aets: set[str] = set()
        self._lock = threading.Lock()
        self._server = None

    def start(self) -> StorageSCP:
        from pynetdicom import AE, AllStoragePresentationContexts, evt

        ae = AE(ae_title=self.aet)
        for context in AllStoragePresentationContexts:
            ae.add_supported_context(context.abstract_syntax, ALL_SYNTAXES)
        try:
            self._server = ae.start_server(
                (self.bind, self.port), block=False, evt_handlers=[(evt.EVT_C_STORE, self._store)]
            )
        except OSError as e:
            raise PacsError(f"curate's storage SCP cannot listen on port {self.port}: {e.strerror or e}") from None
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    def accept_from(self, aet: str, host: str) -> None:
        """Take C-STOREs only from this PACS: its AE title, from its address."""
        import socket

        self._aets.add(aet)
        try:
            self._peers.update(info[4][0] for info in socket.getaddrinfo(host, None))
        except OSError:
            self._peers.add(host)

    def expect(self, handler) -> int:
        """A message ID for one C-MOVE, whose instances go to `handler`."""
        with self._lock:
            msg_id = self._next
            self._next = self._next % 65535 + 1
            self._sinks[msg_id] = handler
            return msg_id

    def forget(self, msg_id: int) -> None:
        with self._lock:
            self._sinks.pop(msg_id, None)

    def _store(self, event) -> int:
        requestor = event.assoc.requestor
        if requestor.ae_title.strip() not in self._aets or requestor.address not in self._peers:
            return 0xA700  # not the PACS this pull asked (none until a source names one)
        with self._lock:
            handler = self._sinks.get(int(event.request.MoveOriginatorMessageID or 0))
        if handler is None:
            return 0xA700  # no retrieval asked for it
        return handler(event)


def _no_delay(assoc) -> None:
    """Turn off Nagle's algorithm on curate's side: pynetdicom writes a message's command
    and data set as separate small writes, and with Nagle on the second waits out the
    peer's delayed ACK (about 40 ms on Linux). The PACS's side is the PACS's own setting
    (DCMTK-based servers read TCP_NODELAY from their environment)."""
    import socket

    sock = getattr(getattr(assoc.dul, "socket", None), "socket", None)
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _reactor_takes_only_requests(assoc) -> None:
    """Keep the responses to our requests for the reads that wait for them.

    pynetdicom's reactor thread polls the association's message queue to serve requests
    from the peer. It pauses while a request of ours is answered, but a response that
    arrives in the moment before it pauses is taken by the reactor and dropped ("Received
    unexpected C-FIND service message", pynetdicom issue 875). A lost final response is
    a 30 s timeout; a lost pending C-FIND response is a match missing from the answer,
    with no error at all: measured, one study in 300 under CPU load. The reactor's reads
    do not block and ours do, so a read that does not block is given only a request
    (a C-STORE of a C-GET), and a response stays first in the queue.
    """
    dimse = assoc.dimse
    messages = dimse.msg_queue
    blocking_read = dimse.get_msg

    def get_msg(block: bool = False):
        if block:
            return blocking_read(block=True)
        with messages.mutex:  # what queue.Queue.get does, with the head looked at first
            if not messages.queue or not getattr(messages.queue[0][1], "is_valid_request", False):
                return None, None
            item = messages.queue.popleft()
            messages.not_full.notify()
            return item

    dimse.get_msg = get_msg


def _storage_classes(sop_classes: list[str]) -> frozenset[str]:
    """The storage classes to negotiate for instances of `sop_classes`: those, or where
    none is known (a PACS that did not answer SOPClassUID), the common ones; at most
    :data:`MAX_STORED_CLASSES`."""
    return frozenset(sorted(set(sop_classes) or COMMON_STORAGE)[:MAX_STORED_CLASSES])

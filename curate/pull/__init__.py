"""The PACS as a source: ``curate pull`` over DICOMweb or DIMSE (see :mod:`curate.pull.run`)."""

from __future__ import annotations

from collections.abc import Mapping

from curate.errors import ConfigError
from curate.pull.run import LEVELS, PullResult, ThrottleOptions, pull

SOURCES = ("dicomweb", "dimse")


def source_from_config(cfg: Mapping):
    """The source a stage config names (``source``, ``url``/``host``..., ``auth``)."""
    kind = cfg.get("source")
    timeout = float(cfg.get("timeout") or 60)
    if kind == "dicomweb":
        from curate.pull.credentials import load_credentials
        from curate.pull.dicomweb import DicomWebSource

        if not cfg.get("url"):
            raise ConfigError("source=dicomweb needs url=, the DICOMweb root (e.g. http://127.0.0.1:8042/dicom-web)")
        auth = cfg.get("auth") or {}
        credentials = load_credentials(auth.get("kind", "none"), auth.get("env"), auth.get("file"))
        return DicomWebSource(cfg["url"], credentials, ca_bundle=cfg.get("ca_bundle"), timeout=timeout)
    if kind == "dimse":
        from curate.pull.dimse import DimseSource

        if not cfg.get("host") or not cfg.get("called_aet"):
            raise ConfigError("source=dimse needs host=, port= and called_aet= (the PACS's AE title)")
        storage = None
        move = cfg.get("move") or {}
        if move.get("aet"):
            from curate.pull.dimse import StorageSCP

            storage = StorageSCP(move["aet"], int(move.get("port") or 11112), move.get("bind") or "0.0.0.0")
        return DimseSource(
            cfg["host"],
            int(cfg.get("port") or 104),
            cfg["called_aet"],
            cfg.get("calling_aet") or "CURATE",
            timeout,
            storage=storage,
        )
    raise ConfigError(f"source must be one of {', '.join(SOURCES)}, not {kind!r}")


__all__ = ["LEVELS", "SOURCES", "PullResult", "ThrottleOptions", "pull", "source_from_config"]

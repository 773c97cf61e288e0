"""The probe of the PACS's response time, timed in a process of its own.

Timed in the pull's own process, a probe's latency includes the wait for the GIL and
the CPU that the pull's workers hold: the throttle then backs off from its own load, not
the PACS's (measured with DIMSE: curate's probe saw 1.8x its baseline where the same
C-ECHO from another process saw 1.26x). So the probe runs in a helper process, started
once and kept for every pull of this process; the pull sends it the source's
description and reads back the seconds the probe took there.
"""

from __future__ import annotations

import threading

from curate.pull.source import TransientError

_lock = threading.Lock()
_helper = None


def _source(spec: tuple):
    kind = spec[0]
    if kind == "dicomweb":
        from curate.pull.credentials import Credentials
        from curate.pull.dicomweb import DicomWebSource

        _, url, auth_kind, secret, ca_bundle, timeout = spec
        return DicomWebSource(url, Credentials(auth_kind, secret), ca_bundle=ca_bundle, timeout=timeout)
    from curate.pull.dimse import DimseSource

    _, host, port, called, calling, timeout = spec
    return DimseSource(host, port, called, calling, timeout)


def _serve() -> None:
    """The helper process: one probe for each source description it reads (a JSON line
    on stdin; the secret travels there, never in its command line), one answer a line."""
    import json
    import sys

    sources: dict[tuple, object] = {}
    for line in sys.stdin:
        spec = tuple(json.loads(line))
        try:
            source = sources.get(spec) or sources.setdefault(spec, _source(spec))
            connection = source.connect()
            try:
                answer = ["ok", connection.echo()]
            finally:
                connection.close()
        except Exception as e:  # noqa: BLE001 - every failure is a failed probe for the pull
            answer = ["failed", type(e).__name__]
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


class _Helper:
    def __init__(self):
        import subprocess
        import sys

        self.process = subprocess.Popen(
            [sys.executable, "-m", "curate.pull.probe"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        self.lock = threading.Lock()

    def alive(self) -> bool:
        return self.process.poll() is None

    def probe(self, spec: tuple, timeout: float) -> float:
        import json
        import select

        with self.lock:
            self.process.stdin.write(json.dumps(list(spec)) + "\n")
            self.process.stdin.flush()
            ready, _, _ = select.select([self.process.stdout], [], [], timeout)
            if not ready:
                self.process.kill()  # its late answer would be read as the next one's
                raise TransientError("the probe had no answer in time")
            line = self.process.stdout.readline()
        if not line:
            raise TransientError("the probe's helper process stopped")
        status, found = json.loads(line)
        if status != "ok":
            raise TransientError(f"the probe failed ({found})")
        return float(found)


def process_probe(spec: tuple, timeout: float = 60.0) -> float:
    """Seconds the probe of the source described by `spec` took, timed in the helper
    process (started at the first call)."""
    global _helper
    with _lock:
        if _helper is None or not _helper.alive():
            _helper = _Helper()
        helper = _helper
    try:
        return helper.probe(spec, timeout + 5)
    except (BrokenPipeError, OSError, ValueError):
        raise TransientError("the probe's helper process stopped") from None


if __name__ == "__main__":
    _serve()

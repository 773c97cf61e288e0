"""Keyed pseudonyms: the same input gives the same output under one key, and nobody
without the key can compute or reverse them (HMAC-SHA256, not a plain hash that anyone
holding the originals could recompute).

The key comes from the environment variable ``CURATE_DEID_KEY`` or from a key file
whose path the configuration names; never from a configuration value, which Hydra
writes to disk with every run.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import os
import stat
from pathlib import Path

from curate.errors import ConfigError, DeidKeyError

KEY_VARIABLE = "CURATE_DEID_KEY"
MIN_KEY_BYTES = 32
#: Decimal digits a configured root must leave for the keyed part (about 100 bits).
MIN_UID_DIGITS = 30
#: The UUID-derived root of PS3.5 B.2: needs no registration.
UUID_ROOT = "2.25"
MAX_UID_LENGTH = 64
#: Dates move back by 1 to this many days, the same for every date of one patient.
MAX_DATE_SHIFT_DAYS = 3650


def load_key(key_file: str | os.PathLike[str] | None = None) -> bytes:
    """The project key: from `key_file` when given, else from ``$CURATE_DEID_KEY``."""
    if key_file:
        path = Path(key_file)
        try:
            mode = path.stat().st_mode
            key = path.read_bytes().strip()
        except OSError as err:
            raise DeidKeyError(f"cannot read the key file {path}: {err.strerror}") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise DeidKeyError(
                f"the key file {path} is open to other users (mode {stat.S_IMODE(mode):04o}): "
                f"whoever reads it can re-identify every patient. Make it yours alone: chmod 600 {path}"
            )
        source = f"key file {path}"
    else:
        value = os.environ.get(KEY_VARIABLE)
        if not value:
            raise DeidKeyError(
                f"no de-identification key: set {KEY_VARIABLE} or name a key file (deid.key_file=PATH). "
                f'Make one with: python -c "import secrets; print(secrets.token_hex(32))"'
            )
        key = value.strip().encode()
        source = KEY_VARIABLE
    if len(key) < MIN_KEY_BYTES:
        raise DeidKeyError(f"the key from {source} is too short: at least {MIN_KEY_BYTES} characters")
    return key


class Pseudonymizer:
    """Keyed replacements for UIDs, patient identifiers and dates."""

    def __init__(self, key: bytes, uid_root: str = UUID_ROOT):
        if len(key) < MIN_KEY_BYTES:
            raise DeidKeyError(f"the key is too short: at least {MIN_KEY_BYTES} characters")
        if not _valid_root(uid_root):
            raise ConfigError(
                f"uid_root {uid_root!r} is not a usable UID root: digits and dots, no leading zeros, at most "
                f"{MAX_UID_LENGTH - 1 - MIN_UID_DIGITS} characters (the rest of the 64 holds the keyed part)"
            )
        self._key = key
        self.uid_root = uid_root

    def _digest(self, purpose: str, value: str) -> bytes:
        # The purpose separates the uses: a UID and a patient ID equal as text map apart.
        return hmac.new(self._key, f"{purpose}\x00{value}".encode(), hashlib.sha256).digest()

    def uid(self, original: str) -> str:
        """A new UID for `original`: under the configured root, at most 64 characters."""
        original = original.strip().rstrip("\x00")
        number = int.from_bytes(self._digest("uid", original)[:16], "big")
        if self.uid_root == UUID_ROOT:
            return f"{UUID_ROOT}.{number}"  # 128 bits: at most 44 characters
        room = MAX_UID_LENGTH - len(self.uid_root) - 1
        digits = str(number)[:room].lstrip("0") or "1"
        return f"{self.uid_root}.{digits}"

    def patient_id(self, original: str, issuer: str = "") -> str:
        """A patient pseudonym (16 characters, fits LO): one per (issuer, PatientID). An
        empty ID stays empty: patients without one must not all become one patient."""
        if not original.strip():
            return ""
        digest = self._digest("patient", f"{issuer.strip()}\x00{original.strip()}")
        return base64.b32encode(digest[:10]).decode("ascii")

    def date_shift(self, patient: str) -> dt.timedelta:
        """How far back this patient's dates move: keyed, 1 to 3650 days, so intervals
        within the patient survive and nobody without the key can undo it."""
        days = 1 + int.from_bytes(self._digest("date", patient.strip())[:4], "big") % MAX_DATE_SHIFT_DAYS
        return dt.timedelta(days=-days)


def _valid_root(root: str) -> bool:
    parts = root.split(".")
    return 0 < len(root) <= MAX_UID_LENGTH - 1 - MIN_UID_DIGITS and all(
        p.isdigit() and (p == "0" or not p.startswith("0")) for p in parts
    )

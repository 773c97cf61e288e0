"""One file through de-identification: the worker task that the tree runner and the
dataset build both use, and where its output goes."""

from __future__ import annotations

from pathlib import Path

from curate.deid.check import file_problem
from curate.deid.engine import Deidentifier, Identity
from curate.deid.profile import Options, Profile
from curate.deid.pseudonym import Pseudonymizer
from curate.files import atomic_path

#: The folder name for a study or series whose UID the source lacks.
UNKNOWN_UID = "unknown"


class _Rejected(Exception):
    """A written header that failed its check: the file is not put in place."""


def pseudonymous_uids(pseudo: Pseudonymizer, row: dict) -> tuple[str, str, str]:
    """(study, series, instance): a file's pseudonymous UIDs, as its output path uses them."""
    study, series = (
        pseudo.uid(str(row[k])) if row.get(k) else UNKNOWN_UID for k in ("StudyInstanceUID", "SeriesInstanceUID")
    )
    return study, series, pseudo.uid(str(row["SOPInstanceUID"]))


def output_path(output: Path, pseudo: Pseudonymizer, row: dict) -> Path:
    """Where a file goes: built from its pseudonymous UIDs only, never from header text."""
    study, series, instance = pseudonymous_uids(pseudo, row)
    return output / study / series / f"{instance}.dcm"


def deidentify_file(source: str, target: str, options: Options, key: bytes, uid_root: str) -> tuple[str, str | None]:
    """One worker task: read, de-identify, write under a temporary name, check, rename.
    Returns ("written", None) or ("failed", the reason)."""
    import logging
    import warnings

    import pydicom

    # Invalid values in the source are the quality report's business, not this log's.
    logging.getLogger("pydicom").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=UserWarning, module="pydicom")

    try:
        ds = pydicom.dcmread(source)
    except Exception as err:  # pydicom raises many kinds on broken files
        return "failed", f"unreadable: {type(err).__name__}"
    try:
        identity = Identity.of(ds)
        profile = Profile(options)
        Deidentifier(profile, Pseudonymizer(key, uid_root)).deidentify(ds, identity)
        with atomic_path(target) as partial:
            ds.save_as(partial, enforce_file_format=True)
            # The header as written must decode under its own character set and must not
            # hold the patient's names, IDs or birth date: else the file is not put in place.
            problem = file_problem(partial, ds, identity, profile)
            if problem:
                raise _Rejected(problem)  # leaving the block by an exception removes the file
    except _Rejected as rejected:
        return "failed", str(rejected)
    except Exception as err:
        return "failed", f"cannot write: {type(err).__name__}"
    return "written", None

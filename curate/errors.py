"""Every error curate raises on purpose: one tree under :class:`CurateError`.

A ``CurateError`` means the request cannot be done as given (a missing path, a bad
option, SQL that does not run, a busy index): the CLI prints its message and exits 2.
Anything else that escapes a stage is a bug and is shown with its traceback.

The base is defined once, in the native module, so that the scanner's own exceptions
belong to the tree without an import cycle. Each error also subclasses the built-in it
stands for (``IndexNotFoundError`` is a ``FileNotFoundError``), so code that caught the
built-in still catches it::

    CurateError
    ├── SelectionError        (ValueError)        native: a column the scanner refuses
    ├── ScanError             (RuntimeError)      native: a scan that cannot start or run
    ├── ConfigError           (ValueError)        an option or spec value that is not allowed
    │   └── TagSpecError                          a tag spec that names no attribute
    ├── SourceNotFoundError   (FileNotFoundError) a source path that does not exist
    ├── IndexNotFoundError    (FileNotFoundError) no index where one was named
    ├── IndexBusyError        (RuntimeError)      another scan is writing that index
    ├── IndexWriteError       (OSError)           the index could not be written (disk full)
    ├── QueryError            (ValueError)        SQL that DuckDB cannot run
    ├── LabelsError           (ValueError)        training labels that do not fit the index
    ├── ModelNotFoundError    (FileNotFoundError) no model where one was named
    ├── DatasetError          (ValueError)        a dataset version that cannot be built or read
    ├── DeidKeyError          (RuntimeError)      no usable de-identification key
    ├── DeidOutputError       (ValueError)        an output folder de-identification may not use
    ├── PacsError             (ConnectionError)   a PACS that cannot be reached, refuses, or denies access
    └── AuditError            (ValueError)        a run log that cannot be written, or a value it may not hold
"""

from __future__ import annotations

from curate._native import CurateError, ScanError, SelectionError


class ConfigError(CurateError, ValueError):
    """An option or spec value that is not allowed (the message says which values are)."""


class TagSpecError(ConfigError):
    """A tag spec that names no attribute, or two specs that give one column name."""


class SourceNotFoundError(CurateError, FileNotFoundError):
    """A source path that does not exist."""


class IndexNotFoundError(CurateError, FileNotFoundError):
    """No index where one was named (run `curate scan` first)."""


class IndexBusyError(CurateError, RuntimeError):
    """Another scan is writing the same index."""


class IndexWriteError(CurateError, OSError):
    """The index could not be written (a full disk, a file size limit); the previous
    index is unchanged and what was parsed is kept for the next scan."""


class QueryError(CurateError, ValueError):
    """The SQL could not run; the message is DuckDB's."""


class LabelsError(CurateError, ValueError):
    """Training labels that cannot be joined to the index, or an index the rules cannot label."""


class ModelNotFoundError(CurateError, FileNotFoundError):
    """No model file (or MLflow model) where one was named."""


class DatasetError(CurateError, ValueError):
    """A dataset version that cannot be built from the index as asked, or read back."""


class DeidKeyError(CurateError, RuntimeError):
    """No usable pseudonymisation key."""


class DeidOutputError(CurateError, ValueError):
    """An output folder (or mapping file) that de-identification must not write to."""


class PacsError(CurateError, ConnectionError):
    """A PACS that cannot be reached, rejects the association, or denies the credentials:
    the pull cannot start (a single instance that fails is a ledger row, not this)."""


class AuditError(CurateError, ValueError):
    """A store's run log that cannot be appended to, or a value it may not hold (it
    holds digests and counts, never a path or a header value)."""


__all__ = [
    "AuditError",
    "ConfigError",
    "CurateError",
    "DatasetError",
    "DeidKeyError",
    "DeidOutputError",
    "IndexBusyError",
    "IndexWriteError",
    "IndexNotFoundError",
    "LabelsError",
    "ModelNotFoundError",
    "PacsError",
    "QueryError",
    "ScanError",
    "SelectionError",
    "SourceNotFoundError",
    "TagSpecError",
]

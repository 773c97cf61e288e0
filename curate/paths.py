"""Where curate finds its own files, and keeps the ones that belong to no project."""

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def conf_dir() -> Path:
    """The Hydra config folder: `curate/conf` (a wheel carries it; `conf/` at the
    repository root points there)."""
    return PACKAGE_DIR / "conf"


def data_dir() -> Path:
    """curate's own folder for what outlives a run but belongs to no project folder
    (MLflow artifacts): ``$CURATE_HOME``, else ``$XDG_DATA_HOME/curate``, else
    ``~/.local/share/curate``. Never under the working folder, whose path may name a
    patient."""
    if home := os.environ.get("CURATE_HOME"):
        return Path(home)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "curate"

"""Where curate finds its own files."""

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def conf_dir() -> Path:
    """The Hydra config folder: `curate/conf` (a wheel carries it; `conf/` at the
    repository root points there)."""
    return PACKAGE_DIR / "conf"

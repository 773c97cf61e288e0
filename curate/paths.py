"""Where curate finds its own files."""

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def conf_dir() -> Path:
    """The Hydra config folder (`conf/` at the repository root, shipped as `curate/conf`)."""
    return PACKAGE_DIR / "conf"

#!/usr/bin/env bash
# Set up a development environment in .venv: Python dependencies and the native module
# (an editable install, built in release mode by maturin). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
# CURATE_EXTRAS adds optional parts, e.g. CURATE_EXTRAS=torch (several GB).
python -m pip install --quiet -e ".[dev${CURATE_EXTRAS:+,$CURATE_EXTRAS}]"
python -c "import curate; print(f'curate {curate.__version__} ready in .venv')"

#!/usr/bin/env bash
# Run every test: the Rust crates' tests, then pytest against the installed package.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
cargo test --workspace --quiet
python -m pytest -q "$@"

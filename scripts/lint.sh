#!/usr/bin/env bash
# Lint and format checks: ruff (rules in pyproject.toml) and ruff format for Python,
# rustfmt and clippy (warnings are errors) for the Rust workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/ruff ] || bash scripts/setup.sh
. .venv/bin/activate
ruff check .
ruff format --check .
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "lint: clean"

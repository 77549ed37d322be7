#!/usr/bin/env bash
# Set up, then run the whole test suite (slow full-dataset tests included; SNNCC_FAST=1 skips them).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
marks=()
if [ -n "${SNNCC_FAST:-}" ]; then marks=(-m "not slow"); fi
exec .venv/bin/python -m pytest -n "${SNNCC_TEST_WORKERS:-2}" --dist worksteal "${marks[@]}" "$@"

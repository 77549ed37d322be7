#!/usr/bin/env bash
# Set up snncc in ./.venv (Python 3.10, with the lava, netx and dev extras) and Icarus Verilog.
# Idempotent: a second run only checks. Python 3.10 is required by lava-nc 0.10.
set -euo pipefail
cd "$(dirname "$0")/.."

is_py310() { "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' >/dev/null 2>&1; }

find_python() {
  local candidate version
  for candidate in "${SNNCC_PYTHON:-}" python3.10; do
    if [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1 && is_py310 "$candidate"; then
      command -v "$candidate"; return 0
    fi
  done
  if command -v pyenv >/dev/null 2>&1; then
    version=$(pyenv versions --bare 2>/dev/null | grep -E '^3\.10(\.[0-9]+)?$' | tail -n 1 || true)
    candidate="$(pyenv root)/versions/${version}/bin/python3.10"
    if [ -n "$version" ] && is_py310 "$candidate"; then echo "$candidate"; return 0; fi
  fi
  if command -v uv >/dev/null 2>&1; then
    candidate=$(uv python find 3.10 2>/dev/null || true)
    if [ -z "$candidate" ]; then
      echo "snncc setup: installing Python 3.10 with uv" >&2
      uv python install 3.10 >&2 && candidate=$(uv python find 3.10 2>/dev/null || true)
    fi
    if [ -n "$candidate" ] && is_py310 "$candidate"; then echo "$candidate"; return 0; fi
  fi
  return 1
}

if [ ! -x .venv/bin/python ] || ! is_py310 .venv/bin/python; then
  if ! python=$(find_python); then
    echo "snncc setup: Python 3.10 not found (lava-nc 0.10 needs >=3.10,<3.11)." >&2
    echo "  Install it with 'uv python install 3.10' (https://docs.astral.sh/uv/) or pyenv, or" >&2
    echo "  point SNNCC_PYTHON at a python3.10 executable, then run this again." >&2
    exit 2
  fi
  rm -rf .venv
  "$python" -m venv .venv
fi

stamp=.venv/.snncc-installed
want=$(cat pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[lava,netx,dev]"
  echo "$want" > "$stamp"
fi

if ! command -v iverilog >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "snncc setup: installing Icarus Verilog (apt-get install iverilog)" >&2
    (apt-get update -qq && apt-get install -y -qq iverilog) >/dev/null 2>&1 \
      || echo "snncc setup: could not install iverilog; HDL tests will be skipped" >&2
  elif command -v sudo >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    (sudo apt-get update -qq && sudo apt-get install -y -qq iverilog) >/dev/null 2>&1 \
      || echo "snncc setup: could not install iverilog; HDL tests will be skipped" >&2
  else
    echo "snncc setup: iverilog not found; install Icarus Verilog for the HDL tests" >&2
  fi
fi
echo "snncc setup: ready ($(.venv/bin/python --version), $(.venv/bin/snncc --version))" >&2

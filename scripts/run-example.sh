#!/usr/bin/env bash
# Set up, then compile and validate the bundled example (an MLP trained on scikit-learn digits).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p out
.venv/bin/snncc inspect examples/digits_mlp.onnx
.venv/bin/snncc compile examples/digits_mlp.onnx --target sim --timesteps 16 -o out/digits_mlp
.venv/bin/snncc compile examples/digits_mlp.onnx --target lava --timesteps 16 -o out/digits_mlp_lava
.venv/bin/snncc validate examples/digits_mlp.onnx --timesteps 16 \
  --min-accuracy 0.85 --json out/digits_mlp/report.json

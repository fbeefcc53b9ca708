#!/usr/bin/env bash
# Create ./.venv (once) and install cedar-hf in it with every extra (and the test tools with --test).
# Sourced by scripts/demo.sh and scripts/test.sh; safe to rerun (pip skips what is installed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
extras="all"
[ "${1:-}" = "--test" ] && extras="all,test"
torch_pins=()
# On Linux x86_64 these two are the releases known to work together here (CPU or CUDA, never newer needed).
if [ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ]; then torch_pins=("torch==2.14.1" "torchvision==0.29.1"); fi
.venv/bin/python -m pip install -q "${torch_pins[@]}" -e ".[${extras}]"

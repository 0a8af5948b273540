#!/usr/bin/env bash
# GPU check for evo's model building (issue 4): every shipped grammar's sample networks build on
# CUDA, match the CPU in float32 and in bf16 autocast + channels_last, and train; prints images/s
# per network. Needs only PyTorch (2.4+) and numpy; runs from the source tree. Under 4 minutes on
# one GPU. Extra arguments go to gpu_check.py (e.g. --per-grammar 5, --device cuda:1).
# Exit status: 0 passed, 1 a check failed, 2 no CUDA device.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PYTHONPATH=".${PYTHONPATH:+:${PYTHONPATH}}"
exec "${PYTHON:-python3}" benchmarks/gpu_check.py "$@"

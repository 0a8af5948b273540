#!/usr/bin/env bash
# The GPU check of evo, in three sections, under 4 minutes on one GPU; needs only PyTorch (2.4+)
# and numpy (plus pytest for the first section, which is reported "not run" without it) and runs
# from the source tree:
#   1. the gpu-marked tests (tests/test_gpu.py: bf16 autocast, channels_last, data resident on
#      the GPU, fused optimizers, no host-device sync per training step);
#   2. benchmarks/gpu_check.py: every shipped grammar's sample networks and a MobileNetV2 build
#      on CUDA, match the CPU in float32 and in bf16 autocast + channels_last, and train one
#      epoch with evo's trainer (issues 4 and 5); images/s per network;
#   3. benchmarks/gpu_workers.py: K = 1, 2, 4, 8 candidates trained at once on the one GPU by
#      evo's worker pool on a CIFAR-10 uint8 subset: candidates per hour, images/s per candidate
#      and GPU utilisation (nvidia-smi). The subset is build/gpu_check/cifar10-subset.npz (made by
#      benchmarks/make_cifar_subset.py from ../shared/datasets/cifar10-jpeg.zip, here or wherever
#      that zip is; carry it to a GPU machine that lacks the zip).
# Usage: benchmarks/gpu_check.sh [--cpu] [--device cuda:N] [--data NPZ]
#   --cpu   a miniature of all three on the CPU (the tests skip, one small network, K = 1 and 2
#           on two tiny candidates): a test of this script, whose timings mean nothing.
# Exit status: 0 every section passed, 1 a section failed, 2 no CUDA device (without --cpu), no
# PyTorch for $PYTHON (default python3), or a bad argument.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PYTHONPATH=".${PYTHONPATH:+:${PYTHONPATH}}"
export PYTHONUNBUFFERED=1
PY="${PYTHON:-python3}"

cpu=0
device=""
data=""
usage="use --cpu, --device cuda:N, --data NPZ"
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu | --dry-run) cpu=1 ;;
    --device | --data)
      if [ $# -lt 2 ]; then echo "gpu_check: $1 needs a value ($usage)" >&2; exit 2; fi
      if [ "$1" = --device ]; then device="$2"; else data="$2"; fi
      shift ;;
    *) echo "gpu_check: unknown argument '$1' ($usage)" >&2; exit 2 ;;
  esac
  shift
done

"$PY" - "$cpu" <<'EOF' || exit 2
import sys
try:
    import torch
except ImportError:
    sys.exit(f"gpu_check: {sys.executable} cannot import PyTorch (set PYTHON to a Python "
             "that has it, e.g. PYTHON=.venv/bin/python)")
if sys.argv[1] == "0" and not torch.cuda.is_available():
    print(f"gpu_check: no CUDA device: PyTorch {torch.__version__} (built for CUDA "
          f"{torch.version.cuda}) sees none, so nothing was checked (--cpu runs a miniature "
          "on the CPU)", file=sys.stderr)
    sys.exit(2)
EOF
if [ "$cpu" = 0 ]; then
  device="${device:-cuda:0}"
  data="${data:-build/gpu_check/cifar10-subset.npz}"
  zip="../shared/datasets/cifar10-jpeg.zip"
  if [ ! -f "$data" ] && [ -f "$zip" ]; then
    "$PY" benchmarks/make_cifar_subset.py --zip "$zip" --out "$data" || exit 2
  fi
else
  device="${device:-cpu}"
fi

summary=()
failed=0
section() {  # section NAME COMMAND...: run it, time it, remember how it ended
  local name="$1" started rc
  shift
  echo
  echo "=== $name"
  started=$(date +%s)
  "$@"
  rc=$?
  local line
  line="$(printf '%-34s %s (%d s)' "$name" "$([ $rc = 0 ] && echo passed || echo "FAILED (exit $rc)")" \
    $(( $(date +%s) - started )))"
  summary+=("$line")
  [ $rc = 0 ] || failed=1
}

if "$PY" -c "import pytest" 2>/dev/null; then
  section "1. GPU tests (pytest -m gpu)" "$PY" -m pytest -q -p no:cacheprovider --noconftest \
    -m gpu tests/test_gpu.py
else
  echo "=== 1. GPU tests: NOT RUN: pytest is not installed for $PY"
  summary+=("$(printf '%-34s %s' "1. GPU tests (pytest -m gpu)" "not run (no pytest)")")
fi

if [ "$cpu" = 1 ]; then
  section "2. model checks (gpu_check.py)" "$PY" benchmarks/gpu_check.py --device "$device" \
    --only "conv(8, s=2) bn relu ir(8, e=2, s=2, se=on) gap" --batch 4 --iters 1 --repeats 1 \
    --train-epochs 0
  section "3. K per GPU (gpu_workers.py)" "$PY" benchmarks/gpu_workers.py --cpu \
    --device "$device" ${data:+--data "$data"}
else
  section "2. model checks (gpu_check.py)" "$PY" benchmarks/gpu_check.py --device "$device" \
    --train-epochs 1
  section "3. K per GPU (gpu_workers.py)" "$PY" benchmarks/gpu_workers.py --device "$device" \
    --data "$data"
fi

echo
echo "=== summary"
printf '%s\n' "${summary[@]}"
exit "$failed"

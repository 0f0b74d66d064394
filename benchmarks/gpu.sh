#!/usr/bin/env bash
# The benchmark set on a GPU: ratios (ours vs the forward-pass floor, vs peers) and absolute throughputs.
# Usage: benchmarks/gpu.sh   (from the repository root; extra arguments go to pytest)
# On a machine without CUDA it prints one line and exits 0, so CI can call it anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
if ! "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "benchmarks/gpu.sh: no CUDA device (torch.cuda.is_available() is False): skipped"
    exit 0
fi
"$PYTHON" -c "import torch; print('device:', torch.cuda.get_device_name(0), '| torch', torch.__version__)"
# test_road_floor.py runs on CUDA when it is available (its ratios then compare the batched conjugate
# gradients on the GPU with the floor there); the other benchmarks time the CPU paths they were written for.
exec "$PYTHON" -m pytest benchmarks --benchmark-disable-gc -p no:cacheprovider -q -s "$@"

#!/usr/bin/env bash
# The benchmark set on one GPU, in under 8 minutes, ending with one table of ratios measured in this run:
#   the perturbation metrics vs the forward-pass floor (at the batch the engine picks by throughput),
#   deletion vs Quantus PixelFlipping at user batch 4 and 32 (equal work asserted),
#   incremental occlusion vs captum's Occlusion at 224 px (the whole map, ResNet-18 and VGG-16),
#   ROAD and its batched conjugate gradients vs the floor,
#   `xaibench run --suite medical --device cuda` vs the CPU leaderboard (leaderboards/medical.json).
# Usage: benchmarks/gpu.sh   (from anywhere; extra arguments go to pytest)
# On a machine without CUDA it prints one line and exits 0, so CI can call it anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
if ! "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "benchmarks/gpu.sh: no CUDA device (torch.cuda.is_available() is False): skipped"
    exit 0
fi
"$PYTHON" -c "import torch; print('device:', torch.cuda.get_device_name(0), '| torch', torch.__version__)"
export XAIBENCH_BENCH_DEVICE=cuda
# -k "not 64": occlusion at 224 px only (its 64 px cases are the CPU's)
exec timeout "${GPU_BENCH_SECONDS:-470}" "$PYTHON" -m pytest \
    benchmarks/test_perturbation_floor.py benchmarks/test_vs_quantus.py benchmarks/test_occlusion_incremental.py \
    benchmarks/test_road_floor.py benchmarks/test_device_boards.py \
    -k "not 64" --benchmark-disable-gc -p no:cacheprovider -q -s "$@"

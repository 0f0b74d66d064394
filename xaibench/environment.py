"""What, beyond the suite, a board's numbers depend on: library versions, CPU kernels, training threads.

Recorded in a run's header (:meth:`xaibench.runner.Runner.header`) and printed in the board's
provenance table. The trainer runs on ``TrainRecipe.threads`` threads (1 by default), so the
weights do not depend on the machine's thread count; nor does scoring, whose forward batch is fixed on a
CPU (:func:`xaibench.throughput.engine_batch_size`; ``tests/test_reproducible_boards.py``,
``benchmarks/test_reproducible_medical.py``).
"""
from __future__ import annotations

from collections.abc import Mapping
from importlib import metadata

#: The board's provenance row "could still change it": what, besides the suite and the rows above it,
#: the numbers depend on, and what they do not.
REPRODUCIBILITY = ("another CPU instruction set or other library versions than the above (their kernels round "
                   "differently: the medical suite's model trained on AVX2 kernels is not the one trained on "
                   "AVX-512), a GPU, a model trained with `train.threads: 0` (on the machine's thread count), and "
                   "`--batch-size` (the forward-pass batch: 16 images on a CPU unless given; a batch of another "
                   "size rounds some outputs otherwise, in the last digits of some scores); not the thread count "
                   "or the machine's load: 1 and 2 threads write the same medical board")

#: Distributions besides torch whose versions can change a score: array maths and kernels (numpy, numba,
#: scipy), the peer libraries the built-in methods call (captum, pytorch-grad-cam, zennit) and cvxopt, the
#: optional extra (GPL-3) whose presence decides ROAD's solver on images above 96^2 pixels and small volumes
#: (CHOLMOD, else SuperLU: ``xaibench_metrics.road.default_solver``); absent from the header where not installed.
LIBRARIES = ("numpy", "numba", "scipy", "captum", "grad-cam", "zennit", "cvxopt")


def library_versions() -> dict[str, str]:
    """``{distribution: version}`` of :data:`LIBRARIES` that are installed (a missing one is left out)."""
    found = {}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def cpu_kernels() -> str:
    """The instruction set torch's CPU kernels run with (``torch.backends.cpu.get_cpu_capability()``: "AVX512",
    "AVX2", "DEFAULT"...): another one rounds the same operations differently, so it can train other weights."""
    import torch

    return str(torch.backends.cpu.get_cpu_capability())


def training_threads(threads: Mapping[str, int]) -> dict[str, int]:
    """``{model: torch threads its training ran on}`` from ``{model: TrainRecipe.threads}``: 0 (the count set
    for torch) is resolved to this process's count, as that count then shaped the weights."""
    import torch

    return {model: n or torch.get_num_threads() for model, n in threads.items()}

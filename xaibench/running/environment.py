"""What, beyond the suite, a board's numbers depend on: library versions, CPU kernels, training threads.

Recorded in a run's header (:meth:`xaibench.running.runner.Runner.header`) and printed in the board's
provenance table. The trainer runs on ``TrainRecipe.threads`` threads (1 by default), so the
weights do not depend on the machine's thread count; nor does scoring, whose forward batch is fixed on a
CPU (:func:`xaibench.scoring.throughput.engine_batch_size`; ``tests/test_reproducible_boards.py``,
``benchmarks/test_reproducible_medical.py``).
"""
from __future__ import annotations

import platform
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path

#: The board's provenance row "could still change it": what, besides the suite and the rows above it,
#: the numbers depend on, and what they do not.
REPRODUCIBILITY = ("another processor or other library versions than the above (their kernels round differently: "
                   "oneDNN and MKL choose theirs by the instruction set, its extensions and the processor, so two "
                   "AVX-512 machines can train other weights), a GPU, a model trained with `train.threads: 0` (on the "
                   "machine's thread count), and `--batch-size` (the forward-pass batch: 16 images on a CPU unless "
                   "given; a batch of another size rounds some outputs otherwise, in the last digits of some scores); "
                   "not the thread count or the machine's load: 1 and 2 threads write the same medical board")

#: Instruction-set extensions beyond torch's capability level that oneDNN and MKL dispatch on (``/proc/cpuinfo``
#: flag names): their presence changes which kernel runs, and so the rounding.
EXTENSIONS = ("amx_tile", "amx_bf16", "avx512_fp16", "avx512_bf16", "avx512_vnni", "avx_vnni")
CPUINFO = Path("/proc/cpuinfo")

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


def cpu_kernels(info: Mapping[str, str] | None = None) -> str:
    """The CPU kernels a board's numbers were computed with: torch's instruction set
    (``torch.backends.cpu.get_cpu_capability()``: "AVX512", "AVX2", "DEFAULT"...), the :data:`EXTENSIONS` the
    processor has, and the :func:`processor` (``info``: :func:`cpuinfo` of this machine unless given), e.g.
    ``"AVX512 (amx_tile, avx512_bf16) on GenuineIntel family 6 model 167 stepping 1, 491520 KB cache"``. The
    instruction set alone does not pin the rounding: on two AVX-512 virtual machines with one library stack the
    ``quick`` suite's small CNN trained to test accuracy 0.667 and 0.700 (2026-12-07). The CI's board comparison
    (``.ci/run``) treats another value as another machine."""
    import torch

    info = cpuinfo() if info is None else info
    extensions = [e for e in EXTENSIONS if e in info.get("flags", "").split()]
    listed = f" ({', '.join(extensions)})" if extensions else ""
    return f"{torch.backends.cpu.get_cpu_capability()}{listed} on {processor(info)}"


def cpuinfo(path: Path = CPUINFO) -> dict[str, str]:
    """The first processor's fields of Linux's ``/proc/cpuinfo`` (``{"vendor_id": "GenuineIntel", ...}``); empty
    where the file does not exist (macOS, Windows)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())  # the first processor's value
    return fields


def processor(info: Mapping[str, str]) -> str:
    """The processor of :func:`cpuinfo`'s ``info``: its vendor, family, model, stepping and cache size; without
    them (not Linux) :func:`platform.processor` or :func:`platform.machine`."""
    if "vendor_id" not in info:
        return platform.processor() or platform.machine() or "unknown processor"
    parts = [info["vendor_id"]] + [f"{name} {info[key]}" for key, name in
                                   (("cpu family", "family"), ("model", "model"), ("stepping", "stepping"))
                                   if key in info]
    return " ".join(parts) + (f", {info['cache size']} cache" if "cache size" in info else "")


def training_threads(threads: Mapping[str, int]) -> dict[str, int]:
    """``{model: torch threads its training ran on}`` from ``{model: TrainRecipe.threads}``: 0 (the count set
    for torch) is resolved to this process's count, as that count then shaped the weights."""
    import torch

    return {model: n or torch.get_num_threads() for model, n in threads.items()}

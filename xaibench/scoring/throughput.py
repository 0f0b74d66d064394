"""The engine's batch size: fixed on a CPU (the same numbers on every machine), chosen by measured throughput on CUDA.

:func:`engine_batch_size` is the rule the runner and the Python API share. On a CPU it is
:data:`CPU_BATCH` images, fewer where the memory bound holds fewer: a batch's size changes the
last bits of some kernels' rounding (a batch of one image rounds otherwise than a full one; on two
threads, ResNet-18's backward pass at odd sizes too), so a size picked by timing, which differs
between machines, thread counts and loads (8 images on one thread and 4 on two on the loaded
development machine), gave the medical board other last digits on each. On CUDA the board depends on
the card anyway, and the batch is chosen by timing.

A memory budget alone picks batches that are too large on a CPU: on the project's 2-core
machine, ResNet-18 at 64 px passes 1,024 images in 2.7 s at batch 32 and 3.0-3.7 s at the
256 images that fit 1 GiB of activations (the caches spill). :func:`fastest_batch_size`
times a few powers of two up to the memory bound (:func:`xaibench.scoring.engine.auto_batch_size`,
still the upper limit), and picks the one with the least time per image. The
calibration is short (a budget of :data:`CALIBRATION_SECONDS`; it stops once the
per-image time rises past the best) and cached under ``$XAIBENCH_HOME/throughput`` by
everything the throughput depends on: the model's architecture (its module tree and
parameter shapes, not its weights), the input shape, the device (and its name), the
parameter dtype, autocast, the torch thread count and the torch version.

Batch size changes no definition: in evaluation mode every output depends on its own input
only, so the batch changes the wall time and, at most, the last bits of float rounding in
batched kernels (scores are stored rounded far above that).
"""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from xaibench.storage.cache import content_key, save_json
from xaibench.scoring.engine import Engine, auto_batch_size

#: The engine's batch on a CPU when no ``--batch-size`` is given (memory permitting). Timed on the 2-core
#: development machine (load 3.4, one thread, seconds per image relative to the fastest size): the small CNN at
#: 64 px 1.14 at 4, 1.00 at 8, 1.14 at 16, 1.79 at 32, 1.53 at 64; ResNet-18 at 64 px 2.07, 1.49, 1.00, 1.26, 1.99.
CPU_BATCH = 16

#: The smallest batch size tried.
MIN_CANDIDATE = 4
#: Images each timed stream holds at least (a small batch is timed over several batches, like a real stream).
#: Longer streams make a small CNN's choice steadier but leave a large model's big sizes outside the time budget:
#: ResNet-18 at 64 px was then calibrated on sizes 4 to 16 only, 2.7x slower per image than at 128.
MIN_IMAGES = 32
#: Seconds the calibration may spend on forward passes, about: the largest sizes are dropped to fit it.
CALIBRATION_SECONDS = 4.0
#: Part of every cache key: a calibration measured by an earlier rule (one image repeated) is measured again.
CALIBRATION_VERSION = 2
#: Timed rounds; each round times every size once, in turn, so a change of load on a shared machine falls
#: on all sizes; the fastest round of each size counts.
ROUNDS = 3
#: A batch within this fraction of the best per-image time counts as equally fast; the smallest such wins
#: (a smaller batch leaves less of a stream's last batch empty and uses less memory).
TIE = 0.03


def device_name(device: torch.device) -> str:
    """The device a throughput holds for: the CUDA card's name, or the CPU's architecture and core count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type} {platform.machine()} {platform.processor()} {os.cpu_count()} cores"


def calibration_key(model: nn.Module, sample: torch.Tensor, device: torch.device, autocast: bool,
                    budget_bytes: int | None) -> str:
    """Content key of a calibration: architecture (module tree, parameter shapes and dtypes), input shape,
    device name, autocast, thread count, torch version and the memory budget."""
    params = [[n, list(p.shape), str(p.dtype)] for n, p in model.named_parameters()]
    return content_key("throughput", CALIBRATION_VERSION, repr(model), params, list(sample.shape[1:]), str(sample.dtype),
                       device_name(device), bool(autocast and device.type == "cuda"), torch.get_num_threads(),
                       torch.__version__, budget_bytes)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def distinct_inputs(sample: torch.Tensor, n: int) -> torch.Tensor:
    """``n`` distinct inputs shaped like ``sample``'s ``(C, *spatial)``, uniform in its value range, seeded: what a
    timing streams (one image repeated passes faster than real data: ReLU and max pooling branch the same way on
    every copy, 15-25% on a small CNN on a CPU)."""
    lo, hi = float(sample.min()), float(sample.max())
    dtype = sample.dtype if sample.is_floating_point() else torch.float32
    return lo + (hi - lo) * torch.rand((n, *sample.shape[1:]), generator=torch.Generator().manual_seed(0), dtype=dtype)


def measure_throughput(model: nn.Module, sample: torch.Tensor, device: torch.device | str, cap: int,
                       autocast: bool = False, budget_seconds: float = CALIBRATION_SECONDS) -> dict[int, float]:
    """Seconds per image of the engine's forward passes at powers of two from :data:`MIN_CANDIDATE` to ``cap``.

    ``sample`` is one input ``(1, C, *spatial)``: the stream holds distinct uniform random inputs of its shape,
    dtype and value range (seeded). A size ``b`` is timed on a stream of ``max(b, MIN_IMAGES)`` images in batches
    of ``b``, in :data:`ROUNDS` rounds that each time every size
    once; the fastest round counts. The sizes are those whose rounds fit ``budget_seconds`` at the
    per-image cost measured at the smallest size after a warm-up (at least that size).
    Returns ``{batch size: seconds per image}``.
    """
    device = torch.device(device)
    stream = distinct_inputs(sample, max(cap, MIN_IMAGES)).to(device)

    def seconds(size: int) -> float:
        engine = Engine(model, device, size, autocast=autocast)
        start = time.perf_counter()
        engine.logits(stream[: max(size, MIN_IMAGES)])
        _synchronize(device)
        return time.perf_counter() - start

    smallest = min(MIN_CANDIDATE, cap)
    seconds(smallest)  # the model's first pass: lazy initialisation, allocator growth
    cost = seconds(smallest) / max(smallest, MIN_IMAGES)
    sizes = [smallest]
    while sizes[-1] * 2 <= cap and cost * sum(max(b, MIN_IMAGES) for b in sizes + [sizes[-1] * 2]) * (
            ROUNDS) <= budget_seconds:
        sizes.append(sizes[-1] * 2)
    best = {b: float("inf") for b in sizes}
    for _ in range(ROUNDS):
        for b in sizes:
            best[b] = min(best[b], seconds(b) / max(b, MIN_IMAGES))
    return best


def pick(per_image: dict[int, float]) -> int:
    """The smallest batch size whose per-image time is within :data:`TIE` of the fastest."""
    best = min(per_image.values())
    return min(size for size, t in per_image.items() if t <= best * (1 + TIE))


def fastest_batch_size(model: nn.Module, sample: torch.Tensor, device: torch.device | str,
                       home: Path | None = None, autocast: bool = False, budget_bytes: int | None = None) -> int:
    """The engine batch size with the most images per second for ``model`` on ``device`` (a power of two).

    ``sample`` is one input ``(1, C, *spatial)``. The memory budget (:func:`~xaibench.scoring.engine.auto_batch_size`,
    ``budget_bytes`` or the device default) bounds the sizes tried. With ``home``, the measurement is read
    from and written to ``home/throughput/<key>.json`` (:func:`calibration_key`), so each model, input shape
    and device is calibrated once; without it, it is measured every call. A user's ``--batch-size`` wins
    over this choice (the caller's rule).
    """
    device = torch.device(device)
    path = None if home is None else (Path(home) / "throughput"
                                      / f"{calibration_key(model, sample, device, autocast, budget_bytes)}.json")
    if path is not None and path.is_file():
        return int(json.loads(path.read_text())["batch_size"])
    cap = auto_batch_size(model, sample, device, budget_bytes)
    per_image = measure_throughput(model, sample, device, cap, autocast)
    size = pick(per_image)
    if path is not None:
        record: dict[str, Any] = {"batch_size": size, "memory_bound": cap, "device": device_name(device),
                                  "threads": torch.get_num_threads(),
                                  "seconds_per_image": {str(k): v for k, v in per_image.items()}}
        save_json(record, path)
    return size


def engine_batch_size(model: nn.Module, sample: torch.Tensor, device: torch.device | str,
                      home: Path | None = None, autocast: bool = False) -> int:
    """The engine's batch when the user gives none: the runner's and the Python API's one rule.

    On a CPU: :data:`CPU_BATCH`, or the memory bound (:func:`~xaibench.scoring.engine.auto_batch_size`) where that is
    smaller: the same on every CPU, thread count and load, so a board's numbers do not depend on a timing. On
    CUDA: :func:`fastest_batch_size` (timed once per model, input shape and card, cached under ``home``).
    ``sample`` is one input ``(1, C, *spatial)``.
    """
    device = torch.device(device)
    if device.type == "cpu":
        return min(CPU_BATCH, auto_batch_size(model, sample, device))
    return fastest_batch_size(model, sample, device, home, autocast)

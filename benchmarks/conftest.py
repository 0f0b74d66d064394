"""Shared set-up for the benchmarks: the ResNet-18 case of the issue and a ratio report.

Absolute times on shared machines vary, so every benchmark reports a *ratio*
measured in the same run (ours vs. the forward-pass floor, ours vs. a peer), and
the session ends with a table of them. Run with::

    python -m pytest benchmarks --benchmark-disable-gc -p no:cacheprovider
"""
from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
import torchvision

from xaibench.scoring.throughput import distinct_inputs, fastest_batch_size

# The numpy references of the kernels (tests/oracles.py) are shared with the tests; appended, not
# prepended, so that ``conftest`` here stays this file.
sys.path.append(str(Path(__file__).resolve().parents[1] / "tests"))

RATIOS: list[tuple[str, str, float, str]] = []
#: The device the device-aware benchmarks run on (``benchmarks/gpu.sh`` sets ``cuda``).
BENCH_DEVICE = os.environ.get("XAIBENCH_BENCH_DEVICE", "cpu")


def best_batch(model: torch.nn.Module, x: torch.Tensor, device: str = "cpu") -> int:
    """The engine batch size the runner would pick for ``model`` on inputs shaped like ``x``
    (:func:`xaibench.scoring.throughput.fastest_batch_size`, measured now, not cached): every floor is timed at it."""
    return fastest_batch_size(model, x[:1], device)


#: The batch sizes the floor is timed at, and the images each timed stream holds at least.
FLOOR_SIZES, FLOOR_IMAGES = (4, 8, 16, 32, 64, 128), 256


def floor_per_image(model: torch.nn.Module, x: torch.Tensor, device: str = "cpu", backward: bool = False,
                    sizes: tuple[int, ...] = FLOOR_SIZES, images: int = FLOOR_IMAGES, rounds: int = 5
                    ) -> tuple[float, int]:
    """The forward-pass floor: the least seconds per image of ``model`` on distinct random inputs shaped like ``x``
    (uniform in its value range) over the batch sizes ``sizes``, and that size. Each size streams at least ``images`` images, in ``rounds``
    rounds that time every size in turn (a change of load falls on all of them); the median round counts (the
    timed cells are single runs too: a floor from the luckiest of many rounds would inflate every ratio on a
    machine whose speed drifts by 30% from minute to minute, as this 2-core VM's does). With
    ``backward``, a forward + backward pass of the summed first logit (a gradient method's pass). Independent of
    the engine's calibration, which it judges: an engine batch slower than this floor shows as a ratio above 1."""
    # distinct inputs in x's value range, as the calibration times: one image repeated would flatter the floor
    stream = distinct_inputs(x, max(max(sizes), images)).to(device)

    def seconds(size: int) -> float:
        start = time.perf_counter()
        for s in range(0, max(size, images), size):
            batch = stream[s : s + size]
            if backward:
                batch = batch.clone().requires_grad_(True)
                model(batch)[:, 0].sum().backward()
            else:
                with torch.inference_mode():
                    model(batch)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return (time.perf_counter() - start) / max(size, images)

    seconds(sizes[0])  # warm-up
    timed: dict[int, list[float]] = {b: [] for b in sizes}
    for _ in range(rounds):
        for b in sizes:
            timed[b].append(seconds(b))
    typical = {b: statistics.median(t) for b, t in timed.items()}
    size = min(typical, key=typical.get)
    return typical[size], size


def report(name: str, what: str, value: float, target: str) -> None:
    """Record one measured ratio for the end-of-session table."""
    RATIOS.append((name, what, value, target))


def _times(fn: Callable[[], object], rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def median_time(fn: Callable[[], object], rounds: int) -> float:
    return statistics.median(_times(fn, rounds))


def interleaved_ratio(benchmark, ours: Callable[[], object], theirs: Callable[[], object],  # type: ignore[no-untyped-def]
                      rounds: int) -> float:
    """Median time of ``theirs`` over median time of ``ours``, the two timed in alternation.

    Each of pytest-benchmark's rounds of ``ours`` is preceded by one timed run of
    ``theirs`` (its untimed ``setup``), so a change of load on a shared machine during the
    measurement falls on both sides instead of on whichever side ran second.
    """
    peer: list[float] = []
    benchmark.pedantic(ours, setup=lambda: peer.extend(_times(theirs, 1)), rounds=rounds, iterations=1)
    return statistics.median(peer) / benchmark.stats.stats.median


def best_time(fn: Callable[[], object], rounds: int) -> float:
    """The fastest round: for ratios of two near-equal times, the least disturbed measurement of each."""
    return min(_times(fn, rounds))


class CountingModel(torch.nn.Module):
    """Wraps a model and counts the images its forward passes see: the work both sides of a comparison do."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.images = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.images += int(x.shape[0])
        return self.model(x)

    def count(self, fn: Callable[[], object]) -> int:
        """The images ``fn()`` passes through the model."""
        before = self.images
        fn()
        return self.images - before


#: Images every :func:`xaibench.score` and :func:`xaibench.explain` call passes besides its method's or metric's: the
#: output-contract check (``xaibench.contract.outputs.conform``, two zero inputs) made twice, by
#: ``xaibench.api.segmented``'s classifier-or-segmenter test and by the call itself, and the one-sample memory probe of
#: the engine batch (``xaibench.scoring.engine.activation_bytes_per_sample``).
API_PASSES = 2 + 2 + 1


class PassCounter:
    """Images through any network of class ``cls`` in eval mode while ``on``: ``forward`` all of them,
    ``backward`` those passed with gradients enabled. Register it with
    ``torch.nn.modules.module.register_module_forward_pre_hook``."""

    def __init__(self, cls: type) -> None:
        self.cls, self.on, self.forward, self.backward = cls, False, 0, 0

    def __call__(self, module: torch.nn.Module, args: tuple[Any, ...]) -> None:
        if self.on and isinstance(module, self.cls) and not module.training:
            self.forward += int(args[0].shape[0])
            self.backward += int(args[0].shape[0]) if torch.is_grad_enabled() else 0


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    if not RATIOS:
        return
    from tabulate import tabulate

    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    terminalreporter.write_sep("=", f"xaibench ratios (measured in this run; load average {load})")
    terminalreporter.write_line(tabulate([[n, w, f"{v:.3g}", t] for n, w, v, t in RATIOS],
                                         headers=["benchmark", "ratio", "value", "target"], tablefmt="github"))


@pytest.fixture(scope="session")
def resnet_case() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor, torch.Tensor]:
    """ResNet-18 (random weights, eval), 32 inputs of 3x64x64, their predicted classes, random maps."""
    torch.manual_seed(0)
    torch.set_num_threads(torch.get_num_threads())
    model = torchvision.models.resnet18(weights=None, num_classes=10).eval()
    x = torch.rand(32, 3, 64, 64)
    with torch.inference_mode():
        target = model(x).argmax(1)
    saliency = torch.rand(32, 64, 64)
    return model, x, target, saliency

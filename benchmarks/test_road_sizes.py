"""ROAD at medical sizes: the imputation's solvers against the grid's size, and ROAD against its forward-pass floor.

``test_solver_sweep`` times :func:`linear_impute`'s four solvers (CHOLMOD where cvxopt, an optional extra, is
installed) on one image or volume with half its pixels removed (MoRF order of a smooth random map, one channel on
volumes, three on images) at 64-512 px and 16^3-64^3 (CHOLMOD's ordering of the grid, cached per shape, computed
before the timing), prints the table behind
:func:`default_solver`'s crossovers and reports the default's time over the fastest's.
``test_road_vs_floor`` runs ROAD MoRF (the metric's default fractions) on one 512 px RGB image through
torchvision's ResNet-18 and on one 64^3 volume through MONAI's 3D ResNet-18 (random weights, eval), against
the same number of forward passes of the same network on that input (the floor), timed in the same run.
``test_road_through_score_vs_its_passes`` is issue 40's item 2 as a user runs it: ``road-morf`` through
:func:`xaibench.score` on the same two cases, its forward passes counted by a forward pre-hook (asserted
equal to the fractions, the base logits and the API's fixed passes, :data:`conftest.API_PASSES`), against those passes at
the least per-image cost (:func:`conftest.floor_per_image`), in alternating rounds; on the image also with
SuperLU as the solver (the default before CHOLMOD, and without cvxopt), in the same rounds.
``XAIBENCH_ROAD_CASES=image-512`` skips the volume (minutes)::

    OMP_NUM_THREADS=1 python -m pytest benchmarks/test_road_sizes.py -s -p no:cacheprovider
"""
from __future__ import annotations

import os
import statistics
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import API_PASSES, PassCounter, best_time, floor_per_image, report

import xaibench
from xaibench.scoring.engine import Engine
from xaibench_metrics.families import FRACTIONS
from xaibench_metrics import road as road_module
from xaibench_metrics.road import SOLVERS, cholmod_available, default_solver, linear_impute, removal_masks, road

#: Grid shapes of the sweep, and the solvers too slow to time there (seconds to minutes per solve).
SHAPES = [(64, 64), (128, 128), (256, 256), (512, 512), (16, 16, 16), (24, 24, 24), (32, 32, 32), (64, 64, 64)]
SKIP = {(64, 64, 64): {"superlu", "cholmod"}}


def _smooth_map(spatial: tuple[int, ...], seed: int) -> torch.Tensor:
    """A CAM-like map: coarse noise upsampled to ``spatial`` (``(1, *spatial)``)."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 1, *[max(2, s // 8) for s in spatial], generator=gen)
    mode = "bilinear" if len(spatial) == 2 else "trilinear"
    return F.interpolate(coarse, size=spatial, mode=mode, align_corners=False)[:, 0]


def test_solver_sweep() -> None:
    rows = []
    for spatial in SHAPES:
        channels = 3 if len(spatial) == 2 else 1
        image = np.random.default_rng(0).random((channels, *spatial))
        removed = removal_masks(_smooth_map(spatial, 0), (0.5,), "morf")[0, 0].numpy()
        skip = SKIP.get(spatial, set()) | ({"banded"} if len(spatial) == 3 else set()) | (
            set() if cholmod_available() else {"cholmod"})  # the optional extra (GPL-3)
        if "cholmod" not in skip:  # the grid's ordering: once per shape, as ROAD's fractions share it
            linear_impute(image, removed, "cholmod")
        times = {s: best_time(lambda s=s: linear_impute(image, removed, s), 1 if np.prod(spatial) > 1e5 else 3)
                 for s in SOLVERS if s not in skip}
        chosen = default_solver(spatial)
        rows.append((spatial, times, chosen))
        report("ROAD imputation, half the pixels", f"default ({chosen}) / fastest at {spatial}",
               times[chosen] / min(times.values()), "<= 1.5")
    print(f"\nload average {os.getloadavg()[0]:.1f}")
    for spatial, times, chosen in rows:
        cells = ", ".join(f"{s} {t:.3f} s" for s, t in times.items())
        print(f"{'x'.join(map(str, spatial))}: {cells}; default {chosen}")


def _network_and_input(case: str) -> tuple[torch.nn.Module, torch.Tensor]:
    """``"image-512"``: torchvision's ResNet-18 and one RGB image of 512 px; ``"volume-64"``: MONAI's 3D
    ResNet-18 and one 64^3 volume (skipped without MONAI). Random weights and inputs, seed 0."""
    torch.manual_seed(0)
    if case == "image-512":
        import torchvision

        return torchvision.models.resnet18(num_classes=2).eval(), torch.rand(1, 3, 512, 512)
    monai = pytest.importorskip("monai")
    net = monai.networks.nets.resnet18(spatial_dims=3, n_input_channels=1, num_classes=2).eval()
    return net, torch.rand(1, 1, 64, 64, 64)


@pytest.mark.parametrize("case", ["image-512", "volume-64"])
def test_road_vs_floor(case: str) -> None:
    model, x = _network_and_input(case)
    maps = _smooth_map(tuple(x.shape[2:]), 1)
    with torch.inference_mode():
        target = model(x).argmax(1)
    engine = Engine(model, "cpu", batch_size=len(FRACTIONS))
    ours = best_time(lambda: road(x, target, maps, engine, [0], fractions=FRACTIONS), 2)
    copies = x.repeat(len(FRACTIONS), *[1] * (x.dim() - 1))

    def floor() -> None:
        with torch.inference_mode():
            model(copies).sum().item()

    t_floor = best_time(floor, 3)
    print(f"\nROAD {case}: {ours:.3f} s, floor ({len(FRACTIONS)} forward passes) {t_floor:.3f} s, "
          f"ratio {ours / t_floor:.2f}; load average {os.getloadavg()[0]:.1f}")
    report(f"ROAD {case}, ResNet-18", "ROAD / forward-pass floor", ours / t_floor, "<= 2")


#: The floor's batch sizes and rounds per case (a forward pass of the 3D ResNet-18 at 64^3 takes seconds).
SCORE_CASES = {"image-512": ((1, 4, 8), 3), "volume-64": ((1, 2), 1)}


@pytest.mark.parametrize("case", [c for c in SCORE_CASES
                                  if c in os.environ.get("XAIBENCH_ROAD_CASES", ",".join(SCORE_CASES))])
def test_road_through_score_vs_its_passes(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    net, x = _network_and_input(case)
    maps = _smooth_map(tuple(x.shape[2:]), 1).numpy()
    with torch.inference_mode():
        target = net(x).argmax(1)
    chosen = default_solver(tuple(x.shape[2:]))
    solvers = [chosen, "superlu"] if case == "image-512" and chosen != "superlu" else [chosen]
    counter = PassCounter(type(net))
    handle = torch.nn.modules.module.register_module_forward_pre_hook(counter)

    def run(solver: str) -> tuple[float, int]:
        monkeypatch.setattr(road_module, "default_solver", lambda spatial: solver)
        counter.forward, counter.on = 0, True
        start = time.perf_counter()
        try:
            xaibench.score(net, x, target, maps, "road-morf")
        finally:
            seconds, counter.on = time.perf_counter() - start, False
        return seconds, counter.forward

    batches, rounds = SCORE_CASES[case]
    ratios: dict[str, list[float]] = {s: [] for s in solvers}
    try:
        run(chosen)  # imports, numba compilation, the engine's calibration and the grid's ordering, cached
        for r in range(rounds):
            seconds = {s: run(s) for s in solvers}
            per_image, batch = floor_per_image(net, x, "cpu", False, batches, max(batches), 1)
            for s, (t, passes) in seconds.items():
                assert passes == len(FRACTIONS) + 1 + API_PASSES, (s, passes)  # the fractions, the base logits
                ratios[s].append(t / (passes * per_image))
                print(f"\nROAD {case} round {r}, solver {s}: {t:.2f} s, {passes} passes, floor {per_image:.3f} "
                      f"s/image (batch {batch}), ratio {ratios[s][-1]:.2f}; load average {os.getloadavg()[0]:.1f}")
    finally:
        handle.remove()
    for s, values in ratios.items():
        report(f"ROAD {case} through score ({s})", "seconds / its passes' floor", statistics.median(values),
               "<= 2" if s == chosen else "")

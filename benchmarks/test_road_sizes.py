"""ROAD at medical sizes: the imputation's solvers against the grid's size, and ROAD against its forward-pass floor.

``test_solver_sweep`` times :func:`linear_impute`'s three solvers on one image or volume with half its pixels
removed (MoRF order of a smooth random map, one channel on volumes, three on images) at 64-512 px and 16^3-64^3,
prints the table behind :func:`default_solver`'s crossovers and reports the default's time over the fastest's.
``test_road_vs_floor`` runs ROAD MoRF (the metric's default fractions) on one 512 px RGB image through
torchvision's ResNet-18 and on one 64^3 volume through MONAI's 3D ResNet-18 (random weights, eval), against
the same number of forward passes of the same network on that input (the floor), timed in the same run::

    OMP_NUM_THREADS=1 python -m pytest benchmarks/test_road_sizes.py -s -p no:cacheprovider
"""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import best_time, report

from xaibench.scoring.engine import Engine
from xaibench_metrics.families import FRACTIONS
from xaibench_metrics.road import SOLVERS, default_solver, linear_impute, removal_masks, road

#: Grid shapes of the sweep, and the solvers too slow to time there (seconds to minutes per solve).
SHAPES = [(64, 64), (128, 128), (256, 256), (512, 512), (16, 16, 16), (24, 24, 24), (32, 32, 32), (64, 64, 64)]
SKIP = {(64, 64, 64): {"superlu"}}


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
        times = {s: best_time(lambda s=s: linear_impute(image, removed, s), 1 if np.prod(spatial) > 1e5 else 3)
                 for s in SOLVERS if s not in SKIP.get(spatial, ()) and not (s == "banded" and len(spatial) == 3)}
        chosen = default_solver(spatial)
        rows.append((spatial, times, chosen))
        report("ROAD imputation, half the pixels", f"default ({chosen}) / fastest at {spatial}",
               times[chosen] / min(times.values()), "<= 1.5")
    print(f"\nload average {os.getloadavg()[0]:.1f}")
    for spatial, times, chosen in rows:
        cells = ", ".join(f"{s} {t:.3f} s" for s, t in times.items())
        print(f"{'x'.join(map(str, spatial))}: {cells}; default {chosen}")


@pytest.mark.parametrize("case", ["image-512", "volume-64"])
def test_road_vs_floor(case: str) -> None:
    torch.manual_seed(0)
    if case == "image-512":
        import torchvision

        model, x = torchvision.models.resnet18(num_classes=2).eval(), torch.rand(1, 3, 512, 512)
    else:
        monai = pytest.importorskip("monai")
        model = monai.networks.nets.resnet18(spatial_dims=3, n_input_channels=1, num_classes=2).eval()
        x = torch.rand(1, 1, 64, 64, 64)
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

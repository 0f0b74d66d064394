"""Cost against input size: every method and metric family against its own forward-pass floor (issue 40).

For each family (one representative method or metric, parameters reduced so that the passes stay few and
fixed in number across sizes: occlusion's window is an eighth of the side, so its window count does not
grow) and each input size, the seconds of one :func:`xaibench.explain` / :func:`xaibench.score` call are
set against the passes it makes at the least per-image cost (:func:`conftest.floor_per_image`, timed at
that size in the same run). The passes are counted as they run (a global forward pre-hook on the network,
eval mode: a forward with gradients enabled counts as forward + backward) and asserted equal to the passes
the family's definition makes (:data:`FAMILIES`'s counts), so no extra pass hides in the floor.

2D: torchvision's ResNet-18 (random weights, two classes) on 2 RGB images at 64, 128, 256 and 512 px.
3D: MONAI's 3D ResNet-18 (random weights) on one volume at 16^3, 32^3 and 64^3, and at 128^3 for the
families of at most a few passes (:data:`FIT_128`; a forward pass there takes about 20 s on one core).
The maps every metric scores are a smooth random map (CAM-like), the ground truth a centred disc or
ball of a quarter of the side. Run one modality at a time on a shared machine::

    OMP_NUM_THREADS=1 python -m pytest benchmarks/test_size_scaling.py -s -p no:cacheprovider -k 2d
    OMP_NUM_THREADS=1 python -m pytest benchmarks/test_size_scaling.py -s -p no:cacheprovider -k 3d

``XAIBENCH_PROFILE=1`` prints, for each cell above 1.3x its floor (ROAD: 2x), the three functions with the
most own time (cProfile).
"""
from __future__ import annotations

import cProfile
import os
import pstats
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import API_PASSES, PassCounter, floor_per_image, report

import xaibench
from xaibench.base.errors import XaibenchError

PROFILE = os.environ.get("XAIBENCH_PROFILE") == "1"
SIZES = {"2d": (64, 128, 256, 512), "3d": (16, 32, 64, 128)}
#: ``XAIBENCH_SIZES=64,16`` runs only those sides (a quick check of the counts).
ONLY = {int(s) for s in os.environ.get("XAIBENCH_SIZES", "").split(",") if s}
SAMPLES = {"2d": 2, "3d": 1}
#: The batch sizes each floor is timed at (the least per-image cost counts; each streams as many images as the
#: largest), by side: a cell's batch (an IG of 2 x 8 steps runs 16 images at once) must not beat its floor.
FLOOR_BATCHES = {("2d", 64): (1, 4, 16, 32), ("2d", 128): (1, 4, 16, 32), ("2d", 256): (1, 4, 16),
                 ("2d", 512): (1, 2, 4, 8), ("3d", 16): (1, 4, 16), ("3d", 32): (1, 2, 4, 8), ("3d", 64): (1, 2),
                 ("3d", 128): (1,)}  # 20 s a forward pass at 128^3: batch 1, one round


@dataclass(frozen=True)
class Family:
    """One family's representative: ``kind`` ("method" or "metric"), the registered name, its parameters at a
    side ``s``, and the passes (forward, with backward) per sample its definition makes at that side (None: as
    many as the data asks for, SISE's kept feature maps: the counted passes are its floor)."""

    family: str
    kind: str
    name: str
    params: Callable[[int], dict[str, Any]]
    passes: Callable[[int], tuple[int, int] | None]
    modalities: tuple[str, ...] = ("2d", "3d")
    extra: dict[str, Any] = field(default_factory=dict)


#: A metric call makes one forward pass for the base logits (xaibench.score); a gradient method one backward.
#: SISE (hundreds of passes per image) is left out above :data:`SISE_MAX` for time.
FAMILIES = (
    Family("CAMs", "method", "gradcam", lambda s: {}, lambda s: (1, 1), extra={"layer": "layer4"}),
    Family("gradients", "method", "saliency", lambda s: {}, lambda s: (1, 1)),
    Family("path (IG)", "method", "integrated-gradients", lambda s: {"n_steps": 8}, lambda s: (8, 8)),
    Family("path (SmoothGrad)", "method", "smoothgrad", lambda s: {"samples": 8}, lambda s: (8, 8)),
    Family("LRP", "method", "lrp-epsilon", lambda s: {}, lambda s: (1, 1)),
    Family("occlusion", "method", "occlusion", lambda s: {"window": s // 4, "stride": s // 4},
           lambda s: (1 + 16, 0), ("2d",)),
    Family("occlusion", "method", "occlusion", lambda s: {"window": s // 2, "stride": s // 2},
           lambda s: (1 + 8, 0), ("3d",)),
    Family("RISE", "method", "rise", lambda s: {"n_masks": 16}, lambda s: (16, 0)),
    Family("SISE", "method", "sise", lambda s: {}, lambda s: None),
    Family("LIME", "method", "lime", lambda s: {"n_samples": 16, "n_segments": 16}, lambda s: (16, 0), ("2d",)),
    Family("KernelSHAP", "method", "kernel-shap", lambda s: {"n_samples": 16, "n_segments": 16},
           lambda s: (16, 0), ("2d",)),
    Family("deletion/insertion", "metric", "deletion-auc", lambda s: {"steps": 8}, lambda s: (1 + 8, 0)),
    Family("ROAD", "metric", "road-morf", lambda s: {"fractions": [0.2, 0.5, 0.8]}, lambda s: (1 + 3, 0)),
    # f(x) and f(baseline) passed again, next to the base logits
    Family("completeness", "metric", "completeness-error", lambda s: {}, lambda s: (1 + 2, 0)),
    Family("sensitivity-n", "metric", "sensitivity-n", lambda s: {"sets": 8, "patch": max(1, s // 16)},
           lambda s: (1 + 1 + 8, 0)),  # the input's own pass, then one per set
    Family("randomization", "metric", "mprt-spearman", lambda s: {"steps": 1}, lambda s: (1 + 1, 1)),
    Family("robustness", "metric", "max-sensitivity", lambda s: {"draws": 2}, lambda s: (1 + 2, 2)),
    Family("localization", "metric", "relevance-mass", lambda s: {}, lambda s: (1, 0)),
    Family("complexity", "metric", "sparseness", lambda s: {}, lambda s: (1, 0)),
)
SISE_MAX = {"2d": 256, "3d": 32}
#: The families run at 128^3 (a few passes each).
FIT_128 = ("CAMs", "gradients", "LRP", "ROAD", "localization", "complexity", "completeness")
#: The issue's bound on every family's ratio to its floor, and ROAD's.
BOUND, ROAD_BOUND = 1.3, 2.0


def _network(modality: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if modality == "2d":
        import torchvision

        return torchvision.models.resnet18(num_classes=2).eval()
    monai = pytest.importorskip("monai")
    return monai.networks.nets.resnet18(spatial_dims=3, n_input_channels=1, num_classes=2).eval()


def _case(modality: str, side: int) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Inputs ``(N, C, *spatial)`` in [0, 1], smooth random maps ``(N, *spatial)`` and centred ball masks."""
    n, dims = SAMPLES[modality], 2 if modality == "2d" else 3
    gen = torch.Generator().manual_seed(side)
    x = torch.rand(n, 3 if dims == 2 else 1, *[side] * dims, generator=gen)
    coarse = torch.rand(n, 1, *[max(2, side // 8)] * dims, generator=gen)
    maps = F.interpolate(coarse, size=(side,) * dims, mode="bilinear" if dims == 2 else "trilinear")[:, 0]
    grid = np.indices((side,) * dims) - (side - 1) / 2
    ball = np.sqrt((grid**2).sum(0)) <= side / 4
    return x, maps.numpy(), np.repeat(ball[None], n, 0)


def _cell(fam: Family, net: torch.nn.Module, x: torch.Tensor, target: torch.Tensor, maps: np.ndarray,
          masks: np.ndarray, side: int) -> Callable[[], Any]:
    if fam.kind == "method":
        return lambda: xaibench.explain(net, x, target, method=fam.name, allow_small_cam=True, **fam.extra,
                                        **fam.params(side))
    # additive=True: completeness and sensitivity-n compare map sums with output changes; their cost is the same
    return lambda: xaibench.score(net, x, target, maps, [fam.name], masks=masks, method="saliency", additive=True,
                                  params={fam.name: fam.params(side)})


@pytest.mark.parametrize("modality", ["2d", "3d"])
def test_size_scaling(modality: str) -> None:
    net = _network(modality)
    counter = PassCounter(type(net))
    handle = torch.nn.modules.module.register_module_forward_pre_hook(counter)
    rows: dict[str, dict[int, str]] = {}
    warm: set[str] = set()
    miscounted: list[str] = []
    try:
        for side in [s for s in SIZES[modality] if not ONLY or s in ONLY]:
            x, maps, masks = _case(modality, side)
            families = [f for f in FAMILIES if modality in f.modalities
                        and (side < 128 or modality == "2d" or f.family in FIT_128)
                        and (f.family != "SISE" or side <= SISE_MAX[modality])]
            with torch.inference_mode():
                target = net(x).argmax(1)
            xaibench.explain(net, x[:1], target[:1], method="saliency")  # the engine's calibration, cached
            batches = FLOOR_BATCHES[modality, side]
            (t_fwd, b_fwd), (t_bwd, b_bwd) = (floor_per_image(net, x[:1], "cpu", grad, batches, max(batches),
                                                              3 if len(batches) > 1 else 1) for grad in (False, True))
            print(f"\n{modality} {side}: floor {t_fwd:.3f} s/image forward (batch {b_fwd}), {t_bwd:.3f} s/image "
                  f"forward + backward (batch {b_bwd}); load average {os.getloadavg()[0]:.1f}")
            for fam in families:
                call = _cell(fam, net, x, target, maps, masks, side)
                if fam.name not in warm:  # imports, numba compilation and caches at the first (smallest) side
                    warm.add(fam.name)
                    try:
                        call()
                    except XaibenchError:
                        pass
                profiler = cProfile.Profile() if PROFILE else None
                counter.forward = counter.backward = 0
                counter.on = True
                start = time.perf_counter()
                try:
                    if profiler:
                        profiler.enable()
                    call()
                except XaibenchError as error:  # a family whose rules do not cover this network
                    rows.setdefault(fam.family, {})[side] = "n/a"
                    print(f"  {fam.family} ({fam.name}): {str(error)[:120]}")
                    continue
                finally:
                    if profiler:
                        profiler.disable()
                    seconds, counter.on = time.perf_counter() - start, False
                fwd, bwd = counter.forward, counter.backward
                floor = fwd * t_fwd + bwd * (t_bwd - t_fwd)
                ratio = seconds / floor
                per_sample = fam.passes(side)
                expected = (fwd, bwd) if per_sample is None else (len(x) * per_sample[0] + API_PASSES, len(x) * per_sample[1])
                print(f"  {fam.family} ({fam.name}): {seconds:.2f} s, passes {fwd} / {bwd} (expected "
                      f"{expected[0]} / {expected[1]}), floor {floor:.2f} s, ratio {ratio:.2f}")
                rows.setdefault(fam.family, {})[side] = f"{ratio:.2f}"
                bound = ROAD_BOUND if fam.family == "ROAD" else BOUND
                report(f"size scaling {modality} {side}: {fam.family}", "seconds / pass floor", ratio, f"<= {bound}")
                if profiler and ratio > bound:
                    stats = pstats.Stats(profiler)
                    top = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:3]  # type: ignore[attr-defined]
                    print("    top own time: " + "; ".join(f"{Path(f).name}:{line} {fn} {tt:.2f} s"
                                                          for (f, line, fn), (_, _, tt, _, _) in top))
                if (fwd, bwd) != expected:
                    miscounted.append(f"{fam.name} at {side}: passes {fwd} / {bwd}, expected {expected}")
    finally:
        handle.remove()
    sides = SIZES[modality]
    unit = "px" if modality == "2d" else "^3"
    print(f"\n| family (representative) | {' | '.join(f'{s} {unit}' for s in sides)} |")
    print("|---|" + "---|" * len(sides))
    for fam_name, cells in rows.items():
        print(f"| {fam_name} | {' | '.join(cells.get(s, '-') for s in sides)} |")
    assert not miscounted, miscounted

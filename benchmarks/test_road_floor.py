"""ROAD (noisy linear imputation) vs its forward-pass floor on the ``medical`` workload.

The workload of ``suites/medical.yaml``: 64 synthetic-lesion images at 64 px (one channel),
the small CNN, ROAD MoRF at fractions 0.2, 0.5, 0.8, CAM-like maps (an 8x8 map upsampled, as
the suite's Grad-CAM gives). The floor is the same number of forward passes at the batch size the
engine picks by throughput, on ready-made inputs. Measured in the same run: ROAD as it runs on this device, and the two
imputations alone, per image by SuperLU (scipy's ``spsolve``) and by the banded Cholesky
(:func:`linear_impute`'s two solvers; the banded one is used on a CPU) and the
batched, warm-started conjugate gradients (:func:`impute`, used on accelerators).
Target: ROAD at most 2x its floor (issue 29). ``XAIBENCH_PROFILE=1`` also prints where one ROAD call's
time goes (cProfile, by cumulative time)::

    XAIBENCH_PROFILE=1 OMP_NUM_THREADS=1 python -m pytest benchmarks/test_road_floor.py -s -p no:cacheprovider
"""
from __future__ import annotations

import cProfile
import os
import pstats

import torch
import torch.nn.functional as F
from conftest import best_batch, best_time, report

from xaibench.scoring.engine import Engine
from xaibench_datasets.synthetic import generate
from xaibench_metrics.road import impute, linear_impute, removal_masks, road
from xaibench_models.small_cnn import build_small_cnn

FRACTIONS = (0.2, 0.5, 0.8)


def test_road_vs_forward_pass_floor(device: str = "cuda" if torch.cuda.is_available() else "cpu") -> None:
    torch.manual_seed(0)
    x = torch.from_numpy(generate(64, 64, seed=0)["x"]).to(device)
    model = build_small_cnn(3, 1, "image").eval().to(device)
    target = torch.zeros(64, dtype=torch.long, device=device)
    maps = F.interpolate(torch.rand(64, 1, 8, 8), size=(64, 64), mode="bilinear", align_corners=False)[:, 0]
    batch = best_batch(model, x, device)
    engine = Engine(model, device, batch_size=batch)
    ours = best_time(lambda: road(x, target, maps, engine, tuple(range(len(x))), fractions=FRACTIONS), 3)
    if os.environ.get("XAIBENCH_PROFILE") == "1":
        profile = cProfile.Profile()
        profile.runcall(road, x, target, maps, engine, 0, fractions=FRACTIONS)
        pstats.Stats(profile).sort_stats("cumulative").print_stats(12)
    flat = x.repeat_interleave(len(FRACTIONS), 0)

    def floor() -> None:
        with torch.inference_mode():
            for start in range(0, flat.shape[0], batch):
                model(flat[start:start + batch]).sum().item()

    t_floor = best_time(floor, 3)
    removed = removal_masks(maps, FRACTIONS, "morf").to(device)
    images = x.double().cpu().numpy()

    def direct(solver: str) -> None:
        for i in range(x.shape[0]):
            for k in range(len(FRACTIONS)):
                linear_impute(images[i], removed[i, k].cpu().numpy(), solver)

    def conjugate_gradients() -> None:
        filled = None
        for k in range(len(FRACTIONS)):
            filled = impute(x, removed[:, k], start=filled)
        filled.sum().item()

    t_lu, t_banded = best_time(lambda: direct("superlu"), 1), best_time(lambda: direct("banded"), 1)
    t_cg = best_time(conjugate_gradients, 1)
    print(f"\nROAD {ours:.3f} s on {device}, floor {t_floor:.3f} s at batch {batch}, SuperLU {t_lu:.3f} s, "
          f"banded Cholesky {t_banded:.3f} s, CG {t_cg:.3f} s; load average {os.getloadavg()[0]:.1f}")
    report(f"ROAD medical workload ({device})", "ROAD / forward-pass floor", ours / t_floor, "<= 2")
    report(f"ROAD medical workload ({device})", "(floor + SuperLU) / floor", (t_floor + t_lu) / t_floor, "")
    report(f"ROAD medical workload ({device})", "(floor + banded Cholesky) / floor", (t_floor + t_banded) / t_floor, "")
    report(f"ROAD medical workload ({device})", "(floor + batched CG) / floor", (t_floor + t_cg) / t_floor, "")

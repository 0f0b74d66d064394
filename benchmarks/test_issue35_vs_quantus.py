"""Issue 35's perturbation metrics vs. Quantus 0.6 on equal work: region perturbation and faithfulness estimate.

ResNet-18 with a 1-channel stem, ``XAIBENCH_BENCH_SAMPLES`` (default 32) samples of 1x64x64, random
maps (``test_vs_quantus``'s case), the caller's batch size 32. Region perturbation (MoRF, patches of 8 px: 64 patches, every one
removed) against Quantus's ``RegionPerturbation`` (``regions_evaluation=64``); faithfulness estimate
(64 groups of 64 pixels) against ``FaithfulnessEstimate(features_in_step=64)``; both with a zero fill.
Quantus also passes the unperturbed inputs once per call; ours reads them from the pass the runner
makes once for every metric (made here outside the timed call), so a counting wrapper checks that
Quantus passes exactly ``N`` images more than ours and both otherwise ``N x 64``. Both are warmed and
timed in alternation (median of 3); the floor is the same number of images through the engine's full
batches.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from conftest import interleaved_ratio, median_time, report
from test_vs_quantus import N, gray_case  # noqa: F401  (the fixture: ResNet-18 1x64x64 case, shared)

from xaibench.scoring.engine import Engine, auto_batch_size
from xaibench.contract.metric_inputs import MetricContext
from xaibench.contract.plugins import load_harness
from xaibench.authoring.testing import score_metric

quantus = pytest.importorskip("quantus", reason="quantus (test extra) is not installed")
SIDE, STEPS, BATCH = 64, 64, 32


CASES = {
    "region-perturbation-morf": ({"patch": 8, "fill": "zero"},
                                 lambda: quantus.RegionPerturbation(patch_size=8, regions_evaluation=STEPS,
                                                                    perturb_baseline=0.0, disable_warnings=True)),
    "faithfulness-estimate": ({"steps": STEPS, "fill": "zero"},
                              lambda: quantus.FaithfulnessEstimate(features_in_step=SIDE * SIDE // STEPS,
                                                                   perturb_baseline=0.0, disable_warnings=True)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_speedup_over_quantus(benchmark, gray_case, name: str) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    warnings.filterwarnings("ignore")
    model, x, target, saliency = gray_case
    spec = load_harness().metrics.get(name)
    params, peer = CASES[name]
    metric = peer()
    engine = Engine(model, "cpu", batch_size=auto_batch_size(model, x, "cpu"))
    x_np, y_np, a_np = x.numpy(), target.numpy(), saliency.numpy()[:, None]
    base = [engine.logits(x[s : s + BATCH]) for s in range(0, N, BATCH)]  # the runner's shared pass

    def theirs() -> None:
        metric(model=model, x_batch=x_np, y_batch=y_np, a_batch=a_np, device="cpu", batch_size=BATCH)

    def ours() -> None:
        for k, s in enumerate(range(0, N, BATCH)):
            ctx = MetricContext(engine=engine, base_logits=base[k],
                                sample_seeds=tuple(range(s, min(s + BATCH, N))))
            score_metric(spec, ctx, x[s : s + BATCH], target[s : s + BATCH], saliency[s : s + BATCH],
                         **{**spec.defaults, **params})

    passes = (model.count(theirs), model.count(ours))  # also the warm-up of both
    assert passes == (N * STEPS + N, N * STEPS), f"unequal work: Quantus {passes[0]} images, ours {passes[1]}"
    speedup = interleaved_ratio(benchmark, ours, theirs, rounds=3)
    floor_input = torch.rand(N * STEPS, *x.shape[1:])
    t_floor = median_time(lambda: engine.logits(floor_input), 3)
    t_ours = benchmark.stats.stats.median
    benchmark.extra_info.update({"speedup": speedup, "forward_images_ours": N * STEPS, "floor_s": t_floor})
    case = f"{name} vs Quantus, 1x64x64, batch {BATCH} ({N * STEPS} images ours, {N * STEPS + N} Quantus)"
    report(case, "Quantus time / ours", speedup, "> 1")
    report(case, "ours / forward-pass floor", t_ours / t_floor, "~1")
    report(case, "Quantus / forward-pass floor", speedup * t_ours / t_floor, "")
    assert np.isfinite(speedup)

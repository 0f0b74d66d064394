"""Benchmark 2: our deletion curve vs. Quantus's PixelFlipping on the same inputs.

Both flip 64x64/64 = 64 pixels per step (64 steps) on ResNet-18 with 32 samples of
3x64x64. Quantus loops over steps with batches of ``batch_size`` samples; our
engine streams (sample, step) pairs into full batches. Targets: a speed-up of at
least 1.7x at batch size 32 and at least 4x at batch size 4.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import median_time, report

from xaibench.engine import Engine, auto_batch_size
from xaibench.plugins import load_harness
from xaibench.specs import MetricContext
from xaibench.testing import score_metric

quantus = pytest.importorskip("quantus", reason="quantus (test extra) is not installed")


@pytest.mark.parametrize("user_batch", [4, 32])
def test_deletion_speedup_over_quantus_pixel_flipping(benchmark, resnet_case, user_batch: int) -> None:  # type: ignore[no-untyped-def]
    warnings.filterwarnings("ignore")
    model, x, target, saliency = resnet_case
    deletion = load_harness().metrics.get("deletion-auc")
    engine = Engine(model, "cpu", batch_size=auto_batch_size(model, x, "cpu"))
    x_np, y_np = x.numpy(), target.numpy()
    a_np = saliency.numpy()[:, None].repeat(3, axis=1)
    metric = quantus.PixelFlipping(features_in_step=64, perturb_baseline="black", disable_warnings=True,
                                   display_progressbar=False)

    def theirs() -> None:
        metric(model=model, x_batch=x_np, y_batch=y_np, a_batch=a_np, device="cpu", batch_size=user_batch)

    def ours() -> None:
        for s in range(0, x.shape[0], user_batch):
            xs, ts = x[s : s + user_batch], target[s : s + user_batch]
            ctx = MetricContext(engine=engine, base_logits=engine.logits(xs), seed=0)
            score_metric(deletion, ctx, xs, ts, saliency[s : s + user_batch], steps=64, fill="zero")

    theirs()  # warm-up both
    ours()
    t_theirs = median_time(theirs, 2)
    benchmark.pedantic(ours, rounds=3, iterations=1)
    speedup = t_theirs / benchmark.stats.stats.median
    benchmark.extra_info.update({"quantus_s": t_theirs, "speedup": speedup})
    report(f"deletion vs Quantus PixelFlipping, batch {user_batch}", "Quantus time / ours", speedup,
           ">= 1.7" if user_batch == 32 else ">= 4")
    assert np.isfinite(speedup)

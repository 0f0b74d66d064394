"""Benchmark 5: a perturbation metric's run time is linear in the number of samples.

Deletion (16 steps) on ResNet-18 at 16, 64 and 256 samples of 3x64x64; the fitted
exponent of time ~ samples^k should be close to 1.
"""
from __future__ import annotations

import numpy as np
import torch
from conftest import best_batch, median_time, report

from xaibench.scoring.engine import Engine
from xaibench.contract.plugins import load_harness
from xaibench.contract.metric_inputs import MetricContext
from xaibench.authoring.testing import score_metric


def test_deletion_time_is_linear_in_samples(resnet_case) -> None:  # type: ignore[no-untyped-def]
    model = resnet_case[0]
    deletion = load_harness().metrics.get("deletion-auc")
    sizes, times = [16, 64, 256], []
    for n in sizes:
        torch.manual_seed(n)
        x, saliency = torch.rand(n, 3, 64, 64), torch.rand(n, 64, 64)
        engine = Engine(model, "cpu", batch_size=best_batch(model, x))
        target = engine.logits(x).argmax(1)
        ctx = MetricContext(engine=engine, base_logits=engine.logits(x),
                            sample_seeds=tuple(range(x.shape[0])))
        times.append(median_time(lambda: score_metric(deletion, ctx, x, target, saliency, steps=16), 2))
    exponent = float(np.polyfit(np.log(sizes), np.log(times), 1)[0])
    report("deletion at 16/64/256 samples", "fitted exponent of time vs samples", exponent, "~ 1")
    assert 0.5 < exponent < 1.5

"""MPRT-Spearman + MPRT-SSIM (and eMPRT + sMPRT) with the randomized maps shared vs recomputed per metric.

Integrated Gradients (32 steps) on the small CNN, 32 synthetic-lesion images at 64 px; both
pairs of metrics through ``MetricContext.shared`` as the runner gives it (one memo per method)
and with nothing shared, in the same run. The scores are equal (tests/test_randomization_sharing.py);
the ratio is the time saved. Expected: close to 2 for the MPRT pair (the similarity itself is
cheap), and (1 + 2 d - 1) / (2 d - 1) for eMPRT + sMPRT with d draws.
"""
from __future__ import annotations

import copy
from collections.abc import Hashable
from typing import Any

import torch
from captum.attr import IntegratedGradients
from conftest import best_time, report

from xaibench.scoring.engine import Engine
from xaibench.contract.plugins import load_harness
from xaibench.contract.metric_inputs import MetricContext
from xaibench.authoring.testing import score_metric
from xaibench_datasets.synthetic import generate
from xaibench_models.small_cnn import build_small_cnn


def test_shared_randomized_maps_vs_recomputed() -> None:
    torch.manual_seed(0)
    model = build_small_cnn(3, 1, "image").eval()
    x = torch.from_numpy(generate(32, 64, seed=0)["x"])
    target = model(x).argmax(1)

    def explain(other: torch.nn.Module | None = None, inputs: torch.Tensor | None = None,
                targets: torch.Tensor | None = None) -> torch.Tensor:
        m = model if other is None else other
        xi = x if inputs is None else inputs
        return IntegratedGradients(m).attribute(xi, target=target, n_steps=32, internal_batch_size=256).detach()[:, 0]

    maps = explain()
    harness = load_harness()

    def run(pair: tuple[str, str], share: bool) -> None:
        memo: dict[Hashable, Any] = {}
        shared = (lambda key, compute: memo[key] if key in memo else memo.setdefault(key, compute())) if share \
            else (lambda key, compute: compute())
        ctx = MetricContext(engine=Engine(model, "cpu", 64), base_logits=model(x).detach(),
                            model=lambda: copy.deepcopy(model), explain=explain, shared=shared,
                            sample_seeds=tuple(range(32)))
        for name in pair:
            spec = harness.metrics.get(name)
            score_metric(spec, ctx, x, target, maps, **dict(spec.defaults, **({"draws": 3} if name == "smprt" else {})))

    for pair in (("mprt-spearman", "mprt-ssim"), ("emprt", "smprt")):
        unshared_s = best_time(lambda: run(pair, False), 2)
        shared_s = best_time(lambda: run(pair, True), 2)
        print(f"\n{' + '.join(pair)}: recomputed {unshared_s:.2f} s, shared {shared_s:.2f} s")
        report(f"{' + '.join(pair)} (IG, small CNN)", "recomputed / shared", unshared_s / shared_s,
               "~2" if pair[0] == "mprt-spearman" else "~1.2 (3 draws)")

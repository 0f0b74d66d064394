"""Randomized models' maps are computed once and shared by every randomization metric of a method.

MPRT-Spearman and MPRT-SSIM score the same cascade of randomized maps; eMPRT and sMPRT the
same fully randomized model's maps. Through ``MetricContext.shared`` (one memo per method's
cells, as :class:`xaibench.running.execution.Execution` gives it), the second metric calls the method
no more for them, and its scores equal those of the metric called alone.
"""
from __future__ import annotations

import copy
from collections.abc import Hashable
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from xaibench.scoring.engine import Engine
from xaibench.contract.plugins import load_harness
from xaibench.contract.metric_inputs import MetricContext
from xaibench.authoring.testing import score_metric

N = 4


def _case() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Conv2d(3, 3, 3, padding=1), nn.ReLU(),
                          nn.Flatten(), nn.Linear(3 * 64, 3)).eval()
    x = torch.rand(N, 1, 8, 8)
    return model, x, model(x).argmax(1)


def _context(model: nn.Module, x: torch.Tensor, target: torch.Tensor, calls: list[int],
             shared: Callable[[Hashable, Callable[[], Any]], Any] | None) -> MetricContext:
    def explain(other: nn.Module | None = None, inputs: torch.Tensor | None = None,
                targets: torch.Tensor | None = None) -> torch.Tensor:
        """Gradient x input of the target logit: deterministic, differs between models."""
        calls[0] += 1
        m = model if other is None else other
        xi = (x if inputs is None else inputs).clone().requires_grad_(True)
        classes = target if targets is None else targets
        with torch.enable_grad():  # k stacked copies of the samples (sMPRT's draws): their classes, copy after copy
            m(xi).gather(1, classes.repeat(len(xi) // len(classes))[:, None]).sum().backward()
        return (xi.grad * xi).detach()[:, 0]

    kwargs = {} if shared is None else {"shared": shared}
    return MetricContext(engine=Engine(model, "cpu", 16), base_logits=model(x).detach(),
                         model=lambda: copy.deepcopy(model), explain=explain, sample_seeds=tuple(range(N)), **kwargs)


def test_the_second_randomization_metric_reuses_the_randomized_maps_and_scores_as_alone() -> None:
    model, x, target = _case()
    harness = load_harness()
    maps = _context(model, x, target, [0], None).explain()
    # explain calls of the second metric alone / after the first: MPRT's 3 cascade stages (3 layers) all shared;
    # sMPRT with 3 draws makes 3 calls (the fully randomized model's unperturbed maps, then the 2 noisy draws of every
    # sample in one call per model), the first shared with eMPRT
    for first, second, alone_expected, shared_expected in (("mprt-spearman", "mprt-ssim", 3, 0), ("emprt", "smprt", 3, 2)):
        specs = [harness.metrics.get(name) for name in (first, second)]
        params = [dict(spec.defaults, **({"draws": 3} if spec.name == "smprt" else {})) for spec in specs]
        memo: dict[Hashable, Any] = {}
        calls = [0]
        ctx = _context(model, x, target, calls,
                       lambda key, compute: memo[key] if key in memo else memo.setdefault(key, compute()))
        score_metric(specs[0], ctx, x, target, maps, **params[0])
        before = calls[0]
        assert before > 0
        together = score_metric(specs[1], ctx, x, target, maps, **params[1])
        alone_calls = [0]
        alone = score_metric(specs[1], _context(model, x, target, alone_calls, None), x, target, maps, **params[1])
        assert alone_calls[0] == alone_expected
        assert calls[0] - before == shared_expected
        np.testing.assert_array_equal(together, alone)

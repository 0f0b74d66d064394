"""Infidelity's definition at its edges (the mutants of ``plugins/xaibench_metrics/infidelity.py``, docs/mutation.md).

The peer test against captum is ``tests/test_peers_captum.py``; these pin what it does not reach: the
parameter refusals a user sees, a single perturbation by hand, and normalisation of a map of any scale.
"""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from test_metrics import Linear2
from xaibench_metrics.infidelity import pixel_noise

from xaibench.scoring.engine import Engine
from xaibench.contract.metric_inputs import MetricContext
from xaibench.contract.plugins import load_harness
from xaibench.authoring.testing import score_metric

N = 3


def _linear() -> tuple[Linear2, torch.Tensor, torch.Tensor, torch.Tensor, MetricContext]:
    """logit_1 = w . x on 1x6x6 inputs: f(x) - f(x - I) = w . I exactly."""
    torch.manual_seed(2)
    model = Linear2(torch.randn(1, 6, 6)).eval()
    x = torch.rand(N, 1, 6, 6)
    engine = Engine(model, "cpu", batch_size=8)
    ctx = MetricContext(engine=engine, base_logits=engine.logits(x), sample_seeds=tuple(range(7, 7 + len(x))))
    return model, x, torch.ones(N, dtype=torch.long), model.w.detach()[0].expand(N, -1, -1), ctx


def _infidelity(ctx: MetricContext, x: torch.Tensor, target: torch.Tensor, maps: torch.Tensor, **params: object) -> np.ndarray:
    spec = load_harness().metrics.get("infidelity")  # the registered metric, as the runner calls it
    return np.asarray(score_metric(spec, ctx, x, target, maps, **{**spec.defaults, **params}), dtype=np.float64)


def test_one_perturbation_by_hand() -> None:
    """runs = 1, without normalisation, the map 2w: (2 w.I - w.I)^2 = (w.I)^2 for the one drawn I."""
    _, x, target, w, ctx = _linear()
    noise = pixel_noise(x, 1, 0.1, ctx.sample_seeds)[:, 0].double()  # the metric's draw: N x 1 perturbations
    expected = ((noise * w.double()).flatten(1).sum(1) ** 2).numpy()
    np.testing.assert_allclose(_infidelity(ctx, x, target, 2 * w, runs=1, normalize=False), expected, rtol=1e-5)


@pytest.mark.parametrize("scale", [1e-4, 1e4])
def test_normalisation_removes_any_scale_of_the_exact_map(scale: float) -> None:
    """beta = E[a b] / E[a^2] rescales ``scale * w`` back to w, whose infidelity on a linear model is 0, however
    small E[a^2] is (here about 1e-8 for scale 1e-4); without normalisation the same map is far from 0."""
    _, x, target, w, ctx = _linear()
    np.testing.assert_allclose(_infidelity(ctx, x, target, scale * w), 0.0, atol=1e-9)
    assert (_infidelity(ctx, x, target, scale * w, normalize=False) > 1e-3).all()


@pytest.mark.parametrize(("params", "message"), [
    ({"runs": 0}, "infidelity needs runs >= 1 and a positive noise level"),
    ({"noise": 0.0}, "infidelity needs runs >= 1 and a positive noise level"),
    ({"noise": -0.1}, "infidelity needs runs >= 1 and a positive noise level"),
    ({"output": "probability"}, "output must be one of ('prob', 'logit'), got 'probability'"),
])
def test_parameters_without_a_defined_infidelity_are_refused_by_name(params: dict[str, object], message: str) -> None:
    _, x, target, w, ctx = _linear()
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        _infidelity(ctx, x, target, w, **params)

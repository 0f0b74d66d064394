"""Infidelity against captum.metrics.infidelity on the same perturbations, and its analytic zero."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.metrics import infidelity as captum_infidelity
from test_metrics import Linear2
from torch import nn
from xaibench_metrics.infidelity import infidelity, pixel_noise

from xaibench.scoring.engine import Engine
from xaibench.contract.plugins import load_harness
from xaibench.contract.metric_inputs import MetricContext
from xaibench.authoring.testing import score_metric

N, RUNS = 4, 12


def _ctx(model: nn.Module, x: torch.Tensor) -> MetricContext:
    engine = Engine(model.eval(), "cpu", batch_size=10)
    return MetricContext(engine=engine, base_logits=engine.logits(x), sample_seeds=tuple(range(5, 5 + len(x))))


@pytest.mark.parametrize("normalize", [True, False])
def test_infidelity_equals_captum_on_rgb_input(normalize: bool) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(4 * 64, 3)).eval()
    x = torch.rand(N, 3, 8, 8)
    target = torch.tensor([0, 1, 2, 0])
    sal = torch.randn(N, 8, 8)
    ctx = _ctx(model, x)
    spec = load_harness().metrics.get("infidelity")  # the registered metric, as the runner calls it
    ours = score_metric(spec, ctx, x, target, sal, **{**spec.defaults, "runs": RUNS, "noise": 0.1,
                                                      "normalize": normalize})
    noise = pixel_noise(x, RUNS, 0.1, ctx.sample_seeds)

    def perturb(inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        assert inputs.shape[0] == N * RUNS  # captum repeats each sample RUNS times, sample-major, as we do
        return noise, inputs - noise

    attributions = (sal[:, None] / 3).expand(-1, 3, -1, -1)  # a pixel's score shared by its 3 channels
    theirs = captum_infidelity(model, perturb, x, attributions, target=target, n_perturb_samples=RUNS,
                               normalize=normalize)
    np.testing.assert_allclose(ours, theirs.double().numpy(), rtol=1e-5, atol=1e-7)


def test_the_exact_contributions_of_a_linear_model_have_zero_infidelity() -> None:
    torch.manual_seed(1)
    model = Linear2(torch.randn(1, 6, 6))
    x = torch.rand(N, 1, 6, 6)
    target = torch.ones(N, dtype=torch.long)
    w = model.w.detach()[0]
    exact = w.expand(N, -1, -1)  # f(x) - f(x - I) = w . I exactly
    np.testing.assert_allclose(infidelity(x, target, exact, _ctx(model, x).engine, tuple(range(N)), normalize=False),
                               0, atol=1e-9)
    scaled = infidelity(x, target, 3 * exact, _ctx(model, x).engine, tuple(range(N)), normalize=True)
    np.testing.assert_allclose(scaled, 0, atol=1e-9)  # normalisation removes the scale
    assert (infidelity(x, target, torch.rand(N, 6, 6), _ctx(model, x).engine, tuple(range(N))) > 1e-4).all()

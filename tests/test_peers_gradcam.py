"""Cross-checks against pytorch-grad-cam's metrics (grad-cam 1.5), and where they differ from the papers."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from pytorch_grad_cam.metrics.cam_mult_image import CamMultImageConfidenceChange, DropInConfidence
from pytorch_grad_cam.metrics.perturbation_confidence import (
    AveragerAcrossThresholds,
    PerturbationConfidenceMetric,
    RemoveLeastRelevantFirst,
    RemoveMostRelevantFirst,
)
from pytorch_grad_cam.metrics.road import NoisyLinearImputer
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget, ClassifierOutputTarget
from torch import nn
from xaibench_metrics.confidence import drop_in_confidence, increase_in_confidence
from xaibench_metrics.road import road

from xaibench.engine import Engine
from xaibench.maps import normalize
from xaibench.specs import MetricContext

N = 5

#: grad-cam calls np.percentile on a torch tensor (its problem, not ours).
pytestmark = pytest.mark.filterwarnings("ignore:__array_wrap__:DeprecationWarning")


def _setup(channels: int, size: int, seed: int = 0):  # type: ignore[no-untyped-def]
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(channels, 6, 3, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(6 * size * size, 3)).eval()
    x = torch.rand(N, channels, size, size)
    sal = torch.rand(N, size, size) - 0.2
    target = torch.arange(N) % 3
    engine = Engine(model, "cpu", batch_size=8)
    ctx = MetricContext(engine=engine, base_logits=engine.logits(x), seed=0)
    return model, x, sal, target, ctx


def test_road_morf_and_lerf_equal_pytorch_grad_cam_on_rgb_without_noise() -> None:
    """grad-cam's percentile p keeps the p% of pixels below the p-th percentile: it removes (100-p)%.

    On a 10x10 image the percentile cut removes exactly round(f * 100) pixels, so the
    average over p = 10..90 is our mean over f = 0.1..0.9; grad-cam reports it minus p_c(x).
    """
    model, x, sal, target, ctx = _setup(channels=3, size=10)
    percentiles = list(range(10, 100, 10))
    targets = [ClassifierOutputSoftmaxTarget(int(t)) for t in target]
    base = torch.softmax(model(x), 1).detach().numpy()[np.arange(N), target.numpy()]
    for order, remover in (("morf", RemoveMostRelevantFirst), ("lerf", RemoveLeastRelevantFirst)):
        peer = AveragerAcrossThresholds(
            lambda p, remover=remover: PerturbationConfidenceMetric(remover(p, NoisyLinearImputer(noise=0.0))),
            percentiles)
        theirs = peer(x, sal.numpy(), targets, model)
        ours = road(x, target, sal, ctx.engine, ctx.seed, order=order, fractions=[p / 100 for p in percentiles], noise=0.0)
        np.testing.assert_allclose(ours - base, theirs, atol=1e-5, err_msg=order)


def test_confidence_change_equals_pytorch_grad_cam_cam_mult_image() -> None:
    """CamMultImageConfidenceChange gives p_c(x * L) - p_c(x) with L the map scaled to [0, 1]."""
    model, x, sal, target, ctx = _setup(channels=3, size=8, seed=1)
    cams = normalize(sal, "positive").numpy()
    change = CamMultImageConfidenceChange()(x, cams, [ClassifierOutputSoftmaxTarget(int(t)) for t in target], model)
    base = torch.softmax(model(x), 1).detach().numpy()[np.arange(N), target.numpy()]
    dic = drop_in_confidence(x, target, sal, ctx.engine, ctx.base_logits)
    iic = increase_in_confidence(x, target, sal, ctx.engine, ctx.base_logits)
    np.testing.assert_allclose(dic / 100 * base, np.maximum(-change, 0), atol=1e-6)
    np.testing.assert_array_equal(iic / 100, (change > 0).astype(np.float64))


def test_pytorch_grad_cam_drop_in_confidence_is_not_the_published_average_drop() -> None:
    """grad-cam's DropInConfidence is max(0, -(z_c(x*L) - z_c(x))) on raw logits with no division by the
    original score; Grad-CAM++'s Average Drop (ours) is 100 * max(0, p_c(x) - p_c(x*L)) / p_c(x) on softmax
    probabilities. They disagree even in which samples drop."""
    model, x, sal, target, ctx = _setup(channels=3, size=8, seed=2)
    cams = normalize(sal, "positive").numpy()
    theirs = DropInConfidence()(x, cams, [ClassifierOutputTarget(int(t)) for t in target], model)
    logits = model(x).detach()
    covered = model(x * torch.from_numpy(cams)[:, None]).detach()
    z, zc = logits[torch.arange(N), target].numpy(), covered[torch.arange(N), target].numpy()
    np.testing.assert_allclose(theirs, np.maximum(z - zc, 0), atol=1e-5)  # their definition, pinned
    p = torch.softmax(logits, 1)[torch.arange(N), target].numpy()
    q = torch.softmax(covered, 1)[torch.arange(N), target].numpy()
    ours = drop_in_confidence(x, target, sal, ctx.engine, ctx.base_logits)
    np.testing.assert_allclose(ours, 100 * np.maximum(p - q, 0) / p, rtol=1e-5)  # the paper's
    assert not np.allclose(ours, theirs, atol=1e-3) and not np.allclose(ours / 100, theirs, atol=1e-3)

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

from xaibench.scoring.engine import Engine
from xaibench.scoring.maps import normalize
from xaibench.contract.plugins import load_harness
from xaibench.contract.metric_inputs import MetricContext
from xaibench.authoring.testing import score_metric

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
    ctx = MetricContext(engine=engine, base_logits=engine.logits(x), sample_seeds=tuple(range(len(x))))
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
        ours = road(x, target, sal, ctx.engine, ctx.sample_seeds, order=order,
                    fractions=[p / 100 for p in percentiles], noise=0.0)
        np.testing.assert_allclose(ours - base, theirs, atol=1e-5, err_msg=order)


def _registered(name: str, ctx: MetricContext, x: torch.Tensor, target: torch.Tensor, sal: torch.Tensor,
                **params: object) -> np.ndarray:
    """The registered metric ``name`` with its defaults (``params`` override them), through the runner's seam."""
    spec = load_harness().metrics.get(name)
    return np.asarray(score_metric(spec, ctx, x, target, sal, **{**spec.defaults, **params}), dtype=np.float64)


def road_on_our_draws(model: nn.Module, x: torch.Tensor, sal: torch.Tensor, target: torch.Tensor, order: str,
                      percentiles: list[int], noise: float, sample_seeds: tuple[int, ...]) -> np.ndarray:
    """grad-cam's ROAD (``order`` morf/lerf) averaged over ``percentiles``, its NoisyLinearImputer fed our Gaussian
    draws at the imputed pixels (ours: one standard normal per channel and pixel, per fraction, from each sample's
    own seed in ``sample_seeds``; grad-cam draws one per imputed value, which we replace by ours)."""
    from unittest import mock

    import pytorch_grad_cam.metrics.road as gc_road

    n, fractions = len(x), [p / 100 for p in percentiles]
    remover = {"morf": RemoveMostRelevantFirst, "lerf": RemoveLeastRelevantFirst}[order]
    rngs = [np.random.default_rng(s) for s in sample_seeds]
    draws = [[rng.standard_normal(x.shape[1:]) for _ in fractions] for rng in rngs]
    current: dict[str, torch.Tensor] = {}

    class SameDraws(NoisyLinearImputer):
        def __call__(self, img: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
            current["img"], current["mask"] = img, mask
            return super().__call__(img, mask)

    def randn_like(t: torch.Tensor) -> torch.Tensor:
        i = next(k for k in range(n) if torch.equal(current["img"], x[k]))
        removed = (current["mask"].reshape(-1) == 0).numpy()
        k = fractions.index(round(removed.mean(), 2))
        return torch.from_numpy(draws[i][k].reshape(x.shape[1], -1)[:, removed]).float()

    peer = AveragerAcrossThresholds(lambda p: PerturbationConfidenceMetric(remover(p, SameDraws(noise=noise))),
                                    percentiles)
    with mock.patch.object(gc_road.torch, "randn_like", randn_like):
        return peer(x, sal.numpy(), [ClassifierOutputSoftmaxTarget(int(t)) for t in target], model)


def test_registered_road_with_noise_equals_pytorch_grad_cam_on_the_same_draws() -> None:
    """ROAD with noise 0.05 through the registered metrics, against grad-cam fed the same draws."""
    model, x, sal, target, ctx = _setup(channels=3, size=10, seed=3)
    noise, percentiles = 0.05, [20, 50, 80]
    fractions = [p / 100 for p in percentiles]
    base = torch.softmax(model(x), 1).detach().numpy()[np.arange(N), target.numpy()]
    for order in ("morf", "lerf"):
        theirs = road_on_our_draws(model, x, sal, target, order, percentiles, noise, ctx.sample_seeds)
        ours = _registered(f"road-{order}", ctx, x, target, sal, fractions=fractions, noise=noise)
        np.testing.assert_allclose(ours - base, theirs, atol=1e-5, err_msg=order)
        noiseless = _registered(f"road-{order}", ctx, x, target, sal, fractions=fractions, noise=0.0)
        assert np.abs(ours - noiseless).max() > 1e-4  # the noise is in the comparison


def test_registered_dic_iic_scale_the_map_as_pytorch_grad_cam_scales_a_cam() -> None:
    """Maps with a positive offset (+3): the registered dic/iic keep ``x * L`` with ``L`` grad-cam's own
    ``scale_cam_image`` (min-max), so they equal its CamMultImageConfidenceChange on that ``L``."""
    from pytorch_grad_cam.utils.image import scale_cam_image

    model, x, sal, target, ctx = _setup(channels=3, size=8, seed=4)
    offset = sal + 3.0
    cams = scale_cam_image(offset.numpy())
    change = CamMultImageConfidenceChange()(x, cams, [ClassifierOutputSoftmaxTarget(int(t)) for t in target], model)
    base = torch.softmax(model(x), 1).detach().numpy()[np.arange(N), target.numpy()]
    dic = _registered("dic", ctx, x, target, offset)
    iic = _registered("iic", ctx, x, target, offset)
    np.testing.assert_allclose(dic / 100 * base, np.maximum(-change, 0), atol=1e-6)
    np.testing.assert_array_equal(iic / 100, (change > 0).astype(np.float64))


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

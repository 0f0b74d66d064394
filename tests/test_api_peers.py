"""The peer cross-checks (tests/test_peers_*.py) re-run through ``xaibench.score``, the path a user runs.

Same inputs as the peer tests, the peer libraries called as there; only our side changes: the
registered metric through the public API (model contract, map checks, seeds from the content
keys) instead of the runner's seam. Where a check depends on random draws (ROAD's noise,
infidelity's perturbations) the peer is fed the draws of the seeds the API derives for the call
(:func:`xaibench.running.execution.metric_seeds` with the call's ``seed`` and its default ids, the inputs' digests).
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

import xaibench
from xaibench.running.execution import metric_seeds
from xaibench.contract.plugins import load_harness
from xaibench.api.user_inputs import sample_ids

quantus = pytest.importorskip("quantus", reason="quantus (test extra) is not installed")
from test_peers_quantus import N, _data, _quantus

HARNESS = load_harness()

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore:__array_wrap__:DeprecationWarning")]


@pytest.fixture(autouse=True)
def _quiet() -> None:
    warnings.filterwarnings("ignore", module="quantus")


def _api(name: str, model: nn.Module, x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor,
         maps: np.ndarray | torch.Tensor, masks: np.ndarray | None = None, **params: object) -> np.ndarray:
    return xaibench.score(model, x, y, maps, [name], masks=masks, params={name: params},
                          batch_size=16)[name]


def _seeds(name: str, x: torch.Tensor, **params: object) -> tuple[int, ...]:
    """The per-sample seeds of metric ``name`` in a call with seed 0 and the default ids (the inputs' digests)."""
    spec = HARNESS.metrics.get(name)
    return metric_seeds(0, spec, {**spec.defaults, **params}, sample_ids(None, x))["sample_seeds"]


# -- Quantus 0.6 -----------------------------------------------------------------------------------
def test_pointing_game_equals_quantus() -> None:
    model, x, y, a, s = _data()
    for i in range(0, N, 2):
        a[i, 0][s[i, 0]] += 1.0
    ours = _api("hit-rate", model, x, y, a[:, 0], s[:, 0], tolerance=0.0)
    np.testing.assert_array_equal(ours, _quantus(quantus.PointingGame(disable_warnings=True), model, x, y, a, s))
    assert 0 < ours.sum() < N


def test_relevance_mass_rank_and_attribution_localisation_equal_quantus() -> None:
    model, x, y, a, s = _data(1)
    signed = a - 0.2
    positive = np.maximum(signed, 0)
    for name, given, metric in (("relevance-mass", positive, quantus.RelevanceMassAccuracy(disable_warnings=True)),
                                ("relevance-rank", positive, quantus.RelevanceRankAccuracy(disable_warnings=True)),
                                ("attribution-localisation", signed,
                                 quantus.AttributionLocalisation(disable_warnings=True))):
        np.testing.assert_allclose(_api(name, model, x, y, signed[:, 0], s[:, 0]),
                                   _quantus(metric, model, x, y, given, s), atol=1e-5, err_msg=name)


def test_deletion_auc_equals_the_area_under_quantus_pixel_flipping() -> None:
    model, x, y, a, _ = _data(2)
    theirs = _quantus(quantus.PixelFlipping(features_in_step=5, perturb_baseline=0.0, disable_warnings=True),
                      model, x, y, a)
    p_x = torch.softmax(model(torch.from_numpy(x)), 1).detach().numpy()[np.arange(N), y]
    curve = np.concatenate([p_x[:, None], theirs], axis=1)
    np.testing.assert_allclose(_api("deletion-auc", model, x, y, a[:, 0], steps=20),
                               np.trapezoid(curve, np.linspace(0, 1, 21), axis=1), atol=1e-5)


def test_sparseness_and_entropy_equal_quantus() -> None:
    model, x, y, a, _ = _data(3)
    np.testing.assert_allclose(_api("sparseness", model, x, y, a[:, 0]),
                               _quantus(quantus.Sparseness(disable_warnings=True), model, x, y, a), atol=1e-5)
    np.testing.assert_allclose(_api("entropy", model, x, y, a[:, 0]),
                               _quantus(quantus.Complexity(disable_warnings=True), model, x, y, a), atol=1e-5)


# -- pytorch-grad-cam 1.5 --------------------------------------------------------------------------
def _gradcam_setup(channels: int, size: int, seed: int):  # type: ignore[no-untyped-def]
    from test_peers_gradcam import _setup

    model, x, sal, target, _ = _setup(channels=channels, size=size, seed=seed)
    return model, x, sal, target


def test_road_with_noise_equals_pytorch_grad_cam_on_the_same_draws() -> None:
    from test_peers_gradcam import road_on_our_draws

    model, x, sal, target = _gradcam_setup(3, 10, 3)
    noise, percentiles = 0.05, [20, 50, 80]
    fractions = [p / 100 for p in percentiles]
    base = torch.softmax(model(x), 1).detach().numpy()[np.arange(len(x)), target.numpy()]
    for order in ("morf", "lerf"):
        seeds = _seeds(f"road-{order}", x, fractions=fractions, noise=noise)
        theirs = road_on_our_draws(model, x, sal, target, order, percentiles, noise, seeds)
        ours = _api(f"road-{order}", model, x, target, sal, fractions=fractions, noise=noise)
        np.testing.assert_allclose(ours - base, theirs, atol=1e-5, err_msg=order)


def test_dic_iic_equal_pytorch_grad_cam_confidence_change() -> None:
    from pytorch_grad_cam.metrics.cam_mult_image import CamMultImageConfidenceChange
    from pytorch_grad_cam.utils.image import scale_cam_image
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    model, x, sal, target = _gradcam_setup(3, 8, 4)
    offset = sal + 3.0
    change = CamMultImageConfidenceChange()(x, scale_cam_image(offset.numpy()),
                                            [ClassifierOutputSoftmaxTarget(int(t)) for t in target], model)
    base = torch.softmax(model(x), 1).detach().numpy()[np.arange(len(x)), target.numpy()]
    np.testing.assert_allclose(_api("dic", model, x, target, offset) / 100 * base, np.maximum(-change, 0), atol=1e-6)
    np.testing.assert_array_equal(_api("iic", model, x, target, offset) / 100, (change > 0).astype(np.float64))


# -- captum 0.9 --------------------------------------------------------------------------------------
@pytest.mark.parametrize("normalize", [True, False])
def test_infidelity_equals_captum_on_the_same_perturbations(normalize: bool) -> None:
    from captum.metrics import infidelity as captum_infidelity
    from xaibench_metrics.infidelity import pixel_noise

    runs, n = 12, 4
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(4 * 64, 3)).eval()
    x = torch.rand(n, 3, 8, 8)
    target = torch.tensor([0, 1, 2, 0])
    sal = torch.randn(n, 8, 8)
    params = {"runs": runs, "noise": 0.1, "normalize": normalize}
    ours = xaibench.score(model, x, target, sal, ["infidelity"], additive=True,
                          params={"infidelity": params})["infidelity"]
    noise = pixel_noise(x, runs, 0.1, _seeds("infidelity", x, **params))

    def perturb(inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return noise, inputs - noise

    theirs = captum_infidelity(model, perturb, x, (sal[:, None] / 3).expand(-1, 3, -1, -1), target=target,
                               n_perturb_samples=runs, normalize=normalize)
    np.testing.assert_allclose(ours, theirs.double().numpy(), rtol=1e-5, atol=1e-7)

"""Robustness metrics pinned one definition at a time (mutation testing, docs/mutation.md), by hand.

The noise rule (uniform ``(2u - 1) * scale``, Gaussian ``z * scale``, from each sample's seed), the one-line
refusals, relative sensitivity's NaN for an all-zero map, and Agarwal et al.'s relative stabilities
(RIS, ROS, RRS: Eqs. 2, 5, 3) recomputed in numpy from the equations, with exact zeros and ones in the
inputs and maps, draws that change the prediction, and the default representation (the input of the last
parameterised module), all through the registered metrics.
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn
from xaibench_metrics.robustness import input_noise

from xaibench.scoring.engine import Engine
from xaibench.contract.metric_inputs import MetricContext
from xaibench.contract.plugins import load_harness
from xaibench.authoring.testing import score_metric

N, C, H, W = 6, 2, 4, 4
SEEDS = tuple(range(40, 40 + N))


def _inputs() -> torch.Tensor:
    x = torch.from_numpy(np.random.default_rng(5).random((N, C, H, W)).astype(np.float32)) + 0.25
    x[:3, :, 0, 0] = 0.0  # exact zeros: rel(a, b) divides by eps_min there
    x[:, 0, 1, 1] = 1.0   # exact ones
    x[:, 0, 0, 1], x[:, 1, 0, 1] = 0.5, 0.0  # phi = 1 exactly at (0, 1)
    return x


def _phi(x: torch.Tensor) -> torch.Tensor:
    """The method's map: 2 x channel 0 + channel 1 (0 where both are 0, 1 at pixel (0, 1))."""
    return 2.0 * x[:, 0] + x[:, 1]


def _model() -> nn.Module:
    """Three parameterised modules; the classifier (the last) reads the second convolution's flattened output."""
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(C, 3, 1), nn.ReLU(), nn.Conv2d(3, 2, 1), nn.Flatten(), nn.Linear(2 * H * W, 3)).eval()


def _score(name: str, model: nn.Module, x: torch.Tensor, maps: torch.Tensor, **params: object) -> np.ndarray:
    spec = load_harness().metrics.get(name)
    engine = Engine(model, "cpu", batch_size=4)
    ctx = MetricContext(engine=engine, base_logits=engine.logits(x), model=lambda: copy.deepcopy(model),
                        explain=lambda model=None, inputs=None, targets=None: _phi(inputs), sample_seeds=SEEDS)
    return np.asarray(score_metric(spec, ctx, x, model(x).argmax(1), maps, **{**spec.defaults, **params}),
                      dtype=np.float64)


def _uniform(draws: int, scale: float) -> torch.Tensor:
    """The documented draws, ``(draws, N, C, H, W)`` float32: sample i's u ~ U[0, 1) from its seed, ``(2u - 1) * scale``."""
    return torch.stack([(2 * torch.rand((draws, C, H, W), generator=torch.Generator().manual_seed(s),
                                        dtype=torch.float64) - 1) * scale for s in SEEDS], 1).float()


def test_input_noise_is_the_documented_uniform_and_gaussian_draw_of_each_seed() -> None:
    x = _inputs()
    torch.testing.assert_close(input_noise(x, SEEDS, 3, "uniform", 0.2), _uniform(3, 0.2), rtol=0, atol=0)
    gaussian = torch.stack([torch.randn((2, C, H, W), generator=torch.Generator().manual_seed(s),
                                        dtype=torch.float64) * 0.3 for s in SEEDS], 1).float()
    torch.testing.assert_close(input_noise(x, SEEDS, 2, "gaussian", 0.3), gaussian, rtol=0, atol=0)
    assert input_noise(x, SEEDS, 1, "uniform", 0.2).shape == (1, N, C, H, W)  # one draw is enough


@pytest.mark.parametrize(("noise", "draws", "scale", "seeds", "message"), [
    ("salt", 3, 0.1, SEEDS, "noise must be one of uniform, gaussian, got 'salt'"),
    ("uniform", 0, 0.1, SEEDS, "robustness metrics need draws >= 1 and a positive noise scale, got 0 and 0.1"),
    ("gaussian", 3, 0.0, SEEDS, "robustness metrics need draws >= 1 and a positive noise scale, got 3 and 0.0"),
    ("uniform", 3, 0.1, SEEDS[:2], "need one seed per sample, got 2 for 6 samples"),
])
def test_input_noise_refuses_in_one_line(noise: str, draws: int, scale: float, seeds: tuple[int, ...],
                                         message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        input_noise(_inputs(), seeds, draws, noise, scale)


def test_relative_sensitivity_is_nan_for_an_all_zero_map_and_exact_for_a_map_of_norm_below_one() -> None:
    """Phi(x + d) - Phi(x) = 2 d_0 + d_1 (linear map); relative to ||Phi(x)||, here scaled to norm 0.5."""
    model, x = _model(), _inputs()
    d = _uniform(4, 0.05)
    maps = _phi(x)
    factor = 0.5 / maps.reshape(N, -1).double().norm(dim=1)
    distances = torch.stack([_phi(x + dk).double() - maps.double() for dk in d]).reshape(4, N, -1).norm(dim=2)
    small = (maps.double() * factor[:, None, None]).float()

    def scaled(model=None, inputs=None, targets=None):  # type: ignore[no-untyped-def]
        return (_phi(inputs).double() * factor.repeat(len(inputs) // N)[:, None, None]).float()  # k stacked copies

    for name, reduce in (("max-sensitivity", distances.amax(0)), ("avg-sensitivity", distances.mean(0))):
        spec = load_harness().metrics.get(name)
        engine = Engine(model, "cpu", batch_size=4)
        ctx = MetricContext(engine=engine, base_logits=engine.logits(x), explain=scaled, sample_seeds=SEEDS)
        got = score_metric(spec, ctx, x, model(x).argmax(1), small, **{**spec.defaults, "draws": 4})
        np.testing.assert_allclose(got, (reduce * factor / 0.5).numpy(), rtol=1e-5)  # ||small|| = 0.5
        zero = _score(name, model, x, torch.zeros(N, H, W), draws=4)
        assert np.isnan(zero).all()


def _rel(a: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    a, b = a.reshape(len(a), -1).astype(np.float64), b.reshape(len(b), -1).astype(np.float64)
    return np.linalg.norm((a - b) / np.where(a == 0, eps, a), axis=1)


def _by_hand(x: torch.Tensor, model: nn.Module, scale: float, draws: int, eps: float) -> dict[str, np.ndarray]:
    """RIS / ROS / RRS per sample: max over the draws that keep the predicted class, NaN where none does."""
    with torch.no_grad():
        logits = model(x).double().numpy()
        represent = lambda v: model[:4](v).double().numpy()
        phi = _phi(x).numpy()
        ratios: dict[str, list[np.ndarray]] = {"ris": [], "ros": [], "rrs": []}
        keep = []
        for dk in _uniform(draws, scale):
            moved = x + dk
            moved_logits = model(moved).double().numpy()
            change = _rel(phi, _phi(moved).numpy(), eps)
            ratios["ris"].append(change / np.maximum(_rel(x.numpy(), moved.numpy(), eps), eps))
            ratios["ros"].append(change / np.maximum(np.linalg.norm(moved_logits - logits, axis=1), eps))
            ratios["rrs"].append(change / np.maximum(_rel(represent(x), represent(moved), eps), eps))
            keep.append(moved_logits.argmax(1) == logits.argmax(1))
    valid = np.array(keep)
    return {k: np.where(valid.any(0), np.where(valid, np.array(v), -np.inf).max(0), np.nan) for k, v in ratios.items()}


def test_relative_stabilities_equal_the_equations_by_hand_over_the_draws_that_keep_the_prediction() -> None:
    model, x = _model(), _inputs()
    with torch.no_grad():  # centre the logits so that noise of 0.3 flips some predictions
        model[4].bias.sub_(model(x).mean(0))
    scale, draws, eps = 0.3, 5, 1e-6
    expected = _by_hand(x, model, scale, draws, eps)
    flips = np.array([(model(x + dk).argmax(1) != model(x).argmax(1)).numpy() for dk in _uniform(draws, scale)])
    assert flips.any() and not flips.all(0).all()  # some draws are left out, most samples keep some
    for name, key in (("relative-input-stability", "ris"), ("relative-output-stability", "ros"),
                      ("relative-representation-stability", "rrs")):
        got = _score(name, model, x, _phi(x), draws=draws, scale=scale)
        np.testing.assert_allclose(got, expected[key], rtol=1e-6, err_msg=name)


def test_relative_stability_ignores_left_out_draws_even_where_every_kept_ratio_is_below_one() -> None:
    """ROS with logits that move a lot and maps without zeros: every kept ratio is below 1, so a left-out draw
    must not count as 1."""
    model, x = _model(), _inputs()
    x[:3, :, 0, 0] = 0.5
    with torch.no_grad():
        model[4].weight.mul_(1000.0)
        model[4].bias.sub_(model(x).mean(0))
    expected = _by_hand(x, model, 0.3, 5, 1e-6)["ros"]
    finite = expected[np.isfinite(expected)]
    assert len(finite) and (finite < 1).all()
    flips = np.array([(model(x + dk).argmax(1) != model(x).argmax(1)).numpy() for dk in _uniform(5, 0.3)])
    assert flips[:, np.isfinite(expected)].any()
    np.testing.assert_allclose(_score("relative-output-stability", model, x, _phi(x), draws=5, scale=0.3),
                               expected, rtol=1e-6)


def test_representation_errors_are_one_line() -> None:
    x = _inputs()
    with pytest.raises(ValueError, match=r"^layer 'nope' is not a module of the model$"):
        _score("relative-representation-stability", _model(), x, _phi(x), draws=2, layer="nope")
    with pytest.raises(ValueError, match=r"^relative-representation-stability \(set param layer to the module whose "
                                         r"output is the representation\): no parameterised layer produces this "
                                         r"network's output$"):
        _score("relative-representation-stability", nn.Sequential(nn.Flatten()).eval(), x, _phi(x), draws=2)

"""eMPRT, sMPRT and the random logit test: analytic cases and Quantus 0.6 on the same models, noise and classes."""
from __future__ import annotations

import copy
import warnings
from unittest import mock

import numpy as np
import pytest
import torch
from torch import nn
from xaibench_metrics.randomization_revisited import discrete_entropy, off_classes
from xaibench_metrics.robustness import input_noise

from xaibench.scoring.engine import Engine
from xaibench.contract.metric_inputs import MetricContext
from xaibench.contract.plugins import load_harness
from xaibench.authoring.testing import score_metric

N, C, H, W = 6, 1, 8, 8
SEEDS = tuple(range(7, 7 + N))


class FixedConv(nn.Conv2d):
    """A conv layer whose re-initialisation is deterministic, so two libraries randomize it identically."""

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.weight.copy_(torch.cos(torch.arange(self.weight.numel(), dtype=torch.float32)).reshape(self.weight.shape))
            if self.bias is not None:
                self.bias.fill_(0.05)


class FixedLinear(nn.Linear):
    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.weight.copy_(torch.sin(torch.arange(self.weight.numel(), dtype=torch.float32) * 0.7).reshape(self.weight.shape) * 0.1)
            self.bias.fill_(-0.02)


def _model(classes: int = 3) -> nn.Module:
    torch.manual_seed(0)
    m = nn.Sequential(FixedConv(C, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), FixedLinear(4 * H * W, classes))
    with torch.no_grad():  # trained-looking weights, different from the deterministic re-initialisation
        for p in m.parameters():
            p.copy_(torch.randn(p.shape) * 0.3)
    return m.eval()


def _inputs() -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(4).random((N, C, H, W)).astype(np.float32))


def gradient(model: nn.Module, inputs: np.ndarray, targets: np.ndarray, **_: object) -> np.ndarray:
    """The target logit's gradient, (N, 1, H, W): a deterministic explain_func for both sides."""
    x = torch.as_tensor(np.asarray(inputs, dtype=np.float32)).reshape(-1, C, H, W).requires_grad_(True)
    with torch.enable_grad():
        model(x).gather(1, torch.as_tensor(np.asarray(targets)).long()[:, None]).sum().backward()
    return x.grad.numpy()  # type: ignore[union-attr]


def _score(name: str, model: nn.Module, x: torch.Tensor, targets: torch.Tensor, explain=None,
           **params: object) -> np.ndarray:  # type: ignore[no-untyped-def]
    """The registered metric through the seam, as the runner calls it."""
    if explain is None:
        def explain(model_: nn.Module | None = None, inputs: torch.Tensor | None = None,
                    targets_: torch.Tensor | None = None, **kw: torch.Tensor) -> torch.Tensor:
            t = kw.get("targets", targets_)
            xs, t = x if inputs is None else inputs, targets if t is None else t
            return torch.from_numpy(gradient(model if model_ is None else model_, xs,
                                             t.repeat(len(xs) // len(t))))[:, 0]  # k stacked copies
    spec = load_harness().metrics.get(name)
    engine = Engine(model, "cpu", batch_size=4)
    ctx = MetricContext(engine=engine, base_logits=engine.logits(x), model=lambda: copy.deepcopy(model),
                        explain=explain, sample_seeds=SEEDS)
    return np.asarray(score_metric(spec, ctx, x, targets, explain(inputs=x), **{**spec.defaults, **params}),
                      dtype=np.float64)


def test_a_map_that_ignores_the_model_fails_every_check() -> None:
    """An edge detector (the map of the input alone): eMPRT 0, sMPRT 1, random logit 1 (identical maps)."""
    model, x = _model(), _inputs()
    targets = model(x).argmax(1)
    def edges(model=None, inputs=None, targets=None):  # type: ignore[no-untyped-def]
        v = (inputs if inputs is not None else x)[:, 0]
        return v.diff(dim=-1, prepend=v[:, :, :1]).abs()

    np.testing.assert_allclose(_score("emprt", model, x, targets, edges), 0.0, atol=1e-12)
    np.testing.assert_allclose(_score("smprt", model, x, targets, edges, draws=3), 1.0, atol=1e-12)
    np.testing.assert_allclose(_score("random-logit", model, x, targets, edges), 1.0, atol=1e-12)


def test_off_classes_are_uniform_over_the_other_classes_and_never_the_target() -> None:
    seeds = tuple(range(3000))
    targets = torch.tensor([s % 4 for s in seeds])
    off = off_classes(targets, 4, seeds)
    assert not (off == targets).any()
    counts = np.bincount(((off - targets) % 4).numpy(), minlength=4)
    assert counts[0] == 0 and all(abs(c - 1000) < 120 for c in counts[1:])  # 3 other classes, ~1000 each


def test_discrete_entropy_of_a_uniform_histogram_is_log_bins() -> None:
    maps = np.tile(np.arange(100, dtype=np.float64), (2, 1))
    np.testing.assert_allclose(discrete_entropy(maps, 100), np.log(100))
    np.testing.assert_allclose(discrete_entropy(np.zeros((1, 10)), 10), 0.0)


quantus = pytest.importorskip("quantus", reason="quantus (test extra) is not installed")


def _quantus(metric, model, x, targets, a=None) -> np.ndarray:  # type: ignore[no-untyped-def]
    warnings.filterwarnings("ignore", module="quantus")
    return np.asarray(metric(model=model, x_batch=x.numpy(), y_batch=targets.numpy(), a_batch=a,
                             explain_func=gradient, device="cpu"), dtype=np.float64)


def test_emprt_equals_quantus() -> None:
    model, x = _model(), _inputs()
    targets = model(x).argmax(1)
    ours = _score("emprt", model, x, targets, n_bins=20)
    theirs = _quantus(quantus.EfficientMPRT(complexity_func_kwargs={"n_bins": 20}, disable_warnings=True),
                      model, x, targets, gradient(model, x.numpy(), targets.numpy()))
    assert np.isfinite(ours).all() and np.ptp(ours) > 0
    np.testing.assert_allclose(ours, theirs, rtol=1e-9)


def test_smprt_equals_quantus_on_the_same_noise() -> None:
    model, x = _model(), _inputs()
    targets = model(x).argmax(1)
    draws = 4
    z = input_noise(x, SEEDS, draws - 1, "gaussian", 1.0).double().numpy()
    calls = iter(list(z) * 10)  # Quantus draws the same draws - 1 noises for each model it explains
    ours = _score("smprt", model, x, targets, draws=draws, noise_magnitude=0.2)
    with mock.patch("numpy.random.randn", lambda *shape: next(calls)):
        theirs = _quantus(quantus.SmoothMPRT(nr_samples=draws, noise_magnitude=0.2, return_last_correlation=True,
                                             disable_warnings=True), model, x, targets)
    assert np.isfinite(ours).all() and ours.max() < 0.99 and (theirs < 0).any()  # a negative rho is in the check
    np.testing.assert_allclose(ours, np.abs(theirs), atol=1e-6)  # ours scores |rho| (no reward for anti-correlation)


def test_random_logit_equals_quantus_with_spearman_similarity() -> None:
    """Two classes: the off class is the other one on both sides (Quantus draws it from its own seed)."""
    model, x = _model(classes=2), _inputs()
    targets = model(x).argmax(1)
    ours = _score("random-logit", model, x, targets, similarity_measure="spearman", sign="raw")
    theirs = _quantus(quantus.RandomLogit(num_classes=2, similarity_func=quantus.similarity_func.correlation_spearman,
                                          disable_warnings=True), model, x, targets,
                      gradient(model, x.numpy(), targets.numpy()))
    assert np.isfinite(ours).all()
    np.testing.assert_allclose(ours, np.abs(theirs), atol=1e-6)  # ours scores |rho| (no reward for anti-correlation)


def test_smprt_without_noise_is_one_draw_and_noise_changes_it() -> None:
    model, x = _model(), _inputs()
    targets = model(x).argmax(1)
    one = _score("smprt", model, x, targets, draws=1)
    np.testing.assert_allclose(_score("smprt", model, x, targets, draws=4, noise_magnitude=0.0), one, atol=1e-12)
    assert not np.allclose(_score("smprt", model, x, targets, draws=4, noise_magnitude=0.2), one)


# -- definitions pinned one line at a time (mutation testing, docs/mutation.md) --------------------------------

def _fixed(trained: torch.Tensor, randomized: torch.Tensor):  # type: ignore[no-untyped-def]
    """An explain that returns ``trained`` for the trained model (model None) and ``randomized`` for any other."""
    return lambda model=None, inputs=None, targets=None: (trained if model is None else randomized).clone()


def test_emprt_is_the_relative_entropy_rise_by_hand_and_nan_for_a_constant_trained_map() -> None:
    """Two bins: a trained map half 0 / half 1 has H = ln 2 (below one nat), a randomized map a quarter 0 /
    three quarters 1 has H = -(1/4 ln 1/4 + 3/4 ln 3/4); eMPRT = (H_rand - ln 2) / ln 2. A constant trained
    map (H = 0) is NaN."""
    trained = torch.zeros(N, H * W)
    trained[:, H * W // 2:] = 1.0
    trained[0] = 0.5  # constant
    randomized = torch.zeros(N, H * W)
    randomized[:, H * W // 4:] = 1.0
    trained, randomized = trained.reshape(N, H, W), randomized.reshape(N, H, W)
    model, x = _model(), _inputs()
    got = _score("emprt", model, x, model(x).argmax(1), _fixed(trained, randomized), n_bins=2)
    h_rand = -(0.25 * np.log(0.25) + 0.75 * np.log(0.75))
    assert np.isnan(got[0])
    np.testing.assert_allclose(got[1:], (h_rand - np.log(2)) / np.log(2), rtol=1e-12)
    with pytest.raises(ValueError, match=r"^n_bins must be at least 2, got 1$"):
        _score("emprt", model, x, model(x).argmax(1), _fixed(trained, randomized), n_bins=1)


def test_smprt_averages_maps_over_noise_scaled_by_each_samples_range_by_hand() -> None:
    """Two channels of different ranges ([0, 1] and [0, 5]): the noise's standard deviation is
    ``noise_magnitude * (max - min)`` of the whole sample, not per channel. With ``draws = 2`` the smoothed map
    is ``(Phi(x) + Phi(x + z * spread)) / 2``, z the standard normal draw of the sample's seed; the score is
    ``|Spearman|`` of the trained and randomized smoothed maps (scale-free, so ``abs`` sign handling is |.|)."""
    from scipy.stats import spearmanr

    c = 2
    rng = np.random.default_rng(8)
    x = torch.from_numpy(rng.random((N, c, H, W)).astype(np.float32)) * torch.tensor([1.0, 5.0])[None, :, None, None]
    model = nn.Sequential(nn.Conv2d(c, 2, 1), nn.Flatten(), nn.Linear(2 * H * W, 3)).eval()
    phi = lambda v: v[:, 0] + 2.0 * v[:, 1] ** 2
    phi_rand = lambda v: v[:, 0] * v[:, 1] - v[:, 1]

    def explain(model=None, inputs=None, targets=None):  # type: ignore[no-untyped-def]
        return (phi if model is None else phi_rand)(x if inputs is None else inputs)

    magnitude = 0.1
    got = _score("smprt", model, x, model(x).argmax(1), explain, draws=2, noise_magnitude=magnitude)
    expected = []
    for i, s in enumerate(SEEDS):
        z = torch.randn((1, c, H, W), generator=torch.Generator().manual_seed(s), dtype=torch.float64).float()
        moved = x[i:i + 1] + z * (magnitude * (x[i].max() - x[i].min()))
        t = (phi(x[i:i + 1]).double() + phi(moved).double()) / 2
        r = (phi_rand(x[i:i + 1]).double() + phi_rand(moved).double()) / 2
        expected.append(abs(spearmanr(t.abs().ravel(), r.abs().ravel()).statistic))
    assert 0.05 < min(expected) and max(expected) < 0.95
    np.testing.assert_allclose(got, expected, atol=1e-9)


def test_smprt_with_one_draw_reexplains_only_the_randomized_model_once() -> None:
    """Cost ``2 * draws - 1`` maps: one draw is the randomized model's map of the input itself, nothing else."""
    model, x = _model(), _inputs()
    calls: list[int] = []
    maps = torch.rand(N, H, W, generator=torch.Generator().manual_seed(1))

    def explain(model=None, inputs=None, targets=None):  # type: ignore[no-untyped-def]
        calls.append(1)
        return maps.clone()

    _score("smprt", model, x, model(x).argmax(1), explain, draws=1)
    assert len(calls) == 2  # _score's own call for the trained maps, and the randomized model's


@pytest.mark.parametrize(("draws", "magnitude"), [(0, 0.1), (2, -0.1)])
def test_smprt_refuses_no_draws_and_negative_noise_in_one_line(draws: int, magnitude: float) -> None:
    model, x = _model(), _inputs()
    with pytest.raises(ValueError, match=rf"^sMPRT needs draws >= 1 and noise_magnitude >= 0, got {draws} and "
                                         rf"{magnitude}$"):
        _score("smprt", model, x, model(x).argmax(1), draws=draws, noise_magnitude=magnitude)


def test_smprt_leaves_the_shared_randomized_maps_as_they_were_for_emprt() -> None:
    """sMPRT accumulates its smoothed randomized map on a copy: eMPRT after it on the same memo scores as alone,
    also when the method returns float64 maps (no dtype conversion that would copy anyway)."""
    model, x = _model(), _inputs()
    targets = model(x).argmax(1)
    trained = torch.rand(N, H, W, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    randomized = torch.rand(N, H, W, generator=torch.Generator().manual_seed(3), dtype=torch.float64)

    def explain(model=None, inputs=None, targets=None):  # type: ignore[no-untyped-def]
        """float64 maps that move with the input (an accumulation on the shared maps would not be a mere rescaling)."""
        v = x if inputs is None else inputs  # k stacked copies of the samples: the maps repeat per copy
        return (trained if model is None else randomized).repeat(len(v) // N, 1, 1) + v[:, 0].double() ** 2

    memo: dict = {}
    engine = Engine(model, "cpu", batch_size=4)
    ctx = MetricContext(engine=engine, base_logits=engine.logits(x), model=lambda: copy.deepcopy(model),
                        explain=explain, sample_seeds=SEEDS,
                        shared=lambda key, compute: memo[key] if key in memo else memo.setdefault(key, compute()))
    harness = load_harness()
    smprt, emprt = harness.metrics.get("smprt"), harness.metrics.get("emprt")
    score_metric(smprt, ctx, x, targets, explain(), **{**smprt.defaults, "draws": 3})
    after = score_metric(emprt, ctx, x, targets, explain(), **emprt.defaults)
    np.testing.assert_array_equal(after, _score("emprt", model, x, targets, explain))


def test_random_logit_refuses_a_one_class_model_and_an_unknown_similarity_in_one_line() -> None:
    with pytest.raises(ValueError, match=r"^the random logit test needs a model with at least two classes$"):
        off_classes(torch.zeros(2, dtype=torch.long), 1, (1, 2))
    model, x = _model(), _inputs()
    with pytest.raises(ValueError, match=r"^similarity_measure must be one of \('spearman', 'ssim'\), got 'l2'$"):
        _score("random-logit", model, x, model(x).argmax(1), similarity_measure="l2")


def test_a_model_without_resettable_layers_is_one_line_for_the_fully_randomized_model() -> None:
    model = nn.Sequential(nn.Flatten(), nn.ReLU()).eval()  # nothing to re-initialise
    x = _inputs()
    with pytest.raises(ValueError, match=r"^the model has no layers with reset_parameters\(\) to randomize$"):
        _score("emprt", model, x, torch.zeros(N, dtype=torch.long), _fixed(x[:, 0], x[:, 0]))

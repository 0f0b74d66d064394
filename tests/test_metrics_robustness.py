"""Robustness metrics: analytic cases, Quantus 0.6 on the same perturbation draws, common random numbers."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_SUITE
from torch import nn
from xaibench_metrics.robustness import input_noise

from xaibench import hookimpl, leaderboard
from xaibench.scoring.engine import Engine
from xaibench.contract.plugins import load_harness
from xaibench.running.runner import Runner, RunOptions
from xaibench.contract.specs import MethodSpec
from xaibench.contract.metric_inputs import MetricContext
from xaibench.storage.store import Store
from xaibench.suites.suite import load_suite
from xaibench.authoring.testing import score_metric

N, C, H, W = 6, 2, 8, 8
ROBUSTNESS = ("max-sensitivity", "avg-sensitivity", "local-lipschitz", "relative-input-stability",
              "relative-representation-stability", "relative-output-stability")
SEEDS = tuple(range(100, 100 + N))


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(C, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * H * W, 3)).eval()


def _inputs() -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(1).random((N, C, H, W)).astype(np.float32)) + 0.5


def gradient(model: nn.Module, inputs: np.ndarray, targets: np.ndarray, **_: object) -> np.ndarray:
    """A deterministic explain_func for both sides: the target logit's gradient summed over channels, (N, 1, H, W)."""
    x = torch.as_tensor(np.asarray(inputs, dtype=np.float32)).reshape(-1, C, H, W).requires_grad_(True)
    with torch.enable_grad():
        model(x).gather(1, torch.as_tensor(np.asarray(targets)).long()[:, None]).sum().backward()
    return x.grad.sum(1, keepdim=True).numpy()  # type: ignore[union-attr]


def _score(name: str, model: nn.Module, x: torch.Tensor, targets: torch.Tensor,
           explain, **params: object) -> np.ndarray:  # type: ignore[no-untyped-def]
    """The registered metric, called through the seam exactly as the runner calls it."""
    spec = load_harness().metrics.get(name)
    maps = explain(model=None, inputs=x)
    engine = Engine(model, "cpu", batch_size=4)
    ctx = MetricContext(engine=engine, base_logits=engine.logits(x), model=lambda: _model_copy(model),
                        explain=explain, sample_seeds=SEEDS)
    return np.asarray(score_metric(spec, ctx, x, targets, maps, **{**spec.defaults, **params}), dtype=np.float64)


def _model_copy(model: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(model)


def _gradient_explainer(model: nn.Module, targets: torch.Tensor):  # type: ignore[no-untyped-def]
    def explain(inputs: torch.Tensor, **other: nn.Module | None) -> torch.Tensor:
        other_model = other.get("model")
        chosen = model if other_model is None else other_model
        classes = targets.repeat(len(inputs) // len(targets))  # k stacked copies of the samples
        return torch.from_numpy(gradient(chosen, inputs.numpy(), classes.numpy()))[:, 0]
    return explain


@pytest.mark.parametrize("name", ROBUSTNESS)
def test_a_map_invariant_to_the_perturbation_scores_zero(name: str) -> None:
    model, x = _model(), _inputs()
    targets = model(x).argmax(1)
    fixed = torch.rand(N, H, W, generator=torch.Generator().manual_seed(3)) + 0.1
    values = _score(name, model, x, targets, lambda model=None, inputs=None: fixed.repeat(len(inputs) // N, 1, 1),
                    draws=4, scale=0.01)  # every draw's copy of the samples in one call
    np.testing.assert_array_equal(values, np.zeros(N))


def test_sensitivity_of_the_identity_map_is_the_noise_norm_over_the_map_norm() -> None:
    """Phi(x) = x[:, 0]: Phi(x + d) - Phi(x) = d[:, 0], with d drawn independently here from the documented rule."""
    model, x = _model(), _inputs()
    targets = torch.zeros(N, dtype=torch.long)
    ident = lambda model=None, inputs=None: inputs[:, 0].clone()
    draws, r = 5, 0.2
    expected_max, expected_avg = [], []
    for i, s in enumerate(SEEDS):
        u = torch.rand((draws, C, H, W), generator=torch.Generator().manual_seed(s), dtype=torch.float64)
        d0 = ((2 * u - 1) * r).float()[:, 0].double()
        norms = d0.reshape(draws, -1).norm(dim=1) / x[i, 0].double().norm()
        expected_max.append(norms.max().item())
        expected_avg.append(norms.mean().item())
    np.testing.assert_allclose(_score("max-sensitivity", model, x, targets, ident, draws=draws, scale=r),
                               expected_max, rtol=1e-5)
    np.testing.assert_allclose(_score("avg-sensitivity", model, x, targets, ident, draws=draws, scale=r),
                               expected_avg, rtol=1e-5)


def test_the_noise_of_a_sample_depends_on_its_seed_only() -> None:
    x = _inputs()
    alone = input_noise(x[2:3], SEEDS[2:3], 3, "gaussian", 0.1)
    together = input_noise(x, SEEDS, 3, "gaussian", 0.1)
    torch.testing.assert_close(alone[:, 0], together[:, 2], rtol=0, atol=0)
    with pytest.raises(ValueError, match="noise must be one of"):
        input_noise(x, SEEDS, 3, "salt", 0.1)
    with pytest.raises(ValueError, match="one seed per sample"):
        input_noise(x, SEEDS[:2], 3, "uniform", 0.1)


quantus = pytest.importorskip("quantus", reason="quantus (test extra) is not installed")


def _replay(moved: list[np.ndarray]):  # type: ignore[no-untyped-def]
    """A Quantus perturb_func that returns our perturbed inputs, draw after draw: both sides see the same x'."""
    it = iter(moved)

    def perturb(arr: np.ndarray, **_: object) -> np.ndarray:
        return next(it).reshape(arr.shape)
    return perturb


QUANTUS = {
    "max-sensitivity": lambda p: quantus.MaxSensitivity(nr_samples=p["draws"], perturb_func=p["perturb"], disable_warnings=True),
    "avg-sensitivity": lambda p: quantus.AvgSensitivity(nr_samples=p["draws"], perturb_func=p["perturb"], disable_warnings=True),
    "local-lipschitz": lambda p: quantus.LocalLipschitzEstimate(nr_samples=p["draws"], perturb_func=p["perturb"], disable_warnings=True,
                                                                normalise=False),
    "relative-input-stability": lambda p: quantus.RelativeInputStability(nr_samples=p["draws"],
                                                                         perturb_func=p["perturb"], disable_warnings=True),
    "relative-output-stability": lambda p: quantus.RelativeOutputStability(nr_samples=p["draws"],
                                                                           perturb_func=p["perturb"], disable_warnings=True),
    "relative-representation-stability": lambda p: quantus.RelativeRepresentationStability(
        nr_samples=p["draws"], perturb_func=p["perturb"], disable_warnings=True, layer_names=["1"]),
}


@pytest.mark.parametrize("name", ROBUSTNESS)
def test_equals_quantus_on_the_same_draws(name: str) -> None:
    warnings.filterwarnings("ignore", module="quantus")
    model, x = _model(), _inputs()
    targets = model(x).argmax(1)
    spec = load_harness().metrics.get(name)
    draws, noise, scale = 4, spec.defaults["noise"], 0.02  # small noise: no draw changes the prediction
    moved = [(x + d).numpy() for d in input_noise(x, SEEDS, draws, noise, scale)]
    assert all((model(torch.from_numpy(m)).argmax(1) == targets).all() for m in moved)
    params = {"layer": "1"} if name == "relative-representation-stability" else {}
    ours = _score(name, model, x, targets, _gradient_explainer(model, targets), draws=draws, scale=scale, **params)
    metric = QUANTUS[name]({"draws": draws, "perturb": _replay(moved)})
    theirs = np.asarray(metric(model=model, x_batch=x.numpy(), y_batch=targets.numpy(),
                               a_batch=gradient(model, x.numpy(), targets.numpy()), explain_func=gradient,
                               device="cpu"), dtype=np.float64)
    assert np.isfinite(ours).all() and (ours > 0).all()
    np.testing.assert_allclose(ours, theirs, rtol=1e-4)


class _Twin:
    """A second method whose maps are identical to input-times-one's."""

    @hookimpl
    def xaibench_register_methods(self, register):  # type: ignore[no-untyped-def]
        register(MethodSpec(name="twin", explain=lambda model, x, target, ctx: x[:, 0].clone(),
                            modalities=frozenset({"image"}), needs_gradients=False, description="input-times-one"))


def test_methods_with_identical_maps_get_identical_scores(tmp_path: Path, tiny_plugin) -> None:  # type: ignore[no-untyped-def]
    """Common random numbers: the draws depend on dataset, model, metric and sample, never on the method."""
    text = TINY_SUITE.replace("methods: [", "methods: [twin, ").replace(
        "metrics: [dic, iic, hit-rate]", "metrics: [{name: max-sensitivity, params: {draws: 3}}, {name: local-lipschitz, params: {draws: 3}}]")
    (tmp_path / "suite.yaml").write_text(text)
    harness = load_harness([("tiny", tiny_plugin), ("twin", _Twin())])
    with Store(tmp_path / "r.sqlite") as store:
        summary = Runner(harness, load_suite(tmp_path / "suite.yaml"), store, RunOptions(progress=False)).run()
        assert not summary.failed, summary.failed
        recs = {(r.method, r.metric): r for r in leaderboard.records(store, "tiny")}
        for metric in ("max-sensitivity", "local-lipschitz"):
            twin, original = (store.scores(recs[(m, metric)].cell_key) for m in ("twin", "input-times-one"))
            assert twin == original and len(twin) == 8 and all(v > 0 for v in twin.values())
            assert recs[("random", metric)].mean != recs[("twin", metric)].mean

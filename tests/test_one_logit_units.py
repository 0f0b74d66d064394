"""Issue 42.1: a one-logit (sigmoid/BCE) model is explained and scored in its own units.

The explained scalar is the user's logit ``z`` for class 1 and ``-z`` for class 0; every probability is
``sigmoid(z)`` for class 1 and ``1 - sigmoid(z)`` for class 0. Expected values come from outside the harness:
captum, zennit and pytorch-grad-cam run on the user's own model (its single output), completeness and DiC
worked by hand from ``z``, one Adam step on ``binary_cross_entropy_with_logits`` written out, and the same
model written by hand as a two-class softmax model ``[0, z]`` (probabilities only). The issue's case: the
user's integrated gradients of ``z`` scored 1.000 (targets=1) and 3.000 (class 0) against half of ``z``.
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import TinyPlugin, tiny_samples
from torch import nn

import xaibench
from xaibench.contract.outputs import OutputForm, conform
from xaibench.contract.plugins import load_harness
from xaibench.api.results import resolve_suite, run_suite
from xaibench.running.runner import Runner, RunOptions
from xaibench.contract.specs import Samples, TrainRecipe
from xaibench.storage.store import Store
from xaibench.models.training import train

N, S = 6, 16


class Binary(nn.Module):
    """A sigmoid/BCE classifier: one logit ``z`` per input."""

    def __init__(self, num_classes: int = 2, in_channels: int = 1) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(in_channels, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Linear(4 * (S // 2) ** 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


class TwoClass(nn.Module):
    """The user's model written by hand as a two-class softmax model: logits ``[0, z]``."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.inner(x)
        return torch.cat([torch.zeros_like(z), z], 1)


def centred(model: Binary, x: torch.Tensor) -> Binary:
    """``model`` with its bias moved so that half of ``x`` is predicted class 1 and half class 0."""
    with torch.no_grad():
        z = model(x)[:, 0].sort().values
        model.head.bias -= (z[len(z) // 2 - 1] + z[len(z) // 2]) / 2
    return model.eval()


def _user() -> tuple[Binary, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    x = torch.rand(N, 1, S, S)
    model = centred(Binary(), x)
    with torch.no_grad():
        z = model(x)[:, 0]
    assert (z > 0).sum() == N // 2 and (z < 0).sum() == N // 2
    return model, x, z


def _signs(targets: torch.Tensor) -> torch.Tensor:
    """+1 for class 1 (explained as z), -1 for class 0 (explained as -z), shaped to multiply ``(N, H, W)`` maps."""
    return (2 * targets - 1).float()[:, None, None]


def _captum_ig(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    from captum.attr import IntegratedGradients

    return IntegratedGradients(model).attribute(x, target=0, n_steps=64)[:, 0].detach()


def _zennit_lrp(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    from zennit.attribution import Gradient
    from zennit.composites import EpsilonPlusFlat
    from zennit.torchvision import ResNetCanonizer

    with Gradient(model, EpsilonPlusFlat(canonizers=[ResNetCanonizer()])) as attributor:
        _, relevance = attributor(x, lambda out: out)  # R = z at the user's output
    return relevance[:, 0].detach()


def _grad_cam(model: nn.Module, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import BinaryClassifierOutputTarget

    cam = GradCAM(model, [model.features[1]])
    return torch.from_numpy(cam(x, targets=[BinaryClassifierOutputTarget(int(t)) for t in targets]))


# class 1 of a linear relevance (IG, LRP) is z's map; class 0 is the negative of it
PEERS = {
    "integrated-gradients": ({"n_steps": 64}, lambda m, x, t: _captum_ig(m, x) * _signs(t)),
    "lrp-epsilon-plus-flat": ({}, lambda m, x, t: _zennit_lrp(m, x) * _signs(t)),
    "gradcam": ({"layer": "features.1"}, _grad_cam),  # pytorch-grad-cam's own binary target: z or -z
}


@pytest.mark.parametrize("method", sorted(PEERS))
def test_methods_explain_z_for_class_1_and_minus_z_for_class_0_as_the_peers_do(method: str) -> None:
    model, x, _ = _user()
    params, peer = PEERS[method]
    targets = torch.tensor([0, 1, 0, 1, 1, 0])
    expected = peer(copy.deepcopy(model), x, targets)
    maps = xaibench.explain(model, x, targets, method=method, **params)
    np.testing.assert_allclose(maps, expected.numpy(), rtol=1e-4, atol=1e-7)


def test_the_users_integrated_gradients_have_the_completeness_error_worked_by_hand() -> None:
    """The issue's case: captum's IG of the user's z (64 steps), scored with targets=1 and with the predicted
    classes (class 0 explained as -z, so its map is -IG(z)); by hand |sum a - (f(x) - f(0))| / |f(x) - f(0)|."""
    model, x, z = _user()
    ig = _captum_ig(copy.deepcopy(model), x)
    with torch.no_grad():
        z0 = model(torch.zeros_like(x))[:, 0]
    hand = ((ig.double().flatten(1).sum(1) - (z - z0).double()).abs() / (z - z0).double().abs()).numpy()
    assert hand.max() < 0.05  # the user's own IG is nearly complete; the issue saw 1.000 and 3.000
    ones = xaibench.score(model, x, 1, ig, ["completeness-error"], additive=True)["completeness-error"]
    np.testing.assert_allclose(ones, hand, rtol=1e-4, atol=1e-7)
    predicted = (z > 0).long()
    mixed = xaibench.score(model, x, None, ig * _signs(predicted), ["completeness-error"],
                           additive=True)["completeness-error"]
    np.testing.assert_allclose(mixed, hand, rtol=1e-4, atol=1e-7)


def test_drop_in_confidence_reads_sigmoid_z_and_one_minus_it() -> None:
    """DiC = 100 max(0, p(x) - p(x L)) / p(x) with p = sigmoid(z) for class 1 and 1 - sigmoid(z) for class 0,
    L the map min-max scaled (the metric's default ``cover: nonessential, fill: darken``)."""
    model, x, z = _user()
    maps = torch.rand(N, S, S, generator=torch.Generator().manual_seed(1))
    targets = torch.tensor([1, 0, 1, 0, 1, 0])
    low, high = maps.flatten(1).min(1).values, maps.flatten(1).max(1).values
    light = (maps - low[:, None, None]) / (high - low)[:, None, None]
    with torch.no_grad():
        z_covered = model(x * light[:, None])[:, 0]

    def p(logit: torch.Tensor) -> torch.Tensor:
        return torch.where(targets == 1, torch.sigmoid(logit.double()), 1 - torch.sigmoid(logit.double()))

    hand = (100 * (p(z) - p(z_covered)).clamp(min=0) / p(z)).numpy()
    np.testing.assert_allclose(xaibench.score(model, x, targets, maps, "dic")["dic"], hand, rtol=1e-5, atol=1e-6)


#: Metrics that read the target class's probability (the default ``output`` of those that have one).
PROBABILITY_METRICS = ["deletion-auc", "dic", "dic-mask", "iic", "insertion-auc", "irof", "monotonicity-arya",
                       "monotonicity-correlation", "non-sensitivity", "region-perturbation-morf", "road-morf",
                       "selectivity", "srg"]


def test_probability_metrics_score_the_model_as_its_two_class_softmax_twin() -> None:
    """Every metric that reads probabilities scores the one-logit model exactly as the same function written by
    hand as softmax logits ``[0, z]`` (whose softmax is ``[1 - sigmoid(z), sigmoid(z)]``), for both classes."""
    model, x, _ = _user()
    maps = torch.rand(N, S, S, generator=torch.Generator().manual_seed(2))
    targets = torch.tensor([1, 0, 0, 1, 0, 1])
    kwargs = {"data_mean": [0.5], "params": {"road-morf": {"fractions": [0.2, 0.5]}}}
    one = xaibench.score(model, x, targets, maps, PROBABILITY_METRICS, **kwargs)
    twin = xaibench.score(TwoClass(copy.deepcopy(model)).eval(), x, targets, maps, PROBABILITY_METRICS, **kwargs)
    for name in PROBABILITY_METRICS:
        np.testing.assert_allclose(one[name], twin[name], rtol=1e-5, atol=1e-6, err_msg=name)


def test_relative_output_stability_reads_the_users_own_logit() -> None:
    """ROS divides by ||h(x) - h(x')|| over the model's logits: a one-logit model's are its z (|dz|), as the
    twin ``[0, z]``'s norm is; class 1, whose explained logit z both share, so the maps are equal too."""
    model, x, _ = _user()
    kwargs = {"method": "input-x-gradient", "params": {"relative-output-stability": {"draws": 3}}}
    maps = xaibench.explain(model, x, 1, method="input-x-gradient")
    one = xaibench.score(model, x, 1, maps, ["relative-output-stability"], **kwargs)
    twin = xaibench.score(TwoClass(copy.deepcopy(model)).eval(), x, 1, maps, ["relative-output-stability"], **kwargs)
    assert np.isfinite(one["relative-output-stability"]).all()
    np.testing.assert_allclose(one["relative-output-stability"], twin["relative-output-stability"], rtol=1e-5)


def test_the_trainer_fits_a_one_logit_model_by_its_bce() -> None:
    """One epoch of one full batch is one Adam step on the user's BCE(z, y), written out here."""
    torch.manual_seed(0)
    data = Samples(x=torch.rand(8, 1, S, S), y=torch.tensor([0, 1] * 4), ids=tuple(map(str, range(8))))
    user = Binary()
    adapted = conform(copy.deepcopy(user), num_classes=2, in_channels=1, spatial=(S, S), form=OutputForm(), who="m")
    recipe = TrainRecipe(epochs=1, batch_size=8, lr=0.05, patience=0, augment=())
    train(adapted, data, data, recipe, seed=0, device=torch.device("cpu"))
    opt = torch.optim.Adam(user.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    user.train()
    F.binary_cross_entropy_with_logits(user(data.x)[:, 0], data.y.float()).backward()
    opt.step()
    for (name, got), want in zip(adapted.wrapped.state_dict().items(), user.state_dict().values()):
        torch.testing.assert_close(got, want, msg=name)


def build_binary(num_classes: int, in_channels: int) -> Binary:
    """The suite's ``factory:``: the user's one-logit model."""
    assert num_classes == 2
    return Binary(num_classes, in_channels)


def test_a_suite_and_xaibench_score_give_the_hand_values(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The user's checkpoint through a suite (``factory:``, the CLI's path) and through ``xaibench.score``: the
    stored completeness errors of integrated gradients are the hand values from captum's IG of z on each test
    sample (class 0 explained as -z), and both entries store the same numbers for every metric."""
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "userbinary.py").write_text("from test_one_logit_units import build_binary\n")
    test = tiny_samples(16, 3, "test")
    torch.manual_seed(0)
    model = centred(Binary(), test.x)
    checkpoint = tmp_path / "binary.pt"
    torch.save(model.state_dict(), checkpoint)
    harness = load_harness([("tiny", TinyPlugin())])
    suite = resolve_suite(harness, {
        "name": "one-logit", "seed": 0, "samples": 8, "target": "predicted", "datasets": ["tiny"],
        "models": [{"name": "binary", "factory": "userbinary:build_binary", "checkpoint": str(checkpoint)}],
        "methods": [{"name": "integrated-gradients", "params": {"n_steps": 64}}],
        "metrics": ["completeness-error", "dic", "deletion-auc"]})
    with Store(tmp_path / "r.sqlite") as store:
        results = run_suite(harness, suite, store, RunOptions(progress=False))
        stored = {m: results.scores("tiny", "binary", "integrated-gradients", m)
                  for m in ("completeness-error", "dic", "deletion-auc")}
        runner = Runner(harness, suite, store, RunOptions(progress=False))
        key = runner.model_key(runner.datasets[0], runner.models[0])
        monkeypatch.setattr("xaibench.models.provision.CONTRACT_VERSION", 1)  # a cache from the +-z/2 days is not reused
        assert runner.model_key(runner.datasets[0], runner.models[0]) != key
    ids = sorted(stored["completeness-error"], key=lambda i: int(i.rsplit("-", 1)[1]))
    x = test.x[[int(i.rsplit("-", 1)[1]) for i in ids]]
    with torch.no_grad():
        z, z0 = model(x)[:, 0], model(torch.zeros_like(x))[:, 0]
    predicted = (z > 0).long()
    assert 0 < int(predicted.sum()) < len(ids)  # both classes are explained
    ig = _captum_ig(copy.deepcopy(model), x)
    hand = ((ig.double().flatten(1).sum(1) - (z - z0).double()).abs() / (z - z0).double().abs()).numpy()
    np.testing.assert_allclose([stored["completeness-error"][i] for i in ids], hand, rtol=1e-4, atol=1e-7)
    scored = xaibench.score(model, x, None, ig * _signs(predicted), list(stored), additive=True, ids=ids)
    for name, values in stored.items():
        # the suite's IG maps and captum's here are two float32 computations (the suite's at the engine's batch of
        # 16): completeness-error, a small relative error of the maps' sums, differs by their rounding (2e-7)
        rtol = 1e-4 if name == "completeness-error" else 1e-5
        np.testing.assert_allclose(scored[name], [values[i] for i in ids], rtol=rtol, atol=1e-7, err_msg=name)

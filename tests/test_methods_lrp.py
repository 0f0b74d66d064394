"""LRP through zennit (``plugins/xaibench_zennit``): expected values from identities worked by hand and from captum.

- LRP-0 (epsilon -> 0) on a bias-free ReLU network equals Input x Gradient when the output relevance is
  the target logit (Montavon et al. 2019, sec. 10.2.1; Ancona et al. 2018): captum ``InputXGradient``;
- conservation: with a conserving rule and no biases the map sums to the target logit;
- captum's ``LRP`` with the same rules on a plain VGG-like network gives the same maps;
- the canonized network (BatchNorm merged by zennit) explains as the network merged independently by
  torch's ``fuse_conv_bn_eval``; a bias-free torchvision ResNet (adds canonized) satisfies the identity;
- completeness error through the registered metric is ~0 for LRP-epsilon on a bias-free network;
- ``covers``: SiLU, GELU, LayerNorm, functional adds, DenseNet are not applicable, with the reason;
- the model is left as found when its forward raises inside the composite.
"""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from captum.attr import LRP, InputXGradient
from captum.attr._utils.lrp_rules import Alpha1_Beta0_Rule, EpsilonRule, GammaRule
from conftest import TINY_SUITE, SiluPlugin
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from xaibench import leaderboard
from xaibench.scoring.engine import Engine
from xaibench.base.errors import XaibenchError
from xaibench.contract.metric_inputs import MetricContext
from xaibench.contract.plugins import load_harness
from xaibench.running.runner import Runner, RunOptions
from xaibench.contract.specs import MethodContext
from xaibench.storage.store import Store
from xaibench.suites.suite import load_suite
from xaibench.authoring.testing import check_method, score_metric

HARNESS = load_harness()
LRP_METHODS = ("lrp-epsilon", "lrp-gamma", "lrp-alpha-beta", "lrp-epsilon-plus-flat", "lrp-epsilon-gamma-box")


def _explain(name: str, model: nn.Module, x: torch.Tensor, target: torch.Tensor, **params: object) -> torch.Tensor:
    spec = HARNESS.methods.get(name)
    ctx = MethodContext(layer=None, batch_size=8, sample_seeds=tuple(range(len(x))))
    return spec.explain(model, x, target, ctx, **{**spec.defaults, **params})


def _vgg_like(bias: bool, seed: int = 0) -> nn.Module:
    """conv-ReLU-maxpool, conv-ReLU, average pool, dense-ReLU-dense: the layer types captum's LRP supports."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(2, 6, 3, padding=1, bias=bias), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 8, 3, padding=1, bias=bias), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
        nn.Linear(32, 16, bias=bias), nn.ReLU(), nn.Linear(16, 3, bias=bias),
    )
    return _scaled(model).eval()


def _scaled(model: nn.Module) -> nn.Module:
    """He-initialised weights and biases of a tenth of that scale: activations of order one at every layer,
    so the rules' stabilisers (1e-6, zennit and captum) are negligible against them."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    m.bias.normal_(0.0, 0.1)
    return model


def _inputs(n: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 2, 12, 12, generator=torch.Generator().manual_seed(seed))


def _targets(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x).argmax(1)


def _logits(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x).gather(1, target[:, None])[:, 0]


def test_every_lrp_method_is_registered_with_its_metadata() -> None:
    for name in LRP_METHODS:
        spec = HARNESS.methods.get(name)
        assert spec.covers is not None and spec.checked_against and "sec." in spec.citation
    additive = {n for n in LRP_METHODS if HARNESS.methods.get(n).additive}
    assert additive == {"lrp-epsilon"}


def test_epsilon_is_input_times_gradient_without_biases() -> None:
    model, x = _vgg_like(bias=False), _inputs()
    target = _targets(model, x)
    ours = _explain("lrp-epsilon", model, x, target, epsilon=1e-9)
    peer = InputXGradient(model).attribute(x.clone().requires_grad_(True), target=target).detach().sum(1)
    torch.testing.assert_close(ours, peer, rtol=1e-4, atol=1e-5 * float(peer.abs().max()))


def test_epsilon_conserves_the_logit() -> None:
    model, x = _vgg_like(bias=False), _inputs()
    target = _targets(model, x)
    sums = _explain("lrp-epsilon", model, x, target, epsilon=1e-9).sum((1, 2))
    logits = _logits(model, x, target)
    assert (sums - logits).abs().max() <= 1e-4 * max(1.0, float(logits.abs().max()))


def test_composites_conserve() -> None:
    """Flat, box, z+, gamma and epsilon each redistribute all the relevance on a bias-free ReLU net."""
    model, x = _vgg_like(bias=False), _inputs()
    target, logits = _targets(model, x), None
    logits = _logits(model, x, target)
    for name, params in (("lrp-epsilon-plus-flat", {"epsilon": 1e-9}),
                         ("lrp-epsilon-gamma-box", {"low": 0.0, "high": 1.0, "epsilon": 1e-9}),
                         ("lrp-alpha-beta", {}), ("lrp-gamma", {})):
        sums = _explain(name, model, x, target, **params).sum((1, 2))
        assert (sums - logits).abs().max() <= 1e-4 * max(1.0, float(logits.abs().max())), name


def _captum_lrp(model: nn.Module, x: torch.Tensor, target: torch.Tensor, rule: type, **kwargs: object) -> torch.Tensor:
    peer_model = copy.deepcopy(model)
    for layer in peer_model:
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            layer.rule = rule(**kwargs)
        elif isinstance(layer, (nn.MaxPool2d, nn.AdaptiveAvgPool2d)):
            layer.rule = EpsilonRule(epsilon=1e-6)  # zennit: winner-take-all and Norm (stabiliser 1e-6)
        elif isinstance(layer, nn.Flatten):
            layer.rule = EpsilonRule(epsilon=1e-9)  # ~identity: captum has no default rule for Flatten
    return LRP(peer_model).attribute(x.clone().requires_grad_(True), target=target).detach().sum(1)


def test_epsilon_matches_captum_lrp() -> None:
    model, x = _vgg_like(bias=True), _inputs()
    target = _targets(model, x)
    ours = _explain("lrp-epsilon", model, x, target, epsilon=1e-3)
    peer = _captum_lrp(model, x, target, EpsilonRule, epsilon=1e-3)
    torch.testing.assert_close(ours, peer, rtol=1e-4, atol=1e-5 * float(peer.abs().max()))
    assert ours.sum() != pytest.approx(float(_logits(model, x, target).sum()), rel=1e-3)  # biases absorb some


def test_gamma_matches_captum_lrp() -> None:
    model, x = _vgg_like(bias=False), _inputs()
    target = _targets(model, x)
    ours = _explain("lrp-gamma", model, x, target, gamma=0.25)
    peer = _captum_lrp(model, x, target, GammaRule, gamma=0.25)
    torch.testing.assert_close(ours, peer, rtol=1e-4, atol=1e-5 * float(peer.abs().max()))


def test_alpha_beta_matches_captum_lrp() -> None:
    model, x = _vgg_like(bias=False), _inputs()
    target = _targets(model, x)
    ours = _explain("lrp-alpha-beta", model, x, target)
    peer = _captum_lrp(model, x, target, Alpha1_Beta0_Rule)
    torch.testing.assert_close(ours, peer, rtol=1e-4, atol=1e-5 * float(peer.abs().max()))


def _bn_net(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(2, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(6, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(8, 3))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.3, 0.3), m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5), m.bias.uniform_(-0.2, 0.2)
    return model.eval()


@pytest.mark.parametrize("name", ["lrp-epsilon", "lrp-epsilon-plus-flat", "lrp-gamma"])
def test_canonized_batchnorm_equals_the_independently_merged_network(name: str) -> None:
    model, x = _bn_net(), _inputs()
    merged = nn.Sequential(fuse_conv_bn_eval(model[0], model[1]), model[2], model[3],
                           fuse_conv_bn_eval(model[4], model[5]), *model[6:]).eval()
    target = _targets(model, x)
    ours = _explain(name, model, x, target)
    expected = _explain(name, merged, x, target)
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-5 * float(expected.abs().max()))


def _bias_free_resnet() -> nn.Module:
    """torchvision ResNet-18 whose BatchNorms only scale (zero shift) and whose head has no bias."""
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=3)
    model.conv1 = nn.Conv2d(2, 64, 3, padding=1, bias=False)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_var.uniform_(0.5, 2.0), m.weight.uniform_(0.5, 1.5)
                m.running_mean.zero_(), m.bias.zero_()
        model.fc.bias.zero_()
    return model.eval()


def test_canonized_resnet_satisfies_the_identity_and_conserves() -> None:
    """Residual adds canonized to zennit Sum (z-rule) and BatchNorm merged: LRP-0 = Input x Gradient on the
    bias-free ResNet; an add left to the gradient would count the relevance of both branches twice."""
    model, x = _bias_free_resnet(), 100 * _inputs(n=2)  # homogeneous net: activations >> zennit's 1e-6 stabilisers
    assert HARNESS.methods.get("lrp-epsilon").covers(model) is None
    target = _targets(model, x)
    ours = _explain("lrp-epsilon", model, x, target, epsilon=1e-9)
    peer = InputXGradient(model).attribute(x.clone().requires_grad_(True), target=target).detach().sum(1)
    torch.testing.assert_close(ours, peer, rtol=1e-3, atol=1e-4 * float(peer.abs().max()))
    logits = _logits(model, x, target)
    assert (ours.sum((1, 2)) - logits).abs().max() <= 1e-4 * float(logits.abs().max())


def test_completeness_error_is_zero_for_epsilon_on_a_bias_free_net() -> None:
    """By hand on one sample: f_c(0) = 0 without biases, so sum(map) = f_c(x) - f_c(0) and the error is 0."""
    model, x = _vgg_like(bias=False), _inputs(n=1)
    target = _targets(model, x)
    maps = _explain("lrp-epsilon", model, x, target, epsilon=1e-9)
    spec = HARNESS.metrics.get("completeness-error")
    engine = Engine(model, "cpu", batch_size=4)
    ctx = MetricContext(engine=engine, base_logits=engine.logits(x), data_mean=torch.zeros(2))
    error = score_metric(spec, ctx, x, target, maps, **spec.defaults)
    assert spec.requires_additive and np.asarray(error)[0] == pytest.approx(0.0, abs=1e-4)


class _Swish(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x)


class _Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x) + x)


def _head(*body: nn.Module) -> nn.Sequential:
    return nn.Sequential(*body, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 3))


@pytest.mark.parametrize("model, reason", [
    (_head(nn.Conv2d(2, 2, 3), nn.SiLU()), "LRP rules are not defined for SiLU (1)"),
    (_head(nn.Conv2d(2, 2, 3), nn.GELU()), "LRP rules are not defined for GELU (1)"),
    (_head(nn.Conv2d(2, 2, 3), nn.GroupNorm(1, 2), nn.ReLU()), "LRP rules are not defined for GroupNorm (1)"),
    (_head(nn.Conv2d(2, 2, 3), _Swish()),
     "LRP rules are not defined for functional sigmoid (sigmoid); functional mul (mul)"),
    (_head(_Residual()), "LRP rules are not defined for functional add (add)"),
    (_head(nn.BatchNorm2d(2), nn.Conv2d(2, 2, 3), nn.ReLU()),
     ("LRP rules are not defined for BatchNorm2d not merged into a convolution or linear layer whose sole output "
      "it normalises (0)")),
])
def test_networks_outside_the_rules_are_not_applicable_with_the_reason(model: nn.Module, reason: str) -> None:
    for name in LRP_METHODS:
        assert HARNESS.methods.get(name).covers(model) == reason


def test_densenet_is_refused_and_vgg_resnet_are_covered() -> None:
    covers = HARNESS.methods.get("lrp-epsilon").covers
    reason = covers(torchvision.models.densenet121(num_classes=3))
    assert reason is not None and "BatchNorm2d not merged" in reason and "adaptive_avg_pool2d" in reason
    assert reason.startswith("zennit's BatchNorm merge fails on it (RuntimeError: ")
    assert covers(torchvision.models.vgg11_bn(num_classes=3)) is None
    assert covers(torchvision.models.resnet50(num_classes=3)) is None
    effnet = covers(torchvision.models.efficientnet_b0(num_classes=3))
    assert effnet is not None and effnet.startswith("LRP rules are not defined for SiLU (features.0.2, ")


def _hooks(model: nn.Module) -> list[int]:
    return [len(d) for m in model.modules() for d in (m._forward_hooks, m._forward_pre_hooks, m._backward_hooks)]


class _Fails(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("boom")


@pytest.mark.parametrize("name", LRP_METHODS)
def test_the_model_is_left_as_found_when_its_forward_raises(name: str) -> None:
    model = _bn_net()
    model.append(_Fails())
    state = copy.deepcopy(model.state_dict())
    hooks = _hooks(model)
    # the composites with an input-layer rule trace the forward first (xaibench.contract.layers): there it raises, one line
    raised = XaibenchError if name in ("lrp-epsilon-plus-flat", "lrp-epsilon-gamma-box") else RuntimeError
    with pytest.raises(raised, match="boom"):
        box = {"low": 0.0, "high": 1.0} if name == "lrp-epsilon-gamma-box" else {}
        _explain(name, model, _inputs(), torch.zeros(3, dtype=torch.long), **box)
    assert _hooks(model) == hooks
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert [type(m) for m in model] == [type(m) for m in _bn_net()] + [_Fails]


@pytest.mark.parametrize("params, message", [
    ({}, "set params low and high"),
    ({"low": 0.2, "high": 1.0}, "outside the box [0.2, 1.0]"),
    ({"low": 1.0, "high": 0.0}, "must be below high"),
])
def test_box_bounds_are_required_and_checked(params: dict, message: str) -> None:
    model, x = _vgg_like(bias=True), _inputs()
    with pytest.raises(XaibenchError, match=message.replace("[", r"\[").replace("]", r"\]")):
        _explain("lrp-epsilon-gamma-box", model, x, _targets(model, x), **params)


@pytest.mark.parametrize("name, params", [("lrp-epsilon", {"epsilon": 0.0}), ("lrp-gamma", {"gamma": -1.0}),
                                          ("lrp-alpha-beta", {"alpha": 2.0, "beta": 0.0})])
def test_parameters_outside_the_rules_are_refused(name: str, params: dict) -> None:
    model, x = _vgg_like(bias=True), _inputs()
    with pytest.raises(XaibenchError, match=name):
        _explain(name, model, x, _targets(model, x), **params)


def test_the_plan_marks_lrp_not_applicable_on_a_silu_network_and_runs_it_on_relu(
        tmp_path: Path, tiny_plugin) -> None:  # type: ignore[no-untyped-def]
    suite = tmp_path / "suite.yaml"
    suite.write_text(TINY_SUITE.replace("models: [tiny-cnn]", "models: [tiny-cnn, tiny-silu]")
                     .replace("methods: [input-times-one, random, {name: ground-truth, label: oracle}]",
                              "methods: [lrp-epsilon]").replace("metrics: [dic, iic, hit-rate]", "metrics: [dic]"))
    store = Store(tmp_path / "r.sqlite")
    harness = load_harness([("tiny", tiny_plugin), ("silu", SiluPlugin())])
    summary = Runner(harness, load_suite(suite), store, RunOptions(progress=False)).run()
    assert summary.skip_reasons == ["not applicable: LRP rules are not defined for SiLU (features.1)"]
    assert summary.skipped == 1 and summary.computed == 1 and not summary.failed
    ok = {(r.model, r.method) for r in leaderboard.records(store, "tiny") if r.status == "ok"}
    assert ok == {("tiny-cnn", "lrp-epsilon")}


@pytest.mark.parametrize("name", ["lrp-epsilon", "lrp-epsilon-plus-flat"])
def test_conforms_on_a_canonized_resnet(name: str) -> None:
    """The conformance kit on torchvision ResNet-18 (bias-free convolutions: zennit's BatchNorm merge adds a bias
    and must remove it again; BasicBlock forwards replaced and restored)."""
    model = _bias_free_resnet()
    maps = check_method(HARNESS.methods.get(name), model, _inputs(n=2), batch_size=4)
    assert maps.shape == (2, 12, 12) and all(m.conv1.bias is None for m in model.modules() if hasattr(m, "conv1"))
    assert "forward" not in vars(model.layer1[0])  # the canonizer's instance-level forward is gone


class _Routing(nn.Module):
    """Every functional operation LRP's rules cover: ReLU and max pooling as functions and tensor methods,
    concatenation, stacking, reshapes, shape reads."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)
        self.head = nn.Linear(2 * 2 * 6 * 6 * 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = torch.relu(self.conv(x)).relu()
        a = F.max_pool2d(F.relu(a), 2)
        a = torch.cat([a, a.contiguous()], dim=1).permute(0, 1, 3, 2).transpose(2, 3)
        a = torch.stack([a, a.squeeze(0).unsqueeze(0)], dim=-1)[..., :2]
        a = torch.flatten(a.view(a.size(0), -1).reshape(a.shape[0], -1), 1).flatten(1)
        a = a.flatten(a.ndim - 1)
        return self.head(a[:, : a.dim() * 0 + a.shape[1]])


class _Twice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)
        self.head = nn.Linear(2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.conv(torch.relu(self.conv(x)))).mean((2, 3)))


class _Branching(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:  # data-dependent: fx cannot trace it
            x = -x
        return self.head(x.flatten(1)[:, :2])


def test_covered_functional_operations_and_the_refused_kinds() -> None:
    covers = HARNESS.methods.get("lrp-epsilon").covers
    assert covers(_Routing()) is None
    assert covers(_Twice()) == ("LRP rules are not defined for tensor method mean (mean); Conv2d called 2 times "
                                "(conv)")
    reason = covers(_Branching())
    assert reason is not None and reason.startswith("torch.fx cannot trace its forward (symbolically traced")
    assert reason.endswith("so its functional operations (adds, activations) cannot be checked against LRP's rules")


def test_covers_leaves_the_model_as_found() -> None:
    """The inspection canonizes a deep copy: the caller's BatchNorms, weights and ResNet block forwards stay."""
    covers = HARNESS.methods.get("lrp-epsilon").covers
    for model in (_bn_net(), _bias_free_resnet()):
        state = copy.deepcopy(model.state_dict())
        assert covers(model) is None
        assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
        assert not any("forward" in vars(m) for m in model.modules())

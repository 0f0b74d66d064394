"""Issue 33 item 2 / issue 34 item 4: a gradient-modifying or rule-based method is ranked only where its rules apply.

The two examples of the issue with independent expectations, the model inspection
(xaibench.models.nonlinearities) on hand-built networks, and a method x model matrix: every rule-based
method on the zoo's models and on small networks with SiLU, GELU, ReLU6, LeakyReLU, a softmax head,
pooling before the activation, functional ReLU and an in-place ReLU module reused twice is either
not applicable, with a reason naming what its rules miss, or gives a map that differs from the
plain-gradient map it would silently fall back to.
"""
from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import TINY_SUITE, SiluPlugin
from torch import nn

from xaibench import leaderboard
from xaibench.models.nonlinearities import inspect_model
from xaibench.contract.outputs import OutputForm, conform
from xaibench.contract.plugins import load_harness
from xaibench.running.runner import Runner, RunOptions
from xaibench.contract.specs import MethodContext
from xaibench.storage.store import Store
from xaibench.suites.suite import load_suite
from xaibench.authoring.testing import one_thread

HARNESS = load_harness()
RULED = ("guided-backprop", "deconvolution", "deeplift", "guided-gradcam")
#: What each method falls back to where its rule is missing: the same call with plain gradients.
PLAIN = {"guided-backprop": "saliency", "deconvolution": "saliency", "deeplift": "input-x-gradient",
         "guided-gradcam": "saliency"}


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    with one_thread():
        yield


def _explain(name: str, model: nn.Module, x: torch.Tensor, target: torch.Tensor,
             layer: nn.Module | None = None) -> torch.Tensor:
    spec = HARNESS.methods.get(name)
    ctx = MethodContext(layer=layer, batch_size=8, sample_seeds=tuple(range(x.shape[0])))
    with torch.enable_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return spec.explain(model, x, target, ctx, **spec.defaults).detach()


# -- the two examples ---------------------------------------------------------------------------

def test_guided_backprop_on_mobilenet_v2_is_not_applicable() -> None:
    from captum.attr import GuidedBackprop, Saliency

    torch.manual_seed(0)
    model = HARNESS.models.get("mobilenet_v2").build(num_classes=3, in_channels=3, modality="image").eval()
    x, target = torch.rand(2, 3, 32, 32), torch.tensor([0, 2])
    # the independent fact: captum's guided backprop on it is plain gradients, bit for bit (ReLU6 is not nn.ReLU)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        guided = GuidedBackprop(model).attribute(x, target=target)
    assert torch.equal(guided, Saliency(model).attribute(x, target=target, abs=False))
    reason = HARNESS.methods.get("guided-backprop").covers(model)
    assert reason is not None and reason.startswith("guided backpropagation modifies ReLU gradients; this network "
                                                    "uses ReLU6 (features.0.2, features.1.conv.0.2, ")


def _twins(activation: Callable[[], nn.Module]) -> nn.Module:
    torch.manual_seed(6)
    return nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), activation(), nn.Conv2d(6, 6, 3, padding=1), activation(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3)).eval()


def _completeness_error(attr: torch.Tensor, model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    """|sum(a) - (f(x) - f(0))| / |f(x) - f(0)|: DeepLIFT's summation-to-delta (Shrikumar et al. 2017, Eq. 1)."""
    with torch.no_grad():
        change = (model(x) - model(torch.zeros_like(x)))[torch.arange(x.shape[0]), target]
    return ((attr.flatten(1).sum(1) - change).abs() / change.abs()).numpy()


def test_deeplift_on_silu_is_not_applicable_and_complete_on_relu() -> None:
    from captum.attr import DeepLift

    x, target = torch.rand(4, 1, 10, 10, generator=torch.Generator().manual_seed(1)), torch.tensor([0, 1, 2, 0])
    silu = _twins(nn.SiLU)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        captum_on_silu = DeepLift(silu).attribute(x, target=target, baselines=torch.zeros_like(x)).detach()
    assert _completeness_error(captum_on_silu, silu, x, target).max() > 1e-2  # captum passes gradients through SiLU
    reason = HARNESS.methods.get("deeplift").covers(silu)
    assert reason is not None and "this network uses SiLU (1, 3)" in reason
    relu = _twins(nn.ReLU)  # the same weights
    assert HARNESS.methods.get("deeplift").covers(relu) is None
    assert _completeness_error(_explain("deeplift", relu, x, target), relu, x, target).max() < 1e-5


# -- the inspection ------------------------------------------------------------------------------------------

class Functional(nn.Module):
    """ReLU, sigmoid gate and max pooling as functions in forward; one in-place ReLU module called twice."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.conv2, self.gate = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 1)
        self.act = nn.ReLU(inplace=True)
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = self.act(self.conv2(x)) * torch.sigmoid(self.gate(x))
        x = self.act(x)
        return self.head(x.mean((2, 3)))


class Checked(Functional):
    """:class:`Functional` behind a check of the input's shape, which torch.fx cannot trace."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != 1:
            raise ValueError("one channel")
        return super().forward(x)


def test_inspection_lists_modules_functions_products_in_place_and_reuse() -> None:
    found = inspect_model(Functional())
    assert found.traced and found.complete
    assert [(s.kind, s.where, s.functional, s.inplace, s.reused) for s in found.sites] == [
        ("ReLU", "relu", True, False, False), ("MaxPool", "max_pool2d", True, False, False),
        ("ReLU", "act", False, True, True), ("Sigmoid", "sigmoid", True, False, False),
        ("product", "mul", True, False, False), ("ReLU", "act", False, True, True)]


def test_an_untraceable_model_is_inspected_through_its_forward_source() -> None:
    found = inspect_model(Checked())
    assert not found.traced and "control flow" in found.untraced and found.complete
    # the parent's source calls self.act twice, so the module walk marks it reused; the functions are found by name
    assert {(s.kind, s.where, s.reused) for s in found.sites} == {
        ("ReLU", "act", True), ("ReLU", "Functional.forward", False), ("MaxPool", "Functional.forward", False),
        ("Sigmoid", "Functional.forward", False)}
    reason = HARNESS.methods.get("guided-backprop").covers(Checked())
    assert reason is not None and "ReLU called at several places in an untraceable forward (act)" in reason


def test_weights_and_constants_are_not_products() -> None:
    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.scale = nn.Conv2d(1, 2, 3), nn.Parameter(torch.ones(1, 2, 1, 1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return (F.relu(self.conv(x)) * self.scale * 2.0).mul(self.scale).flatten(1)

    assert [s.kind for s in inspect_model(Scaled()).sites] == ["ReLU"]


# -- the matrix ---------------------------------------------------------------------------------------------

def _net(*layers: nn.Module, pool: int = 6) -> nn.Module:
    torch.manual_seed(8)
    return nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), *layers, nn.Conv2d(6, 6, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(pool, 3)).eval()


class ReusedInPlace(nn.Module):
    """One ``nn.ReLU(inplace=True)`` called at two places (torchvision ResNet blocks' pattern)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(8)
        self.c1, self.c2, self.relu = nn.Conv2d(1, 6, 3, padding=1), nn.Conv2d(6, 6, 3, padding=1), nn.ReLU(inplace=True)
        self.head = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.relu(self.c2(self.relu(self.c1(x)))).mean((2, 3)))


class FunctionalReLU(ReusedInPlace):
    """:class:`ReusedInPlace`'s weights with ``F.relu`` in forward (torchvision DenseNet's final ReLU)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.relu(self.c2(F.relu(self.c1(x)))).mean((2, 3)))


class ModuleTwin(ReusedInPlace):
    """The same weights with two separate, non-inplace ReLU modules: what captum's hooks are written for."""

    def __init__(self) -> None:
        super().__init__()
        self.r1, self.r2 = nn.ReLU(), nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.r2(self.c2(self.r1(self.c1(x)))).mean((2, 3)))


def _softmax_head() -> nn.Module:
    """A model emitting probabilities (``output: probabilities``): the harness explains log p through its adapter."""
    inner = nn.Sequential(_net(nn.ReLU()), nn.Softmax(1))
    return conform(inner, num_classes=3, in_channels=1, spatial=(12, 12), form=OutputForm("probabilities"), who="t")


#: name -> (builder, the kinds a method may not cover, in the reason); None: a pure ReLU / max-pool network.
SMALL: dict[str, tuple[Callable[[], nn.Module], str | None]] = {
    "silu": (lambda: _net(nn.SiLU()), "SiLU"),
    "gelu": (lambda: _net(nn.GELU()), "GELU"),
    "relu6": (lambda: _net(nn.ReLU6()), "ReLU6"),
    "leaky": (lambda: _net(nn.LeakyReLU(0.1)), "LeakyReLU"),
    "softmax-head": (_softmax_head, "Softmax"),
    "pool-before-relu": (lambda: _net(nn.MaxPool2d(2), nn.ReLU()), None),
    "functional-relu": (FunctionalReLU, None),
    "reused-inplace-relu": (ReusedInPlace, None),
}
#: Where DeepLIFT's rules differ from guided backprop's: captum has a DeepLIFT rule for LeakyReLU; none covers
#: the log of the softmax head, which the inspection lists as "functional log".
DEEPLIFT_COVERS = {"leaky"}


def _expected_reason(method: str, net: str) -> str | None:
    missing = SMALL[net][1]
    if method == "deeplift" and net in DEEPLIFT_COVERS:
        return None
    if method == "deeplift" and net == "softmax-head":
        return "functional log"
    return missing


def _layer(model: nn.Module) -> nn.Module:
    """The last convolution's activation, the CAM layer of the small networks."""
    inner = model.wrapped[0] if hasattr(model, "wrapped") else model
    return inner.c2 if isinstance(inner, ReusedInPlace) else inner[-5]


def _assert_differs(ours: torch.Tensor, plain: torch.Tensor, what: str) -> None:
    """The maps differ by more than 0.1% of their scale (untrained deep nets have gradients of 1e-10)."""
    scale = float(plain.abs().max())
    assert scale > 0 and float((ours - plain).abs().max()) > 1e-3 * scale, f"{what} is its plain-gradient map"


@pytest.mark.parametrize("net", sorted(SMALL))
@pytest.mark.parametrize("method", RULED)
def test_a_rule_based_method_is_refused_or_differs_from_plain_gradients(method: str, net: str) -> None:
    model = SMALL[net][0]()
    reason = HARNESS.methods.get(method).covers(model)
    missing = _expected_reason(method, net)
    if missing is not None:
        assert reason is not None and missing in reason, reason
        return
    assert reason is None
    x = torch.rand(3, 1, 12, 12, generator=torch.Generator().manual_seed(2))
    target = torch.tensor([0, 1, 2])
    layer = _layer(model) if HARNESS.methods.get(method).takes_layer else None
    ours = _explain(method, model, x, target, layer)
    plain = _explain(PLAIN[method], model, x, target)
    if method == "guided-gradcam":
        plain = plain * _explain("gradcam", model, x, target, layer)
    _assert_differs(ours, plain, f"{method} on {net}")


@pytest.mark.parametrize("method", ["guided-backprop", "deconvolution", "deeplift"])
@pytest.mark.parametrize("net", [FunctionalReLU, ReusedInPlace])
def test_functional_and_reused_relus_give_the_map_of_the_module_twin(method: str, net: type[nn.Module]) -> None:
    """The extension (one module per ReLU call site, :mod:`xaibench_captum.modelcopy`) against captum on the twin
    whose ReLUs are already separate modules: captum's own, unmodified path."""
    x = torch.rand(3, 1, 12, 12, generator=torch.Generator().manual_seed(3))
    target = torch.tensor([2, 0, 1])
    model, twin = net(), ModuleTwin()
    before = copy.deepcopy(model.state_dict())
    np.testing.assert_allclose(_explain(method, model, x, target).numpy(), _explain(method, twin, x, target).numpy(),
                               rtol=1e-5, atol=1e-7)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    if method == "deeplift":  # and summation-to-delta holds on both
        assert _completeness_error(_explain(method, model, x, target), model, x, target).max() < 1e-5


#: The zoo (untrained, tiny inputs): which models use only ReLU and max pooling, as their papers describe them, and
#: which of them pool with overlapping windows (3x3, stride 2 stems), where captum's DeepLIFT loses contributions.
ZOO = {"small-cnn": ("image", None), "cnn1d-shallow": ("signal", None), "r3d-18": ("volume", None),
       "resnet18": ("image", None), "resnet50": ("image", None), "resnet101": ("image", None),
       "densenet121": ("image", None), "densenet201": ("image", None), "googlenet": ("image", None),
       "vgg16": ("image", None), "supervised-saliency-cnn": ("image", None), "mobilenet_v2": ("image", "ReLU6")}
OVERLAPPING_POOLS = {"resnet18": "maxpool", "resnet50": "maxpool", "resnet101": "maxpool",
                     "densenet121": "features.pool0", "densenet201": "features.pool0", "googlenet": "maxpool1"}
SHAPES = {"image": (2, 3, 32, 32), "signal": (2, 1, 40), "volume": (2, 1, 8, 16, 16)}


def _zoo(name: str) -> nn.Module:
    modality = ZOO[name][0]
    torch.manual_seed(0)
    return HARNESS.models.get(name).build(num_classes=3, in_channels=SHAPES[modality][1], modality=modality).eval()


def test_the_zoo_is_covered_as_its_architectures_say() -> None:
    assert set(ZOO) <= {e.spec.name for e in HARNESS.models}
    for name, (modality, missing) in ZOO.items():
        model = _zoo(name)
        for method in RULED:
            if modality not in HARNESS.methods.get(method).modalities:
                continue
            reason = HARNESS.methods.get(method).covers(model)
            if method == "deeplift" and name in OVERLAPPING_POOLS:
                assert reason is not None and f"max pooling windows overlap ({OVERLAPPING_POOLS[name]} (kernel 3, " \
                                              "stride 2)" in reason, (name, reason)
                continue
            assert (reason is None) == (missing is None), (name, method, reason)
            assert missing is None or f"uses {missing} (" in reason


@pytest.mark.heavy
@pytest.mark.skipif(not os.environ.get("XAIBENCH_HEAVY"), reason="the zoo's maps take minutes on a CPU")
@pytest.mark.parametrize("name", sorted(n for n, (_, missing) in ZOO.items() if missing is None))
@pytest.mark.parametrize("method", RULED)
def test_a_rule_based_method_on_the_zoo_differs_from_plain_gradients(method: str, name: str) -> None:
    modality = ZOO[name][0]
    if modality not in HARNESS.methods.get(method).modalities:
        pytest.skip(f"{method} does not declare {modality}")
    if method == "deeplift" and name in OVERLAPPING_POOLS:
        pytest.skip("not applicable: overlapping max pooling")
    model = _zoo(name)
    x, target = torch.rand(*SHAPES[modality], generator=torch.Generator().manual_seed(4)), torch.tensor([0, 2])
    layer = HARNESS.models.get(name).target_layer(model)
    ours = _explain(method, model, x, target, layer if HARNESS.methods.get(method).takes_layer else None)
    plain = _explain(PLAIN[method], model, x, target)
    _assert_differs(ours, plain, f"{method} on {name}")


def test_fullgrad_is_not_applicable_where_pytorch_grad_cam_would_drop_biases() -> None:
    from pytorch_grad_cam import FullGrad

    torch.manual_seed(9)
    grouped = nn.Sequential(nn.Conv2d(1, 4, 3), nn.GroupNorm(2, 4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                            nn.Linear(4, 3)).eval()
    # the independent fact: the library's own bias layers leave the GroupNorm's bias out
    collected = FullGrad(model=grouped, target_layers=[]).target_layers
    assert [type(m) for m in collected] == [nn.Conv2d] and grouped[1].bias is not None
    covers = HARNESS.methods.get("fullgrad").covers
    assert covers(grouped) == ("FullGrad (pytorch-grad-cam) sums the bias-gradients of Conv2d and BatchNorm2d layers "
                               "only; this network has biases in GroupNorm (1)")
    assert covers(_zoo("resnet18")) is None and covers(_zoo("small-cnn")) is None


# -- through the runner ---------------------------------------------------------------------------------------

def test_the_plan_marks_rule_based_methods_on_a_silu_model_not_applicable(tmp_path: Path, tiny_plugin) -> None:  # type: ignore[no-untyped-def]
    text = TINY_SUITE.replace("models: [tiny-cnn]", "models: [tiny-cnn, tiny-silu]").replace(
        "methods: [input-times-one, random, {name: ground-truth, label: oracle}]",
        "methods: [guided-backprop, deeplift]").replace("metrics: [dic, iic, hit-rate]", "metrics: [dic]")
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    store = Store(tmp_path / "r.sqlite")
    summary = Runner(load_harness([("tiny", tiny_plugin), ("silu", SiluPlugin())]), load_suite(path), store,
                     RunOptions(progress=False)).run()
    assert summary.computed == 2 and summary.skipped == 2 and not summary.failed
    assert summary.models_trained == 1  # tiny-silu has nothing to compute: never trained
    assert sorted(summary.skip_reasons) == [
        ("not applicable: DeepLIFT's Rescale rule is implemented by captum for ReLU, ELU, LeakyReLU, Sigmoid, Tanh, "
         "Softplus and non-overlapping MaxPool modules; this network uses SiLU (features.1)"),
        "not applicable: guided backpropagation modifies ReLU gradients; this network uses SiLU (features.1)"]
    ok = {(r.model, r.method) for r in leaderboard.records(store, "tiny") if r.status == "ok"}
    assert ok == {("tiny-cnn", "guided-backprop"), ("tiny-cnn", "deeplift")}


class CustomSwish(torch.autograd.Function):
    """A memory-efficient Swish as MONAI writes it: its own backward, which no method's rule can know."""

    @staticmethod
    def forward(ctx, x):  # type: ignore[no-untyped-def]
        ctx.save_for_backward(x)
        return x * torch.sigmoid(x)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[no-untyped-def]
        (x,) = ctx.saved_tensors
        s = torch.sigmoid(x)
        return grad * (s * (1 + x * (1 - s)))


def test_a_custom_autograd_function_is_seen_through_its_forward() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.head = nn.Conv2d(1, 2, 3), nn.Linear(2, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(F.relu(CustomSwish.apply(self.conv(x))).mean((2, 3)))

    assert [s.kind for s in inspect_model(Net()).sites] == ["Sigmoid", "product", "ReLU"]
    reason = HARNESS.methods.get("guided-backprop").covers(Net())
    assert reason is not None and "functional Sigmoid (sigmoid); a product of two activations (mul)" in reason


#: timm and MONAI networks of issue 34 (untrained): which of them use only ReLU and max pooling, by their papers.
LIBRARY_NETS = {
    "timm/resnet10t": (lambda: __import__("timm").create_model("resnet10t", num_classes=3), None,
                       "max pooling windows overlap (maxpool (kernel 3, stride 2))"),
    "timm/regnetx_002": (lambda: __import__("timm").create_model("regnetx_002", num_classes=3), None, None),
    "timm/efficientnet_b0": (lambda: __import__("timm").create_model("efficientnet_b0", num_classes=3), "SiLU", "SiLU"),
    "timm/convnext_atto": (lambda: __import__("timm").create_model("convnext_atto", num_classes=3), "GELU", "GELU"),
    "timm/mobilenetv3_small_050": (lambda: __import__("timm").create_model("mobilenetv3_small_050", num_classes=3),
                                   "Hardswish", "Hardswish"),
    # DenseNet121's blocks at a small size: in-place ReLU modules throughout, covered (one module per call site) but
    # for DeepLIFT, whose captum max-pooling rule loses contributions in the overlapping 3x3 stride-2 stem pool
    "monai/DenseNet-3d": (lambda: __import__("monai.networks.nets").networks.nets.DenseNet(
        spatial_dims=3, in_channels=1, out_channels=3, init_features=8, growth_rate=4, block_config=(2, 2)), None,
        "max pooling windows overlap (features.pool0 (kernel 3, stride 2))"),
    # SEResNet50's blocks, one per stage: a sigmoid gate multiplied into the features; DeepLIFT has a Sigmoid rule,
    # not a product's
    "monai/SENet": (lambda: __import__("monai.networks.nets").networks.nets.SENet(
        spatial_dims=2, in_channels=1, block="se_resnet_bottleneck", layers=(1, 1, 1, 1), groups=1, reduction=16,
        inplanes=64, downsample_kernel_size=1, input_3x3=False, num_classes=3), "Sigmoid",
        "a product of two activations"),
}


@pytest.mark.parametrize("name", sorted(LIBRARY_NETS))
def test_timm_and_monai_networks_are_covered_as_their_architectures_say(name: str) -> None:
    pytest.importorskip(name.split("/")[0])
    build, guided_missing, deeplift_missing = LIBRARY_NETS[name]
    torch.manual_seed(0)
    model = build().eval()
    for method, missing in (("guided-backprop", guided_missing), ("deconvolution", guided_missing),
                            ("deeplift", deeplift_missing)):
        reason = HARNESS.methods.get(method).covers(model)
        assert (reason is None) == (missing is None), (method, reason)
        assert missing is None or missing in reason, reason

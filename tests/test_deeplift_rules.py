"""Issue 42 item 4: DeepLIFT is scored only where captum's rules keep summation-to-delta, whatever the layer order.

Expected values come from captum's own ``DeepLift`` on a hand-written twin in which every hooked module reads
its own copy of its input (captum's unmodified path, with nothing for its tensor hooks to share), and from
summation-to-delta computed by hand: ``sum(a) = f_c(x) - f_c(0)`` (Shrikumar et al. 2017, Eq. 1). Refusals
are each shown with the fact behind them: captum's DeepLift alone breaks summation-to-delta on that network.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import nn

from xaibench.base.errors import XaibenchError
from xaibench.contract.plugins import load_harness
from xaibench.contract.specs import MethodContext
from xaibench.authoring.testing import one_thread

HARNESS = load_harness()
CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
POOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
SIZE = {1: (40,), 2: (12, 12), 3: (8, 8, 8)}
HOOKED = (nn.ReLU, nn.ELU, nn.LeakyReLU, nn.Sigmoid, nn.Tanh, nn.Softplus, nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d,
          nn.Softmax)


@pytest.fixture(autouse=True)
def _single_thread():  # type: ignore[no-untyped-def]
    with one_thread():
        yield


class Copy(nn.Module):
    """The identity as a new tensor: what the separated twin puts before every hooked module."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clone()


def _net(*middle: nn.Module, dims: int = 2, seed: int = 0) -> nn.Sequential:
    """conv, ``middle``, conv, ReLU, global average pool, dense: biases everywhere (a non-zero reference)."""
    torch.manual_seed(seed)
    model = nn.Sequential(CONV[dims](1, 6, 3, padding=1), *middle, CONV[dims](6, 6, 3, padding=1), nn.ReLU(),
                          nn.Flatten(2), nn.Flatten(1), nn.LazyLinear(3))
    model(torch.zeros(1, 1, *SIZE[dims]))
    return model.eval()


def _separated(model: nn.Sequential) -> nn.Sequential:
    """The same modules, each hooked one preceded by a :class:`Copy`."""
    return nn.Sequential(*[m for layer in model for m in ((Copy(), layer) if isinstance(layer, HOOKED) else (layer,))])


def _inputs(dims: int = 2) -> torch.Tensor:
    return torch.rand(6, 1, *SIZE[dims], generator=torch.Generator().manual_seed(1))


TARGETS = torch.tensor([0, 1, 2, 0, 1, 2])


def _captum(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    from captum.attr import DeepLift

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return DeepLift(model).attribute(x, target=TARGETS, baselines=torch.zeros_like(x)).detach().sum(1)


def _ours(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    spec = HARNESS.methods.get("deeplift")
    ctx = MethodContext(layer=None, batch_size=8, sample_seeds=tuple(range(x.shape[0])))
    with torch.enable_grad():
        return spec.explain(model, x, TARGETS, ctx, **spec.defaults).detach()


def _delta_error(attr: torch.Tensor, model: nn.Module, x: torch.Tensor) -> np.ndarray:
    """``|sum(a) - (f_c(x) - f_c(0))| / |f_c(x) - f_c(0)|`` per sample, by hand."""
    with torch.no_grad():
        change = (model(x) - model(torch.zeros_like(x)))[torch.arange(x.shape[0]), TARGETS]
    return ((attr.flatten(1).sum(1) - change).abs() / change.abs()).numpy()


def _issue_twins() -> tuple[nn.Sequential, nn.Sequential]:
    """conv-ReLU-maxpool twice, and the same layers with each pooling before its ReLU: one function."""
    torch.manual_seed(0)
    c1, c2, head = nn.Conv2d(1, 6, 3, padding=1), nn.Conv2d(6, 6, 3, padding=1), nn.Linear(6 * 3 * 3, 3)
    relu_first = nn.Sequential(c1, nn.ReLU(), nn.MaxPool2d(2), c2, nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), head)
    pool_first = nn.Sequential(c1, nn.MaxPool2d(2), nn.ReLU(), c2, nn.MaxPool2d(2), nn.ReLU(), nn.Flatten(), head)
    return relu_first.eval(), pool_first.eval()


def test_the_issues_pooling_orders_both_keep_summation_to_delta() -> None:
    x = _inputs()
    relu_first, pool_first = _issue_twins()
    with torch.no_grad():
        assert torch.equal(relu_first(x), pool_first(x))
    # the fact: captum alone loses it in both orders (its tensor hooks share the tensor between adjacent modules)
    assert _delta_error(_captum(pool_first, x), pool_first, x).max() > 0.1
    assert _delta_error(_captum(relu_first, x), relu_first, x).max() > 0.01
    for model in (relu_first, pool_first):
        assert HARNESS.methods.get("deeplift").covers(model) is None
        ours = _ours(model, x)
        np.testing.assert_allclose(ours.numpy(), _captum(_separated(model), x).numpy(), rtol=1e-5, atol=1e-7)
        assert _delta_error(ours, model, x).max() < 1e-5


def _untraceable(model: nn.Module) -> nn.Module:
    class Checked(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.shape[1] != 1:  # torch.fx cannot trace this
                raise ValueError("one channel")
            return self.inner(x)

    return Checked().eval()


def test_an_untraceable_model_gets_the_same_separation() -> None:
    x = _inputs()
    pool_first = _issue_twins()[1]
    wrapped = _untraceable(pool_first)
    assert HARNESS.methods.get("deeplift").covers(wrapped) is None
    before = [type(m) for m in wrapped.modules()]
    ours = _ours(wrapped, x)
    assert [type(m) for m in wrapped.modules()] == before  # the copy is wrapped, not the caller's model
    np.testing.assert_allclose(ours.numpy(), _captum(_separated(pool_first), x).numpy(), rtol=1e-5, atol=1e-7)
    assert _delta_error(ours, wrapped, x).max() < 1e-5


#: Accepted: every element-wise nonlinearity captum has a Rescale rule for, before and after max pooling, and max
#: pooling with non-overlapping windows in 1D, 2D and 3D (with ceil mode and padding).
ACCEPTED: dict[str, Callable[[], nn.Sequential]] = {
    **{f"{name}-then-pool": (lambda a=act: _net(a(), nn.MaxPool2d(2))) for name, act in (
        ("relu", nn.ReLU), ("elu", nn.ELU), ("leaky", lambda: nn.LeakyReLU(0.1)), ("sigmoid", nn.Sigmoid),
        ("tanh", nn.Tanh), ("softplus", nn.Softplus))},
    **{f"pool-then-{name}": (lambda a=act: _net(nn.MaxPool2d(2), a())) for name, act in (
        ("elu", nn.ELU), ("tanh", nn.Tanh))},
    "pool-1d": lambda: _net(nn.ReLU(), nn.MaxPool1d(2), dims=1),
    "pool-3d": lambda: _net(nn.MaxPool3d(2), nn.ReLU(), dims=3),
    "pool-ceil": lambda: _net(nn.ReLU(), nn.MaxPool2d(5, ceil_mode=True)),
    "pool-padded": lambda: _net(nn.ReLU(), nn.MaxPool2d(2, padding=1)),
}


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_each_accepted_rule_equals_captum_on_the_separated_twin_and_keeps_summation_to_delta(name: str) -> None:
    model = ACCEPTED[name]()
    dims = model[0].weight.dim() - 2
    x = _inputs(dims)
    assert HARNESS.methods.get("deeplift").covers(model) is None
    ours = _ours(model, x)
    expected = _captum(_separated(model), x)
    np.testing.assert_allclose(ours.numpy(), expected.numpy(), rtol=1e-4, atol=1e-6 * float(expected.abs().max()))
    assert _delta_error(ours, model, x).max() < 1e-4


def _softmax_inside() -> nn.Sequential:
    """A softmax over channels inside the network (an attention-like gate), which captum's DeepLift hooks."""
    return _net(nn.Softmax(1))


#: Refused: name -> (network, what the reason names). captum's own DeepLift breaks summation-to-delta on each.
REFUSED: dict[str, tuple[Callable[[], nn.Sequential], str]] = {
    "overlapping-pool": (lambda: _net(nn.ReLU(), nn.MaxPool2d(3, 2, 1)),
                         "max pooling windows overlap (2 (kernel 3, stride 2))"),
    "stride-1-pool": (lambda: _net(nn.ReLU(), nn.MaxPool2d(3, 1, 1)),
                      "max pooling windows overlap (2 (kernel 3, stride 1))"),
    "softmax": (_softmax_inside, "this network uses Softmax (1)"),
    # after a padded convolution, where the reference varies within a window: the plain gradient captum passes differs
    # from a rule there
    "adaptive-max-pool": (lambda: _net(nn.ReLU(), nn.Conv2d(6, 6, 3, padding=1), nn.ReLU(), nn.AdaptiveMaxPool2d(6)),
                          "this network uses AdaptiveMaxPool2d (4)"),
    "selu": (lambda: _net(nn.SELU()), "this network uses SELU (1)"),
    "prelu": (lambda: _net(nn.PReLU()), "this network uses PReLU (1)"),
    "hardtanh": (lambda: _net(nn.Hardtanh()), "this network uses Hardtanh (1)"),
}


def test_the_refusals_read_in_one_line() -> None:
    covers = {m: HARNESS.methods.get(m).covers for m in ("deeplift", "deconvolution", "guided-backprop")}
    rule = ("DeepLIFT's Rescale rule is implemented by captum for ReLU, ELU, LeakyReLU, Sigmoid, Tanh, Softplus and "
            "non-overlapping MaxPool modules")
    pools = _net(nn.ReLU(), nn.MaxPool2d(3, 2, 1), nn.Conv2d(6, 6, 3, padding=1), nn.MaxPool2d((3, 1), (2, 1)))
    assert covers["deeplift"](pools) == (
        f"{rule}; this network's max pooling windows overlap (2 (kernel 3, stride 2), 4 (kernel (3, 1), stride (2, 1))),"
        " where captum's max-unpooling keeps one of the contributions routed to a shared maximum")
    assert covers["deeplift"](_net(nn.SiLU())) == f"{rule}; this network uses SiLU (1)"
    assert covers["deconvolution"](_net(nn.SiLU())) == ("deconvolution replaces the backward pass of ReLUs; this "
                                                        "network uses SiLU (1)")
    assert covers["guided-backprop"](pools) is None  # gradient routing through overlapping windows is its own rule


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_each_refusal_names_what_breaks_summation_to_delta_in_captum(name: str) -> None:
    build, named = REFUSED[name]
    model = build()
    reason = HARNESS.methods.get("deeplift").covers(model)
    assert reason is not None and named in reason, reason
    x = _inputs()
    # the fact behind the refusal: captum's DeepLift, even on the separated twin, loses summation-to-delta
    assert _delta_error(_captum(_separated(model), x), model, x).max() > 1e-2


def test_a_dilated_pool_is_refused_where_captum_fails() -> None:
    model = _net(nn.ReLU(), nn.MaxPool2d(2, 2, dilation=2))
    with pytest.raises(ValueError, match="invalid output_size"):
        _captum(_separated(model), _inputs())
    reason = HARNESS.methods.get("deeplift").covers(model)
    assert reason is not None and "max pooling windows overlap (2 (kernel 2, stride 2, dilation 2))" in reason


def test_torchvision_resnet_is_refused_for_its_stem_pool_and_conserves_without_it() -> None:
    """ResNet-18's 3x3 stride-2 stem pool: captum (on xaibench's separated copy) misses the change by up to 35x; with
    a non-overlapping pool in its place summation-to-delta holds."""
    import torchvision
    from captum.attr import DeepLift
    from xaibench_captum.modelcopy import hookable_copy

    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=3).eval()
    x, targets = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 2])

    def error(m: nn.Module) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            attr = DeepLift(hookable_copy(m)).attribute(x, target=targets, baselines=torch.zeros_like(x)).detach()
        with torch.no_grad():
            change = (m(x) - m(torch.zeros_like(x)))[torch.arange(2), targets]
        return ((attr.flatten(1).sum(1) - change).abs() / change.abs()).numpy()

    assert error(model).max() > 0.1
    assert "max pooling windows overlap (maxpool (kernel 3, stride 2))" in HARNESS.methods.get("deeplift").covers(model)
    model.maxpool = nn.MaxPool2d(2)
    assert error(model).max() < 1e-4 and HARNESS.methods.get("deeplift").covers(model) is None


@pytest.mark.parametrize("method", ["guided-backprop", "deconvolution"])
def test_guided_backprop_and_deconvolution_cover_both_pooling_orders_as_captum_computes_them(method: str) -> None:
    """Their rules act on ReLU alone and max pooling passes the signal to its maxima, in either order: xaibench's maps
    are captum's on each twin. Guided backpropagation's maps of the two twins are equal; deconvolution's switches
    differ where a window is all negative (after a ReLU every position ties at 0, captum routes to the first)."""
    from captum.attr import Deconvolution, GuidedBackprop

    peer = {"guided-backprop": GuidedBackprop, "deconvolution": Deconvolution}[method]
    spec = HARNESS.methods.get(method)
    ctx = MethodContext(layer=None, batch_size=8, sample_seeds=tuple(range(6)))
    x = _inputs()
    maps = []
    for model in _issue_twins():
        assert spec.covers(model) is None
        with torch.enable_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ours = spec.explain(model, x, TARGETS, ctx, reduce="sum").detach()
            expected = peer(model).attribute(x, target=TARGETS).detach().sum(1)
        np.testing.assert_allclose(ours.numpy(), expected.numpy(), rtol=1e-6, atol=1e-9)
        maps.append(ours)
    assert torch.equal(maps[0], maps[1]) == (method == "guided-backprop")


def test_through_the_python_api_deeplift_refuses_an_overlapping_pool_and_conserves_on_the_issues_net() -> None:
    import xaibench

    x = _inputs()
    pool_first = _issue_twins()[1]
    maps = xaibench.explain(pool_first, x.numpy(), TARGETS.numpy(), method="deeplift")
    np.testing.assert_allclose(maps, _captum(_separated(pool_first), x).numpy(), rtol=1e-5, atol=1e-7)
    with pytest.raises(XaibenchError, match="^not applicable: DeepLIFT's Rescale rule .* max pooling windows overlap"):
        xaibench.explain(REFUSED["overlapping-pool"][0](), x.numpy(), TARGETS.numpy(), method="deeplift")


class MethodCalls(nn.Module):
    """``x.relu()`` as a tensor method before max pooling, and a functional flatten (not a nonlinearity)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(5)
        self.conv, self.pool, self.head = nn.Conv2d(1, 6, 3, padding=1), nn.MaxPool2d(2), nn.Linear(6 * 6 * 6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.pool(self.conv(x).relu()), 1))


def test_a_relu_method_call_gets_its_own_module_and_other_functions_stay() -> None:
    model = MethodCalls().eval()
    twin = nn.Sequential(model.conv, Copy(), nn.ReLU(), Copy(), model.pool, nn.Flatten(), model.head).eval()
    x = _inputs()
    before = [type(m) for m in model.modules()]
    ours = _ours(model, x)
    np.testing.assert_allclose(ours.numpy(), _captum(twin, x).numpy(), rtol=1e-5, atol=1e-7)
    assert _delta_error(ours, model, x).max() < 1e-5
    assert [type(m) for m in model.modules()] == before

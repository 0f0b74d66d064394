"""Incremental-inference occlusion (Krypton) equals captum's Occlusion, called directly on the same inputs.

Every comparison runs captum's ``Occlusion`` with the same window, stride, baseline and per-sample
targets; maps are compared before the division by the window's area (``per_pixel: false``), in the
units of the logits, so that the 1e-5 tolerance is not loosened by the division.
"""
from __future__ import annotations

import math

import pytest
import torch
from captum.attr import Occlusion
from torch import nn

from xaibench.base.errors import XaibenchError
from xaibench.contract.plugins import load_harness
from xaibench.contract.specs import MethodContext
from xaibench.authoring.testing import check_method, one_thread, tiny_model
from xaibench_captum import incremental

HARNESS = load_harness()
TOL = 1e-5


def _captum(model: nn.Module, x: torch.Tensor, target: torch.Tensor, window: int, stride: int,
            baseline: torch.Tensor) -> torch.Tensor:
    d, c = x.dim() - 2, x.shape[1]
    attr = Occlusion(model).attribute(x, sliding_window_shapes=(c,) + (window,) * d, strides=(c,) + (stride,) * d,
                                      baselines=baseline, target=target, perturbations_per_eval=4)
    return attr[:, 0]


def _ours(model: nn.Module, x: torch.Tensor, target: torch.Tensor, window: int, stride: int,
          fill: str = "zero", batch_size: int = 8) -> torch.Tensor:
    ctx = MethodContext(layer=None, batch_size=batch_size, sample_seeds=tuple(range(x.shape[0])),
                        data_mean=x.mean(dim=[0] + list(range(2, x.dim()))))
    return HARNESS.methods.get("occlusion-incremental").explain(model, x, target, ctx, window=window, stride=stride,
                                                               fill=fill, per_pixel=False)


def _assert_equal_to_captum(model: nn.Module, x: torch.Tensor, window: int, stride: int) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        target = torch.arange(x.shape[0]) % model(x[:1]).shape[1]  # a different class per sample
    with one_thread():
        ours = _ours(model, x, target, window, stride)
        ref = _captum(model, x, target, window, stride, torch.zeros_like(x))
    assert ours.shape == ref.shape == (x.shape[0],) + tuple(x.shape[2:])
    assert float(ref.abs().max()) > 1e-3  # the patches change the outputs: the comparison is not 0 == 0
    torch.testing.assert_close(ours, ref, rtol=0, atol=TOL)
    return ours


def _resnet18(channels: int) -> nn.Module:
    torch.manual_seed(0)
    return HARNESS.models.get("resnet18").build(num_classes=5, in_channels=channels, modality="image")


def test_tiny_cnn_one_channel_window_not_dividing_the_image() -> None:
    x = torch.rand(3, 1, 19, 17, generator=torch.Generator().manual_seed(1))
    _assert_equal_to_captum(tiny_model("image", in_channels=1), x, window=5, stride=3)


@pytest.mark.parametrize("channels", [1, 3])
def test_resnet18_equals_captum(channels: int) -> None:
    x = torch.rand(2, channels, 36, 32, generator=torch.Generator().manual_seed(2))
    _assert_equal_to_captum(_resnet18(channels), x, window=12, stride=8)  # 32 - 12 is no multiple of 8


def test_vgg16_equals_captum() -> None:
    torch.manual_seed(0)
    model = HARNESS.models.get("vgg16").build(num_classes=4, in_channels=3, modality="image", head="gap")
    x = 4 * torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))  # random VGG: small logits
    _assert_equal_to_captum(model, x, window=8, stride=8)


@pytest.mark.parametrize("modality, shape", [("signal", (2, 1, 40)), ("volume", (2, 1, 10, 12, 12))])
def test_signals_and_volumes_equal_captum(modality: str, shape: tuple[int, ...]) -> None:
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(4))
    _assert_equal_to_captum(tiny_model(modality, in_channels=1), x, window=6, stride=4)


def test_equals_the_occlusion_method_with_mean_and_noise_fills() -> None:
    model = _resnet18(3)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    target = torch.tensor([1, 3])
    ctx = MethodContext(layer=None, batch_size=8, sample_seeds=(7, 8), data_mean=torch.tensor([0.2, 0.5, 0.7]))
    for fill in ("mean", "noise"):
        params = {"window": 8, "stride": 8, "fill": fill, "per_pixel": False}
        with one_thread():
            dense = HARNESS.methods.get("occlusion").explain(model.eval(), x, target, ctx, **params)
            ours = HARNESS.methods.get("occlusion-incremental").explain(model, x, target, ctx, **params)
        torch.testing.assert_close(ours, dense, rtol=0, atol=TOL)


def test_the_incremental_path_recomputes_windows_not_whole_maps() -> None:
    """On ResNet-18 at 64 px, the stem is recomputed on windows and only the late layers densely."""
    model = _resnet18(3).eval()
    x = torch.rand(1, 3, 64, 64)
    gm = incremental.trace(model)
    modules = dict(gm.named_modules())
    lo, hi = incremental.patch_boxes((64, 64), (16, 16), (8, 8))
    with torch.inference_mode():
        steps = incremental.plan(gm.graph, modules, incremental.run_cached(gm, modules, x), lo, hi)
    mode = {n.target: s.mode for n, s in steps.items() if n.op == "call_module"}
    assert mode["conv1"] == mode["maxpool"] == mode["layer1.0.conv1"] == "window"
    assert steps[next(n for n in gm.graph.nodes if n.op == "call_module" and n.target == "conv1")].size == (11, 11)
    assert mode["layer4.1.conv2"] == mode["fc"] == "dense"


class LocalOps(nn.Module):
    """Every locally recomputed operator: dilated, strided and grouped convolutions, padded max and average
    pools, a broadcast per-channel constant, an elementwise product of two branches."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(2, 4, 3, padding=2, dilation=2)
        self.b = nn.Conv2d(4, 4, (3, 5), stride=(2, 1), padding=(1, 2), groups=2)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1, dilation=1)
        self.dpool = nn.MaxPool2d(2, stride=1, dilation=2)
        self.avg = nn.AvgPool2d(3, stride=1, padding=1)
        self.shift = nn.Parameter(torch.randn(1, 4, 1, 1))
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = nn.functional.leaky_relu(self.a(x), 0.1) + self.shift
        h = self.pool(torch.tanh(self.b(h)))
        h = self.avg(h) * torch.sigmoid(self.dpool(nn.functional.pad(h, (1, 1, 1, 1))))
        return self.head(h.sum(dim=(2, 3)))


def test_every_local_operator_equals_captum() -> None:
    torch.manual_seed(0)
    x = torch.rand(2, 2, 23, 21, generator=torch.Generator().manual_seed(8))
    _assert_equal_to_captum(LocalOps(), x, window=5, stride=4)


class SqueezeExcite(nn.Module):
    """A channel gate from a global mean: an op the incremental path does not recompute locally."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.gate = nn.GroupNorm(2, 4)  # a norm over space: global, so the rest runs densely
        self.conv2 = nn.Conv2d(4, 4, 3, padding=2, dilation=2)
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv1(x))
        h = h * torch.sigmoid(self.gate(h).mean(dim=(2, 3), keepdim=True))
        return self.head(self.conv2(h).amax(dim=(2, 3)))


class DataDependent(nn.Module):
    """Control flow on values: torch.fx cannot trace it, so captum's Occlusion runs instead."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        return (h if h.sum() > 0 else -h).mean(dim=(2, 3))


@pytest.mark.parametrize("model", [SqueezeExcite(), DataDependent()], ids=["unsupported-op", "untraceable"])
def test_fallbacks_are_still_exact(model: nn.Module) -> None:
    torch.manual_seed(0)
    x = torch.rand(2, 1, 14, 14, generator=torch.Generator().manual_seed(6))
    _assert_equal_to_captum(model, x, window=4, stride=3)


def test_every_patch_costs_one_output_row_and_the_cache_one_pass() -> None:
    """The unoccluded pass runs once (plus the model's own pass that checks the trace); every
    position gets exactly one row of the occluded output, in batches of ``batch`` positions."""
    model = tiny_model("image", in_channels=1)
    calls: list[int] = []
    handle = model[-1].register_forward_hook(lambda m, i, o: calls.append(o.shape[0]))
    lo, hi = incremental.patch_boxes((16, 16), (4, 4), (4, 4))
    try:
        incremental.occlusion_deltas(model, torch.rand(1, 1, 16, 16), torch.zeros(1, 1, 16, 16), torch.tensor([0]),
                                     lo, hi, batch=6)
    finally:
        handle.remove()
    assert calls == [1, 1, 6, 6, 4]


def test_training_mode_is_refused_in_one_line() -> None:
    model = tiny_model("image").train()
    with pytest.raises(XaibenchError, match="eval mode; call model.eval"):
        _ours(model, torch.rand(2, 1, 16, 16), torch.tensor([0, 1]), 4, 4)


def test_a_window_larger_than_the_input_is_refused() -> None:
    with pytest.raises(XaibenchError, match=r"stride <= window <= the input's smallest side \(8\)"):
        _ours(tiny_model("image"), torch.rand(2, 1, 8, 12), torch.tensor([0, 1]), 10, 4)


def test_conforms_to_the_method_contract() -> None:
    maps = check_method(HARNESS.methods.get("occlusion-incremental"), tiny_model("image"), torch.rand(2, 1, 16, 16),
                        params={"window": 4, "stride": 2})
    assert maps.shape == (2, 16, 16) and math.isfinite(float(maps.sum()))

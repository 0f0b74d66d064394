"""Every method that does not depend on activation rules, on every timm and MONAI family: the conformance kit,
Grad-CAM against an independent derivation at each family's default layer (in-place activations, reused
modules, functional activations), exact occlusion equal to captum's; and the table of rule-based methods
(``MethodSpec.covers``) that the integrator extends once the methods and LRP branches declare them."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from xaibench_networks import plugin as networks_plugin

from xaibench.scoring.maps import upsample
from xaibench.contract.plugins import load_harness
from xaibench.contract.specs import MethodContext
from xaibench.authoring.testing import check_method

#: Family -> (model name, params, modality). Inputs: 64x64 images, 32^3 volumes (MONAI's DenseNet needs 32).
FAMILIES = {
    "timm resnet10t": ("timm", {"arch": "resnet10t"}, "image"),  # ReLU(inplace=True), max-pool
    "timm efficientnet_b0": ("timm", {"arch": "efficientnet_b0"}, "image"),  # SiLU, squeeze-excitation
    "timm convnext_atto": ("timm", {"arch": "convnext_atto"}, "image"),  # GELU, LayerNorm (channels-last)
    "timm regnetx_002": ("timm", {"arch": "regnetx_002"}, "image"),  # grouped convolutions, ReLU
    "timm mobilenetv3_small_050": ("timm", {"arch": "mobilenetv3_small_050"}, "image"),  # hard-swish, ReLU, SE
    "monai densenet121 2d": ("monai/densenet121", {}, "image"),  # in-place ReLU after norm5, concatenations
    "monai densenet121 3d": ("monai/densenet121", {}, "volume"),
    "monai efficientnet-bn 2d": ("monai/efficientnet-bn", {}, "image"),  # one swish module reused
    "monai resnet10 3d": ("monai/resnet10", {}, "volume"),  # one ReLU module per block, called twice
}

#: Methods whose maps do not depend on activation rules -> the parameters that keep a check to seconds.
METHODS = {"gradcam": {}, "gradcam++": {}, "hirescam": {}, "xgradcam": {}, "layercam": {}, "saliency": {},
           "integrated-gradients": {"n_steps": 4}, "occlusion": {"window": 16}}

#: Rule-based methods -> families whose nonlinearities their rules are defined for ("covered"); every other
#: family must be "not applicable". Extend with deconvolution, guided-gradcam and the LRP composites when their
#: ``covers`` land (methods and lrp branches); a method without ``covers`` yet is skipped with that reason.
RULE_BASED = {
    "guided-backprop": {"timm resnet10t", "timm regnetx_002", "monai densenet121 2d", "monai densenet121 3d",
                        "monai resnet10 3d"},
    # the ResNets' and DenseNets' 3x3 stride-2 stem pools overlap: captum's max-pooling rule loses contributions there
    "deeplift": {"timm regnetx_002"},
}


@pytest.fixture(scope="module")
def harness():  # type: ignore[no-untyped-def]
    return load_harness()


_BUILT: dict[str, tuple[nn.Module, nn.Module, torch.Tensor]] = {}


def _family(harness, family: str) -> tuple[nn.Module, nn.Module, torch.Tensor]:  # type: ignore[no-untyped-def]
    """(model in eval mode, its default CAM layer, two inputs), built once per family."""
    if family not in _BUILT:
        name, params, modality = FAMILIES[family]
        spec = harness.models.get(name)
        torch.manual_seed(0)
        model = spec.build(num_classes=3, in_channels=1, modality=modality, **params).eval()
        x = torch.rand(2, 1, *((64, 64) if modality == "image" else (32, 32, 32)))
        _BUILT[family] = (model, spec.target_layer(model), x)
    return _BUILT[family]


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_method_conforms_on_each_family(harness, family: str, method: str) -> None:  # type: ignore[no-untyped-def]
    model, layer, x = _family(harness, family)
    check_method(harness.methods.get(method), model, x, layer=layer, params=METHODS[method])


def _grad_cam(model: nn.Module, layer: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Grad-CAM (Selvaraju et al. 2017, Eq. 1-2) by autograd on the layer's output, as the forward pass leaves it."""
    seen: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _m, _i, out: seen.append(out))
    try:
        logits = model(x)
    finally:
        handle.remove()
    assert len(seen) == 1, "the default CAM layer runs once per forward pass"
    grads = torch.autograd.grad(logits[torch.arange(len(x)), target].sum(), seen[0])[0]
    weights = grads.mean(dim=tuple(range(2, grads.dim())), keepdim=True)
    return torch.relu((weights * seen[0]).sum(1)).detach()


def _scaled(a: torch.Tensor) -> torch.Tensor:
    flat = a.reshape(len(a), -1)
    lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    return ((flat - lo) / torch.where(hi > lo, hi - lo, torch.ones_like(hi))).reshape(a.shape)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_grad_cam_at_each_familys_default_layer_is_grad_cam(harness, family: str) -> None:  # type: ignore[no-untyped-def]
    model, layer, x = _family(harness, family)
    target = torch.tensor([0, 2])
    ctx = MethodContext(layer=layer, batch_size=2, sample_seeds=(0, 1))
    ours = upsample(harness.methods.get("gradcam").explain(model, x, target, ctx).float(), tuple(x.shape[2:]))
    theirs = upsample(_grad_cam(model, layer, x, target), tuple(x.shape[2:]))
    torch.testing.assert_close(_scaled(ours), _scaled(theirs), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_exact_incremental_occlusion_equals_occlusion_on_each_family(harness, family: str) -> None:  # type: ignore[no-untyped-def]
    model, _, x = _family(harness, family)
    target = torch.tensor([1, 0])
    ctx = MethodContext(layer=None, batch_size=8, sample_seeds=(0, 1))
    plain = harness.methods.get("occlusion").explain(model, x, target, ctx, window=16)
    incremental = harness.methods.get("occlusion-incremental").explain(model, x, target, ctx, window=16)
    np.testing.assert_allclose(incremental.numpy(), plain.numpy(), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("method", sorted(RULE_BASED))
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_rule_based_methods_cover_exactly_the_families_their_rules_define(harness, family: str,
                                                                          method: str) -> None:  # type: ignore[no-untyped-def]
    if method not in harness.methods:
        pytest.skip(f"{method} is not registered")
    spec = harness.methods.get(method)
    if spec.covers is None:
        pytest.skip(f"{method} declares no covers yet (the methods branch adds it)")
    model, _, _ = _family(harness, family)
    reason = spec.covers(model)
    assert (reason is None) == (family in RULE_BASED[method]), (method, family, reason)


def test_the_networks_plugin_is_what_these_families_come_from(harness) -> None:  # type: ignore[no-untyped-def]
    assert {harness.models.entry(name).plugin for name, _, _ in FAMILIES.values()} == {"networks"}
    assert networks_plugin.__name__ == "xaibench_networks.plugin"

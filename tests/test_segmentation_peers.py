"""Peer checks of the region target (issue 41, Done when): a segmenter explained through the one target adapter
equals the peer libraries called directly on the same model, layer, inputs and region.

- Grad-CAM of the predicted region equals ``pytorch_grad_cam.GradCAM`` with ``SemanticSegmentationTarget``
  (Vinogradova et al. 2020's Seg-Grad-CAM, the library's tutorial target) to 1e-5;
- saliency and integrated gradients of the region score equal captum's on a hand-written wrapper that sums the
  region's logits, to 1e-6.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import xaibench
from segnets import centred, unet

X = torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(3))


class RegionSum(nn.Module):
    """By hand: ``sum_{i in mask} net(x)[:, k, i]``, one scalar per input."""

    def __init__(self, net: nn.Module, k: int, mask: torch.Tensor) -> None:
        super().__init__()
        self.net, self.k, self.mask = net, k, mask.float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.net(x)[:, self.k] * self.mask).sum((1, 2))


def _predicted(net: nn.Module, k: int) -> torch.Tensor:
    with torch.no_grad():
        out = net(X)
    return out[:, 0] > 0 if out.shape[1] == 1 else out.argmax(1) == k


@pytest.mark.parametrize("k_out", [1, 3])
def test_gradcam_of_the_predicted_region_equals_pytorch_grad_cam_semantic_segmentation_target(k_out: int) -> None:
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import SemanticSegmentationTarget

    net = centred(unet(seed=0, k=k_out), X)
    regions = _predicted(net, 1)
    assert all(0 < int(r.sum()) < 256 for r in regions)  # a real region, neither empty nor everything
    ours = xaibench.explain(net, X, {"region": "predicted", "class": 1}, method="gradcam", layer="mid")
    cam = GradCAM(model=net, target_layers=[net.mid])
    try:  # one logit: class 1 of [-z, z] is the user's z, the library's category 0
        theirs = cam(input_tensor=X, targets=[SemanticSegmentationTarget(0 if k_out == 1 else 1, r.numpy())
                                              for r in regions])
    finally:
        cam.activations_and_grads.release()
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    assert np.ptp(ours) > 0.1


@pytest.mark.parametrize(("method", "peer"), [("saliency", "Saliency"),
                                             ("integrated-gradients", "IntegratedGradients")])
@pytest.mark.parametrize("reduce", ["sum", "mean"])
def test_attributions_of_the_region_score_equal_captum_on_a_wrapper_that_sums_the_region(method: str, peer: str,
                                                                                       reduce: str) -> None:
    import captum.attr

    net = centred(unet(seed=2, k=3), X)
    regions = _predicted(net, 2)
    ours = xaibench.explain(net, X, {"region": "predicted", "class": 2, "reduce": reduce}, method=method)
    for i in range(3):
        wrapper = RegionSum(net, 2, regions[i] / (regions[i].sum() if reduce == "mean" else 1))
        explainer = getattr(captum.attr, peer)(wrapper)
        kw = {"abs": False} if peer == "Saliency" else {"n_steps": 32, "baselines": 0.0}
        theirs = explainer.attribute(X[i:i + 1], **kw).detach()[0, 0].numpy()
        np.testing.assert_allclose(ours[i], np.abs(theirs) if peer == "Saliency" else theirs, atol=1e-6, rtol=0)
        assert np.abs(theirs).max() > 1e-3


def test_a_box_and_a_pixel_region_are_the_peer_wrappers_of_that_box_and_pixel() -> None:
    from captum.attr import Saliency

    net = unet(seed=2, k=1)
    box = torch.zeros(16, 16, dtype=torch.bool)
    box[2:6, 9:15] = True
    pixel = torch.zeros(16, 16, dtype=torch.bool)
    pixel[7, 3] = True
    for target, mask in (({"region": "box", "box": [[2, 6], [9, 15]]}, box),
                         ({"region": "pixel", "pixel": [7, 3], "class": 0}, pixel)):
        ours = xaibench.explain(net, X, target, method="saliency")
        sign = 1.0 if target.get("class", 1) == 1 else -1.0  # class 0 of [-z, z] is -z
        theirs = Saliency(RegionSum(net, 0, mask * sign)).attribute(X, abs=True)[:, 0].numpy()
        np.testing.assert_allclose(ours, theirs, atol=1e-6, rtol=0)


#: Methods the tiny UNet is outside the rules of (one line each, as for any model they do not cover).
NOT_COVERED = {"lrp-alpha-beta", "lrp-epsilon", "lrp-epsilon-gamma-box", "lrp-epsilon-plus-flat", "lrp-gamma"}
#: Not a method of a plain network (it reads the model's own saliency branch), or seconds on a CPU.
LEFT_OUT = {"supervised-saliency", "ablationcam"}


def _registered() -> list[str]:
    from xaibench.contract.plugins import load_harness

    return [e.spec.name for e in load_harness().methods if e.spec.name not in LEFT_OUT]


@pytest.mark.parametrize("name", _registered())
def test_every_registered_method_runs_unchanged_on_a_region_target(name: str) -> None:
    """The one target adapter: every method reads (N, K) region scores, with no code of its own for segmenters;
    a method whose rules do not cover the network says so in one line, as on a classifier."""
    from xaibench.base.errors import XaibenchError
    from xaibench.contract.plugins import load_harness

    spec = load_harness().methods.get(name)
    net = centred(unet(seed=0, k=2), X[:2])
    masks = np.zeros((2, 16, 16), bool)
    masks[:, 4:10, 4:12] = True
    kw = {"layer": "down"} if spec.takes_layer else {}
    if name in NOT_COVERED:
        with pytest.raises(XaibenchError, match=r"^not applicable: LRP rules are not defined for Upsample"):
            xaibench.explain(net, X[:2], None, method=name, masks=masks, **kw)
        return
    maps = xaibench.explain(net, X[:2], None, method=name, masks=masks, **kw)
    assert maps.shape == (2, 16, 16) and np.isfinite(maps).all() and np.ptp(maps) > 0


def test_the_adapters_own_layer_names_resolve_as_the_users() -> None:
    from xaibench.contract.outputs import OutputForm, conform

    net = unet(k=1)
    seg = conform(net, num_classes=2, in_channels=1, spatial=(8, 8), form=OutputForm(), who="m")
    assert seg.get_submodule("wrapped.pool") is seg.get_submodule("pool") is net.pool  # fx names, the user's names


@pytest.mark.parametrize("k_out", [1, 3])
def test_lrp_of_the_region_score_equals_zennit_started_at_the_regions_logits(k_out: int) -> None:
    """zennit called directly on the user's network: relevance ``R_k,i = w_i y_k,i`` at the per-pixel output (the
    z-rule of the region's sum, which sums to the region score), the epsilon rule on every layer. One logit: class
    1 of ``[-z, z]`` is ``z``, relevance started at ``z`` itself (the one-logit convention)."""
    from segnets import full_resolution
    from xaibench_zennit.rules import _rule_map
    from zennit.rules import Epsilon

    torch.manual_seed(4)
    net = full_resolution(k=k_out).eval()
    with torch.no_grad():
        net[-1].bias -= net(X).transpose(0, 1).flatten(1).median(1).values  # a real region (segnets.centred)
    k = 1
    ours = xaibench.explain(net, X, {"region": "predicted", "class": k}, method="lrp-epsilon")
    with torch.no_grad():
        out = net(X)
    regions = (out[:, 0] > 0) if k_out == 1 else (out.argmax(1) == k)
    composite = _rule_map(Epsilon(epsilon=1e-6))
    composite.register(net)
    try:  # one input per pass, as the adapter explains each sample (epsilon 1e-6 amplifies a batch's rounding)
        for i in range(3):
            x = X[i:i + 1].clone().requires_grad_(True)
            y = net(x)[:, 0 if k_out == 1 else k]
            (theirs,) = torch.autograd.grad(y, x, grad_outputs=regions[i:i + 1].float() * y.detach())
            np.testing.assert_allclose(ours[i], theirs[0, 0].numpy(), atol=1e-6, rtol=0)
    finally:
        composite.remove()
    assert np.abs(ours).max() > 1e-3

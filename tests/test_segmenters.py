"""Segmentation networks by name: each builds offline, returns (N, K, *spatial) logits at the input's size, and
names its bottleneck as the CAM layer (issue 41, item 2)."""
from __future__ import annotations

import os

import pytest
import torch
from xaibench_models import plugin as models_plugin
from xaibench_networks import plugin as networks_plugin

from xaibench.base.errors import XaibenchError
from xaibench.contract.plugins import load_harness

#: name -> the dotted path of its bottleneck, read off the architecture's code (MONAI's recursive UNets nest one
#: ``.1.submodule`` per stride; torchvision's backbones), and the bottleneck's stride with the default parameters.
BOTTLENECK = {
    "small-unet": ("bottleneck", 8),
    "monai/unet": ("model.1.submodule.1.submodule.1.submodule", 8),
    "monai/attention-unet": ("model.1.submodule.1.submodule.1.submodule", 8),
    "monai/dynunet": ("bottleneck", 8),
    "monai/basicunet": ("down_4", 16),
    "monai/segresnet": ("down_layers.3", 8),
}
#: torchvision's segmenters (2D only, dict outputs), their CAM layer and its stride.
TORCHVISION = {
    "fcn_resnet50": ("backbone.layer4", 8),
    "deeplabv3_resnet50": ("backbone.layer4", 8),
    "lraspp_mobilenet_v3_large": ("backbone.16", 16),
}
HEAVY = pytest.mark.skipif(not os.environ.get("XAIBENCH_HEAVY"), reason="ResNet-50 segmenters: set XAIBENCH_HEAVY=1")


@pytest.fixture(scope="module")
def specs() -> dict:  # type: ignore[type-arg]
    harness = load_harness([("models", models_plugin), ("networks", networks_plugin)], entry_points=False)
    return {e.spec.name: e.spec for e in harness.registry("models")}


def _run(spec, model, x):  # type: ignore[no-untyped-def]
    """The logits of ``model`` on ``x`` and the spatial shape of its CAM layer's output."""
    seen: list[tuple[int, ...]] = []
    handle = spec.target_layer(model).register_forward_hook(lambda _m, _i, out: seen.append(tuple(out.shape[2:])))
    try:
        with torch.no_grad():
            out = model.eval()(x)
    finally:
        handle.remove()
    return (out["out"] if isinstance(out, dict) else out), seen


@pytest.mark.parametrize("name", sorted(BOTTLENECK))
@pytest.mark.parametrize(("modality", "spatial"), [("image", (32, 48)), ("volume", (16, 16, 32))])
@pytest.mark.parametrize("classes", [1, 3])
def test_segmenters_give_dense_logits_at_the_input_size(specs, name, modality, spatial, classes) -> None:  # type: ignore[no-untyped-def]
    path, stride = BOTTLENECK[name]
    model = specs[name].build(num_classes=classes, in_channels=2, modality=modality)
    out, seen = _run(specs[name], model, torch.rand(2, 2, *spatial))
    assert out.shape == (2, classes, *spatial)
    assert specs[name].target_layer(model) is model.get_submodule(path)
    assert seen == [tuple(s // stride for s in spatial)]  # runs once per pass, at the bottleneck's resolution


@pytest.mark.parametrize("name", ["lraspp_mobilenet_v3_large", pytest.param("fcn_resnet50", marks=HEAVY),
                                  pytest.param("deeplabv3_resnet50", marks=HEAVY)])
def test_torchvision_segmenters_build_offline_with_a_dict_output(specs, name) -> None:  # type: ignore[no-untyped-def]
    path, stride = TORCHVISION[name]
    model = specs[name].build(num_classes=2, in_channels=1, modality="image")
    out, seen = _run(specs[name], model, torch.rand(2, 1, 64, 64))
    assert out.shape == (2, 2, 64, 64)
    assert specs[name].target_layer(model) is model.get_submodule(path)
    assert seen == [(64 // stride, 64 // stride)]
    with pytest.raises(TypeError, match="segments 2D images, not volume data"):
        specs[name].build(num_classes=2, in_channels=1, modality="volume")


def test_segmenter_parameters_are_checked(specs) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TypeError, match="params: deep_supervision is set by the harness"):
        specs["monai/dynunet"].build(num_classes=2, in_channels=1, modality="image", deep_supervision=True)
    with pytest.raises(XaibenchError, match="segments image .2D. or volume .3D. data, not signal data"):
        specs["monai/unet"].build(num_classes=2, in_channels=1, modality="signal")
    with pytest.raises(TypeError, match="small-unet segments image .2D. or volume .3D. data, not signal data"):
        specs["small-unet"].build(num_classes=2, in_channels=1, modality="signal")
    # a suite's params go to MONAI over the harness's defaults: four strides put the bottleneck one level deeper
    deeper = specs["monai/unet"].build(num_classes=2, in_channels=1, modality="image",
                                       channels=(8, 16, 32, 64, 128), strides=(2, 2, 2, 2))
    assert specs["monai/unet"].target_layer(deeper) is deeper.get_submodule(
        "model.1.submodule.1.submodule.1.submodule.1.submodule")

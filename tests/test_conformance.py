"""The public conformance kit (xaibench.authoring.testing) over every built-in method, 2D, 1D and 3D.

Expensive methods get small step/mask counts through the kit's ``params``
overrides; everything runs on the kit's tiny random-weight model.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from xaibench.contract.plugins import load_harness
from xaibench.contract.specs import MethodContext, MethodSpec
from xaibench.authoring.testing import check_method, tiny_layer, tiny_model

HARNESS = load_harness()
BUILTIN = [e.spec for e in HARNESS.methods if HARNESS.plugins[e.plugin].distribution == "xaibench"]
SIGNAL = [s for s in BUILTIN if "signal" in s.modalities]
VOLUME = [s for s in BUILTIN if "volume" in s.modalities]

#: Parameters that keep each expensive method to a fraction of a second on the tiny model.
FAST = {
    "integrated-gradients": {"n_steps": 8},
    "gradient-shap": {"n_samples": 4},
    "rise": {"n_masks": 64, "grid": 4},
    "occlusion": {"window": 4},
    "occlusion-incremental": {"window": 4},
    "feature-ablation": {"patch": 4},
    "smoothgrad": {"samples": 4},
    "smoothgrad-sq": {"samples": 4},
    "vargrad": {"samples": 4},
    "lime": {"n_samples": 24, "n_segments": 8},
    "kernel-shap": {"n_samples": 24, "n_segments": 8},
    "lrp-epsilon-gamma-box": {"low": -8.0, "high": 8.0},  # the box holds the checks' inputs (rand and randn)
}


#: Methods that explain a model's own extra output: checked on the registered model that has it.
OWN_MODEL = {"supervised-saliency": "supervised-saliency-cnn"}


def _model(spec: MethodSpec, modality: str) -> tuple[nn.Module, nn.Module]:
    """The model to check ``spec`` on, and its CAM target layer."""
    if spec.name in OWN_MODEL:
        mspec = HARNESS.models.get(OWN_MODEL[spec.name])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = mspec.build(num_classes=3, in_channels=1, modality=modality, width=4).eval()
        return model, mspec.target_layer(model)
    model = tiny_model(modality)
    return model, tiny_layer(model)


def _check(spec: MethodSpec, modality: str, **params: object) -> torch.Tensor:
    g = torch.Generator().manual_seed(7)
    x = {"image": lambda: torch.rand(2, 1, 16, 16, generator=g), "signal": lambda: torch.randn(2, 1, 40, generator=g),
         "volume": lambda: torch.rand(2, 1, 12, 16, 16, generator=g)}[modality]()
    model, layer = _model(spec, modality)
    return check_method(spec, model, x, layer=layer if spec.takes_layer else None,
                        params={**FAST.get(spec.name, {}), **params}, batch_size=16)


def test_every_method_the_issue_names_is_registered() -> None:
    names = {s.name for s in BUILTIN}
    assert {"gradcam", "gradcam++", "hirescam", "eigengradcam", "eigencam", "layercam", "xgradcam",
            "ablationcam", "scorecam", "fullgrad", "saliency", "integrated-gradients", "gradient-shap",
            "deeplift", "guided-backprop", "occlusion", "feature-ablation", "sise", "rise", "random", "centre",
            "ground-truth"} <= names


@pytest.mark.parametrize("spec", BUILTIN, ids=lambda s: s.name)
def test_method_conforms_on_images(spec: MethodSpec) -> None:
    assert _check(spec, "image").shape[0] == 2


@pytest.mark.parametrize("spec", SIGNAL, ids=lambda s: s.name)
def test_method_conforms_on_signals(spec: MethodSpec) -> None:
    maps = _check(spec, "signal")
    assert maps.dim() == 2 and maps.shape[1] <= 40


@pytest.mark.parametrize("spec", VOLUME, ids=lambda s: s.name)
def test_method_conforms_on_volumes(spec: MethodSpec) -> None:
    maps = _check(spec, "volume")
    assert maps.dim() == 4 and all(m <= s for m, s in zip(maps.shape[1:], (12, 16, 16)))


def test_volume_methods_are_the_checked_ones() -> None:
    """Which built-in methods declare volumes, and which decline (pytorch-grad-cam's 2D-only CAMs)."""
    declared = {s.name for s in VOLUME}
    assert {"gradcam", "gradcam++", "hirescam", "eigengradcam", "eigencam", "layercam", "xgradcam", "saliency",
            "integrated-gradients", "gradient-shap", "deeplift", "guided-backprop", "occlusion", "feature-ablation",
            "rise", "sise", "random", "centre", "ground-truth"} <= declared
    assert not declared & {"scorecam", "ablationcam", "fullgrad"}


@pytest.mark.parametrize("name", ["scorecam", "ablationcam", "fullgrad"])
def test_cams_without_3d_support_decline_volumes_with_their_reason(name: str) -> None:
    spec = HARNESS.methods.get(name)
    model = tiny_model("volume")
    ctx = MethodContext(layer=tiny_layer(model), batch_size=4, sample_seeds=(1, 2))
    with pytest.raises(ValueError, match=r"does not support volumes \(N, C, D, H, W\): .*(4D|Conv2d)"):
        spec.explain(model, torch.rand(2, 1, 8, 8, 8), torch.tensor([0, 1]), ctx)


@pytest.mark.parametrize("name", ["saliency", "deeplift"])
def test_noise_tunnel_conforms(name: str) -> None:
    _check(HARNESS.methods.get(name), "image", noise_tunnel={"type": "smoothgrad", "samples": 3, "stdev": 0.1})


def test_kit_catches_a_method_that_changes_the_model() -> None:
    def sloppy(model, x, target, ctx):  # type: ignore[no-untyped-def]
        model.train()
        model(x)  # updates BatchNorm statistics
        return x[:, 0]

    spec = MethodSpec(name="sloppy", explain=sloppy, modalities=frozenset({"image"}), description="bad")
    with pytest.raises(AssertionError, match="buffer|mode"):
        _check(spec, "image")


def test_kit_catches_batch_dependent_randomness() -> None:
    spec = MethodSpec(name="global-rng", explain=lambda model, x, target, ctx: torch.rand(x.shape[0], *x.shape[2:]),
                      modalities=frozenset({"image"}), description="bad")
    with pytest.raises(AssertionError, match="different maps|alone"):
        _check(spec, "image")


def test_kit_catches_wrong_shapes_and_nan() -> None:
    flat = MethodSpec(name="flat", explain=lambda model, x, target, ctx: x.flatten(1),
                      modalities=frozenset({"image"}), description="bad")
    with pytest.raises(AssertionError, match="shape"):
        _check(flat, "image")
    nan = MethodSpec(name="nan", explain=lambda model, x, target, ctx: x[:, 0] * float("nan"),
                     modalities=frozenset({"image"}), description="bad")
    with pytest.raises(AssertionError, match="NaN"):
        _check(nan, "image")

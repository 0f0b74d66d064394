"""CAM methods: the 1D path against the defining formulas, and every CAM on the built-in models."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import nn

from xaibench.scoring.maps import normalize
from xaibench.contract.plugins import load_harness
from xaibench.contract.specs import MethodContext
from xaibench.authoring.testing import check_method, one_thread

HARNESS = load_harness()
CAMS = [e.spec for e in HARNESS.methods if e.plugin == "gradcam"]
#: One forward pass per feature map (512 on ResNet-18's layer4): checked on the small models only, to stay fast.
EVALUATION_CAMS = {"scorecam", "ablationcam"}


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    with one_thread():
        yield


def _flat_1d_model() -> tuple[nn.Module, nn.Module]:
    """A conv-ReLU layer at full resolution, so maps need no resizing and formulas compare exactly."""
    torch.manual_seed(3)
    relu = nn.ReLU()
    model = nn.Sequential(nn.Conv1d(1, 4, 3, padding=1), relu, nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(4, 3))
    return model.eval(), relu


def _acts_grads(model: nn.Module, layer: nn.Module, x: torch.Tensor, target: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
    store = {}
    handle = layer.register_forward_hook(lambda m, i, o: store.__setitem__("a", o))
    out = model(x)
    handle.remove()
    grads = torch.autograd.grad(out.gather(1, target[:, None]).sum(), store["a"])[0]
    return store["a"].detach(), grads


@pytest.mark.parametrize("name, formula", [
    ("gradcam", lambda a, g: (g.mean(2, keepdim=True) * a).sum(1)),
    ("hirescam", lambda a, g: (g * a).sum(1)),
    ("layercam", lambda a, g: (g.clamp(min=0) * a).sum(1)),
    ("xgradcam", lambda a, g: ((g * a).sum(2, keepdim=True) / (a.sum(2, keepdim=True) + 1e-7) * a).sum(1)),
])
def test_1d_cams_follow_their_definitions(name: str, formula) -> None:  # type: ignore[no-untyped-def]
    model, layer = _flat_1d_model()
    x, target = torch.randn(3, 1, 40), torch.tensor([0, 1, 2])
    acts, grads = _acts_grads(model, layer, x, target)
    expected = normalize(formula(acts, grads).clamp(min=0), "raw")
    ctx = MethodContext(layer=layer, batch_size=8, sample_seeds=(0, 1, 2))
    got = HARNESS.methods.get(name).explain(model, x, target, ctx)
    assert got.shape == (3, 40)
    assert torch.allclose(got, expected, atol=1e-4)


def test_1d_cams_equal_the_library_on_the_equivalent_2d_model() -> None:
    """A Conv1d model and the same weights as a (1, k) Conv2d on height-one images give the same maps."""
    model, layer = _flat_1d_model()
    conv1d, head = model[0], model[4]
    conv2d = nn.Conv2d(1, 4, (1, 3), padding=(0, 1))
    with torch.no_grad():
        conv2d.weight.copy_(conv1d.weight[:, :, None])
        conv2d.bias.copy_(conv1d.bias)
    relu2d = nn.ReLU()
    model2d = nn.Sequential(conv2d, relu2d, nn.AdaptiveAvgPool2d(1), nn.Flatten(), head).eval()
    x, target = torch.randn(2, 1, 40), torch.tensor([1, 2])
    for spec in CAMS:
        if "signal" not in spec.modalities:
            continue
        one = spec.explain(model, x, target, MethodContext(layer=layer, batch_size=8, sample_seeds=(0, 1)))
        two = spec.explain(model2d, x[:, :, None], target, MethodContext(layer=relu2d, batch_size=8, sample_seeds=(0, 1)))
        assert torch.allclose(one, two[:, 0], atol=1e-4), spec.name


def test_image_only_cams_refuse_signals_with_a_clear_message() -> None:
    model, layer = _flat_1d_model()
    with pytest.raises(ValueError, match="ablationcam supports images"):
        HARNESS.methods.get("ablationcam").explain(model, torch.randn(2, 1, 40), torch.tensor([0, 1]),
                                                   MethodContext(layer=layer, batch_size=8, sample_seeds=(0, 1)))


@pytest.mark.parametrize("model_name, modality, shape", [
    ("small-cnn", "image", (2, 1, 24, 24)),
    ("small-cnn", "signal", (2, 1, 40)),
    ("cnn1d-shallow", "signal", (2, 1, 40)),
    ("resnet18", "image", (1, 3, 32, 32)),
])
def test_every_cam_runs_on_the_built_in_models_with_their_target_layers(model_name: str, modality: str,
                                                                        shape: tuple[int, ...]) -> None:
    mspec = HARNESS.models.get(model_name)
    torch.manual_seed(0)
    kwargs = {"width": 4} if model_name == "small-cnn" else {}
    model = mspec.build(num_classes=3, in_channels=shape[1], modality=modality, **kwargs).eval()
    layer = mspec.target_layer(model)
    x = torch.rand(*shape)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for spec in CAMS:
        if modality not in spec.modalities or (model_name == "resnet18" and spec.name in EVALUATION_CAMS):
            continue
        ctx = MethodContext(layer=layer, batch_size=64, sample_seeds=tuple(range(shape[0])))
        with torch.enable_grad():
            maps = spec.explain(model, x, torch.zeros(shape[0], dtype=torch.long), ctx)
        assert maps.shape[0] == shape[0] and maps.dim() == len(shape) - 1, spec.name
        assert torch.isfinite(maps).all(), spec.name
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_deeplift_conforms_on_resnet_and_sums_to_delta_despite_reused_relus() -> None:
    """torchvision's ResNet calls each block's ``self.relu`` twice; on the ReLU-safe copy DeepLIFT's
    attributions sum to f(x) - f(baseline) (Shrikumar et al. 2017), and the model is untouched. The small stem
    (no max pooling): the ImageNet stem's overlapping 3x3 stride-2 pool is outside captum's rule (refused)."""
    torch.manual_seed(0)
    spec = HARNESS.methods.get("deeplift")
    imagenet = HARNESS.models.get("resnet18").build(num_classes=3, in_channels=3, modality="image")
    assert "max pooling windows overlap (maxpool (kernel 3, stride 2))" in spec.covers(imagenet)
    model = HARNESS.models.get("resnet18").build(num_classes=3, in_channels=3, modality="image", stem="small").eval()
    assert spec.covers(model) is None
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        target = model(x).argmax(1)
        delta = (model(x) - model(torch.zeros_like(x))).gather(1, target[:, None])[:, 0]
    attr = check_method(HARNESS.methods.get("deeplift"), model, x, target)
    assert torch.allclose(attr.flatten(1).sum(1), delta, rtol=1e-3, atol=1e-4)

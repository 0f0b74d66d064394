"""Issue 14, cases 3 and 4: CAM layers too coarse to localize, constant maps, and hooks that see what the layer emitted."""
from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import TINY_SUITE
from torch import nn
from xaibench_gradcam.methods import sign_corrected
from xaibench_gradcam.plugin import CAMS

from xaibench import hookimpl, leaderboard
from xaibench.scoring.degenerate import constant_maps, layer_output_spatial, mask_constant
from xaibench.base.errors import PlanError
from xaibench.contract.plugins import load_harness
from xaibench.running.runner import Runner, RunOptions
from xaibench.contract.specs import MethodContext, MethodSpec
from xaibench.storage.store import Store
from xaibench.suites.suite import load_suite

SIZE = 64


def _write_medmnist(root: Path, size: int = 28, n: int = 24) -> None:
    """A breastmnist-shaped npz (uint8 images, (N, 1) labels) under ``root/medmnist``."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split in ("train", "val", "test"):
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, size, size), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 2).reshape(n, 1)
    (root / "medmnist").mkdir(parents=True, exist_ok=True)
    np.savez(root / "medmnist" / "breastmnist.npz", **arrays)


def _suite(tmp_path: Path, method: str, model: str = "resnet18", size: int = 28) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(f"name: small-cam\nsamples: 4\nimage_size: {size}\ndatasets:\n  - {{name: medmnist, params: {{flag: breastmnist}}}}\n"
                    f"models: [{model}]\nmethods:\n  - {method}\nmetrics: [dic]\n")
    return path


def test_case3_resnet18_at_28px_is_refused_at_plan_time(tmp_path: Path) -> None:
    _write_medmnist(tmp_path)
    runner = Runner(load_harness(), load_suite(_suite(tmp_path, "gradcam")), Store(tmp_path / "r.sqlite"),
                    RunOptions(progress=False, data_root=str(tmp_path)))
    with pytest.raises(PlanError) as exc:
        runner.plan()
    # torchvision's ResNet-18 divides by 32: 28 px -> 14 (conv1) -> 7 (maxpool) -> 7, 4, 2, 1 (layer1..4)
    assert str(exc.value) == (
        f"{tmp_path / 'suite.yaml'}:8: method 'gradcam' on model 'resnet18': CAM layer 'layer4.1' gives a 1x1 map "
        "for 28x28 inputs, too coarse to localize (at least 4 per axis): name a finer layer with `layer:`, such as "
        "'layer2' (4x4), use a larger `image_size`, or `stem: small` on a torchvision ResNet; or accept it with `allow_small_cam: true` "
        "on the method")
    assert not (Path(RunOptions().home) / "models").exists() or not any((Path(RunOptions().home) / "models").iterdir())


def test_small_cam_accepted_when_the_suite_says_so_and_fixes_named_work(tmp_path: Path) -> None:
    _write_medmnist(tmp_path)
    for method, model, size in (("{name: gradcam, allow_small_cam: true}", "resnet18", 28),
                                ("{name: gradcam, params: {layer: layer2}}", "resnet18", 28),  # 28 / 8 -> 4x4
                                ("gradcam", "resnet18", 128),  # 128 / 32 -> 4x4
                                ("gradcam", "{name: resnet18, params: {stem: small}}", 64),  # 64 / 16 -> 4x4
                                ("saliency", "resnet18", 28)):
        suite = _suite(tmp_path, method, model, size)
        runner = Runner(load_harness(), load_suite(suite), Store(tmp_path / "r.sqlite"),
                        RunOptions(progress=False, data_root=str(tmp_path)))
        assert len(runner.plan()) == 1


def test_layer_output_spatial_matches_the_arithmetic() -> None:
    import torchvision

    model = torchvision.models.resnet18(weights=None, num_classes=2)
    assert layer_output_spatial(model, model.layer4, 3, (64, 64)) == (2, 2)  # 64 / 32
    assert layer_output_spatial(model, model.layer2, 3, (64, 64)) == (8, 8)  # 64 / 8


def test_constant_maps_are_flagged_and_scored_nan() -> None:
    maps = np.stack([np.zeros((4, 4)), np.full((4, 4), 0.3), np.eye(4), np.full((4, 4), 1e-20)])
    maps[3, 0, 0] = 2e-20
    assert constant_maps(maps).tolist() == [True, True, False, False]
    values, k = mask_constant(np.array([1.0, 2.0, 3.0, 4.0]), maps)
    assert k == 2 and np.isnan(values[:2]).all() and values[2:].tolist() == [3.0, 4.0]


class HalfConstant:
    """A method whose maps are all zero on even-numbered samples of each batch."""

    @hookimpl
    def xaibench_register_methods(self, register):  # type: ignore[no-untyped-def]
        def explain(model, x, target, ctx):  # type: ignore[no-untyped-def]
            out = x[:, 0].clone()
            out[::2] = 0
            return out

        register(MethodSpec(name="half-constant", explain=explain, modalities=frozenset({"image"}),
                            needs_gradients=False, description="zero maps on every other sample"))


def test_cells_with_constant_maps_report_the_count(tmp_path: Path, tiny_plugin) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "suite.yaml"
    path.write_text(TINY_SUITE.replace("methods: [input-times-one, random, {name: ground-truth, label: oracle}]",
                                       "methods: [input-times-one, half-constant]"))
    store = Store(tmp_path / "r.sqlite")
    runner = Runner(load_harness([("tiny", tiny_plugin), ("half", HalfConstant())]), load_suite(path), store,
                    RunOptions(progress=False))
    assert not runner.run().failed
    recs = {(r.method, r.metric): r for r in leaderboard.records(store, "tiny")}
    full, half = recs[("input-times-one", "hit-rate")], recs[("half-constant", "hit-rate")]
    assert (full.n, full.constant_maps) == (8, 0)
    assert (half.n, half.constant_maps) == (4, 4)
    scores = store.scores(half.cell_key)
    assert sum(np.isnan(v) for v in scores.values()) == 4
    assert "- half-constant: 4 of 8 maps constant, scored NaN" in leaderboard.render(store, "tiny")


# -- case 4: activations captured as copies ---------------------------------------------------------------

LAYER_CAMS = [c for c in CAMS if c.takes_layer]
#: Run by default: the small CNN with every CAM, and the in-place architectures with some gradient CAMs.
#: The rest of the matrix (larger torchvision models; Score-CAM and Ablation-CAM, one pass per channel) is
#: marked heavy: `XAIBENCH_HEAVY=1 pytest -m heavy tests/test_boundary_cam.py`.
FAST = {"small-cnn": {c.name for c in LAYER_CAMS}, "densenet121": {"gradcam", "eigencam", "layercam"},
        "mobilenet_v2": {"gradcam"}}


HEAVY = pytest.mark.skipif(not os.environ.get("XAIBENCH_HEAVY"), reason="set XAIBENCH_HEAVY=1 (minutes on a CPU)")


@functools.cache
def _image_models() -> dict[str, object]:
    reg = load_harness().registry("models")
    return {name: reg.entry(name).spec for name in reg.names() if "image" in reg.entry(name).spec.modalities}


@functools.lru_cache(maxsize=2)
def _built(name: str) -> nn.Module:
    """The model with BatchNorm statistics of random images (an untrained MobileNetV2 in eval mode otherwise
    shrinks its activations to 1e-8, where every CAM is numerically empty)."""
    torch.manual_seed(0)
    model = _image_models()[name].build(num_classes=2, in_channels=1, modality="image")  # type: ignore[attr-defined]
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = None  # cumulative average over the calibration batch
    model.train()
    with torch.no_grad():
        model(torch.rand(8, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(0)))
    return model.eval()


def _reference(cam_name: str, model: nn.Module, layer: nn.Module, x: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    """pytorch-grad-cam itself, with the layer's output handed downstream as a copy.

    The extra forward hook runs after the library's and returns a clone, so in-place ops
    after the layer modify the clone and the library's stored activation is the layer's own output.
    """
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    cam = next(c for c in CAMS if c.name == cam_name)
    cls = getattr(pytorch_grad_cam, cam.cls)
    if cam.eigen:
        cls = sign_corrected(cls)
    inst = cls(model=model, target_layers=[layer])
    if cam.evaluation_batch:
        inst.batch_size = 64
    handle = layer.register_forward_hook(lambda m, i, o: o.clone())
    try:
        return inst(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in target])
    finally:
        handle.remove()
        inst.activations_and_grads.release()


def _harness(cam_name: str, model: nn.Module, layer: nn.Module, x: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    spec = load_harness().registry("methods").entry(cam_name).spec
    ctx = MethodContext(layer=layer, batch_size=64, sample_seeds=tuple(range(len(x))))
    return spec.explain(model, x, target, ctx).numpy()


def _cases() -> list[object]:
    out = []
    for name in sorted(_image_models()):
        for cam in LAYER_CAMS:
            heavy = cam.name not in FAST.get(name, ())
            out.append(pytest.param(name, cam.name, marks=[pytest.mark.heavy, HEAVY] if heavy else []))
    return out


@pytest.mark.parametrize(("model_name", "cam_name"), _cases())
def test_case4_every_builtin_model_and_cam_matches_maps_from_copied_activations(model_name: str, cam_name: str) -> None:
    model = _built(model_name)
    layer = _image_models()[model_name].target_layer(model)  # type: ignore[attr-defined]
    x = torch.rand(2, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    target = torch.tensor([0, 1])
    np.testing.assert_allclose(_harness(cam_name, model, layer, x, target),
                               _reference(cam_name, model, layer, x, target), atol=1e-5)


def _hand_gradcam(model: nn.Module, layer: nn.Module, x: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    """Grad-CAM (Selvaraju et al. 2017, Eq. 1-2) by hand from cloned activations and their gradients."""
    store: dict[str, torch.Tensor] = {}

    def hook(_m, _i, out):  # type: ignore[no-untyped-def]
        store["a"] = out.detach().clone()
        out.register_hook(lambda g: store.__setitem__("g", g.detach().clone()))
        return out.clone()  # what follows the layer (and its in-place ops) works on a copy

    handle = layer.register_forward_hook(hook)
    try:
        logits = model(x)
        model.zero_grad()
        logits.gather(1, target[:, None]).sum().backward()
    finally:
        handle.remove()
    a, g = store["a"], store["g"]
    cam = F.relu((g.mean((2, 3), keepdim=True) * a).sum(1))
    from pytorch_grad_cam.utils.image import scale_cam_image

    # pytorch-grad-cam's post-processing: min-max scale and resize per layer, then min-max scale the layers' mean
    return scale_cam_image(scale_cam_image(cam.numpy(), tuple(x.shape[:1:-1])))


@pytest.mark.parametrize(("model_name", "layer_name"), [("densenet121", "features.norm5"),
                                                        ("mobilenet_v2", "features.18.1"),
                                                        ("vgg16", "features.28")])
def test_case4_in_place_ops_after_the_layer_do_not_change_gradcam(model_name: str, layer_name: str) -> None:
    """DenseNet's F.relu(inplace=True), MobileNetV2's ReLU6 and VGG's ReLU(inplace=True) after the chosen layer."""
    model = _built(model_name)
    layer = model.get_submodule(layer_name)
    x = torch.rand(2, 1, 96, 96, generator=torch.Generator().manual_seed(2))
    target = torch.tensor([1, 0])
    hand = _hand_gradcam(model, layer, x, target)
    np.testing.assert_allclose(_harness("gradcam", model, layer, x, target), hand, atol=1e-4)
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    plain = pytorch_grad_cam.GradCAM(model=model, target_layers=[layer])  # the library's CPU alias, for contrast
    try:
        aliased = plain(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in target])
    finally:
        plain.activations_and_grads.release()
    assert np.abs(aliased - hand).max() > 1e-2

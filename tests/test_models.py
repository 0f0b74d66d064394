"""The model zoo: every architecture builds for any channels/classes, names a CAM layer; checkpoints; training."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_SUITE
from torch import nn
from xaibench_models import plugin as models_plugin

from xaibench.storage.cache import save_checkpoint
from xaibench.base.errors import XaibenchError
from xaibench.contract.plugins import load_harness
from xaibench.running.runner import Runner, RunOptions, RunSummary
from xaibench.contract.specs import TrainRecipe
from xaibench.storage.store import Store
from xaibench.suites.suite import load_suite
from xaibench.models.training import _augment, recipe_with, train

#: Architecture -> (type of its default CAM layer, dotted name of that layer).
ZOO = {
    "resnet18": ("BasicBlock", "layer4.1"),
    "resnet50": ("Bottleneck", "layer4.2"),
    "resnet101": ("Bottleneck", "layer4.2"),
    "densenet121": ("BatchNorm2d", "features.norm5"),
    "densenet201": ("BatchNorm2d", "features.norm5"),
    "googlenet": ("Inception", "inception5b"),
    "mobilenet_v2": ("Conv2dNormActivation", "features.18"),
    "vgg16": ("ReLU", "features.29"),
}


@pytest.fixture(scope="module")
def models() -> dict:  # type: ignore[type-arg]
    harness = load_harness([("models", models_plugin)], entry_points=False)
    return {e.spec.name: e.spec for e in harness.registry("models")}


@pytest.mark.parametrize("name", sorted(ZOO))
def test_torchvision_architectures_adapt_to_channels_and_classes(models, name: str) -> None:  # type: ignore[no-untyped-def]
    """Built on the meta device (shapes only, no weight initialisation): fast for every architecture."""
    spec = models[name]
    for channels, classes in ((1, 3), (3, 8)):
        with torch.device("meta"):
            model = spec.build(num_classes=classes, in_channels=channels, modality="image").eval()
            out = model(torch.empty(2, channels, 64, 64))
        assert out.shape == (2, classes)
        layer = spec.target_layer(model)
        kind, path = ZOO[name]
        assert type(layer).__name__ == kind and model.get_submodule(path) is layer


def test_a_real_forward_and_grad_cam_through_the_zoo_layer(models) -> None:  # type: ignore[no-untyped-def]
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    spec = models["mobilenet_v2"]
    torch.manual_seed(0)
    model = spec.build(num_classes=3, in_channels=1, modality="image").eval()
    x = torch.rand(2, 1, 64, 64)
    with GradCAM(model=model, target_layers=[spec.target_layer(model)]) as cam:
        maps = cam(input_tensor=x, targets=[ClassifierOutputTarget(0), ClassifierOutputTarget(1)])
    assert maps.shape == (2, 64, 64) and np.isfinite(maps).all()


def test_vgg_gap_head_is_small_and_bad_options_are_refused(models) -> None:  # type: ignore[no-untyped-def]
    with torch.device("meta"):
        gap = models["vgg16"].build(num_classes=2, in_channels=1, modality="image", head="gap")
        full = models["vgg16"].build(num_classes=2, in_channels=1, modality="image")
        with pytest.raises(ValueError, match="head must be"):
            models["vgg16"].build(num_classes=2, in_channels=1, modality="image", head="dense")
        with pytest.raises(ValueError, match="stem must be"):
            models["resnet50"].build(num_classes=2, in_channels=1, modality="image", stem="tiny")
    assert sum(p.numel() for p in gap.parameters()) < 15e6 < sum(p.numel() for p in full.parameters())


def test_cnn1d_shallow_is_mnist1d_convbase_and_names_a_wrong_length(models) -> None:  # type: ignore[no-untyped-def]
    spec = models["cnn1d-shallow"]
    model = spec.build(num_classes=10, in_channels=1, modality="signal")
    assert model(torch.rand(4, 1, 40)).shape == (4, 10)
    assert [type(m).__name__ for m in spec.target_layer(model)] == ["Conv1d", "ReLU"]
    assert model.classifier.in_features == 25 * 4  # 40 -> 19 -> 9 -> 4 positions, flattened
    with pytest.raises(ValueError, match="length 40, got 64"):
        model(torch.rand(2, 1, 64))


def _tiny_runner(tmp_path: Path, tiny_plugin, checkpoint: Path | None = None):  # type: ignore[no-untyped-def]
    text = TINY_SUITE
    if checkpoint is not None:
        text = text.replace("models: [tiny-cnn]", f"models: [{{name: tiny-cnn, checkpoint: {checkpoint}}}]")
    tmp_path.mkdir(exist_ok=True)
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    harness = load_harness([("tiny", tiny_plugin)])
    return Runner(harness, load_suite(path), Store(tmp_path / "r.sqlite"), RunOptions(progress=False))


def test_train_models_trains_once_then_loads_and_stores_test_metrics(tmp_path: Path, tiny_plugin) -> None:  # type: ignore[no-untyped-def]
    summary = RunSummary()
    rows = _tiny_runner(tmp_path, tiny_plugin).train_models(summary)
    assert summary.models_trained == 1 and [r[:2] for r in rows] == [("tiny", "tiny-cnn")]
    evaluation = rows[0][2]
    assert evaluation["accuracy"] > evaluation["majority"] and {"precision", "recall", "f1"} <= set(evaluation)
    again = RunSummary()
    _tiny_runner(tmp_path, tiny_plugin).train_models(again)
    assert again.models_trained == 0  # the cached checkpoint is reused


def test_user_checkpoints_load_and_mismatches_are_clear(tmp_path: Path, tiny_plugin) -> None:  # type: ignore[no-untyped-def]
    from conftest import TinyCNN

    good = tmp_path / "good.pt"
    save_checkpoint(TinyCNN(2, 1, "image"), good)
    summary = RunSummary()
    _tiny_runner(tmp_path, tiny_plugin, good).train_models(summary)
    assert summary.models_trained == 0
    classes = tmp_path / "classes.pt"
    save_checkpoint(TinyCNN(5, 1, "image"), classes)
    with pytest.raises(XaibenchError, match=r"classes\.pt does not fit this architecture.*head\.weight.*size mismatch"):
        _tiny_runner(tmp_path / "c", tiny_plugin, classes).train_models()
    arch = tmp_path / "arch.pt"
    save_checkpoint(nn.Sequential(nn.Conv2d(1, 4, 3)), arch)
    with pytest.raises(XaibenchError, match=r"arch\.pt does not fit this architecture.*Missing key"):
        _tiny_runner(tmp_path / "a", tiny_plugin, arch).train_models()


def test_augmentations_move_masks_with_images_and_are_seeded() -> None:
    g = torch.Generator().manual_seed(0)
    masks = torch.zeros(16, 20, 20, dtype=torch.bool)
    masks[:, 2:9, 3:7] = True
    x = masks[:, None].float().repeat(1, 2, 1, 1)
    names = ("hflip", "vflip", "rot90", "rotate")
    xa, ma = _augment(x, names, g, masks)
    assert ma.dtype == torch.bool and not torch.equal(ma, masks)
    assert ((xa[:, 0] >= 0.5) == ma).all()  # the mask follows the image through flips and rotations
    area = ma.flatten(1).sum(1).float()
    assert ((area - 28).abs() <= 6).all()  # small rotations keep the lesion's area
    xb, _ = _augment(x, names, torch.Generator().manual_seed(0), masks)
    assert torch.equal(xa, xb)
    assert recipe_with(TrainRecipe(), {"augment": ["rotate", "vflip"]}).augment == ("rotate", "vflip")


class _WantsMasks(nn.Module):
    """Records what the trainer hands its ``training_loss``."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(16 * 16, 2)
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x.flatten(1))

    def training_loss(self, x: torch.Tensor, y: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        self.seen.append(masks)
        return nn.functional.cross_entropy(self(x), y)


def test_trainer_passes_masks_to_models_that_ask_and_refuses_without() -> None:
    from conftest import tiny_samples

    model = _WantsMasks()
    recipe = TrainRecipe(epochs=1, batch_size=8, patience=0, augment=("hflip",))
    train(model, tiny_samples(16, 1, "train"), tiny_samples(4, 2, "val"), recipe, 0, torch.device("cpu"))
    assert len(model.seen) == 2 and model.seen[0].shape == (8, 16, 16) and model.seen[0].dtype == torch.bool
    with pytest.raises(XaibenchError, match="trained with masks.*has none"):
        train(model, tiny_samples(16, 1, "train", with_masks=False), tiny_samples(4, 2, "val"), recipe, 0,
              torch.device("cpu"))


def test_cli_train_prints_test_metrics_and_reuses_the_cache(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from xaibench.api.cli import main

    suite = tmp_path / "t.yaml"
    suite.write_text("name: t\nimage_size: 32\ndatasets: [{name: synthetic-lesions, params: {n_train: 48, n_val: 12, "
                     "n_test: 12}}]\nmodels: [{name: small-cnn, params: {width: 4, depth: 2}, train: {epochs: 1}}]\n"
                     "methods: [random]\nmetrics: [hit-rate]\n")
    args = ["train", "--suite", str(suite), "--store", str(tmp_path / "r.sqlite")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "synthetic-lesions  small-cnn" in out and "1 model(s) trained, 0 loaded" in out
    assert main(args) == 0
    assert "0 model(s) trained, 1 loaded" in capsys.readouterr().out

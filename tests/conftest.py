"""Shared fixtures: an isolated cache home, a tiny in-process plugin, suite writers."""
from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Callable

import pytest
import torch
from torch import nn

from xaibench import hookimpl
from xaibench.contract.specs import DataBundle, DatasetSpec, MethodSpec, ModelSpec, Samples, TrainRecipe


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own XAIBENCH_HOME so caches never leak between tests."""
    home = tmp_path_factory.mktemp("xaibench-home")
    monkeypatch.setenv("XAIBENCH_HOME", str(home))
    monkeypatch.delenv("XAIBENCH_DISABLE_PLUGINS", raising=False)
    return home


def tiny_samples(n: int, seed: int, split: str, with_masks: bool = True) -> Samples:
    """16x16 images whose class is whether a bright square sits left (0) or right (1)."""
    g = torch.Generator().manual_seed(seed)
    x = 0.1 * torch.rand(n, 1, 16, 16, generator=g)
    y = torch.arange(n) % 2
    masks = torch.zeros(n, 16, 16, dtype=torch.bool)
    for i in range(n):
        r = int(torch.randint(2, 10, (1,), generator=g))
        c = int(torch.randint(1, 4, (1,), generator=g)) + (9 if y[i] else 0)
        masks[i, r : r + 4, c : c + 4] = True
    x[:, 0][masks] += 0.9
    return Samples(x=x, y=y, ids=tuple(f"tiny-{split}-{i}" for i in range(n)), masks=masks if with_masks else None)


def load_tiny(request) -> DataBundle:  # type: ignore[no-untyped-def]
    params = dict(request.params)
    masks = params.get("masks", True)
    return DataBundle(train=tiny_samples(64, 1, "train", masks), val=tiny_samples(16, 2, "val", masks),
                      test=tiny_samples(params.get("n_test", 16), 3, "test", masks), class_names=("left", "right"),
                      modality="image")


class TinyCNN(nn.Module):
    def __init__(self, num_classes: int, in_channels: int, modality: str) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(in_channels, 4, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(4 * 16 * 16, num_classes)

    def forward(self, x):  # type: ignore[no-untyped-def]
        return self.head(self.features(x).flatten(1))


class SiluCNN(TinyCNN):
    """TinyCNN with SiLU (EfficientNet's activation) in place of its ReLU: outside ReLU-only rules."""

    def __init__(self, num_classes: int, in_channels: int, modality: str) -> None:
        super().__init__(num_classes, in_channels, modality)
        self.features[1] = nn.SiLU()


class SiluPlugin:
    """Registers ``tiny-silu`` (:class:`SiluCNN`), to put beside ``tiny-cnn`` in :data:`TINY_SUITE`."""

    @hookimpl
    def xaibench_register_models(self, register: Callable[[ModelSpec], None]) -> None:
        register(ModelSpec(name="tiny-silu", build=SiluCNN, modalities=frozenset({"image"}),
                           target_layer=lambda m: m.features, description="one conv layer, SiLU",
                           recipe=TrainRecipe(epochs=2, batch_size=16, lr=1e-2, patience=0)))


class TinyPlugin:
    """A throwaway plugin registered in-process by tests: a dataset, a model, a method."""

    @hookimpl
    def xaibench_register_datasets(self, register: Callable[[DatasetSpec], None]) -> None:
        register(DatasetSpec(name="tiny", load=load_tiny, modality="image", has_masks=True,
                             description="left/right squares"))

    @hookimpl
    def xaibench_register_models(self, register: Callable[[ModelSpec], None]) -> None:
        register(ModelSpec(name="tiny-cnn", build=TinyCNN, modalities=frozenset({"image"}),
                           target_layer=lambda m: m.features, description="one conv layer",
                           recipe=TrainRecipe(epochs=8, batch_size=16, lr=1e-2, patience=0)))

    @hookimpl
    def xaibench_register_methods(self, register: Callable[[MethodSpec], None]) -> None:
        register(MethodSpec(name="input-times-one", explain=lambda model, x, target, ctx: x[:, 0].clone(),
                            modalities=frozenset({"image"}), needs_gradients=False, description="the image"))


@pytest.fixture
def tiny_plugin() -> TinyPlugin:
    return TinyPlugin()


@pytest.fixture
def write_suite(tmp_path: Path) -> Callable[[str], Path]:
    def write(text: str, name: str = "suite.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
        return path

    return write


TINY_SUITE = """
name: tiny
seed: 0
samples: 8
datasets: [tiny]
models: [tiny-cnn]
methods: [input-times-one, random, {name: ground-truth, label: oracle}]
metrics: [dic, iic, hit-rate]
"""

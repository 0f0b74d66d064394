"""LRP through zennit: its cost over the gradient floor, and against captum's LRP on equal work.

LRP is one forward and one modified backward pass per batch, plus zennit's set-up (canonizers
merging BatchNorm, hooks on every layer) and its removal. Two ratios, measured in one run:

- ``lrp-epsilon`` on torchvision ResNet-18 (canonized: BatchNorm merged, adds as ``Sum``) vs the floor,
  a plain input gradient of the target logits (one forward, one backward) on the same batch;
- ``lrp-epsilon`` vs captum's ``LRP`` with ``EpsilonRule`` on torchvision VGG-16 with the zoo's ``head: gap``
  (no BatchNorm:
  the layer types captum supports), same batch, same rules, equal maps. Both sides' forward images are
  counted: ours is one pass over the batch; captum's ``LRP.attribute`` makes two (one to record the
  activations and change the weights, one under its hooks), part of what the ratio measures.

Run: ``python -m pytest benchmarks/test_lrp.py --benchmark-disable-gc -p no:cacheprovider``.
"""
from __future__ import annotations

import copy

import torch
import torchvision
from captum.attr import LRP
from captum.attr._utils.lrp_rules import EpsilonRule
from conftest import CountingModel, best_time, report
from xaibench_zennit.rules import lrp_epsilon

from xaibench.contract.specs import MethodContext

BATCH, SIZE = 8, 64


def _case(arch: str) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = getattr(torchvision.models, arch)(weights=None, num_classes=10)
    if arch == "vgg16":  # the zoo's `head: gap` (global average pool, one linear layer): at 64 px torchvision's
        # 7x7 adaptive pool would upsample the 2x2 features, where captum's hooks and zennit's z-rule differ by 0.2%
        model.avgpool, model.classifier = torch.nn.AdaptiveAvgPool2d(1), torch.nn.Linear(512, 10)
    model.eval()
    x = torch.rand(BATCH, 3, SIZE, SIZE)
    with torch.no_grad():
        target = model(x).argmax(1)
    return model, x, target


def _ctx() -> MethodContext:
    return MethodContext(layer=None, batch_size=BATCH, sample_seeds=tuple(range(BATCH)))


def test_lrp_vs_gradient_floor(benchmark) -> None:  # type: ignore[no-untyped-def]
    model, x, target = _case("resnet18")

    def floor() -> torch.Tensor:
        inputs = x.clone().requires_grad_(True)
        out = model(inputs).gather(1, target[:, None]).sum()
        return torch.autograd.grad(out, inputs)[0]

    def ours() -> torch.Tensor:
        return lrp_epsilon(model, x, target, _ctx())

    counting = CountingModel(model)
    assert counting.count(lambda: lrp_epsilon(counting, x, target, _ctx())) == BATCH  # one pass over the batch
    ours(), floor()  # warm
    floor_times = [best_time(floor, 1)]
    benchmark.pedantic(ours, setup=lambda: floor_times.append(best_time(floor, 1)), rounds=3, iterations=1)
    ratio = benchmark.stats.stats.min / min(floor_times)
    benchmark.extra_info.update({"floor_s": min(floor_times), "ours_s": benchmark.stats.stats.min, "ratio": ratio})
    report(f"lrp-epsilon resnet18 {SIZE} px x{BATCH}", "LRP / input gradient (1 forward + 1 backward)", ratio, "")


def _captum_model(model: torch.nn.Module) -> torch.nn.Module:
    """A fresh copy of ``model`` with captum's ``EpsilonRule`` (epsilon 1e-6, zennit's) on its layers."""
    peer = copy.deepcopy(model)
    for layer in peer.modules():
        if isinstance(layer, torch.nn.ReLU):
            layer.inplace = False  # captum's LRP hooks read the tensors an in-place ReLU overwrites
        if isinstance(layer, (torch.nn.Conv2d, torch.nn.Linear, torch.nn.MaxPool2d, torch.nn.AdaptiveAvgPool2d)):
            layer.rule = EpsilonRule(epsilon=1e-6)
    return peer


def test_lrp_vs_captum(benchmark) -> None:  # type: ignore[no-untyped-def]
    model, x, target = _case("vgg16")
    counting_peer = CountingModel(_captum_model(model))

    def captum() -> torch.Tensor:
        return LRP(counting_peer).attribute(x.clone().requires_grad_(True), target=target).detach().sum(1)

    counting = CountingModel(model)

    def ours() -> torch.Tensor:
        return lrp_epsilon(counting, x, target, _ctx())

    assert counting.count(ours) == BATCH and counting_peer.count(captum) == 2 * BATCH
    # equal maps, checked in float64 on inputs scaled by 100: activations far above both sides' 1e-6 stabilisers
    x64 = 100 * x.double()
    mine = lrp_epsilon(copy.deepcopy(model).double(), x64, target, _ctx())
    reference = LRP(_captum_model(model).double()).attribute(x64.requires_grad_(True), target=target).detach().sum(1)
    torch.testing.assert_close(mine, reference, rtol=1e-3, atol=1e-3 * float(reference.abs().max()))
    captum_times = [best_time(captum, 1)]
    benchmark.pedantic(ours, setup=lambda: captum_times.append(best_time(captum, 1)), rounds=3, iterations=1)
    ratio = min(captum_times) / benchmark.stats.stats.min
    benchmark.extra_info.update({"captum_s": min(captum_times), "ours_s": benchmark.stats.stats.min, "ratio": ratio})
    report(f"lrp-epsilon vgg16 {SIZE} px x{BATCH}", "captum LRP (2 passes) / ours (1 pass), same maps", ratio, "")

"""The location-supervised saliency model (seed 002) and the method that reads its branch."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import tiny_samples
from xaibench_models.small_cnn import SmallCNN
from xaibench_supervised.model import SupervisedSaliencyCNN, soft_dice_loss
from xaibench_supervised.model import supervised_saliency

from xaibench.contract.plugins import load_harness
from xaibench.running.runner import Runner, RunOptions
from xaibench.contract.specs import MethodContext, TrainRecipe
from xaibench.storage.store import Store
from xaibench.suites.suite import load_suite
from xaibench.models.training import train

CTX = MethodContext(layer=None, batch_size=8, sample_seeds=(0, 1))


def test_two_heads_shapes_and_the_loss_reaches_the_saliency_branch() -> None:
    torch.manual_seed(0)
    model = SupervisedSaliencyCNN(3, 1, "image", width=4, depth=3)
    x = torch.rand(2, 1, 32, 32)
    assert model(x).shape == (2, 3)
    sal = model.saliency(x)
    assert sal.shape == (2, 8, 8) and 0 <= float(sal.detach().min()) <= float(sal.detach().max()) <= 1
    masks = torch.zeros(2, 32, 32, dtype=torch.bool)
    masks[:, 4:12, 4:12] = True
    model.training_loss(x, torch.tensor([0, 2]), masks).backward()
    assert model.saliency_head.weight.grad is not None and model.saliency_head.weight.grad.abs().sum() > 0
    signal = SupervisedSaliencyCNN(2, 1, "signal", width=4, depth=2)
    assert signal.saliency(torch.rand(3, 1, 40)).shape == (3, 20)


def test_attention_branch_gates_the_classifier_and_the_side_output_does_not() -> None:
    torch.manual_seed(0)
    x = torch.rand(2, 1, 32, 32)
    masks = torch.zeros(2, 32, 32, dtype=torch.bool)
    masks[:, 4:12, 4:12] = True
    for branch, gates in (("conv1x1", False), ("attention", True)):
        model = SupervisedSaliencyCNN(3, 1, "image", width=4, depth=3, branch=branch).eval()
        assert model(x).shape == (2, 3) and model.saliency(x).shape == (2, 8, 8)
        before = model(x).detach()
        last = [m for m in model.saliency_head.modules() if isinstance(m, torch.nn.Conv2d)][-1]
        with torch.no_grad():
            last.bias += 5.0  # the map's logits move: only a gating branch changes the classes' logits
        assert torch.allclose(model(x), before) is not gates
        # by hand at the fixed point: attention gates the pooled features by (1 + sigmoid(map))
        if gates:
            feats = model.features(x)
            gate = 1 + torch.sigmoid(model.saliency_head(feats))
            assert torch.allclose(model(x), model.classifier((feats * gate).mean((2, 3))), atol=1e-6)
        model.train().training_loss(x, torch.tensor([0, 2]), masks).backward()
        assert last.weight.grad is not None and last.weight.grad.abs().sum() > 0


def test_soft_dice_loss_analytic_values() -> None:
    t = torch.zeros(1, 4, 4)
    t[0, :2, :2] = 1
    assert float(soft_dice_loss(t, t)) == pytest.approx(0.0)
    disjoint = 1 - t
    assert float(soft_dice_loss(disjoint, t)) == pytest.approx(1 - 1 / (12 + 4 + 1))


def test_method_reads_the_branch_and_refuses_models_without_one() -> None:
    model = SupervisedSaliencyCNN(2, 1, "image", width=4, depth=2).eval()
    x = torch.rand(2, 1, 16, 16)
    assert torch.equal(supervised_saliency(model, x, torch.tensor([0, 1]), CTX), model.saliency(x).detach())
    with pytest.raises(TypeError, match="SmallCNN has none.*supervised-saliency-cnn"):
        supervised_saliency(SmallCNN(2, 1, "image"), x, torch.tensor([0, 1]), CTX)


def test_runner_skips_the_method_on_models_without_a_branch(tmp_path: Path, tiny_plugin) -> None:  # type: ignore[no-untyped-def]
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\nsamples: 4\ndatasets: [tiny]\nmodels: [tiny-cnn, supervised-saliency-cnn]\n"
                     "methods: [supervised-saliency]\nmetrics: [hit-rate]\n")
    harness = load_harness([("tiny", tiny_plugin)])
    with Store(tmp_path / "r.sqlite") as store:
        plan = Runner(harness, load_suite(suite), store, RunOptions(progress=False)).plan()
    reasons = {c.row.model: c.row.skip_reason for c in plan}
    assert reasons == {"tiny-cnn": "method 'supervised-saliency' needs a model with saliency-branch: "
                                   "'tiny-cnn' has none", "supervised-saliency-cnn": None}


@pytest.mark.parametrize("branch", ["conv1x1", "attention"])
def test_trained_branch_points_at_the_lesions(branch: str) -> None:
    """Trained on masks, the branch's peak falls inside the mask on held-out images (both designs)."""
    model = SupervisedSaliencyCNN(2, 1, "image", width=8, depth=2, saliency_weight=2.0, branch=branch)
    recipe = TrainRecipe(epochs=6, batch_size=16, lr=1e-2, patience=0, augment=("hflip", "vflip"))
    train(model, tiny_samples(64, 1, "train"), tiny_samples(16, 2, "val"), recipe, 0, torch.device("cpu"))
    test = tiny_samples(32, 3, "test")
    sal = torch.nn.functional.interpolate(model.saliency(test.x)[:, None], size=(16, 16), mode="bilinear")[:, 0]
    peaks = sal.flatten(1).argmax(1)
    hits = test.masks.flatten(1)[torch.arange(32), peaks].float().mean()
    assert hits >= 0.9

"""Score-CAM's masked passes streamed across samples equal pytorch-grad-cam's own ``ScoreCAM``.

The registered ``scorecam`` runs pytorch-grad-cam's class with its channel weights computed through the
engine (:func:`xaibench_gradcam.methods.streamed_score_cam`); the reference here is the unmodified
``pytorch_grad_cam.ScoreCAM`` called on the same model, layer, inputs and targets, as its users call it.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from torch import nn

from xaibench.contract.plugins import load_harness
from xaibench.contract.specs import MethodContext
from xaibench.authoring.testing import one_thread, tiny_layer, tiny_model

SCORECAM = load_harness().methods.get("scorecam")


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    with one_thread():
        yield


def _library(model: nn.Module, layer: nn.Module, x: torch.Tensor, target: torch.Tensor, batch: int) -> np.ndarray:
    from pytorch_grad_cam import ScoreCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    cam = ScoreCAM(model=model, target_layers=[layer])
    cam.batch_size = batch
    try:
        return cam(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in target])
    finally:
        cam.activations_and_grads.release()


@pytest.mark.parametrize("engine_batch", [1, 5, 64])  # 5 cuts across samples and channels; 64 holds them all
def test_streamed_score_cam_equals_pytorch_grad_cam(engine_batch: int) -> None:
    torch.manual_seed(0)
    model = tiny_model("image", num_classes=3).eval()
    layer = tiny_layer(model)
    x, target = torch.rand(4, 1, 16, 16), torch.tensor([0, 2, 1, 2])
    ctx = MethodContext(layer=layer, batch_size=64, sample_seeds=(0, 1, 2, 3), engine_batch=engine_batch)
    ours = SCORECAM.explain(model, x, target, ctx).numpy()
    theirs = _library(model, layer, x, target, 16)
    assert ours.shape == theirs.shape == (4, 16, 16)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    assert np.ptp(ours) > 0.1  # not a degenerate map that would equal anything


def test_streamed_score_cam_weighs_by_the_softmax_of_masked_logits() -> None:
    """The weights by hand (Wang et al. 2020, Eq. 4) on a model whose logits are linear in the input."""
    from xaibench_gradcam.methods import streamed_score_cam
    from pytorch_grad_cam import ScoreCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    torch.manual_seed(1)
    conv = nn.Conv2d(1, 3, 3, padding=1)
    model = nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2)).eval()
    x, target = torch.rand(2, 1, 6, 6), torch.tensor([1, 0])
    with torch.no_grad():
        acts = torch.relu(conv(x))
    cam = streamed_score_cam(ScoreCAM)(model=model, target_layers=[model[1]])
    cam.batch_size = 3
    try:
        weights = cam.get_cam_weights(x, model[1], [ClassifierOutputTarget(int(t)) for t in target],
                                      acts.numpy(), None)
    finally:
        cam.activations_and_grads.release()
    for i in range(2):
        scores = []
        for k in range(3):
            a = acts[i, k]
            mask = (a - a.min()) / (a.max() - a.min() + 1e-8)
            with torch.no_grad():
                scores.append(float(model(x[i : i + 1] * mask)[0, target[i]]))
        np.testing.assert_allclose(weights[i], torch.softmax(torch.tensor(scores), 0).numpy(), atol=1e-6)

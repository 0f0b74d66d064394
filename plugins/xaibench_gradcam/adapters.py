"""Adapters that let pytorch-grad-cam's classes run on 1D signals and leave the model as found.

A signal batch ``(N, C, L)`` is viewed as an image batch ``(N, C, 1, L)``: the
model is wrapped so it squeezes the height axis back out, and the target
layer's activations and gradients ``(N, K, L')`` are given the same height-one
axis through pytorch-grad-cam's own ``reshape_transform`` hook. Every formula
of the library (mean gradients, Grad-CAM++ alphas, SVD projections, Score-CAM
weights) then runs unchanged, and its resize to the input size is a 1 x L
linear resize.
"""
from __future__ import annotations

from contextlib import contextmanager
from types import SimpleNamespace
from typing import Iterator

import torch
from torch import nn


def signal_to_image(t: torch.Tensor) -> torch.Tensor:
    """``(N, C, L)`` -> ``(N, C, 1, L)``; used on inputs and on the target layer's tensors."""
    if t.dim() != 3:
        raise ValueError(f"expected a signal tensor (N, C, L), got shape {tuple(t.shape)}")
    return t.unsqueeze(2)


class _HeightOneView(nn.Module):
    """Runs a 1D model on ``(N, C, 1, L)`` inputs; holds the model, copies nothing."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.squeeze(2))


def as_image_model(model: nn.Module) -> nn.Module:
    """``model`` (taking signals ``(N, C, L)``) seen as an image model taking ``(N, C, 1, L)``, in ``model``'s mode.

    The view squeezes the height-one axis before calling ``model`` and copies nothing, so
    pytorch-grad-cam's 2D entry points take a signal as an image of height one (see the module docstring).
    """
    return _HeightOneView(model).train(model.training)


@contextmanager
def preserved_grads(model: nn.Module) -> Iterator[None]:
    """Restore every parameter's ``.grad`` afterwards: pytorch-grad-cam calls ``loss.backward()``,
    which would otherwise leave gradients (and their memory) on the caller's model."""
    saved = [(p, p.grad) for p in model.parameters()]
    try:
        yield
    finally:
        for p, grad in saved:
            p.grad = grad


@contextmanager
def quiet_progress() -> Iterator[None]:
    """Silence the per-image tqdm bars of Score-CAM and Ablation-CAM, which would flood the
    runner's output. tqdm reads ``TQDM_DISABLE`` only at import, so the two modules' ``tqdm``
    name is pointed at a pass-through for the duration of the call."""
    from pytorch_grad_cam import ablation_cam, score_cam

    silent = SimpleNamespace(tqdm=lambda iterable, *args, **kwargs: iterable)
    saved = [(module, module.tqdm) for module in (ablation_cam, score_cam)]
    for module, _ in saved:
        module.tqdm = silent
    try:
        yield
    finally:
        for module, original in saved:
            module.tqdm = original


def copying_hooks(cam: object) -> None:
    """Make a pytorch-grad-cam instance capture its target layers' activations as copies at hook time.

    pytorch-grad-cam stores ``activation.cpu().detach()``: a copy on CUDA but the very tensor
    on the CPU, which a later in-place op (DenseNet's ``F.relu(features, inplace=True)`` after
    ``features.norm5``, a ``ReLU(inplace=True)`` or ``ReLU6`` after a chosen BatchNorm) then
    overwrites: the CAM would combine post-ReLU activations with pre-ReLU gradients, and CPU and
    CUDA would disagree. The instance's hooks are replaced by ones that clone on the CPU, and that
    capture nothing while ``paused`` (a CAM's own evaluation passes, :func:`streamed_score_cam`).
    """
    from pytorch_grad_cam.activations_and_gradients import ActivationsAndGradients

    class CopyingActivationsAndGradients(ActivationsAndGradients):
        #: True while a CAM's own evaluation passes run (Score-CAM's masked inputs): nothing is captured.
        paused = False

        def save_activation(self, module, input, output):  # type: ignore[no-untyped-def]
            if self.paused:
                return
            copied = output.detach()
            copied = copied.clone() if copied.device.type == "cpu" else copied
            super().save_activation(module, input, copied)

    old = cam.activations_and_grads  # type: ignore[attr-defined]
    old.release()
    cam.activations_and_grads = CopyingActivationsAndGradients(  # type: ignore[attr-defined]
        old.model, cam.target_layers, old.reshape_transform, old.detach)  # type: ignore[attr-defined]


def native_resolution(cam: object) -> None:
    """Make a pytorch-grad-cam instance return its maps at the target layer's resolution (scaled to [0, 1]).

    The library resizes 3D maps with ``scipy.ndimage.zoom`` (cubic splines, corner-aligned
    grid), unlike its 2D half-pixel bilinear resize; without a target size it skips the
    resize, and the harness upsamples trilinearly with half-pixel centres (:func:`xaibench.scoring.maps.upsample`).
    """
    cam.get_target_width_height = lambda input_tensor: None  # type: ignore[attr-defined]

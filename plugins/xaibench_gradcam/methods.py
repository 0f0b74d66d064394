"""The ``explain`` functions driving pytorch-grad-cam's classes (registered in :mod:`xaibench_gradcam.plugin`)."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from xaibench.contract.specs import MethodContext
from xaibench_gradcam.adapters import (
    as_image_model,
    copying_hooks,
    native_resolution,
    preserved_grads,
    quiet_progress,
    signal_to_image,
)
from xaibench_gradcam.plugin import GRADCAM, NO_VOLUME, Cam


def sign_corrected(cam_class: type) -> type:
    """An Eigen-CAM class whose principal component has a deterministic sign.

    The sign of an SVD component is arbitrary: LAPACK returned opposite signs for
    activations differing by 6e-8 (one sample alone vs in a batch), which turns the
    clipped map into its complement. pytorch-grad-cam's own sign correction (flip
    when ``|min| > |max|``, Eq. 13 of Seg-Eigen-CAM, Chung & Ying 2025) makes the
    map a function of the activations alone.
    """
    from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection_with_sign_correction

    class SignCorrected(cam_class):  # type: ignore[misc, valid-type]
        def get_cam_image(self, input_tensor, target_layer, targets, activations, grads,  # type: ignore[no-untyped-def]
                          eigen_smooth=False):
            return get_2d_projection_with_sign_correction(grads * activations if self.uses_gradients else activations)

    SignCorrected.__name__ = f"SignCorrected{cam_class.__name__}"
    return SignCorrected


def streamed_score_cam(cam_class: type) -> type:
    """pytorch-grad-cam's ``ScoreCAM`` with its masked passes streamed across samples.

    Score-CAM (Wang et al., CVPR Workshops 2020, Sec. 3.2, Eq. 4) weighs channel ``k`` by the softmax over
    channels of the target's score on the input masked by the channel's upsampled, min-max scaled activation.
    ``ScoreCAM.get_cam_weights`` builds the masked inputs of every sample and channel at once (``N x K`` inputs
    in memory) and runs them sample by sample in batches of ``batch_size``; here the (sample, channel) pairs go
    through :meth:`xaibench.scoring.engine.Engine.perturbed_scores` in full batches across samples, each masked input
    built when its batch runs. The scores are the target logit (``ClassifierOutputTarget``), the masks and the
    softmax are pytorch-grad-cam's operations: the weights are equal up to float rounding (checked against
    ``ScoreCAM`` itself in ``tests/test_cam_streaming.py``).
    """
    from xaibench.scoring.engine import Engine

    class StreamedScoreCAM(cam_class):  # type: ignore[misc, valid-type]
        def get_cam_weights(self, input_tensor, target_layer, targets, activations, grads):  # type: ignore[no-untyped-def]
            with torch.no_grad():
                upsampled = torch.nn.UpsamplingBilinear2d(size=input_tensor.shape[-2:])(
                    torch.from_numpy(activations).to(input_tensor.device))
                flat = upsampled.view(upsampled.size(0), upsampled.size(1), -1)
                maxs, mins = flat.max(dim=-1)[0][:, :, None, None], flat.min(dim=-1)[0][:, :, None, None]
                scaled = (upsampled - mins) / (maxs - mins + 1e-8)
            classes = torch.tensor([int(t.category) for t in targets], device=input_tensor.device)
            n, k = scaled.shape[:2]
            hooks = self.activations_and_grads
            hooks.paused = True
            try:
                scores = Engine(self.model, input_tensor.device, self.batch_size).perturbed_scores(
                    lambda si, st: input_tensor[si] * scaled[si, st, None], n, k, classes, "logit")
            finally:
                hooks.paused = False
            return torch.softmax(scores.float().cpu(), dim=-1).numpy()

    StreamedScoreCAM.__name__ = f"Streamed{cam_class.__name__}"
    return StreamedScoreCAM


def cam_method(cam: Cam) -> Callable[..., torch.Tensor]:
    """An ``explain`` function driving one pytorch-grad-cam class; 1D inputs use the height-one view."""

    def explain(model: nn.Module, x: torch.Tensor, target: torch.Tensor, ctx: MethodContext) -> torch.Tensor:
        import pytorch_grad_cam
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        signal = x.dim() == 3
        if signal and not cam.signal:
            raise ValueError(f"{cam.name} supports images (N, C, H, W) only, got {tuple(x.shape)}")
        if x.dim() == 5 and not cam.volume:
            raise ValueError(f"{cam.name} does not support volumes (N, C, D, H, W): {NO_VOLUME[cam.name]}")
        if cam.takes_layer and ctx.layer is None:
            raise ValueError(f"{cam.name} needs a target layer (the model spec's, or `layer:` in the suite)")
        cam_class = getattr(pytorch_grad_cam, cam.cls)
        if cam.eigen:
            cam_class = sign_corrected(cam_class)
        if cam.cls == "ScoreCAM":
            cam_class = streamed_score_cam(cam_class)
        layers = [ctx.layer] if cam.takes_layer else []
        if signal:
            driven, inputs, kwargs = as_image_model(model), signal_to_image(x), {"reshape_transform": signal_to_image}
        else:
            driven, inputs, kwargs = model, x, {}
        targets = [ClassifierOutputTarget(int(t)) for t in target]
        with preserved_grads(model), quiet_progress():
            instance = cam_class(model=driven, target_layers=layers, **kwargs)
            copying_hooks(instance)
            if x.dim() == 5:
                native_resolution(instance)
            if cam.evaluation_batch:
                instance.batch_size = ctx.pass_batch
            try:
                maps = instance(input_tensor=inputs, targets=targets)
            finally:  # not ``with``: BaseCAM.__exit__ swallows IndexError, which would hide a failure
                instance.activations_and_grads.release()
        out = torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32)).to(x.device)
        return out[:, 0] if signal else out

    explain.__name__ = explain.__qualname__ = f"explain_{cam.cls.lower()}"
    return explain


def guided_gradcam(model: nn.Module, x: torch.Tensor, target: torch.Tensor, ctx: MethodContext,
                   reduce: str = "max_abs") -> torch.Tensor:
    """Guided Grad-CAM (Selvaraju et al., Grad-CAM, ICCV 2017, Sec. 3.1): guided backpropagation times the
    Grad-CAM map upsampled to the input, element-wise.

    ``(N, *spatial)`` float maps: :func:`xaibench_captum.methods.guided_backprop` (channel reduction
    ``reduce``; the Grad-CAM factor is the same for every channel, so reducing first is exact for sum,
    abs and max_abs) times pytorch-grad-cam's Grad-CAM at ``ctx.layer`` (clipped at 0, min-max scaled,
    resized to the input). Images and signals; models with nonlinearities other than ReLU and max
    pooling are refused by the spec's ``covers`` (guided backpropagation's rules).
    """
    from xaibench_captum.methods import guided_backprop

    cam = cam_method(GRADCAM)(model, x, target, ctx)
    if tuple(cam.shape[1:]) != tuple(x.shape[2:]):
        raise ValueError(f"guided-gradcam: Grad-CAM map {tuple(cam.shape[1:])} is not the input's size "
                         f"{tuple(x.shape[2:])}")
    return guided_backprop(model, x, target, ctx, reduce=reduce) * cam

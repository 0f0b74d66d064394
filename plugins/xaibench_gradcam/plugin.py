"""Registers pytorch-grad-cam's CAM family as xaibench methods, for images and 1D signals.

pytorch-grad-cam explains the target logit at ``ctx.layer`` (chosen per
architecture by the model spec, or by ``layer:`` in the suite), clips negative
evidence and min-max scales each map, then resizes it to the input.

The library handles 2D feature maps only. Its per-method formulas (channel
weights from gradients, eigen projections, score weights) are written for any
number of spatial axes, so signals ``(N, C, L)`` go through the very same
classes viewed as images of height one (see :mod:`xaibench_gradcam.adapters`):
no formula is re-implemented here. Ablation-CAM (whose ablation layer indexes
4D activations) and FullGrad (which collects ``Conv2d``/``BatchNorm2d`` biases)
stay image-only and declare it.

On volumes ``(N, C, D, H, W)`` the library's formulas take 5D activations as they are
(checked for Grad-CAM, Grad-CAM++, HiResCAM, the Eigen-CAMs, LayerCAM and XGradCAM).
Three decline volumes, each with its reason (:data:`NO_VOLUME`). The library's own
3D resize (``scipy.ndimage.zoom``: cubic splines on a corner-aligned grid, unlike the
half-pixel bilinear resize it uses in 2D) is skipped: the harness resizes the native
map trilinearly with half-pixel centres, as in 2D (``native_resolution``). Eigen-CAM's principal component gets a
deterministic sign (see ``sign_corrected``).

pytorch-grad-cam is imported inside the functions: importing it costs about two
seconds, which every ``xaibench`` command would otherwise pay at start-up.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from xaibench import hookimpl
from xaibench.specs import MethodContext, MethodSpec
from xaibench_gradcam.adapters import (
    as_image_model,
    copying_hooks,
    native_resolution,
    preserved_grads,
    quiet_progress,
    signal_to_image,
)

GRADCAM_REPO = "Gildenblat et al., pytorch-grad-cam, https://github.com/jacobgil/pytorch-grad-cam"


@dataclass(frozen=True)
class Cam:
    """One pytorch-grad-cam class and what it needs."""

    name: str
    cls: str  # class name in pytorch_grad_cam
    description: str
    citation: str
    signal: bool = True  # works on 1D signals through the height-one view
    takes_layer: bool = True
    evaluation_batch: bool = False  # Score-CAM / Ablation-CAM: forward passes in ctx.batch_size chunks
    needs_gradients: bool = True
    #: Eigen-CAMs: fix the sign of the principal component (see ``sign_corrected``).
    eigen: bool = False
    volume: bool = True  # works on volumes (N, C, D, H, W); else its reason is in NO_VOLUME


#: Why a CAM declines volumes (pytorch-grad-cam 1.5.7).
NO_VOLUME = {
    "scorecam": "its masks are upsampled with UpsamplingBilinear2d, which takes 4D activations only",
    "ablationcam": "its AblationLayer repeats and indexes 4D activations",
    "fullgrad": "it collects the biases of Conv2d and BatchNorm2d layers only: on a 3D network it would silently "
                "drop every bias term",
}


CAMS = (
    Cam("gradcam", "GradCAM", "feature maps weighted by their average gradient",
        "Selvaraju et al., Grad-CAM, ICCV 2017"),
    Cam("gradcam++", "GradCAMPlusPlus", "feature maps weighted by positive gradients with pixel-wise alphas",
        "Chattopadhay et al., Grad-CAM++, WACV 2018"),
    Cam("hirescam", "HiResCAM", "element-wise gradient x activation summed over channels",
        "Draelos & Carin, Use HiResCAM instead of Grad-CAM, arXiv 2011.08891, 2020"),
    Cam("eigengradcam", "EigenGradCAM", "first principal component of gradient x activation",
        "Muhammad & Yeasin, Eigen-CAM, IJCNN 2020 (gradient-weighted variant of pytorch-grad-cam)", eigen=True),
    Cam("eigencam", "EigenCAM", "first principal component of the activations (class-agnostic)",
        "Muhammad & Yeasin, Eigen-CAM, IJCNN 2020", needs_gradients=False, eigen=True),
    Cam("layercam", "LayerCAM", "activations weighted element-wise by their positive gradients",
        "Jiang et al., LayerCAM, IEEE TIP 2021"),
    Cam("xgradcam", "XGradCAM", "feature maps weighted by activation-normalised gradients",
        "Fu et al., Axiom-based Grad-CAM, BMVC 2020"),
    Cam("scorecam", "ScoreCAM", "feature maps weighted by the softmax of the scores of the input masked by them",
        "Wang et al., Score-CAM, CVPR Workshops 2020", evaluation_batch=True, needs_gradients=False, volume=False),
    Cam("ablationcam", "AblationCAM", "feature maps weighted by the score drop when each one is zeroed",
        "Desai & Ramaswamy, Ablation-CAM, WACV 2020", signal=False, evaluation_batch=True,
        needs_gradients=False, volume=False),
    Cam("fullgrad", "FullGrad", "input gradients plus bias gradients of every conv/BN layer (no target layer)",
        "Srinivas & Fleuret, Full-Gradient Representation for Neural Network Visualization, NeurIPS 2019",
        signal=False, takes_layer=False, volume=False),
)


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
                instance.batch_size = ctx.batch_size
            try:
                maps = instance(input_tensor=inputs, targets=targets)
            finally:  # not ``with``: BaseCAM.__exit__ swallows IndexError, which would hide a failure
                instance.activations_and_grads.release()
        out = torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32)).to(x.device)
        return out[:, 0] if signal else out

    explain.__name__ = explain.__qualname__ = f"explain_{cam.cls.lower()}"
    return explain


@hookimpl
def xaibench_register_methods(register: Callable[[MethodSpec], None]) -> None:
    for cam in CAMS:
        defaults_note = "; evaluation passes in batches of the suite's batch_size" if cam.evaluation_batch else ""
        register(MethodSpec(
            name=cam.name,
            explain=cam_method(cam),
            modalities=frozenset({"image"} | ({"signal"} if cam.signal else set()) | ({"volume"} if cam.volume else set())),
            description=f"{cam.description} (pytorch-grad-cam){defaults_note}"
                        + ("" if cam.volume else f"; not on volumes: {NO_VOLUME[cam.name]}"),
            citation=f"{cam.citation}; {GRADCAM_REPO}",
            takes_layer=cam.takes_layer,
            needs_gradients=cam.needs_gradients,
        ))

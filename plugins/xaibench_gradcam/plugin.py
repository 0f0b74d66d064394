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
deterministic sign (see :func:`xaibench_gradcam.methods.sign_corrected`).

The ``explain`` functions live in :mod:`xaibench_gradcam.methods`, imported at their first call
(:func:`xaibench.contract.lazy.lazy`); pytorch-grad-cam is imported inside them: importing it costs about two
seconds, which every ``xaibench`` command would otherwise pay at start-up.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from xaibench import hookimpl
from xaibench.contract.lazy import lazy
from xaibench.contract.specs import MethodSpec

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
    evaluation_batch: bool = False  # Score-CAM / Ablation-CAM: forward passes in ctx.pass_batch chunks
    needs_gradients: bool = True
    #: Eigen-CAMs: fix the sign of the principal component (see ``sign_corrected``).
    eigen: bool = False
    volume: bool = True  # works on volumes (N, C, D, H, W); else its reason is in NO_VOLUME
    #: The lazy target of its ``MethodSpec.covers`` ("" : the CAM's formula holds on every model).
    covers: str = ""


#: Why a CAM declines volumes (pytorch-grad-cam 1.5.7).
NO_VOLUME = {
    "scorecam": "its masks are upsampled with UpsamplingBilinear2d, which takes 4D activations only",
    "ablationcam": "its AblationLayer repeats and indexes 4D activations",
    "fullgrad": "it collects the biases of Conv2d and BatchNorm2d layers only: on a 3D network it would silently "
                "drop every bias term",
}


GRADCAM = Cam("gradcam", "GradCAM", "feature maps weighted by their average gradient",
              "Selvaraju et al., Grad-CAM, ICCV 2017")
CAMS = (
    GRADCAM,
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
        signal=False, takes_layer=False, volume=False, covers="xaibench_gradcam.rules:fullgrad_covers"),
)


#: What each CAM's maps are checked against (``MethodSpec.checked_against``): the library's own class on 2D, and
#: the tests that hold the 1D and 3D paths to the defining formula or to the library on an equivalent 2D model.
SAME_AS_2D = ("pytorch-grad-cam on the same weights as a (1, k) Conv2d model: tests/test_methods_cam.py::"
              "test_1d_cams_equal_the_library_on_the_equivalent_2d_model")
RUNS_ON_MODELS = "tests/test_methods_cam.py::test_every_cam_runs_on_the_built_in_models_with_their_target_layers"
FORMULA_1D = "the defining formula by hand on 1D: tests/test_methods_cam.py::test_1d_cams_follow_their_definitions"
CHECKED = {
    "gradcam": f"{FORMULA_1D}; {SAME_AS_2D}; on volumes by hand: tests/test_volumes.py::"
               "test_gradcam_on_volumes_matches_the_hand_computation",
    **dict.fromkeys(("hirescam", "layercam", "xgradcam"), f"{FORMULA_1D}; {SAME_AS_2D}"),
    **dict.fromkeys(("gradcam++", "eigengradcam", "eigencam", "scorecam"),
                    f"pytorch-grad-cam's class called as is on 2D; 1D: {SAME_AS_2D}; runs on every built-in model: "
                    f"{RUNS_ON_MODELS}"),
    **dict.fromkeys(("ablationcam", "fullgrad"),
                    f"pytorch-grad-cam's class called as is (images only); runs on every built-in model: {RUNS_ON_MODELS}"),
}


@hookimpl
def xaibench_register_methods(register: Callable[[MethodSpec], None]) -> None:
    """Registers this plugin's pytorch-grad-cam CAMs (:data:`CAMS`) with ``register`` (the ``xaibench_register_methods`` hook), importing no torch."""
    for cam in CAMS:
        defaults_note = "; evaluation passes in batches of the engine's calibrated batch (ctx.pass_batch)" if cam.evaluation_batch else ""
        register(MethodSpec(
            name=cam.name,
            explain=lazy("xaibench_gradcam.methods:cam_method", cam),
            modalities=frozenset({"image"} | ({"signal"} if cam.signal else set()) | ({"volume"} if cam.volume else set())),
            description=f"{cam.description} (pytorch-grad-cam){defaults_note}"
                        + ("" if cam.volume else f"; not on volumes: {NO_VOLUME[cam.name]}"),
            citation=f"{cam.citation}; {GRADCAM_REPO}",
            takes_layer=cam.takes_layer,
            needs_gradients=cam.needs_gradients,
            covers=lazy(cam.covers) if cam.covers else None,
            checked_against=CHECKED[cam.name],
        ))
    register(MethodSpec(
        name="guided-gradcam", explain=lazy("xaibench_gradcam.methods:guided_gradcam"),
        modalities=frozenset({"image", "signal"}), takes_layer=True,
        description="guided backpropagation (captum) times the upsampled Grad-CAM map (pytorch-grad-cam), "
                    "element-wise; ReLU networks only (guided backpropagation's rules); not on volumes (the "
                    "Grad-CAM map stays at the layer's resolution there)",
        citation=f"Selvaraju et al., Grad-CAM, ICCV 2017, Sec. 3.1; {GRADCAM_REPO}",
        defaults={"reduce": "max_abs"},
        covers=lazy("xaibench_captum.rules:guided_backprop_covers"),
        checked_against="pytorch-grad-cam GuidedBackpropReLUModel x GradCAM on the same layer: "
                        "tests/test_methods_new.py::test_guided_gradcam_equals_pytorch_grad_cam",
    ))

"""timm and MONAI networks through the user's path (a suite, the runner, the saliency cache) against the peers
called directly on the same weights: pytorch-grad-cam, MONAI's GradCAM and OcclusionSensitivity."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from xaibench_networks.monai_nets import monai_builder
from xaibench_networks.timm_nets import build_timm

from xaibench.contract.plugins import load_harness
from xaibench.running.runner import Runner, RunOptions
from xaibench.storage.store import Store
from xaibench.suites.suite import load_suite

#: grad-cam calls np.percentile on a torch tensor (its problem, not ours).
#: MONAI 1.6's OcclusionSensitivity indexes with lists (its problem too).
pytestmark = [pytest.mark.filterwarnings("ignore:__array_wrap__:DeprecationWarning"),
              pytest.mark.filterwarnings("ignore:Using a non-tuple sequence:UserWarning")]

SUITE = """
name: peers
seed: 0
samples: {samples}
image_size: {size}
datasets:
  - {dataset}
models:
  - {model}
methods: [{method}]
metrics: [dic]
"""


def _maps(tmp_path: Path, model: torch.nn.Module, entry: str, dataset: str, size: int, method: str,
          samples: int = 3) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    """``method``'s maps of ``model`` (saved as the suite's checkpoint) through a run's path: (maps, x, targets)."""
    torch.save(model.state_dict(), tmp_path / "mine.pt")
    path = tmp_path / "suite.yaml"
    path.write_text(SUITE.format(samples=samples, size=size, dataset=dataset, method=method,
                                 model=f"{entry[:-1]}, checkpoint: {tmp_path / 'mine.pt'}}}"))
    runner = Runner(load_harness(), load_suite(path), Store(tmp_path / "r.sqlite"),
                    RunOptions(progress=False, home=tmp_path / "home"))
    runner.plan()
    ds, mo, me = runner.datasets[0], runner.models[0], runner.methods[0]
    g = runner.group_context(ds, mo)
    return runner.cached_maps(g, me), g.samples.x, g.target


def _scaled(a: np.ndarray) -> np.ndarray:
    """Each map min-max scaled to [0, 1] (the peers scale; the maps compared are affine images of each other)."""
    flat = a.reshape(len(a), -1)
    lo, hi = flat.min(1, keepdims=True), flat.max(1, keepdims=True)
    return ((flat - lo) / np.where(hi > lo, hi - lo, 1)).reshape(a.shape)


@pytest.mark.parametrize("arch", ["efficientnet_b0", "convnext_atto"])
def test_grad_cam_on_timm_equals_pytorch_grad_cam_on_the_same_model_and_layer(tmp_path: Path, arch: str) -> None:
    """SiLU + squeeze-excitation (EfficientNet) and GELU + LayerNorm (ConvNeXt) at their default CAM layer,
    timm's feature_info[-1] (output_stride 8 keeps it 8x8 at 64 px)."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    torch.manual_seed(0)
    mine = build_timm(3, 1, "image", arch, output_stride=8).eval()
    ours, x, target = _maps(tmp_path, mine, f"{{name: timm, params: {{arch: {arch}, output_stride: 8}}}}",
                            "{name: synthetic-lesions, params: {n_train: 4, n_val: 4, n_test: 4}}", 64, "gradcam")
    layer = mine.get_submodule(mine.feature_info[-1]["module"])
    with GradCAM(model=mine, target_layers=[layer]) as cam:
        theirs = cam(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in target])
    assert ours.shape == theirs.shape == (3, 64, 64) and np.ptp(theirs) > 0.5
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


VOLUMES = "{name: synthetic-volumes, params: {size: 32, n_train: 2, n_val: 2, n_test: 3}}"


def test_grad_cam_on_monai_3d_densenet_equals_monai_gradcam(tmp_path: Path) -> None:
    """MONAI's GradCAM upsamples the layer's map (trilinear, half-pixel) and then maps each sample's (min, max) to
    (1, 0) (``default_normalizer``, flipped as its docstring says); ours scales to [0, 1] at the layer's
    resolution and upsamples the same way: ours == 1 - theirs. ``features.denseblock1`` is 8^3 at 32^3."""
    from monai.visualize import GradCAM

    torch.manual_seed(0)
    mine = monai_builder("densenet121")(3, 1, "volume").eval()
    ours, x, target = _maps(tmp_path, mine, "{name: monai/densenet121, layer: features.denseblock1}", VOLUMES, 32,
                            "gradcam")
    theirs = GradCAM(nn_module=mine, target_layers="features.denseblock1")(x, class_idx=None)
    assert torch.equal(torch.as_tensor(mine(x).argmax(1)), target)
    theirs = theirs[:, 0].detach().numpy()
    assert ours.shape == theirs.shape == (3, 32, 32, 32)
    np.testing.assert_allclose(_scaled(ours), 1 - theirs, atol=1e-4)


def test_grad_cam_at_monai_densenets_default_layer_the_in_place_relu(tmp_path: Path) -> None:
    """``class_layers.relu`` is ``ReLU(inplace=True)``: MONAI's GradCAM switches it to out-of-place on the model
    it is given (a copy here); ours hooks it as it is. 64^3 gives a 2^3 map."""
    import copy

    from monai.visualize import GradCAM

    from xaibench.scoring.maps import upsample
    from xaibench.contract.specs import MethodContext

    torch.manual_seed(1)
    mine = monai_builder("densenet121")(2, 1, "volume").eval()
    x = torch.rand(2, 1, 64, 64, 64)
    gradcam = load_harness().methods.get("gradcam")
    target = mine(x).argmax(1)
    native = gradcam.explain(mine, x, target, MethodContext(layer=mine.class_layers.relu, batch_size=2,
                                                            sample_seeds=(0, 1)))
    assert mine.class_layers.relu.inplace and native.shape == (2, 2, 2, 2)
    ours = upsample(native.float(), (64, 64, 64)).numpy()
    theirs = GradCAM(nn_module=copy.deepcopy(mine), target_layers="class_layers.relu")(x)[:, 0].detach().numpy()
    np.testing.assert_allclose(_scaled(ours), 1 - theirs, atol=1e-4)


def test_occlusion_on_a_volume_equals_monai_occlusion_sensitivity_where_the_definitions_coincide(
        tmp_path: Path) -> None:
    """Coincide: MONAI with a constant fill ``mode=0.0`` (ours: ``fill: zero``), ``overlap=0`` (ours: stride =
    window), ``activate=False`` (logits, as ours). Differ: MONAI reports the occluded output f_c(x with the
    window zeroed), ours its drop f_c(x) - f_c(occluded), divided by the window's voxels unless
    ``per_pixel: false``; MONAI's defaults are another method: ``mode="gaussian"`` and ``overlap=0.6`` (a blurred,
    overlapping window, averaged with Gaussian weights) and ``activate=True`` (pinned below: a sigmoid per class
    on one-channel inputs)."""
    from monai.visualize import OcclusionSensitivity

    torch.manual_seed(0)
    mine = monai_builder("resnet10")(3, 1, "volume").eval()
    volumes = "{name: synthetic-volumes, params: {size: 16, n_train: 2, n_val: 2, n_test: 2}}"
    ours, x, target = _maps(tmp_path, mine, "{name: monai/resnet10}", volumes, 16,
                            "{name: occlusion, params: {window: 8, per_pixel: false}}", samples=2)
    with torch.no_grad():
        base = mine(x)
    for i in range(len(x)):
        occluded, _ = OcclusionSensitivity(mine, mask_size=8, n_batch=8, mode=0.0, overlap=0.0, activate=False,
                                           verbose=False)(x[i : i + 1])
        c = int(target[i])
        assert occluded.shape == (1, 3, 16, 16, 16)  # MONAI 1.6: (N, classes, *spatial), not its docstring's BCHWDN
        np.testing.assert_allclose(ours[i], (base[i, c] - occluded[0, c]).numpy(), atol=1e-5)
        # a difference pinned: MONAI's default ``activate=True`` takes the softmax "if num_channels > 1", counting
        # the *input's* channels: on one-channel volumes it is the sigmoid of each class's logit, not a softmax
        probs, _ = OcclusionSensitivity(mine, mask_size=8, n_batch=8, mode=0.0, overlap=0.0,
                                        verbose=False)(x[i : i + 1])
        torch.testing.assert_close(probs.as_tensor(), occluded.as_tensor().sigmoid(), atol=1e-6, rtol=1e-5)
        assert not torch.allclose(probs.as_tensor(), occluded.as_tensor().softmax(1), atol=1e-3)
    (tmp_path / "default").mkdir()
    per_voxel, _, _ = _maps(tmp_path / "default", mine, "{name: monai/resnet10}", volumes, 16,
                            "{name: occlusion, params: {window: 8}}", samples=2)
    np.testing.assert_allclose(per_voxel * 8 ** 3, ours, atol=1e-5)

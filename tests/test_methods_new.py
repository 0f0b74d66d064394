"""The methods of issue 28 (without LRP), through the registered specs, against peers and hand derivations.

SmoothGrad / SmoothGrad-squared / VarGrad against captum's NoiseTunnel(Saliency) on the same draws;
Guided Grad-CAM against pytorch-grad-cam's GuidedBackpropReLUModel x GradCAM; LIME against captum's
Lime called directly with the same SLIC mask and seed; KernelSHAP's additivity; Input x Gradient and
deconvolution worked by hand. The conformance kit runs over every method in tests/test_conformance.py.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from torch import nn

from xaibench.base.errors import XaibenchError
from xaibench.contract.plugins import load_harness
from xaibench.contract.specs import MethodContext
from xaibench.authoring.testing import one_thread, tiny_layer, tiny_model

HARNESS = load_harness()
SEEDS = (11, 23, 37)


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    with one_thread():
        yield


def _explain(name: str, model: nn.Module, x: torch.Tensor, target: torch.Tensor, layer: nn.Module | None = None,
             batch_size: int = 4, engine_batch: int | None = None, **params: object) -> torch.Tensor:
    """The registered method's maps, with its defaults under ``params``, as the runner calls it."""
    spec = HARNESS.methods.get(name)
    ctx = MethodContext(layer=layer, batch_size=batch_size, sample_seeds=SEEDS[: x.shape[0]],
                        data_mean=x.mean(dim=[0, *range(2, x.dim())]), engine_batch=engine_batch)
    with torch.enable_grad():
        return spec.explain(model, x, target, ctx, **{**spec.defaults, **params}).detach()


def _batch(seed: int = 0, n: int = 3, size: int = 16) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    model = tiny_model("image", in_channels=1, seed=seed)
    x = torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(seed))
    return model, x, torch.tensor([0, 1, 2][:n])


@pytest.mark.parametrize("name,kind", [("smoothgrad", "smoothgrad"), ("smoothgrad-sq", "smoothgrad_sq"),
                                       ("vargrad", "vargrad")])
@pytest.mark.parametrize("engine_batch", [None, 5, 64])
def test_noise_tunnels_equal_captum_on_the_same_draws(name: str, kind: str, engine_batch: int | None) -> None:
    """Each sample's map is captum's NoiseTunnel on that sample alone under its seed (draws in partitions of the
    user's batch size, 4 + 2), whatever the engine batch its copies pass in (5: passes cut across samples
    and partitions; 64: all 18 copies in one pass)."""
    from captum.attr import NoiseTunnel, Saliency

    model, x, target = _batch()
    ours = _explain(name, model, x, target, samples=6, engine_batch=engine_batch)
    for i, seed in enumerate(SEEDS):
        sigma = 0.15 * float(x[i].max() - x[i].min())  # Smilkov et al.: noise level x the input's range
        torch.manual_seed(seed)
        theirs = NoiseTunnel(Saliency(model)).attribute(x[i : i + 1], nt_type=kind, nt_samples=6, stdevs=sigma,
                                                         nt_samples_batch_size=4, target=int(target[i]), abs=False)
        np.testing.assert_allclose(ours[i].numpy(), theirs.abs().amax(1)[0].detach().numpy(), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name,tunnel", [("saliency", {"type": "vargrad", "samples": 5, "stdev": 0.2}),
                                          ("integrated-gradients", {}), ("saliency", {"type": "smoothgrad_sq", "samples": 1})])
def test_noise_tunnel_parameter_equals_captum_noise_tunnel_per_sample(name: str, tunnel: dict) -> None:
    """A gradient method's ``noise_tunnel`` (defaults: smoothgrad, 16 samples, stdev 0.1) is captum's NoiseTunnel over
    that method on each sample alone under its seed, draws in partitions of the batch size (4), at engine batch 3."""
    from captum.attr import IntegratedGradients, NoiseTunnel, Saliency

    model, x, target = _batch()
    ours = _explain(name, model, x, target, engine_batch=3, noise_tunnel=tunnel, **({"n_steps": 4} if name != "saliency" else {}))
    for i, seed in enumerate(SEEDS):
        torch.manual_seed(seed)
        args = {"nt_type": tunnel.get("type", "smoothgrad"), "nt_samples": tunnel.get("samples", 16),
                "stdevs": tunnel.get("stdev", 0.1), "nt_samples_batch_size": 4, "target": int(target[i])}
        if name == "saliency":
            theirs = NoiseTunnel(Saliency(model)).attribute(x[i : i + 1], abs=False, **args).abs().amax(1)
        else:
            theirs = NoiseTunnel(IntegratedGradients(model)).attribute(x[i : i + 1], baselines=torch.zeros_like(x[:1]),
                                                                       n_steps=4, **args).sum(1)
        np.testing.assert_allclose(ours[i].numpy(), theirs[0].detach().numpy(), rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("tunnel,error,message", [
    ([("type", "smoothgrad")], TypeError, r"noise_tunnel must be a mapping \{type, samples, stdev\}, got \[\('type', 'smoothgrad'\)\]"),
    ({"type": "smoothgrad", "sigma": 1, "n": 2}, ValueError, r"noise_tunnel: unknown key\(s\) n, sigma; known: type, samples, stdev"),
    ({"type": "smoothgrad-sq"}, ValueError, r"noise_tunnel type must be one of smoothgrad, smoothgrad_sq, vargrad, got 'smoothgrad-sq'"),
    ({"samples": 0}, ValueError, r"noise_tunnel needs an integer samples >= 1 and a finite stdev > 0, got 0 and 0.1"),
    ({"stdev": 0.0}, ValueError, r"noise_tunnel needs an integer samples >= 1 and a finite stdev > 0, got 16 and 0.0"),
    ({"samples": True}, ValueError, r"noise_tunnel needs an integer samples >= 1 and a finite stdev > 0, got True and 0.1"),
    ({"stdev": float("inf")}, ValueError, r"noise_tunnel needs an integer samples >= 1 and a finite stdev > 0, got 16 and inf"),
])
def test_noise_tunnel_parameter_refuses_what_it_cannot_draw(tunnel: object, error: type, message: str) -> None:
    model, x, target = _batch()
    with pytest.raises(error, match=f"^{message}$"):
        _explain("saliency", model, x, target, noise_tunnel=tunnel)


def test_gradient_shap_is_captums_on_each_sample_alone_under_its_seed() -> None:
    """GradientShap draws its noise from torch and its path points from numpy: each sample's map is captum's
    GradientShap on that sample alone after ``torch.manual_seed(seed)`` and ``np.random.seed(seed % 2**32)``
    (a seed past 2**32 included), and numpy's global state is left as it was."""
    from captum.attr import GradientShap

    model, x, target = _batch()
    seeds = (11, 2**32 + 7, 37)
    spec = HARNESS.methods.get("gradient-shap")
    ctx = MethodContext(layer=None, batch_size=4, sample_seeds=seeds, engine_batch=2)
    np.random.seed(99)
    state = np.random.get_state()[1].copy()
    with torch.enable_grad():
        ours = spec.explain(model, x, target, ctx, **{**spec.defaults, "n_samples": 4}).detach()
    np.testing.assert_array_equal(np.random.get_state()[1], state)
    for i, seed in enumerate(seeds):
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        theirs = GradientShap(model).attribute(x[i : i + 1], baselines=torch.zeros_like(x[i : i + 1]), n_samples=4,
                                               stdevs=spec.defaults["stdev"], target=int(target[i]))
        np.testing.assert_allclose(ours[i].numpy(), theirs.sum(1)[0].detach().numpy(), rtol=1e-5, atol=1e-8)


def _pass_sizes(model: nn.Module) -> tuple[list[int], torch.utils.hooks.RemovableHandle]:
    sizes: list[int] = []
    return sizes, model.register_forward_pre_hook(lambda _m, args: sizes.append(args[0].shape[0]))


def test_noise_tunnel_copies_of_all_samples_share_passes_of_the_engine_batch() -> None:
    """3 RGB samples x 6 copies at engine batch 5: 18 copies in passes 5, 5, 5, 3 (not 6 per sample's own passes),
    each copy once: the maps are the per-sample ones of engine batch 64 (one pass)."""
    model = tiny_model("image", in_channels=3, seed=2)
    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    target = torch.tensor([0, 1, 2])
    sizes, hook = _pass_sizes(model)
    streamed = _explain("smoothgrad", model, x, target, samples=6, engine_batch=5)
    hook.remove()
    assert sizes == [5, 5, 5, 3]
    torch.testing.assert_close(streamed, _explain("smoothgrad", model, x, target, samples=6, engine_batch=64))


def test_integrated_gradients_pass_groups_of_the_engine_batch_and_equal_captum_on_the_whole_batch() -> None:
    """5 samples at engine batch 2: groups of 2, 2, 1 samples, each pass two inputs (one step of a pair, two steps of
    the last sample: 8 + 8 + 4 passes, not one step of all 5 samples per pass); the maps are
    captum's IntegratedGradients on all 5 at once (Gauss-Legendre, zero baseline, summed over channels)."""
    from captum.attr import IntegratedGradients

    model = tiny_model("image", in_channels=2, seed=3)
    x = torch.rand(5, 2, 12, 12, generator=torch.Generator().manual_seed(3))
    target = torch.tensor([0, 1, 2, 1, 0])
    sizes, hook = _pass_sizes(model)
    ours = _explain("integrated-gradients", model, x, target, engine_batch=2, n_steps=8)
    hook.remove()
    assert sizes == [2] * 20
    theirs = IntegratedGradients(model).attribute(x, baselines=torch.zeros_like(x), target=target, n_steps=8)
    np.testing.assert_allclose(ours.numpy(), theirs.sum(1).detach().numpy(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", ["occlusion", "feature-ablation"])
def test_captum_perturbation_methods_pass_groups_of_the_engine_batch_and_equal_captum_on_the_whole_batch(
        name: str) -> None:
    """5 samples at engine batch 2, windows of 4 on 8 x 8 (4 positions): groups of 2, 2, 1 samples, each its unoccluded
    pass and one position per pass (5 passes of 2 inputs per pair, 5 of 1 for the last sample, not passes of all 5
    samples); the maps are captum's on all 5 at once."""
    from captum.attr import FeatureAblation, Occlusion

    model = tiny_model("image", in_channels=2, seed=4)
    x = torch.rand(5, 2, 8, 8, generator=torch.Generator().manual_seed(4))
    target = torch.tensor([2, 1, 0, 1, 2])
    sizes, hook = _pass_sizes(model)
    params = {"window": 4} if name == "occlusion" else {"patch": 4}
    ours = _explain(name, model, x, target, engine_batch=2, **params)
    hook.remove()
    assert sizes == [2] * 10 + [1] * 5
    zero = torch.zeros_like(x)
    if name == "occlusion":
        theirs = Occlusion(model).attribute(x, sliding_window_shapes=(2, 4, 4), strides=(2, 4, 4), baselines=zero,
                                            target=target)[:, 0] / 16
    else:
        groups = (torch.arange(8)[:, None] // 4) * 2 + torch.arange(8)[None, :] // 4
        theirs = FeatureAblation(model).attribute(x, baselines=zero, target=target,
                                                  feature_mask=groups[None, None])[:, 0] / 16
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-5, atol=1e-7)


def test_noise_tunnel_defaults_are_the_published_ones_and_a_constant_sample_is_refused() -> None:
    spec = HARNESS.methods.get("smoothgrad")
    assert spec.defaults["samples"] == 50 and spec.defaults["noise_level"] == 0.15  # Smilkov et al. 2017, Sec. 4.1
    model, x, target = _batch()
    x[1] = 0.5
    with pytest.raises(XaibenchError, match="sample 1 is constant"):
        _explain("smoothgrad", model, x, target, samples=2)


def test_input_x_gradient_sums_to_the_logit_of_a_bias_free_relu_net() -> None:
    """A bias-free ReLU network is positively homogeneous of degree 1, so f(x) = x . grad f(x) (Euler)."""
    torch.manual_seed(4)
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, bias=False), nn.ReLU(), nn.Conv2d(4, 4, 3, bias=False),
                          nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3, bias=False)).eval()
    x = torch.rand(3, 2, 8, 8)
    target = torch.tensor([2, 0, 1])
    maps = _explain("input-x-gradient", model, x, target)
    logits = model(x).detach()[torch.arange(3), target]
    np.testing.assert_allclose(maps.flatten(1).sum(1).numpy(), logits.numpy(), rtol=1e-5)
    assert HARNESS.methods.get("input-x-gradient").additive


def test_deconvolution_rectifies_the_backward_signal() -> None:
    """On f(x) = w2 . relu(W1 x): deconvolution is W1^T relu(w2) whatever x; guided backprop W1^T (relu(w2) * [W1 x > 0])."""
    torch.manual_seed(5)
    first, second = nn.Linear(16, 6, bias=False), nn.Linear(6, 2, bias=False)
    model = nn.Sequential(nn.Flatten(), first, nn.ReLU(), second).eval()
    x = torch.randn(2, 1, 4, 4)
    target = torch.tensor([0, 1])
    w1, w2 = first.weight.detach(), second.weight.detach()
    deconv = _explain("deconvolution", model, x, target)
    guided = _explain("guided-backprop", model, x, target)
    for i in range(2):
        back = w2[target[i]].clamp_min(0)
        np.testing.assert_allclose(deconv[i].numpy(), (w1.T @ back).abs().reshape(4, 4).numpy(), rtol=1e-5, atol=1e-7)
        active = (w1 @ x[i].flatten() > 0).float()
        np.testing.assert_allclose(guided[i].numpy(), (w1.T @ (back * active)).abs().reshape(4, 4).numpy(),
                                   rtol=1e-5, atol=1e-7)


def test_guided_gradcam_equals_pytorch_grad_cam() -> None:
    """Selvaraju et al. Sec. 3.1 as pytorch-grad-cam's README computes it: GuidedBackpropReLUModel x GradCAM."""
    from pytorch_grad_cam import GradCAM, GuidedBackpropReLUModel
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model, x, target = _batch(seed=2, size=32)
    ours = _explain("guided-gradcam", model, x, target, layer=tiny_layer(model))
    peer = copy.deepcopy(model)  # GuidedBackpropReLUModel swaps the ReLU modules of the model it is given
    cam = GradCAM(model=peer, target_layers=[tiny_layer(peer)])(
        input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in target])
    for i in range(3):
        gb = GuidedBackpropReLUModel(peer, device="cpu")(x[i : i + 1].clone(), target_category=int(target[i]))
        expected = np.abs(gb * cam[i][:, :, None]).max(axis=2)
        np.testing.assert_allclose(ours[i].numpy(), expected, rtol=1e-4, atol=1e-7)


def _segments(x: torch.Tensor, n_segments: int) -> np.ndarray:
    """scikit-image's SLICO on each image min-max scaled to [0, 1] over its channels, no Lab conversion, the
    compactness 0.1 x sqrt(C) (colour distance: the channels' root mean square), labels renumbered 0..M-1,
    as the methods document."""
    from skimage.segmentation import slic

    out = []
    for image in x.numpy().astype(np.float64):
        scaled = (image - image.min()) / (image.max() - image.min())
        labels = slic(scaled, n_segments=n_segments, compactness=0.1 * math.sqrt(len(image)), channel_axis=0,
                      convert2lab=False, slic_zero=True, start_label=0)
        out.append(np.unique(labels, return_inverse=True)[1].reshape(labels.shape))
    return np.stack(out)


def test_lime_equals_captum_lime_with_the_same_mask_and_seed() -> None:
    from captum._utils.models.linear_model import SkLearnRidge
    from captum.attr import Lime

    model, x, target = _batch(seed=3, size=24)
    ours = _explain("lime", model, x, target, n_samples=60, n_segments=12)
    masks = torch.from_numpy(_segments(x, 12))

    def kernel(original, perturbed, z, **_):  # type: ignore[no-untyped-def]
        """The lime package's: sqrt(exp(-d^2 / 0.25^2)), d the cosine distance of z to the all-on vector."""
        from sklearn.metrics.pairwise import cosine_distances

        d = float(cosine_distances(z.double().numpy(), np.ones((1, z.shape[1])))[0, 0])
        return math.sqrt(math.exp(-d ** 2 / 0.25 ** 2))

    for i, seed in enumerate(SEEDS):
        torch.manual_seed(seed)
        theirs = Lime(model, interpretable_model=SkLearnRidge(alpha=1.0), similarity_func=kernel).attribute(
            x[i : i + 1], baselines=0.0, target=int(target[i]), feature_mask=masks[i][None, None], n_samples=60,
            perturbations_per_eval=4)
        np.testing.assert_allclose(ours[i].numpy(), theirs[0, 0].numpy(), rtol=1e-4, atol=1e-6)
    assert not HARNESS.methods.get("lime").additive


def test_kernel_shap_values_sum_to_the_output_change() -> None:
    """Efficiency (Lundberg & Lee 2017, Property 1): the superpixels' values sum to f(x) - f(baseline)."""
    model, x, target = _batch(seed=4, size=24)
    maps = _explain("kernel-shap", model, x, target, n_samples=80, n_segments=10)
    with torch.no_grad():
        change = (model(x) - model(torch.zeros_like(x)))[torch.arange(3), target]
    np.testing.assert_allclose(maps.flatten(1).sum(1).numpy(), change.numpy(), rtol=1e-3, atol=1e-5)
    masks = _segments(x, 10)
    for i in range(3):  # per_pixel: one value per superpixel, spread evenly over its pixels
        for label in np.unique(masks[i]):
            values = maps[i].numpy()[masks[i] == label]
            np.testing.assert_allclose(values, values[0], rtol=1e-6)
    assert HARNESS.methods.get("kernel-shap").additive


def test_kernel_shap_default_sample_count_is_the_shap_packages() -> None:
    """``n_samples: 0`` draws 2 M + 2048 coalitions: the map equals an explicit call with that count."""
    model, x, target = _batch(seed=5, n=2, size=16)
    segments = _segments(x, 4)
    counts = {int(s.max()) + 1 for s in segments}
    assert len(counts) == 1, "the check needs both images to have the same superpixel count"
    implicit = _explain("kernel-shap", model, x, target, n_segments=4, batch_size=512)
    explicit = _explain("kernel-shap", model, x, target, n_segments=4, n_samples=2 * counts.pop() + 2048,
                        batch_size=512)
    assert torch.equal(implicit, explicit)


@pytest.mark.parametrize("name", ["lime", "kernel-shap"])
def test_superpixel_methods_refuse_signals_with_one_line(name: str) -> None:
    model = tiny_model("signal")
    with pytest.raises(XaibenchError, match="need images"):
        _explain(name, model, torch.rand(2, 1, 16), torch.tensor([0, 1]), n_samples=4)

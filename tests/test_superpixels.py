"""LIME's and KernelSHAP's superpixels (issue 42, item 5): SLICO on the image scaled to [0, 1], its channels as
they are, so the segmentation follows the image alike for 1 and 3 channels and any value range.

Expected values come from outside the code under test: a grey image's own superpixels for its RGB twin and its
rescaled copies; lesion boundaries counted by hand against the disc drawn into the image; the seeds' regular
grid of a constant image worked out by hand (scikit-image's seeds: step ``int(sqrt(H W / n))``, from half a
step); KernelSHAP's efficiency ``sum = f(x) - f(baseline)`` and a grey model's maps for its RGB twin model.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from xaibench_captum.superpixels import slic_segments

import xaibench
from xaibench.base.errors import XaibenchError
from xaibench.contract.plugins import load_harness
from xaibench.contract.specs import MethodContext
from xaibench.authoring.testing import one_thread, tiny_model

HARNESS = load_harness()
DEFAULTS = HARNESS.methods.get("lime").defaults
N_SEGMENTS, COMPACTNESS = DEFAULTS["n_segments"], DEFAULTS["compactness"]
YY, XX = np.mgrid[:64, :64]
DISC = (YY - 30) ** 2 + (XX - 34) ** 2 < 15 ** 2  # the lesion: a disc of radius 15 px


def _speckle() -> torch.Tensor:
    """The issue's speckled grey 64 px image: uniform noise, (1, 1, 64, 64) in [0, 1]."""
    return torch.from_numpy(np.random.default_rng(0).random((1, 1, 64, 64)))


def _lesion(noise: float = 0.05, seed: int = 42) -> torch.Tensor:
    """A dark disc (0.3) on a bright background (0.7), multiplicative speckle of sd ``noise``: (1, 1, 64, 64)."""
    rng = np.random.default_rng(seed)
    return torch.from_numpy(np.where(DISC, 0.3, 0.7) * (1 + noise * rng.standard_normal((64, 64))))[None, None]


def _straddling(labels: torch.Tensor) -> int:
    """How many superpixels hold pixels both inside and outside the disc."""
    seg = labels.numpy()
    return sum(1 for k in np.unique(seg) if 0 < DISC[seg == k].mean() < 1)


def _synthetic() -> torch.Tensor:
    from xaibench_datasets.synthetic import generate

    return torch.from_numpy(generate(6, 64, 0)["x"]).double()


@pytest.mark.parametrize("images", [_speckle, _lesion, _synthetic], ids=["speckle", "lesion", "synthetic-lesions"])
def test_a_grey_image_and_its_rgb_twin_get_identical_superpixels(images) -> None:  # type: ignore[no-untyped-def]
    """R = G = B: the same labels as the grey image (skimage's default would convert RGB to Lab: 49 superpixels
    for the grey speckle image, 1 for its twin)."""
    grey = images()
    ours = slic_segments(grey, N_SEGMENTS, COMPACTNESS)
    assert torch.equal(slic_segments(grey.repeat(1, 3, 1, 1), N_SEGMENTS, COMPACTNESS), ours)
    assert int(ours.amax()) + 1 >= 40  # about n_segments: 50, not collapsed by the speckle


@pytest.mark.parametrize("channels", [1, 3])
def test_superpixels_follow_a_lesion_boundary_at_the_defaults(channels: int) -> None:
    """No superpixel straddles the disc's edge at the defaults (counted against the drawn disc); plain SLIC at
    compactness 10 (the former default) cuts across it: a grid."""
    x = _lesion().repeat(1, channels, 1, 1)
    assert _straddling(slic_segments(x, N_SEGMENTS, COMPACTNESS)[0]) == 0
    assert _straddling(slic_segments(x, N_SEGMENTS, 10.0)[0]) >= 8


def test_superpixels_read_colour_channels_as_they_are() -> None:
    """A lesion that differs from its background in hue only (R and G swapped, same channel mean) is followed on
    the three channels; on the channels' mean it is invisible and the superpixels form a grid across it."""
    rng = np.random.default_rng(1)
    rgb = np.stack([np.where(DISC, 0.7, 0.3), np.where(DISC, 0.3, 0.7), np.full((64, 64), 0.5)])
    x = torch.from_numpy(rgb * (1 + 0.05 * rng.standard_normal((3, 64, 64))))[None]
    assert _straddling(slic_segments(x, N_SEGMENTS, COMPACTNESS)[0]) <= 2
    assert _straddling(slic_segments(x.mean(1, keepdim=True), N_SEGMENTS, COMPACTNESS)[0]) >= 8


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("affine", [(1000.0, 5.0), (65535.0, 0.0), (-2.0, 0.3), (1e-3, -7.0)],
                         ids=["1000x+5", "16-bit", "negated", "tiny-negative"])
def test_superpixels_do_not_depend_on_the_value_range(channels: int, affine: tuple[float, float]) -> None:
    """``a x + b`` gets the labels of ``x`` (min-max scaling; a negative ``a`` flips the image, which leaves every
    colour distance unchanged); standardized data are such an affine copy too."""
    scale, shift = affine
    x = torch.cat([_lesion(0.1), _speckle()]).repeat(1, channels, 1, 1)
    standardized = (x - x.mean()) / x.std()
    expected = slic_segments(x, N_SEGMENTS, COMPACTNESS)
    assert torch.equal(slic_segments(scale * x + shift, N_SEGMENTS, COMPACTNESS), expected)
    assert torch.equal(slic_segments(standardized, N_SEGMENTS, COMPACTNESS), expected)


def test_a_constant_image_is_the_seeds_regular_grid() -> None:
    """Not one superpixel: with no colour, SLIC is k-means on position alone, so each pixel joins its nearest
    seed; scikit-image seeds a 64 x 64 image for 50 segments every int(sqrt(64 * 64 / 50)) = 9 px from 4."""
    seeds = 4 + 9 * np.arange(7)
    band = np.abs(np.arange(64)[:, None] - seeds[None]).argmin(1)  # nearest seed per row (and column)
    expected = band[:, None] * 7 + band[None, :]
    for value in (0.0, 0.3, -5.0):
        ours = slic_segments(torch.full((1, 3, 64, 64), value), N_SEGMENTS, COMPACTNESS)[0]
        np.testing.assert_array_equal(ours.numpy(), expected)


def _explain(name: str, model: nn.Module, x: torch.Tensor, target: torch.Tensor, **params: object) -> torch.Tensor:
    spec = HARNESS.methods.get(name)
    ctx = MethodContext(layer=None, batch_size=4, sample_seeds=(11, 23)[: x.shape[0]], data_mean=None)
    with one_thread():
        return spec.explain(model, x, target, ctx, **{**spec.defaults, **params}).detach()


@pytest.mark.parametrize("name", ["lime", "kernel-shap"])
def test_too_few_superpixels_stop_with_one_line_naming_n_segments(name: str) -> None:
    """``n_segments: 2`` seeds a 16 x 17 image once: one superpixel, which would make LIME's map constant and
    KernelSHAP's kernel NaN (torch's Categorical crash); refused before captum runs, directly and through the
    Python API. ``n_segments: 1`` is refused by the parameter check, before anything runs."""
    model, x = tiny_model("image", in_channels=3), _speckle().float().repeat(2, 3, 1, 1)[:, :, :16, :17]
    message = (rf"^{name}: SLIC cut a 16x17 image into 1 superpixel at n_segments=2, compactness=0.1; it needs at "
               r"least 2: raise n_segments$")
    with pytest.raises(XaibenchError, match=message):
        _explain(name, model, x, torch.tensor([0, 1]), n_segments=2, n_samples=8)
    with pytest.raises(XaibenchError, match=message):
        xaibench.explain(model, x, method=name, n_segments=2, n_samples=8)
    with pytest.raises(XaibenchError, match=f"method '{name}': n_segments must be an integer >= 2, got 1$"):
        xaibench.explain(model, x, method=name, n_segments=1)


def test_two_superpixels_are_enough() -> None:
    """A 16 x 20 image gets two seeds at ``n_segments: 2``: explained, KernelSHAP's two values summing to
    f(x) - f(0) and LIME's map taking two values."""
    model, x, target = tiny_model("image", in_channels=1, seed=2).double(), _speckle()[:, :, :16, :20], torch.tensor([1])
    assert int(slic_segments(x, 2, COMPACTNESS).amax()) + 1 == 2
    shap = _explain("kernel-shap", model, x, target, n_segments=2, per_pixel=False)
    lime = _explain("lime", model, x, target, n_segments=2, n_samples=16)
    with torch.no_grad():
        change = (model(x) - model(torch.zeros_like(x)))[0, 1]
    assert len(torch.unique(shap)) == len(torch.unique(lime)) == 2
    torch.testing.assert_close(torch.unique(shap).sum().double(), change, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("name,params,message", [
    ("lime", {"n_segments": 1}, "lime: n_segments must be an integer >= 2, got 1"),
    ("lime", {"n_samples": 0}, "lime: n_samples must be an integer >= 1, got 0"),
    ("kernel_shap", {"n_samples": -1}, "kernel-shap: n_samples must be an integer >= 0, got -1"),
    ("kernel_shap", {"compactness": 0.0}, "kernel-shap: compactness must be a finite number > 0, got 0.0"),
])
def test_the_functions_called_directly_refuse_bad_values_in_one_line(name: str, params: dict[str, object],
                                                                      message: str) -> None:
    from xaibench_captum import superpixels

    model, x = tiny_model("image", in_channels=1), _speckle().float()
    ctx = MethodContext(layer=None, batch_size=4, sample_seeds=(11,), data_mean=None)
    with pytest.raises(XaibenchError) as exc:
        getattr(superpixels, name)(model, x, torch.tensor([0]), ctx, **params)
    assert str(exc.value) == message


@pytest.mark.parametrize("name", ["lime", "kernel_shap"])
def test_the_functions_default_to_their_registered_defaults(name: str) -> None:
    """Called directly, ``lime`` and ``kernel_shap`` explain as the registered methods do."""
    import inspect

    from xaibench_captum import superpixels

    signature = inspect.signature(getattr(superpixels, name)).parameters
    defaults = HARNESS.methods.get(name.replace("_", "-")).defaults
    assert {key: signature[key].default for key in defaults} == dict(defaults)


class _Twin(nn.Module):
    """A grey model ``net`` read through the channel mean: on an RGB twin it gives the grey image's logits."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.mean(1, keepdim=True))


@pytest.mark.parametrize("name", ["lime", "kernel-shap"])
def test_lime_and_kernel_shap_explain_the_rgb_twin_as_the_grey_image(name: str) -> None:
    """On the speckled RGB twin (formerly one superpixel: constant LIME maps, KernelSHAP crashing), the maps are
    the grey image's maps of the same model, and not constant; KernelSHAP's values sum to f(x) - f(0)."""
    grey = tiny_model("image", in_channels=1, seed=3).double()
    x = torch.cat([_speckle(), _lesion()])
    target = torch.tensor([0, 1])
    params = {"n_samples": 64, "n_segments": 16}
    expected = _explain(name, grey, x, target, **params)
    ours = _explain(name, _Twin(grey), x.repeat(1, 3, 1, 1), target, **params)
    torch.testing.assert_close(ours, expected, rtol=1e-6, atol=1e-9)
    assert all(len(torch.unique(m)) >= 8 for m in ours)
    if name == "kernel-shap":
        with torch.no_grad():
            change = (grey(x) - grey(torch.zeros_like(x)))[torch.arange(2), target]
        torch.testing.assert_close(ours.flatten(1).sum(1).double(), change, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("name", ["lime", "kernel-shap"])
@pytest.mark.parametrize("modality,shape", [("signal", (2, 1, 32)), ("volume", (2, 1, 8, 8, 8))])
def test_signals_and_volumes_are_not_applicable_in_one_line(name: str, modality: str, shape: tuple[int, ...]) -> None:
    """SLIC superpixels here are 2D: the methods declare images only, so a suite skips signals and volumes and
    the Python API refuses them in one line (the method itself, called directly, refuses non-images too)."""
    model, x = tiny_model(modality), torch.rand(*shape)
    with pytest.raises(XaibenchError, match=f"^not applicable: method '{name}' does not support {modality} data$"):
        xaibench.explain(model, x, method=name)
    with pytest.raises(XaibenchError) as exc:
        _explain(name, model, x, torch.tensor([0, 1]), n_samples=4)
    assert str(exc.value) == f"SLIC superpixels need images (N, C, H, W), got shape {shape}"


def test_a_suite_with_too_few_superpixels_exits_2_with_one_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The suite's path: the run stops (exit 2, no traceback) on the first image cut into one superpixel."""
    import os
    import subprocess
    import sys

    suite = tmp_path / "s.yaml"
    suite.write_text("name: sp\nseed: 0\nsamples: 2\nimage_size: 32\n"
                     "datasets: [{name: synthetic-lesions, params: {n_train: 12, n_val: 3, n_test: 3}}]\n"
                     "models: [{name: small-cnn, params: {width: 4}, train: {epochs: 1}}]\n"
                     "methods: [{name: kernel-shap, params: {n_segments: 2, n_samples: 8}}]\nmetrics: [dic]\n")
    out = subprocess.run([sys.executable, "-m", "xaibench", "run", "--suite", str(suite), "--no-progress"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300,
                         check=False, env={**os.environ, "XAIBENCH_HOME": str(tmp_path / "home")})
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == [("error: kernel-shap: SLIC cut a 32x32 image into 1 superpixel at "
                                                "n_segments=2, compactness=0.1; it needs at least 2: raise n_segments")]

"""Volumes (N, C, D, H, W): the embedded synthetic volumes, the 3D models, the core's shape checks,
the 3D blur and Grad-CAM on a 3D network against a hand computation."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from scipy import ndimage

from xaibench.data.bundles import check_bundle
from xaibench.base.errors import XaibenchError
from xaibench.scoring.fills import blur
from xaibench.contract.plugins import load_harness
from xaibench.contract.specs import DatasetRequest, MethodContext
from xaibench.authoring.testing import modality_of, tiny_layer, tiny_model
from xaibench_datasets.volumes import CLASS_NAMES, generate, load_bundle

HARNESS = load_harness()


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    return generate(12, 24, seed=5)


def test_generator_shapes_labels_and_exact_masks(data: dict[str, np.ndarray]) -> None:
    assert data["x"].shape == (12, 1, 24, 24, 24) and data["x"].dtype == np.float32
    assert data["masks"].shape == data["regions"].shape == (12, 24, 24, 24)
    assert 0.0 <= data["x"].min() and data["x"].max() <= 1.0
    assert data["y"].tolist() == [i % 3 for i in range(12)]
    lesion = data["masks"].reshape(12, -1).any(1)
    assert lesion.tolist() == [CLASS_NAMES[y] != "normal" for y in data["y"]]
    assert np.array_equal(data["regions"] == 3, data["masks"])
    # each lesion is one connected 3D component clear of the volume's border
    for m in data["masks"][lesion]:
        assert ndimage.label(m)[1] == 1
        assert not (m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any() or m[..., 0].any() or m[..., -1].any())
    # distractors never touch a lesion or its rim band
    assert not ((data["regions"] == -1) & data["masks"]).any()


def test_generator_is_seeded_and_independent_of_n(data: dict[str, np.ndarray]) -> None:
    again = generate(4, 24, seed=5)
    assert np.array_equal(again["x"], data["x"][:4]) and np.array_equal(again["masks"], data["masks"][:4])
    assert not np.array_equal(generate(4, 24, seed=6)["x"], again["x"])


def test_class_is_in_the_lesion_texture(data: dict[str, np.ndarray]) -> None:
    """Benign lesions are homogeneous and dark, malignant ones carry a bright rim and specks."""
    inside = {k: [data["x"][i, 0][data["masks"][i]] for i in range(12) if data["y"][i] == k] for k in (1, 2)}
    assert max(v.std() for v in inside[1]) < 0.05 < min(v.std() for v in inside[2])


@pytest.mark.parametrize("bad", [dict(n=-1, size=32, seed=0), dict(n=2, size=8, seed=0), dict(n=2, size=32, seed=-1)])
def test_generator_rejects_bad_arguments(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        generate(**bad)


def test_dataset_bundle_passes_the_core_checks_and_wrong_ranks_are_refused() -> None:
    bundle = load_bundle(DatasetRequest(params={"n_train": 3, "n_val": 3, "n_test": 3, "size": 16}, seed=0,
                                        image_size=None, data_root=None))
    assert bundle.modality == "volume" and bundle.spatial == (16, 16, 16)
    check_bundle("synthetic-volumes", bundle)
    flat = dataclasses.replace(bundle, train=dataclasses.replace(bundle.train, x=bundle.train.x[:, :, 0]))
    with pytest.raises(XaibenchError, match=r"volume data is \(N, C, D, H, W\)"):
        check_bundle("synthetic-volumes", flat)
    with pytest.raises(TypeError, match="unknown parameter"):
        load_bundle(DatasetRequest(params={"shortcut": 1}, seed=0, image_size=None, data_root=None))


def test_blur_on_volumes_equals_scipy() -> None:
    x = torch.rand(2, 1, 9, 10, 11, dtype=torch.float64)
    expected = ndimage.gaussian_filter(x.numpy(), (0, 0, 1.5, 1.5, 1.5), mode="nearest", truncate=3 / 1.5)
    assert np.allclose(blur(x, 1.5, radius=3).numpy(), expected, atol=1e-12)


@pytest.mark.parametrize(("name", "params"), [("small-cnn", {"width": 4, "depth": 3}), ("r3d-18", {})])
def test_volume_models_build_for_one_channel_and_expose_5d_cam_layers(name: str, params: dict) -> None:
    spec = HARNESS.models.get(name)
    assert "volume" in spec.modalities
    model = spec.build(num_classes=3, in_channels=1, modality="volume", **params).eval()
    seen = []
    handle = spec.target_layer(model).register_forward_hook(lambda m, i, o: seen.append(o.shape))
    with torch.no_grad():
        out = model(torch.rand(2, 1, 32, 32, 32))
    handle.remove()
    assert out.shape == (2, 3) and len(seen[0]) == 5 and min(seen[0][2:]) >= 4


def test_gradcam_on_volumes_matches_the_hand_computation() -> None:
    """Grad-CAM (Selvaraju et al. 2017, Eq. 1-2) on a 3D network: ReLU(sum_k mean(dY/dA_k) A_k), min-max scaled,
    at the layer's resolution (the harness upsamples)."""
    model, x = tiny_model("volume"), torch.rand(2, 1, 16, 16, 16, generator=torch.Generator().manual_seed(3))
    layer, target = tiny_layer(model), torch.tensor([0, 2])
    acts = []
    handle = layer.register_forward_hook(lambda m, i, o: acts.append(o))
    score = model(x).gather(1, target[:, None]).sum()
    handle.remove()
    grads = torch.autograd.grad(score, acts[0])[0]
    cam = (grads.mean(dim=(2, 3, 4), keepdim=True) * acts[0]).sum(1).clamp(min=0).detach()
    flat = cam.flatten(1)
    expected = ((flat - flat.min(1, keepdim=True).values) / (1e-7 + flat.max(1, keepdim=True).values
                                                              - flat.min(1, keepdim=True).values)).reshape(cam.shape)
    ctx = MethodContext(layer=layer, batch_size=4, sample_seeds=(1, 2))
    got = HARNESS.methods.get("gradcam").explain(model, x, target, ctx)
    assert got.shape == (2, 4, 4, 4) and torch.allclose(got, expected, atol=1e-3)
    assert modality_of(x) == "volume"

"""Cross-checks against Quantus (Hedström et al., JMLR 2023) on the same inputs, and its known errors pinned.

Quantus is a test-only dependency (the ``test`` extra); these tests skip with the
reason if it does not import with this environment's numpy and torch.
"""
from __future__ import annotations

import warnings

import numpy as np
import oracles
import pytest
import torch
from torch import nn

from xaibench.scoring import kernels
from xaibench.scoring.engine import Engine
from xaibench.contract.plugins import load_harness
from xaibench.contract.metric_inputs import MetricContext
from xaibench.authoring.testing import score_metric

quantus = pytest.importorskip("quantus", reason="quantus (test extra) is not installed")

N, H, W = 6, 10, 10


@pytest.fixture(autouse=True)
def _quiet() -> None:
    warnings.filterwarnings("ignore", module="quantus")


def _data(seed: int = 0, channels: int = 1):  # type: ignore[no-untyped-def]
    """Tie-free continuous maps, masks of varied size (never empty), a small random CNN."""
    rng = np.random.default_rng(seed)
    x = rng.random((N, channels, H, W)).astype(np.float32)
    a = rng.random((N, 1, H, W)).astype(np.float32)
    s = np.zeros((N, 1, H, W), dtype=bool)
    for i in range(N):
        r, c = rng.integers(0, 6, 2)
        s[i, 0, r : r + 2 + i % 3, c : c + 3] = True
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(channels, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * H * W, 3)).eval()
    y = np.arange(N) % 3
    return model, x, y, a, s


def _quantus(metric, model, x, y, a, s=None) -> np.ndarray:  # type: ignore[no-untyped-def]
    return np.asarray(metric(model=model, x_batch=x, y_batch=y, a_batch=a, s_batch=s, device="cpu"), dtype=np.float64)


HARNESS = load_harness()


def _registered(name: str, model: nn.Module, x: np.ndarray, y: np.ndarray, a: np.ndarray,
                s: np.ndarray | None = None, **params: object) -> np.ndarray:
    """The registered metric ``name`` with its defaults (``params`` override them), through the runner's seam:
    ``a`` and ``s`` in Quantus's ``(N, 1, H, W)`` layout, dropped to ``(N, H, W)`` maps and masks."""
    spec = HARNESS.metrics.get(name)
    xt = torch.from_numpy(x)
    engine = Engine(model, "cpu", batch_size=16)
    ctx = MetricContext(engine=engine, base_logits=engine.logits(xt), sample_seeds=tuple(range(len(x))))
    masks = None if s is None else torch.from_numpy(s[:, 0])
    return np.asarray(score_metric(spec, ctx, xt, torch.from_numpy(y), torch.from_numpy(a[:, 0]), masks,
                                   **{**spec.defaults, **params}), dtype=np.float64)


def test_pointing_game_equals_quantus_on_tie_free_maps_without_tolerance() -> None:
    model, x, y, a, s = _data()
    for i in range(0, N, 2):  # plant the peak inside the lesion in half of the samples
        a[i, 0][s[i, 0]] += 1.0
    ours = _registered("hit-rate", model, x, y, a, s, tolerance=0.0)
    theirs = _quantus(quantus.PointingGame(disable_warnings=True), model, x, y, a, s)
    np.testing.assert_array_equal(ours, theirs)
    assert 0 < ours.sum() < N  # the check covers hits and misses


def test_pointing_game_with_its_scaled_tolerance_equals_quantus_on_the_dilated_mask() -> None:
    """Within ``t`` px of the lesion = inside the lesion dilated by a Euclidean disk of radius ``t`` (scipy's exact
    distance transform): Quantus (no tolerance) on the dilated masks is the registered hit rate with its default
    15 px at 224, i.e. t = 15 * 32 / 224 = 2.14 px at 32 px. Peaks planted 1, 2 and 3 px right of the lesion."""
    from scipy.ndimage import distance_transform_edt

    rng = np.random.default_rng(7)
    n, size = 6, 32
    x = rng.random((n, 1, size, size)).astype(np.float32)
    a = (0.5 * rng.random((n, 1, size, size))).astype(np.float32)
    s = np.zeros((n, 1, size, size), dtype=bool)
    for i in range(n):
        s[i, 0, 10:16, 8 + i : 14 + i] = True
        a[i, 0, 12, 13 + i + 1 + i % 3] = 1.0  # distance 1, 2 or 3 from the lesion's right edge
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(2 * size * size, 3)).eval()
    y = np.arange(n) % 3
    tol = 15 * size / 224
    dilated = np.stack([distance_transform_edt(~m) <= tol for m in s[:, 0]])[:, None]
    theirs = _quantus(quantus.PointingGame(disable_warnings=True), model, x, y, a, dilated)
    ours = _registered("hit-rate", model, x, y, a, s)
    np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(ours, [1.0, 1.0, 0.0] * 2)  # 1 and 2 px within 2.14 px, 3 px not


def test_relevance_mass_rank_and_attribution_localisation_equal_quantus() -> None:
    """Signed maps (a - 0.2): our relevance mass and rank keep the positive part (Arras et al.'s positive
    relevance), so they equal Quantus on max(a, 0); attribution localisation takes |a| as Quantus does itself."""
    model, x, y, a, s = _data(1)
    signed = a - 0.2
    positive = np.maximum(signed, 0)
    pairs = [
        ("relevance-mass", positive, quantus.RelevanceMassAccuracy(disable_warnings=True)),
        ("relevance-rank", positive, quantus.RelevanceRankAccuracy(disable_warnings=True)),
        # AttributionLocalisation: abs + normalise, inside/total ratio (Quantus adds 1e-9 to the denominator)
        ("attribution-localisation", signed, quantus.AttributionLocalisation(disable_warnings=True)),
    ]
    for name, given, metric in pairs:
        ours = _registered(name, model, x, y, signed, s)
        theirs = _quantus(metric, model, x, y, given, s)
        np.testing.assert_allclose(ours, theirs, atol=1e-5, err_msg=name)


def test_deletion_curve_equals_quantus_pixel_flipping() -> None:
    """Our curve's points 1..steps are Quantus's curve when it flips P/steps pixels per step to 0.

    (Quantus's "black" baseline is the sample's minimum, not 0; the value 0.0 is RISE's deletion.)"""
    model, x, y, a, _ = _data(2)
    xt = torch.from_numpy(x)
    theirs = _quantus(quantus.PixelFlipping(features_in_step=5, perturb_baseline=0.0, disable_warnings=True),
                      model, x, y, a)
    p_x = torch.softmax(model(xt), 1).detach().numpy()[np.arange(N), y]
    curve = np.concatenate([p_x[:, None], theirs], axis=1)  # RISE's curve starts at the unperturbed input
    ours = _registered("deletion-auc", model, x, y, a, steps=20)
    np.testing.assert_allclose(ours, np.trapezoid(curve, np.linspace(0, 1, 21), axis=1), atol=1e-5)


def test_sparseness_and_entropy_equal_quantus() -> None:
    model, x, y, a, _ = _data(3)
    np.testing.assert_allclose(_registered("sparseness", model, x, y, a),
                               _quantus(quantus.Sparseness(disable_warnings=True), model, x, y, a), atol=1e-5)
    np.testing.assert_allclose(_registered("entropy", model, x, y, a),
                               _quantus(quantus.Complexity(disable_warnings=True), model, x, y, a), atol=1e-5)


def test_quantus_pointing_game_counts_an_empty_mask_as_a_hit_ours_gives_nan() -> None:
    """Quantus 0.6 writes NaN into a *boolean* array, which stores True: empty masks become hits."""
    model, x, y, a, s = _data(4)
    s[0] = False
    a[0, 0, 0, 0] = 2.0  # the peak is nowhere near any lesion: there is none
    theirs = _quantus(quantus.PointingGame(disable_warnings=True), model, x, y, a, s)
    ours = oracles.pointing_game(a[:, 0], kernels.distance_to_mask(s[:, 0]), 0.0)
    assert theirs[0] == 1.0 and np.isnan(ours[0])


def test_quantus_pointing_game_counts_any_tied_peak_in_the_mask_ours_the_fraction() -> None:
    """A constant map: Quantus scores a hit for every non-empty mask (1.0); ours scores chance (the area)."""
    model, x, y, a, s = _data(5)
    a[:-1] = 0.5  # constant maps; Quantus refuses a batch in which *every* map is constant, so one is not
    theirs = _quantus(quantus.PointingGame(disable_warnings=True), model, x, y, a, s)[:-1]
    ours = oracles.pointing_game(a[:, 0], kernels.distance_to_mask(s[:, 0]), 0.0)[:-1]
    np.testing.assert_array_equal(theirs, 1.0)
    np.testing.assert_allclose(ours, s[:-1].reshape(N - 1, -1).mean(1))


def test_quantus_road_crashes_on_rgb_input() -> None:
    """Quantus 0.6's ROAD indexes flattened C*H*W features into an H*W pixel grid: IndexError on RGB. (On one
    channel it reports the batch's accuracy per percentage, not per-sample probabilities, so it is no per-sample
    peer: ROAD is cross-checked with pytorch-grad-cam, noise included, in test_peers_gradcam.py.)"""
    model, x, y, a, _ = _data(6, channels=3)
    with pytest.raises(IndexError):
        _quantus(quantus.ROAD(noise=0.0, percentages=[10, 50, 90], disable_warnings=True), model, x, y, a)

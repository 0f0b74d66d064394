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

from xaibench import kernels
from xaibench.curves import perturbation_curve
from xaibench.engine import Engine
from xaibench.specs import MetricContext

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


def test_pointing_game_equals_quantus_on_tie_free_maps_without_tolerance() -> None:
    model, x, y, a, s = _data()
    for i in range(0, N, 2):  # plant the peak inside the lesion in half of the samples
        a[i, 0][s[i, 0]] += 1.0
    ours = oracles.pointing_game(a[:, 0], kernels.distance_to_mask(s[:, 0]), 0.0)
    theirs = _quantus(quantus.PointingGame(disable_warnings=True), model, x, y, a, s)
    np.testing.assert_array_equal(ours, theirs)
    assert 0 < ours.sum() < N  # the check covers hits and misses


def test_relevance_mass_rank_and_attribution_localisation_equal_quantus() -> None:
    model, x, y, a, s = _data(1)
    pairs = [
        (oracles.relevance_mass(a[:, 0], s[:, 0]), quantus.RelevanceMassAccuracy(disable_warnings=True)),
        (oracles.rank_accuracy(a[:, 0], s[:, 0]), quantus.RelevanceRankAccuracy(disable_warnings=True)),
        # AttributionLocalisation: abs + normalise, inside/total ratio (Quantus adds 1e-9 to the denominator)
        (oracles.relevance_mass(np.abs(a[:, 0] - 0.5), s[:, 0]), quantus.AttributionLocalisation(disable_warnings=True)),
    ]
    for i, (ours, metric) in enumerate(pairs):
        theirs = _quantus(metric, model, x, y, a - 0.5 if i == 2 else a, s)
        np.testing.assert_allclose(ours, theirs, atol=1e-5, err_msg=type(metric).__name__)


def test_deletion_curve_equals_quantus_pixel_flipping() -> None:
    """Our curve's points 1..steps are Quantus's curve when it flips P/steps pixels per step to 0.

    (Quantus's "black" baseline is the sample's minimum, not 0; the value 0.0 is RISE's deletion.)"""
    model, x, y, a, _ = _data(2)
    xt, target = torch.from_numpy(x), torch.from_numpy(y)
    ours = perturbation_curve(Engine(model, "cpu", batch_size=16), xt, target, torch.from_numpy(a[:, 0]), "deletion", torch.zeros_like(xt), 20)
    theirs = _quantus(quantus.PixelFlipping(features_in_step=5, perturb_baseline=0.0, disable_warnings=True),
                      model, x, y, a)
    np.testing.assert_allclose(ours[:, 1:], theirs, atol=1e-5)
    np.testing.assert_allclose(ours[:, 0], torch.softmax(model(xt), 1).detach().numpy()[np.arange(N), y], atol=1e-6)


def test_sparseness_and_entropy_equal_quantus() -> None:
    from xaibench_metrics.complexity import entropy, sparseness

    model, x, y, a, _ = _data(3)
    sal = torch.from_numpy(a[:, 0])
    np.testing.assert_allclose(sparseness(sal),
                               _quantus(quantus.Sparseness(disable_warnings=True), model, x, y, a), atol=1e-5)
    np.testing.assert_allclose(entropy(sal),
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


def test_quantus_road_crashes_on_rgb_input_ours_imputes_per_pixel() -> None:
    """Quantus 0.6's ROAD indexes flattened C*H*W features into an H*W pixel grid: IndexError on RGB."""
    model, x, y, a, _ = _data(6, channels=3)
    with pytest.raises(IndexError):
        _quantus(quantus.ROAD(noise=0.0, percentages=[10, 50, 90], disable_warnings=True), model, x, y, a)
    from xaibench_metrics.road import road

    xt = torch.from_numpy(x)
    engine = Engine(model, "cpu", batch_size=16)
    ctx = MetricContext(engine=engine, base_logits=engine.logits(xt), seed=0)
    got = road(xt, torch.from_numpy(y), torch.from_numpy(a[:, 0]), ctx.engine, ctx.seed, fractions=(0.1, 0.5, 0.9))
    assert np.isfinite(got).all()

"""Benchmark 3: mask scoring of 256 maps of 224x224: our kernels vs. Quantus and vs. numpy.

The same inputs go through Quantus's PointingGame, RelevanceMassAccuracy,
RelevanceRankAccuracy and TopKIntersection, through our fused kernel (one call gives
all four, as the runner uses it) and through our numpy references; values are checked
equal. Every side is warmed first and timed on all 256 maps (an earlier version timed
Quantus once, cold, on 16 maps and scaled the time up), and a counting wrapper checks
that no side makes a forward pass (none of these scores needs the model). Quantus's
256-map run takes a minute, so it is timed once. Targets: at least 1000x Quantus and
2x numpy.
"""
from __future__ import annotations

import warnings

import numpy as np
import oracles
import pytest
from conftest import CountingModel, median_time, report
from torch import nn

from xaibench.scoring import kernels

quantus = pytest.importorskip("quantus", reason="quantus (test extra) is not installed")
N, SIDE, K = 256, 224, 1000


@pytest.fixture(scope="module")
def maps_and_masks() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    sal = rng.random((N, SIDE, SIDE), dtype=np.float32)
    masks = np.zeros((N, SIDE, SIDE), dtype=bool)
    for i in range(N):
        r, c = rng.integers(0, SIDE - 60, 2)
        h, w = rng.integers(10, 60, 2)
        masks[i, r : r + h, c : c + w] = True
    return sal, masks


def _ours(sal: np.ndarray, masks: np.ndarray) -> list[np.ndarray]:
    scores = kernels.mask_scores(sal, masks, (K / (SIDE * SIDE),))  # pointing game at tolerance 0, as Quantus's
    return [scores.pointing, scores.mass, scores.rank, scores.top_k[K / (SIDE * SIDE)]["coverage"]]


def _numpy(sal: np.ndarray, masks: np.ndarray) -> list[np.ndarray]:
    # tolerance 0: pointing_game_ref only asks "distance 0?", i.e. in the mask (inf marks an empty mask)
    dist = np.where(masks, 0.0, np.where(masks.any(axis=(1, 2), keepdims=True), 1.0, np.inf))
    return [oracles.pointing_game_ref(sal, dist, 0.0), oracles.relevance_mass_ref(sal, masks),
            oracles.rank_accuracy_ref(sal, masks), oracles.overlap_top_k_ref(sal, masks, K / (SIDE * SIDE))["coverage"]]


def test_mask_kernels_vs_quantus_and_numpy(benchmark, maps_and_masks) -> None:  # type: ignore[no-untyped-def]
    warnings.filterwarnings("ignore")
    sal, masks = maps_and_masks
    model = CountingModel(nn.Sequential(nn.Flatten(), nn.Linear(SIDE * SIDE, 2)).eval())
    x = np.zeros((N, 1, SIDE, SIDE), np.float32)
    y = np.zeros(N, dtype=int)
    q_metrics = [quantus.PointingGame(disable_warnings=True), quantus.RelevanceMassAccuracy(disable_warnings=True),
                 quantus.RelevanceRankAccuracy(disable_warnings=True),
                 quantus.TopKIntersection(k=K, disable_warnings=True)]

    def theirs(n: int = N) -> list[np.ndarray]:
        return [np.asarray(m(model=model, x_batch=x[:n], y_batch=y[:n], a_batch=sal[:n, None],
                             s_batch=masks[:n, None], device="cpu"), dtype=np.float64) for m in q_metrics]

    passes = (model.count(lambda: theirs(4)), model.count(lambda: _ours(sal[:4], masks[:4])))  # warm-up (compile)
    assert passes == (0, 0), f"mask scores make no forward pass; Quantus made {passes[0]}, ours {passes[1]}"
    _numpy(sal[:4], masks[:4])
    q: list[np.ndarray] = []
    t_quantus = median_time(lambda: q.extend(theirs()), 1)
    t_numpy = median_time(lambda: _numpy(sal, masks), 3)
    benchmark.pedantic(_ours, args=(sal, masks), rounds=9, iterations=1)
    t_ours = benchmark.stats.stats.median
    ours, ref = _ours(sal, masks), _numpy(sal, masks)
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a, b, atol=1e-6)
    for a, b in zip(ours[:3], q[:3]):
        np.testing.assert_allclose(a, b, atol=1e-5)
    # TopKIntersection is |top-k ∩ mask| / k in Quantus; ours is coverage of the mask, so compare counts
    np.testing.assert_allclose(ours[3] * masks.reshape(N, -1).sum(1) / K, q[3], atol=1e-5)
    report("mask scoring, 256 maps 224x224", "Quantus time / ours", t_quantus / t_ours, ">= 1000")
    report("mask scoring, 256 maps 224x224", "numpy reference / ours", t_numpy / t_ours, ">= 2")

"""Leaderboard statistics: bootstrap CIs, paired tests, Holm, tie-aware ranks, metric agreement."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import kendalltau, wilcoxon

from xaibench.scoring import stats


def test_summarize_ignores_nan_and_is_seeded() -> None:
    v = np.array([1.0, 2.0, np.nan, 3.0, 4.0])
    ids = list("abcde")
    mean, low, high, n = stats.summarize(v, seed=3, ids=ids)
    assert (mean, n) == (2.5, 4) and 1.0 <= low < mean < high <= 4.0
    assert stats.summarize(v, seed=3, ids=ids) == (mean, low, high, n)
    assert stats.summarize(np.array([np.nan]), 0, ["a"])[3] == 0


def test_paired_pvalue_is_wilcoxon_over_shared_finite_samples() -> None:
    a = np.arange(10.0)
    assert stats.paired_pvalue(a, a) == 1.0  # no difference at all
    # ten distinct positive differences: the exact two-sided p is 2 / 2**10
    assert stats.paired_pvalue(a + np.arange(1, 11), a) == pytest.approx(2 / 1024)
    b = a + np.linspace(-1, 2, 10) + 0.05
    with_nan = np.concatenate([a, [np.nan, 5.0]]), np.concatenate([b, [1.0, np.nan]])
    assert stats.paired_pvalue(*with_nan) == pytest.approx(wilcoxon(a - b, method="exact").pvalue)
    # binary scores tie every |difference|: zeros dropped, tie-corrected normal approximation
    hits, misses = np.r_[np.ones(9), 0.0, 1.0], np.r_[np.zeros(9), 0.0, 1.0]
    assert stats.paired_pvalue(hits, misses) == pytest.approx(wilcoxon(np.ones(9), method="asymptotic").pvalue)
    with pytest.raises(ValueError, match="equal shapes"):
        stats.paired_pvalue(a, a[:3])


def test_holm_matches_the_step_down_definition_and_statsmodels() -> None:
    # sorted p: 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> monotone: 0.03, 0.06, 0.06
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([0.5, 0.9]) == [1.0, 1.0]
    assert stats.holm([]) == []
    from statsmodels.stats.multitest import multipletests

    p = np.random.default_rng(0).random(15) ** 3
    p[[3, 7]] = p[5]  # ties
    assert stats.holm(p) == pytest.approx(multipletests(p, method="holm")[1].tolist(), abs=1e-12)


def test_significance_ranks_tie_indistinguishable_methods() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(size=30)
    best = base + 2.0
    twin_a = base + rng.normal(scale=0.01, size=30)
    twin_b = base + rng.normal(scale=0.01, size=30)
    ranks = stats.significance_ranks([twin_a, best, twin_b, None], higher_is_better=True)
    assert ranks == [2, 1, 2, None]
    # lower is better: the shifted method is now significantly worse than both twins
    assert stats.significance_ranks([twin_a, best, twin_b], higher_is_better=False) == [1, 3, 1]


def test_significance_ranks_cannot_separate_five_samples() -> None:
    # the smallest two-sided Wilcoxon p with n = 5 is 2/32 > 0.05: everyone shares rank 1
    a = np.arange(5.0)
    assert stats.significance_ranks([2 * a + 10, a], True) == [1, 1]  # distinct differences 10..14: exact p


def test_competition_ranks() -> None:
    assert stats.competition_ranks([0.5, 0.9, 0.5, None], True) == [2, 1, 2, None]
    assert stats.competition_ranks([3.0, 1.0, 1.0, float("nan")], False) == [3, 1, 1, None]


def test_agreement_is_direction_aware_kendall_tau() -> None:
    up = [0.1, 0.2, 0.3, 0.4]
    down = [4.0, 3.0, 2.0, 1.0]
    tau = stats.agreement([up, down, up], [True, False, False])
    # up (higher better) and down (lower better) order the methods the same way
    assert tau[0, 1] == pytest.approx(1.0) and tau[0, 2] == pytest.approx(-1.0)
    assert np.allclose(np.diag(tau), 1.0) and np.allclose(tau, tau.T)
    mixed = [0.3, 0.1, 0.2, 0.2]
    assert stats.agreement([up, mixed], [True, True])[0, 1] == pytest.approx(kendalltau(up, mixed).statistic)


def test_agreement_undefined_for_too_few_methods_or_constant_metric() -> None:
    tau = stats.agreement([[0.1, 0.2, None], [1.0, 2.0, 3.0], [5.0, 5.0, 5.0]], [True, True, True])
    assert math.isnan(tau[0, 1])  # only 2 methods have both
    assert math.isnan(tau[1, 2]) and math.isnan(tau[2, 2])  # a metric that ties every method
    assert tau[1, 1] == 1.0

"""Leaderboard statistics pinned to independent values (the mutants of ``xaibench/scoring/stats.py``, docs/mutation.md)."""
from __future__ import annotations

import hashlib
import warnings

import numpy as np
import pytest
from scipy.stats import bootstrap

from xaibench.scoring import stats


def test_seed_from_is_sha256_of_the_parts_joined_by_colons() -> None:
    # the docstring's definition, from hashlib on the literal joined text; and a pinned value (seeds are reproducibility)
    assert stats.seed_from("a", 1, 2.5) == int.from_bytes(hashlib.sha256(b"a:1:2.5").digest()[:4], "little")
    assert stats.seed_from("busi", "cam") == int.from_bytes(hashlib.sha256(b"busi:cam").digest()[:4], "little")
    assert stats.seed_from("x") == 1108767021  # pinned: a change of seeds changes every published draw
    assert 0 <= stats.seed_from("y", 3) < 2**32


def _ids(n: int) -> list[str]:
    """``n`` ids whose sorted order is their given order."""
    return [f"s{i:03d}" for i in range(n)]


@pytest.mark.parametrize("seed", [0, 3, 11])
def test_bootstrap_ci_equals_scipys_percentile_bootstrap(seed: int) -> None:
    """scipy.stats.bootstrap (percentile, 2000 resamples, the same generator) draws the same resamples, over the
    samples in the order of their ids (here the given order)."""
    v = np.array([1.0, 2.0, 3.5, 4.0, 7.0, 0.5, 2.2, np.nan])
    mean, low, high, n = stats.summarize(v, seed, _ids(8))
    peer = bootstrap((v[:-1],), np.mean, confidence_level=0.95, n_resamples=2000, method="percentile",
                     random_state=np.random.default_rng(seed), vectorized=True).confidence_interval
    assert (mean, n) == (pytest.approx(20.2 / 7), 7)
    assert (low, high) == (pytest.approx(peer.low, abs=1e-12), pytest.approx(peer.high, abs=1e-12))
    w = np.random.default_rng(seed).random(30)  # continuous values: every resample count moves the percentiles
    peer = bootstrap((w,), np.mean, confidence_level=0.95, n_resamples=2000, method="percentile",
                     random_state=np.random.default_rng(seed), vectorized=True).confidence_interval
    assert stats.summarize(w, seed, _ids(30))[1:3] == (pytest.approx(peer.low, abs=1e-12),
                                                       pytest.approx(peer.high, abs=1e-12))


def test_summarize_of_no_or_one_value_is_defined_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "mean of empty slice" on an all-NaN cell
        nan = stats.summarize(np.array([np.nan, np.nan]), 0, _ids(2))
        assert np.isnan(nan[:3]).all() and nan[3] == 0
    assert stats.summarize(np.array([np.nan, 4.0]), 0, _ids(2)) == (4.0, 4.0, 4.0, 1)
    two = stats.summarize(np.array([1.0, 3.0]), 0, _ids(2))  # resamples of two values: means 1, 2 or 3
    assert two[0] == 2.0 and two[3] == 2 and two[1] == 1.0 and two[2] == 3.0


def test_the_bootstrap_resamples_the_samples_sorted_by_id_whatever_order_they_came_in() -> None:
    """Permuting values and ids together changes neither the mean nor the interval (bit for bit); the interval is
    scipy's percentile bootstrap of the values put in id order; ids that do not name one value each are refused."""
    rng = np.random.default_rng(5)
    v = np.where(rng.random(40) < 0.2, np.nan, rng.random(40))
    ids = [f"sample-{k}" for k in rng.permutation(40)]  # not sorted: "sample-10" < "sample-2"
    order = sorted(range(40), key=ids.__getitem__)
    canonical = v[order]
    peer = bootstrap((canonical[np.isfinite(canonical)],), np.mean, confidence_level=0.95, n_resamples=2000,
                     method="percentile", random_state=np.random.default_rng(7), vectorized=True).confidence_interval
    got = stats.summarize(v, 7, ids)
    assert got[1:3] == (pytest.approx(peer.low, abs=1e-12), pytest.approx(peer.high, abs=1e-12))
    for perm in (rng.permutation(40), np.arange(40)[::-1]):
        assert stats.summarize(v[perm], 7, [ids[k] for k in perm]) == got
    with pytest.raises(ValueError, match="^summarize needs one unique id per value, got 1 unique ids for 2 values$"):
        stats.summarize(np.zeros(2), 0, ["a", "a"])
    with pytest.raises(ValueError, match="^summarize needs one unique id per value, got 1 unique ids for 2 values$"):
        stats.summarize(np.zeros(2), 0, ["a"])


def test_paired_pvalue_refuses_unequal_shapes_by_name() -> None:
    with pytest.raises(ValueError, match="^paired scores need equal shapes, got \\(3,\\) and \\(2,\\)$"):
        stats.paired_pvalue(np.zeros(3), np.zeros(2))


def test_a_pair_differs_only_below_alpha() -> None:
    a = np.arange(10.0)
    b = a + np.arange(1, 11)  # ten distinct positive differences: exact two-sided p = 2 / 1024 (by hand)
    assert stats.significance_ranks([a, b], True, alpha=2 / 1024) == [1, 1]  # p = alpha: not below it
    assert stats.significance_ranks([a, b], True, alpha=2 / 1024 + 1e-9) == [2, 1]
    assert stats.significance_ranks([a, b], False, alpha=2 / 1024 + 1e-9) == [1, 2]


def test_a_significant_pair_with_equal_means_beats_neither() -> None:
    """Twenty differences of +1 and one of -20: the signed-rank test is significant (W- = 21 of 231), the
    means are exactly equal, so neither method is the better one and both keep rank 1."""
    a = np.arange(21.0)
    b = a - np.array([1.0] * 20 + [-20.0])
    assert a.mean() == b.mean() and stats.paired_pvalue(a, b) < 0.05
    assert stats.significance_ranks([a, b], True) == [1, 1]
    assert stats.significance_ranks([a, b], False) == [1, 1]
    assert stats.significance_ranks([b, a], True) == [1, 1]


def test_the_better_of_a_significant_pair_is_the_higher_mean_over_shared_samples() -> None:
    rng = np.random.default_rng(0)
    b = rng.random(20)
    a = b + 0.5 + 0.01 * np.arange(20)  # every difference positive, the means 0.6 apart (less than 1)
    assert stats.significance_ranks([a, b], True) == [1, 2]
    assert stats.significance_ranks([a, b], False) == [2, 1]
    # a NaN in one method's scores leaves that sample out of the comparison, not the whole mean
    a_nan, b_other = np.append(a, np.nan), np.append(b, 5.0)
    assert stats.significance_ranks([a_nan, b_other], True) == [1, 2]
    assert stats.significance_ranks([b_other, a_nan], True) == [2, 1]


def test_a_paired_difference_is_a_tie_up_to_1e_9_of_the_larger_magnitude_but_at_least_1e_9() -> None:
    """``TIE_RTOL * max(1, |a|, |b|)`` at its edges, by hand: on scores below 1 the tolerance is 1e-9, so a
    difference of 1.5e-9 on every sample is a difference and one of exactly 1e-9 is within it (a tie); on
    scores of 1e3 it is 1e-6, so 1.5e-6 is a difference and 0.5e-6 is not."""
    half = np.full(12, 0.5)
    assert stats.TIE_RTOL == 1e-9
    assert stats.paired_pvalue(half + 1.5e-9, half) < 0.01
    assert stats.paired_pvalue(np.full(12, 1e-9), np.zeros(12)) == 1.0  # |diff| = 1e-9 * 1 exactly: within
    big = np.full(12, 1e3) + np.arange(12)
    assert stats.paired_pvalue(big + 1.5e-6, big) < 0.01
    assert stats.paired_pvalue(big + 0.5e-6, big) == 1.0


def test_paired_pvalue_leaves_out_infinite_and_nan_samples_without_warnings() -> None:
    """Samples with an infinite or NaN score on either side are not compared (``inf - inf`` is not computed):
    the p-value is the exact Wilcoxon p of the finite pairs, here six distinct positive differences, 2 / 2**6."""
    a = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, np.inf, np.nan, np.inf, -np.inf])
    b = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, np.inf, 1.0, 2.0, -np.inf])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert stats.paired_pvalue(a, b) == pytest.approx(2 / 64)


def test_agreement_compares_two_metrics_over_the_methods_scored_by_both() -> None:
    """A method without a score on one metric leaves only that method out: tau over the other four methods,
    by hand 2 concordant and 4 discordant pairs of 6 (no ties), tau = (2 - 4) / 6."""
    full = [1.0, 2.0, 3.0, 4.0, 5.0]
    partial = [None, 1.0, 3.0, 2.0, 0.5]  # methods 1..4: (2, 1), (3, 3), (4, 2), (5, 0.5)
    tau = stats.agreement([full, partial], [True, True])
    # pairs over methods 1..4: (1,2) +, (1,3) +, (1,4) -, (2,3) -, (2,4) -, (3,4) -: 2 concordant, 4 discordant
    assert tau[0, 1] == pytest.approx((2 - 4) / 6) and tau[1, 0] == tau[0, 1]
    assert tau[1, 1] == 1.0

"""Ties that are ties: float64 rounding never decides a rank (the mprt-spearman case of issue 15)."""
from __future__ import annotations

import numpy as np

from xaibench.scoring.stats import paired_pvalue, significance_ranks


def test_differences_of_rounding_are_ties_and_real_differences_are_not() -> None:
    """42 samples: nine values 0.9999999999999998 (one ulp below 1) against 1.0 everywhere is no difference
    (p = 1, shared rank); a method lower by 1e-3 on every sample is beaten (Wilcoxon p < 1e-9)."""
    ones = np.ones(42)
    rounded = ones.copy()
    rounded[::5][:9] = 0.9999999999999998
    assert paired_pvalue(ones, rounded) == 1.0
    lower = ones - 1e-3
    assert paired_pvalue(ones, lower) < 1e-9
    assert significance_ranks([ones, rounded, lower], higher_is_better=True) == [1, 1, 3]
    assert significance_ranks([ones, rounded, lower], higher_is_better=False) == [2, 2, 1]


def test_a_tiny_difference_on_large_scores_is_a_tie_but_on_small_scores_it_is_not() -> None:
    """The tolerance is relative to the scores' magnitude (at least 1): 1e-7 on scores of 1e3 is rounding
    (below 1e-9 * 1e3 = 1e-6), 1e-7 on scores of 0.5 is a difference (above 1e-9)."""
    big = np.full(12, 1e3) + np.arange(12)
    assert paired_pvalue(big, big + 1e-7) == 1.0
    small = np.full(12, 0.5)
    assert paired_pvalue(small, small + 1e-7) < 0.01


def test_one_number_format_per_column() -> None:
    """The issue's cell ``689.3 [392.6, 1.04e+03]`` mixed formats; a column now takes its largest value's."""
    from xaibench.leaderboard.markdown import column_format

    big = column_format([689.3, 392.6, 1040.0, None, float("nan")])
    assert [big(v) for v in (689.3, 392.6, 1040.0)] == ["6.89e+02", "3.93e+02", "1.04e+03"]
    assert big(None) == big(float("nan")) == "–"
    mid = column_format([12.25, 0.5])
    assert [mid(12.25), mid(0.5)] == ["12.2", "0.5"]
    small = column_format([0.12345, -0.5])
    assert [small(0.12345), small(-0.5)] == ["0.123", "-0.500"]

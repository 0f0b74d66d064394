"""Which metrics to trust and which method wins: meta-evaluation and aggregate ranking, as pure functions.

Inputs are per-sample score matrices ``Q`` of shape ``(L, N)``: L methods (rows)
by N samples (columns) of one metric on one dataset x model, NaN where a sample is
undefined; ``higher_is_better`` is the metric's direction. Nothing here reads the
store or knows a metric by name: the leaderboard feeds the matrices in.

Reliability of a metric (Tomsett, Harborne, Chakraborty, Gurram and Preece, "Sanity
Checks for Saliency Metrics", AAAI 2020, Sec. 4):

- :func:`inter_rater_alpha`: samples as raters that rank the methods; Krippendorff's
  alpha (ordinal; the ``krippendorff`` package) of those rankings. 1: every sample
  ranks the methods alike; 0: no more agreement than chance.
- :func:`internal_consistency`: the mean pairwise Spearman correlation between the
  metrics of one family over all (method, sample) scores, each oriented so that
  higher is better: do metrics that claim to measure one property agree?

Discriminative power: :func:`share_at_bounds` (the share of finite per-sample
scores exactly at the metric's bounds: a metric that saturates cannot separate
methods) and :func:`share_tied` (the share of samples on which every method gets
the same score).

Meta-consistency (Hedström, Bommer, Wickstrøm, Samek, Lapuschkin and Höhne, "The
Meta-Evaluation Problem in Explainable AI: Identifying Reliable Estimators with
MetaQuantus", TMLR 2023, Sec. 4): :func:`meta_consistency` from the scores under K
minor perturbations (of the model or the inputs: the metric should stay put, noise
resilience NR) and K disruptive ones (the metric should react, adversary
reactivity AR).

The perturbations (MetaQuantus's test suite, Sec. 5): the *model* test multiplies every
parameter by noise drawn from N(1, std^2), std :data:`PERTURBATIONS` ``["model"]`` (0.001
minor, 2.0 disruptive); the *input* test adds N(0, std^2) noise to every input value
(0.001 minor, 5.0 disruptive, in the input's units: the inputs of the built-in data
lie in [0, 1]). The runner re-explains and re-scores every cell under K draws of each
(:mod:`xaibench.running.metarun`, the suite's ``meta_evaluation: K``) and stores the per-sample
scores under :func:`perturbed_key`.

Aggregate ranking (LATEC, Klein et al. 2024; Demšar, JMLR 2006): :func:`mean_ranks`,
:func:`friedman_posthoc` (Friedman test, then pairwise Wilcoxon signed-rank tests
with Holm's correction, scikit-posthocs), :func:`critical_difference_diagram`
(scikit-posthocs) and :func:`baseline_findings` (where a calibration baseline beats
every method: reported as a finding, never as a winner).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import krippendorff
import numpy as np
import pandas as pd
import scikit_posthocs
import scipy.stats


#: Standard deviation of the noise of each MetaQuantus test and kind (Hedström et al. 2023, Sec. 5 and their code).
PERTURBATIONS = {"model": {"minor": 0.001, "disruptive": 2.0}, "input": {"minor": 0.001, "disruptive": 5.0}}


def perturbed_key(cell_key: str, test: str, kind: str, draw: int) -> str:
    """The store key of cell ``cell_key``'s scores re-computed under draw ``draw`` of perturbation ``test`` x ``kind``."""
    return f"{cell_key}~meta-{test}-{kind}-{draw}"


def _oriented(q: np.ndarray, higher_is_better: bool) -> np.ndarray:
    q = np.asarray(q, dtype=np.float64)
    return q if higher_is_better else -q


def _matrix(q: Any) -> np.ndarray:
    q = np.asarray(q, dtype=np.float64)
    if q.ndim != 2:
        raise ValueError(f"scores must be (methods, samples), got shape {q.shape}")
    return q


def share_at_bounds(values: Sequence[float], low: float | None, high: float | None) -> float:
    """Share of the finite ``values`` exactly equal to ``low`` or ``high`` (a bound of None is never hit).

    NaN when no value is finite. Example: DiC in [0, 100] that is 0 or 100 on most samples
    cannot tell methods apart.
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan")
    hit = np.zeros(v.shape, dtype=bool)
    for bound in (low, high):
        if bound is not None:
            hit |= v == bound
    return float(hit.mean())


def share_tied(q: Any) -> float:
    """Share of samples (columns of ``q`` ``(L, N)``, all finite) on which every method scores the same; NaN if none."""
    q = _matrix(q)
    cols = q[:, np.isfinite(q).all(0)]
    if cols.shape[1] == 0:
        return float("nan")
    return float((np.ptp(cols, axis=0) == 0).mean())


def inter_rater_alpha(q: Any, higher_is_better: bool) -> float:
    """Krippendorff's ordinal alpha of the methods' ranks given by each sample (Tomsett et al. 2020).

    ``q`` ``(L, N)``; each sample (rater) ranks the L methods (1 = best, ties averaged);
    samples with a NaN score are left out. NaN when fewer than two samples remain or
    every sample gives every method the same rank (no variation to agree on).
    """
    q = _oriented(_matrix(q), higher_is_better)
    cols = q[:, np.isfinite(q).all(0)]
    if cols.shape[1] < 2:
        return float("nan")
    ranks = scipy.stats.rankdata(-cols, axis=0)  # (L, N): rank 1 = best
    if np.ptp(ranks) == 0:
        return float("nan")
    return float(krippendorff.alpha(reliability_data=ranks.T, level_of_measurement="ordinal"))


def internal_consistency(scores: Mapping[str, Any], higher_is_better: Mapping[str, bool]) -> float:
    """Mean pairwise Spearman correlation between the metrics of one family (Tomsett et al. 2020).

    ``scores`` maps each metric to its ``(L, N)`` matrix over the same methods and samples;
    pairs are compared on the (method, sample) cells finite in both; a pair whose matrices differ in shape
    (a metric scored on no sample, or on other samples) is not compared. NaN with fewer than two metrics.
    """
    names = list(scores)
    flat = {m: _oriented(_matrix(scores[m]), higher_is_better[m]).ravel() for m in names}
    correlations = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if flat[a].shape != flat[b].shape:
                continue
            ok = np.isfinite(flat[a]) & np.isfinite(flat[b])
            if ok.sum() >= 3 and np.ptp(flat[a][ok]) > 0 and np.ptp(flat[b][ok]) > 0:
                correlations.append(scipy.stats.spearmanr(flat[a][ok], flat[b][ok]).statistic)
    return float(np.mean(correlations)) if correlations else float("nan")


@dataclass(frozen=True)
class MetaConsistency:
    """MetaQuantus's four criteria (each in [0, 1], higher is better) and their mean, the MC score."""

    iac_nr: float
    iac_ar: float
    iec_nr: float
    iec_ar: float

    @property
    def mc(self) -> float:
        """The meta-consistency score: the mean of the four criteria (Hedström et al. 2023, Eq. 9)."""
        return float(np.mean([self.iac_nr, self.iac_ar, self.iec_nr, self.iec_ar]))


def _p_same(q: np.ndarray, q_hat: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired scores; 1 where nothing changed."""
    if np.array_equal(q, q_hat):
        return 1.0
    return float(scipy.stats.wilcoxon(q, q_hat, zero_method="zsplit").pvalue)


def meta_consistency(q: Any, minor: Any, disruptive: Any, higher_is_better: bool) -> MetaConsistency:
    """MetaQuantus (Hedström et al. 2023, Sec. 4) from unperturbed and perturbed scores.

    ``q`` ``(L, N)``; ``minor`` and ``disruptive`` ``(K, L, N)``: the same metric after K
    minor and K disruptive perturbations (samples whose prediction the perturbation
    changed should be NaN). Per method and perturbation, the Wilcoxon p-value ``p``
    between the paired scores: ``IAC_NR`` = mean p under minor perturbations (the
    scores stay), ``IAC_AR`` = mean (1 - p) under disruptive ones (they move).
    ``IEC_NR`` = share of (sample, rank position) whose method is unchanged under minor
    perturbations; ``IEC_AR`` = share of (method, sample) whose score got worse under
    disruptive ones. Samples with a NaN anywhere are left out.
    Raises :class:`ValueError` on mismatched shapes.
    """
    q = _matrix(q)
    minor, disruptive = (np.asarray(a, dtype=np.float64) for a in (minor, disruptive))
    if minor.ndim != 3 or disruptive.ndim != 3 or minor.shape[1:] != q.shape or disruptive.shape[1:] != q.shape:
        raise ValueError(f"perturbed scores must be (K, {q.shape[0]}, {q.shape[1]}), got {minor.shape} and "
                         f"{disruptive.shape}")
    iac: dict[str, list[float]] = {"nr": [], "ar": []}
    iec: dict[str, list[float]] = {"nr": [], "ar": []}
    for kind, perturbed in (("nr", minor), ("ar", disruptive)):
        for q_hat in perturbed:
            ok = np.isfinite(q).all(0) & np.isfinite(q_hat).all(0)
            a, b = q[:, ok], q_hat[:, ok]
            if a.shape[1] == 0:
                continue
            p = [_p_same(a[m], b[m]) for m in range(a.shape[0])]
            iac[kind].append(float(np.mean(p)) if kind == "nr" else float(np.mean([1 - x for x in p])))
            if kind == "nr":
                iec[kind].append(float((np.argsort(a, axis=0, kind="stable")
                                        == np.argsort(b, axis=0, kind="stable")).mean()))
            else:
                worse = (a > b) if higher_is_better else (a < b)
                iec[kind].append(float(worse.mean()))
    mean = {k: float(np.mean(v)) if v else float("nan") for k, v in (("iac_nr", iac["nr"]), ("iac_ar", iac["ar"]),
                                                                     ("iec_nr", iec["nr"]), ("iec_ar", iec["ar"]))}
    return MetaConsistency(**mean)


def mean_ranks(means: Any, higher_is_better: Sequence[bool]) -> tuple[np.ndarray, np.ndarray]:
    """Per method, the mean and standard deviation of its rank over the metrics (LATEC's aggregate).

    ``means`` ``(L, M)``: the mean score of each method on each of M metrics of a family
    (NaN cells are left out of that metric's ranking). Ranks: 1 = best, ties averaged.
    Returns ``(mean rank (L,), std (L,))``; NaN for a method ranked on no metric.
    """
    means = _matrix(means)
    if len(higher_is_better) != means.shape[1]:
        raise ValueError(f"need one direction per metric: {len(higher_is_better)} for {means.shape[1]} metrics")
    ranks = np.full(means.shape, np.nan)
    for j, hib in enumerate(higher_is_better):
        col = _oriented(means[:, j], hib)
        ok = np.isfinite(col)
        ranks[ok, j] = scipy.stats.rankdata(-col[ok])
    counted = np.isfinite(ranks).sum(1)
    filled = np.where(np.isfinite(ranks), ranks, 0.0)
    mean = np.where(counted > 0, filled.sum(1) / np.maximum(counted, 1), np.nan)
    spread = np.where(np.isfinite(ranks), (ranks - mean[:, None]) ** 2, 0.0).sum(1) / np.maximum(counted, 1)
    return mean, np.where(counted > 0, np.sqrt(spread), np.nan)


@dataclass(frozen=True)
class RankTest:
    """A Friedman test over methods and, where the blocks allow one, its Holm-corrected pairwise Wilcoxon tests."""

    #: Mean rank per method over the blocks (1 = best).
    ranks: pd.Series
    statistic: float
    pvalue: float
    #: Holm-adjusted p-values of the pairwise Wilcoxon signed-rank tests, methods x methods; None when
    #: :func:`posthoc_blocks` says the blocks are too few for any pair to differ (``why_no_posthoc`` says so).
    pairwise: pd.DataFrame | None
    why_no_posthoc: str = ""


def posthoc_blocks(alpha: float) -> int:
    """The fewest blocks over which a two-sided Wilcoxon signed-rank test can reach p < ``alpha``.

    Over n pairs without ties the smallest exact two-sided p-value is 2 / 2^n (every difference of one sign;
    Wilcoxon 1945), so n must exceed log2(2 / alpha): 6 blocks at alpha 0.05. Below that no pair can differ
    before any correction, and a post-hoc test or critical difference diagram would only look like an answer.
    """
    n = 1
    while 2.0 / 2.0 ** n >= alpha:
        n += 1
    return n


def why_no_friedman(blocks: Any, unit: str = "blocks") -> str:
    """Why Friedman's test is not defined on ``blocks`` ``(B, L)`` (its complete blocks: rows without NaN),
    naming the blocks ``unit`` (e.g. "metrics"); "" when it is. It needs at least 3 methods (columns) and 2 complete blocks (Demšar 2006, Sec. 3.2.2), and a
    block that does not tie every method (else its statistic is 0/0)."""
    x = _matrix(blocks)
    x = x[np.isfinite(x).all(1)]
    if x.shape[1] < 3:
        return f"Friedman's test needs at least 3 methods; {x.shape[1]} here"
    if x.shape[0] < 2:
        return f"Friedman's test needs at least 2 {unit} that score every method; {x.shape[0]} here"
    if (np.ptp(x, axis=1) == 0).all():
        return f"every one of the {x.shape[0]} {unit} ties all {x.shape[1]} methods: nothing to rank"
    return ""


def friedman_posthoc(blocks: Any, methods: Sequence[str], higher_is_better: bool = True,
                     alpha: float = 0.05) -> RankTest:
    """Friedman's test of ``blocks`` ``(B, L)`` (B blocks such as metrics or samples, L >= 3 methods), then the
    pairwise Wilcoxon signed-rank tests with Holm's correction (scikit-posthocs) when B >= :func:`posthoc_blocks`.

    Blocks with a NaN are left out. The post-hoc tests get the scores in long form, one row per (block,
    method), with the columns named (``val_col``, ``group_col``), so scikit-posthocs never guesses the layout
    (it did, wrongly, for two blocks); observations pair by block order within each method. Raises
    :class:`ValueError` with fewer than three methods or two complete blocks, or when every block gives every
    method the same score (nothing to rank; Demšar 2006, Sec. 3.2.2).
    """
    x = _oriented(_matrix(blocks), higher_is_better)
    x = x[np.isfinite(x).all(1)]
    why = why_no_friedman(x)
    if why or len(methods) != x.shape[1]:
        raise ValueError(why or f"{len(methods)} names for {x.shape[1]} methods")
    statistic, pvalue = scipy.stats.friedmanchisquare(*x.T)
    ranks = pd.Series(scipy.stats.rankdata(-x, axis=1).mean(0), index=list(methods))
    need = posthoc_blocks(alpha)
    if x.shape[0] < need:
        why = (f"{x.shape[0]} blocks: too few for a post-hoc test (over n blocks no two-sided Wilcoxon p-value is "
               f"below 2/2^n = {2 / 2 ** x.shape[0]:.3g}; {need} blocks reach alpha {alpha})")
        return RankTest(ranks, float(statistic), float(pvalue), None, why)
    long = pd.DataFrame({"score": x.ravel(), "method": np.tile(np.arange(x.shape[1]), x.shape[0])})
    pairwise = scikit_posthocs.posthoc_wilcoxon(long, val_col="score", group_col="method", p_adjust="holm",
                                                zero_method="zsplit", sort=True)
    pairwise.index = pairwise.columns = list(methods)
    return RankTest(ranks, float(statistic), float(pvalue), pairwise)


def critical_difference_diagram(test: RankTest, ax: Any = None, alpha: float = 0.05) -> dict[str, list]:
    """Draws the critical difference diagram of ``test`` (scikit-posthocs) on ``ax``; methods joined by a bar
    do not differ at ``alpha`` after Holm's correction. Returns scikit-posthocs's element dictionary. Raises
    :class:`ValueError` for a test without post-hoc tests (``test.pairwise`` None).

    scikit-posthocs stacks its bars in the order it meets them iterating sets of the methods' labels, and
    string hashes change from one process to the next, so the same test drew its bars at different heights.
    The methods go in as their positions (integers hash alike in every process) and the labels' texts are
    renamed to the methods afterwards: the same test, the same figure.
    """
    if test.pairwise is None:
        raise ValueError(f"no critical difference diagram without a post-hoc test: {test.why_no_posthoc}")
    names = list(test.ranks.index)
    ranks = pd.Series(test.ranks.to_numpy(), index=range(len(names)))
    pairwise = pd.DataFrame(test.pairwise.loc[names, names].to_numpy(), index=ranks.index, columns=ranks.index)
    elements = scikit_posthocs.critical_difference_diagram(ranks, pairwise, ax=ax, alpha=alpha,
                                                           label_fmt_left="{label} ({rank:.2g})",
                                                           label_fmt_right="({rank:.2g}) {label}")
    for text in elements.get("labels", []):
        words = text.get_text().split(" ")  # "k (rank)" left of the axis, "(rank) k" right of it
        k = 0 if words[0].isdigit() else len(words) - 1
        words[k] = names[int(words[k])]
        text.set_text(" ".join(words))
    return elements


def baseline_findings(means: Any, methods: Sequence[str], metrics: Sequence[str], higher_is_better: Sequence[bool],
                      baselines: Sequence[str]) -> list[tuple[str, str]]:
    """``(metric, baseline)`` pairs where a calibration baseline beats every non-baseline method on that metric.

    ``means`` ``(L, M)`` as in :func:`mean_ranks`. A metric on which no method has a
    finite score yields nothing.
    """
    means = _matrix(means)
    is_base = np.array([m in set(baselines) for m in methods])
    out = []
    for j, (metric, hib) in enumerate(zip(metrics, higher_is_better)):
        col = _oriented(means[:, j], hib)
        others = col[~is_base & np.isfinite(col)]
        if others.size == 0:
            continue
        out += [(metric, methods[i]) for i in np.flatnonzero(is_base) if np.isfinite(col[i]) and col[i] > others.max()]
    return out

"""Which metrics to trust on this data: the meta-evaluation table of one leaderboard section (dataset x model).

For every metric of the section, from the per-sample scores of the methods (the
calibration baselines are left out: the question is whether the metric separates
methods), with the functions of :mod:`xaibench.scoring.metaeval`:

- **alpha**: inter-rater agreement, Krippendorff's ordinal alpha of the methods'
  ranks given by each sample (Tomsett et al. 2020, Sec. 4);
- **family**: internal consistency, the mean pairwise Spearman correlation between
  the metrics of the metric's family (category) over (method, sample) scores;
- **at bounds** and **tied**: discriminative power, the share of per-sample scores
  exactly at the metric's declared bounds (``MetricSpec.bounds``) and the share of
  samples on which every method scores the same;
- **NR** and **AR**: MetaQuantus's noise resilience (mean of IAC_NR and IEC_NR) and
  adversary reactivity (mean of IAC_AR and IEC_AR) over the model and input tests
  (Hedström et al. 2023), when the suite re-scored its cells under perturbations
  (``meta_evaluation: K``); "not run" otherwise.

The verdict is ``doubt`` with the reasons when alpha is below :data:`ALPHA_MIN` (or
undefined), more than :data:`SATURATED` of the scores sit at a bound, more than
:data:`SATURATED` of the samples tie every method, or NR or AR is below
:data:`META_MIN`; ``trust`` otherwise. Thresholds are the harness's reading rules,
stated in the table's legend; the numbers are there to judge them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Mapping

import numpy as np
from tabulate import tabulate

from xaibench.scoring import metaeval
from xaibench.leaderboard.board import Block, sample_scores

#: Krippendorff's lowest alpha for tentative conclusions (Krippendorff, Content Analysis, 2004, Sec. 11.3.4).
ALPHA_MIN = 0.667
#: Share of scores at a bound (or of samples tying every method) above which a metric cannot separate methods.
SATURATED = 0.5
#: Noise resilience or adversary reactivity below this: the metric moves under noise or ignores disruption.
META_MIN = 0.5

LEGEND = (
    f"**Reading the meta-evaluation.** Per metric, over the methods' per-sample scores (baselines left out): "
    f"*alpha* is Krippendorff's ordinal alpha of the methods' ranks given by each sample (1: every sample ranks "
    f"the methods alike, 0: chance; Tomsett et al., Sanity Checks for Saliency Metrics, AAAI 2020); *family ρ* the "
    f"mean Spearman correlation between the metrics of its category (internal consistency, same paper); "
    f"*at bounds* the share of scores exactly at the metric's bounds and *tied* the share of samples on which "
    f"every method scores the same (discriminative power); *NR* and *AR* MetaQuantus's noise resilience and "
    f"adversary reactivity in [0, 1] (Hedström et al., TMLR 2023), from re-scoring every cell under minor and "
    f"disruptive perturbations of the model and the inputs (suite option `meta_evaluation: K`). A metric is "
    f"doubted when alpha < {ALPHA_MIN} (Krippendorff's floor for tentative conclusions), more than "
    f"{SATURATED:.0%} of its scores sit at a bound or of its samples tie, or NR or AR < {META_MIN}; it is "
    f"*uninformative here* when the oracle (`ground-truth`) does not separate from chance (`random`) on this model "
    f"(the rule under the ranks), and then ranks nothing."
)


@dataclass(frozen=True)
class MetricTrust:
    """The meta-evaluation of one metric in one section; NaN where a measure is undefined."""

    metric: str
    family: str
    alpha: float
    family_consistency: float
    at_bounds: float
    tied: float
    #: MetaQuantus criteria over the model and input tests, or None when the run did not re-score.
    meta: metaeval.MetaConsistency | None
    #: Why the metric is doubted (empty: trusted).
    reasons: tuple[str, ...]
    #: Why the metric cannot separate the oracle from chance on this model ("" when it can or is not checked;
    #: :mod:`~xaibench.leaderboard.chance`).
    uninformative: str = ""

    @property
    def verdict(self) -> str:
        """``"uninformative here"``, ``"doubt"`` or ``"trust"``."""
        return "uninformative here" if self.uninformative else "doubt" if self.reasons else "trust"

    @property
    def why(self) -> tuple[str, ...]:
        """The reasons behind the verdict: the uninformative one first, then the doubts."""
        return ((self.uninformative,) if self.uninformative else ()) + self.reasons


def _matrix(block: Block, metric: str, keys: Mapping[str, str] | None = None) -> np.ndarray:
    """``(L, S)`` per-sample scores of the section's methods (not baselines) on ``metric`` (NaN rows: no score)."""
    recs = [r.cells.get(metric) for r in block.rows if not r.baseline]
    if keys is not None:  # the same cells' scores under a perturbation, stored under derived keys
        recs = [None if r is None else replace(r, cell_key=keys[r.cell_key]) for r in recs]
    aligned = sample_scores(block.scores_of, recs)
    width = max((len(a) for a in aligned if a is not None), default=0)
    return np.array([np.full(width, np.nan) if a is None or len(a) != width else a for a in aligned]).reshape(
        len(aligned), width)


def _meta(block: Block, metric: str, q: np.ndarray, draws: int) -> metaeval.MetaConsistency | None:
    """MetaQuantus's criteria averaged over the model and input tests; None when nothing was re-scored."""
    cells = [r.cells[metric] for r in block.rows if not r.baseline and metric in block.metrics and metric in r.cells]
    if draws < 1 or not cells:
        return None
    per_test = []
    for test, kinds in metaeval.PERTURBATIONS.items():
        perturbed = {kind: np.stack([_matrix(block, metric, {c.cell_key: metaeval.perturbed_key(
            c.cell_key, test, kind, k) for c in cells}) for k in range(draws)]) for kind in kinds}
        if any(p.shape[1:] != q.shape for p in perturbed.values()):
            return None
        scored = np.isfinite(q).any(1)  # a method without scores (its cells failed) leaves the others comparable
        per_test.append(metaeval.meta_consistency(q[scored], perturbed["minor"][:, scored],
                                                  perturbed["disruptive"][:, scored], block.higher_is_better[metric]))
    return metaeval.MetaConsistency(*(float(np.nanmean([getattr(t, f) for t in per_test])) if any(
        math.isfinite(getattr(t, f)) for t in per_test) else math.nan
        for f in ("iac_nr", "iac_ar", "iec_nr", "iec_ar")))


def noise_resilience(meta: metaeval.MetaConsistency) -> float:
    """NR: the mean of IAC_NR and IEC_NR (both in [0, 1], higher is better)."""
    return float(np.mean([meta.iac_nr, meta.iec_nr]))


def adversary_reactivity(meta: metaeval.MetaConsistency) -> float:
    """AR: the mean of IAC_AR and IEC_AR (both in [0, 1], higher is better)."""
    return float(np.mean([meta.iac_ar, meta.iec_ar]))


def assess(block: Block, header: Mapping[str, Any]) -> list[MetricTrust]:
    """The meta-evaluation of every metric of ``block`` with a score, in the block's metric order.

    ``header`` is the run's header: metric categories and bounds (``metrics``) and the
    number of MetaQuantus perturbations (``meta_evaluation``).
    """
    info = header.get("metrics", {})
    draws = int(header.get("meta_evaluation") or 0)
    scored = [m for m in block.metrics if m in block.agreement_metrics]
    q = {m: _matrix(block, m) for m in scored}
    family = {m: info.get(m, {}).get("category", "") for m in scored}
    consistency = {}
    for fam in set(family.values()):
        members = [m for m in scored if family[m] == fam]
        consistency[fam] = metaeval.internal_consistency({m: q[m] for m in members},
                                                         {m: block.higher_is_better[m] for m in members})
    out = []
    for m in scored:
        hib = block.higher_is_better[m]
        rows = q[m][np.isfinite(q[m]).any(1)]
        alpha = metaeval.inter_rater_alpha(rows, hib) if len(rows) >= 2 else math.nan
        low, high = (list(info.get(m, {}).get("bounds") or [None, None]) + [None, None])[:2]
        at_bounds = metaeval.share_at_bounds(rows.ravel(), low, high) if low is not None or high is not None \
            else math.nan
        tied = metaeval.share_tied(rows) if len(rows) >= 2 else math.nan
        meta = _meta(block, m, q[m], draws)
        reasons = []
        if not alpha >= ALPHA_MIN:
            reasons.append("samples disagree on the ranking" if math.isfinite(alpha) else "no agreement measurable")
        if at_bounds > SATURATED:
            reasons.append("saturates at its bounds")
        if tied > SATURATED:
            reasons.append("ties every method on most samples")
        if meta is not None and noise_resilience(meta) < META_MIN:
            reasons.append("moves under minor perturbations")
        if meta is not None and adversary_reactivity(meta) < META_MIN:
            reasons.append("ignores disruptive perturbations")
        cal = block.calibration.get(m)
        out.append(MetricTrust(m, family[m], alpha, consistency[family[m]], at_bounds, tied, meta, tuple(reasons),
                               cal.uninformative if cal is not None else ""))
    return out


def _f(v: float, pct: bool = False) -> str:
    if v is None or not math.isfinite(v):
        return "–"
    return f"{v:.0%}" if pct else f"{v:.2f}"


def markdown(block: Block, header: Mapping[str, Any]) -> list[str]:
    """The section's meta-evaluation table with its verdicts (nothing when no metric has a score)."""
    assessed = assess(block, header)
    if not assessed:
        return []
    rows = []
    for t in assessed:
        nr = "not run" if t.meta is None else _f(noise_resilience(t.meta))
        ar = "not run" if t.meta is None else _f(adversary_reactivity(t.meta))
        rows.append([t.metric, t.family, _f(t.alpha), _f(t.family_consistency), _f(t.at_bounds, True),
                     _f(t.tied, True), nr, ar, t.verdict + (f": {'; '.join(t.why)}" if t.why else "")])
    trusted = [t.metric for t in assessed if t.verdict == "trust"]
    useless = [t.metric for t in assessed if t.uninformative]
    summary = (f"On this data, trust {', '.join(trusted)}; doubt the others." if trusted
               else "On this data, no metric passes every check: read each ranking with its numbers below.")
    if useless:
        summary += (f" Uninformative here (the oracle does not separate from chance; ranks nothing): "
                    f"{', '.join(useless)}.")
    return ["### Which metrics to trust", "", summary, "",
            tabulate(rows, headers=["metric", "family", "alpha", "family ρ", "at bounds", "tied", "NR", "AR",
                                    "verdict"], tablefmt="github", disable_numparse=True), ""]


def as_json(block: Block, header: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The meta-evaluation of :func:`assess` as JSON-ready dictionaries (NaN as None)."""
    def num(v: float) -> float | None:
        return None if not math.isfinite(v) else float(f"{v:.6g}")

    return [{"metric": t.metric, "family": t.family, "alpha": num(t.alpha),
             "family_consistency": num(t.family_consistency), "at_bounds": num(t.at_bounds), "tied": num(t.tied),
             "noise_resilience": None if t.meta is None else num(noise_resilience(t.meta)),
             "adversary_reactivity": None if t.meta is None else num(adversary_reactivity(t.meta)),
             "verdict": t.verdict, "reasons": list(t.why)} for t in assess(block, header)]

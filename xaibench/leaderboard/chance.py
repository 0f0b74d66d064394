"""Each metric of a leaderboard section read against chance and the oracle: ties with chance, meaningful effects,
uninformative metrics.

Per metric of one dataset x model section, from the per-sample scores of its methods and of its
calibration baselines (``MethodSpec.calibration``: ``chance`` is ``random``, ``oracle`` is
``ground-truth``) and from the run's calibration facts (:func:`xaibench.scoring.calibration.calibration_facts`):

- **the chance level and the oracle's score**: in closed form where the metric states them
  (``MetricSpec.chance``, such as the mean mask area fraction, and ``MetricSpec.oracle``), else the
  mean of the chance (oracle) baseline over the samples both baselines scored;
- **the smallest meaningful effect**: :data:`MIN_EFFECT` of the span between the two, in the
  metric's units (0 where either is unknown): a smaller difference between two methods is a tie,
  not a rank (:func:`xaibench.scoring.stats.significance_ranks`);
- **each method against chance** (:func:`xaibench.scoring.stats.versus_reference`): paired Wilcoxon tests
  of its per-sample scores against the chance baseline's on the same samples, Holm-corrected over
  the methods, with the same smallest effect: 1 above chance, 0 ``= chance``, -1 ``< chance``;
- **uninformative here**: a localization or faithfulness metric (:data:`ORACLE_CATEGORIES`: where the
  annotated mask is what a good map should find; a randomization, robustness or complexity metric
  scores the mask and noise alike by construction, as maps that ignore the model) on which the
  oracle's per-sample scores do not differ from chance's
  (paired Wilcoxon, alpha :data:`xaibench.scoring.stats.ALPHA`), or differ by less than :data:`MIN_SEPARATION` of
  the width of the metric's bounds (``MetricSpec.bounds``, where both are finite), cannot tell a good
  map from noise on this model; it ranks no method.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from xaibench.scoring import stats

#: Share of the span between the chance level and the oracle's score below which a difference is no effect.
MIN_EFFECT = 0.05
#: Share of the width of a metric's bounds below which the oracle's mean does not separate from chance's.
MIN_SEPARATION = 0.01
#: Metric categories on which the annotated mask (``ground-truth``) is an oracle to separate from chance.
ORACLE_CATEGORIES = ("localization", "faithfulness")

RULE = (
    f"A method's cell reads \"= chance\" (never bold, never rank 1) when its per-sample scores do not differ from "
    f"the chance baseline's (`random`) on the same samples, and \"< chance\" when they are worse: paired "
    f"Wilcoxon tests against `random`, Holm-corrected over the methods, alpha {stats.ALPHA}. Methods above "
    f"chance rank before those at chance, and those before the ones below it. A difference smaller than "
    f"{MIN_EFFECT:.0%} of the span between the chance level and the oracle's score (each in closed form where the "
    f"metric states it, else the mean of `random` and of `ground-truth` on the samples both scored) is a tie, "
    f"significant or not. A localization or faithfulness metric on which the oracle (`ground-truth`) does not "
    f"differ from chance on this model (paired Wilcoxon, or by less than {MIN_SEPARATION:.0%} of the width of the "
    f"metric's bounds) is uninformative here: it ranks no method, and neither the overall rank, the winners nor "
    f"the aggregate ranking count it."
)


@dataclass(frozen=True)
class MetricCalibration:
    """One metric of a section read against its chance level and its oracle (levels in the metric's units)."""

    #: The chance level and the oracle's score (None: unknown), in closed form or the baselines' means.
    chance: float | None = None
    oracle: float | None = None
    #: The smallest difference that counts (0: no span known, every significant difference counts).
    min_effect: float = 0.0
    #: Method -> 1 above chance, 0 at chance, -1 below, None (no score or no chance baseline scored).
    standing: dict[str, int | None] = field(default_factory=dict)
    #: Why the metric ranks nothing here ("" when it is informative or cannot be checked).
    uninformative: str = ""


def closed_form(metric: str, facts: Mapping[str, Any], dataset: str) -> tuple[float | None, str, float | None]:
    """``(chance level, its source, oracle score)`` of ``metric`` in closed form from the run's calibration facts
    (``header["calibration"]``) on ``dataset`` (the source dataset of a pooled section); None where not known."""
    info = facts.get("metrics", {}).get(metric, {})
    chance = None
    if info.get("chance") == "mask-fraction":
        chance = facts.get("mask_fraction", {}).get(dataset)
    oracle = info.get("oracle")
    return (None if chance is None else float(chance), "closed form: mean mask area fraction" if chance is not None
            else "", None if oracle is None else float(oracle))


def _mean(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else None


def calibrate(methods: Sequence[str], scores: Sequence[np.ndarray | None], roles: Mapping[str, str],
              higher_is_better: bool, levels: tuple[float | None, str, float | None],
              bounds: Sequence[float | None] | None = None, category: str = "") -> MetricCalibration:
    """The calibration of one metric of a section.

    ``methods[i]`` has per-sample scores ``scores[i]`` ``(S,)`` over the section's sample ids (None: no score);
    ``roles`` maps baselines to their calibration role (``chance``, ``oracle``); ``levels`` is :func:`closed_form`'s
    answer; ``bounds`` the metric's ``(low, high)`` (None where open); ``category`` the metric's (the oracle
    check runs on :data:`ORACLE_CATEGORIES` only). Standings are given to the methods that
    are not baselines, except on a metric uninformative here (all None: it compares nothing).
    """
    def baseline(role: str) -> tuple[str, np.ndarray] | None:
        found = [(m, s) for m, s in zip(methods, scores) if roles.get(m) == role and s is not None
                 and np.isfinite(s).any()]
        return found[0] if found else None

    chance_base, oracle_base = baseline("chance"), baseline("oracle")
    chance, _, oracle = levels
    uninformative = ""
    if chance_base is not None and oracle_base is not None:
        (cname, c), (oname, o) = chance_base, oracle_base
        both = np.isfinite(c) & np.isfinite(o)
        c_mean, o_mean = _mean(np.where(both, c, np.nan)), _mean(np.where(both, o, np.nan))
        if chance is None:
            chance = c_mean
        oracle = o_mean if oracle is None else oracle
        p = stats.paired_pvalue(o, c)
        low, high = (list(bounds or []) + [None, None])[:2]
        width = high - low if low is not None and high is not None and math.isfinite(high - low) else None
        close = (width is not None and c_mean is not None and o_mean is not None
                 and abs(o_mean - c_mean) < MIN_SEPARATION * width)  # open bounds: the test alone decides
        judged = category in ORACLE_CATEGORIES and c_mean is not None and o_mean is not None
        if judged and (p >= stats.ALPHA or close):
            uninformative = (f"the oracle (`{oname}`) scores {o_mean:.3g} and chance (`{cname}`) {c_mean:.3g} on the "
                             f"{int(both.sum())} samples both scored: "
                             + (f"no difference (paired Wilcoxon p = {p:.2g})" if p >= stats.ALPHA else
                                f"a difference under {MIN_SEPARATION:.0%} of the metric's range [{low:g}, {high:g}]"))
    effect = MIN_EFFECT * abs(oracle - chance) if chance is not None and oracle is not None else 0.0
    contenders = [i for i, m in enumerate(methods) if not roles.get(m)]
    standing: dict[str, int | None] = {methods[i]: None for i in contenders}
    if chance_base is not None and not uninformative:
        versus = stats.versus_reference([scores[i] for i in contenders], chance_base[1], higher_is_better,
                                        min_effect=effect)
        standing = dict(zip([methods[i] for i in contenders], versus))
    return MetricCalibration(chance, oracle, effect, standing, uninformative)


def chance_text(standing: int | None) -> str:
    """``"= chance"``, ``"< chance"`` or "" (above chance, or not compared)."""
    return {0: "= chance", -1: "< chance"}.get(standing, "") if standing is not None else ""

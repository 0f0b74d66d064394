"""The model gate: a model that did not learn is reported, and its methods are not ranked.

Explanations of a constant classifier say nothing about a saliency method, and ranking
them gives winners to noise. After training (or loading), the model's test accuracy is
compared with the majority-class rate of the same test split by a one-sided exact
binomial test (Clopper & Pearson's exact test; ``scipy.stats.binomtest(k, n, p0,
alternative="greater")``): H0 is "the model is right no more often than always
predicting the most frequent class". The model passes when the p-value is below
:data:`ALPHA`; with few test samples only a large margin passes, which is the point.

A segmenter (an evaluation of :func:`xaibench.models.segtraining.evaluate_segmentation`) passes when
its Dice is above that of predicting background everywhere: the 95% bootstrap CI of the
paired per-sample gain (its Dice minus the background's, 1 on an empty mask and 0 elsewhere)
lies above 0. A segmenter that predicts background everywhere gains 0 on every sample and fails.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scipy.stats import binomtest

#: Significance level of the gate's one-sided test.
ALPHA = 0.05


def verdict(evaluation: Mapping[str, Any]) -> dict[str, Any]:
    """``{"learned": bool, "p_value": float, "reason": str}`` for an evaluation of :func:`xaibench.models.training.evaluate`
    (or of :func:`xaibench.models.segtraining.evaluate_segmentation`: ``p_value`` None, see the module's notes).

    ``evaluation`` needs ``accuracy`` (in [0, 1]), ``n`` (test samples) and ``majority``
    (the most frequent class's share of them). ``reason`` is "" when the model learned.
    """
    if evaluation.get("task") == "segmentation":
        return _segmenter_verdict(evaluation)
    n, acc, majority = int(evaluation["n"]), float(evaluation["accuracy"]), float(evaluation["majority"])
    if n == 0:
        return {"learned": False, "p_value": 1.0, "reason": "did not learn: the test split is empty"}
    k = round(acc * n)
    p = float(binomtest(k, n, min(majority, 1.0), alternative="greater").pvalue) if majority < 1 else 1.0
    if p < ALPHA:
        return {"learned": True, "p_value": p, "reason": ""}
    return {"learned": False, "p_value": p,
            "reason": (f"did not learn: test accuracy {acc:.3f} is not significantly above the majority-class rate "
                       f"{majority:.3f} (one-sided exact binomial test, n={n}, p={p:.3g} >= {ALPHA}); "
                       f"its methods are not ranked")}


def _segmenter_verdict(evaluation: Mapping[str, Any]) -> dict[str, Any]:
    """The gate of a segmenter; ``p_value`` is None (a bootstrap CI decides, not a test)."""
    n, (low, high) = int(evaluation["n"]), evaluation["gain_ci"]
    if n == 0:
        return {"learned": False, "p_value": None, "reason": "did not learn: the test split is empty"}
    if float(low) > 0:
        return {"learned": True, "p_value": None, "reason": ""}
    return {"learned": False, "p_value": None,
            "reason": (f"did not learn: test Dice {evaluation['dice']:.3f} is not above predicting background "
                       f"everywhere ({evaluation['background_dice']:.3f}): the 95% bootstrap CI of the gain is "
                       f"[{float(low):.3f}, {float(high):.3f}] (n={n}); its methods are not ranked")}


def unranked_reason(evaluation: Mapping[str, Any] | None) -> str:
    """The gate's reason when ``evaluation`` (as stored) failed it, else ""."""
    if not evaluation or "gate" not in evaluation:
        return ""
    return str(evaluation["gate"].get("reason", ""))


def quality_line(evaluation: Mapping[str, Any]) -> str:
    """The model's quality on the test split in one markdown line: a classifier's accuracy, macro precision, recall
    and F1 with the majority-class rate, or a segmenter's Dice and IoU with their 95% bootstrap CIs and the Dice
    of predicting background everywhere."""
    e = evaluation
    if e.get("task") == "segmentation":
        return (f"Segmenter on the test split (n={e['n']}, {e['empty_masks']} without a lesion): Dice {e['dice']:.3f} "
                f"[{e['dice_ci'][0]:.3f}, {e['dice_ci'][1]:.3f}], IoU {e['iou']:.3f} [{e['iou_ci'][0]:.3f}, "
                f"{e['iou_ci'][1]:.3f}] (95% bootstrap CIs; predicting background everywhere: Dice "
                f"{e['background_dice']:.3f}).")
    return (f"Model on the test split (n={e['n']}): accuracy {e['accuracy']:.3f}, macro precision "
            f"{e['precision']:.3f}, recall {e['recall']:.3f}, F1 {e['f1']:.3f} (majority class: {e['majority']:.3f}).")


def evaluation_notes(evaluation: Mapping[str, Any]) -> list[str]:
    """Markdown lines for a dataset x model block: the gate's verdict and what the numbers were computed with."""
    lines = []
    reason = unranked_reason(evaluation)
    if reason:
        lines += [f"**This model {reason}.**", ""]
    num = evaluation.get("numerics")
    if num:
        lines += [f"Computed on {num['device']}, {num['dtype']}, autocast {num['autocast']}.", ""]
    return lines

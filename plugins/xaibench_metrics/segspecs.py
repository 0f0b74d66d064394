"""The segmentation metrics' specs (:mod:`xaibench_metrics.segmentation`), registered without importing torch."""
from __future__ import annotations

from collections.abc import Callable

from xaibench.contract.lazy import lazy
from xaibench.contract.specs import MODALITIES, MetricSpec

deletion_dice = lazy("xaibench_metrics.segmentation:deletion_dice")
deletion_dice_curve = lazy("xaibench_metrics.segmentation:deletion_dice_curve")
relevance_share = lazy("xaibench_metrics.segmentation:relevance_share")

RISE = "Petsiuk et al., RISE, BMVC 2018, Sec. 4.1 (the deletion protocol)"
CONTEXT = ("Hammoud et al., A Quantitative Evaluation Framework for Explainable AI in Semantic Segmentation, 2025 "
           "(context around the target region)")
NEEDS = frozenset({"inputs", "maps", "engine", "segmentation", "sample_seeds", "data_mean"})
EMPTY = "class k is predicted nowhere on the unperturbed input (a box, pixel or ground-truth target), or a constant map"
#: The share metrics: name -> (zone, higher is better, what it says).
SHARES = {"relevance-inside": ("inside", True, "inside the target region"),
          "relevance-ring": ("ring", False, "in the ring of `width` pixels around the target region"),
          "relevance-beyond": ("beyond", False, "beyond that ring")}


def register_segmentation(register: Callable[[MetricSpec], None]) -> None:
    """Registers ``deletion-dice``, ``deletion-dice-least`` and the three relevance shares."""
    for name, order, most in (("deletion-dice", "most", True), ("deletion-dice-least", "least", False)):
        register(MetricSpec(
            name=name, modalities=frozenset(MODALITIES), bounds=(0.0, 1.0), score=deletion_dice,
            curve=deletion_dice_curve, needs=NEEDS, category="faithfulness", higher_is_better=not most,
            description=f"area under the Dice of the prediction against the unperturbed one as the "
                        f"{'most' if most else 'least'} relevant pixels are zeroed first, P/steps per step "
                        f"(segmentation models)",
            citation=RISE + "; " + CONTEXT, defaults={"steps": 32, "fill": "zero", "order": order},
            undefined=EMPTY,
            formula="AUC_[0,1] over s = 0..steps of Dice(pred_k(x with the "
                    f"{'top' if most else 'bottom'} s/steps of the pixels of a set to the fill), pred_k(x))",
            checked_against="by hand on a 4x4 threshold segmenter: tests/test_segmentation_metrics.py::"
                            "test_deletion_dice_equals_a_hand_computation_on_a_tiny_case",
        ))
    for name, (zone, higher, where) in SHARES.items():
        register(MetricSpec(
            name=name, modalities=frozenset(MODALITIES), bounds=(0.0, 1.0), score=relevance_share,
            needs=frozenset({"maps", "segmentation"}), category="localization", higher_is_better=higher,
            description=f"share of the map's positive relevance {where} (segmentation models; the three shares "
                        f"sum to 1)",
            citation=CONTEXT, defaults={"zone": zone, "width": 4},
            undefined="the map has no positive relevance (sum of max(a, 0) is 0), or a constant map (the runner's rule "
                      "for every metric)",
            formula=f"sum_{{i in {zone}}} a+_i / sum_i a+_i, ring = dilate(R, width) minus R",
            checked_against="by hand on a 5x5 map: tests/test_segmentation_metrics.py::"
                            "test_relevance_shares_partition_the_positive_relevance_by_hand",
        ))

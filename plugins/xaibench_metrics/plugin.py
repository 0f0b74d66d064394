"""Registers the built-in metrics with their categories, directions and citations."""
from __future__ import annotations

from typing import Callable

from xaibench import hookimpl
from xaibench.specs import MetricSpec
from xaibench_metrics.completeness import completeness_error, sensitivity_n
from xaibench_metrics.confidence import drop_in_confidence, increase_in_confidence
from xaibench_metrics.pointing import hit_rate

GRADCAM_PP = "Chattopadhay et al., Grad-CAM++, WACV 2018"


@hookimpl
def xaibench_register_metrics(register: Callable[[MetricSpec], None]) -> None:
    register(MetricSpec(
        name="dic", score=drop_in_confidence, category="faithfulness", higher_is_better=False,
        description="Average Drop: % confidence lost when only the map's region is kept (x*L)",
        citation=GRADCAM_PP,
        defaults={"cover": "nonessential", "fill": "darken", "threshold": 0.5, "sign": "positive"},
    ))
    register(MetricSpec(
        name="iic", score=increase_in_confidence, category="faithfulness", higher_is_better=True,
        description="Increase in Confidence: % of samples whose confidence rises when only the map's region is kept",
        citation=GRADCAM_PP,
        defaults={"cover": "nonessential", "fill": "darken", "threshold": 0.5, "sign": "positive"},
    ))
    register(MetricSpec(
        name="hit-rate", score=hit_rate, category="localization", higher_is_better=True, requires_mask=True,
        description="pointing game: the map's peak within 15 px (at 224 px) of the lesion; NaN on empty masks",
        citation="Zhang et al., Top-down Neural Attention by Excitation Backprop, ECCV 2016",
        defaults={"tolerance": 15.0, "reference_size": 224},
    ))
    register(MetricSpec(
        name="completeness-error", score=completeness_error, category="faithfulness", higher_is_better=False,
        description="|sum of the map - (f(x) - f(occluded x))| / |f(x) - f(occluded x)| on the target logit",
        citation="Sundararajan et al., ICML 2017 (completeness axiom); seed 003",
        defaults={"fill": "zero", "output": "logit"},
    ))
    register(MetricSpec(
        name="sensitivity-n", score=sensitivity_n, category="faithfulness", higher_is_better=True,
        description="Pearson correlation between the map's sum over random patch sets and the logit drop they cause",
        citation="Ancona et al., Towards better understanding of gradient-based attribution methods, ICLR 2018",
        defaults={"n": 8, "patch": 8, "sets": 32, "fill": "zero", "output": "logit"},
    ))

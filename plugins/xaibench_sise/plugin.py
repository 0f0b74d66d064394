"""Registers SISE, written here: no maintained library implements it."""
from __future__ import annotations

from typing import Callable

from xaibench import hookimpl
from xaibench.contract.lazy import lazy
from xaibench.contract.specs import MODALITIES, MethodSpec


@hookimpl
def xaibench_register_methods(register: Callable[[MethodSpec], None]) -> None:
    """Registers this plugin's method ``sise`` with ``register`` (the ``xaibench_register_methods`` hook), importing no torch."""
    register(MethodSpec(
        name="sise", explain=lazy("xaibench_sise.sise:sise"), modalities=frozenset(MODALITIES),
        description="feature maps of every block, kept by positive average gradient, used as input masks; "
                    "block-wise cascading fusion with Otsu gating",
        citation="Sattarzadeh et al., Explaining Convolutional Neural Networks through Attribution-Based Input "
                 "Sampling and Block-Wise Feature Aggregation, AAAI 2021 (arXiv 2010.00672)",
        defaults={"layers": None, "output": "prob"},
        checked_against="each stage by hand: tests/test_sise.py::test_feature_maps_are_kept_by_positive_average_gradient, "
                        "tests/test_sise.py::test_layer_maps_are_score_weighted_sums_of_masks_batched_across_layers_and_samples, "
                        "tests/test_sise.py::test_cascading_fusion_gates_the_lower_map_by_the_otsu_support_of_the_higher",
    ))

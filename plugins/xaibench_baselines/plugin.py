"""Registers the calibration baselines.

A metric is only readable next to what chance and an oracle score: the random map
gives the chance level of each metric, the centre map the score of a centre bias,
and the ground-truth mask the upper bound of localization metrics.
"""
from __future__ import annotations

from typing import Callable

from xaibench import hookimpl
from xaibench.contract.lazy import lazy
from xaibench.contract.specs import MODALITIES, MethodSpec


@hookimpl
def xaibench_register_methods(register: Callable[[MethodSpec], None]) -> None:
    """Registers this plugin's calibration baselines (``random``, ``centre``, ``ground-truth``) with ``register`` (the ``xaibench_register_methods`` hook), importing no torch."""
    register(MethodSpec(
        name="random", explain=lazy("xaibench_baselines.maps:random_map"),
        modalities=frozenset(MODALITIES), needs_gradients=False,
        description="uniform noise: the chance level of every metric", calibration="chance",
        checked_against="its hit rate and relevance mass equal the mask's volume fraction within 4 standard errors: "
                        "tests/test_metrics_volumes.py::test_random_map_hits_with_the_mask_volume_fraction",
    ))
    register(MethodSpec(
        name="centre", explain=lazy("xaibench_baselines.maps:centre_map"),
        modalities=frozenset(MODALITIES), needs_gradients=False,
        description="a Gaussian at the centre: what a centre bias alone scores", defaults={"sigma": 0.25},
        calibration="centre-bias",
        checked_against="contract only: tests/test_conformance.py::test_method_conforms_on_images[centre]",
    ))
    register(MethodSpec(
        name="ground-truth", explain=lazy("xaibench_baselines.maps:ground_truth"),
        modalities=frozenset(MODALITIES), needs_gradients=False,
        needs=frozenset({"masks"}), description="the annotated mask: the upper bound of localization metrics",
        calibration="oracle",
        checked_against="scores 1 on every mask metric: tests/test_metrics_volumes.py::test_ground_truth_scores_one_on_volumes",
    ))

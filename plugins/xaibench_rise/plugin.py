"""Registers RISE, written here (no maintained library has it for 1D and 2D with batched masks)."""
from __future__ import annotations

from typing import Callable

from xaibench import hookimpl
from xaibench.contract.lazy import lazy
from xaibench.contract.specs import MODALITIES, MethodSpec


@hookimpl
def xaibench_register_methods(register: Callable[[MethodSpec], None]) -> None:
    """Registers this plugin's method ``rise`` with ``register`` (the ``xaibench_register_methods`` hook), importing no torch."""
    register(MethodSpec(
        name="rise", explain=lazy("xaibench_rise.rise:rise"), modalities=frozenset(MODALITIES), needs_gradients=False,
        description="score-weighted average of random low-resolution binary masks",
        citation="Petsiuk, Das & Saenko, RISE: Randomized Input Sampling for Explanation of Black-box Models, "
                 "BMVC 2018",
        defaults={"n_masks": 1000, "grid": 8, "p": 0.5, "output": "prob"},
        checked_against="by hand: the score-weighted mean of its seeded masks, sum_m p_c(x * m) m / (n_masks * p): "
                        "tests/test_methods_rise.py::test_saliency_is_the_score_weighted_mean_of_masks_over_full_batches; "
                        "the masks: tests/test_methods_rise.py::test_masks_are_shifted_upsampled_bernoulli_grids",
    ))

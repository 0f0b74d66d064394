"""Registers RISE, written here (no maintained library has it for 1D and 2D with batched masks)."""
from __future__ import annotations

from typing import Callable

from xaibench import hookimpl
from xaibench.lazy import lazy
from xaibench.specs import MODALITIES, MethodSpec


@hookimpl
def xaibench_register_methods(register: Callable[[MethodSpec], None]) -> None:
    register(MethodSpec(
        name="rise", explain=lazy("xaibench_rise.rise:rise"), modalities=frozenset(MODALITIES), needs_gradients=False,
        description="score-weighted average of random low-resolution binary masks",
        citation="Petsiuk, Das & Saenko, RISE: Randomized Input Sampling for Explanation of Black-box Models, "
                 "BMVC 2018",
        defaults={"n_masks": 1000, "grid": 8, "p": 0.5, "output": "prob"},
    ))

"""Generating the embedded synthetic lesion data: a cost the first run of every suite pays.

Reported as a ratio in the session table (images per second against a target of
1000 images in under 3 s on the 2-core machine); not asserted in ``tests/``.
"""
from __future__ import annotations

from conftest import report
from xaibench_datasets.synthetic import generate


def test_synthetic_generation(benchmark) -> None:  # type: ignore[no-untyped-def]
    generate(3, 64, seed=0)  # warm-up: imports and first-call overheads
    images = benchmark.pedantic(lambda: generate(1000, 64, seed=1), rounds=3, iterations=1)
    assert images["x"].shape == (1000, 1, 64, 64)
    seconds = benchmark.stats.stats.min
    report("synthetic-lesions generation", "seconds for 1000 images at 64 px (best of 3)", seconds, "< 3")

"""Every metric's declared range (``MetricSpec.bounds``) against its definition, on random inputs (issue 44, 5).

Sound: no score on random models, inputs, signed maps, masks and region maps leaves the declared range.
Tight below: a metric declaring negative scores possible (a lower bound under 0, or none) shows one on these
inputs, so a mean of absolute similarities (MPRT, sMPRT, random logit: [0, 1]) cannot declare [-1, 1].
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import xaibench
from xaibench.contract.plugins import load_harness
from xaibench.authoring.testing import tiny_model
from segnets import unet

#: Metrics the API scores (a metric comparing with a model trained by another protocol needs a suite).
SPECS = [e.spec for e in load_harness().registry("metrics") if not e.spec.variants]
N, S = 6, 32


@pytest.fixture(scope="module")
def scored() -> dict[str, np.ndarray]:
    """Each metric's defined scores over two random draws of model, inputs, signed maps, masks and regions."""
    seen: dict[str, list[float]] = {}
    for seed in (0, 1):
        g = torch.Generator().manual_seed(seed)
        model = tiny_model("image", num_classes=3, in_channels=1, seed=seed)
        x = torch.rand(N, 1, S, S, generator=g)
        maps = torch.randn(N, S, S, generator=g)
        masks = torch.zeros(N, S, S, dtype=torch.bool)
        masks[:, 8:20, 6:18] = True
        masks[0] = False
        masks[0, :3, :3] = True
        regions = masks.to(torch.int8) * 2 - (torch.rand(N, S, S, generator=g) < 0.2).to(torch.int8)
        for s in SPECS:
            params = {"draws": 2} if "draws" in s.defaults else {}
            seg = "segmentation" in s.needs  # a segmenter's metric: a random UNet, its box region's score
            out = xaibench.score(unet(seed, k=3) if seg else model, x,
                                 {"region": "box", "box": [[4, 24], [8, 20]], "class": 2} if seg else None, maps, [s.name], masks=masks, regions=regions, region_top_level=2,
                                 data_mean=[0.5], method="integrated-gradients", method_params={"n_steps": 4},
                                 params={s.name: params}, seed=seed)
            seen.setdefault(s.name, []).extend(out[s.name].tolist())
    return {name: np.array([v for v in values if np.isfinite(v)]) for name, values in seen.items()}


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_scores_stay_in_the_declared_range(spec, scored) -> None:  # type: ignore[no-untyped-def]
    low, high = spec.bounds
    values = scored[spec.name]
    assert low is None or not (values < low).any(), (spec.name, values.min())
    assert high is None or not (values > high).any(), (spec.name, values.max())


@pytest.mark.parametrize("spec", [s for s in SPECS if s.bounds[0] is None or s.bounds[0] < 0], ids=lambda s: s.name)
def test_a_range_that_allows_negative_scores_is_reached_by_one(spec, scored) -> None:  # type: ignore[no-untyped-def]
    assert (scored[spec.name] < 0).any(), f"{spec.name} declares {spec.bounds}, but scored no negative value"


def test_the_absolute_similarities_are_declared_in_0_1() -> None:
    metrics = load_harness().metrics
    for name in ("mprt-spearman", "mprt-ssim", "smprt", "random-logit", "data-randomization"):
        assert metrics.get(name).bounds == (0.0, 1.0), name

"""Localization and complexity metrics through the registry: oracle maps, NaN rules, analytic values."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from xaibench.contract.plugins import load_harness
from xaibench.contract.metric_inputs import MetricContext
from xaibench.authoring.testing import score_metric

LOCALIZATION = ("hit-rate", "graded-hit-rate", "energy-pointing-game", "relevance-mass", "attribution-localisation",
                "relevance-rank", "iou", "dice", "coverage", "iou-threshold", "dice-threshold", "coverage-threshold")


@pytest.fixture(scope="module")
def harness():  # type: ignore[no-untyped-def]
    return load_harness()


def _score(harness, name: str, saliency: torch.Tensor, masks: torch.Tensor | None,  # type: ignore[no-untyped-def]
           regions: torch.Tensor | None = None, **params) -> np.ndarray:
    spec = harness.metrics.get(name)
    ctx = MetricContext(engine=None, base_logits=torch.zeros(0), dataset=SimpleNamespace(region_top_level=3))
    return score_metric(spec, ctx, maps=saliency, masks=masks, regions=regions, **{**spec.defaults, **params})


def _rect_masks() -> torch.Tensor:
    """Rectangular lesions of exactly 10% of a 20x20 image (so top-10% selections can match them), one empty."""
    masks = torch.zeros(4, 20, 20, dtype=torch.bool)
    masks[1, 2:6, 3:13] = True
    masks[2, 10:18, 10:15] = True
    masks[3, 0:20, 18:20] = True
    return masks


def test_every_localization_metric_is_registered_with_its_direction(harness) -> None:  # type: ignore[no-untyped-def]
    for name in LOCALIZATION:
        spec = harness.metrics.get(name)
        assert spec.category == "localization" and spec.higher_is_better and spec.citation
        assert spec.requires_mask or spec.requires_region


def test_the_oracle_map_scores_one_on_every_localization_metric_and_empty_masks_give_nan(harness) -> None:  # type: ignore[no-untyped-def]
    masks = _rect_masks()
    regions = 3 * masks.to(torch.int8)
    for name in LOCALIZATION:
        got = _score(harness, name, masks.float(), masks, regions)
        assert np.isnan(got[0]), name
        np.testing.assert_allclose(got[1:], 1.0, err_msg=name)


def test_a_constant_map_scores_chance_not_one(harness) -> None:  # type: ignore[no-untyped-def]
    masks = _rect_masks()
    const = torch.ones(4, 20, 20)
    for name in ("hit-rate", "relevance-mass", "relevance-rank", "coverage"):
        got = _score(harness, name, const, masks, tolerance=0.0)[1:] if name == "hit-rate" else \
            _score(harness, name, const, masks)[1:]
        np.testing.assert_allclose(got, 0.1, err_msg=name)


def test_energy_pointing_game_uses_the_bounding_box_and_overlaps_follow_their_formulas(harness) -> None:  # type: ignore[no-untyped-def]
    masks = torch.zeros(1, 10, 10, dtype=torch.bool)
    masks[0, 2, 2] = masks[0, 6, 6] = True  # box 2..6 x 2..6 = 25 px, mask 2 px
    sal = torch.zeros(1, 10, 10)
    sal[0, 4, 4] = 3.0  # inside the box, outside the mask
    sal[0, 9, 9] = 1.0
    assert _score(harness, "energy-pointing-game", sal, masks)[0] == pytest.approx(0.75)
    assert _score(harness, "relevance-mass", sal, masks)[0] == 0.0
    sal[0, 2, 2] = 2.0  # top-2 = {(4,4), (2,2)}: 1 of 2 in the mask
    assert _score(harness, "relevance-rank", sal, masks)[0] == pytest.approx(0.5)
    # threshold 0.5 on L = sal / 3 selects (4,4) and (2,2): |B|=2, |M|=2, |B & M|=1
    assert _score(harness, "iou-threshold", sal, masks)[0] == pytest.approx(1 / 3)
    assert _score(harness, "dice-threshold", sal, masks)[0] == pytest.approx(0.5)
    assert _score(harness, "coverage-threshold", sal, masks)[0] == pytest.approx(0.5)


def test_graded_hit_rate_reads_the_level_at_the_peak(harness) -> None:  # type: ignore[no-untyped-def]
    regions = torch.tensor([[[3, 2, 1, 0, -1]]], dtype=torch.int8).repeat(5, 1, 1)
    sal = torch.eye(5)[:, None, :]  # sample i peaks at column i
    got = _score(harness, "graded-hit-rate", sal, None, regions)
    np.testing.assert_allclose(got, [1, 2 / 3, 1 / 3, 0, -1 / 3])


def test_complexity_metrics_match_their_closed_forms(harness) -> None:  # type: ignore[no-untyped-def]
    sal = torch.zeros(3, 8, 8)
    sal[0, 3, 3] = -5.0  # one pixel (sign ignored)
    sal[1] = 1.0  # uniform
    gini = _score(harness, "sparseness", sal, None)
    ent = _score(harness, "entropy", sal, None)
    np.testing.assert_allclose(gini[:2], [1 - 1 / 64, 0.0], atol=1e-12)
    np.testing.assert_allclose(ent[:2], [0.0, np.log(64)], atol=1e-12)
    assert np.isnan(gini[2]) and np.isnan(ent[2])


def test_complexity_metrics_of_a_map_summing_to_less_than_one_are_its_closed_forms(harness) -> None:  # type: ignore[no-untyped-def]
    """Both measure the distribution |a| / sum |a|, not the map's units: a uniform map of 1/128 (sum 0.5) has
    entropy log 64 and Gini 0; half the pixels at v = 1e-3 (sum 0.032), the rest 0, has entropy log 32 and Gini
    sum_{k=33..64} (2k - 65) v / (64 * 32 v) = (1 + 3 + ... + 63) / 2048 = 32^2 / 2048 = 1/2."""
    sal = torch.full((2, 8, 8), 1 / 128, dtype=torch.float64)
    sal[1] = 0.0
    sal[1, :4] = 1e-3
    np.testing.assert_allclose(_score(harness, "entropy", sal, None), [np.log(64), np.log(32)], rtol=1e-12)
    np.testing.assert_allclose(_score(harness, "sparseness", sal, None), [0.0, 0.5], atol=1e-12)


def test_mask_metrics_of_one_method_share_one_fused_kernel_call(harness) -> None:  # type: ignore[no-untyped-def]
    """With default parameters, mass, rank and the top-k overlaps read one ``kernels.mask_scores`` result."""
    masks = _rect_masks()
    sal = torch.rand(4, 20, 20, generator=torch.Generator().manual_seed(0))
    memo: dict = {}
    computed: list = []

    def shared(key, compute):  # type: ignore[no-untyped-def]
        if key not in memo:
            computed.append(key)
            memo[key] = compute()
        return memo[key]

    ctx = MetricContext(engine=None, base_logits=torch.zeros(0), shared=shared)
    names = ("relevance-mass", "relevance-rank", "iou", "dice", "coverage")
    for name in names:
        spec = harness.metrics.get(name)
        got = score_metric(spec, ctx, maps=sal, masks=masks, **spec.defaults)
        np.testing.assert_array_equal(got, _score(harness, name, sal, masks), err_msg=name)  # same as unshared
    assert len(computed) == 1
    score_metric(harness.metrics.get("attribution-localisation"), ctx, maps=sal, masks=masks, sign="abs")
    assert len(computed) == 2  # another sign rule is another map: its own call


def test_energy_pointing_game_box_ends_at_the_annotations_last_row_and_column(harness) -> None:  # type: ignore[no-untyped-def]
    """Mask pixels (2, 2) and (6, 6): the box is rows and columns 2..6 inclusive. Equal energy at (4, 4) (inside),
    (7, 4), (4, 7) and (7, 7) (one past the box's last row or column): 1/4 of the energy lies in the box."""
    masks = torch.zeros(1, 10, 10, dtype=torch.bool)
    masks[0, 2, 2] = masks[0, 6, 6] = True
    sal = torch.zeros(1, 10, 10)
    sal[0, 4, 4] = sal[0, 7, 4] = sal[0, 4, 7] = sal[0, 7, 7] = 1.0
    assert _score(harness, "energy-pointing-game", sal, masks)[0] == pytest.approx(0.25)


@pytest.mark.parametrize("name, message", [
    ("relevance-mass", "relevance mass accuracy needs masks"),
    ("attribution-localisation", "relevance mass accuracy needs masks"),
    ("energy-pointing-game", "the energy-based pointing game needs masks"),
    ("relevance-rank", "relevance rank accuracy needs masks"),
    ("iou", "iou of the thresholded map needs masks"),
    ("dice-threshold", "dice of the thresholded map needs masks"),
    ("graded-hit-rate", "the graded hit rate needs region maps"),
])
def test_a_localization_metric_without_its_annotation_stops_with_one_line(harness, name: str,  # type: ignore[no-untyped-def]
                                                                         message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        _score(harness, name, torch.rand(2, 6, 6), None)


def test_graded_hit_rate_without_a_top_level_stops_with_one_line(harness) -> None:  # type: ignore[no-untyped-def]
    spec = harness.metrics.get("graded-hit-rate")
    ctx = MetricContext(engine=None, base_logits=torch.zeros(0), dataset=SimpleNamespace(region_top_level=None))
    with pytest.raises(ValueError, match="^the dataset provides region maps but no region_top_level to normalise by$"):
        score_metric(spec, ctx, maps=torch.rand(1, 4, 4), regions=torch.ones(1, 4, 4, dtype=torch.int8), **spec.defaults)


def test_mask_overlap_names_its_choices_when_given_an_unknown_score_or_selection(harness) -> None:  # type: ignore[no-untyped-def]
    masks = _rect_masks()
    with pytest.raises(ValueError, match=r"^score must be one of \('iou', 'dice', 'coverage', 'precision'\), got 'jaccard'$"):
        _score(harness, "iou", torch.rand(4, 20, 20), masks, score="jaccard")
    with pytest.raises(ValueError, match=r"^selection must be one of \('top-k', 'threshold'\), got 'otsu'$"):
        _score(harness, "iou", torch.rand(4, 20, 20), masks, selection="otsu")

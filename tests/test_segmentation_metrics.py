"""The segmentation metrics (issue 41, item 4): deletion-Dice against a hand computation, the relevance shares by
hand, and the perturbation metrics on the region score equal to a hand loop over the region-sum."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import xaibench
from segnets import centred, unet
from xaibench.base.errors import XaibenchError


def _threshold_segmenter() -> nn.Module:
    """One logit ``z = x - 0.5`` per pixel: a pixel is foreground where the input exceeds 0.5."""
    conv = nn.Conv2d(1, 1, 1)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.fill_(-0.5)
    return conv.eval()


def _tiny_case() -> tuple[torch.Tensor, np.ndarray]:
    """A 4x4 input with foreground at (0,0), (0,1), (1,0), (1,1); a map ranking two foreground pixels first, then
    two background pixels, then the other two foreground pixels, then the rest (all values distinct: no ties)."""
    x = torch.zeros(1, 1, 4, 4)
    x[0, 0, :2, :2] = 1.0
    a = np.arange(16, dtype=np.float32).reshape(4, 4) / 100  # the ten remaining background pixels: 0.02..0.15 < 5
    a[0, 0], a[0, 1], a[3, 3], a[3, 2], a[1, 0], a[1, 1] = 10, 9, 8, 7, 6, 5
    return x, a[None]


def test_deletion_dice_equals_a_hand_computation_on_a_tiny_case() -> None:
    """steps = 4: four pixels per step. Most relevant first: step 1 removes two of the four foreground pixels
    (Dice 2*2/(2+4) = 2/3), step 2 the other two (Dice 0): curve [1, 2/3, 0, 0, 0], area 0.25 * ((1 + 2/3)/2 +
    (2/3)/2) = 7/24. Least relevant first: steps 1-2 remove background only (Dice 1), step 3 two foreground
    pixels (2/3), step 4 everything: [1, 1, 1, 2/3, 0], area 0.25 * (1 + 1 + (1 + 2/3)/2 + (2/3)/2) = 19/24."""
    x, a = _tiny_case()
    scores = xaibench.score(_threshold_segmenter(), x, {"region": "predicted"}, a,
                            ["deletion-dice", "deletion-dice-least"],
                            params={"deletion-dice": {"steps": 4}, "deletion-dice-least": {"steps": 4}})
    np.testing.assert_allclose(scores["deletion-dice"], [7 / 24], atol=1e-12)
    np.testing.assert_allclose(scores["deletion-dice-least"], [19 / 24], atol=1e-12)


def test_deletion_dice_is_nan_where_the_class_is_predicted_nowhere() -> None:
    _, a = _tiny_case()
    everywhere = torch.ones(1, 1, 4, 4)  # all foreground: class 0 (background) is predicted nowhere
    scores = xaibench.score(_threshold_segmenter(), everywhere, {"region": "box", "box": [[0, 2], [0, 2]], "class": 0},
                            a, ["deletion-dice"])
    assert np.isnan(scores["deletion-dice"]).all()


def test_relevance_shares_partition_the_positive_relevance_by_hand() -> None:
    """A 5x5 map, the target region the centre pixel (a pixel target), a ring of width 1: the centre holds
    a+ = 4, its eight neighbours 1 each (one is -3: no positive relevance), the border 16 pixels 0.5 each;
    total 4 + 7 + 8 = 19: shares 4/19, 7/19, 8/19."""
    a = np.full((1, 5, 5), 0.5, np.float32)
    a[0, 1:4, 1:4] = 1.0
    a[0, 1, 1] = -3.0
    a[0, 2, 2] = 4.0
    x = torch.rand(1, 1, 5, 5)
    params = {n: {"width": 1} for n in ("relevance-inside", "relevance-ring", "relevance-beyond")}
    scores = xaibench.score(nn.Conv2d(1, 2, 1), x, {"region": "pixel", "pixel": [2, 2]}, a, list(params),
                            params=params)
    for name, share in (("relevance-inside", 4 / 19), ("relevance-ring", 7 / 19), ("relevance-beyond", 8 / 19)):
        np.testing.assert_allclose(scores[name], [share], atol=1e-12, err_msg=name)
    wider = xaibench.score(nn.Conv2d(1, 2, 1), x, {"region": "pixel", "pixel": [2, 2]}, a, ["relevance-beyond"],
                           params={"relevance-beyond": {"width": 2}})
    np.testing.assert_allclose(wider["relevance-beyond"], [0.0])  # a ring of 2 reaches the border
    negative = xaibench.score(nn.Conv2d(1, 2, 1), x, {"region": "pixel", "pixel": [2, 2]}, -np.abs(a) - 1,
                              ["relevance-inside"])
    assert np.isnan(negative["relevance-inside"]).all()


@pytest.mark.parametrize(("params", "message"), [({"zone": "outside"}, "zone must be one of inside, ring, beyond"),
                                                 ({"width": 0}, "width must be an integer >= 1")])
def test_share_parameters_are_checked_in_one_line(params: dict, message: str) -> None:
    with pytest.raises(XaibenchError, match=message):
        xaibench.score(nn.Conv2d(1, 2, 1), torch.rand(1, 1, 5, 5), {"region": "pixel", "pixel": [0, 0]},
                       np.random.rand(1, 5, 5), ["relevance-ring"], params={"relevance-ring": params})


def test_deletion_auc_on_a_segmenter_equals_a_hand_loop_on_the_region_score() -> None:
    """deletion-auc as registered (probabilities): the curve of
    ``sigmoid(S_1)`` with ``S_1 = sum_{i in R} z_i`` (one logit: softmax([-S, S] / 2)) as the top pixels are
    zeroed, by a plain loop, distinct map values (no ties)."""
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    net = centred(unet(seed=0, k=1), x)
    maps = np.random.default_rng(1).permutation(128).reshape(2, 8, 8).astype(np.float32)
    steps = 8
    ours = xaibench.score(net, x, None, maps, ["deletion-auc"], params={"deletion-auc": {"steps": steps}})
    with torch.no_grad():
        for i in range(2):
            region = net(x[i:i + 1])[0, 0] > 0
            order = np.argsort(-maps[i].ravel(), kind="stable")
            curve = []
            for s in range(steps + 1):
                xi = x[i].clone().reshape(-1)
                xi[torch.from_numpy(order[: s * 64 // steps].copy())] = 0
                z = net(xi.reshape(1, 1, 8, 8))[0, 0]
                curve.append(torch.sigmoid(z[region].sum()).item())
            np.testing.assert_allclose(ours["deletion-auc"][i], np.trapezoid(curve, np.linspace(0, 1, steps + 1)),
                                       atol=1e-6)


def test_the_relevance_shares_and_deletion_dice_are_nan_for_a_constant_map() -> None:
    """docs/segmentation.md: a constant map ranks no pixel (the rule for every metric), though its relevance is
    positive everywhere: every share and the Dice curves are NaN, not the zones' area fractions."""
    x, _ = _tiny_case()
    scores = xaibench.score(_threshold_segmenter(), x, {"region": "predicted"}, np.ones((1, 4, 4), np.float32),
                            ["relevance-inside", "relevance-ring", "relevance-beyond", "deletion-dice"])
    assert all(np.isnan(scores[m]).all() for m in ("relevance-inside", "relevance-ring", "relevance-beyond",
                                                   "deletion-dice"))


def test_deletion_dice_breaks_ties_in_a_seeded_random_order() -> None:
    """docs/segmentation.md: two foreground and two background pixels tie for first (steps = 8: two pixels per
    step). The first step removes 0, 1 or 2 foreground pixels (Dice 1, 6/7 or 2/3 against the four predicted)
    depending on the seeded order: the same seed and id give the same score; the seeds give more than one."""
    x, _ = _tiny_case()
    a = np.zeros((1, 4, 4), np.float32)
    a[0, 0, 0] = a[0, 0, 1] = a[0, 3, 3] = a[0, 3, 2] = 1.0
    a[0, 1, 0], a[0, 1, 1] = 0.5, 0.4

    def score(seed: int) -> float:
        return float(xaibench.score(_threshold_segmenter(), x, {"region": "predicted"}, a, ["deletion-dice"],
                                    params={"deletion-dice": {"steps": 8}}, seed=seed, ids=["s"])["deletion-dice"][0])

    assert score(3) == score(3)
    assert len({score(seed) for seed in range(12)}) > 1

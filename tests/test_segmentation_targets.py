"""Region targets (issue 41, item 3): one vocabulary, every key checked in one line, the regions they fix on the
unperturbed input, and xaibench.score / xaibench.explain on a user's own segmenter (item 5)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import xaibench
from segnets import DictSegmenter, centred, unet
from xaibench.base.errors import XaibenchError
from xaibench.suites.targets import RegionTarget, region_target

X = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(5))


def test_the_default_and_a_full_dict_parse_to_the_same_record() -> None:
    assert region_target(None) == RegionTarget("predicted", 1, "sum") == region_target({})
    assert region_target({"region": "box", "class": 2, "reduce": "mean", "box": [[1, 3], [0, 4]]}) == \
        RegionTarget("box", 2, "mean", ((1, 3), (0, 4)))
    assert region_target(RegionTarget("pixel", 0, pixel=(2, 3))).pixel == (2, 3)


@pytest.mark.parametrize(("value", "message"), [
    ({"regoin": "predicted"}, r"unknown target key 'regoin' \(did you mean 'region'\?\)"),
    ({"region": "predictd"}, r"target region 'predictd' is not one of .*\(did you mean 'predicted'\?\)"),
    ({"reduce": "max"}, r"target reduce 'max' is not one of sum, mean"),
    ({"class": -1}, r"target class must be a class index"),
    ({"class": True}, r"target class must be a class index"),
    ({"region": "box"}, r"target box is missing: region 'box' needs `box:`"),
    ({"box": [[0, 2]]}, r"target box is given for region 'predicted': remove it"),
    ({"region": "box", "box": [[3, 2], [0, 1]]}, r"0 <= start < stop"),
    ({"region": "box", "box": [[2, 2], [0, 1]]}, r"0 <= start < stop, got \[\[2, 2\], \[0, 1\]\]"),
    ({"region": "box", "box": [[0, 2.5]]}, r"target box pair must be a list of integers"),
    ({"region": "pixel", "pixel": [-1, 0]}, r"target pixel is one index >= 0"),
    ("predicted", r"a region target is a dict"),
])
def test_every_key_is_checked_in_one_line(value: object, message: str) -> None:
    with pytest.raises(XaibenchError, match=message) as info:
        region_target(value, "suite.yaml")
    assert str(info.value).startswith("suite.yaml: ") and "\n" not in str(info.value)


@pytest.mark.parametrize(("target", "masks", "message"), [
    ({"class": 3}, None, r"target class 3 is not one of the segmenter's classes 0..2"),
    ({"region": "ground-truth"}, None, r"needs masks=\(N, \*spatial\)"),
    ({"region": "box", "box": [[0, 9], [0, 2]]}, None, r"does not fit inputs of size \[8, 8\]"),
    ({"region": "pixel", "pixel": [1, 2, 3]}, None, r"does not fit inputs of size \[8, 8\]"),
    ({"region": "ground-truth"}, np.zeros((3, 8, 8), bool), r"sample\(s\) 0, 1, 2 have an empty ground-truth region"),
])
def test_regions_that_cannot_be_explained_are_refused(target: dict, masks: object, message: str) -> None:
    with pytest.raises(XaibenchError, match=message):
        xaibench.explain(unet(k=3), X, target, masks=masks, method="saliency")


def test_a_region_target_on_a_classifier_and_a_segmentation_metric_on_one_are_refused() -> None:
    classifier = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
    with pytest.raises(XaibenchError, match=r"targets is a region target, .* the model returns \(N, K\) class scores"):
        xaibench.explain(classifier, X, {"region": "predicted"}, method="saliency")
    with pytest.raises(XaibenchError, match=r"not applicable: metric 'deletion-dice' needs a segmentation model"):
        xaibench.score(classifier, X, None, np.random.rand(3, 8, 8), ["deletion-dice"])


def test_explain_takes_a_dict_output_through_output_key_and_the_ground_truth_region() -> None:
    model = DictSegmenter(k=3).eval()
    masks = np.zeros((3, 8, 8), bool)
    masks[:, 2:5, 3:7] = True
    maps = xaibench.explain(model, X, {"region": "ground-truth", "class": 2}, masks=masks, method="saliency",
                            output_key="out")
    x = X.clone().requires_grad_(True)
    (model(x)["out"][:, 2] * torch.from_numpy(masks)).sum().backward()  # the samples' scores are independent
    np.testing.assert_allclose(maps, x.grad.abs()[:, 0].numpy(), atol=1e-6, rtol=0)


def test_score_scores_a_users_segmenter_maps_on_the_region_score_as_each_sample_alone() -> None:
    """xaibench.score on a segmenter with a region target is, sample by sample, xaibench.score on the hand-written
    region-sum classifier of that sample (the classifier path, checked against peers elsewhere)."""
    net = centred(unet(seed=0, k=1), X)
    maps = np.random.default_rng(0).random((3, 8, 8)).astype(np.float32)
    metrics = ["deletion-auc", "insertion-auc", "sparseness"]
    scores = xaibench.score(net, X, {"region": "predicted", "reduce": "mean"}, maps, metrics, batch_size=16,
                            ids=["a", "b", "c"])
    with torch.no_grad():
        z = net(X)[:, 0]
    for i, sid in enumerate("abc"):
        region = (z[i] > 0).float()

        class Mean(nn.Module):
            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return (net(x)[:, 0] * region).sum((1, 2))[:, None] / region.sum()  # one logit: z of the region

        alone = xaibench.score(Mean(), X[i:i + 1], 1, maps[i:i + 1], metrics, batch_size=16, ids=[sid])
        for m in metrics:
            np.testing.assert_allclose(scores[m][i], alone[m][0], atol=1e-6, err_msg=m)
    assert scores.ids == ("a", "b", "c") and np.isfinite(scores.mean("deletion-auc"))
    for m in metrics:  # the summary is over every sample, not the last one scored
        assert scores.summary[m][0] == pytest.approx(np.mean(scores[m])) and scores.summary[m][3] == 3


def test_a_suites_string_targets_on_a_segmenter() -> None:
    from xaibench.scoring.segmentation import suite_target

    assert suite_target("predicted") == RegionTarget()
    assert suite_target({"region": "pixel", "class": 0, "reduce": "sum", "box": None, "pixel": [1, 2]}) == \
        RegionTarget("pixel", 0, "sum", None, (1, 2))
    with pytest.raises(XaibenchError, match=r"suite `target: label` explains a classifier's class; .*ground-truth"):
        suite_target("label")


def test_a_3d_segmenter_is_explained_for_its_region_as_by_hand() -> None:
    net = centred(unet(seed=0, k=2, dims=3), torch.rand(2, 1, 4, 8, 8, generator=torch.Generator().manual_seed(0)))
    x = torch.rand(2, 1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    maps = xaibench.explain(net, x, {"region": "predicted", "class": 1, "reduce": "mean"},
                            method="input-x-gradient")
    with torch.no_grad():
        region = (net(x).argmax(1) == 1).float()
    xg = x.clone().requires_grad_(True)
    ((net(xg)[:, 1] * region).sum((1, 2, 3)) / region.sum((1, 2, 3))).sum().backward()
    np.testing.assert_allclose(maps, (xg.grad * x)[:, 0].numpy(), atol=1e-6, rtol=0)
    assert maps.shape == (2, 4, 8, 8) and np.abs(maps).max() > 0

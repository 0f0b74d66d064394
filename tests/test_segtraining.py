"""Training and evaluating segmenters (issue 41, item 2): the Dice + cross-entropy loss against a hand computation
and MONAI's DiceCELoss, Dice and IoU by hand, a small UNet that learns synthetic lesions, and the model gate that
refuses a segmenter predicting background everywhere."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn
from xaibench_datasets.plugin import load_synthetic
from xaibench_models.small_unet import build_small_unet

from xaibench.base.errors import XaibenchError
from xaibench.models.gate import verdict
from xaibench.models.segtraining import SEGMENTATION, evaluate_segmentation, overlap, segmentation_loss
from xaibench.contract.specs import SEGMENTATION_RECIPE, DatasetRequest
from xaibench.models.training import train

CPU = torch.device("cpu")
#: One 2x2 image: logits z whose sigmoids are 1/2, 3/4, 1/4, 1/2, and a mask on the 2nd and 4th pixel.
Z = torch.tensor([[[[0.0, math.log(3)], [-math.log(3), 0.0]]]])
MASK = torch.tensor([[[False, True], [False, True]]])
#: By hand: BCE = mean(-ln 1/2, -ln 3/4, -ln(1 - 1/4), -ln 1/2); soft Dice = 2 (3/4 + 1/2) / (2 + 2) = 0.625.
BY_HAND = (2 * math.log(2) + 2 * math.log(4 / 3)) / 4 + 1 - 0.625


def test_loss_equals_a_hand_computation_for_one_sigmoid_logit_and_for_two_classes() -> None:
    model = nn.Identity()
    assert float(segmentation_loss(model, Z, MASK)) == pytest.approx(BY_HAND, abs=1e-5)
    # two classes with logits [0, z]: softmax gives the same probabilities, so the same loss
    assert float(segmentation_loss(model, torch.cat([torch.zeros_like(Z), Z], 1), MASK)) == pytest.approx(
        BY_HAND, abs=1e-5)


def test_loss_equals_monais_dice_ce_loss_on_two_classes() -> None:
    from monai.losses import DiceCELoss

    g = torch.Generator().manual_seed(0)
    logits, masks = torch.randn(3, 2, 8, 8, generator=g), torch.rand(3, 8, 8, generator=g) > 0.7
    peer = DiceCELoss(include_background=False, to_onehot_y=True, softmax=True, batch=True, smooth_nr=1e-5,
                      smooth_dr=1e-5)(logits, masks[:, None].float())
    assert float(segmentation_loss(nn.Identity(), logits, masks)) == pytest.approx(float(peer), abs=1e-6)


def test_with_the_datasets_classes_a_lesion_pixel_is_its_images_class() -> None:
    """K = 3: the image's label (2) is its lesion pixels' class; logits [0, 0, z] give p_0 = 1 / (2 + e^z)."""
    logits = torch.cat([torch.zeros_like(Z), torch.zeros_like(Z), Z], 1)
    p0 = 1 / (2 + torch.exp(Z[0, 0])).flatten()
    p2 = torch.exp(Z[0, 0]).flatten() * p0
    mask = MASK.flatten()
    ce = -torch.where(mask, torch.log(p2), torch.log(p0)).mean()
    lesion = 1 - p0
    dice = (2 * lesion[mask].sum() + 1e-5) / (lesion.sum() + mask.sum() + 1e-5)
    assert float(segmentation_loss(nn.Identity(), logits, MASK, torch.tensor([2]))) == pytest.approx(
        float(ce + 1 - dice), abs=1e-6)
    with pytest.raises(XaibenchError, match="outputs 3 classes per pixel: its lesion pixels are the images' classes"):
        segmentation_loss(nn.Identity(), logits, MASK)


def test_loss_refuses_logits_of_another_size() -> None:
    with pytest.raises(XaibenchError, match="must be .N, K, \\*spatial. at the input's size"):
        segmentation_loss(nn.Identity(), torch.zeros(1, 2, 4, 4), MASK)


def test_dice_and_iou_by_hand() -> None:
    pred = torch.tensor([[1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0]], dtype=torch.bool)
    true = torch.tensor([[1, 0, 1, 0], [0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]], dtype=torch.bool)
    dice, iou = overlap(pred, true)
    # |P and G| = 1, |P| = |G| = 2: Dice 2/4, IoU 1/3; both empty: 1; missed lesion: 0; disjoint: 0
    np.testing.assert_allclose(dice, [0.5, 1.0, 0.0, 0.0])
    np.testing.assert_allclose(iou, [1 / 3, 1.0, 0.0, 0.0])


@pytest.fixture(scope="module")
def lesions():  # type: ignore[no-untyped-def]
    return load_synthetic(DatasetRequest(params={"size": 32, "n_train": 96, "n_val": 32, "n_test": 48}, seed=0,
                                         image_size=None, data_root=None))


class Background(nn.Module):
    """A hand-made segmenter that predicts background everywhere: logits (0 for lesion, 1 for background)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.ones_like(x[:, :1]), torch.zeros_like(x[:, :1])], 1)


def test_the_gate_refuses_a_segmenter_predicting_background(lesions) -> None:  # type: ignore[no-untyped-def]
    evaluation = evaluate_segmentation(Background(), lesions.test, CPU, seed=0)
    empty = int((lesions.test.masks.flatten(1).sum(1) == 0).sum())
    assert evaluation["empty_masks"] == empty > 0
    assert evaluation["dice"] == evaluation["background_dice"] == pytest.approx(empty / len(lesions.test))
    assert evaluation["gain"] == 0 and evaluation["gain_ci"] == [0, 0]
    gate = verdict(evaluation)
    assert not gate["learned"]
    assert gate["reason"].startswith(f"did not learn: test Dice {empty / 48:.3f} is not above predicting background "
                                     f"everywhere ({empty / 48:.3f})")


def test_a_small_unet_learns_synthetic_lesions_above_background(lesions) -> None:  # type: ignore[no-untyped-def]
    recipe = replace(SEGMENTATION_RECIPE, epochs=8, batch_size=8)
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = build_small_unet(2, 1, "image", width=8, depth=2)
        runs.append(train(model, lesions.train, lesions.val, recipe, seed=0, device=CPU, objective=SEGMENTATION))
    for a, b in zip(runs[0].state_dict().values(), runs[1].state_dict().values()):
        assert torch.equal(a, b)  # deterministic: the same seed trains the same weights
    evaluation = evaluate_segmentation(runs[0], lesions.test, CPU, seed=0)
    assert evaluation["dice_ci"][0] > evaluation["background_dice"]
    assert evaluation["iou_ci"][0] <= evaluation["iou"] <= evaluation["iou_ci"][1]
    assert verdict(evaluation) == {"learned": True, "p_value": None, "reason": ""}


def test_training_a_segmenter_needs_masks(lesions) -> None:  # type: ignore[no-untyped-def]
    bare = replace(lesions.train, masks=None)
    with pytest.raises(XaibenchError, match="is trained on masks .Dice., but this dataset has none"):
        train(Background(), bare, lesions.val, SEGMENTATION_RECIPE, seed=0, device=CPU, objective=SEGMENTATION)

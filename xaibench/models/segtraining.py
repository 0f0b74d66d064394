"""Training and evaluating segmenters: Dice + cross-entropy on the masks, Dice and IoU on the test split.

A segmenter returns ``(N, K, *spatial)`` logits at the input's size; the dataset's masks
``(N, *spatial)`` (bool: lesion or background) are its targets. Class 0 is the background.
``K = 2`` (background, lesion: the harness's segmenters, :data:`SEGMENT_CLASSES`) is read with
a softmax, ``K = 1`` with a sigmoid (one logit per pixel); logits pass through
:func:`~xaibench.contract.outputs.probability_scale`, so a one-logit model the output contract shows as
``[-z, z]`` is trained on its own ``sigmoid(z)``. ``K > 2`` (a model built with the dataset's
classes) segments each lesion as its image's class: the target of a lesion pixel is the image's
label ``y`` (class 0's images, "normal", have no lesion), of a background pixel 0. The lesion is
every pixel not predicted as background; its probability is ``1 - p_0``.

The loss (:func:`segmentation_loss`) is the sum of the pixel-mean cross-entropy (the binary
cross-entropy for ``K = 1``) and the soft Dice loss of the lesion over the whole batch
(``1 - (2 sum p t + eps) / (sum p + sum t + eps)``, ``p = 1 - p_0``, ``eps`` = :data:`SMOOTH`):
nnU-Net's "Dice + CE" with batch Dice (Isensee et al., Nature Methods 2021; for ``K = 2``
MONAI's ``DiceCELoss`` with ``include_background=False, batch=True``). Training is :func:`xaibench.models.training.train`'s
loop (seeded, on ``recipe.threads`` threads, best-epoch weights kept) with early stopping on
the validation Dice, ties broken by the validation loss.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from xaibench.scoring import stats
from xaibench.base.errors import XaibenchError
from xaibench.contract.outputs import probability_scale
from xaibench.contract.specs import Samples
from xaibench.models.training import Objective

#: The classes a segmenter is built with: its masks' background and lesion, one logit map each.
SEGMENT_CLASSES = ("background", "lesion")
#: The smoothing term of the soft Dice loss, in its numerator and denominator (MONAI's ``smooth_nr``, ``smooth_dr``).
SMOOTH = 1e-5


def _lesion_probability(model: nn.Module, logits: torch.Tensor) -> torch.Tensor:
    """``(N, *spatial)`` probability of a lesion (any class but the background, 0) from ``(N, K, *spatial)`` logits."""
    if logits.shape[1] == 1:
        return torch.sigmoid(logits[:, 0])
    return 1 - torch.softmax(logits * probability_scale(model), 1)[:, 0]


def segmentation_loss(model: nn.Module, logits: torch.Tensor, masks: torch.Tensor,
                      labels: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy + soft Dice loss (module docstring) of ``(N, K, *spatial)`` logits against ``(N, *spatial)``
    bool masks (and for K > 2 the images' ``(N,)`` labels, the class of their lesion pixels): a scalar, 0 at best.
    Raises :class:`XaibenchError` for logits of another spatial size, or K > 2 without labels or with a label
    that is not one of the K classes."""
    k = int(logits.shape[1])
    if logits.shape[0] != masks.shape[0] or logits.shape[2:] != masks.shape[1:]:
        raise XaibenchError(f"{type(model).__name__} gives logits {tuple(logits.shape)} for masks "
                            f"{tuple(masks.shape)}: a segmenter's output must be (N, K, *spatial) at the input's size")
    if k > 2 and (labels is None or int(labels.max()) >= k):
        raise XaibenchError(f"{type(model).__name__} outputs {k} classes per pixel: its lesion pixels are the images' "
                            f"classes, which must be 0..{k - 1}; build it with 2 classes (background, lesion)")
    target = masks.to(logits.dtype)
    if k == 1:
        ce = F.binary_cross_entropy_with_logits(logits[:, 0], target)
    else:
        pixels = masks.long() if k == 2 else masks.long() * labels.view(-1, *[1] * (masks.dim() - 1))  # type: ignore[union-attr]
        ce = F.cross_entropy(logits * probability_scale(model), pixels)
    p = _lesion_probability(model, logits)
    dice = (2 * (p * target).sum() + SMOOTH) / (p.sum() + target.sum() + SMOOTH)
    return ce + 1 - dice


def _batch_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    return segmentation_loss(model, model(x), masks, y)


def predict_masks(model: nn.Module, x: torch.Tensor, device: torch.device, batch_size: int = 64) -> torch.Tensor:
    """Predicted lesion masks ``(N, *spatial)`` bool on the CPU: the pixels whose argmax is not the background
    (a positive logit of a one-logit model; a tie goes to the background, as the predicted region's does)."""
    model.eval()
    with torch.inference_mode():
        return torch.cat([_predicted(model(x[i : i + batch_size].to(device))).cpu() for i in range(0, len(x), batch_size)])


def _predicted(logits: torch.Tensor) -> torch.Tensor:
    """``(N, *spatial)`` bool: the pixels predicted as a lesion by ``(N, K, *spatial)`` logits."""
    return logits[:, 0] > 0 if logits.shape[1] == 1 else logits.argmax(1) != 0


def overlap(pred: torch.Tensor, masks: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample ``(dice, iou)``, each ``(N,)`` in [0, 1], of ``(N, *spatial)`` bool predictions against masks.

    Dice ``2|P and G| / (|P| + |G|)`` (Dice 1945), IoU ``|P and G| / |P or G|`` (Jaccard 1912); both are 1 where
    prediction and mask are both empty (a correct "no lesion"), so predicting background everywhere scores the
    share of empty masks, never NaN.
    """
    p, g = pred.flatten(1), masks.flatten(1)
    inter = (p & g).sum(1).double()
    total = p.sum(1).double() + g.sum(1).double()
    union = (p | g).sum(1).double()
    empty = union == 0
    dice = torch.where(empty, torch.ones_like(inter), 2 * inter / total.clamp_min(1))
    iou = torch.where(empty, torch.ones_like(inter), inter / union.clamp_min(1))
    return dice.numpy(), iou.numpy()


def validation_dice(model: nn.Module, val_set: Samples, device: torch.device,
                    batch_size: int = 64) -> tuple[float, float]:
    """``(mean Dice, -mean loss)`` on ``val_set``, compared lexicographically by early stopping; an empty split
    scores ``(0, 0)``."""
    if not len(val_set):
        return 0.0, 0.0
    if val_set.masks is None:
        raise XaibenchError("the validation split has no masks: a segmenter is early-stopped on its Dice")
    model.eval()
    with torch.inference_mode():
        losses, preds = [], []
        for i in range(0, len(val_set), batch_size):
            logits = model(val_set.x[i : i + batch_size].to(device)).float()
            masks = val_set.masks[i : i + batch_size].to(device)
            labels = val_set.y[i : i + batch_size].to(device)
            losses.append(float(segmentation_loss(model, logits, masks, labels)) * len(masks))
            preds.append(_predicted(logits).cpu())
    dice, _ = overlap(torch.cat(preds), val_set.masks)
    return float(dice.mean()), -sum(losses) / len(val_set)


#: The objective :func:`xaibench.models.training.train` trains a segmenter with.
SEGMENTATION = Objective(loss=_batch_loss, score=validation_dice, name="Dice")


def evaluate_segmentation(model: nn.Module, samples: Samples, device: torch.device, seed: int) -> dict[str, Any]:
    """Segmentation quality on ``samples`` (the test split), for the leaderboard and the model gate.

    Returns ``{"task": "segmentation", "n", "dice", "dice_ci", "iou", "iou_ci", "background_dice", "gain",
    "gain_ci", "empty_masks"}``: the mean per-sample Dice and IoU (:func:`overlap`) with their seeded 95% percentile
    bootstrap CIs (:func:`xaibench.scoring.stats.summarize`, seeded by ``seed``), the Dice of predicting background
    everywhere (the share of empty masks), and the mean paired gain of the model's Dice over it with its CI (what
    :func:`xaibench.models.gate.verdict` tests). Raises :class:`XaibenchError` when ``samples`` has no masks.
    """
    if samples.masks is None:
        raise XaibenchError("the test split has no masks: a segmenter's Dice and IoU need them")
    dice, iou = overlap(predict_masks(model, samples.x, device), samples.masks)
    background, _ = overlap(torch.zeros_like(samples.masks), samples.masks)
    out: dict[str, Any] = {"task": "segmentation", "n": len(samples),
                           "background_dice": float(background.mean()) if len(samples) else float("nan"),
                           "empty_masks": int((samples.masks.flatten(1).sum(1) == 0).sum())}
    for name, values in (("dice", dice), ("iou", iou), ("gain", dice - background)):
        mean, low, high, _ = stats.summarize(values, stats.seed_from(seed, name), samples.ids)
        out[name], out[f"{name}_ci"] = mean, [low, high]
    return out

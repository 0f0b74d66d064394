"""The harness's trainer: no pretrained weights exist offline, so models are trained here.

Deliberately plain (Adam, cross-entropy, seeded shuffling and augmentation, early
stopping on validation accuracy with ties broken by validation loss and a minimum
number of epochs, best-epoch weights kept) so that a checkpoint is
a deterministic function of its cache key on a given CPU, whatever its thread count: the
trainer runs on ``recipe.threads`` torch threads (1 by default, :func:`training_threads`).
"""
from __future__ import annotations

import copy
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from xaibench.base.errors import SuiteError, XaibenchError
from xaibench.contract.outputs import probability_scale, unwrap
from xaibench.contract.specs import AUGMENTATIONS, Samples, TrainRecipe


def recipe_with(recipe: TrainRecipe, overrides: Mapping[str, Any]) -> TrainRecipe:
    """Apply a suite's ``train:`` overrides, refusing unknown fields by name."""
    fields = set(TrainRecipe.__dataclass_fields__)
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise SuiteError(f"unknown training option(s) {', '.join(unknown)}; known: {', '.join(sorted(fields))}")
    values = dict(overrides)
    if "augment" in values:
        values["augment"] = tuple(values["augment"])
        bad = sorted(set(values["augment"]) - set(AUGMENTATIONS))
        if bad:
            raise SuiteError(f"unknown augmentation(s) {', '.join(bad)}; known: {', '.join(AUGMENTATIONS)}")
    return replace(recipe, **values)


#: Largest angle, in degrees, of the "rotate" augmentation (seed 001 rotates its ultrasound images slightly).
MAX_ROTATION = 15.0


def _rotate(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Rotate each image by its own uniform angle in [-MAX_ROTATION, MAX_ROTATION] degrees (zeros fill the corners)."""
    angle = (torch.rand(x.shape[0], generator=gen) * 2 - 1) * MAX_ROTATION * torch.pi / 180
    cos, sin, zero = torch.cos(angle), torch.sin(angle), torch.zeros_like(angle)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1).to(x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _augment(x: torch.Tensor, names: tuple[str, ...], gen: torch.Generator,
             masks: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Augment a batch; ``masks`` (N, *spatial) get the same geometric transforms (rotated masks re-thresholded)."""
    if masks is not None:
        x = torch.cat([x, masks[:, None].to(x.dtype)], 1)
    n = x.shape[0]
    for name in names:
        if name == "hflip":
            flip = torch.rand(n, generator=gen) < 0.5
            x = torch.where(flip.view(-1, *[1] * (x.dim() - 1)), x.flip(-1), x)
        elif name == "vflip" and x.dim() == 4:
            flip = torch.rand(n, generator=gen) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-2), x)
        elif name == "rot90" and x.dim() == 4 and x.shape[-1] == x.shape[-2]:
            k = int(torch.randint(0, 4, (1,), generator=gen))
            x = torch.rot90(x, k, dims=(-2, -1))
        elif name == "rotate" and x.dim() == 4:
            x = _rotate(x, gen)
        elif name == "shift":
            s = int(torch.randint(-3, 4, (1,), generator=gen))
            x = torch.roll(x, s, dims=-1)
    if masks is None:
        return x, None
    return x[:, :-1], x[:, -1] >= 0.5


def _loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor:
    """The model's own ``training_loss(x, y, masks)`` when it is trained with masks, else cross-entropy of its
    class probabilities (:func:`~xaibench.contract.outputs.probability_scale`: a one-logit model's is its BCE)."""
    if masks is not None:
        return model.training_loss(x, y, masks)
    return F.cross_entropy(model(x) * probability_scale(model), y)


@dataclass(frozen=True)
class Objective:
    """What :func:`train` minimises and early-stops on, for models other than classifiers (segmenters:
    :data:`xaibench.models.segtraining.SEGMENTATION`).

    ``loss(model, x, y, masks) -> scalar`` on a training batch (``masks`` the split's, augmented with ``x``);
    ``score(model, val_set, device) -> tuple`` on the validation split, compared lexicographically (higher is
    better); ``name``: what ``score[0]`` is, in progress output ("Dice").
    """

    loss: Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
    score: Callable[[nn.Module, Samples, torch.device], tuple[float, float]]
    name: str


def train(model: nn.Module, train_set: Samples, val_set: Samples, recipe: TrainRecipe, seed: int,
          device: torch.device, on_epoch: Callable[[int, int, float, float], None] | None = None,
          objective: Objective | None = None) -> nn.Module:
    """Train ``model`` in place and return it in eval mode with its best validation weights.

    A model that defines ``training_loss(x, y, masks) -> scalar`` is trained with that loss
    and the training split's masks (a location-supervised model): the trainer stays free of
    any particular model, and the masks follow the images through every augmentation. With
    ``recipe.location_supervision`` False it gets cross-entropy alone and the masks are never read.
    ``on_epoch(epoch, epochs, mean training loss, validation accuracy)`` is called after each
    epoch (1-based), for progress output. An ``objective`` replaces cross-entropy and validation accuracy by its
    loss (given the training split's masks, which it then needs) and its validation score.
    """
    with training_threads(recipe.threads, device):
        return _train(model, train_set, val_set, recipe, seed, device, on_epoch, objective)


@contextmanager
def training_threads(threads: int, device: torch.device) -> Iterator[None]:
    """Run the block on ``threads`` torch threads when training on a CPU, then restore the caller's count.

    ``threads`` is ``TrainRecipe.threads``: 0 (or a non-CPU device, whose passes do not run on these threads)
    leaves the count as it is.
    """
    before = torch.get_num_threads()
    if threads and device.type == "cpu":
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def _train(model: nn.Module, train_set: Samples, val_set: Samples, recipe: TrainRecipe, seed: int,
           device: torch.device, on_epoch: Callable[[int, int, float, float], None] | None,
           objective: Objective | None) -> nn.Module:
    masks, loss_of, score_of = None, _loss, validation_score
    if objective is not None:
        if train_set.masks is None:
            raise XaibenchError(f"{type(unwrap(model)).__name__} is trained on masks ({objective.name}), but this "
                                f"dataset has none: use a dataset with masks")
        masks, loss_of, score_of = train_set.masks, objective.loss, objective.score
    elif callable(getattr(model, "training_loss", None)) and recipe.location_supervision:
        if train_set.masks is None:
            raise XaibenchError(f"{type(model).__name__} is trained with masks (it defines training_loss), "
                                f"but this dataset has none: use a dataset with masks or boxes, or set "
                                f"train.location_supervision: false (labels only)")
        masks = train_set.masks
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    best, best_state, stale = (-1.0, float("-inf")), copy.deepcopy(model.state_dict()), 0
    n = len(train_set)
    for epoch in range(recipe.epochs):
        model.train()
        losses = []
        order = torch.randperm(n, generator=gen)
        for start in range(0, n, recipe.batch_size):
            idx = order[start : start + recipe.batch_size]
            if idx.numel() < 2:  # BatchNorm cannot train on one sample
                continue
            xb, mb = _augment(train_set.x[idx], recipe.augment, gen, None if masks is None else masks[idx])
            loss = loss_of(model, xb.to(device), train_set.y[idx].to(device), None if mb is None else mb.to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        score = score_of(model, val_set, device)
        if on_epoch is not None:
            on_epoch(epoch + 1, recipe.epochs, float(np.mean(losses)) if losses else float("nan"), score[0])
        if score > best:
            best, best_state, stale = score, copy.deepcopy(model.state_dict()), 0
        else:
            stale += 1
            if recipe.patience and stale >= recipe.patience and epoch + 1 >= recipe.min_epochs:
                break
    model.load_state_dict(best_state)
    return model.eval()


def validation_score(model: nn.Module, val_set: Samples, device: torch.device,
                     batch_size: int = 256) -> tuple[float, float]:
    """``(accuracy, -mean cross-entropy)`` on ``val_set``, compared lexicographically by early stopping.

    Accuracy ties (common on a small validation split while a model still predicts one
    class) are broken by the validation loss, so an epoch that is more confident in the
    right classes counts as progress. An empty split scores ``(0, 0)``: every epoch ties.
    """
    if not len(val_set):
        return 0.0, 0.0
    model.eval()
    with torch.inference_mode():
        logits = torch.cat([model(val_set.x[i : i + batch_size].to(device)).float().cpu()
                            for i in range(0, len(val_set), batch_size)])
    acc = float((logits.argmax(1) == val_set.y).float().mean())
    return acc, -float(F.cross_entropy(logits * probability_scale(model), val_set.y))


def predict(model: nn.Module, x: torch.Tensor, device: torch.device, batch_size: int | None = None) -> torch.Tensor:
    """Predicted classes (argmax of the outputs) of ``(N, C, *spatial)`` inputs: ``(N,)`` int64 on the CPU, in
    batches of ``batch_size`` (default: the engine's memory budget, :func:`~xaibench.scoring.engine.auto_batch_size`; a
    fixed 256 held 16 GB of activations for 100 volumes at 128^3)."""
    from xaibench.scoring.engine import auto_batch_size

    model.eval()
    if batch_size is None:
        batch_size = auto_batch_size(model, x[:1], device) if len(x) else 1
    with torch.inference_mode():
        return torch.cat([model(x[i : i + batch_size].to(device)).argmax(1).cpu() for i in range(0, len(x), batch_size)])


def _defined(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def evaluate(model: nn.Module, samples: Samples, device: torch.device,
             class_names: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Accuracy, macro precision, recall and F1 (seed 001's table) and the same per class on ``samples``.

    Per class (scikit-learn's ``precision_recall_fscore_support`` over the classes that
    occur among the labels or the predictions): ``per_class[name] = {precision, recall,
    f1, support}``, with precision None for a class never predicted and recall None for a
    class absent from the labels (undefined, not 0; None, not NaN, so the JSON exports stay valid). The macro values are the means over
    those classes with an undefined value counted as 0 (scikit-learn's
    ``zero_division=0``). ``class_names`` name the classes (default: their indices).
    """
    from sklearn.metrics import precision_recall_fscore_support  # lazy: listing plugins must not import sklearn

    pred = predict(model, samples.x, device).numpy()
    true = samples.y.numpy()
    classes = np.unique(np.concatenate([true, pred]))
    precision, recall, f1, support = (precision_recall_fscore_support(true, pred, labels=classes, zero_division=np.nan)
                                      if classes.size else ([], [], [], []))
    names = class_names or tuple(str(c) for c in range(int(classes.max(initial=0)) + 1))
    return {
        "accuracy": float(np.mean(pred == true)),
        "precision": float(np.mean(np.nan_to_num(precision))),
        "recall": float(np.mean(np.nan_to_num(recall))),
        "f1": float(np.mean(np.nan_to_num(f1))),
        "n": int(len(true)),
        "majority": float(np.bincount(true).max() / max(len(true), 1)),
        "per_class": {names[c]: {"precision": _defined(p), "recall": _defined(r), "f1": _defined(f), "support": int(k)}
                      for c, p, r, f, k in zip(classes, precision, recall, f1, support)},
    }

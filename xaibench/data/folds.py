"""k-fold cross-validation (a suite's ``folds: K``): fold ``k`` of a dataset as a bundle of its own.

All of a dataset's samples (its train, validation and test splits pooled) are cut into
``K`` folds by scikit-learn's ``StratifiedKFold`` (class proportions kept), or
``StratifiedGroupKFold`` when the dataset gives each sample a group (patient) id, so one
patient's images never sit on both sides; both shuffled with the suite's seed. Fold
``k`` is the held-out test split; the rest is split again the same way into training
and validation, with the validation share of the dataset's own split (fewer inner folds
when a class has too few samples; below two, no validation split). Each fold is a
dataset with its own fingerprint, so its model, maps and cells are cached and resumed
on their own, and every held-out sample is scored exactly once across the folds
(Kohavi, A study of cross-validation and bootstrap for accuracy estimation and model
selection, IJCAI 1995).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from xaibench.base.errors import XaibenchError
from xaibench.contract.specs import DataBundle, Samples


def pooled(bundle: DataBundle) -> Samples:
    """The train, validation and test samples of ``bundle`` as one :class:`Samples`, in that order."""
    parts = (bundle.train, bundle.val, bundle.test)

    def cat(name: str) -> torch.Tensor | None:
        values = [getattr(p, name) for p in parts if len(p)]
        if any(v is None for v in values):
            if any(v is not None for v in values):
                raise XaibenchError(f"some splits have {name} and others not: folds need them in every split or none")
            return None
        return torch.cat(values)

    return Samples(x=cat("x"), y=cat("y"), ids=sum((p.ids for p in parts), ()), masks=cat("masks"),
                   regions=cat("regions"))


def _split(y: np.ndarray, groups: np.ndarray | None, n_splits: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    if groups is None:
        return list(StratifiedKFold(n_splits, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))
    return list(StratifiedGroupKFold(n_splits, shuffle=True, random_state=seed).split(np.zeros(len(y)), y, groups))


def fold_bundle(bundle: DataBundle, fold: int, folds: int, seed: int) -> DataBundle:
    """Fold ``fold`` (1-based) of ``folds`` of ``bundle``: its held-out part as the test split.

    Raises :class:`XaibenchError` when a class has fewer samples (or the dataset fewer
    groups) than folds, and when a sample id has no group in ``bundle.groups``.
    """
    everything = pooled(bundle)
    y = everything.y.numpy()
    groups = None
    if bundle.groups is not None:
        missing = [i for i in everything.ids if i not in bundle.groups]
        if missing:
            raise XaibenchError(f"sample {missing[0]!r} has no group id ({len(missing)} without): give every sample one")
        groups = np.asarray([bundle.groups[i] for i in everything.ids])
    counts = np.bincount(y, minlength=bundle.num_classes)
    short = [f"{bundle.class_names[c]} ({n})" for c, n in enumerate(counts) if 0 < n < folds]
    if short:
        raise XaibenchError(f"{folds}-fold cross-validation needs at least {folds} samples per class; "
                            f"{', '.join(short)} have fewer: lower 'folds'")
    if groups is not None and len(set(groups)) < folds:
        raise XaibenchError(f"{folds}-fold cross-validation needs at least {folds} groups (patients), "
                            f"the dataset has {len(set(groups))}: lower 'folds'")
    rest, held_out = _split(y, groups, folds, seed)[fold - 1]
    share = len(bundle.val) / max(len(bundle.train) + len(bundle.val), 1)
    train_idx, val_idx = rest, rest[:0]
    # as many inner folds as give the validation share, but no more than the rarest class has samples
    inner_splits = min([max(2, round(1 / share))] + [int(n) for n in np.bincount(y[rest]) if n]) if share > 0 else 0
    if groups is not None:
        inner_splits = min(inner_splits, len(set(groups[rest])))
    if inner_splits >= 2:
        inner = _split(y[rest], None if groups is None else groups[rest], inner_splits, seed + fold)
        train_idx, val_idx = rest[inner[0][0]], rest[inner[0][1]]
    grouped = "grouped by patient, " if groups is not None else ""
    notes = (f"{bundle.notes}; fold {fold} of {folds} (stratified {grouped}{folds}-fold cross-validation, seed {seed}): "
             f"{len(held_out)} held out, {len(train_idx)} train, {len(val_idx)} validation")
    return replace(bundle, train=everything.subset(np.sort(train_idx)), val=everything.subset(np.sort(val_idx)),
                   test=everything.subset(np.sort(held_out)), notes=notes)

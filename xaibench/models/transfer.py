"""Fine-tuning from a source dataset: seed 002's transfer protocol (a suite model's ``fine_tune_from``).

A model is first trained on an annotated source dataset (with location supervision
when it defines ``training_loss``), then every parameter and buffer of that model
starts the training of the same architecture on the suite's (target) dataset; the
target stage follows the entry's own ``train:`` options, e.g.
``location_supervision: false`` to fine-tune on the labels alone (Fan & Li, seed 002,
section 4; Yosinski et al., How transferable are features in deep neural networks?,
NeurIPS 2014).

The classification head is the set of tensors whose shape depends on the number of
classes (found by building the architecture for one class more, not by name): it is
re-initialised when the two datasets have different numbers of classes and kept
when they have the same number (the classes are then taken to correspond in order).
Any other difference is an architecture mismatch and is refused.
"""
from __future__ import annotations

import torch
from torch import nn

from xaibench.base.errors import XaibenchError


def class_dependent(built: nn.Module, probe: nn.Module) -> frozenset[str]:
    """Names of ``built``'s state tensors whose shape differs in ``probe`` (the same architecture for one class more)."""
    other = probe.state_dict()
    return frozenset(k for k, v in built.state_dict().items() if k in other and other[k].shape != v.shape)


def initialise(target: nn.Module, source: nn.Module, head: frozenset[str], same_classes: bool, who: str) -> list[str]:
    """Copy ``source``'s state into ``target`` in place; return the names left at ``target``'s initial values.

    ``head`` are the class-dependent tensors (:func:`class_dependent`), copied only when
    ``same_classes``. Raises :class:`XaibenchError` (one line naming ``who``) when a tensor
    is missing from either model or differs in shape outside the head (the source model has
    another architecture, or the datasets have different input channels).
    """
    own, theirs = target.state_dict(), source.state_dict()
    missing = sorted(set(own) ^ set(theirs))
    if missing:
        raise XaibenchError(f"{who}: the source model's architecture differs ({missing[0]} is in only one of the "
                            f"two): train the same model with the same parameters on both datasets")
    loaded: dict[str, torch.Tensor] = {}
    for key, value in theirs.items():
        if key in head and not same_classes:
            continue
        if value.shape != own[key].shape:
            raise XaibenchError(f"{who}: {key} is {tuple(value.shape)} in the source model but {tuple(own[key].shape)} "
                                f"here: the source dataset's input channels or size differ from this dataset's; "
                                f"use a source dataset with the same channels")
        loaded[key] = value.detach().to(own[key].device)
    target.load_state_dict(loaded, strict=False)
    return sorted(set(own) - set(loaded))

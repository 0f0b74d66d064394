"""The spec of published weights a model may start from (:mod:`xaibench.models.pretrained` finds and loads them)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # torch loads on first use, not to register specs (xaibench.contract.lazy)
    import torch


@dataclass(frozen=True)
class PretrainedWeights:
    """Published weights a model can start from (a suite's ``weights: <name>``), e.g. torchvision's ImageNet ones.

    ``url`` ends in a file name of torchvision's form ``<arch>-<sha256 prefix>.pth``: the file is
    accepted only when its SHA-256 starts with that prefix (what ``torch.hub`` checks). ``new`` are the
    dotted module paths (or parameter names) that are always freshly initialised instead of loaded: the
    classification head, replaced for the dataset's classes. ``unused`` are prefixes of keys in the
    file that the built model may lack (auxiliary heads). ``convert`` maps the file's state dict to
    the module's key names (older checkpoint formats). Every other key must match the built model
    in name and shape, or loading stops with one line.
    """

    url: str
    new: tuple[str, ...]
    unused: tuple[str, ...] = ()
    convert: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None
    description: str = ""

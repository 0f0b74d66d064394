"""The model output contract: what a user's model returns becomes ``(N, K)`` logits, or one line says what to change.

Every method, metric and the trainer read a model's output as ``(N, K)`` logits,
``K`` the dataset's classes, whose softmax gives the class probabilities. Models that
people bring return other things; :func:`conform` checks the output once, on a dummy
batch, when the model is built (before training or loading a checkpoint), and wraps
the model in an :class:`OutputAdapter` when the output needs converting:

- ``(N, 1)`` for two classes (a sigmoid/BCE binary classifier with logit ``z``): the
  adapter emits ``[-z, z]``, so every method explains the user's own units: ``z`` for
  class 1 and ``-z`` for class 0 (the logit of class 0 against class 1; a gradient, an
  integrated gradient, a CAM or an LRP map of class 0 is the negative of class 1's, and
  completeness compares its sum with ``-(z(x) - z(b))``). The class probabilities are
  the user's ``sigmoid(z)`` and ``1 - sigmoid(z)``: the softmax of the logits times
  :func:`probability_scale` (1/2 here, 1 for every other model), which every
  probability the harness reads goes through (:meth:`xaibench.scoring.engine.Engine.select`, the
  trainer's cross-entropy, which then equals ``binary_cross_entropy_with_logits(z, y)``).
  ``[0, z]`` would give the class-0 logit no gradient (a constant: an empty map), and
  the softmax of ``[-z, z]`` alone would be ``sigmoid(2z)``.
- ``output: probabilities`` (the model ends in a softmax or sigmoid): the adapter emits
  ``log p`` (``[log(1 - p), log p]`` for one output), so the harness's softmax gives back
  ``p`` exactly and nothing is softmaxed twice. Probabilities below the smallest normal
  float32 (1.2e-38) are taken as that value so the log stays finite.
- ``(N, K, *spatial)`` at the input's size (2D or 3D; ``K = 1`` for a sigmoid's binary mask, read as
  ``[-z, z]`` per pixel as above): a *segmentation model*. It is always wrapped (``OutputAdapter.dense``),
  so :func:`dense` tells a segmenter from a classifier without a forward pass; every method and metric
  reads it through a region target (:mod:`xaibench.scoring.segmentation`), never directly.
- tuples, lists, named tuples and dicts (``(logits, embedding)``, torchvision's
  ``GoogLeNetOutputs``): the suite names the class scores with ``output_index: i`` or
  ``output_key: name``; without one the error names the key to add.

A wrong class count is refused, for harness-trained and loaded models alike. The
adapter keeps the user's layer names: ``get_submodule("features.3")`` and attribute
access resolve on the wrapped model, and checkpoints hold the wrapped model's own
state dict (:func:`unwrap`).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from xaibench.base.errors import XaibenchError
from xaibench.contract.specs import OUTPUT_FORMS


@dataclass(frozen=True)
class OutputForm:
    """How to read a model's output: ``kind`` one of :data:`xaibench.contract.specs.OUTPUT_FORMS`, and which element of a tuple or dict."""

    kind: str = "logits"
    index: int | None = None
    key: str | None = None


class OutputAdapter(nn.Module):
    """Wraps ``model`` so that ``forward`` returns ``(N, K)`` logits (see the module docstring)."""

    def __init__(self, model: nn.Module, form: OutputForm, single: bool, dense: bool = False) -> None:
        super().__init__()
        self.wrapped = model
        self.form = form
        self.single = single
        #: The output is ``(N, K, *spatial)`` per-pixel logits: a segmentation model (:func:`dense`).
        self.dense = dense

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, K)`` logits (``(N, K, *spatial)`` for a :func:`dense` model) of the user's model on ``x``
        ``(N, C, *spatial)``, per the declared output form."""
        out = select(self.wrapped(x), self.form)
        if self.form.kind == "probabilities":
            p = out.float().clamp_min(torch.finfo(torch.float32).tiny)
            if self.single:
                p1 = p[:, 0]
                return torch.stack([torch.log1p(-p1.clamp_max(1 - torch.finfo(torch.float32).eps)), torch.log(p1)], 1)
            return torch.log(p)
        if self.single:
            z = out[:, 0]
            return torch.stack([-z, z], 1)
        return out

    def get_submodule(self, target: str) -> nn.Module:
        """Layer names are the user's: ``features.3`` names ``self.wrapped.features[3]``; the adapter's own
        names (``wrapped.features.3``, what ``named_modules()`` and fx traces of the adapter give) resolve too."""
        if target.partition(".")[0] == "wrapped" and not hasattr(self.wrapped, "wrapped"):
            return super().get_submodule(target)
        return self.wrapped.get_submodule(target) if target else self

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("wrapped"), name)


#: The output contract's version, in the cache key of every model a suite brings with ``factory:`` (the way a
#: one-logit model enters a suite): maps and scores cached when one-logit models were explained as ``+-z/2``
#: (version 1) are not reused.
CONTRACT_VERSION = 2
#: The factor of a one-logit model's logits ``[-z, z]`` whose softmax is ``[1 - sigmoid(z), sigmoid(z)]``.
ONE_LOGIT_SCALE = 0.5


def one_logit(model: nn.Module) -> bool:
    """True for the :class:`OutputAdapter` of a one-logit model returning logits: its outputs are ``[-z, z]``."""
    return isinstance(model, OutputAdapter) and model.single and model.form.kind == "logits"


def dense(model: nn.Module) -> bool:
    """True for a segmentation model as :func:`conform` returns it: its outputs are ``(N, K, *spatial)`` per-pixel
    logits (``K >= 2``: a one-logit mask's ``z`` comes as ``[-z, z]``), at the input's spatial size."""
    return isinstance(model, OutputAdapter) and model.dense


def probability_scale(model: nn.Module) -> float:
    """``s`` such that ``softmax(s * model(x))`` are ``model``'s class probabilities: :data:`ONE_LOGIT_SCALE`
    (1/2) for a one-logit model (:func:`one_logit`: ``softmax([-z, z] / 2) = [1 - sigmoid(z), sigmoid(z)]``),
    1 for every other model (its outputs are logits, or ``log p`` for declared probabilities)."""
    return ONE_LOGIT_SCALE if one_logit(model) else 1.0


def unwrap(model: nn.Module) -> nn.Module:
    """The user's model inside an :class:`OutputAdapter` (``model`` itself otherwise): what checkpoints hold."""
    return model.wrapped if isinstance(model, OutputAdapter) else model


def select(out: Any, form: OutputForm) -> Any:
    """The class scores inside a tuple/list/named tuple/dict output, as ``form`` names them."""
    if isinstance(out, torch.Tensor):
        return out
    if form.key is not None:
        return out[form.key] if isinstance(out, dict) else getattr(out, form.key)
    if form.index is not None and isinstance(out, (tuple, list)):
        return out[form.index]
    return out


def _shape(v: Any) -> str:
    return str(tuple(v.shape)) if isinstance(v, torch.Tensor) else type(v).__name__


def _scores_hint(items: Sequence[tuple[Any, Any]], n: int, num_classes: int) -> tuple[Any, str]:
    """The first element shaped like class scores, and a phrase listing every element's shape."""
    shapes = ", ".join(f"{k}: {_shape(v)}" for k, v in items)
    fits = [k for k, v in items if isinstance(v, torch.Tensor) and v.dim() >= 2 and v.shape[0] == n
            and (v.shape[1] == num_classes or (num_classes == 2 and v.shape[1] == 1))]
    return (fits[0] if fits else None), shapes


#: How an error tells the user to name the class scores: in a suite entry, or as a keyword of :mod:`xaibench.api`.
NAMING = {"suite": "add `{option}: {value}` to its suite entry", "python": "pass {option}={value!r}"}


def _refuse_container(out: Any, who: str, n: int, num_classes: int, naming: str = "suite") -> None:
    """Raise the one-line error for a tuple/dict output whose class scores the suite did not name."""
    if isinstance(out, dict) or hasattr(out, "_fields"):
        items = list(out.items()) if isinstance(out, dict) else [(f, getattr(out, f)) for f in out._fields]
        best, shapes = _scores_hint(items, n, num_classes)
        kind, option = ("a dict" if isinstance(out, dict) else f"a named tuple {type(out).__name__}"), "output_key"
    else:
        items = list(enumerate(out))
        best, shapes = _scores_hint(items, n, num_classes)
        kind, option = f"a {type(out).__name__} of {len(out)}", "output_index"
    pick = NAMING[naming].format(option=option, value=best) if best is not None else (
        f"{NAMING[naming].format(option=option, value='<which>')} naming the ({n}, {num_classes}) class scores; "
        f"none has that shape").replace("'<which>'", "<which>")
    raise XaibenchError(f"{who} returns {kind} ({shapes}): {pick}")


def conform(model: nn.Module, *, num_classes: int, in_channels: int, spatial: Sequence[int], form: OutputForm,
            who: str, naming: str = "suite") -> nn.Module:
    """``model`` itself when its output is already ``(N, num_classes)`` logits, else an :class:`OutputAdapter`.

    Runs one forward pass on a zero batch of two inputs ``(2, in_channels, *spatial)``
    in eval mode (no gradients, training mode restored). Raises :class:`XaibenchError`
    (one line naming ``who`` and what to change, in a suite's words or, with ``naming="python"``, in
    :mod:`xaibench.api`'s keywords: :data:`NAMING`) for a forward pass that fails on such inputs, an unnamed
    tuple/dict output, a
    wrong class count, an output that is neither ``(N, K)`` class scores nor ``(N, K, *spatial)`` per-pixel
    scores at the input's size (a segmentation model, returned wrapped: :func:`dense`), or declared
    probabilities outside [0, 1].
    """
    if form.kind not in OUTPUT_FORMS:
        raise XaibenchError(f"{who}: `output: {form.kind}` is not one of {', '.join(OUTPUT_FORMS)}")
    n = 2
    x = torch.zeros(n, in_channels, *spatial)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            raw = model(x)
    except RuntimeError as e:  # e.g. a network deeper than the input allows (a kernel larger than a late map)
        raise XaibenchError(f"{who} cannot run on {'x'.join(map(str, spatial))} inputs with {in_channels} "
                            f"channel(s): {str(e).splitlines()[0]}; use inputs it takes (a larger image_size, "
                            f"a dataset's `size:`)") from None
    finally:
        model.train(was_training)
    try:
        out = select(raw, form)
    except (KeyError, IndexError, AttributeError, TypeError) as exc:
        raise XaibenchError(f"{who}: the suite's output_index/output_key does not select an output "
                            f"({type(exc).__name__}: {exc})") from None
    if not isinstance(out, torch.Tensor):
        if isinstance(out, (tuple, list, dict)):
            _refuse_container(out, who, n, num_classes, naming)
        raise XaibenchError(f"{who} returns {type(out).__name__}; expected a tensor of class scores ({n}, {num_classes})")
    is_dense = out.dim() > 2 and out.shape[0] == n and tuple(out.shape[2:]) == tuple(spatial)
    if not is_dense and (out.dim() != 2 or out.shape[0] != n):
        raise XaibenchError(f"{who} returns shape {tuple(out.shape)} for {n} inputs; expected class scores "
                            f"({n}, {num_classes}) or per-pixel scores at the input's size "
                            f"({n}, {num_classes}, {', '.join(map(str, spatial))}): flatten or pool a classifier's "
                            f"output to one row per input, upsample a segmenter's to the input's size")
    k = int(out.shape[1])
    single = k == 1 and num_classes == 2
    if k != num_classes and not single:
        raise XaibenchError(f"{who} outputs {k} class score(s) per input but the dataset has {num_classes} classes: "
                            f"build it with num_classes={num_classes}" + (" (or one logit for two classes)"
                                                                          if num_classes == 2 else ""))
    if form.kind == "probabilities":
        p = out.float()
        sums_ok = single or torch.allclose(p.sum(1), torch.ones(p.sum(1).shape), atol=1e-4)
        if not ((p >= 0) & (p <= 1)).all() or not sums_ok:
            raise XaibenchError(f"{who} is declared `output: probabilities` but returns values in "
                                f"{p.min().item():.3g}..{p.max().item():.3g} with row sums {p.sum(1).tolist()}: "
                                f"remove `output: probabilities` if it returns logits")
    if form == OutputForm() and not single and isinstance(raw, torch.Tensor) and not is_dense:
        return model
    return OutputAdapter(model, form, single, dense=is_dense).train(was_training)

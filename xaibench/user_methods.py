"""Methods as :mod:`xaibench.api` runs them: a registered name or a user's callable, the model coverage
check (``MethodSpec.covers``), and the re-explaining closure a metric receives."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from xaibench.errors import XaibenchError, did_you_mean
from xaibench.user_inputs import installed, merged_params, modality

if TYPE_CHECKING:
    import torch
    from torch import nn

    from xaibench.specs import MethodSpec


# -- methods -------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class MethodChoice:
    """A method as :func:`score` and :func:`explain` run it: spec, merged parameters, layer name."""

    spec: MethodSpec
    params: dict[str, Any]
    layer: str | None
    #: A registered method (False: a user's callable).
    registered: bool = True

    def layer_of(self, model: nn.Module) -> nn.Module | None:
        """The method's target layer in ``model`` (a copy's own module, for re-explained copies)."""
        if not self.spec.takes_layer:
            return None
        if self.layer is None:
            from xaibench.layers import last_convolution

            last = last_convolution(getattr(model, "wrapped", model))
            hint = f" (its last convolution is {last!r})" if last else ""
            raise XaibenchError(f"method {self.spec.name!r} explains a layer: pass layer='<dotted name>'{hint}")
        try:
            return model.get_submodule(self.layer)
        except AttributeError:
            names = [n for n, _ in getattr(model, "wrapped", model).named_modules() if n]
            raise XaibenchError(f"layer {self.layer!r} is not in the model{did_you_mean(self.layer, names)}") from None


def choose_method(method: Any, params: Mapping[str, Any] | None, layer: str | None, where: str) -> MethodChoice:
    """A registered method by name (parameters checked) or a callable ``(model, inputs, targets) -> maps``."""
    from xaibench.specs import MODALITIES, MethodSpec

    if isinstance(method, str):
        spec = installed().registry("methods").get(method)
        merged = merged_params(spec, {**dict(params or {}), **({"layer": layer} if layer is not None else {})},
                            where, "method")
        merged.pop("layer", None)
        return MethodChoice(spec, merged, layer)
    if not callable(method):
        raise XaibenchError(f"method must be a registered method's name or a callable (model, inputs, targets) -> "
                            f"maps, got {type(method).__name__}")
    if params or layer is not None:
        raise XaibenchError("method parameters and layer apply to a registered method; bind them in your callable")
    fn = method
    spec = MethodSpec(name=getattr(fn, "__name__", type(fn).__name__), explain=lambda model, x, t, ctx: fn(model, x, t),
                      modalities=frozenset(MODALITIES), description="a callable given to xaibench")
    return MethodChoice(spec, {}, None, registered=False)


def check_covered(me: MethodChoice, model: nn.Module, x: torch.Tensor, allow_small_cam: bool) -> None:
    """Refuse a model the method's rules do not cover (``MethodSpec.covers``), a modality it does not support,
    and a CAM layer too coarse to localize, each with one line."""
    from xaibench.degenerate import check_cam_layer, layer_output_spatial

    kind = modality(x)
    if kind not in me.spec.modalities:
        raise XaibenchError(f"not applicable: method {me.spec.name!r} does not support {kind} data")
    if me.spec.covers is not None:
        reason = me.spec.covers(model)
        if reason is not None:
            raise XaibenchError(f"not applicable: {reason}")
    layer = me.layer_of(model)
    if layer is not None and not allow_small_cam:
        size = layer_output_spatial(model, layer, int(x.shape[1]), tuple(x.shape[2:]))
        check_cam_layer(me.layer or "?", size, tuple(x.shape[2:]), "xaibench.explain", me.spec.name, "the model")


def explainer(me: MethodChoice, net: nn.Module, x: torch.Tensor, target: torch.Tensor, ids: tuple[str, ...],
               masks: torch.Tensor | None, batch_size: int, seed: int, data_mean: torch.Tensor | None,
               device: torch.device, engine_batch: int | None = None) -> Callable[..., torch.Tensor]:
    """``explain(model=None, inputs=None, targets=None)``: the method's maps as a suite's cell computes them
    (:func:`xaibench.explaining.explain_samples`), for another model, other inputs (``k`` stacked copies of the
    samples) or other classes; ``engine_batch``: the batch of the method's own forward passes."""
    import torch

    from xaibench.explaining import copies, explain_samples
    from xaibench.specs import Samples

    originals = Samples(x=x, y=target.cpu(), ids=ids, masks=masks)

    def run(model: nn.Module | None = None, inputs: torch.Tensor | None = None,
            targets: torch.Tensor | None = None) -> torch.Tensor:
        m = net if model is None else model
        samples, t = copies(originals, target, inputs, targets)
        maps = explain_samples(me.spec, m, samples, t.to(device), dict(me.params), layer=me.layer_of(m),
                               batch_size=batch_size, seed=seed, data_mean=data_mean, device=device,
                               engine_batch=engine_batch, group=len(originals))
        return torch.from_numpy(maps).to(device)

    return run

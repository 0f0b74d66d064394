"""Methods as :mod:`xaibench.api` runs them: a registered name or a user's callable, the model coverage
check (``MethodSpec.covers``), and the re-explaining closure a metric receives."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from xaibench.base.errors import XaibenchError, did_you_mean
from xaibench.api.user_inputs import installed, merged_params, modality

if TYPE_CHECKING:
    import torch
    from torch import nn

    from xaibench.contract.specs import MethodSpec


# -- methods -------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class MethodChoice:
    """A method as :func:`score` and :func:`explain` run it: spec, merged parameters, layer name."""

    spec: MethodSpec
    params: dict[str, Any]
    #: The target layer: a dotted name, or (before :func:`check_covered` names it) a module of the model.
    layer: Any
    #: A registered method (False: a user's callable).
    registered: bool = True

    def layer_of(self, model: nn.Module) -> nn.Module | None:
        """The method's target layer in ``model`` (a copy's own module, for re-explained copies)."""
        if not self.spec.takes_layer:
            return None
        if not isinstance(self.layer, str):
            from xaibench.contract.layers import last_convolution

            last = last_convolution(getattr(model, "wrapped", model))
            hint = f" (its last convolution is {last!r})" if last else ""
            raise XaibenchError(f"method {self.spec.name!r} explains a layer: pass layer='<dotted name>'{hint}")
        try:
            return model.get_submodule(self.layer)
        except AttributeError:
            names = [n for n, _ in getattr(model, "wrapped", model).named_modules() if n]
            raise XaibenchError(f"layer {self.layer!r} is not in the model{did_you_mean(self.layer, names)}") from None


def choose_method(method: Any, params: Mapping[str, Any] | None, layer: Any, where: str) -> MethodChoice:
    """A registered method by name (parameters checked) or a callable ``(model, inputs, targets) -> maps``."""
    from xaibench.contract.specs import MODALITIES, MethodSpec

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


def check_covered(me: MethodChoice, model: nn.Module, x: torch.Tensor, allow_small_cam: bool) -> MethodChoice:
    """Refuse a model the method's rules do not cover (``MethodSpec.covers``), a modality it does not support,
    a missing layer and a CAM layer too coarse to localize, each with one line; return the method with its
    layer named (a module of ``model`` given as ``layer=model.layer3`` becomes ``"layer3"``)."""
    from torch import nn

    from xaibench.scoring.degenerate import check_cam_layer, layer_output_spatial, suggested_layer
    from xaibench.contract.specs import cam_size_ok

    kind = modality(x)
    if kind not in me.spec.modalities:
        raise XaibenchError(f"not applicable: method {me.spec.name!r} does not support {kind} data")
    if me.spec.covers is not None:
        reason = me.spec.covers(model)
        if reason is not None:
            raise XaibenchError(f"not applicable: {reason}")
    if not me.spec.takes_layer:
        return me
    channels, spatial = int(x.shape[1]), tuple(x.shape[2:])

    def such_as() -> str:
        found = suggested_layer(model, channels, spatial)
        return "" if found is None else f", such as {found[0]!r} ({'x'.join(map(str, found[1]))})"

    if me.layer is None:
        raise XaibenchError(f"method {me.spec.name!r} explains a layer: pass layer='<dotted name>'{such_as()}")
    if isinstance(me.layer, nn.Module):
        name = {id(m): n for n, m in getattr(model, "wrapped", model).named_modules()}.get(id(me.layer))
        if not name:  # not a submodule (another copy's module, or the whole model)
            raise XaibenchError(f"layer= is a {type(me.layer).__name__} that is not a layer of the model: pass its "
                                f"dotted name{such_as()}")
        me = dataclasses.replace(me, layer=name)
    elif not isinstance(me.layer, str):
        raise XaibenchError(f"layer= takes a dotted name (or a module of the model), got {type(me.layer).__name__}")
    layer = me.layer_of(model)
    if layer is not None and not allow_small_cam:
        size = layer_output_spatial(model, layer, channels, spatial)
        suggestion = None if cam_size_ok(size) else suggested_layer(model, channels, spatial)
        check_cam_layer(me.layer, size, spatial, "xaibench.explain", me.spec.name, "the model", suggestion,
                        python=True)
    return me


def explainer(me: MethodChoice, net: nn.Module, x: torch.Tensor, target: torch.Tensor, ids: tuple[str, ...],
               masks: torch.Tensor | None, batch_size: int, seed: int, data_mean: torch.Tensor | None,
               device: torch.device, engine_batch: int | None = None) -> Callable[..., torch.Tensor]:
    """``explain(model=None, inputs=None, targets=None)``: the method's maps as a suite's cell computes them
    (:func:`xaibench.running.explaining.explain_samples`), for another model, other inputs (``k`` stacked copies of the
    samples) or other classes; ``engine_batch``: the batch of the method's own forward passes."""
    import torch

    from xaibench.running.explaining import copies, explain_samples
    from xaibench.contract.specs import Samples

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

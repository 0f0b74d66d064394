"""Bring your own model without writing a plugin: a suite model entry's ``factory:``, ``layer:`` and ``output:``.

A suite model entry may name ``factory: package.module:function`` instead of a
registered model. The function is called as ``function(num_classes=K,
in_channels=C, **params)`` (plus ``modality=`` when it accepts one) and returns an
``nn.Module``; ``checkpoint:`` gives its trained weights (a state dict, loaded with
``weights_only=True``) or the harness trains it with its default recipe and the
entry's ``train:`` overrides. ``layer:`` names the CAM target layer by its dotted
name in the user's model (``features.3``), for factory and registered models alike.
How the output is read is :mod:`xaibench.contract.outputs`'s business.
"""
from __future__ import annotations

import dataclasses
import importlib
import inspect
from collections.abc import Callable

from torch import nn

from xaibench.base.errors import SuiteError, XaibenchError, did_you_mean
from xaibench.contract.layers import last_convolution
from xaibench.contract.outputs import OutputForm
from xaibench.contract.specs import MODALITIES, ModelSpec
from xaibench.suites.suite import Entry


def output_form(entry: Entry) -> OutputForm:
    """The entry's declared output form (``output``, ``output_index``, ``output_key``)."""
    return OutputForm(entry.output, entry.output_index, entry.output_key)


def layer_by_name(name: str | None, display: str) -> Callable[[nn.Module], nn.Module]:
    """A ``target_layer`` finder for the dotted ``name``; without one, an error naming the last conv layer."""

    def find(model: nn.Module) -> nn.Module:
        if name is None:
            last = last_convolution(model)
            hint = f" (its last convolution is {last!r})" if last else ""
            raise XaibenchError(f"model {display!r} names no CAM layer: add `layer: <dotted name>` to its suite "
                                f"entry{hint}")
        try:
            return model.get_submodule(name)
        except AttributeError:
            inner = getattr(model, "wrapped", model)
            names = [n for n, _ in inner.named_modules() if n]
            raise XaibenchError(f"layer {name!r} is not in model {display!r}{did_you_mean(name, names)}") from None

    return find


def _import(target: str, where: str) -> Callable[..., nn.Module]:
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SuiteError(f"{where}: factory {target!r}: cannot import {module_name!r} ({exc}); is it installed "
                         f"or on PYTHONPATH?") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        names = [n for n in dir(module) if not n.startswith("_")]
        raise SuiteError(f"{where}: factory {target!r}: {module_name} has no function {attr!r}"
                         f"{did_you_mean(attr, names)}")
    return fn


def factory_spec(entry: Entry, where: str) -> ModelSpec:
    """A :class:`ModelSpec` for a ``factory:`` entry; raises :class:`SuiteError` naming ``where`` (the entry's
    ``file:line``, :meth:`Suite.at <xaibench.suites.suite.Suite.at>`) if it cannot import."""
    assert entry.factory is not None
    fn = _import(entry.factory, where)
    takes_modality = "modality" in inspect.signature(fn).parameters

    def build(num_classes: int, in_channels: int, modality: str, **params: object) -> nn.Module:
        extra = {"modality": modality} if takes_modality else {}
        model = fn(num_classes=num_classes, in_channels=in_channels, **extra, **params)
        if not isinstance(model, nn.Module):
            raise XaibenchError(f"factory {entry.factory!r} returned {type(model).__name__}, not a torch nn.Module")
        return model

    return ModelSpec(name=f"factory:{entry.factory}", build=build, modalities=frozenset(MODALITIES),
                     target_layer=layer_by_name(entry.layer, entry.display),
                     description=f"user model from {entry.factory}")


def with_layer(spec: ModelSpec, entry: Entry) -> ModelSpec:
    """``spec`` with the entry's ``layer:`` as its CAM target layer (``spec`` itself when none is given)."""
    if entry.layer is None or entry.factory is not None:
        return spec
    return dataclasses.replace(spec, target_layer=layer_by_name(entry.layer, entry.display))

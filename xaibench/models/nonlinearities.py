"""Which nonlinearities a model computes, and where: what a rule-based method's ``covers`` checks.

Gradient-modifying and rule-based attribution methods (guided backpropagation, deconvolution,
DeepLIFT, LRP) define a backward rule per nonlinearity; the libraries implement those rules for
the module types they know and silently pass plain gradients through anything else (captum's
``GuidedBackprop`` overrides ``nn.ReLU`` modules only, so on MobileNetV2's ``ReLU6`` it returns
plain gradients). :func:`inspect_model` lists every nonlinearity a model applies in ``forward``,
as a module or as a functional call, so a method's ``covers`` can name what its rules miss.

How it looks: the model is traced with ``torch.fx.symbolic_trace`` (standard ``torch.nn`` modules
are leaves; user modules are traced through), and every graph node that calls a module, a function
or a tensor method of :data:`KINDS` is one :class:`Site`: its kind, where it is (module path or the
graph node's name), whether it writes in place, and, for a module, whether ``forward`` calls that
same module at more than one place. A product of two input-dependent tensors (a squeeze-excitation
gate, ``x * sigmoid(x)`` written out) is the kind ``"product"``. A custom ``torch.autograd.Function``
(MONAI's memory-efficient Swish) is traced through its ``forward``, whose operations are listed. Calls outside the catalogue
(addition, concatenation, flattening, average pooling, convolutions, linear layers, eval-mode
BatchNorm) are affine or structural and are not listed.

Fallback: a model ``torch.fx`` cannot trace (data-dependent control flow, such as a check of the
input's shape) is inspected by walking its modules, and the source of the ``forward`` of every
module class outside ``torch.nn`` is searched for calls of the catalogue's functions and tensor
methods (``F.silu(``, ``torch.sigmoid(``, ``.relu(``; not ``self.relu(``, a module call). Each
found name is one functional site at ``Class.forward``; a module that its parent's ``forward`` calls
as ``self.<name>(`` more than once is reused. Whether a functional call is in place, and products of
activations, cannot be seen this way. Where a class's source is not available either,
:attr:`Inspection.complete` is False and a method refuses rather than guesses
(:func:`uncovered_reason`). :attr:`Inspection.untraced` keeps the tracer's message.
"""
from __future__ import annotations

import inspect
import operator
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

__all__ = ["KINDS", "Inspection", "Site", "inspect_model", "uncovered_reason"]

#: Nonlinearity kinds: the ``torch.nn`` module types, functions and tensor-method names that compute each.
KINDS: dict[str, tuple[tuple[type[nn.Module], ...], tuple[Any, ...], tuple[str, ...]]] = {
    "ReLU": ((nn.ReLU,), (F.relu, F.relu_, torch.relu, torch.relu_), ("relu", "relu_")),
    "ReLU6": ((nn.ReLU6, nn.Hardtanh), (F.relu6, F.hardtanh, F.hardtanh_), ()),
    "LeakyReLU": ((nn.LeakyReLU, nn.PReLU, nn.RReLU), (F.leaky_relu, F.leaky_relu_, F.prelu, F.rrelu), ()),
    "ELU": ((nn.ELU, nn.CELU, nn.SELU), (F.elu, F.elu_, F.celu, F.selu, torch.selu), ()),
    "SiLU": ((nn.SiLU,), (F.silu,), ()),
    "GELU": ((nn.GELU,), (F.gelu,), ()),
    "Mish": ((nn.Mish,), (F.mish,), ()),
    "Hardswish": ((nn.Hardswish,), (F.hardswish,), ()),
    "Hardsigmoid": ((nn.Hardsigmoid,), (F.hardsigmoid,), ()),
    "Softplus": ((nn.Softplus,), (F.softplus,), ()),
    "Sigmoid": ((nn.Sigmoid,), (torch.sigmoid, F.sigmoid), ("sigmoid", "sigmoid_")),
    "Tanh": ((nn.Tanh,), (torch.tanh, F.tanh), ("tanh", "tanh_")),
    "Softmax": ((nn.Softmax, nn.LogSoftmax, nn.Softmax2d), (F.softmax, torch.softmax, F.log_softmax,
                                                            torch.log_softmax), ("softmax", "log_softmax")),
    "log": ((), (torch.log, torch.log1p), ("log", "log1p")),
    "clamp": ((), (torch.clamp, torch.clamp_min, torch.clamp_max, torch.clip), ("clamp", "clamp_min", "clamp_max",
                                                                                 "clip")),
    "MaxPool": ((nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d,
                 nn.AdaptiveMaxPool3d), (F.max_pool1d, F.max_pool2d, F.max_pool3d, F.adaptive_max_pool1d,
                                         F.adaptive_max_pool2d, F.adaptive_max_pool3d), ()),
    "LayerNorm": ((nn.LayerNorm, nn.GroupNorm, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d,
                   nn.LocalResponseNorm), (F.layer_norm, F.group_norm, F.instance_norm, F.local_response_norm), ()),
}
_PRODUCTS = (operator.mul, operator.imul, torch.mul, operator.truediv, operator.itruediv, torch.div)
_PRODUCT_METHODS = ("mul", "mul_", "div", "div_")


@dataclass(frozen=True)
class Site:
    """One place where ``forward`` applies a nonlinearity.

    ``kind`` is a key of :data:`KINDS` or ``"product"``; ``where`` the module's path
    (``"features.0.2"``) or, for a functional call, the fx node's name (``"relu"``, ``"mul_1"``);
    ``module`` the module's type for a module call, else None; ``inplace`` True where the call
    overwrites its input; ``reused`` True where ``forward`` calls the same module at several places.
    """

    kind: str
    where: str
    module: type[nn.Module] | None
    inplace: bool = False
    reused: bool = False

    @property
    def functional(self) -> bool:
        """It is a function or tensor-method call, not a module call."""
        return self.module is None

    @property
    def name(self) -> str:
        """What the model calls: the module type's name, or the kind for a functional call."""
        return self.module.__name__ if self.module is not None else self.kind


@dataclass(frozen=True)
class Inspection:
    """Every nonlinearity site of one model (:func:`inspect_model`), in forward order."""

    sites: tuple[Site, ...]
    #: ``torch.fx`` traced ``forward``: every functional call is listed. False: the source-search fallback.
    traced: bool
    #: The tracer's first message line where it could not trace the model, else "".
    untraced: str = ""
    #: Every functional call could be looked for (traced, or every ``forward`` source was found).
    complete: bool = True

    def kinds(self) -> frozenset[str]:
        """The kinds present."""
        return frozenset(s.kind for s in self.sites)


def _kind_of_module(module: nn.Module) -> str | None:
    for kind, (types, _, _) in KINDS.items():
        if type(module) in types:
            return kind
    return None


def _kind_of_call(node: fx.Node) -> str | None:
    for kind, (_, functions, methods) in KINDS.items():
        if node.op == "call_function" and node.target in functions:
            return kind
        if node.op == "call_method" and node.target in methods:
            return kind
    return None


def _is_product(node: fx.Node, varying: set[fx.Node]) -> bool:
    """``node`` multiplies or divides two tensors that both depend on the input (not a weight or a constant)."""
    if not ((node.op == "call_function" and node.target in _PRODUCTS)
            or (node.op == "call_method" and node.target in _PRODUCT_METHODS)):
        return False
    return len(node.args) >= 2 and all(isinstance(a, fx.Node) and a in varying for a in node.args[:2])


def _traced_sites(model: nn.Module, graph: fx.Graph) -> list[Site]:
    calls = Counter(str(n.target) for n in graph.nodes if n.op == "call_module")
    modules = dict(model.named_modules())
    sites = []
    varying: set[fx.Node] = set()  # nodes whose value depends on the input
    for node in graph.nodes:
        if node.op == "placeholder" or any(a in varying for a in node.all_input_nodes):
            varying.add(node)
        if node.op == "call_module":
            module = modules[str(node.target)]
            kind = _kind_of_module(module)
            if kind is not None:
                sites.append(Site(kind, str(node.target), type(module), bool(getattr(module, "inplace", False)),
                                  calls[str(node.target)] > 1))
        elif node.op in ("call_function", "call_method"):
            kind = _kind_of_call(node)
            if kind is not None:
                inplace = bool(node.kwargs.get("inplace", False)) or str(getattr(node.target, "__name__",
                                                                               node.target)).endswith("_")
                sites.append(Site(kind, node.name, None, inplace))
            elif _is_product(node, varying):
                sites.append(Site("product", node.name, None, str(node.target).endswith("_")
                                  or node.target in (operator.imul, operator.itruediv)))
    return sites


def _forward_sources(cls: type) -> dict[str, str] | None:
    """``{"Class.forward": source}`` of every ``forward`` in ``cls``'s MRO outside torch, None where one is missing."""
    out = {}
    for base in cls.__mro__:
        if "forward" in vars(base) and not base.__module__.startswith("torch."):
            try:
                out[f"{base.__name__}.forward"] = inspect.getsource(vars(base)["forward"])
            except (OSError, TypeError):
                return None
    return out


def _calls_in_source(cls: type[nn.Module]) -> list[Site] | None:
    """Functional sites named in the ``forward`` sources of ``cls``, or None where a source is not available."""
    sources = _forward_sources(cls)
    if sources is None:
        return None
    sites = []
    for where, source in sources.items():
        for kind, (_, functions, methods) in KINDS.items():
            names = sorted({f.__name__ for f in functions} | set(methods))
            if any(re.search(rf"(?<![\w])(?<!self\.){re.escape(n)}\s*\(", source) for n in names):
                sites.append(Site(kind, where, None))
    return sites


def _called_twice(model: nn.Module, path: str) -> bool:
    """The parent's ``forward`` sources call the module at ``path`` (``self.<name>(``) more than once."""
    parent, _, name = path.rpartition(".")
    sources = _forward_sources(type(model.get_submodule(parent))) or {}
    return sum(len(re.findall(rf"self\.{re.escape(name)}\s*\(", src)) for src in sources.values()) > 1


def _fallback(model: nn.Module, error: Exception) -> Inspection:
    message = (str(error).strip().splitlines() or [type(error).__name__])[0]
    sites = [Site(kind, name, type(m), bool(getattr(m, "inplace", False)), _called_twice(model, name))
             for name, m in model.named_modules() if (kind := _kind_of_module(m)) is not None]
    complete = True
    for cls in dict.fromkeys(type(m) for m in model.modules() if not type(m).__module__.startswith("torch.nn")):
        found = _calls_in_source(cls)
        complete = complete and found is not None
        sites.extend(found or [])
    return Inspection(tuple(sites), traced=False, untraced=f"{type(error).__name__}: {message}", complete=complete)


def inspect_model(model: nn.Module) -> Inspection:
    """The nonlinearity sites of ``model`` (not modified), by ``torch.fx`` tracing, else by the fallback
    (its modules, and the functions named in its ``forward`` sources).

    Raises nothing: a model that cannot be traced gives an :class:`Inspection` with ``traced=False``.
    """
    try:
        graph = fx.Tracer().trace(model)
    except Exception as error:  # noqa: BLE001 - any tracing failure means: fall back
        return _fallback(model, error)
    return Inspection(tuple(_traced_sites(model, graph)), traced=True)


def _listing(sites: Iterable[Site], limit: int = 3) -> str:
    sites = list(sites)
    shown = ", ".join(s.where for s in sites[:limit])
    return shown + (f", ... ({len(sites)} sites)" if len(sites) > limit else "")


def uncovered_reason(rule: str, inspection: Inspection, covered: Callable[[Site], bool]) -> str | None:
    """One line naming what ``rule`` does not cover in ``inspection``, or None where it covers every site.

    ``rule`` says what the method's rules are ("guided backpropagation modifies ReLU gradients");
    ``covered(site)`` is True where its rules are defined for that site. A model whose functional
    calls could not be looked for (not traced, a ``forward`` source missing) is refused.
    """
    missing = [s for s in inspection.sites if not covered(s)]
    if missing:
        by_name: dict[str, list[Site]] = {}
        for s in missing:
            label = ("a product of two activations" if s.kind == "product"
                     else f"functional {s.kind}" if s.functional
                     else f"{s.name} called at several places in an untraceable forward" if s.reused else s.name)
            by_name.setdefault(label, []).append(s)
        uses = "; ".join(f"{label} ({_listing(group)})" for label, group in by_name.items())
        return f"{rule}; this network uses {uses}"
    if not inspection.complete:
        return (f"{rule}; this network cannot be traced by torch.fx ({inspection.untraced}) and the source of "
                "its forward is not available, so the activations it calls as functions cannot be checked")
    return None

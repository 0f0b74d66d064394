"""torch layer classes per modality, and which layers read a model's input, found by its data flow.

Models that serve several modalities with one definition (the conformance kit's tiny
model, the built-in small CNN) look their layers up here rather than branching on
the modality in each constructor.

"The first layer" of a network is the layer that reads its input in ``forward``, "the last layer" the
one whose output the network returns, and "the top" of a network is its output: none of them is
where its ``__init__`` defines a module. A network may define its classifier before its
convolutions (zennit's composites take the first module in definition order, zennit issues #63 and
#76, and put the input layer's rule on the classifier then). :func:`input_layers`,
:func:`output_layers` and :func:`forward_order` find them in the graph ``torch.fx`` traces, and
stop with one line (:class:`ValueError`) where they cannot.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import fx, nn

#: (convolution, batch norm, max pool, adaptive average pool) per modality of :data:`xaibench.contract.specs.MODALITIES`.
LAYERS: dict[str, tuple[type[nn.Module], type[nn.Module], type[nn.Module], type[nn.Module]]] = {
    "signal": (nn.Conv1d, nn.BatchNorm1d, nn.MaxPool1d, nn.AdaptiveAvgPool1d),
    "image": (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, nn.AdaptiveAvgPool2d),
    "volume": (nn.Conv3d, nn.BatchNorm3d, nn.MaxPool3d, nn.AdaptiveAvgPool3d),
}


def layers_for(modality: str) -> tuple[type[nn.Module], type[nn.Module], type[nn.Module], type[nn.Module]]:
    """``(conv, norm, pool, global_pool)`` classes for ``modality``; raises ValueError for an unknown one."""
    if modality not in LAYERS:
        raise ValueError(f"modality must be one of {', '.join(LAYERS)}, got {modality!r}")
    return LAYERS[modality]


class ParameterLeaves(fx.Tracer):
    """fx's tracer that keeps a module with parameters of its own and no children whole (a custom layer
    computing ``F.linear(x, self.weight)`` is one call, as ``nn.Linear`` is)."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        """Standard ``torch.nn`` modules, and modules with parameters of their own and no child modules."""
        own = any(True for _ in m.parameters(recurse=False)) and not any(True for _ in m.children())
        return own or super().is_leaf_module(m, qualname)


def traced(model: nn.Module, who: str, tracer: fx.Tracer | None = None) -> fx.Graph:
    """``model``'s forward graph (``tracer``, default :class:`ParameterLeaves`); ``model`` is not modified.

    Raises :class:`ValueError` (one line, starting with ``who``) where ``torch.fx`` cannot trace it.
    """
    try:
        return (tracer or ParameterLeaves()).trace(model)
    except Exception as error:  # noqa: BLE001 - any tracing failure means: the data flow cannot be seen
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ValueError(f"{who}: torch.fx cannot trace this network ({first}), so its layers cannot be found "
                         "from its data flow") from None


def input_layers(model: nn.Module, is_layer: Callable[[nn.Module], bool], what: str, who: str,
                 tracer: fx.Tracer | None = None) -> tuple[str, ...]:
    """The module paths of the layers (``is_layer``) that read the input of ``model``, in forward order.

    A layer reads the input where its argument is computed from ``forward``'s input by operations
    that are not such layers (flattening, pooling, activations, concatenation pass it on). Several
    layers can read it (parallel branches on the input); a layer called twice is named once.
    ``model`` is traced (:func:`traced`) and not modified. Raises :class:`ValueError` (one line,
    starting with ``who``; ``what`` names the layers, e.g. "convolution or linear") where it cannot
    be traced, where no such layer reads the input, or where a layer reads the input both directly
    and through another such layer (``cat([conv1(x), x])`` into ``conv2``): it is then not an input
    layer, and not only an inner one either.
    """
    graph, modules = traced(model, who, tracer), dict(model.named_modules())
    raw: set[fx.Node] = set()  # computed from the input without passing a layer
    past: set[fx.Node] = set()  # computed from a layer's output
    found: list[str] = []
    for node in graph.nodes:
        if node.op == "placeholder":
            raw.add(node)
            continue
        from_raw = any(a in raw for a in node.all_input_nodes)
        from_past = any(a in past for a in node.all_input_nodes)
        if node.op == "call_module" and is_layer(modules[str(node.target)]):
            if from_raw and from_past:
                raise ValueError(f"{who}: layer {node.target} reads the network's input both directly and "
                                 "through another layer, so the input layer's rule is not defined for it")
            if from_raw and str(node.target) not in found:
                found.append(str(node.target))
            if from_raw or from_past:
                past.add(node)
            continue
        if from_raw:
            raw.add(node)
        if from_past:
            past.add(node)
    if not found:
        raise ValueError(f"{who}: no {what} layer reads this network's input")
    return tuple(found)


def output_layers(model: nn.Module, is_layer: Callable[[nn.Module], bool], what: str, who: str,
                  tracer: fx.Tracer | None = None) -> tuple[str, ...]:
    """The module paths of the layers (``is_layer``) whose output reaches ``model``'s output without passing
    another such layer (the classifier of a CNN), in forward order.

    ``model`` is traced (:func:`traced`) and not modified. Raises :class:`ValueError` (one line,
    starting with ``who``) where it cannot be traced or no such layer reaches the output.
    """
    graph, modules = traced(model, who, tracer), dict(model.named_modules())
    found: set[str] = set()
    seen: set[fx.Node] = set()
    stack = [n for n in graph.nodes if n.op == "output"]
    while stack:
        node = stack.pop()
        for a in node.all_input_nodes:
            if a in seen:
                continue
            seen.add(a)
            if a.op == "call_module" and is_layer(modules[str(a.target)]):
                found.add(str(a.target))
            else:
                stack.append(a)
    if not found:
        raise ValueError(f"{who}: no {what} layer produces this network's output")
    return tuple(n for n in forward_order(model, is_layer, who, tracer) if n in found)


def forward_order(model: nn.Module, is_layer: Callable[[nn.Module], bool], who: str,
                  tracer: fx.Tracer | None = None, example: torch.Tensor | None = None) -> tuple[str, ...]:
    """The module paths of the layers (``is_layer``) that ``forward`` calls, in the order of their first call
    (a module whose parameters ``forward`` reads directly counts where it first reads one).

    ``model`` is traced (:func:`traced`) and not modified. Where ``torch.fx`` cannot trace it and an
    ``example`` input is given, the order is that in which the layers finish on a forward pass of
    ``example`` (forward hooks, no gradients). Raises :class:`ValueError` (one line, starting with
    ``who``) where it cannot be traced and no ``example`` is given.
    """
    modules = dict(model.named_modules())
    try:
        graph = traced(model, who, tracer)
    except ValueError:
        if example is None:
            raise
        return _finished(model, is_layer, example)
    order: dict[str, None] = {}
    for node in graph.nodes:
        path = (str(node.target) if node.op == "call_module"
                else str(node.target).rpartition(".")[0] if node.op == "get_attr" else None)
        if path is not None and path in modules and is_layer(modules[path]):
            order.setdefault(path)
    return tuple(order)


def _finished(model: nn.Module, is_layer: Callable[[nn.Module], bool], example: torch.Tensor) -> tuple[str, ...]:
    order: dict[str, None] = {}
    handles = [m.register_forward_hook(lambda *_, name=name: order.setdefault(name))
               for name, m in model.named_modules() if is_layer(m)]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for handle in handles:
            handle.remove()
    return tuple(order)


def last_convolution(model: nn.Module) -> str | None:
    """The module path of the convolution ``forward`` calls last (by the traced graph, :func:`forward_order`), for
    hints naming a CAM layer; None where there is none or ``model`` cannot be traced."""
    try:
        convs = forward_order(model, lambda m: isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)), "")
    except ValueError:
        return None
    return convs[-1] if convs else None

"""torch layer classes per modality, and which layers read a model's input, found by its data flow.

Models that serve several modalities with one definition (the conformance kit's tiny
model, the built-in small CNN) look their layers up here rather than branching on
the modality in each constructor.

"The first layer" of a network is the layer that reads its input in ``forward``, not the first
module its ``__init__`` defines: a network may define its classifier before its convolutions
(zennit's composites take the first module in definition order, zennit issues #63 and #76, and
put the input layer's rule on the classifier then). :func:`input_layers` finds the input layers in
the graph ``torch.fx`` traces, and stops with one line where it cannot.
"""
from __future__ import annotations

from torch import fx, nn

from xaibench.errors import XaibenchError

#: (convolution, batch norm, max pool, adaptive average pool) per modality of :data:`xaibench.specs.MODALITIES`.
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


def input_layers(model: nn.Module, types: tuple[type[nn.Module], ...], who: str,
                 tracer: fx.Tracer | None = None) -> tuple[str, ...]:
    """The module paths of the layers of ``types`` that read the input of ``model``, in forward order.

    A layer reads the input where its argument is computed from ``forward``'s input by operations
    other than layers of ``types`` (flattening, pooling, activations, concatenation pass it on).
    Several layers can read it (parallel branches on the input); a layer called twice is named
    once. ``model`` is traced with ``tracer`` (``torch.fx.Tracer()`` by default) and not modified.
    Raises :class:`XaibenchError` (one line, starting with ``who``) where ``torch.fx`` cannot trace
    the model, where no such layer reads the input, or where a layer reads the input both directly
    and through another such layer (``cat([conv1(x), x])`` into ``conv2``): it is then not an
    input layer, and not only an inner one either.
    """
    try:
        graph = (tracer or fx.Tracer()).trace(model)
    except Exception as error:  # noqa: BLE001 - any tracing failure means: the data flow cannot be seen
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise XaibenchError(f"{who}: torch.fx cannot trace this network ({first}), so the layer that reads its "
                            "input cannot be found from its data flow") from None
    modules = dict(model.named_modules())
    raw: set[fx.Node] = set()  # computed from the input without passing a layer of ``types``
    past: set[fx.Node] = set()  # computed from the output of such a layer
    found: list[str] = []
    for node in graph.nodes:
        if node.op == "placeholder":
            raw.add(node)
            continue
        from_raw = any(a in raw for a in node.all_input_nodes)
        from_past = any(a in past for a in node.all_input_nodes)
        if node.op == "call_module" and isinstance(modules[str(node.target)], types):
            if from_raw and from_past:
                raise XaibenchError(f"{who}: layer {node.target} reads the network's input both directly and "
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
        names = [t.__name__ for t in types]
        kinds = " or ".join(filter(None, (", ".join(names[:-1]), names[-1])))
        raise XaibenchError(f"{who}: no {kinds} layer reads this network's input")
    return tuple(found)

"""Which networks the LRP composites of :mod:`xaibench_zennit.rules` cover: ``MethodSpec.covers`` for each.

LRP's rules are defined per layer type (Montavon et al. 2019, "Layer-wise relevance propagation:
an overview", sec. 10.1-10.2): a rule for each convolution and linear layer, relevance passed
unchanged through ReLU, winner-take-all through max pooling, the z-rule (zennit's ``Norm``)
through average pooling and sums. zennit attaches a rule where its layer map names the module's
type and lets relevance flow back as a plain gradient through everything else, so a SiLU, GELU or
LayerNorm network, a functional residual add or a BatchNorm that cannot be merged would give a map
that is no longer LRP, silently. :func:`lrp_covers` finds these before anything runs.

What is inspected: a deep copy of the model, canonized as the methods canonize it (zennit's
``ResNetCanonizer``: BatchNorm merged into the convolution before it, torchvision ResNet adds turned
into ``Sum`` modules), traced with ``torch.fx`` so that functional operations in ``forward``
(``F.silu``, ``x + y``, ``F.adaptive_avg_pool2d``) are seen as well as modules. A model that fx
cannot trace (data-dependent control flow) is refused: its functional operations cannot be seen.
"""
from __future__ import annotations

import copy
import operator
from collections import defaultdict
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from xaibench.base.errors import XaibenchError
from xaibench.contract.outputs import one_logit, unwrap
from xaibench.scoring.segmentation import region_score

#: Module types with an LRP rule in every composite here (zennit's layer maps: the rule of the method on
#: convolutions and linear layers, ``Norm`` on average pooling), and zennit's ``Sum`` from the canonizers.
_RULED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
          nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)
#: Module types whose plain gradient is LRP's own redistribution: ReLU passes relevance unchanged (zennit
#: ``Pass``; where a ReLU is off its output, hence its relevance, is zero), max pooling routes it to the maximum
#: (winner-take-all), and flatten, identity and dropout (identity in eval mode) only move it.
_PASSED = (nn.ReLU, nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d,
           nn.AdaptiveMaxPool3d, nn.Flatten, nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
#: The layers with a rule of their own in every composite: convolutions and linear (dense) layers.
LINEAR = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
#: Functions and tensor methods in ``forward`` whose gradient is LRP's redistribution (as :data:`_PASSED`) or
#: that only route, reshape or read shapes (concatenation and stacking split relevance by position).
_FUNCTIONS = {F.relu, torch.relu, F.max_pool1d, F.max_pool2d, F.max_pool3d, F.adaptive_max_pool1d,
              F.adaptive_max_pool2d, F.adaptive_max_pool3d, torch.flatten, torch.cat, torch.stack, torch.permute,
              operator.getitem, getattr}
_SHAPE_METHODS = {"size", "dim"}
_SHAPE_ATTRIBUTES = {"shape", "ndim", "dtype", "device"}
_METHODS = {"relu", "flatten", "view", "reshape", "contiguous", "squeeze", "unsqueeze", "permute", "transpose"}


class ZennitTracer(fx.Tracer):
    """fx's tracer with zennit's ``Sum`` (the canonizers' residual add) kept as a module."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        """Standard ``torch.nn`` modules and zennit's ``Sum``."""
        from zennit.layer import Sum

        return isinstance(m, Sum) or super().is_leaf_module(m, qualname)


def _function_name(node: fx.Node) -> str:
    target = node.target
    return target if isinstance(target, str) else getattr(target, "__name__", str(target))


def _merged(model: nn.Module, canonizers: list[Any]) -> tuple[dict[int, int], Exception | None]:
    """Apply ``canonizers`` to ``model`` (a copy): ``id(BatchNorm) -> id(linear layer)`` for each merge."""
    from zennit.canonizers import MergeBatchNorm

    merges: dict[int, int] = {}
    try:
        for canonizer in canonizers:
            for instance in canonizer.apply(model):
                if isinstance(instance, MergeBatchNorm):
                    for linear in instance.linears:
                        merges[id(instance.batch_norm)] = id(linear)
    except RuntimeError as error:  # a canonizer that cannot apply (a merge with mismatched channels)
        return merges, error
    return merges, None


def lrp_covers(model: nn.Module) -> str | None:
    """None where LRP's rules (with zennit's ``ResNetCanonizer``) are defined for every operation of ``model``,
    else one line naming what they do not cover and where (module paths or fx node names).

    Covered: convolutions (1D/2D/3D) and linear layers (the method's rule), average pooling and
    canonizer sums (z-rule), ReLU, max pooling, flatten, identity, dropout, a BatchNorm that zennit
    merges into the convolution or linear layer whose sole output it normalises, and in ``forward``
    the functional forms of ReLU, max pooling, flatten, concatenation and reshapes. Everything else is
    named: another activation (SiLU, GELU, ...) or normalisation (LayerNorm, GroupNorm, a pre-activation
    BatchNorm as in DenseNet), a functional add or product (a residual connection zennit cannot
    canonize), functional average pooling (no rule can be attached to a function), a module called
    more than once (zennit's hooks keep one input per module), a model fx cannot trace. The model is
    not modified (a deep copy is inspected).
    """
    from xaibench_zennit.rules import canonizers

    # a one-logit model's [-z, z] head and a region score's weighted sum are relevance's start (rules.relevance)
    model = unwrap(model) if one_logit(model) or region_score(model) is not None else model
    clone = copy.deepcopy(model).eval()
    merges, failed = _merged(clone, canonizers())
    notes = []
    if failed is not None:  # inspect the network as written: nothing merged
        clone, merges = copy.deepcopy(model).eval(), {}
        notes.append(f"zennit's BatchNorm merge fails on it ({type(failed).__name__}: {failed})")
    try:
        graph = ZennitTracer().trace(clone)
    except Exception as error:  # noqa: BLE001 - any failure to trace means the operations cannot be seen
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return (f"torch.fx cannot trace its forward ({first}), so its functional operations (adds, activations) "
                "cannot be checked against LRP's rules")
    modules = dict(clone.named_modules())
    uncovered: dict[str, list[str]] = defaultdict(list)
    calls: dict[str, int] = defaultdict(int)
    tensors = _tensor_valued(graph)
    for node in graph.nodes:
        if node.op in ("call_function", "call_method") and node not in tensors:
            continue  # arithmetic on shapes (x.view(n, c * h * w)) moves no relevance
        if node.op == "call_module":
            module = modules[node.target]
            calls[node.target] += 1
            if not _module_covered(module, node, modules, merges):
                kind = type(module).__name__
                if isinstance(module, _NORMS):
                    kind += " not merged into a convolution or linear layer whose sole output it normalises"
                uncovered[kind].append(node.target)
        elif node.op == "call_function" and node.target not in _FUNCTIONS:
            uncovered[f"functional {_function_name(node)}"].append(node.name)
        elif node.op == "call_method" and node.target not in _METHODS:
            uncovered[f"tensor method {node.target}"].append(node.name)
    for name, count in calls.items():
        if count > 1 and not isinstance(modules[name], _PASSED):
            uncovered[f"{type(modules[name]).__name__} called {count} times"].append(name)
    if uncovered:
        notes.append("LRP rules are not defined for "
                     + "; ".join(f"{kind} ({_names(where)})" for kind, where in uncovered.items()))
    return "; ".join(notes) or None


def input_layer_covers(model: nn.Module) -> str | None:
    """:func:`lrp_covers`, and for the composites with an input-layer rule (flat, box) also that the layers
    reading the input can be found from the traced graph (:func:`xaibench_zennit.rules.input_layer_names`):
    None where both hold, else the one-line reason."""
    from xaibench_zennit.rules import input_layer_names

    reason = lrp_covers(model)
    if reason is not None:
        return reason
    try:
        input_layer_names(model, "the input layer's rule (flat, box)")
    except XaibenchError as error:
        return str(error)
    return None


def _tensor_valued(graph: fx.Graph) -> set[fx.Node]:
    """The nodes whose value is a tensor (or holds tensors): the input, parameters, module outputs, and any
    operation on one of these except reading its shape (``x.size()``, ``x.shape``, ``x.dim()``, ``x.ndim``)."""
    tensors: set[fx.Node] = set()
    for node in graph.nodes:
        if node.op in ("placeholder", "get_attr", "call_module"):
            tensors.add(node)
        elif _reads_shape(node):
            continue
        elif any(isinstance(a, fx.Node) and a in tensors for a in _flat(node.args) + _flat(node.kwargs)):
            tensors.add(node)
    return tensors


def _reads_shape(node: fx.Node) -> bool:
    return ((node.op == "call_method" and node.target in _SHAPE_METHODS)
            or (node.op == "call_function" and node.target is getattr and node.args[1] in _SHAPE_ATTRIBUTES))


def _flat(args: Any) -> list[Any]:
    if isinstance(args, (tuple, list)):
        return [x for a in args for x in _flat(a)]
    if isinstance(args, dict):
        return _flat(list(args.values()))
    return [args]


def _module_covered(module: nn.Module, node: fx.Node, modules: dict[str, nn.Module], merges: dict[int, int]) -> bool:
    from zennit.layer import Sum

    if isinstance(module, _RULED + _PASSED + (Sum,)):
        return True
    if not isinstance(module, _NORMS) or id(module) not in merges:
        return False
    # zennit merges by the order of leaves; the merge is right only if the BatchNorm normalises exactly the
    # output of that layer, which nothing else reads (folding it into the layer changes what every reader sees)
    source = node.args[0] if node.args else None
    return (isinstance(source, fx.Node) and source.op == "call_module" and len(source.users) == 1
            and id(modules[source.target]) == merges[id(module)] and isinstance(modules[source.target], LINEAR))


def _names(where: list[str], shown: int = 3) -> str:
    more = len(where) - shown
    return ", ".join(where[:shown]) + (f", ... {more} more" if more > 0 else "")

"""A copy of a model that captum's module-hooking methods (DeepLIFT, Guided Backprop, Deconvolution) can use.

Those methods attach hooks to nonlinearity modules (``nn.ReLU``; DeepLIFT also the
other types of captum's ``SUPPORTED_NON_LINEAR``: ELU, LeakyReLU, Sigmoid, Tanh,
Softplus, Softmax, MaxPool) and read each module's input and output. Three patterns
break them silently: a module called at several places in ``forward`` (torchvision's
ResNet blocks reuse ``self.relu``), whose hooks then see only the last call;
``inplace=True`` modules, which overwrite the tensors the hooks saved; and functional
``F.relu`` calls (torchvision's DenseNet ends in one), which no hook sees. The copy is
traced with ``torch.fx``; every call site of a hooked module type gets its own
non-inplace copy of that module, and every functional ReLU call its own ``nn.ReLU``.
The caller's model is never touched. A model fx cannot trace is deep-copied with its
modules made non-inplace; the methods' ``covers`` (:mod:`xaibench_captum.rules`)
refuse such models, since their functional calls cannot be checked.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import fx, nn

_FUNCTIONAL_RELU = {F.relu, F.relu_, torch.relu, torch.relu_}
_RELU_METHODS = {"relu", "relu_"}


def hooked_types() -> tuple[type[nn.Module], ...]:
    """The module types captum's DeepLIFT hooks (its ``SUPPORTED_NON_LINEAR``; ``nn.ReLU`` among them)."""
    from captum.attr._core.deep_lift import SUPPORTED_NON_LINEAR

    return tuple(SUPPORTED_NON_LINEAR)


def _fresh(module: nn.Module) -> nn.Module:
    out = copy.deepcopy(module)
    if hasattr(out, "inplace"):
        out.inplace = False
    return out


def hookable_copy(model: nn.Module) -> nn.Module:
    """A deep copy with one fresh, non-inplace module per call site of a hooked type and per functional ReLU."""
    types = hooked_types()
    clone = copy.deepcopy(model)
    try:
        traced = fx.symbolic_trace(clone)
    except Exception:  # noqa: BLE001 - dynamic control flow: fall back to the module as written
        for m in clone.modules():
            if type(m) in types and hasattr(m, "inplace"):
                m.inplace = False
        return clone
    modules = dict(traced.named_modules())
    calls = 0
    for node in list(traced.graph.nodes):
        if node.op == "call_module" and type(modules[str(node.target)]) in types:
            fresh = _fresh(modules[str(node.target)])
        elif (node.op == "call_function" and node.target in _FUNCTIONAL_RELU) or (
                node.op == "call_method" and node.target in _RELU_METHODS):
            fresh = nn.ReLU(inplace=False)
        else:
            continue
        name = f"xaibench_site_{calls}"
        calls += 1
        traced.add_submodule(name, fresh)
        with traced.graph.inserting_after(node):
            replacement = traced.graph.call_module(name, args=(node.args[0],))
        node.replace_all_uses_with(replacement)
        traced.graph.erase_node(node)
    traced.graph.lint()
    traced.recompile()
    return traced.train(model.training)

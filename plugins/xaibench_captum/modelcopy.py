"""A copy of a model that captum's ReLU-hooking methods (DeepLIFT, Guided Backprop) can use.

Those methods attach hooks to ``nn.ReLU`` modules and read each module's input
and output. Two patterns break them silently: a ReLU module called at several
places in ``forward`` (torchvision's ResNet blocks reuse ``self.relu``), whose
hooks then see only the last call, and ``inplace=True`` ReLUs, which overwrite
the tensors the hooks saved. The copy is traced with ``torch.fx`` and every
ReLU call site (module or functional) gets its own non-inplace ``nn.ReLU``.
The caller's model is never touched. A model fx cannot trace (dynamic control
flow) is deep-copied with its ReLUs made non-inplace; ReLU modules it reuses stay
shared, a limitation of that fallback.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import fx, nn

_FUNCTIONAL_RELU = {F.relu, torch.relu, torch.relu_}


def relu_safe_copy(model: nn.Module) -> nn.Module:
    """A deep copy with one fresh, non-inplace ``nn.ReLU`` per ReLU call site."""
    clone = copy.deepcopy(model)
    try:
        traced = fx.symbolic_trace(clone)
    except Exception:  # dynamic control flow: fall back to the module as written
        for m in clone.modules():
            if isinstance(m, nn.ReLU):
                m.inplace = False
        return clone
    calls = 0
    for node in list(traced.graph.nodes):
        is_module_relu = node.op == "call_module" and isinstance(traced.get_submodule(node.target), nn.ReLU)
        is_functional_relu = node.op == "call_function" and node.target in _FUNCTIONAL_RELU
        if not (is_module_relu or is_functional_relu):
            continue
        name = f"xaibench_relu_{calls}"
        calls += 1
        traced.add_submodule(name, nn.ReLU(inplace=False))
        with traced.graph.inserting_after(node):
            fresh = traced.graph.call_module(name, args=(node.args[0],))
        node.replace_all_uses_with(fresh)
        traced.graph.erase_node(node)
    traced.graph.lint()
    traced.recompile()
    return traced.train(model.training)

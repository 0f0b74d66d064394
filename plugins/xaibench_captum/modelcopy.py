"""A copy of a model that captum's module-hooking methods (DeepLIFT, Guided Backprop, Deconvolution) can use.

Those methods attach hooks to nonlinearity modules (``nn.ReLU``; DeepLIFT also the
other types of captum's ``SUPPORTED_NON_LINEAR``: ELU, LeakyReLU, Sigmoid, Tanh,
Softplus, Softmax, MaxPool) and read each module's input and output. Three patterns
break them silently: a module called at several places in ``forward`` (torchvision's
ResNet blocks reuse ``self.relu``), whose hooks then see only the last call;
``inplace=True`` modules, which overwrite the tensors the hooks saved; and functional
``F.relu`` calls (torchvision's DenseNet ends in one), which no hook sees. A fourth is
captum's hook mechanism itself (``captum._utils.common._register_backward_hook``): a hooked
module's multiplier replaces the gradient of its *input tensor* through a tensor hook, and its
``grad_output`` is read by a tensor hook on its output. Where one hooked module's output is
another's input (ReLU then max pooling, max pooling then ReLU), both hooks sit on one tensor and
run in registration order, so the first module reads the plain gradient before the second's
multiplier replaces it; where a tensor feeds a hooked module and something else, the hook sees
the sum of both gradients. DeepLIFT then loses summation-to-delta (relative error 0.3 to 0.5 on
a conv-maxpool-ReLU net, 0.06 to 0.14 on conv-ReLU-maxpool twice) although each rule conserves.
The copy is traced with ``torch.fx``; every call site of a hooked module type gets its own
non-inplace copy of that module, reading its own clone of its input (an identity for the
gradient), and every functional ReLU call its own ``nn.ReLU``. The caller's model is never
touched. A model fx cannot trace is deep-copied with its hooked modules made non-inplace and
each preceded by a clone; the methods' ``covers`` (:mod:`xaibench_captum.rules`) refuse such
models where a module is reused or their functional calls cannot be checked.
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


class Cloned(nn.Sequential):
    """``module`` reading a clone of its input: its own input tensor, which nothing else reads or writes."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__(CloneInput(), module)


class CloneInput(nn.Module):
    """``x.clone()``: the identity, as a new tensor (its gradient is the gradient)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` copied."""
        return x.clone()


def _fresh(module: nn.Module) -> nn.Module:
    out = copy.deepcopy(module)
    if hasattr(out, "inplace"):
        out.inplace = False
    return out


def hookable_copy(model: nn.Module) -> nn.Module:
    """A deep copy with one fresh, non-inplace module per call site of a hooked type and per functional ReLU,
    each reading its own clone of its input."""
    types = hooked_types()
    clone = copy.deepcopy(model)
    try:
        traced = fx.symbolic_trace(clone)
    except Exception:  # noqa: BLE001 - dynamic control flow: fall back to the module as written
        for parent in list(clone.modules()):
            for name, m in list(parent.named_children()):
                if type(m) in types:
                    setattr(parent, name, Cloned(_fresh(m)))
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
            own = traced.graph.call_method("clone", args=(node.args[0],))
        with traced.graph.inserting_after(own):
            replacement = traced.graph.call_module(name, args=(own,))
        node.replace_all_uses_with(replacement)
        traced.graph.erase_node(node)
    traced.graph.lint()
    traced.recompile()
    return traced.train(model.training)

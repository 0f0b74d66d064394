"""What the rules of captum's gradient-modifying methods cover: the ``covers`` functions of their specs.

Each inspects the model once (:func:`xaibench.models.nonlinearities.inspect_model`) and names every
nonlinearity its rules are not defined for; the plan then marks the method's cells on that
model not applicable with that line, so no plain-gradient map is ever scored under the method's name.

- Guided backpropagation (Springenberg et al. 2015, Sec. 3.4) and deconvolution (Zeiler &
  Fergus 2014, Sec. 2.1) replace the backward pass of a ReLU; max pooling routes the signal
  to its maxima (the deconvnet's switches, the gradient's own routing). captum implements the
  ReLU rule as a hook on ``nn.ReLU`` modules; the method runs on
  :func:`~xaibench_captum.modelcopy.hookable_copy`, which makes every functional ReLU call
  (``F.relu``, ``torch.relu``, ``x.relu()``) and every reused or in-place ``nn.ReLU`` its own
  module, so those are covered. Every other nonlinearity (ReLU6, LeakyReLU, SiLU, GELU,
  sigmoid gates, products of activations, LayerNorm, a softmax or log head) is not: the
  methods define no rule for it and captum would pass plain gradients through it.
- DeepLIFT's Rescale rule (Shrikumar et al. 2017, Sec. 3.5.1: ``m = dy / dx``, the ratio of the
  output's and the input's difference from the reference) conserves for every element-wise
  nonlinearity, and captum's max-pooling rule routes each window's output difference to the
  input's and the reference's maxima, which conserves too. captum implements them for the module
  types of its ``SUPPORTED_NON_LINEAR`` only; functional ReLU calls and reused or in-place modules
  are made separate modules on the copy, each reading its own clone of its input (captum's hooks
  otherwise lose the multipliers between adjacent modules, in either order of pooling and
  activation: :mod:`~xaibench_captum.modelcopy`). Covered: ReLU, ELU, LeakyReLU, Sigmoid, Tanh,
  Softplus modules, and MaxPool1/2/3d whose windows do not overlap (stride >= kernel size,
  dilation 1). Not covered, each measured against summation-to-delta with captum alone:
  a functional call of any other nonlinearity or a module type outside that list (SiLU, GELU,
  ReLU6, adaptive max pooling, LayerNorm), whose plain gradient breaks it (completeness error 0.22
  on a SiLU network vs 6e-8 on its ReLU twin); a product of two activations; overlapping or
  dilated max pooling (torchvision ResNet's and DenseNet's 3x3 stride-2 stem pool), where captum
  un-pools with ``max_unpool``, which keeps one of the contributions routed to a position that is
  the maximum of several windows (errors 0.1 to 4 on a conv-ReLU-pool(3, 2) net), or fails
  (dilation); ``nn.Softmax``, whose captum rule divides element-wise and subtracts the mean
  multiplier of the whole batch (errors up to 8 on a dense softmax head), not Shrikumar et al.'s
  Sec. 3.6 (which explains the logits before the softmax, as xaibench does by default).

On a model ``torch.fx`` cannot trace, a module its parent calls more than once cannot be split
by the copy, so its cells are not applicable too.
"""
from __future__ import annotations

import torch
from torch import nn

from xaibench.models.nonlinearities import Inspection, Site, inspect_model, uncovered_reason

GUIDED_KINDS = frozenset({"ReLU", "MaxPool"})


def _separable(site: Site, inspection: Inspection) -> bool:
    """The copy can give the site its own module: always on a traced model; not for a reused module otherwise."""
    return inspection.traced or not site.reused


def guided_backprop_covers(model: nn.Module) -> str | None:
    """None where every nonlinearity of ``model`` is a ReLU or max pooling, else the reason (one line)."""
    found = inspect_model(model)
    return uncovered_reason("guided backpropagation modifies ReLU gradients", found,
                            lambda site: site.kind in GUIDED_KINDS and _separable(site, found))


def deconvolution_covers(model: nn.Module) -> str | None:
    """None where every nonlinearity of ``model`` is a ReLU or max pooling, else the reason (one line)."""
    found = inspect_model(model)
    return uncovered_reason("deconvolution replaces the backward pass of ReLUs", found,
                            lambda site: site.kind in GUIDED_KINDS and _separable(site, found))


#: captum's DeepLIFT rules that keep summation-to-delta: its ``SUPPORTED_NON_LINEAR`` less ``nn.Softmax``.
DEEPLIFT_CONSERVING = (nn.ReLU, nn.ELU, nn.LeakyReLU, nn.Sigmoid, nn.Tanh, nn.Softplus, nn.MaxPool1d, nn.MaxPool2d,
                       nn.MaxPool3d)


def overlapping_pools(model: nn.Module, inspection: Inspection) -> list[str]:
    """The max-pooling modules of ``inspection`` whose windows overlap (stride below the kernel size along an
    axis) or are dilated, as ``"path (kernel k, stride s)"``: where captum's DeepLIFT un-pools with ``max_unpool``
    and loses contributions."""
    out = []
    for site in inspection.sites:
        if site.module not in (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d):
            continue
        pool = model.get_submodule(site.where)
        kernel, dilation = torch.as_tensor(pool.kernel_size), torch.as_tensor(pool.dilation)
        stride = torch.as_tensor(pool.stride or pool.kernel_size)
        if bool((stride < kernel).any()) or bool((dilation != 1).any()):
            dilated = f", dilation {pool.dilation}" if bool((dilation != 1).any()) else ""
            out.append(f"{site.where} (kernel {pool.kernel_size}, stride {pool.stride}{dilated})")
    return out


def deeplift_covers(model: nn.Module) -> str | None:
    """None where captum's DeepLIFT keeps summation-to-delta through every nonlinearity of ``model``, else the
    reason (one line): a nonlinearity outside :data:`DEEPLIFT_CONSERVING`, or overlapping max pooling."""
    found = inspect_model(model)

    def covered(site: Site) -> bool:
        return (site.module in DEEPLIFT_CONSERVING or (site.functional and site.kind == "ReLU")) and _separable(
            site, found)

    rule = ("DeepLIFT's Rescale rule is implemented by captum for ReLU, ELU, LeakyReLU, Sigmoid, Tanh, Softplus "
            "and non-overlapping MaxPool modules")
    reason = uncovered_reason(rule, found, covered)
    if reason is not None:
        return reason
    pools = overlapping_pools(model, found)
    if pools:
        return (f"{rule}; this network's max pooling windows overlap ({', '.join(pools[:3])}), where captum's "
                "max-unpooling keeps one of the contributions routed to a shared maximum")
    return None

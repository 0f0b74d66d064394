"""What the rules of captum's gradient-modifying methods cover: the ``covers`` functions of their specs.

Each inspects the model once (:func:`xaibench.nonlinearities.inspect_model`) and names every
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
- DeepLIFT's Rescale rule (Shrikumar et al. 2017, Sec. 3.5.1; max pooling and softmax as in
  captum) is implemented by captum for the module types of its ``SUPPORTED_NON_LINEAR`` only
  (ReLU, ELU, LeakyReLU, Sigmoid, Tanh, Softplus, MaxPool1/2/3d, Softmax); functional ReLU
  calls and reused or in-place modules are made separate modules on the copy. A functional
  call of any other nonlinearity, a module type outside that list (SiLU, GELU, ReLU6, adaptive
  max pooling, LayerNorm), or a product of two activations gets plain gradients, which breaks
  summation-to-delta (completeness error 0.22 on a SiLU network vs 6e-8 on its ReLU twin).
  Max pooling is covered by captum's own max-pooling rule, which does not conserve the total
  exactly: measured completeness errors of 2-44% on small conv nets with max pooling (up to 1e-4
  with average pooling); the completeness metrics show it, under DeepLIFT's name, because it is
  the method as implemented, not a fallback to plain gradients.

On a model ``torch.fx`` cannot trace, a module its parent calls more than once cannot be split
by the copy, so its cells are not applicable too.
"""
from __future__ import annotations

from torch import nn

from xaibench.nonlinearities import Inspection, Site, inspect_model, uncovered_reason
from xaibench_captum.modelcopy import hooked_types

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


def deeplift_covers(model: nn.Module) -> str | None:
    """None where captum's DeepLIFT has a rule for every nonlinearity of ``model``, else the reason (one line)."""
    types, found = hooked_types(), inspect_model(model)

    def covered(site: Site) -> bool:
        return (site.module in types or (site.functional and site.kind == "ReLU")) and _separable(site, found)

    return uncovered_reason("DeepLIFT's Rescale rule is implemented by captum for ReLU, ELU, LeakyReLU, Sigmoid, "
                            "Tanh, Softplus, MaxPool and Softmax modules", found, covered)

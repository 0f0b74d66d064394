"""LRP maps through zennit 0.5: rules, composites and canonizers behind the xaibench method contract.

Every method here runs the model under a zennit composite (hooks on each layer, canonizers
merging BatchNorm into the preceding convolution and making residual adds explicit ``Sum``
modules), initialises the relevance at the output with the target logit (``R_L = f_c(x)``,
Montavon et al. 2019, "Layer-wise relevance propagation: an overview", sec. 10.1), and reads
the relevance at the input. The composite is registered on the caller's model and removed in
a ``finally`` (zennit's hooks and the canonizers' parameter changes are undone even when the
forward or backward raises). Which models a composite's rules cover is decided by
:mod:`xaibench_zennit.coverage` before anything runs.

zennit is imported inside the functions: ``xaibench plugins`` must not import torch.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from xaibench.base.errors import XaibenchError
from xaibench.contract.layers import input_layers
from xaibench.scoring.maps import reduce_channels
from xaibench.contract.outputs import one_logit
from xaibench.scoring.segmentation import region_score
from xaibench.contract.specs import MethodContext


def canonizers() -> list[Any]:
    """The canonizers every LRP method here applies: zennit's ``ResNetCanonizer``.

    It is ``SequentialMergeBatchNorm`` (a BatchNorm directly after a convolution or linear layer is
    folded into that layer's weights and bias, so the rules see the affine map the network computes)
    plus the torchvision ResNet ``BasicBlock``/``Bottleneck`` canonizers (the residual ``out + identity``
    becomes a zennit ``Sum`` module, which the composites give the ``Norm`` rule). On a network without
    ResNet blocks only the BatchNorm merge acts.
    """
    from zennit.torchvision import ResNetCanonizer

    return [ResNetCanonizer()]


def relevance(model: nn.Module, x: torch.Tensor, target: torch.Tensor, composite: Any) -> torch.Tensor:
    """Input relevance ``(N, C, *spatial)`` of the target logits under ``composite`` (a zennit ``Composite``).

    The output relevance is the one-hot target times the logit, so with a conserving rule the map
    sums to ``f_c(x)`` (Montavon et al. 2019, sec. 10.1); for a one-logit model (:func:`xaibench.contract.outputs.one_logit`)
    ``f_c`` is ``z`` for class 1 and ``-z`` for class 0, the relevance of ``z`` under ``R = f_c``. For a
    segmenter's region score (:class:`xaibench.scoring.segmentation.RegionScore`, ``S_k = sum_i w_i y_k,i``, linear in the
    per-pixel logits) relevance starts at the per-pixel output with ``R_k,i = w_i y_k,i``, which sums to ``S_k``
    (the z-rule of that sum). The composite (hooks and canonizers) is
    removed in a ``finally``, also when the forward or backward raises. Parameters' ``.grad`` are
    never written (``torch.autograd.grad`` with respect to the input only).
    """
    inputs = x.detach().clone().requires_grad_(True)
    region = region_score(model)
    try:
        composite.register(model)
        with torch.enable_grad():
            if region is not None:  # a segmenter's region score S_k = sum_i w_i y_k,i: start at y with R = w y
                out = region.segmenter()(inputs)
                picked = nn.functional.one_hot(target.to(out.device), out.shape[1]).float().reshape(
                    *out.shape[:2], *[1] * (out.dim() - 2)) * region.weights
            else:
                out = model(inputs)
                picked = torch.zeros_like(out).scatter_(1, target.view(-1, 1).to(out.device), 1.0)
            if one_logit(model):  # [-z, z]: start at z itself with R = f_c (z or -z); autograd through the
                # negation would flip the sign LRP passes unchanged, and every rule is linear in R
                (attr,) = torch.autograd.grad(out[:, 1], inputs, grad_outputs=(picked * out.detach()).sum(1))
            else:
                (attr,) = torch.autograd.grad(out, inputs, grad_outputs=picked * out.detach())
    finally:
        composite.remove()
    return attr.detach()


def _rule_map(rule: Any, stabilizer: float = 1e-6) -> Any:
    """A composite with ``rule`` on every convolution and linear layer, over zennit's base layer map
    (``Pass`` on activations and merged BatchNorm, ``Norm`` on average pooling and canonizer sums)."""
    from zennit.composites import LayerMapComposite, layer_map_base
    from zennit.types import Linear

    return LayerMapComposite(layer_map=layer_map_base(stabilizer) + [(Linear, rule)], canonizers=canonizers())


def lrp_epsilon(model: nn.Module, x: torch.Tensor, target: torch.Tensor, ctx: MethodContext,
                epsilon: float = 1e-6, reduce: str = "sum") -> torch.Tensor:
    """LRP-epsilon on every convolution and linear layer (Montavon et al. 2019, sec. 10.2.2; Bach et al. 2015).

    ``R_j = sum_k a_j w_jk / (z_k + epsilon sign(z_k)) R_k``: relevance is conserved up to what
    epsilon and the biases absorb, so the map ``(N, *spatial)`` (channels summed) sums to the target
    logit on a bias-free network as epsilon -> 0, where it equals Input x Gradient. Units: the
    logit's. ``epsilon`` > 0 (zennit's default 1e-6, near LRP-0; the overview's example uses
    0.25 std of the pre-activations, a scale-relative value that a fixed epsilon cannot state).
    Raises :class:`XaibenchError` for ``epsilon <= 0``.
    """
    from zennit.rules import Epsilon

    if not epsilon > 0:
        raise XaibenchError(f"lrp-epsilon: epsilon must be > 0, got {epsilon}")
    return reduce_channels(relevance(model, x, target, _rule_map(Epsilon(epsilon=epsilon))), reduce)


def lrp_gamma(model: nn.Module, x: torch.Tensor, target: torch.Tensor, ctx: MethodContext,
              gamma: float = 0.25, reduce: str = "sum") -> torch.Tensor:
    """LRP-gamma on every convolution and linear layer (Montavon et al. 2019, sec. 10.2.3), ``gamma`` = 0.25
    (the overview's value): positive weights are favoured by ``w + gamma w+``, which makes maps more stable.

    Returns ``(N, *spatial)`` (channels summed), in the logit's units (conserving for non-negative
    activations). Raises :class:`XaibenchError` for ``gamma < 0``.
    """
    from zennit.rules import Gamma

    if not gamma >= 0:
        raise XaibenchError(f"lrp-gamma: gamma must be >= 0, got {gamma}")
    return reduce_channels(relevance(model, x, target, _rule_map(Gamma(gamma=gamma))), reduce)


def lrp_alpha_beta(model: nn.Module, x: torch.Tensor, target: torch.Tensor, ctx: MethodContext,
                   alpha: float = 1.0, beta: float = 0.0, reduce: str = "sum") -> torch.Tensor:
    """LRP-alpha-beta on every convolution and linear layer (Bach et al. 2015; Montavon et al. 2019, sec. 10.2.4):
    positive contributions weighted ``alpha``, negative ones ``beta``; ``alpha = 1, beta = 0`` (the default) is
    the z+ rule (Montavon et al. 2017, deep Taylor decomposition), the overview's LRP-alpha1beta0.

    Returns ``(N, *spatial)`` (channels summed), in the logit's units. Raises :class:`XaibenchError`
    unless ``alpha - beta = 1`` and ``beta >= 0`` (the rule's conservation condition).
    """
    from zennit.rules import AlphaBeta

    if not (beta >= 0 and abs(alpha - beta - 1.0) < 1e-9):
        raise XaibenchError(f"lrp-alpha-beta: needs alpha - beta = 1 and beta >= 0, got alpha={alpha}, beta={beta}")
    return reduce_channels(relevance(model, x, target, _rule_map(AlphaBeta(alpha=alpha, beta=beta))), reduce)


def input_layer_names(model: nn.Module, who: str) -> tuple[str, ...]:
    """The module paths of the convolutions and linear layers that read ``model``'s input, from its traced graph
    (:func:`xaibench.contract.layers.input_layers`), not the first such module in definition order as zennit's
    ``SpecialFirstLayerMapComposite`` takes it (zennit issues #63, #76). Raises :class:`XaibenchError` (one line,
    starting with ``who``) where the model cannot be traced or no such layer reads the input alone."""
    from xaibench_zennit.coverage import LINEAR, ZennitTracer

    try:
        return input_layers(model, lambda m: isinstance(m, LINEAR), "convolution or linear", who, ZennitTracer())
    except ValueError as error:
        raise XaibenchError(str(error)) from None


def _input_layer_composite(model: nn.Module, who: str, first: Any, convolution: Any, dense: Any) -> Any:
    """zennit's composite with rule ``first`` on the layers that read the input (found by the data flow),
    ``convolution`` on the other convolutions, ``dense`` on the other linear layers, and zennit's base layer
    map (stabiliser 1e-6) elsewhere: the composite zennit's ``EpsilonPlusFlat``/``EpsilonGammaBox`` mean."""
    from zennit.composites import LayerMapComposite, MixedComposite, NameMapComposite, layer_map_base
    from zennit.types import Convolution

    names = input_layer_names(model, who)
    rest = LayerMapComposite(layer_map=layer_map_base(1e-6) + [(Convolution, convolution), (nn.Linear, dense)])
    return MixedComposite([NameMapComposite([(names, first)]), rest], canonizers=canonizers())


def lrp_epsilon_plus_flat(model: nn.Module, x: torch.Tensor, target: torch.Tensor, ctx: MethodContext,
                          epsilon: float = 1e-6, reduce: str = "sum") -> torch.Tensor:
    """zennit's ``EpsilonPlusFlat`` composite (Kohlbrenner et al. 2020, "Towards best practice in explaining
    neural network decisions with LRP", IJCNN, sec. III): the flat rule on the layers that read the input
    (found by the data flow, :func:`input_layer_names`), z+ on the other convolutions, epsilon on the dense
    layers (zennit's stabiliser 1e-6 for flat and z+).

    Returns ``(N, *spatial)`` (channels summed), in the logit's units. Raises :class:`XaibenchError`
    for ``epsilon <= 0`` and where the input layer cannot be found (:func:`input_layer_names`).
    """
    from zennit.rules import Epsilon, Flat, ZPlus

    name = "lrp-epsilon-plus-flat"
    if not epsilon > 0:
        raise XaibenchError(f"{name}: epsilon must be > 0, got {epsilon}")
    composite = _input_layer_composite(model, name, Flat(stabilizer=1e-6), ZPlus(stabilizer=1e-6),
                                       Epsilon(epsilon=epsilon))
    return reduce_channels(relevance(model, x, target, composite), reduce)


def lrp_epsilon_gamma_box(model: nn.Module, x: torch.Tensor, target: torch.Tensor, ctx: MethodContext,
                          low: float | None = None, high: float | None = None, epsilon: float = 1e-6,
                          gamma: float = 0.25, reduce: str = "sum") -> torch.Tensor:
    """zennit's ``EpsilonGammaBox`` composite (Montavon et al. 2019, sec. 10.2, Fig. 10.2; Kohlbrenner et al.
    2020): the z^B (box) rule on the layers that read the input (found by the data flow,
    :func:`input_layer_names`; a convolution or, in a network that reads its input with a dense layer, that
    layer), gamma on the other convolutions, epsilon on the other dense layers (stabiliser 1e-6).

    ``low`` and ``high`` bound the input domain (the data's value range: 0 and 1 for images scaled to
    [0, 1]); they have no default because only the data knows them. Returns ``(N, *spatial)``
    (channels summed), in the logit's units. Raises :class:`XaibenchError` when ``low``/``high`` are
    missing, ``low >= high``, an input value lies outside ``[low, high]`` (the box rule is
    defined only inside the box), or the input layer cannot be found.
    """
    from zennit.rules import Epsilon, Gamma, ZBox

    name = "lrp-epsilon-gamma-box"
    if low is None or high is None:
        raise XaibenchError(f"{name}: set params low and high to the data's value range (e.g. {{low: 0, high: 1}})")
    if not low < high:
        raise XaibenchError(f"{name}: low ({low}) must be below high ({high})")
    lo, hi = float(x.min()), float(x.max())
    if lo < low or hi > high:
        raise XaibenchError(f"{name}: inputs span [{lo:.4g}, {hi:.4g}], outside the box [{low}, {high}]; "
                            "set params low and high to the data's value range")
    if not (epsilon > 0 and gamma >= 0):
        raise XaibenchError(f"{name}: needs epsilon > 0 and gamma >= 0, got epsilon={epsilon}, gamma={gamma}")
    composite = _input_layer_composite(model, name, ZBox(low=low, high=high, stabilizer=1e-6),
                                       Gamma(gamma=gamma, stabilizer=1e-6), Epsilon(epsilon=epsilon))
    return reduce_channels(relevance(model, x, target, composite), reduce)

"""Axiomatic properties: does the map obey a rule every explanation should?

- Non-Sensitivity (Nguyen and Martinez, "On Quantitative Aspects of Model Interpretability",
  arXiv:2007.07584, 2020, Sec. 4.1): a feature the model is not sensitive to should get zero
  relevance, and a feature with zero relevance should be one the model is not sensitive to. With
  features the patches of ``patch`` pixels per axis (:func:`xaibench_metrics.regions.patch_index`;
  ``patch: 1``, single pixels, is the paper's), ``Z`` the patches whose absolute relevance (summed
  over the patch, scaled by the largest patch's, of the map or of the batch: ``normalise``,
  :mod:`xaibench_metrics.scaling`) is below ``eps``, and ``I`` the patches whose
  replacement by the fill moves ``p_c`` by less than ``eps``, the score is ``|Z xor I|``, the size of
  the symmetric difference, as a share of the patches (Quantus returns the count). In [0, 1], lower
  is better; NaN for an all-zero map. One batched pass per patch and sample. Quantus 0.6's
  ``NonSensitivity`` follows the paper only with ``features_in_step=1`` on one channel: with larger
  steps it XORs per-step sensitivities with per-pixel zeros, which do not line up (it raises).
- Input Invariance (Kindermans et al., "The (Un)reliability of Saliency Methods", in Explainable AI:
  Interpreting, Explaining and Visualizing Deep Learning, Springer 2019, Sec. 2): a constant shift
  ``x + c`` of the input that the first layer absorbs leaves the model's function unchanged, so the
  map should not change. The shifted model is the model whose first layer (the first module that
  reads the input: a convolution or a linear layer) subtracts its response to the constant image
  ``c`` without its bias, ``L'(z) = L(z) - L_0(c)``: its outputs on ``x + c`` equal the model's on
  ``x`` exactly. Without padding ``L_0(c)`` is one value per output channel, Kindermans's bias
  ``b' = b - W c`` (Quantus's ``add_mean_shift_to_first_layer``); with zero padding it differs at the
  borders, which a bias cannot absorb and this offset does. The score is 1 where the method's map of
  ``x + c`` under the shifted model equals its map of ``x`` within ``tol`` of the map's largest absolute
  value, else 0 (Quantus: ``np.isclose(atol=1e-4)`` in the map's own units). NaN for an all-zero map.
  One re-explanation of the cell's samples. Quantus 0.6's ``InputInvariance`` shifts every input value but
  the first of each sample, so its shifted model is not given ``x + c``: not the paper's test.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from xaibench.scoring.engine import Engine
from xaibench_metrics.completeness import fill_baseline
from xaibench_metrics.regions import patch_index
from xaibench_metrics.scaling import scaled

#: The first layers whose response to a constant input shift can be subtracted (Kindermans et al. 2019).
LINEAR_FIRST = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def non_sensitivity(inputs: torch.Tensor, targets: torch.Tensor, maps: torch.Tensor, engine: Engine,
                    base_logits: torch.Tensor, data_mean: torch.Tensor | None = None, patch: int = 4,
                    eps: float = 1e-5, fill: str = "zero", output: str = "prob",
                    normalise: str = "sample") -> np.ndarray:
    """Non-Sensitivity (Nguyen and Martinez 2020): ``|Z xor I| / patches``, ``(N,)`` float64 in [0, 1]; lower is better.

    The patches' relevance is scaled by the map's largest patch (``normalise: sample``) or the batch's
    (``batch``, Quantus 0.6's; :mod:`xaibench_metrics.scaling`). NaN for an all-zero map. Raises
    :class:`ValueError` for a bad ``patch``, ``fill``, ``output``, ``normalise`` or ``eps <= 0``.
    """
    if eps <= 0:
        raise ValueError(f"non-sensitivity needs eps > 0, got {eps}")
    x = inputs.to(engine.device)
    index, cells = patch_index(tuple(x.shape[2:]), patch)
    index = index.to(x.device)
    relevance = torch.zeros(x.shape[0], cells, dtype=torch.float64, device=x.device)
    relevance.index_add_(1, index, maps.reshape(x.shape[0], -1).abs().double().to(x.device))
    zero = torch.from_numpy(scaled(relevance.cpu().numpy(), normalise) < eps).to(x.device)
    canvas = fill_baseline(x, fill, data_mean).to(x)
    shape = (-1, 1, *x.shape[2:])

    def perturb(sample_idx: torch.Tensor, step_idx: torch.Tensor) -> torch.Tensor:
        replaced = (index[None, :] == step_idx[:, None]).reshape(shape)
        return torch.where(replaced, canvas[sample_idx], x[sample_idx])

    f_x = engine.select(base_logits.to(x.device), targets, output)
    moved = (engine.perturbed_scores(perturb, x.shape[0], cells, targets, output) - f_x[:, None]).abs()
    insensitive = moved < eps
    share = (zero ^ insensitive).double().mean(1)
    return torch.where(relevance.amax(1) > 0, share, torch.full_like(share, float("nan"))).cpu().numpy()


def first_layer(model: nn.Module, sample: torch.Tensor) -> nn.Module:
    """The first leaf module that reads the input ``sample`` ``(1, C, *spatial)`` in the forward pass (found with
    hooks; containers are looked through).

    Raises :class:`ValueError` unless it is a convolution or linear layer (:data:`LINEAR_FIRST`): only
    a linear first layer absorbs a constant shift (Kindermans et al. 2019).
    """
    readers: list[nn.Module] = []

    def hook(module: nn.Module, args: tuple[object, ...]) -> None:
        if not readers and any(a is sample for a in args):
            readers.append(module)

    handles = [m.register_forward_pre_hook(hook) for m in model.modules() if not any(True for _ in m.children())]
    try:
        with torch.no_grad():
            model(sample)
    finally:
        for h in handles:
            h.remove()
    if not readers or not isinstance(readers[0], LINEAR_FIRST):
        found = "no submodule" if not readers else type(readers[0]).__name__
        raise ValueError(f"input-invariance needs a model whose first layer on the input is a convolution or linear "
                         f"layer (Kindermans et al. 2019: the shift is absorbed there); its input is read by {found}")
    return readers[0]


def absorb_shift(model: nn.Module, sample: torch.Tensor, shift: float) -> Callable[[], None]:
    """Make ``model``'s first layer answer ``L(z) - L_0(shift)`` (module doc) with a forward hook; returns its remover.

    ``sample`` ``(1, C, *spatial)`` on the model's device; the model's parameters are not changed.
    Raises :class:`ValueError` where the first layer is not linear (:func:`first_layer`).
    """
    layer = first_layer(model, sample)
    with torch.no_grad():
        constant = torch.full_like(sample, float(shift))
        if isinstance(layer, nn.Linear):
            offset = nn.functional.linear(constant, layer.weight)
        else:  # the layer's own padding: zero padding makes the offset differ at the borders
            offset = layer._conv_forward(constant, layer.weight, None)  # type: ignore[operator]

    def subtract(_module: nn.Module, _args: object, out: torch.Tensor) -> torch.Tensor:
        return out - offset

    return layer.register_forward_hook(subtract).remove


def input_invariance(inputs: torch.Tensor, maps: torch.Tensor, model: Callable[[], nn.Module],
                     explain: Callable[..., torch.Tensor], shift: float = -1.0, tol: float = 1e-4) -> np.ndarray:
    """Input Invariance (Kindermans et al. 2019): 1.0 where the map of ``x + shift`` under the shifted model equals
    the map of ``x`` within ``tol * max|map|``, else 0.0; ``(N,)`` float64, NaN for an all-zero map.

    Raises :class:`ValueError` for ``shift == 0``, ``tol < 0`` or a model whose first layer is not linear.
    """
    if shift == 0 or tol < 0:
        raise ValueError(f"input-invariance needs a non-zero shift and tol >= 0, got {shift} and {tol}")
    m = model()
    device = next(m.parameters()).device
    remove = absorb_shift(m, inputs[:1].to(device), shift)
    try:
        again = explain(model=m, inputs=inputs + shift).to(maps.device)
    finally:
        remove()
    flat = maps.reshape(maps.shape[0], -1).double()
    top = flat.abs().amax(1)
    gap = (again.reshape(maps.shape[0], -1).double() - flat).abs().amax(1)
    return torch.where(top > 0, (gap <= tol * top).double(), torch.full_like(top, float("nan"))).cpu().numpy()

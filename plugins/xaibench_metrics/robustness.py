"""Robustness: how much a method's map moves when the input moves a little.

Each metric re-runs the cell's method (``explain(inputs=...)``, batched over the
cell's samples by the runner) on ``draws`` perturbed copies ``x' = x + delta`` of
every input and compares the maps. The noise of sample ``i`` is drawn from its
``sample_seeds[i]``, which depends on the dataset, model, metric and sample but not
on the method: every method faces the same draws (common random numbers), so two
methods with identical maps get identical scores and differences between methods
are not sampling noise. Maps are compared as the method returned them (no
rescaling); ``noise`` is ``"uniform"`` (each input value plus U[-scale, scale]) or
``"gaussian"`` (plus N(0, scale^2)), in the input's own units. The default scale,
0.05, assumes inputs of about unit range (images in [0, 1]): Quantus's 0.2 flipped
62% of the predictions of the built-in small CNN on the synthetic lesions (0.05: 2%),
and the stability metrics are undefined where every draw flips it. Set ``scale`` for
inputs in other units (CT values, z-scored signals). Lower is better for all of them;
a map that is exactly invariant to the perturbation scores 0.

- Max-Sensitivity and Avg-Sensitivity (Yeh, Hsieh, Suggala, Inouye, Ravikumar, "On
  the (In)fidelity and Sensitivity of Explanations", NeurIPS 2019, Def. 3.1):
  ``max_k`` (resp. ``mean_k``) of ``||Phi(x'_k) - Phi(x)||_2``, Monte Carlo over the
  draws. With ``relative`` (default, as Quantus 0.6's ``MaxSensitivity`` and
  ``AvgSensitivity``) divided by ``||Phi(x)||_2`` so that methods whose maps live on
  different scales compare; NaN for an all-zero map. Equal to Quantus on the same draws.
- Local Lipschitz Estimate (Alvarez-Melis and Jaakkola, "On the Robustness of
  Interpretability Methods", ICML WHI 2018, Eq. 1): ``max_k ||Phi(x) - Phi(x'_k)||_2 /
  ||x - x'_k||_2``, Gaussian noise by default (as Quantus's ``LocalLipschitzEstimate``);
  equal to Quantus on the same draws with ``normalise=False`` (Quantus adds 1e-10 to the denominator; its
  default ``normalise=True`` scales the maps and the perturbed maps by each batch's largest value).
- Relative Input / Representation / Output Stability (Agarwal, Johnson, Pawelczyk,
  Krishna, Saxena, Zitnik, Lakkaraju, "Rethinking Stability for Attribution-based
  Explanations", ICLR PAIR2Struct workshop 2022, Eqs. 2, 3, 5), with
  ``rel(a, b) = (a - b) / a`` elementwise (``eps_min`` where ``a == 0``):

      RIS = max_k ||rel(Phi(x), Phi(x'_k))||_2 / max(||rel(x, x'_k)||_2, eps_min)
      RRS = max_k ||rel(Phi(x), Phi(x'_k))||_2 / max(||rel(L(x), L(x'_k))||_2, eps_min)
      ROS = max_k ||rel(Phi(x), Phi(x'_k))||_2 / max(||h(x) - h(x'_k)||_2, eps_min)

  The elementwise relative change divides by ``eps_min`` where ``Phi(x)`` is exactly 0,
  so maps with many exact zeros (CAMs after their ReLU) score in the thousands or
  more: a property of the definition (Quantus gives the same), to read per method.
  ``h`` the logits, ``L`` an internal representation (default: the input of the
  parameterised module whose output the model returns, found in its traced graph, or where
  ``torch.fx`` cannot trace it the last to finish on a forward pass, never the last one its
  ``__init__`` defines: the representation the classifier reads; or the output of the
  module named ``layer``). The maximum runs over draws whose predicted
  class equals that of ``x`` (the paper's constraint); a sample whose every draw
  changes the prediction is NaN. Equal to Quantus 0.6 where no draw changes the
  prediction (Quantus then returns NaN for the sample if *any* draw does).

Cost: ``draws`` re-runs of the method on the cell's samples, all draws in one
``explain`` call (the runner fills the method's calls across draws), plus ``draws``
forward passes for the prediction check (RIS, RRS, ROS).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from xaibench.scoring.engine import Engine
from xaibench.contract.layers import forward_order, output_layers, traced

NOISES = ("uniform", "gaussian")


def input_noise(inputs: torch.Tensor, sample_seeds: Sequence[int], draws: int, noise: str,
                scale: float) -> torch.Tensor:
    """Perturbations ``(draws, N, C, *spatial)`` on ``inputs``'s device: sample ``i``'s from ``sample_seeds[i]``.

    Raises :class:`ValueError` for an unknown ``noise``, ``draws < 1``, ``scale <= 0`` or a
    seed count that is not one per sample.
    """
    if noise not in NOISES:
        raise ValueError(f"noise must be one of {', '.join(NOISES)}, got {noise!r}")
    if draws < 1 or scale <= 0:
        raise ValueError(f"robustness metrics need draws >= 1 and a positive noise scale, got {draws} and {scale}")
    if len(sample_seeds) != inputs.shape[0]:
        raise ValueError(f"need one seed per sample, got {len(sample_seeds)} for {inputs.shape[0]} samples")
    shape = (draws, *inputs.shape[1:])
    per_sample = []
    for s in sample_seeds:
        gen = torch.Generator().manual_seed(int(s))
        u = torch.rand(shape, generator=gen, dtype=torch.float64) if noise == "uniform" else \
            torch.randn(shape, generator=gen, dtype=torch.float64)
        per_sample.append((2 * u - 1) * scale if noise == "uniform" else u * scale)
    return torch.stack(per_sample, 1).to(inputs.device, inputs.dtype)


def reexplained(inputs: torch.Tensor, explain: Callable[..., torch.Tensor],
                perturbations: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``(x'_k, Phi(x'_k))`` for each draw ``k`` of ``perturbations`` ``(draws, N, C, *spatial)``.

    Every draw of every sample is explained in one call (the runner fills the method's calls across draws)."""
    return zip(*restacked(inputs, explain, inputs[None] + perturbations))


def restacked(inputs: torch.Tensor, explain: Callable[..., torch.Tensor], moved: torch.Tensor,
              model: nn.Module | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(moved, Phi(moved))`` for ``moved`` ``(k, N, C, *spatial)``, ``k`` copies of the ``N`` inputs, in one
    ``explain`` call on the ``k N`` inputs stacked (on ``model``, default the cell's): maps ``(k, N, *spatial)``
    float32 on ``inputs``'s device."""
    k, n = moved.shape[:2]
    on = () if model is None else (model,)
    maps = explain(*on, inputs=moved.reshape(k * n, *moved.shape[2:])).to(inputs.device).float()
    return moved, maps.reshape(k, n, *maps.shape[1:])


def _norm(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1).double().norm(dim=1)


def _sensitivity(inputs: torch.Tensor, maps: torch.Tensor, explain: Callable[..., torch.Tensor],
                 sample_seeds: Sequence[int], draws: int, noise: str, scale: float, relative: bool,
                 reduce: str) -> np.ndarray:
    distances = torch.stack([_norm(again - maps) for _, again in
                             reexplained(inputs, explain, input_noise(inputs, sample_seeds, draws, noise, scale))])
    out = distances.amax(0) if reduce == "max" else distances.mean(0)
    if relative:
        size = _norm(maps)
        out = torch.where(size > 0, out / size.clamp(min=1e-300), torch.full_like(out, float("nan")))
    return out.cpu().numpy()


def max_sensitivity(inputs: torch.Tensor, maps: torch.Tensor, explain: Callable[..., torch.Tensor],
                    sample_seeds: Sequence[int], draws: int = 10, noise: str = "uniform", scale: float = 0.05,
                    relative: bool = True) -> np.ndarray:
    """Max-Sensitivity (Yeh et al. 2019, Def. 3.1): ``max_k ||Phi(x + delta_k) - Phi(x)||_2`` (/ ``||Phi(x)||_2``).

    ``(N,)`` float64, >= 0, lower is better; NaN where ``relative`` and the map is all zeros.
    """
    return _sensitivity(inputs, maps, explain, sample_seeds, draws, noise, scale, relative, "max")


def avg_sensitivity(inputs: torch.Tensor, maps: torch.Tensor, explain: Callable[..., torch.Tensor],
                    sample_seeds: Sequence[int], draws: int = 10, noise: str = "uniform", scale: float = 0.05,
                    relative: bool = True) -> np.ndarray:
    """Avg-Sensitivity (Yeh et al. 2019, Sec. 3): ``mean_k ||Phi(x + delta_k) - Phi(x)||_2`` (/ ``||Phi(x)||_2``).

    ``(N,)`` float64, >= 0, lower is better; NaN where ``relative`` and the map is all zeros.
    """
    return _sensitivity(inputs, maps, explain, sample_seeds, draws, noise, scale, relative, "mean")


def local_lipschitz(inputs: torch.Tensor, maps: torch.Tensor, explain: Callable[..., torch.Tensor],
                    sample_seeds: Sequence[int], draws: int = 10, noise: str = "gaussian",
                    scale: float = 0.05) -> np.ndarray:
    """Local Lipschitz Estimate (Alvarez-Melis and Jaakkola 2018, Eq. 1): ``max_k ||Phi(x) - Phi(x'_k)|| / ||x - x'_k||``.

    ``(N,)`` float64, >= 0 (map units per input unit), lower is better.
    """
    ratios = torch.stack([_norm(again - maps) / _norm(moved - inputs) for moved, again in
                          reexplained(inputs, explain, input_noise(inputs, sample_seeds, draws, noise, scale))])
    return ratios.amax(0).cpu().numpy()


def _relative_change(a: torch.Tensor, b: torch.Tensor, eps_min: float) -> torch.Tensor:
    """``||(a - b) / a||_2`` per sample, ``eps_min`` standing in for the zeros of ``a``."""
    a, b = a.double(), b.double()
    return _norm((a - b) / torch.where(a == 0, torch.full_like(a, eps_min), a))


def _representation(model: nn.Module, layer: str | None, example: torch.Tensor) -> tuple[nn.Module, str]:
    """The module whose input (``layer`` None: the parameterised module that produces the output, by the data flow,
    :func:`xaibench.contract.layers.output_layers`; where ``torch.fx`` cannot trace the model, the last one to finish on a
    forward pass of ``example``) or output (``layer``) is L(x).

    Raises :class:`ValueError` (one line) for a ``layer`` that is not a module, and with ``layer`` None where no
    parameterised module, or several, produce the output: name ``layer`` then.
    """
    if layer is not None:
        try:
            return model.get_submodule(layer), "output"
        except AttributeError:
            raise ValueError(f"layer {layer!r} is not a module of the model") from None
    who = "relative-representation-stability (set param layer to the module whose output is the representation)"

    def own(m: nn.Module) -> bool:
        return any(True for _ in m.parameters(recurse=False))

    try:
        traced(model, who)
    except ValueError:
        finished = forward_order(model, own, who, example=example)
        if not finished:
            raise ValueError(f"{who}: no parameterised layer produces this network's output") from None
        return model.get_submodule(finished[-1]), "input"
    last = output_layers(model, own, "parameterised", who)
    if len(last) > 1:
        raise ValueError(f"{who}: the output comes from several parameterised modules ({', '.join(last)})")
    return model.get_submodule(last[0]), "input"


def _stability(inputs: torch.Tensor, maps: torch.Tensor, explain: Callable[..., torch.Tensor], engine: Engine,
               base_logits: torch.Tensor, sample_seeds: Sequence[int], draws: int, noise: str, scale: float,
               eps_min: float, same_prediction: bool,
               denominator: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> np.ndarray:
    """``max_k ||rel(Phi(x), Phi(x'_k))|| / max(denominator(x'_k, h(x'_k)), eps_min)`` over the admissible draws."""
    predicted = base_logits.argmax(1)
    ratios = []
    every, maps_of = restacked(inputs, explain, inputs[None] + input_noise(inputs, sample_seeds, draws, noise, scale))
    all_logits = engine.logits(every.reshape(-1, *inputs.shape[1:])).reshape(draws, inputs.shape[0], -1)
    for moved, again, logits in zip(every, maps_of, all_logits):  # every draw's pass in the engine's full batches
        ratio = _relative_change(maps, again, eps_min) / denominator(moved, logits).clamp(min=eps_min)
        if same_prediction:
            ratio = torch.where(logits.argmax(1) == predicted, ratio, torch.full_like(ratio, float("nan")))
        ratios.append(ratio)
    stacked = torch.stack(ratios)
    valid = ~torch.isnan(stacked)
    best = torch.where(valid, stacked, torch.full_like(stacked, -1.0)).amax(0)
    return torch.where(valid.any(0), best, torch.full_like(best, float("nan"))).cpu().numpy()


def relative_input_stability(inputs: torch.Tensor, maps: torch.Tensor, explain: Callable[..., torch.Tensor],
                             engine: Engine, base_logits: torch.Tensor, sample_seeds: Sequence[int],
                             draws: int = 10, noise: str = "uniform", scale: float = 0.05, eps_min: float = 1e-6,
                             same_prediction: bool = True) -> np.ndarray:
    """RIS (Agarwal et al. 2022, Eq. 2): ``max_k ||rel(Phi(x), Phi(x'))|| / max(||rel(x, x')||, eps_min)``.

    ``(N,)`` float64, >= 0, lower is better; NaN where every draw changes the predicted class.
    """
    return _stability(inputs, maps, explain, engine, base_logits, sample_seeds, draws, noise, scale, eps_min,
                      same_prediction, lambda moved, _logits: _relative_change(inputs, moved, eps_min))


def relative_output_stability(inputs: torch.Tensor, maps: torch.Tensor, explain: Callable[..., torch.Tensor],
                              engine: Engine, base_logits: torch.Tensor, sample_seeds: Sequence[int],
                              draws: int = 10, noise: str = "uniform", scale: float = 0.05, eps_min: float = 1e-6,
                              same_prediction: bool = True) -> np.ndarray:
    """ROS (Agarwal et al. 2022, Eq. 5): ``max_k ||rel(Phi(x), Phi(x'))|| / max(||h(x) - h(x')||, eps_min)``, h the logits
    (the user's own: ``z`` of a one-logit model, :meth:`~xaibench.scoring.engine.Engine.own_logits`).

    ``(N,)`` float64, >= 0, lower is better; NaN where every draw changes the predicted class.
    """
    return _stability(inputs, maps, explain, engine, base_logits, sample_seeds, draws, noise, scale, eps_min,
                      same_prediction, lambda _moved, logits: _norm(engine.own_logits(logits - base_logits)))


def representations(model: nn.Module, inputs: torch.Tensor, layer: str | None, batch_size: int) -> torch.Tensor:
    """``L(x)`` ``(N, D)``: the input of the parameterised module that produces the output (``layer`` None) or the
    output of ``layer``.

    Raises :class:`ValueError` for a ``layer`` that is not a module of ``model``, and with ``layer`` None where no
    parameterised module, or several, produce the output.
    """
    module, where = _representation(model, layer, inputs[:1])
    seen: list[torch.Tensor] = []

    def keep(value: object) -> None:
        t = value[0] if isinstance(value, (tuple, list)) else value
        seen.append(t.detach().reshape(t.shape[0], -1).double())  # type: ignore[union-attr]

    handle = module.register_forward_pre_hook(lambda _m, args: keep(args)) if where == "input" else \
        module.register_forward_hook(lambda _m, _args, out: keep(out))
    try:
        Engine(model, inputs.device, batch_size).logits(inputs)
    finally:
        handle.remove()
    return torch.cat(seen)


def relative_representation_stability(inputs: torch.Tensor, maps: torch.Tensor,
                                      explain: Callable[..., torch.Tensor], engine: Engine,
                                      base_logits: torch.Tensor, model: Callable[[], nn.Module],
                                      sample_seeds: Sequence[int], draws: int = 10, noise: str = "uniform",
                                      scale: float = 0.05, eps_min: float = 1e-6, same_prediction: bool = True,
                                      layer: str | None = None) -> np.ndarray:
    """RRS (Agarwal et al. 2022, Eq. 3): ``max_k ||rel(Phi(x), Phi(x'))|| / max(||rel(L(x), L(x'))||, eps_min)``.

    ``(N,)`` float64, >= 0, lower is better; NaN where every draw changes the predicted class.
    """
    copy = model().eval()
    reference = representations(copy, inputs, layer, engine.batch_size)
    return _stability(inputs, maps, explain, engine, base_logits, sample_seeds, draws, noise, scale, eps_min,
                      same_prediction, lambda moved, _logits: _relative_change(
                          reference, representations(copy, moved, layer, engine.batch_size), eps_min))

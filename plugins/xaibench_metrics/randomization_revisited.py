"""Randomization tests as the field now runs them: eMPRT, sMPRT and the random logit test.

The original MPRT (Adebayo et al. 2018, :mod:`xaibench_metrics.randomization`)
compares maps of the trained and the randomized model by similarity, which
Hedström et al. ("Sanity Checks Revisited: An Exploration to Repair the Model
Parameter Randomisation Test", XAI in Action workshop, NeurIPS 2023) show to be
confounded by noise in the maps and by the layer order. Their two repairs:

- **eMPRT** (efficient MPRT, Sec. 4.2): the relative rise in the *complexity* of the
  map when every layer of the model is randomized,
  ``(H(Phi(f_rand, x)) - H(Phi(f, x))) / H(Phi(f, x))``, with ``H`` the discrete
  entropy (nats) of the histogram of the map's values in ``n_bins`` equal-width bins
  (Quantus's ``discrete_entropy``). A map that explains the model turns into noise
  when the model is noise, so *higher* is better; NaN where the trained model's map is
  constant (``H = 0``). Equal to Quantus 0.6's ``EfficientMPRT`` with the same bins.
- **sMPRT** (smooth MPRT, Sec. 4.1): MPRT on maps denoised by averaging over
  ``draws`` inputs, ``draws - 1`` of them with Gaussian noise of standard deviation
  ``noise_magnitude * (max x - min x)`` per sample and the last one the input itself
  (so ``draws = 1`` is MPRT with the fully randomized model); the score is the
  Spearman rank correlation between the smoothed maps of the trained and of the fully
  randomized model (Quantus's ``return_last_correlation``). Lower is better; NaN where
  the trained model's smoothed map is constant. Equal to Quantus 0.6's ``SmoothMPRT``
  on the same noise.

The **random logit test** (Sixt, Granz and Landgraf, "When Explanations Lie: Why Many
Modified BP Attributions Fail", ICML 2020, Sec. 5.2): the similarity between the map
of the explained class and the map of a class drawn uniformly from the other
``K - 1`` classes; a class-sensitive method gives dissimilar maps, so lower is better.
Similarity: SSIM (the paper's, on the two maps scaled to [0, 1] after ``sign``
handling, data range 1, over the image or signal) or Spearman. Quantus 0.6's
``RandomLogit`` computes SSIM on the *flattened* maps; it is equal to ours with
Spearman similarity (where flattening changes nothing).

Randomness: the noise and off-classes of each sample are drawn from the
method-independent ``sample_seeds``, the randomized model from ``model_seed``, which
depends on the dataset and model only (common random numbers: every method and metric
faces the same randomized model, every method the same noise and classes).
sMPRT and the random logit test score the *absolute* similarity (see
:mod:`xaibench_metrics.randomization` on direction): lower is better, 0 best. Each layer with
parameters is re-initialised by its own ``reset_parameters`` (PyTorch's
initialisers, as in Quantus).

Cost: eMPRT one re-run of the method; sMPRT ``2 * draws - 1`` maps per sample (the fully randomized model's
unperturbed ones shared with eMPRT), the ``draws - 1`` noisy copies of every sample explained in one call per
model; random logit one.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from xaibench.scoring.maps import normalize
from xaibench.contract.metric_inputs import Shared, unshared
from xaibench.scoring.stats import seed_from
from xaibench_metrics.randomization import SIMILARITIES, resettable, similarity
from xaibench_metrics.robustness import input_noise, restacked



def fully_randomized(model: Callable[[], nn.Module], model_seed: int) -> nn.Module:
    """A fresh copy of the trained model with every layer re-initialised, seeded by ``model_seed``.

    Raises :class:`ValueError` for a model with no layer that has ``reset_parameters``.
    """
    copy = model()
    layers = [m for m in copy.modules() if resettable(m)]
    if not layers:
        raise ValueError("the model has no layers with reset_parameters() to randomize")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed_from("randomized-model", model_seed))
        for layer in layers:  # every layer: the order is only that of the draws (Quantus's generator, bottom-up)
            layer.reset_parameters()
    return copy


def fully_randomized_maps(model: Callable[[], nn.Module], explain: Callable[..., torch.Tensor],
                          model_seed: int, shared: Shared = unshared) -> tuple[nn.Module, torch.Tensor]:
    """The :func:`fully_randomized` model and the method's maps ``(N, *spatial)`` on it, for the cell's inputs.

    Both depend on ``model_seed`` only: computed once per seed and shared (``shared``) by eMPRT and sMPRT.
    """
    def compute() -> tuple[nn.Module, torch.Tensor]:
        randomized = fully_randomized(model, model_seed)
        return randomized, explain(randomized)
    return shared(("randomized-maps", "full", model_seed), compute)


def discrete_entropy(maps: np.ndarray, n_bins: int) -> np.ndarray:
    """Entropy (nats) of the histogram of each map's values in ``n_bins`` equal-width bins: ``(N,)``."""
    import scipy.stats

    return np.array([scipy.stats.entropy(np.histogram(m.ravel(), bins=n_bins)[0]) for m in maps])


def efficient_mprt(maps: torch.Tensor, model: Callable[[], nn.Module], explain: Callable[..., torch.Tensor],
                   model_seed: int, n_bins: int = 100, shared: Shared = unshared) -> np.ndarray:
    """eMPRT (Hedström et al. 2023, Sec. 4.2): ``(H(Phi(f_rand, x)) - H(Phi(f, x))) / H(Phi(f, x))`` per sample.

    ``(N,)`` float64, higher is better; NaN where the trained model's map is constant.
    """
    if n_bins < 2:
        raise ValueError(f"n_bins must be at least 2, got {n_bins}")
    before = discrete_entropy(maps.double().cpu().numpy(), n_bins)
    after = discrete_entropy(fully_randomized_maps(model, explain, model_seed, shared)[1].double().cpu().numpy(), n_bins)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(before > 0, (after - before) / np.where(before > 0, before, 1.0), np.nan)


def smooth_mprt(inputs: torch.Tensor, maps: torch.Tensor, model: Callable[[], nn.Module],
                explain: Callable[..., torch.Tensor], sample_seeds: Sequence[int], model_seed: int, draws: int = 10,
                noise_magnitude: float = 0.1, sign: str = "abs", shared: Shared = unshared) -> np.ndarray:
    """sMPRT (Hedström et al. 2023, Sec. 4.1): Spearman of the noise-averaged maps of ``f`` and of ``f_rand``.

    ``(N,)`` float64 in [0, 1] (``|rho|``), lower is better; NaN where either smoothed map is constant.
    """
    if draws < 1 or noise_magnitude < 0:
        raise ValueError(f"sMPRT needs draws >= 1 and noise_magnitude >= 0, got {draws} and {noise_magnitude}")
    dims = tuple(range(1, inputs.dim()))
    spread = (inputs.amax(dim=dims, keepdim=True) - inputs.amin(dim=dims, keepdim=True)) * noise_magnitude
    noise = input_noise(inputs, sample_seeds, draws - 1, "gaussian", 1.0) if draws > 1 else inputs.new_zeros((0, *inputs.shape))
    randomized, rand = fully_randomized_maps(model, explain, model_seed, shared)
    trained, rand = maps.double().clone(), rand.to(torch.float64, copy=True)
    if len(noise):  # every draw of every sample in one call per model, summed in draw order as one by one
        moved = inputs[None] + noise * spread[None]
        for total, on in ((trained, None), (rand, randomized)):
            for one in restacked(inputs, explain, moved, on)[1]:
                total += one.double()
    return similarity(normalize(trained / draws, sign).cpu().numpy(), normalize(rand / draws, sign).cpu().numpy(),
                      "spearman")


def off_classes(targets: torch.Tensor, n_classes: int, sample_seeds: Sequence[int]) -> torch.Tensor:
    """For each sample a class drawn uniformly from the ``n_classes - 1`` classes other than its target: ``(N,)``."""
    if n_classes < 2:
        raise ValueError("the random logit test needs a model with at least two classes")
    draws = [int(torch.randint(n_classes - 1, (1,), generator=torch.Generator().manual_seed(int(s)))) for s in sample_seeds]
    off = torch.tensor(draws, device=targets.device)
    return off + (off >= targets).long()


def random_logit(targets: torch.Tensor, maps: torch.Tensor, base_logits: torch.Tensor,
                 explain: Callable[..., torch.Tensor], sample_seeds: Sequence[int],
                 similarity_measure: str = "ssim", sign: str = "abs") -> np.ndarray:
    """Random logit test (Sixt et al. 2020, Sec. 5.2): ``sim(Phi_c(x), Phi_c'(x))``, ``c'`` a random other class.

    ``(N,)`` float64, lower is better; NaN where the explained class's map is constant.
    """
    if similarity_measure not in SIMILARITIES:
        raise ValueError(f"similarity_measure must be one of {SIMILARITIES}, got {similarity_measure!r}")
    other = explain(targets=off_classes(targets, int(base_logits.shape[1]), sample_seeds)).float()
    return similarity(normalize(maps, sign).cpu().numpy(), normalize(other, sign).cpu().numpy(), similarity_measure)

"""Model-parameter randomization test, cascading (Adebayo et al., "Sanity Checks for
Saliency Maps", NeurIPS 2018, Sec. 3.1).

Starting from the top (logits) layer, the layers of a copy of the trained model are
re-initialised one after another, cumulatively (in the reverse of the order its ``forward``
calls them: from the traced graph, or where ``torch.fx`` cannot trace the model, from a forward
pass of the cell's first input; never from where ``__init__`` defines them), and the method is re-run on the
same samples after each step. A method that explains the *model* must produce maps
that change as the model is destroyed; maps that stay similar reflect the input
(an edge detector passes for a saliency method). The per-sample score is the
similarity between the trained model's map and the randomized model's map,
averaged over the cascade (the area under Adebayo et al.'s Fig. 2 curves);
``steps`` cascade stages are taken evenly over the layers, always ending with the
fully randomized model: with ``steps`` at least the number of layers this is the
paper's layer-by-layer cascade, with fewer a coarse cascade, and ``steps: 1`` scores
the fully randomized model only (the leaderboard shows ``steps``). Lower is better.

Direction: the score is the *absolute* similarity, so 0 (the maps share no
structure) is best. A signed "lower is better" would rank a map that is strongly
anti-correlated with the trained model's map (an inverted copy, which still depends
on the input exactly as before and not on the weights) above an independent one;
Adebayo et al. ask whether the map *changes*, and an inverted map has not.

Degenerate maps, one rule: where the trained model's map is constant there is nothing
to compare (NaN, and the runner counts the constant map). Where the randomized model's
map is constant (a CAM whose ReLU zeroes everything: it happens or not depending on
the initialisation seed alone), its rank correlation is undefined: NaN, not 0, which
would be the best score by accident; SSIM is defined for it and is kept.

Similarities, as in the paper: Spearman rank correlation of the two maps, and SSIM
(Wang et al. 2004, scikit-image's ``structural_similarity`` with data range 1) of the
two maps scaled to [0, 1]. Sign handling is a parameter (the paper reports both the
absolute and the signed maps; ``abs`` is the default here).

Re-initialisation uses each layer's own ``reset_parameters`` (PyTorch's default
initialisers, as Quantus's MPRT does), seeded from ``model_seed``, which depends on
the dataset and model only: every method and every similarity faces the same
randomized models (common random numbers).

Cost: ``steps`` extra runs of the method on the cell's samples (the method's own
cost times ``steps``), no extra passes for the score itself; the randomized maps are
computed once per seed and shared by both similarities (:func:`cascade_maps`).

Data randomization (Adebayo et al., Sec. 3.2): the same architecture trained with
the same recipe on permuted training labels (the runner trains it once per model and
caches it); the score is the similarity between the method's maps on the two models.
A method whose maps survive the loss of every label-input relation is not explaining
what the model learned. Lower is better. Cost: one training run per model (cached)
and one run of the method.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch
from torch import nn

from xaibench.contract.layers import forward_order
from xaibench.scoring.maps import normalize
from xaibench.contract.metric_inputs import Shared, unshared
from xaibench.contract.specs import DataBundle, TrainRecipe
from xaibench.models.training import train
from xaibench_metrics.families import LABEL_RANDOMIZED

SIMILARITIES = ("spearman", "ssim")


def resettable(module: nn.Module) -> bool:
    """The module has parameters of its own and a ``reset_parameters``: a layer the randomization re-initialises."""
    return hasattr(module, "reset_parameters") and any(True for _ in module.parameters(recurse=False))


def randomizable_layers(model: nn.Module, example: torch.Tensor | None = None) -> list[str]:
    """Names of the :func:`resettable` modules, top (output) first: in the reverse of the order ``forward`` calls
    them (:func:`xaibench.contract.layers.forward_order`: the traced graph, or a forward pass of ``example`` where
    ``torch.fx`` cannot trace the model), not of where ``__init__`` defines them (a classifier defined first is
    still the top).

    Raises :class:`ValueError` (one line) where ``torch.fx`` cannot trace the model and no ``example`` is given.
    """
    names = forward_order(model, resettable, "model-parameter randomization (the cascade's order from the top)",
                          example=example)
    return list(names[::-1])


def cascade_stages(n_layers: int, steps: int) -> list[int]:
    """How many top layers are randomized at each of ``steps`` stages, ending with all of them."""
    if steps < 1:
        raise ValueError("steps must be at least 1")
    stages = min(steps, n_layers)
    return [int(np.ceil(n_layers * (k + 1) / stages)) for k in range(stages)]


def similarity(a: np.ndarray, b: np.ndarray, how: str) -> np.ndarray:
    """Per-sample *absolute* similarity of reference maps ``a`` and randomized maps ``b``, ``(N, *spatial)``.

    ``(N,)`` float64 in [0, 1]: ``|Spearman rho|`` or ``|SSIM|`` (an anti-correlated map is as
    similar as a correlated one; see the module's note on direction). NaN where the reference
    map is constant (nothing to compare) and, for Spearman, where the randomized map is
    constant (rank correlation undefined; 0 would be the best score by accident). SSIM is
    defined for a constant randomized map and is kept.
    """
    from scipy.stats import spearmanr
    from skimage.metrics import structural_similarity

    out = np.full(a.shape[0], np.nan)
    for i in range(a.shape[0]):
        if np.ptp(a[i]) == 0:
            continue
        if how == "spearman":
            out[i] = abs(spearmanr(a[i].ravel(), b[i].ravel()).statistic) if np.ptp(b[i]) > 0 else np.nan
        elif how == "ssim":
            out[i] = abs(structural_similarity(a[i], b[i], data_range=1.0))
        else:
            raise ValueError(f"similarity must be one of {SIMILARITIES}, got {how!r}")
    return out


def cascade_maps(model: Callable[[], nn.Module], explain: Callable[..., torch.Tensor], seed: int, steps: int,
                 shared: Shared = unshared, example: torch.Tensor | None = None) -> list[torch.Tensor]:
    """The method's maps ``(N, *spatial)`` after each stage of the cascading randomization, top layer first.

    A copy of the model has its layers re-initialised top-down (:func:`cascade_stages`), seeded by
    ``seed``; the maps depend on nothing else, so they are computed once per ``(seed, steps)`` and
    shared (``shared``) by every similarity scored on them (MPRT-Spearman, MPRT-SSIM).
    Raises ValueError for a model with no layer that has ``reset_parameters``.
    """
    def compute() -> list[torch.Tensor]:
        copy = model()
        layers = randomizable_layers(copy, example)
        if not layers:
            raise ValueError("the model has no layers with reset_parameters() to randomize")
        done, out = 0, []
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            for upto in cascade_stages(len(layers), steps):
                for name in layers[done:upto]:
                    copy.get_submodule(name).reset_parameters()
                done = upto
                out.append(explain(copy).float())
        return out
    return shared(("randomized-maps", "cascade", seed, steps), compute)


def model_randomization(maps: torch.Tensor, model: Callable[[], nn.Module], explain: Callable[..., torch.Tensor],
                        model_seed: int, similarity_measure: str = "spearman", steps: int = 3,
                        sign: str = "abs", shared: Shared = unshared, inputs: torch.Tensor | None = None) -> np.ndarray:
    """``mean_stages sim(E(f, x), E(f_randomized top-down, x))`` per sample (Adebayo et al. 2018, Sec. 3.1).

    ``inputs`` ``(N, C, *spatial)``: the cell's inputs, whose first orders the layers by a forward pass where
    ``torch.fx`` cannot trace the model (:func:`randomizable_layers`).
    """
    if similarity_measure not in SIMILARITIES:
        raise ValueError(f"similarity_measure must be one of {SIMILARITIES}, got {similarity_measure!r}")
    reference = normalize(maps, sign).cpu().numpy()
    scores = [similarity(reference, normalize(randomized, sign).cpu().numpy(), similarity_measure)
              for randomized in cascade_maps(model, explain, model_seed, steps, shared,
                                             None if inputs is None else inputs[:1])]
    return np.mean(scores, axis=0)


def fit_on_permuted_labels(model: nn.Module, bundle: DataBundle, recipe: TrainRecipe, seed: int,
                           device: torch.device) -> None:
    """Train ``model`` on the training split with its labels permuted (seeded by ``seed``), to its best fit.

    Adebayo et al. (2018, Sec. 3.2) train "to high training accuracy" on the random
    labels: the weights kept are those of the epoch that fits them best (the fit is
    measured on permuted training samples, as there is nothing to generalize).
    """
    perm = torch.randperm(len(bundle.train), generator=torch.Generator().manual_seed(seed))
    shuffled = replace(bundle.train, y=bundle.train.y[perm])
    train(model, shuffled, shuffled.subset(slice(0, 512)), replace(recipe, patience=0), seed, device)




def data_randomization(maps: torch.Tensor, variant: Callable[[str], nn.Module], explain: Callable[..., torch.Tensor],
                       similarity_measure: str = "spearman", sign: str = "abs") -> np.ndarray:
    """``sim(E(f, x), E(f_permuted labels, x))`` per sample (Adebayo et al. 2018, Sec. 3.2)."""
    if similarity_measure not in SIMILARITIES:
        raise ValueError(f"similarity_measure must be one of {SIMILARITIES}, got {similarity_measure!r}")
    reference = normalize(maps, sign).cpu().numpy()
    randomized = normalize(explain(variant(LABEL_RANDOMIZED.name)).float(), sign).cpu().numpy()
    return similarity(reference, randomized, similarity_measure)

"""Model-parameter randomization test, cascading (Adebayo et al., "Sanity Checks for
Saliency Maps", NeurIPS 2018, Sec. 3.1).

Starting from the top (logits) layer, the layers of a copy of the trained model are
re-initialised one after another, cumulatively, and the method is re-run on the
same samples after each step. A method that explains the *model* must produce maps
that change as the model is destroyed; maps that stay similar reflect the input
(an edge detector passes for a saliency method). The per-sample score is the
similarity between the trained model's map and the randomized model's map,
averaged over the cascade (the area under Adebayo et al.'s Fig. 2 curves);
``steps`` cascade stages are taken evenly over the layers, always ending with the
fully randomized model. Lower is better.

Similarities, as in the paper: Spearman rank correlation of the two maps, and SSIM
(Wang et al. 2004, scikit-image's ``structural_similarity`` with data range 1) of the
two maps scaled to [0, 1]. Sign handling is a parameter (the paper reports both the
absolute and the signed maps; ``abs`` is the default here).

Re-initialisation uses each layer's own ``reset_parameters`` (PyTorch's default
initialisers, as Quantus's MPRT does), seeded from the cell's seed.

Cost: ``steps`` extra runs of the method on the cell's samples (the method's own
cost times ``steps``), no extra passes for the score itself.

Data randomization (Adebayo et al., Sec. 3.2): the same architecture trained with
the same recipe on permuted training labels (the runner trains it once per model and
caches it); the score is the similarity between the method's maps on the two models.
A method whose maps survive the loss of every label-input relation is not explaining
what the model learned. Lower is better. Cost: one training run per model (cached)
and one run of the method.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity
from torch import nn

from xaibench.maps import normalize
from xaibench.specs import MetricContext

SIMILARITIES = ("spearman", "ssim")


def randomizable_layers(model: nn.Module) -> list[str]:
    """Names of the modules with their own parameters and a ``reset_parameters``, top (output) first."""
    names = [name for name, m in model.named_modules()
             if hasattr(m, "reset_parameters") and any(True for _ in m.parameters(recurse=False))]
    return names[::-1]


def cascade_stages(n_layers: int, steps: int) -> list[int]:
    """How many top layers are randomized at each of ``steps`` stages, ending with all of them."""
    if steps < 1:
        raise ValueError("steps must be at least 1")
    stages = min(steps, n_layers)
    return [int(np.ceil(n_layers * (k + 1) / stages)) for k in range(stages)]


def similarity(a: np.ndarray, b: np.ndarray, how: str) -> np.ndarray:
    """Per-sample similarity of reference maps ``a`` and randomized maps ``b``, ``(N, *spatial)``.

    NaN where the reference map is constant (nothing to compare). A constant
    randomized map (a CAM whose ReLU zeroes everything) shares no ranking with the
    reference: its Spearman similarity is 0; SSIM is defined for it as it is.
    """
    out = np.full(a.shape[0], np.nan)
    for i in range(a.shape[0]):
        if np.ptp(a[i]) == 0:
            continue
        if how == "spearman":
            out[i] = spearmanr(a[i].ravel(), b[i].ravel()).statistic if np.ptp(b[i]) > 0 else 0.0
        elif how == "ssim":
            out[i] = structural_similarity(a[i], b[i], data_range=1.0)
        else:
            raise ValueError(f"similarity must be one of {SIMILARITIES}, got {how!r}")
    return out


def model_randomization(ctx: MetricContext, x: torch.Tensor, target: torch.Tensor, saliency: torch.Tensor,
                        masks: torch.Tensor | None, regions: torch.Tensor | None, similarity_measure: str = "spearman",
                        steps: int = 3, sign: str = "abs") -> np.ndarray:
    """``mean_stages sim(E(f, x), E(f_randomized top-down, x))`` per sample (Adebayo et al. 2018, Sec. 3.1)."""
    if similarity_measure not in SIMILARITIES:
        raise ValueError(f"similarity_measure must be one of {SIMILARITIES}, got {similarity_measure!r}")
    if ctx.model_factory is None or ctx.explain is None:
        raise ValueError("model randomization needs a model factory and the cell's explain function from the runner")
    model = ctx.model_factory()
    layers = randomizable_layers(model)
    if not layers:
        raise ValueError("the model has no layers with reset_parameters() to randomize")
    reference = normalize(saliency, sign).cpu().numpy()
    done = 0
    scores = []
    with torch.random.fork_rng():
        torch.manual_seed(ctx.seed)
        for upto in cascade_stages(len(layers), steps):
            for name in layers[done:upto]:
                model.get_submodule(name).reset_parameters()
            done = upto
            randomized = normalize(ctx.explain(model).float(), sign).cpu().numpy()
            scores.append(similarity(reference, randomized, similarity_measure))
    return np.mean(scores, axis=0)


def data_randomization(ctx: MetricContext, x: torch.Tensor, target: torch.Tensor, saliency: torch.Tensor,
                       masks: torch.Tensor | None, regions: torch.Tensor | None, similarity_measure: str = "spearman",
                       sign: str = "abs") -> np.ndarray:
    """``sim(E(f, x), E(f_permuted labels, x))`` per sample (Adebayo et al. 2018, Sec. 3.2)."""
    if similarity_measure not in SIMILARITIES:
        raise ValueError(f"similarity_measure must be one of {SIMILARITIES}, got {similarity_measure!r}")
    if ctx.label_randomized_model is None or ctx.explain is None:
        raise ValueError("data randomization needs the runner's label-randomized model and explain function")
    reference = normalize(saliency, sign).cpu().numpy()
    randomized = normalize(ctx.explain(ctx.label_randomized_model()).float(), sign).cpu().numpy()
    return similarity(reference, randomized, similarity_measure)

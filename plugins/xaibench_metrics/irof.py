"""Iterative Removal Of Features, IROF (Rieger and Hansen, "IROF: a low resource
evaluation metric for explanation methods", ICLR Workshop AI for Affordable
Healthcare 2020, Sec. 2).

Each image is cut into superpixels by SLIC (Achanta et al. 2012; scikit-image's
``slic`` with ``n_segments`` and ``compactness``, the defaults Quantus uses); the
segments are sorted by their mean relevance, highest first, and removed one after
another (their pixels take the ``fill``: ``mean``, the training data's per-channel
mean as in the paper, or ``zero``). The curve is the target-class probability after
``k`` removals relative to the unperturbed one, ``c_k = p_c(x_k) / p_c(x)``,
``k = 0..S`` (``c_0 = 1``, S the image's number of segments), on an x-axis
normalised to [0, 1] so that images with different segment counts compare:

    IROF = 1 - AUC_[0,1](c)   (the area over the curve)

Higher is better (removing the relevant segments first destroys the evidence fast);
0 for a model that ignores its input; negative where the removals raise ``p_c``.
Quantus 0.6's ``IROF`` returns the unnormalised area over its curve without the
``k = 0`` point, ``S - trapz(c_1..c_S)``; the test checks our curves against it.
Images only.

Cost: ``S`` forward passes per sample (about ``n_segments``), plus SLIC.
"""
from __future__ import annotations


import numpy as np
import torch

from xaibench.scoring.engine import Engine
from xaibench.scoring.fills import fill_like

FILLS = ("zero", "mean")


def superpixels(inputs: torch.Tensor, n_segments: int = 100, compactness: float = 10.0) -> np.ndarray:
    """SLIC segment labels ``(N, H, W)`` int, ``0..S_i - 1`` per image, of ``(N, C, H, W)`` inputs.

    Raises :class:`ValueError` for inputs that are not images.
    """
    from skimage.segmentation import slic

    if inputs.dim() != 4:
        raise ValueError(f"IROF segments images (N, C, H, W); got inputs of shape {tuple(inputs.shape)}")
    images = np.moveaxis(inputs.detach().cpu().double().numpy(), 1, -1)
    return np.stack([slic(im, n_segments=n_segments, compactness=compactness, start_label=0) for im in images])


def segment_ranks(maps: np.ndarray, segments: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each pixel's segment position in decreasing order of mean relevance ``(N, H, W)``, and each image's S."""
    ranks = np.empty_like(segments)
    counts = np.empty(len(segments), dtype=np.int64)
    for i, (a, seg) in enumerate(zip(maps, segments)):
        labels, inverse = np.unique(seg, return_inverse=True)
        means = np.bincount(inverse.ravel(), weights=a.ravel()) / np.bincount(inverse.ravel())
        order = np.argsort(-means, kind="stable")
        position = np.empty_like(order)
        position[order] = np.arange(len(order))
        ranks[i] = position[inverse.reshape(seg.shape)]
        counts[i] = len(labels)
    return ranks, counts


def irof_curves(inputs: torch.Tensor, targets: torch.Tensor, maps: torch.Tensor, engine: Engine,
                base_logits: torch.Tensor, data_mean: torch.Tensor | None = None, fill: str = "mean",
                n_segments: int = 100, compactness: float = 10.0) -> list[np.ndarray]:
    """The curves ``c_k = p_c(x with the k most relevant segments removed) / p_c(x)``, ``k = 0..S_i``, per sample."""
    ranks, counts = segment_ranks(maps.double().cpu().numpy(), superpixels(inputs, n_segments, compactness))
    x = inputs.to(engine.device)
    canvas = fill_like(x, fill, data_mean, allowed=FILLS)
    rank = torch.from_numpy(ranks).to(x.device)

    def perturb(sample_idx: torch.Tensor, step_idx: torch.Tensor) -> torch.Tensor:
        removed = (rank[sample_idx] <= step_idx[:, None, None])[:, None]
        return torch.where(removed, canvas[sample_idx], x[sample_idx])

    scores = engine.perturbed_scores(perturb, len(x), int(counts.max()), targets, "prob").double()
    start = engine.select(base_logits, targets, "prob").double().to(scores.device)
    ratios = (scores / start[:, None]).cpu().numpy()
    return [np.concatenate([[1.0], ratios[i, : counts[i]]]) for i in range(len(x))]


def irof(inputs: torch.Tensor, targets: torch.Tensor, maps: torch.Tensor, engine: Engine,
         base_logits: torch.Tensor, data_mean: torch.Tensor | None = None, fill: str = "mean",
         n_segments: int = 100, compactness: float = 10.0) -> np.ndarray:
    """IROF (Rieger and Hansen 2020): ``1 - AUC_[0,1](p_c(x_k) / p_c(x))`` over SLIC segment removals: ``(N,)``.

    Higher is better. Raises :class:`ValueError` for non-image inputs or an unknown ``fill``.
    """
    curves = irof_curves(inputs, targets, maps, engine, base_logits, data_mean, fill, n_segments, compactness)
    return np.array([1.0 - np.trapezoid(c, dx=1.0 / (len(c) - 1)) for c in curves])

"""MST-C, minimum spanning tree compactness (Mesgari, Ma, Samek, Lapuschkin, Weber, "Structural
Compactness as a Complementary Criterion for Explanation Quality", arXiv:2603.29491, 2026; Quantus PR #377,
``quantus.metrics.complexity.MSTC``).

The salient points of a 2D map are the pixels whose absolute relevance is at least the
``threshold``-th percentile of the map's absolute values (numpy's linear percentile). With ``V``
those points (row, column coordinates), ``A`` the area of their convex hull (scipy's Qhull; when
the points are collinear or the area is 0 the image diagonal ``D`` stands in for ``sqrt(A)``) and
``L`` the length of the minimum spanning tree (forest, where the graph is disconnected) of their
symmetric ``k``-nearest-neighbour graph (scikit-learn's ``kneighbors_graph``, an edge where either
end chose the other; scipy's ``minimum_spanning_tree``):

    MST-C = (1 / sqrt(A)) * (|V| / L) * D * 100

(``D * 100``: Quantus's ``scale_score``). Higher is more compact. A percentile below the share of
exact zeros makes the zero pixels salient too (as in the reference implementation). NaN where
fewer than 2 points are salient and on an all-zero map (Quantus gives 0 there: no salient
structure is not the least compact one). Images only: the hull and the tree are planar here.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.sparse.csgraph import minimum_spanning_tree
from scipy.spatial import ConvexHull, QhullError
from sklearn.neighbors import kneighbors_graph


def _mst_c(a: np.ndarray, threshold: float, k: int) -> float:
    diagonal = float(np.hypot(*a.shape))
    if a.max() == 0.0:
        return float("nan")
    points = np.argwhere(a >= np.percentile(a, threshold)).astype(np.float64)
    if len(points) < 2:
        return float("nan")
    root_area = diagonal
    if len(points) >= 3 and np.linalg.matrix_rank(points - points[0]) >= 2:
        try:
            area = float(ConvexHull(points).volume)
            if area > 1e-12:
                root_area = float(np.sqrt(area))
        except QhullError:  # degenerate hull: the diagonal stands in, as for collinear points
            pass
    graph = kneighbors_graph(points, n_neighbors=min(k, len(points) - 1), mode="distance", include_self=False)
    length = float(minimum_spanning_tree(graph.maximum(graph.T)).sum())
    return len(points) / (root_area * length) * diagonal * 100.0


def mst_compactness(maps: torch.Tensor, threshold: float = 80.0, k: int = 20) -> np.ndarray:
    """MST-C of ``(N, H, W)`` maps (module doc): ``(N,)`` float64 > 0, higher is more compact; NaN where undefined.

    Raises :class:`ValueError` for non-2D maps, ``threshold`` outside [0, 100) or ``k < 1``.
    """
    if maps.dim() != 3:
        raise ValueError(f"MST-C needs 2D maps (N, H, W), got shape {tuple(maps.shape)}")
    if not 0 <= threshold < 100 or k < 1:
        raise ValueError(f"MST-C needs a percentile threshold in [0, 100) and k >= 1, got {threshold} and {k}")
    a = maps.abs().double().cpu().numpy()
    return np.array([_mst_c(row, threshold, k) for row in a])

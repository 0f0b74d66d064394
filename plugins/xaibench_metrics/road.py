"""ROAD: RemOve And Debias (Rong, Leemann, Borisov, Kasneci, Kasneci, "A Consistent and
Efficient Evaluation Strategy for Attribution Methods", ICML 2022).

Removing pixels by overwriting them with a constant leaks the removed shape to the
model (Rong et al., Sec. 3); ROAD instead *imputes* each removed pixel from its
neighbours with the noisy linear imputation of Sec. 4: every removed pixel's value is
the weighted mean of its 8 neighbours (weights 1/6 for the 4 direct, 1/12 for the 4
diagonal neighbours; 1/2 left and right on 1D signals; on volumes the 26 neighbours,
see :data:`NEIGHBOURS`), removed neighbours being
unknowns too, which gives one sparse linear system per image; Gaussian noise
(``noise`` standard deviation) is added to the imputed values. Imputation is per
pixel: all channels of a removed pixel are unknowns of the same system (one
right-hand side per channel), so RGB input is handled as the paper does.

MoRF removes the ``f`` fraction of pixels the map ranks highest, LeRF the ``f``
fraction it ranks lowest, for each ``f`` in ``fractions``; the per-sample score is
the mean softmax probability of the explained class over the fractions (MoRF:
lower is better, LeRF: higher is better). pytorch-grad-cam's
``ROADMostRelevantFirstAverage`` reports the same mean *minus* ``p_c(x)``.
"""
from __future__ import annotations

import functools
import importlib.util
import itertools
from collections.abc import Sequence

import numpy as np
import torch

from xaibench.scoring.curves import pixel_ranks
from xaibench.scoring.engine import Engine
from xaibench.storage.jit import njit  # numba loads at the first kernel call
from xaibench_metrics.families import FRACTIONS

ORDERS = ("morf", "lerf")


def _inverse_square_stencil(d: int) -> list[tuple[tuple[int, ...], float]]:
    """The ``3^d - 1`` neighbours of a ``d``-dimensional grid point with weights ``1 / |offset|^2`` summing to 1."""
    offsets = [o for o in itertools.product((-1, 0, 1), repeat=d) if any(o)]
    raw = [1 / sum(c * c for c in o) for o in offsets]
    return [(o, w / sum(raw)) for o, w in zip(offsets, raw)]


#: (offset, weight) of the neighbours in the imputation, per number of spatial axes (Rong et al. 2022, Eq. 4).
#: Rong et al.'s 2D weights are the inverse squared distances normalised to sum 1 (direct neighbours
#: 1 / 1, diagonal ones 1 / 2: 4 + 2 = 6, so 1/6 and 1/12); 1D gives 1/2 and 1/2. The 3D stencil
#: follows the same construction over the 26 neighbours: 6 face (d^2 = 1), 12 edge (d^2 = 2) and
#: 8 corner (d^2 = 3) neighbours with weights 1, 1/2, 1/3, sum 44/3, so 3/44, 3/88 and 1/44.
#: On a one-slice volume only the 8 in-plane neighbours exist, with weights 3/44 and 3/88 in
#: the ratio 2:1 of the 2D stencil: the system (each row divided by the weights of its existing
#: neighbours) is the 2D one. Every stencil is symmetric, so linear and harmonic quadratic
#: functions satisfy it exactly (a discrete Laplace equation).
NEIGHBOURS = {d: _inverse_square_stencil(d) for d in (1, 2, 3)}
#: :data:`NEIGHBOURS` as the arrays of :func:`_system`: offsets ``(K, 3)`` (leading axes 0) and weights ``(K,)``.
_STENCILS = {d: (np.array([(0,) * (3 - d) + o for o, _ in s], dtype=np.int64), np.array([w for _, w in s]))
             for d, s in NEIGHBOURS.items()}


#: Conjugate gradients stop when every system's residual is below this fraction of its right-hand side
#: (2-norm); the imputed values then agree with a direct sparse solve to about 1e-9.
RTOL = 1e-10


def _neighbour_sum(values: torch.Tensor, ndim: int) -> torch.Tensor:
    """``sum_o w_o * values[p + o]`` over the :data:`NEIGHBOURS` stencil, zero outside: ``(..., *spatial)``."""
    spatial = values.shape[-ndim:]
    reach = max(abs(o) for offset, _ in NEIGHBOURS[ndim] for o in offset)
    padded = torch.nn.functional.pad(values, [reach] * (2 * ndim))
    out = torch.zeros_like(values)
    for offset, weight in NEIGHBOURS[ndim]:
        window = tuple(slice(reach + o, reach + o + n) for o, n in zip(offset, spatial))
        out += weight * padded[(..., *window)]
    return out


def impute(images: torch.Tensor, removed: torch.Tensor, start: torch.Tensor | None = None) -> torch.Tensor:
    """Noise-free linear imputation of a batch (Rong et al. 2022, Sec. 4): ``(B, C, *spatial)`` float64.

    ``images`` ``(B, C, *spatial)``, ``removed`` bool ``(B, *spatial)``: each removed pixel
    becomes the :data:`NEIGHBOURS`-weighted mean of its in-bounds neighbours, removed ones being
    unknowns too. The system (a weighted graph Laplacian with Dirichlet conditions at the kept
    pixels: symmetric positive definite) is solved matrix-free by Jacobi-preconditioned conjugate
    gradients, all images and channels at once, on ``images``' device, to :data:`RTOL`. ``start``
    (same shape as ``images``) is the initial guess at the removed pixels: the solution at a
    smaller nested removal set converges in fewer steps. Raises ValueError for unsupported
    spatial dimensions or an input whose every pixel is removed, RuntimeError if it does not converge.
    """
    ndim = removed.dim() - 1
    if ndim not in NEIGHBOURS:
        raise ValueError(f"noisy linear imputation supports {sorted(NEIGHBOURS)}-D inputs, got spatial shape "
                         f"{tuple(removed.shape[1:])}")
    x = images.to(torch.float64)
    m = removed.unsqueeze(1).to(x)
    if bool((m.flatten(1).amin(1) == 1).any()):
        raise ValueError("cannot impute an input whose every pixel is removed")
    keep = 1.0 - m
    diag = _neighbour_sum(torch.ones_like(m[:1]), ndim)
    b = m * _neighbour_sum(x * keep, ndim)
    u = m * (x if start is None else start.to(x))
    dims = tuple(range(2, x.dim()))
    r = b - m * (diag * u - _neighbour_sum(u, ndim))
    z = r / diag
    p = z
    rz = (r * z).sum(dims, keepdim=True)
    bound = RTOL * b.pow(2).sum(dims, keepdim=True).sqrt()
    for _ in range(20 * max(removed.shape[1:]) + 50):  # CG needs about the holes' diameter in steps
        if bool((r.pow(2).sum(dims, keepdim=True).sqrt() <= bound).all()):
            return x * keep + u
        ap = m * (diag * p - _neighbour_sum(p, ndim))
        pap = (p * ap).sum(dims, keepdim=True)
        alpha = torch.where(pap > 0, rz / pap.clamp_min(1e-300), torch.zeros_like(pap))
        u = u + alpha * p
        r = r - alpha * ap
        z = r / diag
        rz_next = (r * z).sum(dims, keepdim=True)
        beta = torch.where(rz > 0, rz_next / rz.clamp_min(1e-300), torch.zeros_like(rz))
        p = z + beta * p
        rz = rz_next
    raise RuntimeError("noisy linear imputation: conjugate gradients did not converge")


@njit(cache=True)
def _system(values, removed, offsets, weights):  # pragma: no cover - compiled by numba
    """The equations of the removed pixels of ``values`` ``(C, D, H, W)``, ``removed`` bool ``(D, H, W)``.

    Unknown ``i`` is the ``i``-th removed pixel in raster order. For each removed pixel
    ``diag * u - sum over removed neighbours w * u_nb = sum over kept neighbours w * x_nb``,
    neighbours outside the grid omitted, each sum taken in stencil order (``offsets`` ``(K, 3)``,
    ``weights`` ``(K,)``). Returns ``diag`` ``(n,)``, ``rhs`` ``(n, C)`` and the off-diagonal
    couplings ``rows``, ``cols``, ``vals`` (COO, row-major).
    """
    depth, height, width = removed.shape
    var = np.full(removed.shape, -1, np.int64)
    n = 0
    for z in range(depth):
        for y in range(height):
            for x in range(width):
                if removed[z, y, x]:
                    var[z, y, x] = n
                    n += 1
    diag = np.zeros(n)
    rhs = np.zeros((n, values.shape[0]))
    rows = np.empty(n * offsets.shape[0], np.int64)
    cols = np.empty(n * offsets.shape[0], np.int64)
    vals = np.empty(n * offsets.shape[0])
    m = 0
    for z in range(depth):
        for y in range(height):
            for x in range(width):
                i = var[z, y, x]
                if i < 0:
                    continue
                for k in range(offsets.shape[0]):
                    zz, yy, xx = z + offsets[k, 0], y + offsets[k, 1], x + offsets[k, 2]
                    if zz < 0 or zz >= depth or yy < 0 or yy >= height or xx < 0 or xx >= width:
                        continue
                    diag[i] += weights[k]
                    j = var[zz, yy, xx]
                    if j >= 0:
                        rows[m], cols[m], vals[m] = i, j, -weights[k]
                        m += 1
                    else:
                        for c in range(values.shape[0]):
                            rhs[i, c] += weights[k] * values[c, zz, yy, xx]
    return diag, rhs, rows[:m], cols[:m], vals[:m]


#: The solvers of :func:`linear_impute`: "banded" (Cholesky of the band, 1D and 2D), "superlu" (scipy's sparse
#: LU), "cholmod" (CHOLMOD's sparse Cholesky, through cvxopt: the optional extra ``xaibench[cholmod]``, GPL-3, see
#: :func:`cholmod_available`) and "amg" (conjugate gradients preconditioned by pyamg's smoothed-aggregation
#: multigrid, to :data:`AMG_RTOL`).
SOLVERS = ("banded", "superlu", "cholmod", "amg")
#: "amg" stops when each channel's residual is below this fraction of its right-hand side (2-norm); the imputed
#: values then agree with SuperLU's to about 1e-9 of the image's scale (tests/test_road_solver.py checks 1e-6).
AMG_RTOL = 1e-10
#: The default solver by the number of grid points (:func:`default_solver`), from ``benchmarks/test_road_sizes.py``'s
#: size sweep (half the pixels removed, one process, one thread): the banded Cholesky wins up to about 96^2 pixels,
#: CHOLMOD above (a fill-reducing order: its fill grows about as n log n on a plane, the band's as n^2; 2.0-3.1x
#: faster than SuperLU at 128^2-512^2); on volumes CHOLMOD wins up to about 24^3 voxels (3.8-4.5x faster than
#: SuperLU, 1.2-1.4x than multigrid at 24^3), multigrid above (a direct solver's fill grows as n^2 there, multigrid's
#: work as n: 1.8-1.9x faster than CHOLMOD at 32^3). Without cvxopt, SuperLU takes CHOLMOD's place: above 96^2
#: pixels, and on volumes up to about 20^3 voxels (:data:`SUPERLU_VOLUMES_UP_TO`), multigrid winning above.
BANDED_UP_TO = 96 * 96
CHOLMOD_VOLUMES_UP_TO = 24 ** 3
SUPERLU_VOLUMES_UP_TO = 20 ** 3
#: The one-line error of an explicit "cholmod" without cvxopt installed.
CHOLMOD_MISSING = ('solver "cholmod" needs cvxopt (GPL-3, not installed with xaibench): pip install '
                   f'"xaibench[cholmod]", or choose another solver of {tuple(s for s in SOLVERS if s != "cholmod")}')


@functools.cache
def cholmod_available() -> bool:
    """Whether the "cholmod" solver can run: cvxopt (CHOLMOD's binding) is importable, looked up once per process
    (``importlib.util.find_spec``, which does not import it). cvxopt is GPL-3, so xaibench (MIT) does not require
    it: ``pip install "xaibench[cholmod]"`` opts in; a run's header records its version where it is installed
    (:data:`xaibench.running.environment.LIBRARIES`)."""
    return importlib.util.find_spec("cvxopt") is not None


def default_solver(spatial: Sequence[int]) -> str:
    """The fastest of :data:`SOLVERS` for a grid of shape ``spatial`` (1D, 2D or 3D), measured on a CPU.

    "banded" on signals and on images up to 96^2 pixels (:data:`BANDED_UP_TO`); with cvxopt installed
    (:func:`cholmod_available`) "cholmod" on larger images and on volumes up to 24^3 voxels
    (:data:`CHOLMOD_VOLUMES_UP_TO`), without it "superlu" on larger images and on volumes up to 20^3 voxels
    (:data:`SUPERLU_VOLUMES_UP_TO`); "amg" on larger volumes."""
    points = int(np.prod(spatial))
    cholmod = cholmod_available()
    if len(spatial) <= 2:
        return "banded" if len(spatial) == 1 or points <= BANDED_UP_TO else ("cholmod" if cholmod else "superlu")
    if cholmod:
        return "cholmod" if points <= CHOLMOD_VOLUMES_UP_TO else "amg"
    return "superlu" if points <= SUPERLU_VOLUMES_UP_TO else "amg"


def linear_impute(image: np.ndarray, removed: np.ndarray, solver: str | None = None,
                  start: np.ndarray | None = None) -> np.ndarray:
    """``image`` ``(C, *spatial)`` with the ``removed`` pixels (bool ``spatial``) imputed, noise-free.

    The solve of the sparse system of the removed pixels' equations (symmetric positive definite:
    each connected set of removed pixels touches a kept one, see :func:`impute`). ``solver`` (default:
    :func:`default_solver` of the grid's size):

    - "banded" numbers the removed pixels in raster order along the longer axis, so each couples only
      to those at most one short-axis line away, and factorises the band by Cholesky (LAPACK ``pbsv``
      through scipy's ``solveh_banded``): the band holds about ``f`` x the short side for a removed
      fraction ``f``; fastest on signals and small images.
    - "superlu" is scipy's ``spsolve`` (COLAMD ordering): the reference the others are tested against.
    - "cholmod" is CHOLMOD's sparse Cholesky (cvxopt's ``cvxopt.cholmod``, supernodal or simplicial as
      CHOLMOD picks) in the AMD order of the whole grid (:func:`_grid_ordering`, once per grid shape), one
      factorisation for all channels; fastest on images above about 96^2 pixels and on volumes up to about 24^3.
      It needs cvxopt, an optional extra (GPL-3): ``pip install "xaibench[cholmod]"``; without it
      :func:`default_solver` picks "superlu" (or "amg" above 20^3 voxels) instead.
    - "amg" is conjugate gradients preconditioned by one V-cycle of pyamg's smoothed-aggregation
      multigrid, per channel, to a residual of :data:`AMG_RTOL` of the right-hand side; its work grows
      linearly with the removed voxels (a direct solver's as their square on a volume). ``start`` ``(C, *spatial)``
      is the initial guess at the removed pixels (the imputation at a nested smaller removal set, as ROAD's
      fractions give); the direct solvers ignore it.

    The direct solvers agree to about 1e-13 of the image's scale, "amg" to 1e-9 (tests/test_road_solver.py
    asserts 1e-12 for the band, 1e-6 for the others). Faster than :func:`impute` on a CPU; :func:`impute` is the
    batched counterpart for accelerators. Raises ValueError as :func:`impute` does, and for an unknown ``solver``;
    ImportError (:data:`CHOLMOD_MISSING`) for "cholmod" without cvxopt installed; RuntimeError if "amg" does not
    converge.
    """
    from scipy.linalg import solveh_banded
    from scipy.sparse import coo_matrix
    from scipy.sparse.linalg import spsolve

    spatial = removed.shape
    if removed.ndim not in NEIGHBOURS:
        raise ValueError(f"noisy linear imputation supports 1D, 2D and 3D inputs, got spatial shape {spatial}")
    solver = solver or default_solver(spatial)
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    if solver == "cholmod" and not cholmod_available():
        raise ImportError(CHOLMOD_MISSING)
    if solver == "banded" and removed.ndim == 2 and spatial[1] > spatial[0]:  # raster order along the longer axis
        return linear_impute(image.swapaxes(-1, -2), removed.T, solver).swapaxes(-1, -2)
    if not removed.any():
        return image.astype(np.float64)
    if removed.all():
        raise ValueError("cannot impute an input whose every pixel is removed")
    grid = removed.reshape((1,) * (3 - removed.ndim) + spatial)  # 1D and 2D as one-slice volumes
    values = np.ascontiguousarray(image, dtype=np.float64).reshape(image.shape[0], *grid.shape)
    diag, rhs, rows, cols, vals = _system(values, np.ascontiguousarray(grid), *_STENCILS[removed.ndim])
    n = diag.size
    if solver == "cholmod":
        order = np.argsort(_grid_ordering(grid.shape, removed.ndim)[grid.ravel()])
        solved = _cholmod_solve(diag, rhs, rows, cols, vals, order)
    elif solver == "banded":
        lower = rows > cols  # the matrix is symmetric: its lower band, ab[i - j, j] = A[i, j]
        band = np.zeros((1 + int((rows - cols)[lower].max(initial=0)), n))
        band[0] = diag
        band[rows[lower] - cols[lower], cols[lower]] = vals[lower]
        solved = solveh_banded(band, rhs, lower=True, check_finite=False)
    else:
        a = coo_matrix((np.concatenate([vals, diag]), (np.concatenate([rows, np.arange(n)]),
                                                       np.concatenate([cols, np.arange(n)]))), shape=(n, n))
        if solver == "superlu":
            solved = spsolve(a.tocsc(), rhs)
        else:
            guess = (image if start is None else start).astype(np.float64)[:, removed]
            solved = _amg_solve(a.tocsr(), rhs, guess)
    out = image.astype(np.float64)
    out[:, removed] = solved.reshape(n, -1).T
    return out


@functools.lru_cache(maxsize=8)
def _grid_ordering(shape: tuple[int, int, int], ndim: int) -> np.ndarray:
    """Each point's rank ``(D * H * W,)`` in the AMD fill-reducing order of the whole grid's :data:`NEIGHBOURS` graph.

    Restricted to the removed pixels it orders any removal set of that grid (the filled graph of an induced
    subgraph, eliminated in the induced order, is a subgraph of the whole grid's): computed once per grid shape,
    where an ordering per system cost CHOLMOD as much as its numeric factorisation (docs/performance.md)."""
    from cvxopt import amd, matrix, spmatrix

    diag, _, rows, cols, vals = _system(np.zeros((1, *shape)), np.ones(shape, dtype=np.bool_), *_STENCILS[ndim])
    lower = rows > cols
    order = np.asarray(amd.order(spmatrix(matrix(vals[lower]), matrix(rows[lower]), matrix(cols[lower]),
                                          (diag.size, diag.size)))).ravel()
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    rank.flags.writeable = False  # cached: shared by every call on this grid
    return rank


def _cholmod_solve(diag: np.ndarray, rhs: np.ndarray, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray,
                   order: np.ndarray) -> np.ndarray:
    """``a^-1 rhs`` ``(n, C)`` by CHOLMOD's Cholesky of ``a`` (:func:`_system`'s ``diag`` and couplings), its
    unknowns eliminated in ``order`` (a permutation of ``n``)."""
    from cvxopt import cholmod, matrix, spmatrix

    lower = rows > cols  # CHOLMOD reads the lower triangle
    index = np.arange(diag.size)
    a = spmatrix(matrix(np.concatenate([vals[lower], diag])), matrix(np.concatenate([rows[lower], index])),
                 matrix(np.concatenate([cols[lower], index])), (diag.size, diag.size))
    options = dict(cholmod.options)
    cholmod.options["nmethods"] = 1  # the given order alone (CHOLMOD's default also tries AMD and keeps the best);
    # cvxopt's options are module-wide: put back as they were
    try:
        factor = cholmod.symbolic(a, p=matrix(order), uplo="L")
    finally:
        cholmod.options.clear()
        cholmod.options.update(options)
    cholmod.numeric(a, factor)
    solved = matrix(np.asfortranarray(rhs))
    cholmod.solve(factor, solved)
    return np.array(solved)


def _amg_solve(a, rhs: np.ndarray, guess: np.ndarray) -> np.ndarray:
    """``a^-1 rhs`` ``(n, C)`` by multigrid-preconditioned conjugate gradients from ``guess`` ``(C, n)``."""
    import pyamg

    hierarchy = pyamg.smoothed_aggregation_solver(a, symmetry="symmetric")
    out = np.empty_like(rhs)
    for c in range(rhs.shape[1]):
        residuals: list[float] = []
        out[:, c] = hierarchy.solve(rhs[:, c], x0=guess[c], tol=AMG_RTOL, accel="cg", maxiter=500,
                                    residuals=residuals)
        if residuals[-1] > AMG_RTOL * max(float(np.linalg.norm(rhs[:, c])), np.finfo(float).tiny):
            raise RuntimeError("noisy linear imputation: multigrid conjugate gradients did not converge")
    return out


def removal_masks(saliency: torch.Tensor, fractions: Sequence[float], order: str) -> torch.Tensor:
    """Bool ``(N, F, *spatial)``: the pixels MoRF (highest-ranked first) or LeRF removes at each fraction."""
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    fr = torch.as_tensor(list(fractions), dtype=torch.float64)
    if fr.numel() == 0 or not bool(((fr > 0) & (fr < 1)).all()):
        raise ValueError(f"fractions must lie strictly between 0 and 1, got {list(fractions)}")
    ranks = pixel_ranks(saliency).cpu()
    p = ranks.shape[1]
    counts = torch.round(fr * p).long()
    if order == "lerf":
        ranks = p - 1 - ranks
    removed = ranks[:, None, :] < counts[None, :, None]
    return removed.reshape(saliency.shape[0], len(fr), *saliency.shape[1:])


def imputation_noise(sample_seeds: Sequence[int], fractions: int, shape: tuple[int, ...]) -> torch.Tensor:
    """Standard normal noise ``(N, fractions, *shape)`` float64: sample ``i``'s from ``sample_seeds[i]`` alone, so it
    does not depend on the sample's position or batch-mates."""
    return torch.from_numpy(np.stack([np.random.default_rng(int(s)).standard_normal((fractions, *shape))
                                      for s in sample_seeds]))


def road(inputs: torch.Tensor, targets: torch.Tensor, maps: torch.Tensor, engine: Engine, sample_seeds: Sequence[int],
         order: str = "morf", fractions: Sequence[float] = FRACTIONS, noise: float = 0.01) -> np.ndarray:
    """``mean_f p_c(impute(x, R_f))`` with ``R_f`` the MoRF/LeRF pixels at fraction ``f`` (Rong et al. 2022).

    The imputation noise of sample ``i`` comes from ``sample_seeds[i]`` (:func:`imputation_noise`). Raises
    :class:`ValueError` for seeds that are not one per sample, bad ``fractions`` or ``order``."""
    if len(sample_seeds) != inputs.shape[0]:
        raise ValueError(f"ROAD needs one seed per sample, got {len(sample_seeds)} for {inputs.shape[0]} samples")
    removed = removal_masks(maps, fractions, order).to(inputs.device)
    noise_field = imputation_noise(sample_seeds, removed.shape[1], tuple(inputs.shape[1:]))
    imputed = torch.empty((inputs.shape[0], removed.shape[1], *inputs.shape[1:]), dtype=torch.float32,
                          device=inputs.device)
    filled = None
    for k in sorted(range(removed.shape[1]), key=lambda k: int(removed[:, k].sum())):  # nested: warm starts
        if inputs.device.type == "cpu":  # a solve per image beats batched conjugate gradients on a CPU (benchmarks/)
            starts = [None] * inputs.shape[0] if filled is None else list(filled.numpy())
            filled = torch.stack([torch.from_numpy(linear_impute(xi.detach().double().numpy(), ri.numpy(), start=si))
                                  for xi, ri, si in zip(inputs, removed[:, k], starts)])
        else:
            filled = impute(inputs, removed[:, k], start=filled)
        imputed[:, k] = filled + noise * noise_field[:, k].to(filled) * removed[:, k].unsqueeze(1)
    probs = engine.perturbed_scores(lambda s, t: imputed[s, t], inputs.shape[0], removed.shape[1], targets, "prob")
    return probs.double().mean(1).cpu().numpy()

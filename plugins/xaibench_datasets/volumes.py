"""Synthetic CT/MRI-like volumes with exact 3D lesion masks: the 3D analogue of ``synthetic-lesions``.

Why this exists
---------------
Localization metrics on volumes need ground truth that is exact voxel for voxel;
LATEC (Klein et al., NeurIPS 2024) evaluates on MedMNIST-3D, which has none. Every
volume here is drawn from an implicit lesion surface, so its mask is known exactly.

What the volumes look like
--------------------------
A ``size``^3 volume (axes ``(D, H, W)``) of soft tissue: an ellipsoidal body of
smoothly varying intensity inside a dark background, with correlated texture and
Gaussian acquisition noise, values clipped to ``[0, 1]`` and quantised to 8 bits.

* ``normal``: tissue only, no lesion (empty mask).
* ``benign``: a smooth ellipsoid (radius modulated by at most 4%), homogeneously
  hypodense (darker than tissue), with a sharp margin: a cyst-like lesion.
* ``malignant``: a lobulated lesion whose radius carries four to six broad lobes
  and two narrow spicules, with a heterogeneous interior, a bright enhancing rim
  just inside its surface and a few bright calcification-like specks.

The class is decidable from the lesion's shape and texture alone. With
probability 0.5 a volume also carries one or two bright spherical distractors
(calcified nodes) that never touch the lesion or its rim band.

``regions`` levels: 3 lesion (equal to the mask), 2 rim band just outside it
(within ``size / 16`` voxels), 0 other tissue, -1 distractors.

Determinism: volume ``i`` depends only on ``(seed, i, size)`` through
``np.random.default_rng([seed, i])``, so it is identical whatever ``n`` is.
"""
from __future__ import annotations

import numpy as np
import torch

from xaibench.contract.specs import DataBundle, DatasetRequest, Samples
from xaibench_datasets.synthetic import check_generator_args

CLASS_NAMES = ("normal", "benign", "malignant")
REGION_TOP_LEVEL = 3
MIN_SIZE = 16
SPLITS = ("train", "val", "test")

_NORMAL, _BENIGN, _MALIGNANT = range(3)
_DISTRACTOR_TRIES = 8


def generate(n: int, size: int, seed: int) -> dict[str, np.ndarray]:
    """Generate ``n`` synthetic volumes of ``size`` x ``size`` x ``size`` voxels.

    Returns ``{"x": float32 (n, 1, size, size, size) in [0, 1],
    "y": int64 (n,) in {0, 1, 2} (see ``CLASS_NAMES``; ``y[i] = i % 3``),
    "masks": bool (n, size, size, size) lesion voxels (all False for normal),
    "regions": int8 (n, size, size, size) relevance levels 3, 2, 0, -1}``.
    Raises ValueError for ``n < 0``, ``size < 16`` or ``seed < 0``.
    """
    check_generator_args(n, size, seed, MIN_SIZE)
    x = np.empty((n, 1, size, size, size), dtype=np.float32)
    y = np.arange(n, dtype=np.int64) % 3
    masks = np.zeros((n, size, size, size), dtype=bool)
    regions = np.zeros((n, size, size, size), dtype=np.int8)
    for i in range(n):
        x[i, 0], masks[i], regions[i] = _sample(np.random.default_rng([seed, i]), int(y[i]), size)
    return {"x": x, "y": y, "masks": masks, "regions": regions}


def _grid(size: int) -> np.ndarray:
    """Voxel centres ``(3, size, size, size)`` in voxel units."""
    return np.stack(np.meshgrid(*[np.arange(size, dtype=np.float64)] * 3, indexing="ij"))


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    from scipy import ndimage

    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, truncate=3.0)
    return (field - field.mean()) / (field.std() + 1e-12)


def _rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random 3D rotation matrix (QR of a Gaussian matrix, signs fixed)."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q *= np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def _directions(rng: np.random.Generator, k: int) -> np.ndarray:
    d = rng.standard_normal((k, 3))
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def _fibonacci_sphere(k: int) -> np.ndarray:
    """``k`` nearly uniform unit vectors ``(k, 3)`` (the golden-angle spiral)."""
    i = np.arange(k) + 0.5
    z = 1.0 - 2.0 * i / k
    phi = np.pi * (1.0 + 5.0**0.5) * i
    r = np.sqrt(1.0 - z * z)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


_SPHERE = _fibonacci_sphere(4000)


def _radius(u: np.ndarray, bumps: list[tuple[np.ndarray, float, int]]) -> np.ndarray:
    """Relative lesion radius along unit vectors ``u`` ``(3, ...)``: 1 plus ``amp * max(d . u, 0)^power`` per bump."""
    radius = np.ones(u.shape[1:])
    for d, amp, power in bumps:
        radius += amp * np.maximum(np.einsum("i,i...->...", d, u), 0.0) ** power
    return radius


def _lesion_mask(rng: np.random.Generator, label: int, size: int, grid: np.ndarray) -> np.ndarray:
    """Lesion voxels: ``|v| <= r(v / |v|)`` for the rotated, scaled offset ``v`` of each voxel."""
    semi = rng.uniform(0.15, 0.21) * size * np.array([1.0, rng.uniform(0.75, 1.0), rng.uniform(0.65, 0.9)])
    if label == _BENIGN:
        bumps = [(d, rng.uniform(0.0, 0.04), 2) for d in _directions(rng, 2)]
    else:
        bumps = [(d, rng.uniform(0.25, 0.45), 4) for d in _directions(rng, int(rng.integers(4, 7)))]
        bumps += [(d, rng.uniform(0.35, 0.55), 24) for d in _directions(rng, 2)]
    peak = float(_radius(_SPHERE.T, bumps).max()) * 1.02  # >= the radius in every direction, with slack
    rim = size / 16
    reach = min(semi.max() * peak, size / 2 - rim - 2.0)  # the lesion and its rim band fit inside the volume
    semi = semi * reach / (semi.max() * peak)
    margin = reach + rim + 1.0
    centre = rng.uniform(margin, size - 1 - margin, size=3)
    v = np.einsum("ij,j...->i...", _rotation(rng).T, grid - centre[:, None, None, None]) / semi[:, None, None, None]
    norm = np.sqrt((v**2).sum(0))
    return norm <= _radius(v / np.maximum(norm, 1e-12), bumps)


def _sample(rng: np.random.Generator, label: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw one volume; returns ``(volume, mask, regions)``."""
    from scipy import ndimage

    grid = _grid(size)
    centre = (size - 1) / 2 + rng.uniform(-0.04, 0.04, size=3) * size
    axes = rng.uniform(0.44, 0.50, size=3) * size
    body = np.sqrt((((grid - centre[:, None, None, None]) / axes[:, None, None, None]) ** 2).sum(0))
    inside = 0.5 - 0.5 * np.tanh((body - 1.0) * 12.0)
    tissue = rng.uniform(0.45, 0.55) + 0.06 * _smooth_noise(rng, (size,) * 3, size / 8)
    tissue += 0.04 * _smooth_noise(rng, (size,) * 3, 1.0)
    volume = 0.05 + (tissue - 0.05) * inside
    mask = np.zeros((size,) * 3, dtype=bool)
    regions = np.zeros((size,) * 3, dtype=np.int8)
    if label != _NORMAL:
        mask = _lesion_mask(rng, label, size, grid)
        outside = ndimage.distance_transform_edt(~mask)
        regions[(outside > 0) & (outside <= size / 16)] = 2
        regions[mask] = 3
        if label == _BENIGN:
            volume = np.where(mask, rng.uniform(0.18, 0.26), volume)
        else:
            depth = ndimage.distance_transform_edt(mask)
            interior = rng.uniform(0.25, 0.35) + 0.10 * _smooth_noise(rng, (size,) * 3, 1.0)
            interior = np.where(depth <= 1.0, rng.uniform(0.80, 0.90), interior)  # enhancing rim
            specks = rng.choice(np.flatnonzero(mask & (depth > 1.0)) if (mask & (depth > 1.0)).any()
                                else np.flatnonzero(mask), size=int(rng.integers(2, 5)))
            interior.flat[specks] = rng.uniform(0.95, 1.0)
            volume = np.where(mask, interior, volume)
    if rng.random() < 0.5:
        marks = _distractors(rng, size, grid, keep_out=regions >= 2)
        volume = np.where(marks, rng.uniform(0.85, 0.95), volume)
        regions[marks] = -1
    volume = volume + rng.uniform(0.015, 0.03) * rng.standard_normal(volume.shape)
    return np.round(np.clip(volume, 0.0, 1.0) * 255.0) / 255.0, mask, regions


def _distractors(rng: np.random.Generator, size: int, grid: np.ndarray, keep_out: np.ndarray) -> np.ndarray:
    """One or two bright spheres (radius ``size / 20`` to ``size / 12``) clear of ``keep_out``; empty if none fits."""
    marks = np.zeros((size,) * 3, dtype=bool)
    for _ in range(int(rng.integers(1, 3))):
        for _ in range(_DISTRACTOR_TRIES):
            r = rng.uniform(size / 20, size / 12)
            c = rng.uniform(0.2 * size, 0.8 * size, size=3)
            ball = ((grid - c[:, None, None, None]) ** 2).sum(0) <= r * r
            if not (ball & keep_out).any():
                marks |= ball
                break
    return marks


def load_bundle(request: DatasetRequest) -> DataBundle:
    """Three independently seeded splits of ``size``^3 volumes (params ``size`` (default the suite's
    ``image_size`` or 32), ``n_train``, ``n_val``, ``n_test``, ``seed``); raises TypeError on unknown params."""
    p = dict(request.params)
    size = int(p.pop("size", request.image_size or 32))
    sizes = {"train": int(p.pop("n_train", 480)), "val": int(p.pop("n_val", 90)), "test": int(p.pop("n_test", 120))}
    seed = int(p.pop("seed", request.seed))
    if p:
        raise TypeError(f"unknown parameter(s) {', '.join(sorted(p))}; known: size, n_train, n_val, n_test, seed")
    splits = {}
    for k, split in enumerate(SPLITS):
        data = generate(sizes[split], size, seed * len(SPLITS) + k)
        splits[split] = Samples(
            x=torch.from_numpy(data["x"]), y=torch.from_numpy(data["y"]),
            ids=tuple(f"volume{size}-s{seed}-{split}-{i:05d}" for i in range(sizes[split])),
            masks=torch.from_numpy(data["masks"]), regions=torch.from_numpy(data["regions"]),
        )
    return DataBundle(
        **splits, class_names=CLASS_NAMES, modality="volume", region_top_level=REGION_TOP_LEVEL,
        notes=("synthetic CT/MRI-like volumes generated offline with exact 3D lesion masks; class = lesion shape "
               "and texture; bright spherical distractors outside lesions"),
    )

"""Synthetic breast-ultrasound-like images with exact lesion annotations.

Why this exists
---------------
The default benchmark suite must run offline and its localization metrics need
ground truth that is *exact*, not a hand-drawn approximation.  Public breast
ultrasound sets such as BUSI need a download, carry a licence and have noisy
masks.  This module is an embedded stand-in for such data: every image is drawn
from an implicit lesion shape, so the lesion mask is known pixel for pixel and
graded relevance regions (interior, rim, posterior zone, distractor marks) can
be derived from the very same geometry.

What the images look like
-------------------------
All images share an ultrasound-like background: a bright skin line at the top,
a darker subcutaneous fat layer, brighter fibroglandular tissue and a striated
muscle layer at the bottom, with wavy layer boundaries, laterally streaky tissue
texture, a depth-dependent loss of brightness and multiplicative, laterally
elongated Rayleigh speckle.  Values are clipped to ``[0, 1]`` and quantised to
8 bits like a scanner's display.

* ``normal``: tissue only, no lesion (empty mask).
* ``benign``: a smooth oval, homogeneously hypoechoic (dark) with a sharp,
  well-defined margin and posterior acoustic enhancement (a brighter, fading
  band below it).
* ``malignant``: an irregular lesion whose radius is modulated by larger,
  higher-frequency harmonics plus narrow spicules; a heterogeneous interior with
  a few bright microcalcification-like specks, an indistinct margin with an
  echogenic halo, and posterior acoustic shadowing (a dark band below it).

The class is decidable from the lesion's shape and texture alone.  With
probability 0.5 an image also carries burned-in bright marks (caliper crosses or
text-like glyphs near a border) that never touch the lesion or its rim; the
``shortcut`` argument makes their frequency depend on the class, to study
saliency methods that latch onto a spurious cue.

``regions`` levels: 3 lesion interior (equal to the mask), 2 rim band just
outside the lesion, 1 posterior zone below it, 0 other tissue, -1 marks.

Determinism: sample ``i`` only depends on ``(seed, i, size, shortcut)`` through
``np.random.default_rng([seed, i])``, so it is identical whatever ``n`` is, and
changing ``shortcut`` only changes which images carry marks.  NumPy's PCG64
streams are platform independent and the image is quantised to 8 bits, so
last-bit differences between the math libraries of different CPUs would only
show up on exact rounding ties, which practically never happen.
"""
from __future__ import annotations

import numpy as np

CLASS_NAMES = ("normal", "benign", "malignant")
REGION_TOP_LEVEL = 3

_NORMAL, _BENIGN, _MALIGNANT = range(3)
_MIN_SIZE = 32
_MARK_TRIES = 8
_MAX_REACH = 0.27  # farthest lesion pixel from its centre, as a fraction of the image size
_ANGLES = np.linspace(0.0, 2.0 * np.pi, 720, endpoint=False)


def check_generator_args(n: int, size: int, seed: int, min_size: int) -> None:
    """Raises ValueError unless ``n >= 0``, ``size >= min_size`` and ``seed >= 0`` (the synthetic generators' rule)."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if size < min_size:
        raise ValueError(f"size must be >= {min_size}, got {size}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")


def generate(n: int, size: int, seed: int, *, shortcut: float = 0.0) -> dict[str, np.ndarray]:
    """Generate ``n`` synthetic ultrasound images of ``size`` x ``size`` pixels.

    Returns ``{"x": float32 (n, 1, size, size) in [0, 1],
    "y": int64 (n,) in {0, 1, 2} (see ``CLASS_NAMES``; ``y[i] = i % 3``),
    "masks": bool (n, size, size) lesion pixels (all False for normal),
    "regions": int8 (n, size, size) graded relevance levels 3..-1}``.

    ``shortcut`` in ``[0, 1]``: marks appear in malignant images with probability
    ``0.5 + shortcut / 2`` and in the others with ``0.5 - shortcut / 4``, which
    keeps the overall mark rate at one half; 0 makes marks independent of class.
    """
    check_generator_args(n, size, seed, _MIN_SIZE)
    if not 0.0 <= shortcut <= 1.0:
        raise ValueError(f"shortcut must be in [0, 1], got {shortcut}")

    x = np.empty((n, 1, size, size), dtype=np.float32)
    y = np.arange(n, dtype=np.int64) % 3
    masks = np.zeros((n, size, size), dtype=bool)
    regions = np.zeros((n, size, size), dtype=np.int8)
    for i in range(n):
        label = int(y[i])
        mark_p = 0.5 + shortcut / 2 if label == _MALIGNANT else 0.5 - shortcut / 4
        x[i, 0], masks[i], regions[i] = _sample(np.random.default_rng([seed, i]), label, size, mark_p)
    return {"x": x, "y": y, "masks": masks, "regions": regions}


def _sample(
    rng: np.random.Generator, label: int, size: int, mark_p: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw one image; returns ``(image, mask, regions)``."""
    from scipy import ndimage

    px = size / 64.0  # one "64-pixel-image pixel": keeps the look independent of size
    echo = _tissue(rng, size, px)
    mask = np.zeros((size, size), dtype=bool)
    regions = np.zeros((size, size), dtype=np.int8)
    if label != _NORMAL:
        mask = _lesion_mask(rng, label, size)
        rim_width = max(1.0, size / 32)
        # All lesion effects (blur, rim, posterior zone) lie in this box: its columns, from just above it down.
        pad = int(np.ceil(4.0 * px + rim_width)) + 1
        lesion_rows, lesion_cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        box = (
            slice(max(lesion_rows[0] - pad, 0), size),
            slice(max(lesion_cols[0] - pad, 0), min(lesion_cols[-1] + pad + 1, size)),
        )
        inside = mask[box]
        rim = ~inside & (ndimage.distance_transform_edt(~inside) <= rim_width)
        below = ~inside & (np.cumsum(inside, axis=0) > 0)
        echo[box] *= _lesion_factor(rng, label, inside, px) * _posterior_factor(rng, label, inside, below, size)
        region_box = regions[box]
        region_box[below] = 1
        region_box[rim] = 2
        region_box[inside] = 3
    image = _display(rng, echo, size, px)
    if rng.random() < mark_p:
        marks = _marks(rng, size, keep_out=regions >= 2)
        image[marks] = rng.uniform(0.85, 1.0)
        regions[marks] = -1
    return np.round(image * 255.0) / 255.0, mask, regions


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float | tuple[float, ...]) -> np.ndarray:
    """Gaussian-smoothed white noise rescaled to zero mean and unit variance."""
    from scipy import ndimage

    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, truncate=3.0)
    return (field - field.mean()) / (field.std() + 1e-12)


def _tissue(rng: np.random.Generator, size: int, px: float) -> np.ndarray:
    """Mean echogenicity of layered breast tissue with depth attenuation."""
    rows = np.arange(size, dtype=np.float64)[:, None]
    cols = np.arange(size, dtype=np.float64)[None, :]
    wave = 0.03 * size * _smooth_noise(rng, (size,), size / 8)
    skin = rng.uniform(0.03, 0.05) * size + 0.3 * wave
    fat_end = rng.uniform(0.18, 0.30) * size + wave
    muscle_start = rng.uniform(0.78, 0.90) * size - wave[::-1]
    half_soft = 0.04 * size
    in_gland = 0.5 + 0.5 * np.tanh((rows - fat_end) / half_soft)
    in_muscle = 0.5 + 0.5 * np.tanh((rows - muscle_start) / half_soft)
    fat, gland, muscle = rng.uniform(0.35, 0.50), rng.uniform(0.90, 1.10), rng.uniform(0.55, 0.70)
    period = rng.uniform(4.0, 7.0) * px
    striation = 1.0 + 0.4 * np.sin(2.0 * np.pi * rows / period + rng.uniform(0.0, 2.0 * np.pi))
    echo = fat + (gland - fat) * in_gland + (muscle * striation - gland) * in_muscle
    echo += 1.5 * np.exp(-(((rows - skin) / max(1.0, 0.8 * px)) ** 2))
    echo *= np.exp(0.4 * _smooth_noise(rng, (size, size), (1.2 * px, 4.0 * px)))
    depth_gain = 1.0 - rng.uniform(0.30, 0.45) * (rows / (size - 1)) ** 1.3
    lateral_gain = 1.0 - 0.15 * (2.0 * cols / (size - 1) - 1.0) ** 4
    return echo * (depth_gain * lateral_gain)


def _lesion_mask(rng: np.random.Generator, label: int, size: int) -> np.ndarray:
    """Lesion pixels: polar radius ``r(phi)`` around a rotated ellipse, placed fully inside."""
    semi_major = rng.uniform(0.12, 0.22) * size
    aspect = rng.uniform(0.55, 0.95)
    theta = rng.uniform(0.0, np.pi)
    if label == _BENIGN:
        harmonics = [(k, rng.uniform(0.0, 0.04), rng.uniform(0.0, 2.0 * np.pi)) for k in (2, 3)]
        spikes: list[tuple[int, float, float]] = []
    else:
        harmonics = [(k, rng.uniform(0.05, 0.12), rng.uniform(0.0, 2.0 * np.pi)) for k in (2, 3, 4, 5)]
        harmonics += [(int(k), rng.uniform(0.02, 0.05), rng.uniform(0.0, 2.0 * np.pi)) for k in rng.integers(9, 16, 2)]
        spikes = [(int(rng.integers(5, 10)), rng.uniform(0.22, 0.40), rng.uniform(0.0, 2.0 * np.pi)) for _ in range(2)]

    def radius(phi: np.ndarray) -> np.ndarray:
        r = np.ones_like(phi)
        for k, amp, phase in harmonics:
            r += amp * np.cos(k * phi + phase)
        for k, amp, phase in spikes:
            peak = np.maximum(np.cos(k * phi + phase), 0.0)
            peak *= peak
            peak *= peak
            r += amp * peak * peak  # cos^8: narrow spicules
        return np.maximum(r, 0.45)

    peak_radius = float(radius(_ANGLES).max()) * 1.02  # >= max over all angles, with slack for sampling
    semi_major = min(semi_major, _MAX_REACH * size / peak_radius)
    reach = semi_major * peak_radius + 1.0
    margin = reach + max(1.0, size / 32) + 1.0
    top = max(margin, 0.12 * size + 0.6 * reach)
    bottom = size - 1 - margin
    centre_row = rng.uniform(top, max(top, min(bottom, top + 0.45 * size)))
    centre_col = rng.uniform(margin, size - 1 - margin)
    r0, r1 = int(centre_row - reach), int(centre_row + reach) + 2
    c0, c1 = int(centre_col - reach), int(centre_col + reach) + 2
    dr = np.arange(r0, r1, dtype=np.float64)[:, None] - centre_row
    dc = np.arange(c0, c1, dtype=np.float64)[None, :] - centre_col
    cos_t, sin_t = np.cos(theta), np.sin(theta)
    u = (dc * cos_t + dr * sin_t) / semi_major
    v = (dr * cos_t - dc * sin_t) / (semi_major * aspect)
    mask = np.zeros((size, size), dtype=bool)
    mask[r0:r1, c0:c1] = np.hypot(u, v) <= radius(np.arctan2(v, u))
    return mask


def _lesion_factor(rng: np.random.Generator, label: int, mask: np.ndarray, px: float) -> np.ndarray:
    """Multiplicative echo change caused by the lesion itself (interior, margin, halo)."""
    from scipy import ndimage

    level = rng.uniform(0.22, 0.34)
    if label == _BENIGN:
        soft = ndimage.gaussian_filter(mask.astype(np.float64), 0.4 * px)
        return 1.0 - (1.0 - level) * soft
    interior = level * np.exp(0.7 * _smooth_noise(rng, mask.shape, 1.2 * px))
    specks = rng.choice(np.flatnonzero(mask), size=int(rng.integers(1, 6)))
    interior.flat[specks] = rng.uniform(1.2, 1.8)
    soft = ndimage.gaussian_filter(mask.astype(np.float64), 0.8 * px)
    halo = rng.uniform(0.20, 0.40) * np.where(mask, 0.0, np.clip(2.0 * soft, 0.0, 1.0))
    blend = np.where(mask, np.maximum(soft, 0.75), soft)
    return (1.0 - blend) + blend * interior + halo


def _posterior_factor(
    rng: np.random.Generator, label: int, mask: np.ndarray, below: np.ndarray, size: int
) -> np.ndarray:
    """Posterior acoustic enhancement (benign) or shadowing (malignant) in the zone below.

    The effect grows with the lesion thickness the beam crossed in that column, so
    thin protrusions cast little of it and the lesion body casts the full amount.
    """
    crossed = np.cumsum(mask, axis=0) / (0.1 * size)
    strength = 1.0 - np.exp(-crossed * crossed)
    gap = np.cumsum(below, axis=0)  # depth into the zone, in pixels
    if label == _BENIGN:
        change = rng.uniform(0.25, 0.45) * np.exp(-gap / (rng.uniform(0.15, 0.30) * size))
    else:
        change = -rng.uniform(0.45, 0.65) * (1.0 - np.exp(-gap / (0.03 * size)))
    return np.where(below, 1.0 + strength * change, 1.0)


def _display(rng: np.random.Generator, echo: np.ndarray, size: int, px: float) -> np.ndarray:
    """Apply laterally elongated Rayleigh speckle and a compressive display curve."""
    from scipy import ndimage

    scatter = rng.standard_normal((2, size, size))
    field = ndimage.gaussian_filter(scatter, (0.0, 0.45 * px, 1.0 * px))
    speckle = np.hypot(field[0], field[1])
    speckle = 0.4 + 0.6 * speckle / speckle.mean()
    return np.clip(0.45 * (echo * speckle) ** 0.8, 0.0, 1.0)


def _marks(rng: np.random.Generator, size: int, keep_out: np.ndarray) -> np.ndarray:
    """Pixels of burned-in marks (caliper crosses or text glyphs) clear of ``keep_out``.

    Returns an empty selection when no placement clear of the lesion is found.
    """
    thick = max(1, size // 64)
    use_text = rng.random() < 0.5
    for _ in range(_MARK_TRIES):
        marks = _text(rng, size, thick) if use_text else _crosses(rng, size, thick)
        if not (marks & keep_out).any():
            return marks
    return np.zeros((size, size), dtype=bool)


def _crosses(rng: np.random.Generator, size: int, thick: int) -> np.ndarray:
    """One or two caliper "+" marks at random positions."""
    marks = np.zeros((size, size), dtype=bool)
    for _ in range(int(rng.integers(1, 3))):
        arm = int(rng.integers(max(2, size // 32), max(3, size // 14) + 1))
        r, c = (int(v) for v in rng.integers(arm + 1, size - arm - thick - 1, size=2))
        marks[r - arm : r + arm + thick, c : c + thick] = True
        marks[r : r + thick, c - arm : c + arm + thick] = True
    return marks


def _text(rng: np.random.Generator, size: int, thick: int) -> np.ndarray:
    """A short row of random 3x5 glyphs in one corner of the image."""
    glyphs = rng.random((int(rng.integers(3, 7)), 5, 3)) < 0.55
    line = np.concatenate([np.pad(g, ((0, 0), (0, 1))) for g in glyphs], axis=1)[:, :-1]
    line = np.kron(line, np.ones((thick, thick), dtype=bool))
    height, width = line.shape
    r = 1 + thick if rng.random() < 0.5 else size - height - 1 - thick
    c = 1 + thick if rng.random() < 0.5 else size - width - 1 - thick
    marks = np.zeros((size, size), dtype=bool)
    marks[r : r + height, c : c + width] = line
    return marks

"""MNIST-1D generated offline: Greydanus, Scaling Down Deep Learning, arXiv 2011.14439 (2020).

A 1D analogue of MNIST: each class is a 12-point template of a digit-like
curve, and every example is that template padded with zeros, stretched to 72
points, rescaled, circularly translated, given correlated noise where it is
zero and white noise everywhere, sheared by a random linear trend and finally
downsampled to 40 points. The constants below are those of the reference
generator (https://github.com/greydanus/mnist1d, ``get_dataset_args`` and
``get_templates``); only the random streams differ: each example draws from
``np.random.default_rng([seed, split, i])``, so example ``i`` of a split is the
same whatever the split's size, and ids are stable.

The reference standardises the whole dataset by its own mean and standard
deviation; here a fixed scale (``SCALE``, that standard deviation measured on
10,000 examples of this generator) is used instead, so an example's values do
not depend on which other examples were generated.
"""
from __future__ import annotations

import numpy as np
import torch

from xaibench.contract.specs import DataBundle, DatasetRequest, Samples

TEMPLATES = np.array([
    [5, 6, 6.5, 6.75, 7, 7, 7, 7, 6.75, 6.5, 6, 5],
    [5, 3, 3, 3.4, 3.8, 4.2, 4.6, 5, 5.4, 5.8, 5, 5],
    [5, 6, 6.5, 6.5, 6, 5.25, 4.75, 4, 3.5, 3.5, 4, 5],
    [5, 6, 6.5, 6.5, 6, 5, 5, 6, 6.5, 6.5, 6, 5],
    [5, 4.4, 3.8, 3.2, 2.6, 2.6, 5, 5, 5, 5, 5, 5],
    [5, 3, 3, 3, 3, 5, 6, 6.5, 6.5, 6, 4.5, 5],
    [5, 4, 3.5, 3.25, 3, 3, 3, 3, 3.25, 3.5, 4, 5],
    [5, 7, 7, 6.6, 6.2, 5.8, 5.4, 5, 4.6, 4.2, 5, 5],
    [5, 4, 3.5, 3.5, 4, 5, 5, 4, 3.5, 3.5, 4, 5],
    [5, 4, 3.5, 3.5, 4, 5, 5, 5, 5, 4.7, 4.3, 5],
])
CLASS_NAMES = tuple(str(d) for d in range(10))
TEMPLATE_LEN = 12
PADDING = (36, 60)
SCALE_COEFF = 0.4
MAX_TRANSLATION = 48
CORR_NOISE_SCALE = 0.25
IID_NOISE_SCALE = 2e-2
SHEAR_SCALE = 0.75
LENGTH = 40
#: Standard deviation of generated examples (10,000 examples, seed 0); divides every example.
SCALE = 0.1544


def templates() -> np.ndarray:
    """The ten templates, each standardised, shifted to start at 0 and divided by 6 (as the reference)."""
    x = TEMPLATES - TEMPLATES.mean(1, keepdims=True)
    x = x / x.std(1, keepdims=True)
    return (x - x[:, :1]) / 6.0


def _resample(x: np.ndarray, n: int) -> np.ndarray:
    return np.interp(np.linspace(0, 1, n), np.linspace(0, 1, len(x)), x)


def example(rng: np.random.Generator, template: np.ndarray) -> np.ndarray:
    """One transformed example of ``LENGTH`` points (the reference's ``transform``)."""
    from scipy.ndimage import gaussian_filter

    pad = PADDING[0] + int(rng.random() * (PADDING[1] - PADDING[0] + 1))
    x = np.concatenate([template + 1e-8, np.zeros(pad)])
    x = _resample(x, TEMPLATE_LEN + PADDING[1])
    x = x * (1 + SCALE_COEFF * (rng.random() - 0.5))
    k = int(rng.integers(MAX_TRANSLATION))
    x = np.roll(x, k)
    signal = x != 0
    x = signal * x + (~signal) * gaussian_filter(CORR_NOISE_SCALE * rng.standard_normal(x.shape), 2)
    x = x + IID_NOISE_SCALE * rng.standard_normal(x.shape)
    x = x - SHEAR_SCALE * (rng.random() - 0.5) * np.linspace(-0.5, 0.5, len(x))
    return _resample(x, LENGTH)


def generate(n: int, seed: int, split: int) -> dict[str, np.ndarray]:
    """``n`` examples ``{"x": float32 (n, 1, 40), "y": int64 (n,)}`` with ``y[i] = i % 10`` (balanced)."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    t = templates()
    y = np.arange(n, dtype=np.int64) % len(CLASS_NAMES)
    x = np.stack([example(np.random.default_rng([seed, split, i]), t[y[i]]) for i in range(n)]) if n else \
        np.zeros((0, LENGTH))
    return {"x": (x / SCALE).astype(np.float32)[:, None, :], "y": y}


def load_bundle(request: DatasetRequest) -> DataBundle:
    """Seed 000's data: 4,000 / 500 / 1,000 examples by default, each split balanced over the ten digits."""
    p = dict(request.params)
    sizes = {"train": int(p.pop("n_train", 4000)), "val": int(p.pop("n_val", 500)), "test": int(p.pop("n_test", 1000))}
    seed = int(p.pop("seed", request.seed))
    if p:
        raise TypeError(f"unknown parameter(s) {', '.join(sorted(p))}; known: n_train, n_val, n_test, seed")
    splits = {}
    for k, split in enumerate(("train", "val", "test")):
        data = generate(sizes[split], seed, k)
        splits[split] = Samples(x=torch.from_numpy(data["x"]), y=torch.from_numpy(data["y"]),
                                ids=tuple(f"mnist1d-s{seed}-{split}-{i:05d}" for i in range(sizes[split])))
    return DataBundle(**splits, class_names=CLASS_NAMES, modality="signal",
                      notes="MNIST-1D (Greydanus 2020) generated offline by xaibench's port of the reference "
                            "generator; 40-point signals, ten balanced classes; no masks")

"""ROAD's batched conjugate-gradient imputation (:func:`impute`) equals the direct sparse solve (:func:`linear_impute`, scipy's ``spsolve``)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from xaibench_metrics.road import impute, linear_impute, removal_masks


@pytest.mark.parametrize("spatial", [(40,), (24, 20), (32, 32)])
def test_batched_conjugate_gradients_equal_spsolve_at_every_nested_fraction(spatial: tuple[int, ...]) -> None:
    gen = torch.Generator().manual_seed(len(spatial))
    images = torch.rand(3, 2, *spatial, generator=gen, dtype=torch.float64)
    maps = torch.rand(3, *spatial, generator=gen)
    fractions = (0.1, 0.5, 0.9)
    removed = removal_masks(maps, fractions, "morf")
    filled = None
    for k in range(len(fractions)):  # warm-started as ROAD runs it
        filled = impute(images, removed[:, k], start=filled)
        for i in range(images.shape[0]):
            expected = linear_impute(images[i].numpy(), removed[i, k].numpy())
            np.testing.assert_allclose(filled[i].numpy(), expected, rtol=0, atol=1e-6)
    cold = impute(images, removed[:, -1])
    np.testing.assert_allclose(cold.numpy(), filled.numpy(), rtol=0, atol=1e-6)


def test_conjugate_gradients_keep_kept_pixels_and_refuse_a_fully_removed_input() -> None:
    image = torch.rand(1, 1, 9, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    removed = torch.zeros(1, 9, 7, dtype=torch.bool)
    removed[0, 3:6, 2:5] = True
    got = impute(image, removed)
    torch.testing.assert_close(got[0, :, ~removed[0]], image[0, :, ~removed[0]], rtol=0, atol=0)
    with pytest.raises(ValueError, match="every pixel is removed"):
        impute(image, torch.ones(1, 9, 7, dtype=torch.bool))

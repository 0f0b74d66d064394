"""The example plugin's own tests, as a third-party author writes them with xaibench's conformance kit."""
from __future__ import annotations

import pytest
import torch

from xaibench.contract.plugins import load_harness
from xaibench.authoring.testing import check_method


@pytest.fixture(scope="module")
def harness():  # type: ignore[no-untyped-def]
    return load_harness()


@pytest.mark.parametrize("modality, shape", [("image", (3, 2, 28, 28)), ("signal", (3, 2, 64))])
def test_deconvnet_conforms_on_lenet5(  # type: ignore[no-untyped-def]
        harness, modality: str, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    model = harness.models.get("lenet5").build(num_classes=4, in_channels=2, modality=modality).eval()
    maps = check_method(harness.methods.get("deconvnet"), model, torch.rand(shape))
    assert maps.shape == (shape[0], *shape[2:])
    assert (maps >= 0).all(), "reduce='abs' gives non-negative maps"


def test_lenet5_takes_any_input_size_and_refuses_unknown_modalities(harness) -> None:  # type: ignore[no-untyped-def]
    build = harness.models.get("lenet5").build
    for size in (20, 32, 64):
        assert build(3, 1, "image")(torch.rand(2, 1, size, size)).shape == (2, 3)
    with pytest.raises(ValueError, match="modality"):
        build(3, 1, "volume")

"""torch layer classes per modality: what 1D, 2D and 3D networks of the same design are built from.

Models that serve several modalities with one definition (the conformance kit's tiny
model, the built-in small CNN) look their layers up here rather than branching on
the modality in each constructor.
"""
from __future__ import annotations

from torch import nn

#: (convolution, batch norm, max pool, adaptive average pool) per modality of :data:`xaibench.specs.MODALITIES`.
LAYERS: dict[str, tuple[type[nn.Module], type[nn.Module], type[nn.Module], type[nn.Module]]] = {
    "signal": (nn.Conv1d, nn.BatchNorm1d, nn.MaxPool1d, nn.AdaptiveAvgPool1d),
    "image": (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, nn.AdaptiveAvgPool2d),
    "volume": (nn.Conv3d, nn.BatchNorm3d, nn.MaxPool3d, nn.AdaptiveAvgPool3d),
}


def layers_for(modality: str) -> tuple[type[nn.Module], type[nn.Module], type[nn.Module], type[nn.Module]]:
    """``(conv, norm, pool, global_pool)`` classes for ``modality``; raises ValueError for an unknown one."""
    if modality not in LAYERS:
        raise ValueError(f"modality must be one of {', '.join(LAYERS)}, got {modality!r}")
    return LAYERS[modality]

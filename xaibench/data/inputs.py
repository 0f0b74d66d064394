"""The input contract: what a dataset's ``x`` may hold, and the rule that turns it into float32.

Models, methods and metrics read ``x`` as float32. A loader may return other dtypes;
:func:`as_float32` converts them by one documented rule, never clipping:

- float32: unchanged; float64, float16, bfloat16: cast to float32 (values kept).
- bool: 0.0 and 1.0.
- uint8, uint16, int8, int16 (8- and 16-bit images, CT values stored as int16): scaled
  by the dtype's range, ``(x - min) / (max - min)``, to [0, 1]: uint8 ``x / 255``,
  uint16 ``x / 65535``, int16 ``(x + 32768) / 65535``. The mapping is exact in float32.
- int32, int64 and anything else: refused with one line, as no image convention fixes
  their range (scaling by 2^32 would leave a 12-bit image at 1e-6 contrast); convert in
  the loader with the scale the data needs.

Labels ``(N, 1)`` are flattened to ``(N,)`` and integer labels of any width become int64.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from xaibench.base.errors import XaibenchError
from xaibench.contract.specs import DataBundle, Samples

#: Integer dtypes converted by their range.
SCALED = (torch.uint8, torch.int8, torch.int16, torch.uint16)


def as_float32(x: torch.Tensor, who: str) -> torch.Tensor:
    """``x`` as float32 by the rule of the module docstring; raises :class:`XaibenchError` naming ``who``."""
    if x.dtype == torch.float32:
        return x
    if x.dtype.is_floating_point:
        return x.float()
    if x.dtype == torch.bool:
        return x.float()
    if x.dtype in SCALED:
        info = torch.iinfo(x.dtype)
        return ((x.double() - info.min) / (info.max - info.min)).float()
    raise XaibenchError(f"{who} are {str(x.dtype).removeprefix('torch.')}: no image convention fixes that range; "
                        f"return float32 (or uint8/uint16/int16, scaled by their range) from the loader")


def scaled_array(a: np.ndarray, who: str) -> np.ndarray:
    """A numpy image by the same rule (float32 result): used by file readers."""
    return as_float32(torch.from_numpy(np.ascontiguousarray(a)), who).numpy()


def _labels(y: torch.Tensor) -> torch.Tensor:
    if y.dim() == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if not y.dtype.is_floating_point and y.dtype != torch.bool and y.dtype != torch.int64:
        y = y.long()
    return y


def conform_bundle(name: str, bundle: DataBundle) -> DataBundle:
    """``bundle`` with float32 inputs and ``(N,)`` int64 labels (unchanged when already so).

    Anything that is not a :class:`DataBundle` is returned as is, for the bundle check to refuse.
    """
    if not isinstance(bundle, DataBundle):
        return bundle
    splits = {}
    for split_name in ("train", "val", "test"):
        split: Samples = getattr(bundle, split_name)
        if not isinstance(split, Samples) or not isinstance(split.x, torch.Tensor):
            return bundle
        splits[split_name] = dataclasses.replace(
            split, x=as_float32(split.x, f"dataset {name!r}: {split_name} inputs"), y=_labels(split.y))
    return dataclasses.replace(bundle, **splits)

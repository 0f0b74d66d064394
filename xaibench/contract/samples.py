"""The data that flows from dataset plugins to the runner: one split as tensors, and a dataset's bundle.

Importable from :mod:`xaibench.contract.specs`, the plugins' public facade.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping

import numpy as np

if TYPE_CHECKING:  # torch loads on first use, not to register specs (xaibench.contract.lazy)
    import torch


@dataclass(frozen=True)
class Samples:
    """One split of a dataset, held in memory as tensors.

    ``x`` is float32 ``(N, C, *spatial)`` with values as the model consumes them;
    ``masks`` (bool) and ``regions`` (int8 levels, higher = more relevant) are
    ``(N, *spatial)`` or ``None``; ``ids`` are stable across runs and machines.
    """

    x: torch.Tensor
    y: torch.Tensor
    ids: tuple[str, ...]
    masks: torch.Tensor | None = None
    regions: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, index: slice | list[int] | np.ndarray) -> "Samples":
        """The samples at ``index`` (a slice or integer positions), ids, labels, masks and regions alike."""
        import torch

        idx = index if isinstance(index, slice) else torch.as_tensor(np.asarray(index), dtype=torch.long)
        ids = np.asarray(self.ids, dtype=object)[index if isinstance(index, slice) else np.asarray(index)]
        return Samples(
            x=self.x[idx],
            y=self.y[idx],
            ids=tuple(ids.tolist()),
            masks=None if self.masks is None else self.masks[idx],
            regions=None if self.regions is None else self.regions[idx],
        )


@dataclass(frozen=True)
class DataBundle:
    """What a dataset plugin returns: train/val/test splits plus descriptive metadata."""

    train: Samples
    val: Samples
    test: Samples
    class_names: tuple[str, ...]
    modality: str
    #: Level of ``regions`` that counts as "fully relevant" (graded hit rate normaliser).
    region_top_level: int | None = None
    #: Free-form notes shown in the leaderboard header (source, licence, caveats).
    notes: str = ""
    #: What ``masks`` are: "masks" (segmentations) or "boxes" (the union of bounding boxes on the pixel grid,
    #: scored only by metrics with ``MetricSpec.box_ground_truth``).
    ground_truth: str = "masks"
    #: Sample id -> group (patient) id, when several samples come from one patient: k-fold cross-validation
    #: keeps each group in one fold (:mod:`xaibench.data.folds`). None: every sample is its own group.
    groups: Mapping[str, str] | None = None

    @property
    def in_channels(self) -> int:
        """Input channels ``C`` of ``x`` ``(N, C, *spatial)`` (1 for grayscale, 3 for RGB)."""
        return int(self.train.x.shape[1])

    @property
    def spatial(self) -> tuple[int, ...]:
        """Spatial shape of one input in pixels (``(H, W)`` images, ``(L,)`` signals, ``(D, H, W)`` volumes)."""
        return tuple(int(s) for s in self.train.x.shape[2:])

    @property
    def num_classes(self) -> int:
        """Number of classes ``K``: labels are integers in ``0..K-1`` indexing ``class_names``."""
        return len(self.class_names)

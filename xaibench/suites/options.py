"""How a run is asked for (:class:`RunOptions`), what it resolves to (:class:`Settings`), what it did (:class:`RunSummary`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from xaibench.storage.cache import numerics
from xaibench.storage.cache import cache_home
from xaibench.base.errors import XaibenchError
from xaibench.suites.suite import Suite


@dataclass(frozen=True)
class RunOptions:
    """The command line's choices for one run; none of them changes a score or a cache key."""

    data_root: str | None = None
    device: str = "cpu"
    limit: int | None = None
    batch_size: int | None = None
    home: Path = field(default_factory=cache_home)
    progress: bool = True
    fail_fast: bool = False
    #: Seconds each plugin call of a cell may take (overrides the suite's ``cell_timeout``).
    cell_timeout: float | None = None
    #: Run the forward passes in bfloat16 on CUDA.
    autocast: bool = False
    #: "local" (this machine; ``workers`` > 1 uses a process pool) or "ray".
    executor: str = "local"
    workers: int = 1
    #: Address of an existing Ray cluster ("auto" or "ray://host:port"); None starts a local one.
    address: str | None = None
    #: Let dataset loaders fetch missing public releases, checksum-verified (``--download``),
    #: from their URL or from ``mirror`` (``--mirror``).
    download: bool = False
    mirror: str | None = None


@dataclass(frozen=True)
class Settings:
    """A suite and its run options resolved once: device, batch size and per-call time limit.

    Raises :class:`XaibenchError` for a CUDA device torch cannot see and a non-positive time limit.
    """

    suite: Suite
    options: RunOptions
    device: torch.device
    batch_size: int
    cell_timeout: float | None

    @classmethod
    def of(cls, suite: Suite, options: RunOptions) -> "Settings":
        """``suite`` and ``options`` resolved; the options win over the suite's batch size and time limit."""
        device = torch.device(options.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise XaibenchError("--device cuda was asked for, but torch sees no CUDA device here")
        timeout = suite.cell_timeout if options.cell_timeout is None else options.cell_timeout
        if timeout is not None and timeout <= 0:
            raise XaibenchError(f"the cell time limit must be a positive number of seconds, got {timeout:g}")
        return cls(suite, options, device, options.batch_size or suite.batch_size, timeout)

    @property
    def numerics(self) -> dict[str, str]:
        """Device type, parameter dtype and autocast of the run (:func:`xaibench.storage.cache.numerics`): in every cache key."""
        return numerics(self.device, self.options.autocast)


@dataclass
class RunSummary:
    """Counts of one run: cells computed, reused from the store, skipped (with reasons) and failed."""

    computed: int = 0
    reused: int = 0
    skipped: int = 0
    failed: list[str] = field(default_factory=list)
    models_trained: int = 0
    maps_computed: int = 0
    skip_reasons: list[str] = field(default_factory=list)

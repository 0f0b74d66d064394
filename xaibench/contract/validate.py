"""Checks of user-given values that must hold before anything is opened or written.

Each function raises :class:`~xaibench.base.errors.XaibenchError` (command-line values) or
:class:`~xaibench.base.errors.SuiteError` (suite values, with ``file:line``) with one line
that says what to change; the CLI turns both into exit status 2.
"""
from __future__ import annotations

import math
import numbers
import re
from dataclasses import fields
from typing import Any, Callable, Mapping

from xaibench.base.errors import SuiteError, XaibenchError, did_you_mean
from xaibench.contract.specs import AUGMENTATIONS, TrainRecipe

#: Devices a run accepts: ``cpu``, ``cuda``, ``cuda:N`` and ``mps``.
DEVICE = re.compile(r"^(cpu|cuda(:\d+)?|mps)$")


def is_integer(value: Any) -> bool:
    """An integer (Python's or numpy's), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A finite real number (an integer or a float, Python's or numpy's), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def positive_int(value: int | None, option: str) -> None:
    """``value`` is None (not given) or an integer of at least 1."""
    if value is not None and value < 1:
        raise XaibenchError(f"{option} must be at least 1, got {value}")


def positive_seconds(value: float | None, option: str) -> None:
    """``value`` is None or a finite number of seconds above 0."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise XaibenchError(f"{option} must be a positive number of seconds, got {value:g}")


def device(name: str) -> None:
    """A device torch can use here: ``cpu``, ``cuda``/``cuda:N`` when CUDA sees that device, ``mps`` when present."""
    if not DEVICE.match(name):
        raise XaibenchError(f"--device must be cpu, cuda, cuda:N or mps, got {name!r}"
                            f"{' (did you mean cuda?)' if name.lower() == 'gpu' else did_you_mean(name, ('cpu', 'cuda', 'mps'))}")
    import torch

    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise XaibenchError(f"--device {name} was asked for, but torch sees no CUDA device here "
                                f"(torch {torch.__version__}); use --device cpu")
        index = int(name.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise XaibenchError(f"--device {name}: torch sees {torch.cuda.device_count()} CUDA device(s), "
                                f"numbered from 0")
    if name == "mps" and not torch.backends.mps.is_available():
        raise XaibenchError("--device mps was asked for, but torch sees no MPS device here; use --device cpu")


def train_options(train: Mapping[str, Any], key_lines: Mapping[str, int], line: int,
                  where: Callable[[int], str]) -> None:
    """A suite model's ``train:`` mapping: known keys (with "did you mean"), positive sizes, known augmentations.

    ``key_lines`` maps each key to its 1-based line (``line`` is the mapping's own); ``where(line)`` names
    that line in an error (``file:line``, or ``--set KEY`` for an overridden value).
    """
    known = [f.name for f in fields(TrainRecipe)]
    for key, value in train.items():
        at = where(key_lines.get(key, line))
        if key not in known:
            raise SuiteError(f"{at}: unknown training option {key!r}{did_you_mean(str(key), known)}; "
                             f"known: {', '.join(known)}")
        if key in ("epochs", "batch_size") and not (is_integer(value) and value >= 1):
            raise SuiteError(f"{at}: training option {key!r} must be an integer of at least 1, got {value!r}")
        if key in ("patience", "frozen_epochs", "threads") and not (is_integer(value) and value >= 0):
            zero = {"patience": "never stop early", "frozen_epochs": "no frozen-backbone epochs",
                    "threads": "the thread count set for torch"}[key]
            raise SuiteError(f"{at}: training option {key!r} must be an integer of at least 0 (0: {zero}), "
                             f"got {value!r}")
        if key in ("lr", "weight_decay") and not (is_number(value) and value >= 0 and (key != "lr" or value > 0)):
            raise SuiteError(f"{at}: training option {key!r} must be a {'positive' if key == 'lr' else 'non-negative'} "
                             f"number, got {value!r}")
        if key == "location_supervision" and not isinstance(value, bool):
            raise SuiteError(f"{at}: training option 'location_supervision' must be true or false, got {value!r}")
        if key == "augment":
            names = list(value) if isinstance(value, list) else None
            if names is None:
                raise SuiteError(f"{at}: training option 'augment' must be a list of names, got {value!r}")
            for name in names:
                if name not in AUGMENTATIONS:
                    raise SuiteError(f"{at}: unknown augmentation {name!r}{did_you_mean(str(name), AUGMENTATIONS)}; "
                                     f"known: {', '.join(AUGMENTATIONS)}")

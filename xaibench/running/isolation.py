"""Isolating one plugin call: a time limit, and a model the call cannot leave changed.

**Time limit: why SIGALRM and not a worker thread.** A Python thread cannot be
killed; a plugin call abandoned in a worker thread would keep running and keep
using the model while the next cell uses it too, so a timed-out method could
still corrupt later cells. Instead :func:`time_limit` arms ``setitimer(ITIMER_REAL)``
in the main thread; its handler raises :class:`CellTimeout` inside the plugin's
own frame, so the plugin's ``finally`` blocks run (captum and pytorch-grad-cam
remove their hooks) and nothing keeps running afterwards. Limits, documented in
the CLI help: the exception is raised between Python bytecodes, so one long
native call (a single huge convolution, a numba kernel) finishes before it takes
effect; a plugin that swallows every exception can ignore it. Both cases, and
platforms or threads without ``SIGALRM``, are still caught afterwards: a call that
returns after its limit fails the same way. Only a call that never returns
cannot be stopped in-process (Ctrl-C, then the next run resumes).

**Model guard.** A method or metric must not change the model: :class:`ModelGuard`
snapshots parameters, buffers, ``requires_grad``, train/eval mode and the module
hooks before the call and restores them afterwards (also after a failure or a
timeout), reporting what was changed, so one misbehaving plugin fails only its own
cell and the cells after it see the trained model.
"""
from __future__ import annotations

import signal
import threading
import time
from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

from xaibench.base.errors import CellError

_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")


class CellTimeout(CellError):
    """A plugin call exceeded the per-cell time limit."""


def _can_alarm() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


@contextmanager
def time_limit(seconds: float | None, what: str) -> Iterator[None]:
    """Raise :class:`CellTimeout` in the body once it has run ``seconds`` (``None``: no limit)."""
    if not seconds:
        yield
        return
    message = f"{what} timed out after {seconds:g}s (the per-cell time limit)"

    def on_alarm(signum: int, frame: object) -> None:
        raise CellTimeout(message)

    alarm = _can_alarm()
    if alarm:
        previous = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, seconds)
    start = time.monotonic()
    try:
        yield
    finally:
        if alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    if time.monotonic() - start > seconds:  # an uninterruptible native call, or a swallowed alarm
        raise CellTimeout(message)


def _tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """Parameters and buffers by name (a module's non-tensor ``extra_state`` is left out)."""
    return {k: v for k, v in model.state_dict(keep_vars=True).items() if isinstance(v, torch.Tensor)}


class ModelGuard:
    """What a plugin call must leave as it found it; :meth:`restore` puts it back."""

    def __init__(self, model: nn.Module) -> None:
        self.state = {k: v.detach().clone() for k, v in _tensors(model).items()}
        self.requires_grad = {k: p.requires_grad for k, p in model.named_parameters()}
        self.training = {k: m.training for k, m in model.named_modules()}
        self.hooks = {k: {d: set(getattr(m, d, {})) for d in _HOOK_DICTS} for k, m in model.named_modules()}

    def restore(self, model: nn.Module) -> list[str]:
        """Undo every change; return a description of each (empty when the call behaved)."""
        changes = []
        current = _tensors(model)
        if set(current) != set(self.state):
            raise CellError("the model's structure changed (parameters or buffers added or removed)")
        with torch.no_grad():
            for k, old in self.state.items():
                now = current[k]
                if now.shape != old.shape or not torch.equal(now.detach(), old):
                    changes.append(f"parameter {k!r} (values)")
                    now.data = old.clone()
        for k, p in model.named_parameters():
            if p.requires_grad != self.requires_grad[k]:
                changes.append(f"parameter {k!r} (requires_grad)")
                p.requires_grad_(self.requires_grad[k])
        for k, m in model.named_modules():
            if m.training != self.training.get(k, m.training):
                changes.append(f"module {k or 'model'!r} (train/eval mode)")
                m.train(self.training[k])
            for d, before in self.hooks.get(k, {}).items():
                hooks = getattr(m, d, None)
                added = [h for h in (hooks or {}) if h not in before]
                if added:
                    changes.append(f"module {k or 'model'!r} ({len(added)} hook(s) left registered)")
                    for h in added:
                        del hooks[h]
        return changes

"""Calling a captum attribution with per-sample seeds, optionally through NoiseTunnel (SmoothGrad).

captum draws noise from torch's global generator for the whole batch, so a
sample's SmoothGrad or GradientShap map would depend on which other samples
share its batch. Stochastic calls therefore run sample by sample, each under
its own seed from ``ctx.sample_seeds`` (torch's and numpy's generators are
restored afterwards); each call still evaluates all of that sample's
noisy copies in batches of ``ctx.batch_size``. Deterministic calls take the
whole batch at once.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from xaibench.specs import MethodContext

NT_TYPES = ("smoothgrad", "smoothgrad_sq", "vargrad")
NT_KEYS = ("type", "samples", "stdev")


def _noise_tunnel_args(noise_tunnel: Mapping[str, Any], ctx: MethodContext) -> dict[str, Any]:
    if not isinstance(noise_tunnel, Mapping):
        raise TypeError(f"noise_tunnel must be a mapping {{type, samples, stdev}}, got {noise_tunnel!r}")
    unknown = set(noise_tunnel) - set(NT_KEYS)
    if unknown:
        raise ValueError(f"noise_tunnel: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(NT_KEYS)}")
    kind = noise_tunnel.get("type", "smoothgrad")
    if kind not in NT_TYPES:
        raise ValueError(f"noise_tunnel type must be one of {', '.join(NT_TYPES)}, got {kind!r}")
    samples, stdev = int(noise_tunnel.get("samples", 16)), float(noise_tunnel.get("stdev", 0.1))
    if samples < 1 or not stdev > 0:
        raise ValueError(f"noise_tunnel needs samples >= 1 and stdev > 0, got {samples} and {stdev}")
    return {"nt_type": kind, "nt_samples": samples, "stdevs": stdev, "nt_samples_batch_size": ctx.batch_size}


def attribute(method: Any, x: torch.Tensor, target: torch.Tensor, ctx: MethodContext,
              noise_tunnel: Mapping[str, Any] | None, stochastic: bool = False, **kwargs: Any) -> torch.Tensor:
    """``method.attribute(x, target=target, **kwargs)``, wrapped in NoiseTunnel when asked.

    Tensor arguments with a batch axis (baselines) are sliced along with ``x`` when
    the call runs per sample.
    """
    if noise_tunnel is not None:
        from captum.attr import NoiseTunnel

        kwargs = {**kwargs, **_noise_tunnel_args(noise_tunnel, ctx)}
        method, stochastic = NoiseTunnel(method), True
    if not stochastic:
        return method.attribute(x, target=target, **kwargs).detach()
    n = x.shape[0]
    out = []
    for i, seed in enumerate(ctx.sample_seeds):
        one = {k: v[i : i + 1] if isinstance(v, torch.Tensor) and v.dim() > 0 and v.shape[0] == n else v
               for k, v in kwargs.items()}
        numpy_state = np.random.get_state()  # GradientShap draws its path points from numpy
        with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
            torch.manual_seed(seed)
            np.random.seed(seed % 2**32)
            try:
                out.append(method.attribute(x[i : i + 1], target=target[i : i + 1], **one).detach())
            finally:
                np.random.set_state(numpy_state)
    return torch.cat(out)

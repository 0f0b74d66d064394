"""Calling a captum attribution with per-sample seeds, optionally through NoiseTunnel (SmoothGrad).

captum draws noise from torch's global generator for the whole batch, so a
sample's SmoothGrad or GradientShap map would depend on which other samples
share its batch. Each sample's draws therefore come from its own seed
(``ctx.sample_seeds``; torch's and numpy's generators are restored afterwards).
A stochastic method (GradientShap, LIME, KernelSHAP) runs sample by sample under
that seed. A noise tunnel (:func:`tunnel_attribute`) draws each sample's noisy
copies exactly as captum's ``NoiseTunnel`` does for that sample alone, then
attributes the copies of all samples in passes of ``ctx.pass_batch`` (the engine's
batch), not one sample's copies per pass. Deterministic calls take the whole batch at once.

captum's warnings about what these calls do on purpose (:data:`BENIGN_WARNINGS`: inputs set to require
gradients, hooks set on activations for DeepLIFT, guided backpropagation and deconvolution) are filtered
around the calls (:func:`benign_warnings_filtered`), by message; any other warning reaches the user.
"""
from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from xaibench.contract.specs import MethodContext
from xaibench.contract.validate import is_integer, is_number

#: captum's UserWarnings (regular expressions of their starts) that describe what xaibench asks of it on purpose.
BENIGN_WARNINGS = (
    r"Input Tensor \d+ did not already require gradients, required_grads has been set automatically",
    r"Setting forward, backward hooks and attributes on non-linear\s+activations",  # DeepLift
    r"Setting backward hooks on ReLU activations",  # GuidedBackprop, Deconvolution
)
NT_TYPES = ("smoothgrad", "smoothgrad_sq", "vargrad")
NT_KEYS = ("type", "samples", "stdev")


def noise_tunnel_args(noise_tunnel: Any) -> dict[str, Any]:
    """``{"nt_type", "samples", "stdev"}`` of a ``noise_tunnel`` parameter (defaults: smoothgrad, 16, 0.1).

    Raises TypeError unless it is a mapping, ValueError for an unknown key or type, a ``samples`` that is
    not an integer >= 1 or a ``stdev`` that is not a finite number > 0.
    """
    if not isinstance(noise_tunnel, Mapping):
        raise TypeError(f"noise_tunnel must be a mapping {{type, samples, stdev}}, got {noise_tunnel!r}")
    unknown = set(noise_tunnel) - set(NT_KEYS)
    if unknown:
        raise ValueError(f"noise_tunnel: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(NT_KEYS)}")
    kind = noise_tunnel.get("type", "smoothgrad")
    if kind not in NT_TYPES:
        raise ValueError(f"noise_tunnel type must be one of {', '.join(NT_TYPES)}, got {kind!r}")
    samples, stdev = noise_tunnel.get("samples", 16), noise_tunnel.get("stdev", 0.1)
    if not (is_integer(samples) and samples >= 1 and is_number(stdev) and stdev > 0):
        raise ValueError(f"noise_tunnel needs an integer samples >= 1 and a finite stdev > 0, got {samples!r} and "
                         f"{stdev!r}")
    return {"nt_type": kind, "samples": int(samples), "stdev": float(stdev)}


def check_noise_tunnel(params: Mapping[str, Any]) -> None:
    """:func:`noise_tunnel_args`'s errors for a ``noise_tunnel`` in a method's ``params`` (absent or null: none)."""
    if params.get("noise_tunnel") is not None:
        noise_tunnel_args(params["noise_tunnel"])


def check_tunnel_method(params: Mapping[str, Any]) -> None:
    """SmoothGrad's, SmoothGrad-squared's and VarGrad's ``params``: raises ValueError unless ``samples`` is an
    integer >= 1 and ``noise_level`` a finite number > 0."""
    samples, level = params.get("samples"), params.get("noise_level")
    if not (is_integer(samples) and samples >= 1 and is_number(level) and level > 0):
        raise ValueError(f"needs noise_level > 0 and samples >= 1 (an integer), got {level!r} and {samples!r}")


@contextlib.contextmanager
def benign_warnings_filtered() -> Iterator[None]:
    """Inside: captum's :data:`BENIGN_WARNINGS` are not shown (every other warning is); the filters are restored
    after. Also a decorator."""
    with warnings.catch_warnings():
        for message in BENIGN_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=UserWarning)
        yield


@benign_warnings_filtered()
def attribute(method: Any, x: torch.Tensor, target: torch.Tensor, ctx: MethodContext,
              noise_tunnel: Mapping[str, Any] | None, stochastic: bool = False, group: int | None = None,
              **kwargs: Any) -> torch.Tensor:
    """``method.attribute(x, target=target, **kwargs)``, wrapped in a noise tunnel when asked.

    Tensor arguments with a batch axis (baselines) are sliced along with ``x`` when
    the call runs per sample or per ``group`` (a deterministic call on at most ``group`` samples at a
    time: a method whose passes hold every sample of its call, as Integrated Gradients' steps do, then
    passes ``group`` inputs, not the whole batch). ``method`` must be deterministic when ``noise_tunnel`` is given.
    """
    n = x.shape[0]
    if noise_tunnel is not None:
        args = noise_tunnel_args(noise_tunnel)
        return tunnel_attribute(method, x, target, ctx, args["nt_type"], args["samples"], [args["stdev"]] * n,
                                **kwargs)
    if not stochastic:
        size = n if group is None else group
        return torch.cat([method.attribute(x[s : s + size], target=target[s : s + size],
                                           **_rows(kwargs, n, range(s, min(s + size, n)))).detach()
                          for s in range(0, n, size)])
    out = []
    for i, seed in enumerate(ctx.sample_seeds):
        with _seeded(seed, x.device):
            out.append(method.attribute(x[i : i + 1], target=target[i : i + 1], **_rows(kwargs, n, [i])).detach())
    return torch.cat(out)


@contextlib.contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """torch's and numpy's global generators seeded with ``seed`` inside, restored after (GradientShap draws its
    path points from numpy)."""
    numpy_state = np.random.get_state()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        try:
            yield
        finally:
            np.random.set_state(numpy_state)


def _rows(kwargs: Mapping[str, Any], n: int, rows: Sequence[int]) -> dict[str, Any]:
    """``kwargs`` with each tensor that has a batch axis of ``n`` (baselines) taken at ``rows``."""
    index = list(rows)
    return {k: v[index] if isinstance(v, torch.Tensor) and v.dim() > 0 and v.shape[0] == n else v
            for k, v in kwargs.items()}


@benign_warnings_filtered()
def tunnel_attribute(method: Any, x: torch.Tensor, target: torch.Tensor, ctx: MethodContext, nt_type: str,
                     samples: int, stdevs: Sequence[float], **kwargs: Any) -> torch.Tensor:
    """captum's ``NoiseTunnel(method).attribute`` of each sample alone, under its seed, in passes across samples.

    ``x`` ``(N, C, *spatial)``; ``stdevs`` one noise standard deviation per sample. Sample ``i``'s
    ``samples`` noisy copies are drawn as NoiseTunnel draws them for ``x[i : i + 1]`` with
    ``nt_samples_batch_size=ctx.batch_size``: in partitions of ``min(samples, ctx.batch_size)`` copies,
    each ``x_i + torch.normal(0, stdev)`` under seed ``ctx.sample_seeds[i]``. The copies of all samples are
    attributed in passes of ``ctx.pass_batch`` (their targets and batch-axis ``kwargs`` follow them), and
    each sample's attributions are reduced as NoiseTunnel reduces them (per partition ``sum`` and
    ``sum of squares``, added in partition order, over ``samples``; ``smoothgrad`` the mean,
    ``smoothgrad_sq`` the mean square, ``vargrad`` ``E[a^2] - E[a]^2``; Smilkov et al. 2017, Sec. 3;
    Adebayo et al. 2018, Sec. 2). Returns ``(N, C, *spatial)`` detached, equal to the per-sample
    NoiseTunnel calls up to the float rounding of batched kernels.
    """
    n, per_draw = x.shape[0], min(samples, ctx.batch_size)
    partitions = [per_draw] * (samples // per_draw) + ([samples % per_draw] if samples % per_draw else [])
    grads: list[list[torch.Tensor]] = [[] for _ in range(n)]
    pending: list[tuple[int, torch.Tensor]] = []  # (sample, noisy copies) not yet attributed

    def attribute_pending(upto: int) -> None:
        owners = torch.tensor([i for i, copies in pending for _ in range(copies.shape[0])], device=x.device)
        copies = torch.cat([c for _, c in pending])
        pending.clear()
        for start in range(0, upto, ctx.pass_batch):
            stop = min(start + ctx.pass_batch, upto)
            rows = owners[start:stop]
            out = method.attribute(copies[start:stop].requires_grad_(),
                                   target=target[rows], **_rows(kwargs, n, rows.tolist())).detach()
            for i in rows.unique_consecutive().tolist():
                grads[i].append(out[rows == i])
        if upto < owners.numel():
            pending.extend((i, copies[upto:][owners[upto:] == i]) for i in owners[upto:].unique_consecutive().tolist())

    for i, seed in enumerate(ctx.sample_seeds):
        with _seeded(seed, x.device):
            for size in partitions:  # captum's NoiseTunnel._add_noise_to_input, draw for draw
                noise = torch.normal(0, torch.tensor(stdevs[i], device=x.device).repeat((size, *x.shape[1:])))
                pending.append((i, x[i : i + 1].repeat_interleave(size, dim=0) + noise))
        queued = sum(c.shape[0] for _, c in pending)
        if queued >= ctx.pass_batch:
            attribute_pending(queued - queued % ctx.pass_batch)
    if pending:
        attribute_pending(sum(c.shape[0] for _, c in pending))
    out = []
    for per_sample in grads:
        copies = torch.cat(per_sample)
        total = total_sq = None
        for part in copies.split(partitions):  # NoiseTunnel._update_sum_attribution_and_sq, partition by partition
            part_sum, part_sq = part.sum(dim=0), torch.sum(torch.pow(part, 2), dim=0)
            total = part_sum if total is None else total + part_sum
            total_sq = part_sq if total_sq is None else total_sq + part_sq
        mean, mean_sq = total * 1 / samples, total_sq * 1 / samples
        out.append({"smoothgrad": mean, "smoothgrad_sq": mean_sq, "vargrad": mean_sq - mean * mean}[nt_type])
    return torch.stack(out)

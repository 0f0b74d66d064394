"""Batched forward passes over perturbed inputs: the hot path of every benchmark.

Perturbation metrics need many passes per sample (one per deletion step, per
occluded patch set, ...). Calling the model once per sample and step wastes most
of each batch; the engine instead streams the flat sequence of (sample, step)
pairs into full batches *across* samples and steps, so a run stays near the
forward-pass floor ``passes / throughput at a full batch`` whatever the number of
steps per sample. Perturbed inputs are built on the device by a vectorised
callback, under ``torch.inference_mode()``, and never round-trip through numpy.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from xaibench.contract.outputs import one_logit, probability_scale

#: Builds the perturbed inputs for a chunk: (sample_idx (B,), step_idx (B,)) -> (B, C, *spatial).
Perturb = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

OUTPUTS = ("prob", "logit")

#: Default memory budget for one evaluation batch's activations on the CPU.
CPU_BUDGET_BYTES = 1 << 30
#: Fraction of the free device memory one evaluation batch may use on CUDA.
CUDA_BUDGET_FRACTION = 0.5
MAX_AUTO_BATCH = 1024


def activation_bytes_per_sample(model: nn.Module, sample: torch.Tensor) -> int:
    """Bytes of every module output for one input, measured with forward hooks.

    The sum over all module outputs over-counts (outputs freed during the pass are
    included), which is the safe side for a batch-size budget.
    """
    total = 0

    def hook(_module: nn.Module, _inputs: object, output: object) -> None:
        nonlocal total
        for t in output if isinstance(output, (tuple, list)) else (output,):
            if isinstance(t, torch.Tensor):
                total += t.numel() * t.element_size()

    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    try:
        with torch.inference_mode():
            model(sample[:1])
    finally:
        for h in handles:
            h.remove()
    return max(total, sample[:1].numel() * sample.element_size())


def auto_batch_size(model: nn.Module, sample: torch.Tensor, device: torch.device | str,
                    budget_bytes: int | None = None) -> int:
    """The largest batch whose activations fit the memory budget (a power of two, at most 1024).

    The budget is 1 GiB on the CPU and half the free memory on CUDA unless given.
    A user's ``--batch-size`` always wins over this estimate.
    """
    device = torch.device(device)
    if budget_bytes is None:
        if device.type == "cuda":
            free, _total = torch.cuda.mem_get_info(device)
            budget_bytes = int(free * CUDA_BUDGET_FRACTION)
        else:
            budget_bytes = CPU_BUDGET_BYTES
    per_sample = activation_bytes_per_sample(model, sample.to(device))
    fit = max(1, budget_bytes // per_sample)
    return int(min(MAX_AUTO_BATCH, 1 << (int(fit).bit_length() - 1)))


def select_output(logits: torch.Tensor, target: torch.Tensor, output: str, scale: float) -> torch.Tensor:
    """The scalar each metric tracks: the target class's probability ``softmax(scale * logits)`` or its logit.

    ``scale`` is the model's :func:`xaibench.contract.outputs.probability_scale` (1/2 for a one-logit model, whose
    outputs ``[-z, z]`` give ``sigmoid(z)`` and ``1 - sigmoid(z)``; 1 otherwise): plugins read it through
    :meth:`Engine.select`, which knows the model."""
    if output == "prob":
        return torch.softmax(logits.float() * scale, dim=1).gather(1, target[:, None])[:, 0]
    if output == "logit":
        return logits.float().gather(1, target[:, None])[:, 0]
    raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")


class Engine:
    """Runs a model in evaluation mode on full batches, on one device.

    On CUDA, 4D inputs go channels-last (faster convolutions on tensor cores) and
    ``autocast`` optionally runs the passes in bfloat16; scores come back float32.
    """

    def __init__(self, model: nn.Module, device: torch.device | str = "cpu", batch_size: int = 64,
                 autocast: bool = False) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be positive")
        self.model = model
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.autocast = autocast and self.device.type == "cuda"
        self.channels_last = self.device.type == "cuda"
        if self.channels_last:
            model.to(memory_format=torch.channels_last)  # layout only: parameter values are unchanged
        #: Forward passes run so far (per input, not per batch); benchmarks read it.
        self.passes = 0
        #: The model's :func:`~xaibench.contract.outputs.probability_scale`: probabilities are ``softmax(scale * logits)``.
        self.probability_scale = probability_scale(model)
        #: The model is a one-logit model's adapter (:func:`~xaibench.contract.outputs.one_logit`): its logits are ``[-z, z]``.
        self.one_logit = one_logit(model)

    def select(self, logits: torch.Tensor, target: torch.Tensor, output: str = "prob") -> torch.Tensor:
        """``(N,)`` target-class probabilities (or logits) of this engine's model from its ``(N, K)`` ``logits``
        (such as a metric's ``base_logits``): :func:`select_output` with the model's probability scale."""
        return select_output(logits, target.to(logits.device), output, self.probability_scale)

    def own_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """The user's own logits in this engine's ``(N, K)`` ``logits``: ``(N, 1)`` ``z`` for a one-logit model
        (whose ``[-z, z]`` would count each change twice in a norm), ``logits`` itself otherwise."""
        return logits[:, 1:] if self.one_logit else logits

    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        if self.channels_last and batch.dim() == 4:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            out = self.model(batch)
        self.passes += batch.shape[0]
        return out.float()

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of ``x`` in batches of ``batch_size``; returned on the engine's device."""
        outs = []
        with torch.inference_mode():
            for start in range(0, x.shape[0], self.batch_size):
                outs.append(self._forward(x[start : start + self.batch_size].to(self.device, non_blocking=True)))
        return torch.cat(outs) if outs else torch.empty(0, device=self.device)

    def scores(self, x: torch.Tensor, target: torch.Tensor, output: str = "prob") -> torch.Tensor:
        """Target-class probability (or logit) of each input: shape ``(N,)``."""
        return self.select(self.logits(x), target, output)

    def perturbed_scores(
        self,
        perturb: Perturb,
        n_samples: int,
        n_steps: int,
        target: torch.Tensor,
        output: str = "prob",
    ) -> torch.Tensor:
        """Scores of ``n_samples * n_steps`` perturbed inputs, shape ``(n_samples, n_steps)``.

        The pairs are enumerated sample-major and cut into chunks of exactly
        ``batch_size`` (the last may be shorter), so batches stay full even when
        a sample has fewer steps than a batch holds.
        """
        total = n_samples * n_steps
        out = torch.empty(total, device=self.device)
        target = target.to(self.device)
        with torch.inference_mode():
            for start in range(0, total, self.batch_size):
                flat = torch.arange(start, min(start + self.batch_size, total), device=self.device)
                sample_idx, step_idx = flat // n_steps, flat % n_steps
                logits = self._forward(perturb(sample_idx, step_idx))
                out[start : start + flat.shape[0]] = self.select(logits, target[sample_idx], output)
        return out.view(n_samples, n_steps)

    def masked_score_sum(self, x: torch.Tensor, masks: Callable[[torch.Tensor], torch.Tensor], sample: torch.Tensor,
                         row: torch.Tensor, n_rows: int, target: torch.Tensor, output: str = "prob") -> torch.Tensor:
        """``S[r] = sum over pairs p with row[p] == r of f(x[sample[p]] * M_p) * M_p``: ``(n_rows, *spatial)``.

        The saliency of RISE and SISE (Petsiuk et al. 2018, Eq. 3; Sattarzadeh et al. 2021, Sec. 3.4).
        ``masks(idx)`` builds ``M_p`` ``(B, *spatial)`` for a chunk of pair indices ``idx`` ``(B,)`` on the
        device; ``sample`` ``(P,)`` names each pair's input, ``row`` ``(P,)`` its output row; ``f`` is the
        softmax probability (or logit) of ``target[sample[p]]``. The pairs go through the model in batches of
        exactly ``batch_size`` across samples (the last may be shorter), and each chunk's masks are built once,
        for its pass and its sum; every row sums its pairs in pair order, whatever the batch size.
        """
        spatial = tuple(x.shape[2:])
        out = torch.zeros((n_rows, *spatial), device=self.device)
        total = int(sample.numel())
        target = target.to(self.device)
        with torch.inference_mode():
            for start in range(0, total, self.batch_size):
                idx = torch.arange(start, min(start + self.batch_size, total), device=self.device)
                m = masks(idx)
                si = sample[idx]
                scores = self.select(self._forward(x[si] * m.unsqueeze(1)), target[si], output)
                out.index_add_(0, row[idx], scores.reshape((-1,) + (1,) * len(spatial)) * m)
        return out


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

#: Builds the perturbed inputs for a chunk: (sample_idx (B,), step_idx (B,)) -> (B, C, *spatial).
Perturb = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

OUTPUTS = ("prob", "logit")


def select_output(logits: torch.Tensor, target: torch.Tensor, output: str) -> torch.Tensor:
    """The scalar each metric tracks: softmax probability or logit of the target class."""
    if output == "prob":
        return torch.softmax(logits.float(), dim=1).gather(1, target[:, None])[:, 0]
    if output == "logit":
        return logits.float().gather(1, target[:, None])[:, 0]
    raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")


class Engine:
    """Runs a model in evaluation mode on full batches, on one device."""

    def __init__(self, model: nn.Module, device: torch.device | str = "cpu", batch_size: int = 64) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be positive")
        self.model = model
        self.device = torch.device(device)
        self.batch_size = batch_size
        #: Forward passes run so far (per input, not per batch); benchmarks read it.
        self.passes = 0

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of ``x`` in batches of ``batch_size``; returned on the engine's device."""
        outs = []
        with torch.inference_mode():
            for start in range(0, x.shape[0], self.batch_size):
                chunk = x[start : start + self.batch_size].to(self.device, non_blocking=True)
                outs.append(self.model(chunk).float())
                self.passes += chunk.shape[0]
        return torch.cat(outs) if outs else torch.empty(0, device=self.device)

    def scores(self, x: torch.Tensor, target: torch.Tensor, output: str = "prob") -> torch.Tensor:
        """Target-class probability (or logit) of each input: shape ``(N,)``."""
        return select_output(self.logits(x), target.to(self.device), output)

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
                batch = perturb(sample_idx, step_idx)
                logits = self.model(batch)
                self.passes += batch.shape[0]
                out[start : start + flat.shape[0]] = select_output(logits, target[sample_idx], output)
        return out.view(n_samples, n_steps)

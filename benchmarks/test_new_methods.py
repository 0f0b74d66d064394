"""Benchmark: the noise tunnels and the superpixel methods against their peers on equal work, and their floors.

SmoothGrad (``smoothgrad``, 50 noisy copies, the published default) against captum's
``NoiseTunnel(Saliency)`` called directly, sample by sample with the same draws: the images both
sides pass through the model are counted and must match. KernelSHAP against captum's
``KernelShap`` with the same SLIC mask, likewise. Each is also reported against its floor:
the same number of forward+backward (SmoothGrad) or forward (KernelSHAP) passes at a full batch.
medical's added cost: SmoothGrad's and Input x Gradient's maps over integrated gradients' (32 steps),
on the suite's model and input size.
"""
from __future__ import annotations

import torch
from conftest import CountingModel, interleaved_ratio, median_time, report

from xaibench.contract.plugins import load_harness
from xaibench.contract.specs import MethodContext
from xaibench.authoring.testing import one_thread, tiny_model

HARNESS = load_harness()
N, SIZE, BATCH = 8, 64, 64


def _explain(name: str, model: torch.nn.Module, x: torch.Tensor, target: torch.Tensor, **params: object) -> None:
    spec = HARNESS.methods.get(name)
    ctx = MethodContext(layer=None, batch_size=BATCH, sample_seeds=tuple(range(x.shape[0])),
                        data_mean=x.mean(dim=(0, 2, 3)))
    with torch.enable_grad():
        spec.explain(model, x, target, ctx, **{**spec.defaults, **params})


def test_smoothgrad_vs_captum_noise_tunnel(benchmark) -> None:  # type: ignore[no-untyped-def]
    from captum.attr import NoiseTunnel, Saliency

    model = CountingModel(tiny_model("image", in_channels=1))
    x, target = torch.rand(N, 1, SIZE, SIZE), torch.arange(N) % 3

    def ours() -> None:
        _explain("smoothgrad", model, x, target)

    def theirs() -> None:
        for i in range(N):
            torch.manual_seed(i)
            sigma = 0.15 * float(x[i].max() - x[i].min())
            NoiseTunnel(Saliency(model)).attribute(x[i : i + 1], nt_type="smoothgrad", nt_samples=50, stdevs=sigma,
                                                   nt_samples_batch_size=BATCH, target=int(target[i]), abs=False)

    def floor() -> None:
        batch = x.repeat(50, 1, 1, 1)[:BATCH].requires_grad_(True)
        for _ in range(N * 50 // BATCH):
            model(batch)[:, 0].sum().backward()

    with one_thread():
        assert model.count(ours) == model.count(theirs) == N * 50
        ratio = interleaved_ratio(benchmark, ours, theirs, rounds=3)
        report("smoothgrad (50 samples), 8 x 64x64", "captum NoiseTunnel(Saliency) / ours", ratio, "~1 (same calls)")
        report("smoothgrad (50 samples), 8 x 64x64", "ours / forward+backward floor",
               benchmark.stats.stats.median / median_time(floor, 3), "~1 (one pass per noisy copy)")


def test_kernel_shap_vs_captum(benchmark) -> None:  # type: ignore[no-untyped-def]
    from captum.attr import KernelShap
    from xaibench_captum.superpixels import slic_segments

    model = CountingModel(tiny_model("image", in_channels=1))
    x, target = torch.rand(4, 1, 32, 32), torch.arange(4) % 3
    segments = slic_segments(x, 25, 10.0)

    def ours() -> None:
        _explain("kernel-shap", model, x, target, n_samples=200, n_segments=25)

    def theirs() -> None:
        for i in range(4):
            torch.manual_seed(i)
            KernelShap(model).attribute(x[i : i + 1], baselines=0.0, target=int(target[i]),
                                        feature_mask=segments[i][None, None], n_samples=200,
                                        perturbations_per_eval=BATCH)

    def floor() -> None:
        with torch.no_grad():
            for _ in range(4 * 200 // BATCH + 1):
                model(x.repeat(BATCH // 4, 1, 1, 1))

    with one_thread():
        assert model.count(ours) == model.count(theirs)
        ratio = interleaved_ratio(benchmark, ours, theirs, rounds=3)
        report("kernel-shap (200 coalitions), 4 x 32x32", "captum KernelShap / ours", ratio, "~1 (same calls)")
        report("kernel-shap (200 coalitions), 4 x 32x32", "ours / forward floor",
               benchmark.stats.stats.median / median_time(floor, 3), "> 1: SLIC and the regression")


def test_medical_additions_vs_integrated_gradients(benchmark) -> None:  # type: ignore[no-untyped-def]
    """medical's new rows cost their maps plus one row of metrics each; the maps against IG's (32 steps)."""
    model = load_harness().models.get("small-cnn").build(num_classes=2, in_channels=1, modality="image").eval()
    x, target = torch.rand(N, 1, SIZE, SIZE), torch.arange(N) % 2
    with one_thread():
        ig = median_time(lambda: _explain("integrated-gradients", model, x, target), 3)
        benchmark.pedantic(lambda: _explain("smoothgrad", model, x, target), rounds=3, iterations=1)
        ixg = median_time(lambda: _explain("input-x-gradient", model, x, target), 3)
    report("medical: smoothgrad maps", "smoothgrad (50) / integrated-gradients (32)", benchmark.stats.stats.median / ig,
           "~50/32")
    report("medical: input-x-gradient maps", "input-x-gradient / integrated-gradients (32)", ixg / ig, "~1/32")

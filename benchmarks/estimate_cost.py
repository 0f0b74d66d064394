"""Estimate the time (and cost) of a large study from per-pass costs measured here.

Every method and metric costs a known number of forward and backward passes per
sample (from their default parameters at the study's input size), and almost all
of a run's time is those passes (see DESIGN.md, "Performance"). This script
measures the two per-image costs on the given device at a full batch, then prints
the study's pass counts, its time on N devices and, with a price, its cost::

    python benchmarks/estimate_cost.py --model resnet50 --size 224 --device cuda --gpus 8 --price 2.5

``docs/scaling.md`` quotes its output.
"""
from __future__ import annotations

import argparse
import time

import torch
import torchvision

#: Forward and backward passes per sample of each method at 224 px on ResNet-50 with the
#: plugins' default parameters (layer4 has 2048 channels; occlusion: window 8, stride 8).
METHODS = {
    "gradcam": (1, 1), "gradcam++": (1, 1), "hirescam": (1, 1), "xgradcam": (1, 1), "layercam": (1, 1),
    "eigencam": (1, 0), "fullgrad": (1, 1),
    "scorecam": (1 + 2048, 0), "ablationcam": (1 + 2048, 1),
    "saliency": (1, 1), "integrated-gradients": (32, 32), "gradient-shap": (16, 16), "deeplift": (2, 1),
    "occlusion": (1 + (224 // 8) ** 2, 0), "rise": (1000, 0),
}
#: Forward passes per sample and method of each metric (defaults); "mprt" re-runs the method per stage.
METRICS = {
    "dic": 1, "iic": 1, "dic-mask": 1, "iic-mask": 1, "deletion-auc": 65, "insertion-auc": 65,
    "road-morf": 9, "road-lerf": 9, "faithfulness-correlation": 64, "sensitivity-n": 33,
    "hit-rate": 0, "relevance-mass": 0, "relevance-rank": 0, "iou": 0, "mprt-spearman": "mprt",
}
MPRT_STAGES = 3


def per_image_seconds(model: torch.nn.Module, size: int, device: torch.device, batch: int) -> tuple[float, float]:
    """Seconds per image of a forward pass and of a forward + backward pass, at a full batch."""
    x = torch.rand(batch, 3, size, size, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def timed(fn, reps: int = 3) -> float:  # type: ignore[no-untyped-def]
        fn()
        sync()
        start = time.perf_counter()
        for _ in range(reps):
            fn()
        sync()
        return (time.perf_counter() - start) / (reps * batch)

    def forward() -> None:
        with torch.inference_mode():
            model(x)

    def backward() -> None:
        xi = x.clone().requires_grad_(True)
        model(xi)[:, 0].sum().backward()

    return timed(forward), timed(backward)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet50")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--images", type=int, default=50_000)
    p.add_argument("--gpus", type=int, default=8, help="devices the study is spread over")
    p.add_argument("--price", type=float, default=None, help="price per device-hour")
    args = p.parse_args()
    device = torch.device(args.device)
    model = getattr(torchvision.models, args.model)(weights=None).eval().to(device)
    fwd, fwd_bwd = per_image_seconds(model, args.size, device, args.batch)
    method_s = {m: f * fwd + b * (fwd_bwd - fwd) for m, (f, b) in METHODS.items()}
    passes = {m: f + b for m, (f, b) in METHODS.items()}
    metric_s = 0.0
    metric_passes = 0
    for m in METHODS:
        for cost in METRICS.values():
            if cost == "mprt":
                metric_s += MPRT_STAGES * method_s[m]
                metric_passes += MPRT_STAGES * passes[m]
            else:
                metric_s += cost * fwd
                metric_passes += cost
    per_sample = sum(method_s.values()) + metric_s
    total_h = per_sample * args.images / 3600
    print(f"{args.model} at {args.size}px on {device.type} ({torch.__version__}), batch {args.batch}: "
          f"forward {fwd * 1e3:.2f} ms/image, forward+backward {fwd_bwd * 1e3:.2f} ms/image")
    print(f"per sample: methods {sum(passes.values())} passes ({sum(method_s.values()):.1f} s), "
          f"metrics {metric_passes} passes ({metric_s:.1f} s)")
    print(f"{args.images} images x {len(METHODS)} methods x {len(METRICS)} metrics: {total_h:,.0f} device-hours; "
          f"{total_h / args.gpus:,.1f} h on {args.gpus} devices" +
          (f"; {total_h * args.price:,.0f} at {args.price}/device-hour" if args.price else ""))
    top = sorted(((s * args.images / 3600, m) for m, s in method_s.items()), reverse=True)[:5]
    print("largest method costs (device-hours, explanation only): " + ", ".join(f"{m} {h:,.0f}" for h, m in top))


if __name__ == "__main__":
    main()

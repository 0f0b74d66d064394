"""The full metric set, profiled: every built-in method and metric on an image folder with masks.

A synthetic 3-class image folder (the lesion generator's normal / benign / malignant images with
their exact masks, written as ``<class>/<i>.png`` + ``<i>_mask.png``) is run through the runner as
a user's folder would be (the ``imagefolder`` dataset, the small CNN trained by the harness), with
every registered method and metric. Each method's maps and each metric cell are timed, and the
model's forward passes are counted while they run (a global forward pre-hook on the small CNN,
eval mode only, so the training of the label-randomized twin is not counted; a forward pass with
gradients enabled counts as a forward + backward pass). The floor of a cell is its passes at the
least per-image cost over batch sizes 4 to 128 (:func:`conftest.floor_per_image`), measured on the
same model in the same run: not the batch the engine picks by throughput (:mod:`xaibench.scoring.throughput`),
which the ratio judges along with the rest; the ratio is the
cell's seconds over its floor. The table groups metrics by family (the module of their score).

Two sizes. By default, to run in minutes on two shared cores: 24 images at 64 px (12 scored), step,
draw and mask counts reduced (:data:`REDUCED`), every method's maps (scored by ``sparseness``) and
every metric on the maps of :data:`SCORED_BY_ALL` only (a metric's passes depend on the method only
where it re-runs it: robustness and randomization). With ``XAIBENCH_FULL_METRIC_SET=1`` the issue's
96 images at 128 px (32 scored: a suite's default `samples: 32`), every method x every metric, every default parameter (hours on a
CPU: every re-explaining metric re-runs KernelSHAP, LIME and RISE; 2,196 cells). ``XAIBENCH_FULL_METRIC_SET=size``
runs the issue's size and default parameters with the reduced run's design (about an hour on one core)::

    OMP_NUM_THREADS=1 python -m pytest benchmarks/test_full_metric_set.py -s -p no:cacheprovider
    OMP_NUM_THREADS=1 XAIBENCH_FULL_METRIC_SET=size python -m pytest benchmarks/test_full_metric_set.py -s -p no:cacheprovider
    XAIBENCH_FULL_METRIC_SET=1 python -m pytest benchmarks/test_full_metric_set.py -s -p no:cacheprovider

``XAIBENCH_PROFILE=1`` adds, for every family whose non-pass time exceeds 0.2x its floor, the
three functions with the most own time under its score calls (cProfile; it slows Python code down).
"""
from __future__ import annotations

import cProfile
import inspect
import os
import pstats
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from conftest import floor_per_image, report
from PIL import Image

from xaibench.running.execution import Execution
from xaibench.contract.plugins import load_harness
from xaibench.running.runner import RunOptions, Runner
from xaibench.storage.store import Store
from xaibench.suites.suite import load_suite
from xaibench_datasets import synthetic
from xaibench_models.small_cnn import SmallCNN, build_small_cnn

FULL = os.environ.get("XAIBENCH_FULL_METRIC_SET") == "1"
#: The issue's size and every default parameter, with the reduced run's design (every method's maps, every metric
#: on the maps of SCORED_BY_ALL): the full run's per-family costs in about an hour on one CPU core.
FULL_SIZE = FULL or os.environ.get("XAIBENCH_FULL_METRIC_SET") == "size"
PROFILE = os.environ.get("XAIBENCH_PROFILE") == "1"
IMAGES, SIZE, TEST = (96, 128, 0.5) if FULL_SIZE else (24, 64, 0.5)
#: The methods whose maps every metric scores in the reduced run: a CAM and a gradient method.
SCORED_BY_ALL = ("gradcam", "saliency")
#: Parameters of the reduced run (the full run uses every default); methods-all's reductions.
REDUCED: dict[str, dict[str, Any]] = {
    "integrated-gradients": {"n_steps": 16}, "gradient-shap": {"n_samples": 8}, "rise": {"n_masks": 500},
    "deletion-auc": {"steps": 16}, "insertion-auc": {"steps": 16}, "srg": {"steps": 16}, "irof": {"n_segments": 50},
    "road-morf": {"fractions": [0.2, 0.5, 0.8]}, "road-lerf": {"fractions": [0.2, 0.5, 0.8]},
    "sensitivity-n": {"sets": 16}, "faithfulness-correlation": {"runs": 16}, "infidelity": {"runs": 8},
    **{m: {"draws": 3} for m in ("max-sensitivity", "avg-sensitivity", "local-lipschitz", "relative-input-stability",
                                 "relative-representation-stability", "relative-output-stability", "smprt")},
    "mprt-spearman": {"steps": 1}, "mprt-ssim": {"steps": 1},
    # issue 35: methods-all's reductions
    "faithfulness-estimate": {"steps": 16}, "monotonicity-arya": {"steps": 8},
    "monotonicity-correlation": {"steps": 8, "draws": 2}, "continuity": {"shifts": [2, 4]}, "non-sensitivity": {"patch": 8},
}


def _image_folder(root: Path) -> None:
    data = synthetic.generate(IMAGES, SIZE, seed=0)
    for i, (x, y, mask) in enumerate(zip(data["x"], data["y"], data["masks"])):
        folder = root / "folder" / synthetic.CLASS_NAMES[int(y)]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.round(x[0] * 255).astype(np.uint8)).save(folder / f"{i:03d}.png")
        Image.fromarray(mask.astype(np.uint8) * 255).save(folder / f"{i:03d}_mask.png")


#: Parameters a method cannot run without, in both sizes: the input box of the z^B rule (the images are in [0, 1]).
REQUIRED: dict[str, dict[str, Any]] = {"lrp-epsilon-gamma-box": {"low": 0, "high": 1}}


def _entry(name: str) -> str:
    params = {**REQUIRED.get(name, {}), **({} if FULL_SIZE else REDUCED.get(name, {}))}
    return f"  - {{name: {name}, params: {params!r}}}\n" if params else f"  - {name}\n"


def _per_image_seconds(device: str) -> tuple[float, float, int, int]:
    """Seconds per image of a forward and of a forward + backward pass of the suite's model at their best batch
    sizes (:func:`conftest.floor_per_image`), and those sizes."""
    model = build_small_cnn(3, 1, "image").eval().to(device)
    x = torch.rand(1, 1, SIZE, SIZE, device=device)
    (forward, f_batch), (backward, b_batch) = (floor_per_image(model, x, device, grad) for grad in (False, True))
    return forward, backward, f_batch, b_batch


class Meter:
    """Who is running (a method's maps or a metric cell) and the passes and seconds booked to each."""

    def __init__(self) -> None:
        self.current: tuple[str, str] | None = None
        self.forward: dict[tuple[str, str], int] = defaultdict(int)
        self.backward: dict[tuple[str, str], int] = defaultdict(int)
        self.seconds: dict[tuple[str, str], float] = defaultdict(float)
        self.profiles: dict[str, cProfile.Profile] = defaultdict(cProfile.Profile)

    def count(self, module: torch.nn.Module, args: tuple[Any, ...]) -> None:
        if self.current is not None and isinstance(module, SmallCNN) and not module.training:
            self.forward[self.current] += int(args[0].shape[0])
            if torch.is_grad_enabled():
                self.backward[self.current] += int(args[0].shape[0])

    def booked(self, who: tuple[str, str], call: Any, profile: str | None = None) -> Any:
        outer, self.current = self.current, (who if self.current is None else self.current)
        profiler = self.profiles[profile] if profile and PROFILE and outer is None else None
        start = time.perf_counter()
        try:
            if profiler is not None:
                profiler.enable()
            return call()
        finally:
            if profiler is not None:
                profiler.disable()
            if outer is None:
                self.seconds[who] += time.perf_counter() - start
            self.current = outer


def test_full_metric_set_per_family(tmp_path: Path, monkeypatch: Any, device: str = "cpu") -> None:
    device = "cuda" if FULL and torch.cuda.is_available() else device
    _image_folder(tmp_path)
    harness = load_harness()
    methods = [r.spec.name for r in harness.methods if not r.spec.requires_model]
    metrics = [r.spec.name for r in harness.metrics]
    runs = [(methods, metrics)] if FULL else [(methods, ["sparseness"]), (list(SCORED_BY_ALL), metrics)]
    meter = Meter()
    family = {r.spec.name: inspect.unwrap(r.spec.score).__module__.rsplit(".", 1)[-1] for r in harness.metrics}
    score, explain = Execution.score, Execution.explain

    def timed_score(self: Execution, g: Any, c: Any, *args: Any, **kwargs: Any) -> Any:
        trained = self.models.training_seconds
        result = meter.booked(("metric", c.metric.spec.name), lambda: score(self, g, c, *args, **kwargs),
                              family[c.metric.spec.name])
        meter.seconds[("metric", c.metric.spec.name)] -= self.models.training_seconds - trained
        return result

    scored: list[int] = []

    def timed_explain(self: Execution, g: Any, me: Any, *args: Any, **kwargs: Any) -> Any:
        scored.append(len(g.samples))
        return meter.booked(("method", me.spec.name), lambda: explain(self, g, me, *args, **kwargs))

    monkeypatch.setattr(Execution, "score", timed_score)
    monkeypatch.setattr(Execution, "explain", timed_explain)
    floors = [_per_image_seconds(device)]  # timed before and after the run: their mean counts
    handle = torch.nn.modules.module.register_module_forward_pre_hook(meter.count)
    failed = []
    try:
        for k, (run_methods, run_metrics) in enumerate(runs):
            suite = tmp_path / f"full{k}.yaml"  # the same dataset and model: trained once, then cached
            suite.write_text(
                f"name: full-metric-set\nseed: 0\nimage_size: {SIZE}\ntarget: predicted\nbatch_size: 64\n"
                f"datasets:\n  - {{name: imagefolder, params: {{path: folder, val: 0.1, test: {TEST}}}}}\n"
                "models:\n  - {name: small-cnn, train: {epochs: 2, min_epochs: 2, patience: 0}}\n"
                "methods:\n" + "".join(map(_entry, run_methods)) + "metrics:\n" + "".join(map(_entry, run_metrics)))
            with Store(tmp_path / "r.sqlite") as store:
                failed += Runner(harness, load_suite(suite), store,
                                 RunOptions(progress=False, home=tmp_path / "home", data_root=str(tmp_path),
                                            device=device)).run().failed
    finally:
        handle.remove()
    floors.append(_per_image_seconds(device))
    t_forward, t_backward = (sum(f[k] for f in floors) / len(floors) for k in (0, 1))
    floor_batch, backward_batch = floors[-1][2:]
    samples = min(scored)  # the maps' calls; a metric's re-explanations hold k copies of the samples
    rows = defaultdict(lambda: [0, 0, 0.0, 0])  # family -> forward, backward images, seconds, cells
    for (kind, name), seconds in meter.seconds.items():
        key = f"method {name}" if kind == "method" else family[name]
        row = rows[key]
        row[0] += meter.forward[(kind, name)]
        row[1] += meter.backward[(kind, name)]
        row[2] += seconds
        row[3] += 1
    print(f"\n{IMAGES} images at {SIZE} px, {samples} scored, {len(methods)} methods x {len(metrics)} metrics on "
          f"{device}; floor (mean of before and after the run: "
          f"{', '.join(f'{f[0] * 1e3:.2f}' for f in floors)} ms): forward {t_forward * 1e3:.2f} ms/image (best at "
          f"batch {floor_batch}), forward + backward {t_backward * 1e3:.2f} ms/image (best at batch {backward_batch}); "
          f"{len(failed)} failed cells; load average {os.getloadavg()[0]:.1f}")
    print("| family or method | metrics | passes per sample (forward / with backward) | seconds | floor (s) | ratio to floor |")
    print("|---|---|---|---|---|---|")
    for key, (fwd, bwd, seconds, cells) in sorted(rows.items(), key=lambda kv: -kv[1][2]):
        floor = fwd * t_forward + bwd * (t_backward - t_forward)
        ratio = seconds / floor if floor > 0 else float("inf")
        print(f"| {key} | {cells} | {fwd / samples:.0f} / {bwd / samples:.0f} | {seconds:.2f} | {floor:.2f} | "
              f"{'no passes' if floor == 0 else f'{ratio:.2f}'} |")
        if not key.startswith("method"):
            report(f"full metric set: {key}", "seconds / pass floor", ratio, "<= 1.2")
        if PROFILE and key in meter.profiles and (floor == 0 or ratio > 1.2):
            stats = pstats.Stats(meter.profiles[key]).sort_stats("tottime")
            top = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:3]  # type: ignore[attr-defined]
            print("    top own time: " + "; ".join(f"{Path(f).name}:{line} {fn} {tt:.2f} s"
                                                      for (f, line, fn), (_, _, tt, _, _) in top))
    for line in failed:
        print("failed:", line.splitlines()[0])

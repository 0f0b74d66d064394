"""Figures: deletion/insertion curves (analytic), PNG writers, and the figure step of a tiny real run."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from conftest import TINY_SUITE
from xaibench import hookimpl, leaderboard
from xaibench.figures import charts as figures, overlay
from xaibench.api.cli import main
from xaibench.scoring.curves import perturbation_curve
from xaibench.scoring.engine import Engine
from xaibench.scoring.kernels import auc
from xaibench.base.errors import XaibenchError
from xaibench.contract.plugins import load_harness
from xaibench.running.runner import RunOptions, Runner
from xaibench.contract.specs import MethodSpec
from xaibench.storage.store import Store
from xaibench.suites.suite import load_suite

MAX_BYTES = 300_000


class Explodes:
    """A method plugin that always raises."""

    @hookimpl
    def xaibench_register_methods(self, register):  # type: ignore[no-untyped-def]
        def explode(model, x, target, ctx):  # type: ignore[no-untyped-def]
            raise RuntimeError("boom")

        register(MethodSpec(name="explodes", explain=explode, modalities=frozenset({"image"}), description="raises"))


class ClassOneOnly:
    """A method plugin whose map is the input's first channel for class 1 and all zeros (constant) for class 0."""

    @hookimpl
    def xaibench_register_methods(self, register):  # type: ignore[no-untyped-def]
        def explain(model, x, target, ctx):  # type: ignore[no-untyped-def]
            return x[:, 0] * (target == 1).float()[:, None, None]

        register(MethodSpec(name="class-one-only", explain=explain, modalities=frozenset({"image"}),
                            description="constant on class 0"))


class SumLogit(nn.Module):
    """Logit of class 1 = the sum of the input: a curve point is the sum of what is left."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.flatten(1).sum(1)
        return torch.stack([torch.zeros_like(s), s], dim=1)


def test_deletion_and_insertion_curves_are_exact_on_a_linear_model() -> None:
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    engine = Engine(SumLogit(), batch_size=3)  # batches cut across steps
    target, canvas = torch.tensor([1]), torch.zeros(1, 1, 1, 1)
    deletion = perturbation_curve(engine, x, target, x[:, 0], "deletion", canvas, steps=4, output="logit")
    insertion = perturbation_curve(engine, x, target, x[:, 0], "insertion", canvas, steps=4, output="logit")
    assert deletion.tolist() == [[10.0, 6.0, 3.0, 1.0, 0.0]]  # the most salient (largest) pixel goes first
    assert insertion.tolist() == [[0.0, 4.0, 7.0, 9.0, 10.0]]
    half = perturbation_curve(engine, x, target, x[:, 0], "deletion", canvas, steps=2, output="logit")
    assert half.tolist() == [[10.0, 3.0, 0.0]]
    with pytest.raises(ValueError, match="does not match inputs"):
        perturbation_curve(engine, x, target, x[:, 0, 0], "deletion", canvas, steps=2)
    with pytest.raises(ValueError, match="mode must be"):
        perturbation_curve(engine, x, target, x[:, 0], "both", canvas, steps=2)


def test_heatmap_is_small_and_byte_identical(tmp_path: Path) -> None:
    tau = np.array([[1.0, -0.4, np.nan], [-0.4, 1.0, 0.2], [np.nan, 0.2, 1.0]])
    a = figures.agreement_heatmap(tau, ["dic", "iic", "hit-rate"], "ds × net", tmp_path / "a.png")
    b = figures.agreement_heatmap(tau, ["dic", "iic", "hit-rate"], "ds × net", tmp_path / "b.png")
    assert a.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and a.read_bytes() == b.read_bytes()
    assert a.stat().st_size < MAX_BYTES
    with pytest.raises(ValueError, match="tau must be"):
        figures.agreement_heatmap(tau, ["dic"], "t", tmp_path / "c.png")


def test_gallery_and_curve_figures_for_images_and_signals(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    image = rng.random((2, 3, 16, 16)).astype(np.float32)  # RGB inputs
    masks = np.zeros((2, 16, 16), dtype=bool)
    masks[:, 4:9, 4:9] = True
    maps = {"a": rng.random((2, 16, 16)), "b": -rng.random((2, 16, 16))}
    path = figures.gallery(image, masks, maps, ["s0", "s1"], ["y=0", "y=1"], "img", tmp_path / "g.png")
    signal = rng.random((2, 1, 40)).astype(np.float32)
    smask = np.zeros((2, 40), dtype=bool)
    smask[:, 10:15] = True
    spath = figures.gallery(signal, smask, {"a": rng.random((2, 40))}, ["t0", "t1"], ["y=0", "y=1"], "sig",
                            tmp_path / "s.png")
    panels = [figures.CurvePanel(f"{m}-auc: steps=20", m, m == "insertion", {"a": rng.random((3, 21)),
                                                                          "b": rng.random((3, 21))})
              for m in ("deletion", "insertion")]
    cpath = figures.curve_figure(panels, "img", tmp_path / "c.png", note="test")
    for p in (path, spath, cpath):
        assert 1_000 < p.stat().st_size < MAX_BYTES
    assert figures.figure_path("my suite", "ds/1", "net", "gallery") == "my-suite/ds-1--net--gallery.png"
    assert figures._runs(np.array([0, 1, 1, 0, 1], dtype=bool)) == [(1, 3), (4, 5)]


def test_curve_figure_averages_every_scored_sample(tmp_path: Path, tiny_plugin, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The legend's AUC of a curve metric in the table is that cell's mean score, over all its scored samples:
    the constant maps the table scores NaN are NaN rows of the figure's curves, left out of its mean."""
    suite_path = tmp_path / "suite.yaml"
    suite_path.write_text(TINY_SUITE.replace("datasets: [tiny]", "datasets: [{name: tiny, params: {n_test: 40}}]")
                          .replace("samples: 8", "samples: 40").replace("metrics: [dic, iic, hit-rate]",
                                                                       "metrics: [deletion-auc]")
                          .replace("methods: [", "methods: [class-one-only, "))
    drawn, saved = [], []
    draw = figures.curve_figure
    monkeypatch.setattr(figures, "curve_figure", lambda panels, *a, **k: drawn.extend(panels) or draw(panels, *a, **k))
    monkeypatch.setattr(figures, "save_figure", lambda fig, path: saved.append(fig) or Path(path))  # read, not written
    with Store(tmp_path / "r.sqlite") as store:
        runner = Runner(load_harness([("tiny", tiny_plugin), ("one", ClassOneOnly())]), load_suite(suite_path), store,
                        RunOptions(progress=False))
        runner.run()
        figures.write_run_figures(runner, tmp_path / "lb")
        records = {r.method: r for r in leaderboard.records(store, "tiny")}
        ds = runner.datasets[0]
        class_zero = (runner.group_context(ds, runner.models[0], runner.evaluated_samples(ds)).target == 0).numpy()
    (panel,) = drawn
    legends = [t.get_text() for fig in saved for legend in fig.legends for t in legend.get_texts()]
    assert set(panel.curves) == set(records)
    assert 0 < class_zero.sum() < 40
    for method, curves in panel.curves.items():
        assert len(curves) == 40
        scored = np.isfinite(curves).all(1)
        assert list(scored) == (list(~class_zero) if method == "class-one-only" else [True] * 40)
        assert records[method].n == scored.sum()
        assert float(auc(curves[scored]).mean()) == pytest.approx(records[method].mean, rel=1e-6, abs=1e-9)
        (legend,) = [t for t in legends if t.startswith(f"{method}\n")]
        n = f" (n={scored.sum()})" if method == "class-one-only" else ""
        assert legend.endswith(f"deletion-auc {records[method].mean:.3f}{n}")


def test_run_figures_and_explain_on_a_tiny_real_run(tmp_path: Path, tiny_plugin, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    suite_path = tmp_path / "suite.yaml"
    suite_path.write_text(TINY_SUITE)
    harness = load_harness([("tiny", tiny_plugin)])
    out, store_path = tmp_path / "lb", tmp_path / "r.sqlite"
    with Store(store_path) as store:
        runner = Runner(harness, load_suite(suite_path), store, RunOptions(progress=False))
        runner.run()
        leaderboard.write(store, "tiny", out)
        written = figures.write_run_figures(runner, out)
        assert sorted(p.name for p in written) == ["tiny--tiny-cnn--curves.png", "tiny--tiny-cnn--gallery.png"]
        assert leaderboard.problems(store, "tiny", out) == []  # every linked figure exists
        first = {p: p.read_bytes() for p in written}
        assert {p: p.read_bytes() for p in figures.write_run_figures(runner, out)} == first
    for p in written:
        assert p.stat().st_size < MAX_BYTES

    monkeypatch.setattr("xaibench.api.cli.load_harness", lambda: harness)
    png = tmp_path / "one.png"
    args = ["explain", "--suite", str(suite_path), "--method", "oracle", "--sample", "tiny-test-3", "-o", str(png),
            "--store", str(store_path)]
    assert main(args) == 0 and png.stat().st_size < MAX_BYTES
    assert main(args[:5] + ["--sample", "tiny-test-99"] + args[7:]) == 2
    with Store(store_path) as store:
        runner = Runner(harness, load_suite(suite_path), store, RunOptions(progress=False))
        with pytest.raises(XaibenchError, match="method 'orcale' is not in the suite .did you mean 'oracle'"):
            overlay.explain_overlay(runner, "orcale", "tiny-test-3", tmp_path / "x.png")
        suite_path.write_text(TINY_SUITE.replace("methods: [", "methods: [explodes, "))
        broken = load_harness([("tiny", tiny_plugin), ("explodes", Explodes())])
        runner = Runner(broken, load_suite(suite_path), store, RunOptions(progress=False))
        with pytest.raises(XaibenchError, match="method 'explodes' failed on 'tiny-test-3': RuntimeError: boom"):
            overlay.explain_overlay(runner, "explodes", "tiny-test-3", tmp_path / "x.png")
        # the figure step leaves a failing method out instead of failing the run
        assert len(figures.write_run_figures(runner, out)) == 2

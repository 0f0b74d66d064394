"""Progress on every long step, as plain lines when the output is not a terminal (issue 21)."""
from __future__ import annotations

import io
import math
from pathlib import Path

import pytest
from conftest import TINY_SUITE, tiny_samples

from xaibench.base import progress
from xaibench.contract.plugins import load_harness
from xaibench.running.runner import Runner, RunOptions
from xaibench.contract.specs import TrainRecipe
from xaibench.storage.store import Store
from xaibench.suites.suite import load_suite
from xaibench.models.training import train


def test_plain_progress_prints_a_line_per_tenth_and_no_bar_frames() -> None:
    out, now = io.StringIO(), [0.0]
    bar = progress.PlainProgress(100, "suite", stream=out, clock=lambda: now[0])
    for _ in range(100):
        now[0] += 1.0
        bar.update(1)
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert len(lines) == 10  # 10, 20, ..., 100 cells; 1 s per cell never reaches LOG_EVERY between tenths
    assert lines[0] == "suite: 10/100 cells (10%), 0:00:10 elapsed, ETA 0:01:30"  # 10 s for 10 cells, 90 to go
    assert lines[-1] == "suite: 100/100 cells (100%), 0:01:40 elapsed"


def test_plain_progress_reports_slow_cells_by_time() -> None:
    out, now = io.StringIO(), [0.0]
    bar = progress.PlainProgress(1000, "s", stream=out, clock=lambda: now[0])
    now[0] = progress.LOG_EVERY + 1
    bar.update(1)  # 1 of 1000 is below a tenth, but LOG_EVERY seconds have passed
    assert out.getvalue().startswith("s: 1/1000 cells (0%)")


def test_cells_are_plain_lines_when_stderr_is_not_a_terminal() -> None:
    # pytest captures stderr, so it is not a terminal here
    assert isinstance(progress.cells(5, "x", enabled=True), progress.PlainProgress)


def test_train_reports_every_epoch_with_loss_and_validation_accuracy() -> None:
    import torch
    from conftest import TinyCNN

    seen: list[tuple[int, int, float, float]] = []
    recipe = TrainRecipe(epochs=3, batch_size=16, lr=1e-2, patience=0)
    train(TinyCNN(2, 1, "image"), tiny_samples(32, 1, "train"), tiny_samples(8, 2, "val"), recipe, 0,
          torch.device("cpu"), on_epoch=lambda *a: seen.append(a))
    assert [(e, n) for e, n, _, _ in seen] == [(1, 3), (2, 3), (3, 3)]
    assert all(math.isfinite(loss) and loss > 0 and 0 <= acc <= 1 for _, _, loss, acc in seen)
    assert seen[0][3] in {k / 8 for k in range(9)}  # an accuracy over 8 validation samples


def test_a_run_logs_epochs_and_cells_without_bar_frames(tmp_path: Path, tiny_plugin,  # type: ignore[no-untyped-def]
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "suite.yaml"
    path.write_text(TINY_SUITE)
    with Store(tmp_path / "r.sqlite") as store:
        Runner(load_harness([("tiny", tiny_plugin)]), load_suite(path), store, RunOptions(progress=True)).run()
    captured = capsys.readouterr()
    assert "training model 'tiny-cnn' on 'tiny'" in captured.out
    assert "tiny-cnn: epoch 1/" in captured.out and "validation accuracy" in captured.out
    assert "tiny: 9/9 cells (100%)" in captured.err
    assert "\r" not in captured.err and "\r" not in captured.out

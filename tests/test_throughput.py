"""The engine's batch size chosen by measured throughput (xaibench/scoring/throughput.py).

The choice is checked on a model whose cost per batch is known by construction (it advances
the calibration's clock by a fixed time per call up to 16 images, then with the square of the
batch), so the fastest size per image is 16 by hand: on streams of 32 images, 8 and 32 cost
twice as much per image. The clock is simulated, so the test is exact on a loaded machine; no
test asserts a speed of ours.
"""
from __future__ import annotations

import json
import types
from pathlib import Path

import pytest
import torch
from conftest import TINY_SUITE
from torch import nn

from xaibench.scoring import throughput
from xaibench.contract.plugins import load_harness
from xaibench.running.runner import Runner, RunOptions
from xaibench.storage.store import Store
from xaibench.suites.suite import load_suite
from xaibench.scoring.throughput import fastest_batch_size, measure_throughput, pick

CALL = 0.004  # simulated seconds one call of the sleeper takes up to 16 images


class Sleeper(nn.Module):
    """Logits of zeros, advancing ``clock`` by CALL seconds per call up to 16 images, CALL * (B / 16)**2 above."""

    def __init__(self, clock: types.SimpleNamespace, call: float = CALL, classes: int = 2) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(classes, 1))
        self.clock = clock
        self.call = call
        self.batches: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.batches.append(x.shape[0])
        self.clock.now += self.call * max(1.0, x.shape[0] / 16) ** 2
        return x.flatten(1)[:, :1] @ self.weight.T


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    """The calibration's clock, advanced by the model only."""
    state = types.SimpleNamespace(now=0.0)
    monkeypatch.setattr(throughput, "time", types.SimpleNamespace(perf_counter=lambda: state.now))
    return state


def test_pick_takes_the_smallest_size_within_the_tie_of_the_fastest() -> None:
    assert pick({4: 1.0, 8: 0.5, 16: 0.51, 32: 0.4}) == 32  # 16 is 27% slower than 32
    assert pick({4: 1.0, 8: 0.41, 16: 0.4, 32: 0.405}) == 8  # 8 is within 3% of 16
    assert pick({4: 2.0}) == 4


def test_the_fastest_size_per_image_is_chosen_under_the_memory_bound(clock: types.SimpleNamespace) -> None:
    model = Sleeper(clock)
    per_image = measure_throughput(model, torch.zeros(1, 1, 4, 4), "cpu", cap=64, budget_seconds=30)
    assert sorted(per_image) == [4, 8, 16, 32, 64]  # powers of two up to the bound, no further
    assert max(model.batches) == 64
    assert pick(per_image) == 16
    assert per_image == pytest.approx({4: CALL / 4, 8: CALL / 8, 16: CALL / 16, 32: CALL * 4 / 32, 64: CALL * 16 / 64})
    # a warm-up and a cost estimate at size 4 (a stream of 32 images: 8 calls each), then 3 rounds of streams of
    # 32 images at sizes 4, 8, 16 and 32 (8 + 4 + 2 + 1 calls) and of 64 at size 64 (1 call)
    assert len(model.batches) == 2 * 8 + 3 * (8 + 4 + 2 + 1 + 1)


def test_the_time_budget_drops_the_largest_sizes(clock: types.SimpleNamespace) -> None:
    # the cost estimate: a stream of 32 images at size 4 (8 calls of 4 ms), 1 ms per image; 3 rounds of the
    # sizes 4 to 128 stream 3 * (4 * 32 + 64 + 128) = 960 images, 0.96 s at that cost; up to 256, 1.73 s
    per_image = measure_throughput(Sleeper(clock), torch.zeros(1, 1, 4, 4), "cpu", cap=1024, budget_seconds=1.0)
    assert sorted(per_image) == [4, 8, 16, 32, 64, 128]
    # the default budget, 4 s, at a cost of 4.5 / 3264 s per image: the sizes up to 256 stream 3 * 576 images
    # (2.4 s), up to 512 3 * 1088 (4.5 s)
    per_image = measure_throughput(Sleeper(clock, call=4 * 4.5 / 3264), torch.zeros(1, 1, 4, 4), "cpu", cap=1024)
    assert sorted(per_image) == [4, 8, 16, 32, 64, 128, 256]
    # the sample's shape and range are what count: a sample of several gives the same sizes
    more = measure_throughput(Sleeper(clock, call=4 * 4.5 / 3264), torch.zeros(3, 1, 4, 4), "cpu", cap=1024)
    assert more == pytest.approx(per_image)


def test_the_choice_is_cached_by_model_input_shape_and_threads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model, sample = Sleeper(types.SimpleNamespace(now=0.0)), torch.zeros(1, 1, 4, 4)
    calls: list[int] = []

    def fake(model, sample, device, cap, autocast=False):  # type: ignore[no-untyped-def]
        calls.append(cap)
        return {4: 2.0, 8: 1.0, 16: 1.5}

    monkeypatch.setattr(throughput, "measure_throughput", fake)
    assert fastest_batch_size(model, sample, "cpu", tmp_path, budget_bytes=1 << 20) == 8
    assert fastest_batch_size(model, sample, "cpu", tmp_path, budget_bytes=1 << 20) == 8
    assert len(calls) == 1, "a second call reads the cached choice"
    (record,) = [json.loads(p.read_text()) for p in (tmp_path / "throughput").iterdir()]
    assert record["batch_size"] == 8 and record["memory_bound"] == calls[0] == 1024
    assert record["threads"] == torch.get_num_threads() and record["device"] == throughput.device_name(torch.device("cpu"))
    assert record["seconds_per_image"] == {"4": 2.0, "8": 1.0, "16": 1.5}
    fastest_batch_size(model, torch.zeros(1, 1, 8, 8), "cpu", tmp_path, budget_bytes=1 << 20)
    threads = torch.get_num_threads()
    torch.set_num_threads(threads + 1)
    try:
        fastest_batch_size(model, sample, "cpu", tmp_path, budget_bytes=1 << 20)
    finally:
        torch.set_num_threads(threads)
    fastest_batch_size(nn.Sequential(model), sample, "cpu", tmp_path, budget_bytes=1 << 20)
    fastest_batch_size(Sleeper(model.clock, classes=3), sample, "cpu", tmp_path, budget_bytes=1 << 20)
    fastest_batch_size(model, torch.zeros(1, 2, 4, 4), "cpu", tmp_path, budget_bytes=1 << 20)
    assert len(calls) == 6, "another input shape, thread count, architecture or parameter shape is calibrated anew"
    fastest_batch_size(model, sample, "cpu", tmp_path, autocast=True, budget_bytes=1 << 20)
    assert len(calls) == 6, "autocast is off on a CPU (the engine's rule): the same calibration"
    fastest_batch_size(model, sample, "cpu", None, budget_bytes=1 << 20)
    assert len(calls) == 7, "without a home nothing is cached"


def test_the_cpu_batch_is_fixed_and_memory_bound_and_cuda_is_timed(monkeypatch: pytest.MonkeyPatch) -> None:
    model, sample = Sleeper(types.SimpleNamespace(now=0.0)), torch.zeros(1, 1, 4, 4)
    timed: list[str] = []
    monkeypatch.setattr(throughput, "fastest_batch_size", lambda m, s, d, h, a: timed.append(str(d)) or 64)
    monkeypatch.setattr(throughput, "auto_batch_size", lambda m, s, d: 1024)
    assert throughput.engine_batch_size(model, sample, "cpu") == throughput.CPU_BATCH == 16
    monkeypatch.setattr(throughput, "auto_batch_size", lambda m, s, d: 4)
    assert throughput.engine_batch_size(model, sample, "cpu") == 4, "the memory bound where it holds fewer"
    assert timed == [], "a CPU's batch is never timed: the same on every machine and thread count"
    assert throughput.engine_batch_size(model, sample, "cuda:0") == 64 and timed == ["cuda:0"]


def test_the_runner_uses_the_fixed_cpu_batch_and_times_nothing(tmp_path: Path, tiny_plugin) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "suite.yaml"
    path.write_text(TINY_SUITE)
    with Store(tmp_path / "r.sqlite") as store:
        runner = Runner(load_harness([("tiny", tiny_plugin)]), load_suite(path), store,
                        RunOptions(progress=False, home=tmp_path / "home"))
        assert not runner.run().failed
    assert not (tmp_path / "home" / "throughput").exists()

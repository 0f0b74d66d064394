"""The same board on any thread count (issue 44, item 2): a suite run with 1 and with 2 threads writes the same files.

Training summed its gradients in another order on 2 threads than on 1, so the medical suite trained
other weights on a 2-core machine (accuracy 0.983 vs 0.987, other cells and ranks). The trainer now
runs on ``TrainRecipe.threads`` torch threads (1 by default); ``threads: 0`` (the count set for torch)
is the control: there the weights differ, which shows the run is large enough for the thread count
to matter. The medical suite's own comparison is ``benchmarks/test_reproducible_medical.py``.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import TinyCNN, tiny_samples

from xaibench.running import environment
from xaibench.contract.specs import TrainRecipe
from xaibench.models.training import train

SUITE = """\
name: threads
seed: 0
samples: 8
image_size: 32
batch_size: 32
datasets:
  - name: synthetic-lesions
    params: {{n_train: 96, n_val: 16, n_test: 8}}
models:
  - name: small-cnn
    params: {{width: 8, depth: 3}}
    train: {{epochs: 2, batch_size: 48, patience: 0{threads}}}
methods: [gradcam, input-x-gradient, random]
metrics: [dic, relevance-mass, deletion-auc]
"""


class ThreadsSeen(TinyCNN):
    """TinyCNN that records torch's thread count at each training pass."""

    def __init__(self) -> None:
        super().__init__(2, 1, "image")
        self.seen: set[int] = set()

    def forward(self, x):  # type: ignore[no-untyped-def]
        if self.training:
            self.seen.add(torch.get_num_threads())
        return super().forward(x)


@pytest.mark.parametrize("threads", [1, 0])
def test_the_trainer_runs_on_the_recipe_s_threads_and_restores_the_caller_s(threads: int) -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        model = ThreadsSeen()
        train(model, tiny_samples(8, 1, "train"), tiny_samples(4, 2, "val"),
              TrainRecipe(epochs=1, batch_size=4, threads=threads), 0, torch.device("cpu"))
        assert model.seen == {threads or 2} and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def _run(tmp_path: Path, name: str, threads: int, train_threads: str, command: str = "run") -> Path:
    """Run (or only train) the suite in a fresh process on ``threads`` torch and numba threads; returns its folder.

    No ``--batch-size``: the engine's batch on a CPU is fixed (``xaibench.scoring.throughput.engine_batch_size``), not
    timed, so the default run is the one that must not move.
    """
    folder = tmp_path / name
    folder.mkdir()
    (folder / "threads.yaml").write_text(SUITE.format(threads=train_threads))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "NUMBA_NUM_THREADS": str(threads),
           "XAIBENCH_HOME": str(folder / "home")}
    options = ["--no-progress", "--no-figures"] if command == "run" else []
    run = subprocess.run([sys.executable, "-m", "xaibench", command, "--suite", "threads.yaml", *options],
                         cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return folder


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    """The trained checkpoint's tensors (its file's bytes hold a serialization id that differs on every save)."""
    (path,) = (folder / "home" / "models").glob("*.pt")
    return torch.load(path, weights_only=True)


def _same(one: dict[str, torch.Tensor], two: dict[str, torch.Tensor]) -> bool:
    return one.keys() == two.keys() and all(torch.equal(one[k], two[k]) for k in one)


@pytest.mark.slow
def test_a_board_is_the_same_on_one_and_two_threads(tmp_path: Path) -> None:
    one, two = _run(tmp_path, "one", 1, ""), _run(tmp_path, "two", 2, "")
    assert _same(_weights(one), _weights(two))
    for name in ("threads.md", "threads.json", "README.md"):
        assert (one / "leaderboards" / name).read_bytes() == (two / "leaderboards" / name).read_bytes(), name
    rows = {line.split("|")[1].strip(): line.split("|")[2].strip()
            for line in (one / "leaderboards" / "threads.md").read_text().splitlines() if line.count("|") == 3}
    assert rows["training threads"] == "small-cnn: 1" and rows["CPU kernels"] == environment.cpu_kernels()


@pytest.mark.slow
def test_training_on_the_run_s_thread_count_trains_other_weights(tmp_path: Path) -> None:
    """The control: with ``train.threads: 0`` the same suite trains other weights on 1 and on 2 threads (the run
    is large enough for the thread count to matter)."""
    one, two = (_run(tmp_path, name, n, ", threads: 0", "train") for name, n in (("one", 1), ("two", 2)))
    assert not _same(_weights(one), _weights(two))


def test_the_provenance_resolves_training_on_the_run_s_threads_to_its_count() -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        assert environment.training_threads({"a": 1, "b": 0}) == {"a": 1, "b": 3}
    finally:
        torch.set_num_threads(before)


def test_the_provenance_names_the_installed_versions_of_the_libraries_that_change_scores() -> None:
    """Including cvxopt where installed (the optional extra that makes ROAD solve by CHOLMOD), absent otherwise."""
    import numba
    import numpy

    versions = environment.library_versions()
    assert versions["numpy"] == numpy.__version__ and versions["numba"] == numba.__version__
    assert set(versions) <= set(environment.LIBRARIES)
    try:
        import cvxopt
    except ImportError:
        assert "cvxopt" not in versions
    else:
        assert versions["cvxopt"] == cvxopt.__version__


CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 167
model name\t: Intel(R) Xeon(R) Processor
stepping\t: 1
cache size\t: 491520 KB
flags\t\t: fpu avx2 avx512f avx512_bf16 amx_tile

processor\t: 1
vendor_id\t: OtherVendor
model\t\t: 1
"""


def test_the_provenance_names_the_processor_not_only_its_instruction_set(tmp_path: Path) -> None:
    """Two AVX-512 machines trained other weights (the quick suite: accuracy 0.667 on one, 0.700 on the other), so
    the board's "CPU kernels" names the processor (the first one's fields) and its kernel-relevant extensions."""
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO)
    info = environment.cpuinfo(path)
    assert environment.processor(info) == "GenuineIntel family 6 model 167 stepping 1, 491520 KB cache"
    capability = torch.backends.cpu.get_cpu_capability()
    assert environment.cpu_kernels(info) == (f"{capability} (amx_tile, avx512_bf16) on GenuineIntel family 6 model "
                                             "167 stepping 1, 491520 KB cache")
    other = dict(info, model="143")
    assert environment.cpu_kernels(other) != environment.cpu_kernels(info)  # another model: another machine
    assert environment.cpu_kernels(dict(info, flags="fpu avx2 avx512f")) == (
        f"{capability} on GenuineIntel family 6 model 167 stepping 1, 491520 KB cache")
    assert environment.cpuinfo(tmp_path / "absent") == {}


def test_the_provenance_lists_every_kernel_relevant_extension_and_reads_this_machine(monkeypatch) -> None:
    info = {"vendor_id": "AuthenticAMD", "cpu family": "25", "model": "1",
            "flags": "avx512f avx_vnni avx512_vnni avx512_bf16 avx512_fp16 amx_bf16 amx_tile sse"}
    capability = torch.backends.cpu.get_cpu_capability()
    assert environment.cpu_kernels(info) == (f"{capability} (amx_tile, amx_bf16, avx512_fp16, avx512_bf16, avx512_vnni, "
                                             "avx_vnni) on AuthenticAMD family 25 model 1")
    if Path("/proc/cpuinfo").exists():
        assert environment.cpuinfo() == environment.cpuinfo(Path("/proc/cpuinfo")) != {}
        assert environment.cpu_kernels() == environment.cpu_kernels(environment.cpuinfo(Path("/proc/cpuinfo")))
    monkeypatch.setattr(environment.platform, "processor", lambda: "")
    monkeypatch.setattr(environment.platform, "machine", lambda: "arm64")
    assert environment.processor({}) == "arm64"  # no /proc/cpuinfo (macOS, Windows)
    monkeypatch.setattr(environment.platform, "processor", lambda: "i386")
    assert environment.processor({}) == "i386"
    monkeypatch.setattr(environment.platform, "processor", lambda: "")
    monkeypatch.setattr(environment.platform, "machine", lambda: "")
    assert environment.processor({}) == "unknown processor"


def test_the_provenance_names_what_could_still_change_a_board() -> None:
    for fact in ("another processor", "library versions", "a GPU", "`train.threads: 0`", "`--batch-size`",
                 "1 and 2 threads write the same medical board"):
        assert fact in environment.REPRODUCIBILITY, fact


def test_a_library_that_is_not_installed_is_left_out_and_the_others_kept(monkeypatch) -> None:
    real = environment.metadata.version

    def version(name: str) -> str:
        if name == "numba":
            raise environment.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(environment.metadata, "version", version)
    versions = environment.library_versions()
    assert "numba" not in versions
    assert {"numpy", "scipy", "captum", "grad-cam", "zennit"} <= set(versions)

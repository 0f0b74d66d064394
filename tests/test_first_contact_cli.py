"""Every command-line value is checked before anything is opened or written: one line, exit 2 (issue 21)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from xaibench.api.cli import main

BAD = [
    (["--limit", "0"], "--limit must be at least 1, got 0"),
    (["--limit", "-1"], "--limit must be at least 1, got -1"),
    (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
    (["--batch-size", "-8"], "--batch-size must be at least 1, got -8"),
    (["--device", "gpu"], "--device must be cpu, cuda, cuda:N or mps, got 'gpu'"),
    (["--device", "cuda:x"], "--device must be cpu, cuda, cuda:N or mps"),
    (["--cell-timeout", "0"], "--cell-timeout must be a positive number of seconds, got 0"),
    (["--cell-timeout", "-5"], "--cell-timeout must be a positive number of seconds, got -5"),
    (["--cell-timeout", "inf"], "--cell-timeout must be a positive number of seconds, got inf"),
    (["--workers", "0"], "--workers must be at least 1, got 0"),
    (["--address", "auto"], "--address names a Ray cluster: use it with --executor ray"),
]


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: ")
    return err[0]


@pytest.mark.parametrize("extra, message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_run_values_exit_2_with_one_line_and_no_store(extra: list[str], message: str, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "results" / "results.sqlite"
    code = main(["run", "--suite", "quick", "--store", str(store), "--out", str(tmp_path / "lb"), *extra])
    assert code == 2
    assert message in _one_error_line(capsys)
    assert not (tmp_path / "results").exists() and not (tmp_path / "lb").exists()


@pytest.mark.parametrize("command", [["train", "--suite", "quick"],
                                     ["explain", "--suite", "quick", "--method", "gradcam", "--sample", "x",
                                      "-o", "map.png"]])
def test_other_commands_check_the_device_too(command: list[str], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "results" / "results.sqlite"
    assert main([*command, "--store", str(store), "--device", "gpu"]) == 2
    assert "--device must be" in _one_error_line(capsys)
    assert not (tmp_path / "results").exists()


def test_a_suite_error_after_the_store_opened_leaves_no_empty_store(
        write_suite: Callable[[str], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = write_suite("""
        name: typo
        datasets: [synthetic-lesions]
        models: [small-cnn]
        methods: [gradcma]
        metrics: [dic]
    """)
    store = tmp_path / "fresh" / "results.sqlite"
    assert main(["run", "--suite", str(suite), "--store", str(store), "--out", str(tmp_path / "lb")]) == 2
    line = _one_error_line(capsys)
    assert f"{suite}:4: unknown method 'gradcma'" in line and "did you mean 'gradcam'" in line
    assert not (tmp_path / "fresh").exists()


def test_an_existing_store_is_kept_when_a_run_fails(write_suite: Callable[[str], Path], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from xaibench.storage.store import Store

    store = tmp_path / "results.sqlite"
    Store(store).close()
    suite = write_suite("name: t\ndatasets: [synthetic-lesions]\nmodels: [small-cnn]\nmethods: [nope]\nmetrics: [x]\n")
    assert main(["run", "--suite", str(suite), "--store", str(store)]) == 2
    capsys.readouterr()
    assert store.exists()


@pytest.mark.parametrize("train, message", [
    ("{epoch: 3}", "unknown training option 'epoch' (did you mean 'epochs'"),
    ("{epochs: 0}", "training option 'epochs' must be an integer of at least 1, got 0"),
    ("{batch_size: -2}", "training option 'batch_size' must be an integer of at least 1, got -2"),
    ("{lr: 0}", "training option 'lr' must be a positive number, got 0"),
    ("{patience: -1}", "training option 'patience' must be an integer of at least 0"),
    ("{threads: -1}", "training option 'threads' must be an integer of at least 0 (0: the thread count set for "
                      "torch), got -1"),
    ("{threads: 1.5}", "training option 'threads' must be an integer of at least 0"),
    ("{augment: [hflp]}", "unknown augmentation 'hflp' (did you mean 'hflip'"),
    ("{augment: hflip}", "training option 'augment' must be a list of names"),
])
def test_misspelled_training_options_name_file_line_and_a_suggestion(
        train: str, message: str, write_suite: Callable[[str], Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    suite = write_suite(f"""
        name: t
        datasets: [synthetic-lesions]
        models:
          - name: small-cnn
            train: {train}
        methods: [random]
        metrics: [dic]
    """)
    assert main(["run", "--suite", str(suite), "--store", str(tmp_path / "s.sqlite")]) == 2
    line = _one_error_line(capsys)
    assert f"{suite}:5: " in line and message in line, line
    assert not (tmp_path / "s.sqlite").exists()


def test_a_command_that_plans_no_run_leaves_no_store_behind(tmp_path: Path) -> None:
    """``xaibench explain`` opens the store but runs no suite: a store it created is removed again."""
    from xaibench.api.cli import _results_store
    from xaibench.storage.store import PlanRow

    fresh = tmp_path / "new" / "results.sqlite"
    with _results_store(str(fresh)) as store:
        assert fresh.exists()
    assert not fresh.exists() and not fresh.parent.exists()
    kept = tmp_path / "kept.sqlite"
    with _results_store(str(kept)) as store:
        store.put_plan("s", [PlanRow("k", "d", "m", "mk", "me", "mt", "faithfulness", True, None)], {})
    assert kept.exists()


def test_gpu_is_answered_with_cuda(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--suite", "quick", "--device", "gpu"]) == 2
    assert "got 'gpu' (did you mean cuda?)" in capsys.readouterr().err

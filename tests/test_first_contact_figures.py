"""Figures a person can read: lesion cases in galleries, no link to a figure a run could not draw,
no stale figure left behind (issue 21)."""
from __future__ import annotations

from pathlib import Path

from conftest import TINY_SUITE
from xaibench import leaderboard
from xaibench.figures import charts as figures
from xaibench.contract.plugins import load_harness
from xaibench.running.runner import RunOptions, Runner
from xaibench.storage.store import Store
from xaibench.suites.suite import load_suite


def test_gallery_shows_lesion_cases_first_and_one_normal() -> None:
    # samples 0 and 3 have no lesion: three lesion cases and the first normal one, in sample order
    assert figures.gallery_rows([False, True, True, False, True, True], 4) == [0, 1, 2, 4]
    assert figures.gallery_rows([True] * 6, 4) == [0, 1, 2, 3]  # no normal case: the first four
    assert figures.gallery_rows([False] * 3, 4) == [0, 1, 2]  # fewer samples than rows


def test_a_skipped_dataset_links_no_figures(tmp_path: Path, tiny_plugin) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "suite.yaml"
    path.write_text(TINY_SUITE.replace("datasets: [tiny]", "datasets: [tiny, {name: busi, optional: true}]"))
    with Store(tmp_path / "r.sqlite") as store:
        Runner(load_harness([("tiny", tiny_plugin)]), load_suite(path), store, RunOptions(progress=False)).run()
        text = leaderboard.render(store, "tiny")
    busi = text.split("## busi × tiny-cnn", 1)[1]
    assert "### Figures" not in busi.split("\n## ", 1)[0] and "busi--tiny-cnn" not in text
    assert "tiny/tiny--tiny-cnn--gallery.png" in text  # the dataset that ran keeps its figures


def test_prune_removes_only_figures_the_leaderboard_does_not_link(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    folder.mkdir()
    for name in ("a--m--gallery.png", "old--m--gallery.png"):
        (folder / name).write_bytes(b"png")
    markdown = "![saliency gallery: a × m](s/a--m--gallery.png)\n"
    assert figures.prune(tmp_path, "s", markdown) == [folder / "old--m--gallery.png"]
    assert sorted(p.name for p in folder.iterdir()) == ["a--m--gallery.png"]

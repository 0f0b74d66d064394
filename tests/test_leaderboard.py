"""Leaderboard rendering from a hand-built store: values, CIs, tie-aware ranks, agreement, JSON, index, --check."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from xaibench import leaderboard
from xaibench.api.cli import main
from xaibench.base.errors import XaibenchError
from xaibench.contract.plugins import load_harness
from xaibench.scoring.stats import seed_from, summarize
from xaibench.storage.store import CellResult, PlanRow, Store

N = 12
IDS = [f"s{i:02d}" for i in range(N)]
_NOISE = np.random.default_rng(1).normal(scale=0.01, size=N)

#: method -> (hit-rate scores, dic scores); None: the method's cells failed.
SCORES: dict[str, tuple[np.ndarray, np.ndarray] | None] = {
    "good": (np.r_[np.ones(N - 2), np.nan, np.nan], 5.0 + _NOISE),
    "twin": (np.r_[np.ones(N - 3), 0.0, np.nan, np.nan], 5.0 - _NOISE),
    "bad": (np.r_[np.zeros(N - 2), np.nan, np.nan], 50.0 + _NOISE),
    "broken": None,
}


def _store(path: Path, suite: str = "demo") -> Store:
    s = Store(path)
    rows = []
    for me, pair in SCORES.items():
        for k, (mt, hib) in enumerate((("hit-rate", True), ("dic", False))):
            key = f"{me}-{mt}"
            rows.append(PlanRow(key, "ds", "net", "mk", me, mt, "x", hib, None))
            if pair is None:
                failed = CellResult(key, "ds", "net", me, mt, "failed", None, None, None, 0, N, "ValueError: nope", {})
                s.put_cell(failed)
                continue
            mean, low, high, n = summarize(pair[k], seed_from(0, key), IDS)
            s.put_cell(CellResult(key, "ds", "net", me, mt, "ok", mean, low, high, n, N, None, {}), IDS, pair[k])
    rows.append(PlanRow("skip", "ds", "net", "mk", "good", "hit-rate-2", "x", True, "dataset 'ds' has no masks"))
    s.put_plan(suite, rows, {"seed": 7, "samples": N, "target": "predicted", "versions": {"torch": "x"},
                              "datasets": {"ds": {"samples": N, "modality": "image", "shape": [1, 8, 8]}},
                              "metrics": {"hit-rate": {"category": "localization", "higher_is_better": True,
                                                       "description": "a | b", "citation": "Z"}}})
    s.put_model("mk", "ds", "net", "sha", {"accuracy": 0.9, "precision": 0.8, "recall": 0.7, "f1": 0.75, "n": 20,
                                            "majority": 0.5}, {})
    return s


@pytest.fixture
def no_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI without entry-point plugins: rendering a stored suite needs none (and loads faster)."""
    monkeypatch.setattr("xaibench.api.cli.load_harness", lambda: load_harness(entry_points=False))


def _line(md: str, method: str) -> str:
    return next(line for line in md.splitlines() if line.startswith("|") and f"| {method} " in line)


def test_render_shows_values_cis_tied_ranks_and_failures(tmp_path: Path) -> None:
    with _store(tmp_path / "s.sqlite") as s:
        md = leaderboard.render(s, "demo")
    assert "| rank   | method   | hit-rate ↑" in md and "dic ↓" in md
    good, twin, bad = _line(md, "good"), _line(md, "twin"), _line(md, "bad")
    # good and twin cannot be told apart on either metric: both rank 1, marked as shared
    assert good.startswith("| 1=") and twin.startswith("| 1=") and bad.startswith("| 3 ")
    assert "**1.000 [1.000, 1.000] n=10 (1=)**" in good
    assert "(3)" in bad and "**" not in bad
    assert "**failed**" in md and "broken / dic failed: ValueError: nope" in md
    assert _line(md, "broken").startswith("| –")
    assert "n/a" in md and "dataset 'ds' has no masks" in md
    assert "accuracy 0.900" in md and "a \\| b" in md
    assert "Wilcoxon signed-rank" in md and "Holm" in md and "| seed" in md and "Samples per cell: 12." in md


def test_agreement_table_and_figure_links(tmp_path: Path) -> None:
    with _store(tmp_path / "s.sqlite") as s:
        md = leaderboard.render(s, "demo")
        (b,) = leaderboard.board(s, "demo")
    assert b.agreement_metrics == ["hit-rate", "dic"]  # hit-rate-2 has no value (skipped)
    # direction-aware: both metrics rank bad last; hit-rate puts good above twin, dic (lower is
    # better, twin's mean 4.998 < good's 5.002) twin above good: 2 concordant pairs, 1 discordant
    assert b.agreement[0, 1] == pytest.approx(1 / 3) and b.agreement[0, 1] == b.agreement[1, 0]
    assert "### Metric agreement" in md and "Tomsett et al. 2020" in md
    for kind in ("agreement", "gallery", "curves"):
        assert f"](demo/ds--net--{kind}.png)" in md


def test_outputs_are_byte_identical_for_the_same_store_content(tmp_path: Path) -> None:
    with _store(tmp_path / "a.sqlite") as a, _store(tmp_path / "b.sqlite") as b:
        assert leaderboard.render(a, "demo") == leaderboard.render(b, "demo")
        leaderboard.write(a, "demo", tmp_path / "a")
        leaderboard.write(b, "demo", tmp_path / "b")
    for name in ("demo.md", "demo.json", "README.md", "demo/ds--net--agreement.png"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_check_catches_stale_markdown_index_and_missing_figures(tmp_path: Path) -> None:
    out = tmp_path / "lb"
    with _store(tmp_path / "s.sqlite") as s:
        path = leaderboard.write(s, "demo", out)
        assert leaderboard.render(s, "demo") == path.read_text()
        assert (out / "demo" / "ds--net--agreement.png").stat().st_size < 300_000
        # gallery and curves come from `xaibench run`; a store-only write cannot draw them
        missing = leaderboard.problems(s, "demo", out)
        assert len(missing) == 2 and all("is missing" in p and "xaibench run" in p for p in missing)
        for kind in ("gallery", "curves"):
            (out / "demo" / f"ds--net--{kind}.png").write_bytes(b"png")
        assert leaderboard.problems(s, "demo", out) == []
        path.write_text(path.read_text().replace("1.000", "1.001"))
        assert leaderboard.problems(s, "demo", out) == [f"{path} is stale: it differs from what the store renders"]
        leaderboard.write(s, "demo", out)
        (out / "demo.json").unlink()
        assert leaderboard.problems(s, "demo", out) == [
            f"{out / 'demo.json'} is missing: it differs from what the store renders",
            f"{out / 'README.md'} is stale: it differs from what the <suite>.json files beside it render"]
        leaderboard.write(s, "demo", out)
        (out / "README.md").write_text("# edited\n")
        assert len(leaderboard.problems(s, "demo", out)) == 1


def test_check_says_which_numbers_of_a_regenerated_board_moved(tmp_path: Path) -> None:
    """A board from another machine's store: --check names the moved cell with both values, not only "stale"."""
    out = tmp_path / "lb"
    with _store(tmp_path / "s.sqlite") as s:
        leaderboard.write(s, "demo", out)
        doc = json.loads((out / "demo.json").read_text())
        (good,) = [r for r in doc["blocks"][0]["rows"] if r["method"] == "good"]
        cell = good["cells"]["dic"]
        published = {**cell, "mean": 6.0}
        good["cells"]["dic"] = published
        doc["header"]["versions"]["torch"] = "y"
        (out / "demo.json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
        found = leaderboard.problems(s, "demo", out)
    numbers = f"[{cell['ci_low']:.6g}, {cell['ci_high']:.6g}] n={cell['n']} rank 1="
    assert found[:3] == [f"{out / 'demo.json'} is stale: it differs from what the store renders",
                         "  header.versions.torch: 'y' in the file, 'x' from the store",
                         f"  ds × net: dic of good: 6 {numbers} in the file, {cell['mean']:.6g} {numbers} from the store"]


def test_cli_check_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str], no_plugins: None) -> None:
    store, out = tmp_path / "s.sqlite", tmp_path / "lb"
    _store(store).close()
    args = ["leaderboard", "--suite", "demo", "--store", str(store), "--out", str(out)]
    assert main(args) == 0
    for kind in ("gallery", "curves"):
        (out / "demo" / f"ds--net--{kind}.png").write_bytes(b"png")
    assert main(args + ["--check"]) == 0
    assert main(["leaderboard", "--index", "--check", "--out", str(out)]) == 0
    (out / "demo.md").write_text("stale\n")
    capsys.readouterr()
    assert main(args + ["--check"]) == 1
    assert "demo.md is stale" in capsys.readouterr().err
    (out / "README.md").unlink()
    assert main(["leaderboard", "--index", "--check", "--out", str(out)]) == 1
    assert main(["leaderboard", "--index", "--out", str(out)]) == 0 and (out / "README.md").exists()
    assert main(["leaderboard", "--store", str(store)]) == 2  # neither --suite nor --index


def test_json_export_for_websites(tmp_path: Path, capsys: pytest.CaptureFixture[str], no_plugins: None) -> None:
    store = tmp_path / "s.sqlite"
    _store(store).close()
    assert main(["leaderboard", "--suite", "demo", "--store", str(store), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == 1 and doc["suite"] == "demo" and doc["header"]["seed"] == 7
    (block,) = doc["blocks"]
    assert [r["method"] for r in block["rows"]] == ["good", "twin", "bad", "broken"]
    assert block["winners"] == ["good", "twin"]
    good = block["rows"][0]
    assert good["rank"] == 1 and good["tied"] is True
    assert good["cells"]["hit-rate"] == {"mean": 1.0, "ci_low": 1.0, "ci_high": 1.0, "n": 10, "status": "ok",
                                         "rank": 1, "tied": True, "detail": None, "versus_chance": None}
    broken = block["rows"][3]
    assert broken["rank"] is None and broken["cells"]["dic"]["mean"] is None
    assert broken["cells"]["dic"]["detail"] == "ValueError: nope"
    assert block["agreement"]["metrics"] == ["hit-rate", "dic"] and block["agreement"]["tau"][0][0] == 1.0
    assert block["figures"]["gallery"] == "demo/ds--net--gallery.png"
    assert "Wilcoxon" in doc["statistics"]["ranks"]


def test_index_lists_every_published_suite_with_its_winners(tmp_path: Path) -> None:
    out = tmp_path / "lb"
    assert "No suite has a leaderboard here yet" in leaderboard.render_index(out)
    with _store(tmp_path / "s.sqlite") as s:
        leaderboard.write(s, "demo", out)
    (out / "notes.json").write_text("[1, 2]")  # not a leaderboard: ignored
    # a suite from another store (CI's store cannot run every suite) stays in the index
    with _store(tmp_path / "other.sqlite", suite="extra") as other:
        leaderboard.write(other, "extra", out)
        assert leaderboard.problems(other, "extra", out) == [
            f"{out / 'extra' / 'ds--net--gallery.png'} is missing (figures are drawn by `xaibench run --suite extra`)",
            f"{out / 'extra' / 'ds--net--curves.png'} is missing (figures are drawn by `xaibench run --suite extra`)"]
    index = (out / "README.md").read_text()
    assert "| [demo](demo.md)   | ds × net" in index and "| [extra](extra.md) | ds × net" in index
    assert index.count("| good, twin ") == 2


def test_export_json_and_csv(tmp_path: Path) -> None:
    with _store(tmp_path / "s.sqlite") as s:
        rows = json.loads(leaderboard.export(s, "demo", "json"))
        csv = leaderboard.export(s, "demo", "csv")
    assert set(rows[0]) == {"dataset", "model", "method", "metric", "mean", "ci_low", "ci_high", "n", "status",
                            "seconds", "maps_seconds", "training_seconds"}
    assert {r["status"] for r in rows} == {"ok", "failed", "skipped"}
    assert csv.splitlines()[0] == "dataset,model,method,metric,mean,ci_low,ci_high,n,status,seconds,maps_seconds,training_seconds"


def test_unknown_suite_in_store(tmp_path: Path) -> None:
    with _store(tmp_path / "s.sqlite") as s, pytest.raises(XaibenchError, match="suites in it: demo"):
        leaderboard.render(s, "other")

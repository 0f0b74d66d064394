"""Calibration baselines are references beside the ranking, never winners; a baseline beating every method is a finding."""
from __future__ import annotations

import json
from pathlib import Path

from boards import scores, store

from xaibench import leaderboard


def _line(md: str, method: str) -> str:
    return next(line for line in md.splitlines() if line.startswith("|") and f"| {method} " in line)


def test_baselines_are_listed_as_references_and_never_ranked_or_bold(tmp_path: Path) -> None:
    with store(tmp_path / "s.sqlite") as s:
        md = leaderboard.render(s, "demo")
        blocks = leaderboard.board(s, "demo")
    assert blocks[0].winners == ["a"]  # ground-truth has the best hit rate and mass, but is no contender
    gt, rnd = _line(md, "ground-truth (oracle baseline)"), _line(md, "random (chance baseline)")
    assert gt.startswith("| ref") and rnd.startswith("| ref") and "**" not in gt
    assert _line(md, "a").startswith("| 1 ") and _line(md, "c").startswith("| 3 ")
    rows = [line for line in md.splitlines() if line.startswith("| ") and "baseline)" in line or line.startswith("| 3 ")]
    assert rows[0].startswith("| 3 ")  # baselines below every method
    row = {r.method: r for r in blocks[0].rows}
    assert row["ground-truth"].rank is None and all(v is None for v in row["ground-truth"].metric_ranks.values())


def test_a_baseline_beating_every_method_is_stated_as_a_finding_with_its_numbers(tmp_path: Path) -> None:
    with store(tmp_path / "s.sqlite") as s:
        md = leaderboard.render(s, "demo")
        doc = json.loads(leaderboard.to_json(s, "demo"))
    # hit-rate: ground-truth 1.000; a's hit rate is the best method's (a > b > c by construction)
    a_hits = f"{scores()[('a', 'hit-rate')].mean():.3f}"
    assert f"`ground-truth` (oracle baseline) beats every method on hit-rate: 1.000 vs {a_hits} for the best " \
           "method, `a`." in md
    assert "beats every method on mass" in md and "on dic" not in md  # a lower DiC than every baseline: no finding
    found = doc["blocks"][0]["baseline_findings"]
    assert [(f["baseline"], f["metric"]) for f in found] == [("ground-truth", "hit-rate"), ("ground-truth", "mass")]
    assert doc["blocks"][0]["winners"] == ["a"]
    assert {r["method"]: r["baseline"] for r in doc["blocks"][0]["rows"]}["random"] == "chance"


def test_the_index_never_names_a_baseline_winner_and_lists_the_findings(tmp_path: Path) -> None:
    out = tmp_path / "boards"
    with store(tmp_path / "s.sqlite") as s:
        leaderboard.write(s, "demo", out)
    index = (out / "README.md").read_text()
    row = next(line for line in index.splitlines() if line.startswith("| [demo]"))
    cells = [c.strip() for c in row.split("|")]
    assert cells[3] == "a" and cells[-2] == "ground-truth: hit-rate, mass"

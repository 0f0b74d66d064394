"""The meta-evaluation table and the aggregate ranking of a leaderboard, against values derived independently."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
from boards import METRICS, scores, store
from statsmodels.stats.multitest import multipletests

from xaibench import leaderboard

from xaibench.scoring import metaeval
from xaibench.leaderboard import ranking, trust

METHODS = ("a", "b", "c")


def test_krippendorff_alpha_of_a_hand_worked_case() -> None:
    # two samples rank three methods: (A, B, C) and (A, C, B). Coincidences o_11 = 2, o_23 = o_32 = 2; n_c = 2 each,
    # n = 6; ordinal delta^2: (1,2) -> 4, (2,3) -> 4, (1,3) -> 16. alpha = 1 - (n - 1) * 16 / 192 = 7/12.
    q = np.array([[3.0, 3.0], [2.0, 1.0], [1.0, 2.0]])
    assert metaeval.inter_rater_alpha(q, higher_is_better=True) == pytest.approx(7 / 12)


def test_the_meta_evaluation_table_of_a_section(tmp_path: Path) -> None:
    with store(tmp_path / "s.sqlite") as s:
        block = leaderboard.board(s, "demo")[0]
        header = s.header("demo")
        assessed = {t.metric: t for t in trust.assess(block, header)}
        md = leaderboard.render(s, "demo")
    raw = scores()
    hits = np.array([raw[(m, "hit-rate")] for m in METHODS])
    # hit-rate is 0 or 1 on every sample: every score is at a bound; tied where a, b and c all hit or all miss
    assert assessed["hit-rate"].at_bounds == 1.0
    assert assessed["hit-rate"].tied == pytest.approx(float((hits.min(0) == hits.max(0)).mean()))
    assert "saturates at its bounds" in assessed["hit-rate"].reasons and assessed["hit-rate"].verdict == "doubt"
    # mass ranks a > b > c on every sample: perfect agreement, nothing at the bounds or tied
    assert assessed["mass"].alpha == pytest.approx(1.0) and assessed["mass"].at_bounds == 0.0
    assert assessed["mass"].verdict == "trust" and assessed["mass"].meta is None
    # internal consistency of the localization family: Spearman of the (method, sample) scores, computed here
    mass = np.array([raw[(m, "mass")] for m in METHODS])
    rho = scipy.stats.spearmanr(hits.ravel(), mass.ravel()).statistic
    assert assessed["mass"].family_consistency == pytest.approx(rho)
    assert "### Which metrics to trust" in md and "| hit-rate | localization |" in md
    assert "On this data, trust mass, dic; doubt the others." in md and "not run" in md


def _means(datasets: int = 1) -> np.ndarray:
    """(blocks, methods) mean scores oriented so that higher is better, from the raw scores. On hit-rate no method
    differs from `random` over 10 samples (a's 5 non-zero paired differences, all +1, give the smallest two-sided
    Wilcoxon p-value 2/2^5 = 0.0625 > 0.05), so every cell counts as random's mean there."""
    raw = scores()
    at_chance = {"hit-rate"}
    rows = [[raw[("random" if m in at_chance else me, m)].mean() * (1 if METRICS[m][1] else -1) for me in METHODS]
            for m in METRICS]
    return np.array(rows * datasets)


@pytest.mark.parametrize("datasets", [1, 2, 3])
def test_friedman_and_holm_corrected_wilcoxon_equal_scipy_on_the_same_table(tmp_path: Path, datasets: int) -> None:
    names = tuple(f"ds{i}" for i in range(datasets))
    with store(tmp_path / "s.sqlite", datasets=names) as s:
        blocks, header = leaderboard.board(s, "demo"), s.header("demo")
    agg = ranking.aggregate(blocks, header)
    table = _means(datasets)
    assert agg.methods == list(METHODS) and agg.blocks == len(table)
    expected = scipy.stats.friedmanchisquare(*table.T)
    assert agg.test.statistic == pytest.approx(expected.statistic) and agg.test.pvalue == pytest.approx(expected.pvalue)
    if datasets == 1:  # 3 blocks: no Wilcoxon p-value over 3 pairs is below 2/2^3 = 0.25, so no post-hoc test
        assert agg.test.pairwise is None and agg.test.why_no_posthoc.startswith("3 blocks: too few for a post-hoc")
        return
    pairs = [(0, 1), (0, 2), (1, 2)]
    raw = [scipy.stats.wilcoxon(table[:, i], table[:, j]).pvalue for i, j in pairs]
    holm = multipletests(raw, method="holm")[1]
    for (i, j), p in zip(pairs, holm):
        assert agg.test.pairwise.loc[METHODS[i], METHODS[j]] == pytest.approx(p)
    mean, std, k = agg.families["all"]
    # a > b > c on mass and dic by construction; hit-rate ties all three at chance (rank 2 each)
    np.testing.assert_allclose(mean, [(2 + 1 + 1) / 3, 2.0, (2 + 3 + 3) / 3])
    assert k == 3 * datasets and agg.families["localization"][2] == 2 * datasets


def test_aggregate_ranks_with_spread_by_hand(tmp_path: Path) -> None:
    with store(tmp_path / "s.sqlite") as s:
        block, header = leaderboard.board(s, "demo")[0], s.header("demo")
    # swap b and c on dic only: over (hit-rate, mass, dic), where hit-rate ties every method at chance (rank 2 each:
    # see _means), a's ranks are 2, 1, 1, b's 2, 2, 3 and c's 2, 3, 2
    dic = block.metrics.index("dic")
    rows = {r.method: r for r in block.rows}
    from dataclasses import replace
    swapped = [replace(r, cells={**r.cells, "dic": rows["c" if r.method == "b" else "b"].cells["dic"]})
               if r.method in ("b", "c") else r for r in block.rows]
    agg = ranking.aggregate([replace(block, rows=swapped)], header)
    mean, std, _ = agg.families["all"]
    np.testing.assert_allclose(mean, [4 / 3, 7 / 3, 7 / 3])
    np.testing.assert_allclose(std, [np.std([2, 1, 1]), np.std([2, 2, 3]), np.std([2, 3, 2])])
    assert dic == 2


def test_the_leaderboard_links_the_diagrams_it_draws_and_its_json_carries_both_sections(tmp_path: Path) -> None:
    out = tmp_path / "boards"
    with store(tmp_path / "s.sqlite", datasets=("ds", "ds2")) as s:
        md_path = leaderboard.write(s, "demo", out)
        missing = leaderboard.problems(s, "demo", out)
        assert missing and all("gallery" in p or "curves" in p for p in missing)  # drawn by `run`; the rest exists
        doc = json.loads(leaderboard.to_json(s, "demo"))
    md = md_path.read_text()
    link = "demo/all-sections--cd.png"  # 6 blocks: the post-hoc test can find a difference
    assert f"]({link})" in md and (out / link).stat().st_size > 0
    for section in ("demo/ds--net--cd.png", "demo/ds2--net--cd.png"):  # 3 blocks each: it cannot
        assert section not in md and not (out / section).exists()
    assert "3 blocks: too few for a post-hoc test" in md
    assert "## Across all sections" in md and "Friedman test over 6 metrics and 3 methods" in md
    block = doc["blocks"][0]
    assert block["aggregate"]["methods"] == ["a", "b", "c"]  # no baseline in the ranking
    assert {m["metric"]: m["verdict"] for m in block["meta_evaluation"]}["hit-rate"] == "doubt"


def test_too_few_methods_or_metrics_says_why_there_is_no_test(tmp_path: Path) -> None:
    with store(tmp_path / "s.sqlite") as s:
        block, header = leaderboard.board(s, "demo")[0], s.header("demo")
    from dataclasses import replace
    two = ranking.aggregate([replace(block, rows=[r for r in block.rows if r.method != "c"])], header)
    assert two.test is None and "at least 3 methods; 2 here" in two.why_not
    lines = ranking.markdown(two, "Aggregate ranking", "x.png", "x")
    assert "No rank test: Friedman's test needs at least 3 methods; 2 here." in lines and "![" not in "".join(lines)


def test_noise_resilience_and_adversary_reactivity_from_stored_perturbed_cells(tmp_path: Path) -> None:
    """A metric whose scores stay under minor and drop under disruptive perturbations, by hand with scipy."""
    from xaibench.scoring.metaeval import PERTURBATIONS, perturbed_key
    from xaibench.storage.store import CellResult

    raw = scores()
    q = np.array([raw[(m, "mass")] for m in METHODS])
    drop = 0.5 + 0.01 * np.arange(q.shape[1])  # distinct differences: exact Wilcoxon p-values
    with store(tmp_path / "s.sqlite") as s:
        header = {**s.header("demo"), "meta_evaluation": 1}
        block = leaderboard.board(s, "demo")[0]
        for row in block.rows:
            if row.baseline:
                continue
            cell = row.cells["mass"]
            base = np.array([s.scores(cell.cell_key)[i] for i in sorted(s.scores(cell.cell_key))])
            for test in PERTURBATIONS:
                for kind, values in (("minor", base), ("disruptive", base - drop)):
                    key = perturbed_key(cell.cell_key, test, kind, 0)
                    s.put_cell(CellResult(key, "ds", "net", row.method, "mass", "ok", float(values.mean()), None, None,
                                          len(values), len(values), None, {}), sorted(s.scores(cell.cell_key)), values)
        assessed = {t.metric: t for t in trust.assess(block, header)}
    meta = assessed["mass"].meta
    p = [scipy.stats.wilcoxon(q[m], q[m] - drop).pvalue for m in range(3)]
    assert trust.noise_resilience(meta) == pytest.approx(1.0)  # identical scores: p = 1, same order everywhere
    assert trust.adversary_reactivity(meta) == pytest.approx(((1 - np.mean(p)) + 1.0) / 2)  # every score worse
    assert assessed["hit-rate"].meta is None  # no perturbed cells stored for it: "not run"

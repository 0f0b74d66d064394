"""A method that ties chance is not "best"; a metric that cannot tell the oracle from chance ranks nothing; one
aggregate ranking over one set of methods (issues 44.1 and 42.3). Expected values are worked out by hand in each
docstring from the exact Wilcoxon signed-rank distribution (2/2^n for n differences of one sign) and mean ranks."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from boards import scored_store

from xaibench import leaderboard

from xaibench.scoring import stats
from xaibench.leaderboard import ranking, trust

N = 12
ROLES = {"random": "chance", "ground-truth": "oracle"}
BASE = np.linspace(0.1, 0.3, N)  # random's per-sample scores: 12 distinct values


def test_a_method_against_chance_by_hand() -> None:
    """12 samples. Equal to random but on one sample: one non-zero difference, p = 1: a tie. Higher by 0.1 on every
    sample: p = 2/2^12 = 0.00049: above. Lower by 0.1: below. Higher by 5e-4 everywhere is significant too, but under a
    smallest effect of 0.01 it is a tie."""
    one_off = BASE.copy()
    one_off[3] += 0.2
    scores = [one_off, BASE + 0.1, BASE - 0.1, BASE + 5e-4]
    assert stats.versus_reference(scores, BASE, higher_is_better=True) == [0, 1, -1, 1]
    assert stats.versus_reference(scores, BASE, higher_is_better=True, min_effect=0.01) == [0, 1, -1, 0]
    assert stats.versus_reference(scores, BASE, higher_is_better=False) == [0, -1, 1, -1]
    assert stats.versus_reference([None, BASE + 0.1], BASE, higher_is_better=True) == [None, 1]


def test_holm_corrects_the_comparisons_with_chance_over_the_methods() -> None:
    """6 differences of one sign give p = 2/2^6 = 0.03125: alone, above chance; two such methods are Holm-corrected
    to min(1, 2 * 0.03125) = 0.0625 each, so neither is."""
    ref = np.arange(6.0)
    up = ref + np.array([1, 2, 3, 4, 5, 6]) * 0.1
    assert stats.paired_pvalue(up, ref) == pytest.approx(2 / 2**6)
    assert stats.versus_reference([up], ref, higher_is_better=True) == [1]
    assert stats.versus_reference([up, up + 1e-3], ref, higher_is_better=True) == [0, 0]


def test_tiers_come_before_the_test_and_small_effects_are_ties() -> None:
    """Equal scores in tiers (1, 0, 0, -1): the above-chance method beats three, the two at chance beat the one
    below. Two methods 1e-3 apart on every one of 12 samples differ (p = 0.00049) unless the smallest effect is 0.01."""
    same = [BASE, BASE, BASE, BASE]
    assert stats.significance_ranks(same, True, tiers=[1, 0, 0, -1]) == [1, 2, 2, 4]
    assert stats.significance_ranks([BASE + 1e-3, BASE], True) == [1, 2]
    assert stats.significance_ranks([BASE + 1e-3, BASE], True, min_effect=0.01) == [1, 1]


def _section() -> dict[tuple[str, str], np.ndarray]:
    """One section of 12 samples: on `loc` (higher is better, oracle 1 everywhere) `good` is random + 0.3 on every
    sample, `twin` equals random but on one sample (as IG did on the medical board), `bad` is random - 0.05; on
    `flat` (first in the table) the oracle equals random on every sample (the metric cannot tell them apart), and
    `good` leads. `near` is random + 0.06 on two samples (p = 2/2^2 = 0.5: at chance, mean 0.21)."""
    near = np.where(np.arange(N) % 6 == 0, BASE + 0.06, BASE)
    return {("good", "flat"): BASE + 0.5, ("twin", "flat"): BASE + 0.4, ("near", "flat"): BASE + 0.35,
            ("bad", "flat"): BASE + 0.3, ("random", "flat"): BASE, ("ground-truth", "flat"): BASE.copy(),
            ("good", "loc"): BASE + 0.3, ("twin", "loc"): np.where(np.arange(N) == 5, BASE + 0.2, BASE),
            ("near", "loc"): near, ("bad", "loc"): BASE - 0.05, ("random", "loc"): BASE,
            ("ground-truth", "loc"): np.ones(N)}


METRICS = {"flat": ("faithfulness", True, [0.0, 1.0]), "loc": ("localization", True, [0.0, 1.0])}


def test_the_board_says_equal_to_chance_never_bold_and_drops_an_uninformative_metric(tmp_path: Path) -> None:
    """`loc`: twin and near tie chance (p = 1, 0.5; Holm over the 4 methods), bad is below it (p = 0.00049), good
    above: good is rank 1 and bold, twin and near read "= chance" and share rank 2, bad "< chance" (rank 4).
    Smallest effect: 5% of |1 - mean(random)| = 0.05 * (1 - 0.2) = 0.04. `flat`: the oracle equals random on all 12
    samples (p = 1): uninformative, no rank, left out of the aggregate. In the aggregate over `loc` alone the cells at
    chance count as random's mean (0.2), so twin (own mean 0.217) and near (0.21) tie: ranks 1, 2.5, 2.5, 4."""
    with scored_store(tmp_path / "s.sqlite", {("ds", "net"): _section()}, METRICS, ROLES) as s:
        (block,) = leaderboard.board(s, "demo")
        md = leaderboard.render(s, "demo")
        header = s.header("demo")
        doc = json.loads(leaderboard.to_json(s, "demo"))
        verdicts = {t.metric: t for t in trust.assess(block, header)}
    rows = {r.method: r for r in block.rows}
    assert block.calibration["loc"].min_effect == pytest.approx(0.05 * (1 - BASE.mean()))
    methods = ("good", "twin", "near", "bad")
    assert {m: rows[m].metric_chance["loc"] for m in methods} == {"good": 1, "twin": 0, "near": 0, "bad": -1}
    assert {m: rows[m].metric_ranks["loc"] for m in methods} == {"good": 1, "twin": 2, "near": 2, "bad": 4}
    assert "the oracle (`ground-truth`) scores 0.2 and chance (`random`) 0.2" in block.calibration["flat"].uninformative
    assert all(rows[m].metric_ranks["flat"] is None for m in methods)  # good leads, but not here
    assert [r.method for r in block.rows[:4]] == ["good", "near", "twin", "bad"] and block.winners == ["good"]
    line = {c.split("|")[2].strip(): c for c in md.splitlines() if c.startswith("| ")}
    assert "**0.500 [" in line["good"] and "(1)**" in line["good"] and "(= chance)" in line["near"]
    assert "(= chance)" in line["twin"] and "**" not in line["twin"]
    assert "(< chance)" in line["bad"] and "**" not in line["bad"]
    assert "- flat: the oracle (`ground-truth`) scores" in md and "no difference (paired Wilcoxon p = 1)" in md
    assert verdicts["flat"].verdict == "uninformative here" and verdicts["loc"].verdict != "uninformative here"
    agg = ranking.aggregate([block], header)
    assert agg.families["all"][2] == 1 and agg.left_out_metrics == ("flat (uninformative here)",)
    assert dict(zip(agg.methods, agg.families["all"][0])) == pytest.approx({"good": 1, "twin": 2.5, "near": 2.5,
                                                                            "bad": 4})
    assert doc["blocks"][0]["uninformative"].keys() == {"flat"}
    assert doc["blocks"][0]["rows"][2]["cells"]["loc"]["versus_chance"] == 0


def test_open_bounds_leave_the_oracle_check_to_the_test(tmp_path: Path) -> None:
    """A metric bounded below only: the oracle 1e-3 above random on all 12 samples is separated
    (p = 2/2^12), since no width sets a smallest separation; with bounds [0, 1] 1e-3 is under 1% of the width."""
    cells = {("a", "open"): BASE + 0.5, ("random", "open"): BASE, ("ground-truth", "open"): BASE + 1e-3}
    for bounds, uninformative in (([0.0, None], False), ([0.0, 1.0], True)):
        metrics = {"open": ("localization", True, bounds)}
        with scored_store(tmp_path / f"{uninformative}.sqlite", {("ds", "net"): cells}, metrics, ROLES) as s:
            (block,) = leaderboard.board(s, "demo")
        assert bool(block.calibration["open"].uninformative) is uninformative
        assert block.winners == ([] if uninformative else ["a"])


def test_the_oracle_check_uses_the_samples_both_baselines_scored_and_the_width_of_the_bounds(tmp_path: Path) -> None:
    """Bounds [-1, 1] (width 2, so 1% is 0.02). The oracle is NaN on samples 0-3 (empty masks), where random scores
    0.9; on the 8 samples both scored the oracle is random + 0.015 (p = 2/2^8): under 0.02, uninformative, and the
    message says so with the means over those 8 samples (random: 0.1 + 7.5 * 0.2 / 11 = 0.236, the oracle 0.251),
    not random's over all 12."""
    oracle = np.where(np.arange(N) < 4, np.nan, BASE + 0.015)
    rnd = np.where(np.arange(N) < 4, 0.9, BASE)
    cells = {("a", "m"): BASE + 0.5, ("random", "m"): rnd, ("ground-truth", "m"): oracle}
    metrics = {"m": ("localization", True, [-1.0, 1.0])}
    with scored_store(tmp_path / "s.sqlite", {("ds", "net"): cells}, metrics, ROLES) as s:
        (block,) = leaderboard.board(s, "demo")
    assert block.calibration["m"].uninformative == (
        "the oracle (`ground-truth`) scores 0.251 and chance (`random`) 0.236 on the 8 samples both scored: a "
        "difference under 1% of the metric's range [-1, 1]")


def test_one_baseline_alone_gives_standings_or_nothing(tmp_path: Path) -> None:
    """Only `random`: standings against it, no oracle check, no smallest effect (no oracle score known), so `b`,
    1e-3 above `a` on every sample, ranks below it. Only `ground-truth`: no standing at all."""
    cells = {("a", "m"): BASE + 0.5, ("b", "m"): BASE + 0.501, ("random", "m"): BASE}
    metrics = {"m": ("localization", True, [0.0, 1.0])}
    with scored_store(tmp_path / "r.sqlite", {("ds", "net"): cells}, metrics, {"random": "chance"}) as s:
        (block,) = leaderboard.board(s, "demo")
    cal = block.calibration["m"]
    assert cal.standing == {"a": 1, "b": 1} and cal.min_effect == 0.0 and cal.uninformative == ""
    assert {r.method: r.metric_ranks["m"] for r in block.rows if not r.baseline} == {"b": 1, "a": 2}
    cells = {("a", "m"): BASE + 0.5, ("ground-truth", "m"): np.ones(N)}
    with scored_store(tmp_path / "o.sqlite", {("ds", "net"): cells}, metrics, {"ground-truth": "oracle"}) as s:
        (block,) = leaderboard.board(s, "demo")
    assert block.calibration["m"].standing == {"a": None} and block.winners == ["a"]


def test_a_mask_is_no_oracle_of_model_dependence(tmp_path: Path) -> None:
    """On a randomization metric the mask and noise ignore the model alike (both score 1, the worst similarity):
    equal scores say nothing about the metric, so it stays informative and ranks `a` (0.2 below random everywhere,
    lower is better); the same scores on a faithfulness metric make it uninformative."""
    cells = {("a", "m"): np.full(N, 0.8) - BASE, ("random", "m"): np.ones(N), ("ground-truth", "m"): np.ones(N)}
    for category, uninformative in (("randomization", False), ("faithfulness", True)):
        metrics = {"m": (category, False, [0.0, 1.0])}
        with scored_store(tmp_path / f"{category}.sqlite", {("ds", "net"): cells}, metrics, ROLES) as s:
            (block,) = leaderboard.board(s, "demo")
        assert bool(block.calibration["m"].uninformative) is uninformative
        assert block.rows[0].metric_ranks["m"] == (None if uninformative else 1)


def test_a_method_at_chance_everywhere_is_no_winner(tmp_path: Path) -> None:
    """Two methods, both equal to random on `loc` (no difference at all): no rank on `loc` (nothing beats chance),
    so no overall rank and no winner; the index lists no winner for the section."""
    cells = {("a", "loc"): BASE.copy(), ("b", "loc"): BASE.copy(), ("random", "loc"): BASE,
             ("ground-truth", "loc"): np.ones(N)}
    with scored_store(tmp_path / "s.sqlite", {("ds", "net"): cells}, METRICS, ROLES) as s:
        (block,) = leaderboard.board(s, "demo")
        leaderboard.write(s, "demo", tmp_path / "out")
    assert [r.rank for r in block.rows if not r.baseline] == [None, None] and block.winners == []
    index = (tmp_path / "out" / "README.md").read_text()
    row = next(line for line in index.splitlines() if "ds × net" in line)
    assert row.split("|")[3].strip() == "–"


def test_without_random_the_closed_form_chance_level_is_printed_and_sets_the_smallest_effect(tmp_path: Path) -> None:
    """No `random`: relevance mass's chance level is the mean mask area fraction, 0.25 (from the header), the oracle
    scores 1: smallest effect 0.05 * 0.75 = 0.0375. `a` is above `b` by 0.02 on every sample (p = 0.00049): a tie."""
    facts = {"metrics": {"loc": {"chance": "mask-fraction", "oracle": 1}}, "mask_fraction": {"ds": 0.25}}
    cells = {("a", "loc"): BASE + 0.52, ("b", "loc"): BASE + 0.5}
    with scored_store(tmp_path / "s.sqlite", {("ds", "net"): cells}, METRICS, {}, facts=facts) as s:
        (block,) = leaderboard.board(s, "demo")
        md = leaderboard.render(s, "demo")
    assert block.calibration["loc"].min_effect == pytest.approx(0.0375)
    assert [r.metric_ranks["loc"] for r in block.rows] == [1, 1] and block.winners == ["a", "b"]
    assert md.count(" (1=)** |") == 2  # compared with no chance baseline: ranked and bold as before
    assert ("Chance levels known in closed form (this suite has no `random` method to compare the methods with): "
            "loc 0.250 (mean mask area fraction).") in md


def _two_models() -> dict[tuple[str, str], dict[tuple[str, str], np.ndarray | None]]:
    """Issue 42.3's shape: models relu and silu, methods gradcam, guided-backprop, lrp, saliency; guided-backprop
    and lrp are not applicable on silu. Means (higher is better), the same on every sample:

    relu  m1: gb .9 > gradcam .8 > lrp .7 > saliency .6;  m2: saliency .8 > lrp .7 > gradcam .6 > gb .5;
          m3: gb .9 > lrp .8 > gradcam .7 > saliency .6
    silu  m1: gradcam .8 > saliency .6;  m2: saliency .9 > gradcam .7;  m3: gradcam .8 > saliency .5
    """
    relu = {"guided-backprop": (.9, .5, .9), "gradcam": (.8, .6, .7), "lrp": (.7, .7, .8), "saliency": (.6, .8, .6)}
    silu = {"guided-backprop": None, "gradcam": (.8, .7, .8), "lrp": None, "saliency": (.6, .9, .5)}
    sections: dict[tuple[str, str], dict[tuple[str, str], np.ndarray | None]] = {}
    for model, means in (("relu", relu), ("silu", silu)):
        sections[("ds", model)] = {(me, f"m{k + 1}"): None if v is None else np.full(N, v[k]) + np.arange(N) * 1e-3
                                   for me, v in means.items() for k in range(3)}
    return sections


def test_the_aggregate_over_sections_ranks_one_set_of_methods_by_hand(tmp_path: Path) -> None:
    """Per section, by hand (ranks per metric, 1 = best): relu gb (1, 4, 1) = 2.00, lrp (3, 2, 2) = 2.33, gradcam
    (2, 3, 3) = 2.67, saliency (4, 1, 4) = 3.00; silu gradcam (1, 2, 1) = 1.33, saliency (2, 1, 2) = 1.67. Across both,
    only gradcam and saliency are scored everywhere: over the 6 metrics gradcam (1, 2, 1, 1, 2, 1) = 1.33 and
    saliency 1.67; guided-backprop and lrp are listed as left out (no score on ds × silu)."""
    metrics = {f"m{k}": ("localization", True, [0.0, 1.0]) for k in (1, 2, 3)}
    with scored_store(tmp_path / "s.sqlite", _two_models(), metrics, {}) as s:
        blocks, header = leaderboard.board(s, "demo"), s.header("demo")
        md = leaderboard.render(s, "demo")
    relu = ranking.aggregate([blocks[0]], header)
    expected = {"guided-backprop": 2.0, "gradcam": 8 / 3, "lrp": 7 / 3, "saliency": 3.0}
    assert dict(zip(relu.methods, relu.families["all"][0])) == pytest.approx(expected)
    silu = ranking.aggregate([blocks[1]], header)
    assert silu.methods == ["gradcam", "saliency"] and list(silu.families["all"][0]) == pytest.approx([4 / 3, 5 / 3])
    assert all(c.min_effect == 0.0 for b in blocks for c in b.calibration.values())  # no chance, no oracle known
    assert {r.method: r.metric_ranks["m1"] for r in blocks[0].rows} == {  # 0.1 apart on all 12 samples
        "guided-backprop": 1, "gradcam": 2, "lrp": 3, "saliency": 4}
    both = ranking.aggregate(blocks, header)
    assert both.methods == ["gradcam", "saliency"] and both.families["all"][2] == 6
    assert list(both.families["all"][0]) == pytest.approx([4 / 3, 5 / 3])
    assert both.left_out == ("guided-backprop (no score on ds × silu)", "lrp (no score on ds × silu)")
    assert both.left_out_metrics == ()
    assert ("Methods not in this aggregate: guided-backprop (no score on ds × silu); lrp (no score on ds × silu)."
            in md)


def test_a_metric_that_does_not_score_every_method_is_left_out_of_the_aggregate(tmp_path: Path) -> None:
    """One section; `m1` is not applicable to lrp and saliency (as completeness is to non-additive methods): the
    aggregate ranks the four methods over m2 and m3 only and says why m1 is left out. By hand: gb (4, 1) = 2.5,
    gradcam (3, 3) = 3, lrp (2, 2) = 2, saliency (1, 4) = 2.5."""
    sections = _two_models()
    relu = {k: v for k, v in sections[("ds", "relu")].items()}
    relu[("lrp", "m1")] = relu[("saliency", "m1")] = None
    metrics = {f"m{k}": ("localization", True, [0.0, 1.0]) for k in (1, 2, 3)}
    with scored_store(tmp_path / "s.sqlite", {("ds", "relu"): relu}, metrics, {}) as s:
        (block,), header = leaderboard.board(s, "demo"), s.header("demo")
    agg = ranking.aggregate([block], header)
    assert agg.families["all"][2] == 2
    assert dict(zip(agg.methods, agg.families["all"][0])) == pytest.approx(
        {"guided-backprop": 2.5, "gradcam": 3.0, "lrp": 2.0, "saliency": 2.5})
    assert agg.left_out_metrics == ("m1 (no score for lrp, saliency)",)
    sections[("ds", "silu")][("saliency", "m3")] = None  # across sections, a left-out metric names its section
    with scored_store(tmp_path / "two.sqlite", sections, metrics, {}) as s:
        blocks, header = leaderboard.board(s, "demo"), s.header("demo")
    assert ranking.aggregate(blocks, header).left_out_metrics == ("ds × silu: m3 (no score for saliency)",)


def test_the_index_lists_no_section_where_no_cell_ran(tmp_path: Path) -> None:
    """A cross product with a section whose every cell is not applicable (a model on data it does not take): the
    board says so, the index leaves it out."""
    sections = _two_models()
    sections[("volumes", "relu")] = {k: None for k in sections[("ds", "relu")]}
    metrics = {f"m{k}": ("localization", True, [0.0, 1.0]) for k in (1, 2, 3)}
    with scored_store(tmp_path / "s.sqlite", sections, metrics, {}) as s:
        leaderboard.write(s, "demo", tmp_path / "out")
    md = (tmp_path / "out" / "demo.md").read_text()
    index = (tmp_path / "out" / "README.md").read_text()
    assert "## volumes × relu" in md and "No cell ran" in md
    assert "ds × relu" in index and "ds × silu" in index and "volumes × relu" not in index

"""xaibench.compare: several methods ranked on the same samples, as a suite ranks them.

The equality test runs a tiny suite through ``xaibench.run`` (the CLI's path), then compares the
suite's own samples, model and methods with ``xaibench.compare`` given the suite's ids, seed and
model key: the expected means, CIs, ranks, verdict checks, trust table and aggregate ranking are the
suite's leaderboard, computed by the runner. The other tests derive their numbers by hand.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import wilcoxon
from torch import nn

import xaibench
from xaibench.api.user_inputs import sample_ids
from xaibench.base.errors import XaibenchError
from xaibench.leaderboard import board, ranking, trust
from xaibench.leaderboard.verdict import section_verdict
from xaibench.contract.plugins import load_harness
from xaibench.running.runner import Runner, RunOptions
from xaibench.storage.store import Store

HARNESS = load_harness()
IG = {"name": "integrated-gradients", "params": {"n_steps": 4}}
METRICS = ["hit-rate", "relevance-mass", "dic", "completeness-error"]
SUITE = {
    "name": "compare-equality", "seed": 5, "samples": 8, "image_size": 32, "target": "predicted", "batch_size": 4,
    "datasets": [{"name": "synthetic-lesions", "params": {"n_train": 240, "n_val": 30, "n_test": 30}}],
    "models": [{"name": "small-cnn", "params": {"width": 8, "depth": 3}, "train": {"epochs": 10, "batch_size": 32,
                                                                                     "patience": 0}}],
    "methods": ["gradcam", IG, "saliency", "random", "ground-truth"],
    "metrics": METRICS,
}


@pytest.fixture(scope="module")
def suite_and_comparison(tmp_path_factory: pytest.TempPathFactory) -> tuple[xaibench.Results, xaibench.Comparison]:
    """The suite run once (its own cache home), and compare() on its samples, model, ids, seed and model key."""
    root = tmp_path_factory.mktemp("compare-equality")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XAIBENCH_HOME", str(root / "home"))
        results = xaibench.run(SUITE, store=root / "results.sqlite", progress=False)
        with Store(results.store_path) as store:
            runner = Runner(HARNESS, results.runner.suite, store, RunOptions(progress=False))
            g = runner.group_context(runner.datasets[0], runner.models[0])
        compared = xaibench.compare(g.model, g.samples.x, None, {"gradcam": "gradcam", "integrated-gradients": IG,
                                                                          "saliency": "saliency"},
                                    METRICS, layer="features.2", masks=g.samples.masks, data_mean=g.data_mean, seed=SUITE["seed"],
                                    ids=g.samples.ids, batch_size=g.engine.batch_size,
                                    method_batch_size=SUITE["batch_size"], progress=False)
    return results, compared


def test_compare_on_a_suites_samples_gives_the_suites_numbers_and_ranks(suite_and_comparison) -> None:  # type: ignore[no-untyped-def]
    results, compared = suite_and_comparison
    [suite_block] = results.leaderboard()
    ours = {r.method: r for r in compared.block.rows}
    assert [r.method for r in compared.block.rows] == [r.method for r in suite_block.rows]
    assert compared.block.metrics == suite_block.metrics == METRICS
    scored = 0
    for theirs in suite_block.rows:
        mine = ours[theirs.method]
        assert (mine.rank, mine.tied, mine.mean_rank, mine.baseline) == (theirs.rank, theirs.tied, theirs.mean_rank,
                                                                         theirs.baseline)
        assert mine.metric_ranks == theirs.metric_ranks and mine.metric_tied == theirs.metric_tied
        for m in METRICS:
            a, b = mine.cells[m], theirs.cells[m]
            assert (a.status, a.n, a.n_total, a.constant_maps) == (b.status, b.n, b.n_total, b.constant_maps), m
            assert (a.mean, a.ci_low, a.ci_high) == (b.mean, b.ci_low, b.ci_high), (theirs.method, m)
            assert (a.detail is None) == (b.detail is None)  # skipped with a reason in both (completeness on a CAM)
            scored += a.status == "ok"
    assert scored == 5 * len(METRICS) - 4  # completeness-error applies to IG's additive attributions only
    assert "ground-truth" in ours and ours["random"].baseline == "chance"


def test_compare_gives_the_suites_verdict_trust_table_and_aggregate(suite_and_comparison) -> None:  # type: ignore[no-untyped-def]
    results, compared = suite_and_comparison
    with Store(results.store_path) as store:  # the trust table reads per-sample scores from the open store
        [suite_block] = board(store, SUITE["name"])
        header = store.header(SUITE["name"])
        theirs = section_verdict(suite_block, header)
        assert trust.as_json(suite_block, header) == trust.as_json(compared.block, compared.header)
        assert ranking.as_json(ranking.aggregate([suite_block], header)) == ranking.as_json(compared.aggregate)
    # the suite also checks its trained model on the test split; a comparison has no test split
    assert [c for c in theirs.checks if c.name != "model above the majority class"] == compared.verdict.checks
    no_split = "model accuracy: no test-split evaluation stored"
    assert theirs.not_run == [w for w in compared.verdict.not_run if w != no_split] and no_split in compared.verdict.not_run
    assert [c.name for c in compared.verdict.checks] == ["`random` at chance on relevance-mass",
                                                         "`ground-truth` at 1 on hit-rate",
                                                         "`ground-truth` at 1 on relevance-mass", "CAM layer of `gradcam`"]
    assert "`features.2`: 8x8" in compared.verdict.checks[-1].detail


def test_the_views_show_the_same_numbers(suite_and_comparison) -> None:  # type: ignore[no-untyped-def]
    _, compared = suite_and_comparison
    frame = compared.to_pandas()
    ig = frame[(frame.method == "integrated-gradients") & (frame.metric == "relevance-mass")].iloc[0]
    cell = next(r for r in compared.block.rows if r.method == "integrated-gradients").cells["relevance-mass"]
    assert (ig["mean"], ig["ci_low"], ig["ci_high"], ig["n"]) == (cell.mean, cell.ci_low, cell.ci_high, cell.n)
    skipped = frame[(frame.method == "saliency") & (frame.metric == "completeness-error")].iloc[0]
    assert skipped["status"] == "skipped" and "additive" in skipped["detail"]
    overall = compared.ranking()
    assert list(overall.method[:3]) == [r.method for r in compared.block.rows[:3]]
    assert list(overall.baseline[3:]) == ["oracle", "chance"]
    md = compared._repr_markdown_()
    assert "Calibration verdict" in md and "(chance baseline)" in md and "### Which metrics to trust" in md
    assert "![" not in md  # no link to a diagram file that a notebook does not have
    assert list(compared.trust_table().metric) == [t.metric for t in compared.trust]


# -- a user's own maps: numbers by hand ------------------------------------------------------------
N, S = 8, 16


def _user() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 2)).eval()
    masks = torch.zeros(N, S, S, dtype=torch.bool)
    for i in range(N):
        masks[i, i:i + 4, 2:8] = True
    return model, torch.rand(N, 1, S, S), masks


def test_users_maps_are_ranked_by_paired_tests_with_relevance_mass_by_hand() -> None:
    model, x, masks = _user()
    rng = np.random.default_rng(1)
    spread = rng.uniform(0.1, 1.0, (N, S, S))
    inside = masks.numpy()
    good = np.where(inside, 1.0, spread * 0.2)       # most mass in the mask on every sample
    poor = np.where(inside, 0.5, spread)             # less
    c = xaibench.compare(model, x, None, {"good": good, "copy": good.copy(), "poor": poor}, ["relevance-mass"],
                         masks=masks, baselines=False, progress=False)
    by_hand = {name: np.array([m[i][inside[i]].sum() / m[i].sum() for i in range(N)]) for name, m in
               (("good", good), ("poor", poor))}
    assert (by_hand["good"] > by_hand["poor"]).all()
    # exact two-sided Wilcoxon p of 8 same-sign differences: 2/2^8; Holm over the 3 pairs keeps both < 0.05
    assert wilcoxon(by_hand["good"], by_hand["poor"]).pvalue == pytest.approx(2 / 2 ** 8)
    rows = {r.method: r for r in c.block.rows}
    assert rows["good"].cells["relevance-mass"].mean == pytest.approx(by_hand["good"].mean(), rel=1e-6)
    assert rows["poor"].cells["relevance-mass"].mean == pytest.approx(by_hand["poor"].mean(), rel=1e-6)
    assert [(r.method, r.rank, r.tied) for r in c.block.rows] == [("copy", 1, True), ("good", 1, True),
                                                                   ("poor", 3, False)]
    stored = c.scores("poor", "relevance-mass")  # sample id -> score; the default ids are the inputs' digests
    ids = sample_ids(None, torch.as_tensor(x))
    np.testing.assert_allclose([stored[i] for i in ids], by_hand["poor"], rtol=1e-6)


def test_baselines_are_added_by_role_and_only_with_what_they_need() -> None:
    model, x, masks = _user()
    maps = x[:, 0].numpy()
    with_masks = xaibench.compare(model, x, None, {"mine": maps}, ["relevance-mass"], masks=masks, progress=False)
    assert {r.method: r.baseline for r in with_masks.block.rows} == {"mine": "", "ground-truth": "oracle",
                                                                     "random": "chance"}
    # a map with its mass on a few pixels is far sparser than random's on every sample: above chance, ranked first
    sparse = np.full_like(maps, 1e-3)
    sparse[:, 1:3, 1:3] = 1.0 + maps[:, 1:3, 1:3]
    without = xaibench.compare(model, x, None, {"mine": sparse}, ["sparseness"], progress=False)
    assert {r.method: r.baseline for r in without.block.rows} == {"mine": "", "random": "chance"}
    assert without.block.rows[0].rank == 1 and without.winners == ["mine"]
    # the input itself as a map is as sparse as random's (paired Wilcoxon): "= chance", unranked, no winner
    noise = xaibench.compare(model, x, None, {"mine": maps}, ["sparseness"], progress=False)
    assert noise.block.rows[0].metric_chance == {"sparseness": 0} and noise.winners == []


def test_metrics_that_do_not_apply_to_a_users_maps_are_skipped_with_the_reason() -> None:
    model, x, _ = _user()
    maps = x[:, 0].numpy()
    c = xaibench.compare(model, x, None, {"plain": maps, "additive": {"maps": maps, "additive": True}},
                         ["completeness-error", "max-sensitivity"], baselines=False, progress=False)
    rows = {r.method: r for r in c.block.rows}
    assert rows["plain"].cells["completeness-error"].status == "skipped"
    assert "compares sums of the map" in rows["plain"].cells["completeness-error"].detail
    assert rows["additive"].cells["completeness-error"].status == "ok"
    assert "re-explains the inputs" in rows["additive"].cells["max-sensitivity"].detail


def test_progress_is_silent_when_disabled_and_counts_cells_when_enabled(capfd: pytest.CaptureFixture[str]) -> None:
    model, x, _ = _user()
    maps = x[:, 0].numpy()
    xaibench.compare(model, x, None, {"mine": maps}, ["sparseness", "entropy"], progress=False)
    assert capfd.readouterr() == ("", "")
    xaibench.compare(model, x, None, {"mine": maps}, ["sparseness", "entropy"], progress=True)
    assert "compare: 4/4 cells (100%)" in capfd.readouterr().err  # not a terminal: plain lines (xaibench.base.progress)


BAD = {
    "no methods": ({}, {}, r"^methods must be a non-empty dict"),
    "unknown method": ({"m": "gradcamm"}, {}, r"gradcamm.*did you mean 'gradcam'"),
    "unknown method parameter": ({"m": {"name": "integrated-gradients", "params": {"n_stpes": 2}}}, {},
                                 r"n_stpes.*did you mean 'n_steps'"),
    "a malformed entry": ({"m": {"maps": None, "colour": 1}}, {}, r"^methods\['m'\] must be maps"),
    "a baseline twice": ({"random": "random"}, {"baselines": ["random"]}, r"^baseline 'random' is already"),
    "baselines as a string": ({"m": "saliency"}, {"baselines": "random"}, r"^baselines must be True, False or a list"),
    "params of an unlisted metric": ({"m": "saliency"}, {"params": {"dic": {}}}, r"^params name 'dic'"),
    "a typo in a keyword": ({"m": "saliency"}, {"data_maen": [0.5]},
                            r"^xaibench.compare takes no keyword 'data_maen' \(did you mean 'data_mean'"),
    "a per-method keyword": ({"m": "saliency"}, {"method_params": {}}, r"per-method settings go in methods$"),
    "an unknown metric": ({"m": "saliency"}, {"metrics": ["sparsness"]}, r"sparsness.*did you mean 'sparseness'"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_arguments_give_one_line(case: str) -> None:
    model, x, _ = _user()
    methods, keywords, message = BAD[case]
    metrics = keywords.pop("metrics", ["sparseness"])
    with pytest.raises(XaibenchError, match=message) as info:
        xaibench.compare(model, x, None, methods, metrics, progress=False, **keywords)
    assert "\n" not in str(info.value)


def test_a_comparison_without_any_score_still_renders() -> None:
    model, x, _ = _user()
    c = xaibench.compare(model, x, None, {"plain": x[:, 0].numpy()}, ["completeness-error"], baselines=False,
                         progress=False)
    assert c.block.rows[0].rank is None and math.isnan(c.ranking().aggregate_rank[0])
    assert "n/a" in c.markdown()


def test_a_callable_method_is_explained_and_re_explained_like_its_maps() -> None:
    model, x, _ = _user()

    def doubled(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return inputs[:, 0] * 2  # (N, H, W)

    c = xaibench.compare(model, x, None, {"fn": doubled, "its maps": (x[:, 0] * 2).numpy()},
                         ["sparseness", "max-sensitivity"], params={"max-sensitivity": {"draws": 2}},
                         baselines=False, progress=False)
    rows = {r.method: r for r in c.block.rows}
    assert rows["fn"].cells["sparseness"].mean == rows["its maps"].cells["sparseness"].mean
    assert rows["fn"].cells["max-sensitivity"].status == "ok"  # the callable re-explains the perturbed inputs
    assert rows["its maps"].cells["max-sensitivity"].status == "skipped"

"""Every shape a suite can have writes its leaderboard (issue 33, item 1): rank statistics defined or explained.

Expected values come from scipy called on the stored scores (Friedman, Wilcoxon) and from the exact Wilcoxon
distribution worked by hand; the property test draws suite shapes and score tables.
"""
from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
from boards import CELL_KINDS, shaped_store
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xaibench import leaderboard

from xaibench.scoring import metaeval

BASELINES = {"random", "ground-truth"}


def test_the_fewest_blocks_for_a_post_hoc_test_by_hand() -> None:
    # exact two-sided Wilcoxon over n pairs: the smallest p is 2 * (1/2)^n; 5 pairs: 0.0625 >= 0.05, 6: 0.03125
    assert metaeval.posthoc_blocks(0.05) == 6 and metaeval.posthoc_blocks(0.01) == 8
    assert scipy.stats.wilcoxon(np.arange(1.0, 6.0), method="exact").pvalue == pytest.approx(0.0625)
    assert scipy.stats.wilcoxon(np.arange(1.0, 7.0), method="exact").pvalue == pytest.approx(0.03125)


def test_seventeen_methods_and_two_metrics_write_the_board(tmp_path: Path) -> None:
    """The issue's example: 17 methods x [entropy, sparseness], every cell stored; posthoc_wilcoxon crashed."""
    methods = [f"method-{i:02d}" for i in range(17)]
    metrics = {"entropy": False, "sparseness": True}
    sections = {("ds", "net"): {me: dict.fromkeys(metrics, "random") for me in methods}}
    out = tmp_path / "boards"
    with shaped_store(tmp_path / "s.sqlite", sections, metrics, samples=6) as s:
        md = leaderboard.write(s, "shape", out).read_text()
        means = np.array([[s.cell(f"ds-net-{me}-{m}").mean * (1 if hib else -1) for me in methods]
                          for m, hib in metrics.items()])
    expected = scipy.stats.friedmanchisquare(*means.T)
    assert f"chi² = {expected.statistic:.2f}, p = {expected.pvalue:.2g}" in md
    assert "2 blocks: too few for a post-hoc test" in md and "--cd.png" not in md
    assert not list(out.rglob("*--cd.png"))


def test_post_hoc_pairs_equal_scipy_wilcoxon_with_holm_in_long_form() -> None:
    """Two blocks crashed scikit-posthocs's format guess; six and more are compared with scipy pair by pair."""
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(1)
    blocks = rng.random((7, 4)) + np.array([0.9, 0.6, 0.3, 0.0])
    blocks[0] = 0.5  # a block that ties every method, and a tie between two methods
    blocks[1, 2] = blocks[1, 3]
    test = metaeval.friedman_posthoc(blocks, list("abcd"))
    pairs = [(i, j) for i in range(4) for j in range(i + 1, 4)]
    raw = [scipy.stats.wilcoxon(blocks[:, i], blocks[:, j], zero_method="zsplit").pvalue for i, j in pairs]
    for (i, j), p in zip(pairs, multipletests(raw, method="holm")[1]):
        assert test.pairwise.iloc[i, j] == pytest.approx(p) and test.pairwise.iloc[j, i] == pytest.approx(p)
    assert metaeval.why_no_friedman(np.full((4, 3), 2.0)) == "every one of the 4 blocks ties all 3 methods: " \
                                                             "nothing to rank"
    with pytest.raises(ValueError, match="ties all 3 methods"):
        metaeval.friedman_posthoc(np.full((4, 3), 2.0), list("abc"))


def _check_board(doc: dict, md: str, out: Path | None = None) -> None:  # type: ignore[type-arg]
    """What a board may rank: only scored cells of non-baselines; diagrams linked from ``md`` exist in ``out``."""
    for link in re.findall(r"\]\(([^)]+--cd\.png)\)", md) if out is not None else []:
        assert (out / link).exists(), link
    for block in doc["blocks"]:
        for row in block["rows"]:
            if row["baseline"]:
                assert row["rank"] is None and all(c["rank"] is None for c in row["cells"].values())
            for cell in row["cells"].values():
                if cell["rank"] is not None:
                    assert cell["status"] == "ok" and cell["mean"] is not None
        assert set(block["winners"]) <= {r["method"] for r in block["rows"] if not r["baseline"]}
        agg = block["aggregate"]
        assert not BASELINES & set(agg["methods"])
        friedman = agg["friedman"]
        if friedman is None:
            assert agg["why_not"] or not agg["methods"]
        else:
            assert len(agg["methods"]) >= 3 and friedman["blocks"] >= 2
            assert (friedman["pairwise_holm"] is None) == (friedman["blocks"] < metaeval.posthoc_blocks(0.05))


@st.composite
def suite_shapes(draw):  # type: ignore[no-untyped-def]
    names = draw(st.lists(st.sampled_from(["m1", "m2", "m3"]), min_size=1, max_size=3, unique=True))
    metrics = {m: draw(st.booleans()) for m in names}
    pool = ["a", "b", "c", "d", "e", "random", "ground-truth"]
    kinds = st.sampled_from(CELL_KINDS)
    sections = {}
    for ds in range(draw(st.integers(1, 2))):
        for model in range(draw(st.integers(1, 2))):
            methods = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=6, unique=True))
            sections[(f"d{ds}", f"n{model}")] = {me: {m: draw(kinds) for m in metrics} for me in methods}
    return sections, metrics, draw(st.integers(1, 6)), draw(st.integers(0, 2**16))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(suite_shapes())
def test_every_suite_shape_writes_a_board_that_ranks_only_what_it_may(shape) -> None:  # type: ignore[no-untyped-def]
    sections, metrics, samples, seed = shape
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "boards"
        with shaped_store(Path(tmp) / "s.sqlite", sections, metrics, samples, seed) as s:
            leaderboard.write(s, "shape", out)
        _check_board(json.loads((out / "shape.json").read_text()), (out / "shape.md").read_text(), out)


def test_every_built_in_suite_with_subsets_of_its_metrics_writes_a_board(tmp_path: Path) -> None:
    """Each built-in suite's sections, methods (labels, calibration roles) and metrics (directions), with its
    metrics cut to one and two, and cells of every kind: the board renders (markdown and JSON: every
    statistic; the property test above draws the figures too) and ranks only what it may."""
    from xaibench.contract.plugins import load_harness
    from xaibench.suites.suite import load_suite

    harness = load_harness()
    rng = np.random.default_rng(0)
    for k, name in enumerate(harness.suites.names()):
        suite = load_suite(harness.suites.get(name).path)
        roles = {m.display: harness.methods.get(m.name).calibration for m in suite.methods
                 if harness.methods.get(m.name).calibration}
        directions = {m.display: harness.metrics.get(m.name).higher_is_better for m in suite.metrics}
        names = list(directions)
        for size in sorted({1, min(2, len(names))}):  # all of them: the suite's own board
            metrics = {m: directions[m] for m in rng.choice(names, size, replace=False)}
            sections = {(d.display, mo.display): {me.display: {m: str(rng.choice(CELL_KINDS, p=[.7] + [.05] * 6))
                                                               for m in metrics} for me in suite.methods}
                        for d in suite.datasets for mo in suite.models}
            with shaped_store(tmp_path / f"{name}-{size}.sqlite", sections, metrics, 4, k, roles=roles) as s:
                _check_board(json.loads(leaderboard.to_json(s, "shape")), leaderboard.render(s, "shape"))


def test_a_failure_while_publishing_keeps_every_cell_and_the_leaderboard_command_writes_the_board(
        tmp_path: Path, tiny_plugin, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    from conftest import TINY_SUITE

    from xaibench.api import cli

    from xaibench.contract import plugins
    from xaibench.leaderboard import ranking
    from xaibench.storage.store import Store

    harness = plugins.load_harness([("tiny", tiny_plugin)])
    monkeypatch.setattr(cli, "load_harness", lambda *a, **k: harness)
    suite, store, out = tmp_path / "tiny.yaml", tmp_path / "r.sqlite", tmp_path / "boards"
    suite.write_text(TINY_SUITE)

    def injected(*args: object, **kwargs: object) -> None:
        raise RuntimeError("injected: the figure writer broke")

    with monkeypatch.context() as patch:
        patch.setattr(ranking, "write_figures", injected)
        code = cli.main(["run", "--suite", str(suite), "--store", str(store), "--out", str(out), "--no-progress",
                         "--no-figures"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "Traceback" not in err[0]
    assert err[0].startswith("error: writing the leaderboard of suite 'tiny' failed (RuntimeError: injected: the "
                             "figure writer broke); every computed cell is saved in")
    assert f"`xaibench leaderboard --suite tiny --store {store} --out {out}`" in err[0]
    with Store(store) as s:
        rows = [(row, cell) for row, cell in s.iter_cells("tiny")]
        assert len(rows) == 3 * 3 and all(cell is not None and cell.status == "ok" for _, cell in rows)
    assert cli.main(["leaderboard", "--suite", "tiny", "--store", str(store), "--out", str(out)]) == 0
    assert "input-times-one" in (out / "tiny.md").read_text()

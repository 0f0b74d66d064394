"""Meta-evaluation and aggregate ranking: hand-computed cases."""
from __future__ import annotations

import os
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import scipy.stats

from xaibench.scoring import metaeval


def test_share_at_bounds_counts_exact_hits_of_finite_values_only() -> None:
    assert metaeval.share_at_bounds([0, 100, 50, 100, np.nan], 0, 100) == 0.75
    assert metaeval.share_at_bounds([0.0, 0.5], None, 1.0) == 0.0
    assert np.isnan(metaeval.share_at_bounds([np.nan], 0, 1))


def test_share_tied_is_the_share_of_samples_where_every_method_agrees() -> None:
    q = np.array([[1.0, 2.0, 3.0, 5.0], [1.0, 2.0, 4.0, np.nan], [1.0, 0.0, 3.0, 5.0]])
    assert metaeval.share_tied(q) == pytest.approx(1 / 3)  # columns 0..2 complete, only column 0 tied


def test_inter_rater_alpha_is_one_when_every_sample_ranks_alike_and_follows_the_direction() -> None:
    rng = np.random.default_rng(0)
    q = np.array([[3.0], [2.0], [1.0]]) + rng.random((1, 20)) * 0.1  # method 0 best on every sample
    assert metaeval.inter_rater_alpha(q, higher_is_better=True) == pytest.approx(1.0)
    assert metaeval.inter_rater_alpha(q, higher_is_better=False) == pytest.approx(1.0)
    noise = rng.random((4, 400))
    assert abs(metaeval.inter_rater_alpha(noise, True)) < 0.05  # independent rankings: chance agreement
    assert np.isnan(metaeval.inter_rater_alpha(np.ones((3, 5)), True))


def test_internal_consistency_orients_metrics_before_correlating() -> None:
    rng = np.random.default_rng(1)
    a = rng.random((3, 10))
    scores = {"up": a, "down": -2 * a, "same": a + 1}
    assert metaeval.internal_consistency(scores, {"up": True, "down": False, "same": True}) == pytest.approx(1.0)
    assert metaeval.internal_consistency({"up": a, "down": -a}, {"up": True, "down": True}) == pytest.approx(-1.0)


def test_meta_consistency_of_a_metric_that_stays_under_minor_and_drops_under_disruptive_perturbations() -> None:
    rng = np.random.default_rng(2)
    q = rng.random((3, 30)) + np.arange(3)[:, None] * 2  # methods well separated on every sample
    minor = np.stack([q, q])
    disruptive = np.stack([q - 5 - rng.random(q.shape), q - 6 - rng.random(q.shape)])
    mc = metaeval.meta_consistency(q, minor, disruptive, higher_is_better=True)
    assert mc.iac_nr == 1.0 and mc.iec_nr == 1.0 and mc.iec_ar == 1.0
    p = [scipy.stats.wilcoxon(q[m], d[m]).pvalue for d in disruptive for m in range(3)]  # every difference negative
    assert mc.iac_ar == pytest.approx(1 - np.mean(p)) and mc.iac_ar > 0.99
    assert mc.mc == pytest.approx((3 + mc.iac_ar) / 4)
    flipped = metaeval.meta_consistency(q, minor, disruptive, higher_is_better=False)
    assert flipped.iec_ar == 0.0  # for a lower-is-better metric the drop is an improvement
    with pytest.raises(ValueError, match="perturbed scores"):
        metaeval.meta_consistency(q, minor[:, :2], disruptive, True)


def test_mean_ranks_by_hand() -> None:
    means = np.array([[0.9, 0.1, np.nan], [0.5, 0.2, 3.0], [0.1, 0.3, 1.0]])
    mean, std = metaeval.mean_ranks(means, [True, False, True])
    # ranks: metric 0 -> 1, 2, 3; metric 1 (lower better) -> 1, 2, 3; metric 2 -> -, 1, 2
    np.testing.assert_allclose(mean, [1.0, 5 / 3, 8 / 3])
    np.testing.assert_allclose(std, [0.0, np.std([2, 2, 1]), np.std([3, 3, 2])])


def test_friedman_posthoc_and_the_critical_difference_diagram() -> None:
    rng = np.random.default_rng(3)
    blocks = rng.random((12, 4)) + np.array([3.0, 2.0, 1.0, 0.0])  # method a always best, d always worst
    test = metaeval.friedman_posthoc(blocks, ["a", "b", "c", "d"])
    assert list(test.ranks) == [1.0, 2.0, 3.0, 4.0]
    expected = scipy.stats.friedmanchisquare(*blocks.T)
    assert test.statistic == pytest.approx(expected.statistic) and test.pvalue == pytest.approx(expected.pvalue)
    raw = scipy.stats.wilcoxon(blocks[:, 0], blocks[:, 3]).pvalue
    assert raw <= test.pairwise.loc["a", "d"] <= min(1.0, 6 * raw) + 1e-12  # Holm: between raw and Bonferroni
    fig, ax = plt.subplots()
    metaeval.critical_difference_diagram(test, ax=ax)
    assert {"a", "d"} <= {t.get_text().split(" ")[-1].strip("()") for t in ax.texts} | \
        {t.get_text().split(" ")[0] for t in ax.texts}
    plt.close(fig)
    with pytest.raises(ValueError, match="3 methods"):
        metaeval.friedman_posthoc(blocks[:, :2], ["a", "b"])


CD_SCRIPT = """
import sys
import numpy as np
from matplotlib.figure import Figure
from xaibench.scoring import metaeval
methods = ["gradcam", "gradcam++", "integrated-gradients", "occlusion (window 8)", "random", "centre",
           "ground-truth", "rise", "lime", "saliency"]
blocks = np.random.default_rng(0).normal(size=(17, 10)) + np.linspace(0, 1.0, 10)
fig = Figure(figsize=(5, 5))
elements = metaeval.critical_difference_diagram(metaeval.friedman_posthoc(blocks, methods), ax=fig.subplots())
fig.savefig(sys.argv[1], format="png", metadata={"Software": None})
print(sorted(t.get_text() for t in elements["labels"]))
"""


def test_the_critical_difference_diagram_is_the_same_in_every_process(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Overlapping bars are stacked alike whatever the string hash seed (scikit-posthocs iterates sets of labels);
    each label keeps its method's name and mean rank."""
    outputs = []
    for seed in ("1", "2", "3"):
        png = tmp_path / f"cd{seed}.png"
        run = subprocess.run([sys.executable, "-c", CD_SCRIPT, str(png)], capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONHASHSEED": seed})
        outputs.append((png.read_bytes(), run.stdout))
    assert outputs[0] == outputs[1] == outputs[2]
    labels = eval(outputs[0][1])  # noqa: S307  (the sorted label texts printed above)
    methods = ["gradcam", "gradcam++", "integrated-gradients", "occlusion (window 8)", "random", "centre",
               "ground-truth", "rise", "lime", "saliency"]
    blocks = np.random.default_rng(0).normal(size=(17, 10)) + np.linspace(0, 1.0, 10)
    mean_ranks = scipy.stats.rankdata(-blocks, axis=1).mean(0)  # 1 = the highest score of a block
    expected = sorted(f"{m} ({r:.2g})" if r <= np.median(mean_ranks) else f"({r:.2g}) {m}"
                      for m, r in zip(methods, mean_ranks))
    assert labels == expected


def test_baseline_findings_name_a_baseline_only_when_it_beats_every_method() -> None:
    means = np.array([[0.5, 0.2], [0.6, 0.1], [0.9, 0.3]])  # methods m1, m2, baseline random
    found = metaeval.baseline_findings(means, ["m1", "m2", "random"], ["hit", "drop"], [True, False], ["random"])
    assert found == [("hit", "random")]


def test_internal_consistency_skips_a_metric_scored_on_no_sample() -> None:
    # a family member every method is "not applicable" to has a (L, 0) matrix: compared with nothing, never broadcast
    a = np.random.default_rng(2).random((3, 10))
    empty = np.empty((3, 0))
    assert metaeval.internal_consistency({"up": a, "same": a + 1, "none": empty},
                                         {"up": True, "same": True, "none": True}) == pytest.approx(1.0)
    assert np.isnan(metaeval.internal_consistency({"up": a, "none": empty}, {"up": True, "none": True}))

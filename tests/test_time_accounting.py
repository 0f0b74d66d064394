"""Time accounting: training, maps and scoring booked apart; every trained model counted."""
from __future__ import annotations

import json

from xaibench import leaderboard
from xaibench.contract.plugins import load_harness
from xaibench.running.runner import RunOptions, Runner
from xaibench.storage.store import Store
from xaibench.suites.suite import load_suite


def test_the_label_randomized_twin_is_counted_and_its_training_booked_apart(tmp_path, tiny_plugin) -> None:  # type: ignore[no-untyped-def]
    suite = tmp_path / "s.yaml"
    suite.write_text("name: ta\nseed: 0\nsamples: 8\ndatasets: [tiny]\nmodels: [tiny-cnn]\n"
                     "methods: [input-times-one, saliency]\nmetrics: [data-randomization, sparseness]\n")
    harness = load_harness([("tiny", tiny_plugin)])
    with Store(tmp_path / "r.sqlite") as store:
        summary = Runner(harness, load_suite(suite), store, RunOptions(progress=False, home=tmp_path / "home")).run()
        assert not summary.failed, summary.failed
        assert summary.models_trained == 2  # the model and its label-randomized twin
        rows = json.loads(leaderboard.export(store, "ta", "json"))
        csv_header = leaderboard.export(store, "ta", "csv").splitlines()[0]
    assert len(rows) == 4 and all(r["seconds"] >= 0 for r in rows)
    trained = [r for r in rows if r["training_seconds"] > 0]
    assert len(trained) == 1 and trained[0]["metric"] == "data-randomization"  # the twin is trained once
    assert sorted(r["method"] for r in rows if r["maps_seconds"] > 0) == ["input-times-one", "saliency"]
    assert csv_header.endswith(",seconds,maps_seconds,training_seconds")

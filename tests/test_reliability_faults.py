"""Fault isolation through the CLI: every fault kind, in methods and in metrics, fails only its cells.

The fault plugin (tests/faults.py) is loaded through a real entry point. Each kind
(raises, NaN, inf, wrong shape, wrong dtype, slow, mutates the model, calls sys.exit)
is injected once as a method and once as a metric; the run goes on, the errors are
stored, the leaderboard shows the cells as failed and the process exits 1 with a summary.
"""
from __future__ import annotations

import signal
import textwrap
import threading
import time

import faults
import pytest
import torch

from xaibench import leaderboard
from xaibench.base.errors import CellError
from xaibench.running.isolation import CellTimeout, ModelGuard, time_limit
from xaibench.storage.store import Store

xb = faults.xb  # the fixture running ``xaibench run`` in-process

METHODS = ["m-mutates", "probe"] + [f"m-{k}" for k in faults.FAULT_KINDS if k != "mutates"]
METRICS = ["mass", "t-mutates", "dic"] + [f"t-{k}" for k in faults.FAULT_KINDS if k != "mutates"]

#: What the stored error of each faulty method's cells (with any metric) says.
METHOD_ERRORS = {
    "m-raises": "RuntimeError: method exploded",
    "m-nan": "method returned NaN or infinite values",
    "m-inf": "method returned NaN or infinite values",
    "m-shape": "method returned shape (8, 3)",
    "m-dtype": "method returned dtype torch.complex64; expected real numbers",
    "m-slow": "CellTimeout: method 'm-slow' timed out after 2s",
    "m-mutates": "method 'm-mutates' changed the model's parameter 'features.0.weight' (values); "
                 "module 'model' (train/eval mode)",
    "m-exits": "SystemExit: 3",
}
#: What the stored error of each faulty metric's cell (on the well-behaved method) says.
METRIC_ERRORS = {
    "t-raises": "ValueError: metric exploded",
    "t-inf": "metric returned infinite scores",
    "t-shape": "metric returned shape (8, 2); expected (8,): one score per sample",
    "t-dtype": "metric returned ndarray of dtype <U4; expected real numbers",
    "t-slow": "CellTimeout: metric 't-slow' timed out after 2s",
    "t-mutates": "metric 't-mutates' changed the model's parameter 'features.0.weight' (values)",
    "t-exits": "SystemExit: 4",
}


def suite_text(methods: list[str], metrics: list[str], extra: str = "") -> str:
    return textwrap.dedent(f"""
        name: faults
        seed: 0
        samples: 8
        {extra}
        datasets: [squares]
        models: [probe-cnn]
        methods: [{", ".join(methods)}]
        metrics: [{", ".join(metrics)}]
        """)


def test_every_fault_kind_fails_only_its_cells_and_the_cli_exits_1_with_a_summary(xb) -> None:  # type: ignore[no-untyped-def]
    code, _, err, store_path = xb(suite_text(METHODS, METRICS, "cell_timeout: 2"))
    n_failed = len(METRICS) * (len(METHODS) - 1) + len(METRIC_ERRORS)
    assert code == 1
    assert f"{n_failed} cell(s) failed (stored with their errors; the rest of the run completed):" in err
    assert "Traceback" not in err
    with Store(store_path) as store:
        recs = {(r.method, r.metric): r for r in leaderboard.records(store, "faults")}
        for method, message in METHOD_ERRORS.items():
            for metric in METRICS:
                assert recs[(method, metric)].status == "failed" and message in recs[(method, metric)].detail
        for metric, message in METRIC_ERRORS.items():
            assert recs[("probe", metric)].status == "failed" and message in recs[("probe", metric)].detail
            line = next(x for x in err.splitlines() if f"squares / probe-cnn / probe / {metric}: " in x)
            assert message in line
        # a stored failure keeps the traceback summary that locates the plugin bug
        assert 'faults.py", line' in recs[("m-raises", "dic")].detail
        assert 'faults.py", line' in recs[("probe", "t-raises")].detail
        # NaN is a metric's way to say "undefined here": not a failure, a cell with no defined sample
        assert recs[("probe", "t-nan")].status == "ok" and recs[("probe", "t-nan")].n == 0
        ok = {k for k, r in recs.items() if r.status == "ok"}
        assert ok == {("probe", "mass"), ("probe", "dic"), ("probe", "t-nan")}
        md = leaderboard.render(store, "faults")
        assert md.count("**failed**") == n_failed and "undefined (n=0)" in md
        faulty = {m: store.scores(_key(store, "probe", m)) for m in ("mass", "dic")}

    # The model was restored after the mutating method and metric: the well-behaved cells score
    # exactly what a run without any faulty plugin gives.
    code, _, err, clean_path = xb(suite_text(["probe"], ["mass", "dic"]), store="clean.sqlite")
    assert code == 0, err
    with Store(clean_path) as clean:
        for m, scores in faulty.items():
            assert clean.scores(_key(clean, "probe", m)) == scores


def _key(store: Store, method: str, metric: str) -> str:
    return next(r.cell_key for r in store.plan("faults") if (r.method, r.metric) == (method, metric))


def test_fail_fast_stops_at_the_first_failed_cell(xb) -> None:  # type: ignore[no-untyped-def]
    code, _, err, store_path = xb(suite_text(["m-raises", "probe"], ["mass", "dic"]), "--fail-fast")
    assert code == 1 and "1 cell(s) failed" in err
    with Store(store_path) as store:
        assert store.counts()["cells"] == 1


def test_cli_cell_timeout_overrides_the_suite_and_must_be_positive(xb) -> None:  # type: ignore[no-untyped-def]
    code, _, err, _ = xb(suite_text(["m-slow", "probe"], ["mass"], "cell_timeout: 600"), "--cell-timeout", "0.5")
    assert code == 1 and "timed out after 0.5s" in err  # the message names the CLI's limit, not the suite's 600 s
    code, _, err, _ = xb(suite_text(["probe"], ["mass"], "cell_timeout: 600"), "--cell-timeout", "-1")
    assert code == 2 and "must be a positive number of seconds" in err


def test_time_limit_interrupts_python_restores_the_alarm_and_catches_what_it_cannot_interrupt() -> None:
    previous = signal.getsignal(signal.SIGALRM)
    with pytest.raises(CellTimeout, match="slow thing timed out after 0.2s"), time_limit(0.2, "slow thing"):
        time.sleep(30)
    assert signal.getsignal(signal.SIGALRM) is previous and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    with time_limit(5, "fast thing"):
        pass
    with time_limit(None, "unlimited"):
        time.sleep(0.01)

    # Off the main thread there is no SIGALRM: a call that overruns fails once it returns.
    caught: list[BaseException] = []

    def worker() -> None:
        try:
            with time_limit(0.05, "threaded call"):
                time.sleep(0.2)
        except CellTimeout as exc:
            caught.append(exc)

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert len(caught) == 1 and "threaded call timed out" in str(caught[0])


def test_model_guard_restores_values_modes_and_hooks() -> None:
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2)).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    guard = ModelGuard(model)
    assert guard.restore(model) == []
    model[0].weight.data.add_(1.0)
    model[1].running_mean.add_(3.0)
    model[0].bias.requires_grad_(False)
    model.train()
    model[0].register_forward_hook(lambda *a: None)
    changes = guard.restore(model)
    assert "parameter '0.weight' (values)" in changes and "parameter '1.running_mean' (values)" in changes
    assert "parameter '0.bias' (requires_grad)" in changes
    assert any("train/eval mode" in c for c in changes) and any("hook(s) left registered" in c for c in changes)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert not model.training and model[0].bias.requires_grad and not model[0]._forward_hooks
    model.register_buffer("extra", torch.zeros(1))
    with pytest.raises(CellError, match="structure changed"):
        guard.restore(model)

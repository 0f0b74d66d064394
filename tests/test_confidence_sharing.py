"""DiC and IiC of one cover share the covered input's pass (``MetricContext.shared``), and score as alone."""
from __future__ import annotations

from typing import Any, Hashable

import numpy as np
import torch

from xaibench.scoring.engine import Engine
from xaibench.running.execution import memoised
from xaibench.contract.metric_inputs import MetricContext
from xaibench.contract.plugins import load_harness
from xaibench.authoring.testing import score_metric, tiny_model

HARNESS = load_harness()


def _scores(names: list[str], memo: dict[Hashable, Any] | None) -> tuple[list[np.ndarray], int]:
    torch.manual_seed(0)
    model = tiny_model("image")
    x, maps = torch.rand(6, 1, 16, 16), torch.rand(6, 16, 16)
    engine = Engine(model, "cpu", 4)
    base = engine.logits(x)
    targets = base.argmax(1)
    engine.passes = 0
    out = []
    for name in names:
        spec = HARNESS.metrics.get(name)
        shared = {} if memo is None else {"shared": memoised(memo)}
        ctx = MetricContext(engine=engine, base_logits=base, **shared)
        out.append(score_metric(spec, ctx, x, targets, maps, **spec.defaults))
    return out, engine.passes


def test_dic_and_iic_of_one_cover_make_one_covered_pass_and_score_as_alone() -> None:
    names = ["dic", "iic", "dic-mask", "iic-mask"]
    together, passes = _scores(names, {})
    assert passes == 2 * 6  # two covers (darkened, thresholded mask), one pass of the 6 samples each
    alone = [_scores([name], None)[0][0] for name in names]
    for a, b in zip(together, alone):
        np.testing.assert_array_equal(a, b)
    assert _scores(names, None)[1] == 4 * 6  # unshared: one pass per metric

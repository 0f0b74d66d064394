"""The calibration verdict of one leaderboard section (dataset x model), from its own results.

A ranking of saliency methods means something only when the section passes four
checks, each computed from what the run stored:

- **the model learned**: its test accuracy is above the majority class's share,
  by the model gate (:mod:`xaibench.models.gate`: a one-sided exact binomial test at alpha 0.05); a segmenter's
  test Dice is above predicting background everywhere (the gate's bootstrap CI of the gain);
- **the chance baseline is at chance**: on every metric whose chance level is known
  in closed form (``MetricSpec.chance``), the 95% CI of the ``calibration="chance"``
  method (``random``) contains it; ``"mask-fraction"`` is the mean area fraction of
  the evaluated non-empty masks (Arras et al. 2022, Sec. 4);
- **the oracle is at its score**: the ``calibration="oracle"`` method
  (``ground-truth``) scores ``MetricSpec.oracle`` (1) wherever the metric fixes it;
- **CAM layers are not too coarse**: every layer a CAM method explains passes the plan's
  rule (:func:`xaibench.contract.specs.cam_size_ok`: at least :data:`~xaibench.contract.specs.MIN_CAM_SIZE` units
  along each spatial axis; a 2x2 map upsampled to the input is blocky and near chance on
  localization). Such a layer is planned only with ``allow_small_cam: true``, and it concerns
  the methods that explain it: the check names them (``Check.methods``) and the section still
  passes on its other checks, so integrated gradients or occlusion are not invalidated by a
  CAM method's layer.

A check with nothing to check (no chance baseline, no metric with a known chance
level, no CAM method) is listed as not checked, with the reason. The facts the checks
need that are not scores (chance levels, mask fractions, CAM layer sizes) are put in
the run's header by :func:`xaibench.scoring.calibration.calibration_facts` when the run is planned.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from xaibench.models.gate import ALPHA
from xaibench.models.gate import verdict as model_gate
from xaibench.leaderboard.board import Block, board
from xaibench.contract.specs import MIN_CAM_SIZE, cam_size_ok
from xaibench.storage.store import Store

#: Tolerance of the oracle check (scores are means of floats).
ORACLE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Check:
    """One calibration check of a section: its name, whether it passed, and the numbers behind it."""

    name: str
    passed: bool
    detail: str
    #: The methods the check concerns (a CAM layer's methods); empty: the whole section. A failed check that names
    #: methods marks their scores in the section, not the section.
    methods: tuple[str, ...] = ()


@dataclass(frozen=True)
class Verdict:
    """The calibration verdict of one dataset x model section: the checks that ran and those that could not."""

    dataset: str
    model: str
    checks: list[Check] = field(default_factory=list)
    not_run: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Every section-wide check that ran passed (a verdict with no check passes; ``not_run`` says why)."""
        return not self.failures

    @property
    def failures(self) -> list[Check]:
        """The section-wide checks that failed, in the order they ran."""
        return [c for c in self.checks if not c.passed and not c.methods]

    @property
    def method_failures(self) -> list[Check]:
        """The failed checks that concern named methods only (``Check.methods``), in the order they ran."""
        return [c for c in self.checks if not c.passed and c.methods]


def _fmt(v: float | None) -> str:
    return "–" if v is None or not math.isfinite(v) else f"{v:.3f}"


def section_verdict(block: Block, header: Mapping[str, Any]) -> Verdict:
    """The verdict of one leaderboard block, from its stored scores and the run's header."""
    verdict = Verdict(block.dataset, block.model)
    _model_check(block, verdict)
    if "calibration" not in header:
        verdict.not_run.append("baseline and CAM-layer checks: the stored run predates them; re-run the suite")
        return verdict
    facts = header["calibration"]
    roles = facts.get("methods", {})
    metric_facts = facts.get("metrics", {})
    rows = {r.method: r for r in block.rows}
    chance = [r for m, r in rows.items() if roles.get(m) == "chance"]
    oracle = [r for m, r in rows.items() if roles.get(m) == "oracle"]
    fraction = facts.get("mask_fraction", {}).get(block.pooled_from or block.dataset)
    known = [m for m in block.metrics if metric_facts.get(m, {}).get("chance") == "mask-fraction"]
    unknown = [m for m in block.metrics if m not in known and m in metric_facts]
    if not chance:
        verdict.not_run.append("chance baseline: the suite has no `random` (calibration: chance) method")
    elif not known or fraction is None:
        verdict.not_run.append("chance baseline: no metric here has a known chance level"
                               + ("" if fraction is not None else " (the dataset has no masks)"))
    else:
        for row in chance:
            for m in known:
                r = row.cells.get(m)
                if r is None or r.status != "ok" or r.n == 0 or r.ci_low is None or r.ci_high is None:
                    continue
                ok = bool(r.ci_low <= fraction <= r.ci_high)
                verdict.checks.append(Check(
                    f"`{row.method}` at chance on {m}", ok,
                    f"`{row.method}` on {m}: {_fmt(r.mean)} [{_fmt(r.ci_low)}, {_fmt(r.ci_high)}] "
                    f"{'contains' if ok else 'misses'} the chance level {fraction:.3f} (mean mask area fraction)"))
        if unknown:
            verdict.not_run.append(f"`random` on {', '.join(unknown)}: chance level not known in closed form")
    oracle_metrics = [m for m in block.metrics if metric_facts.get(m, {}).get("oracle") is not None]
    for row in oracle:
        for m in oracle_metrics:
            r = row.cells.get(m)
            if r is None or r.status != "ok" or r.n == 0 or r.mean is None:
                continue
            target = float(metric_facts[m]["oracle"])
            ok = bool(abs(r.mean - target) <= ORACLE_TOLERANCE)
            verdict.checks.append(Check(f"`{row.method}` at {target:g} on {m}", ok,
                                        f"`{row.method}` on {m}: {_fmt(r.mean)} (must be {target:g})"))
    if not oracle:
        verdict.not_run.append("oracle: the suite has no `ground-truth` (calibration: oracle) method")
    layers = facts.get("cam_layers", {}).get(f"{block.dataset} × {block.model}", {})
    names = facts.get("cam_layer_names", {}).get(f"{block.dataset} × {block.model}", {})
    for method, shape in layers.items():
        ok = cam_size_ok(shape)
        name = f" `{names[method]}`" if method in names else ""
        detail = (f"CAM layer of `{method}`{name}: {'x'.join(map(str, shape))} "
                  f"({'at least' if ok else 'under'} {MIN_CAM_SIZE} per axis)")
        verdict.checks.append(Check(f"CAM layer of `{method}`", ok, detail if ok else (
            f"{detail}, accepted with `allow_small_cam: true`: `{method}`'s scores in this section do not "
            f"localize; the other methods' are unaffected"), (method,)))
    if not layers:
        verdict.not_run.append("CAM layer size: no CAM method in the suite")
    return verdict


def _model_check(block: Block, verdict: Verdict) -> None:
    e = block.evaluation
    if not e or not e.get("n"):
        verdict.not_run.append("model accuracy: no test-split evaluation stored")
        return
    gate = e.get("gate") or model_gate(e)  # stored by the run; recomputed for runs stored before the gate
    if e.get("task") == "segmentation":
        low, high = e["gain_ci"]
        verdict.checks.append(Check(
            "segmenter above background", bool(gate["learned"]),
            f"segmenter Dice {e['dice']:.3f} vs {e['background_dice']:.3f} predicting background everywhere on "
            f"n={e['n']} test samples (gain 95% CI [{low:.3f}, {high:.3f}]"
            f"{'' if gate['learned'] else ', not above 0'})"))
        return
    n, acc, majority = int(e["n"]), float(e["accuracy"]), float(e["majority"])
    p, ok = float(gate["p_value"]), bool(gate["learned"])
    verdict.checks.append(Check(
        "model above the majority class", ok,
        f"model accuracy {acc:.3f} vs majority class {majority:.3f} on n={n} test samples "
        f"(one-sided binomial p={p:.2g}{'' if ok else f', not below {ALPHA}'})"))


def markdown(verdict: Verdict) -> list[str]:
    """The verdict as markdown lines for the top of its section (a failure first and in bold)."""
    if verdict.passed:
        lines = [f"**Calibration verdict: pass** ({len(verdict.checks)} checks).", ""]
        lines += [f"> **⚠ Not meaningful for {', '.join(f'`{m}`' for m in c.methods)}**: {c.detail}"
                  for c in verdict.method_failures]
        lines += [""] if verdict.method_failures else []
        lines += [f"- {c.detail}" for c in verdict.checks if c.passed]
    else:
        lines = [f"> **⚠ Calibration verdict: FAIL**: the ranking below is not meaningful until these are fixed.",
                 ">"]
        lines += [f"> - {c.detail}" for c in verdict.failures + verdict.method_failures]
        lines += ["", "Checks that passed:", ""] + [f"- {c.detail}" for c in verdict.checks if c.passed]
    if verdict.not_run:
        lines += [f"- not checked: {why}" for why in verdict.not_run]
    return lines + [""]


def as_json(verdict: Verdict) -> dict[str, Any]:
    """``{"passed": bool, "checks": [{"name", "passed", "detail", "methods"}], "not_run": [reason]}``; ``methods``:
    the methods a check concerns (empty: the section)."""
    return {"passed": verdict.passed, "not_run": list(verdict.not_run),
            "checks": [{"name": c.name, "passed": c.passed, "detail": c.detail, "methods": list(c.methods)}
                       for c in verdict.checks]}


def verdicts(store: Store, suite: str) -> list[Verdict]:
    """The verdict of every section of the suite's latest run."""

    header = store.header(suite) or {}
    return [section_verdict(b, header) for b in board(store, suite) if not b.skipped]


def summary_lines(store: Store, suite: str) -> list[str]:
    """One line per section for the command line; failing sections name what failed."""
    out = []
    for v in verdicts(store, suite):
        if v.passed:
            out.append(f"calibration verdict {v.dataset} × {v.model}: pass ({len(v.checks)} checks)"
                       + "".join(f"; {c.detail}" for c in v.method_failures))
        else:
            out.append(f"CALIBRATION VERDICT {v.dataset} × {v.model}: FAIL: "
                       + "; ".join(c.detail for c in v.failures))
    return out

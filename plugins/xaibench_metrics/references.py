"""The reference inputs of the metrics defined against one (completeness, sensitivity-n), without torch.

``FILLS`` are the fills (:mod:`xaibench.scoring.fills`) such a reference may be: constants, not functions of the input.
``REFERENCE`` pairs a metric's ``fill`` with the method's own baseline (:class:`xaibench.contract.specs.Pairing`):
IG, GradientSHAP and DeepLIFT call it ``baseline``, occlusion and feature ablation ``fill``. Completeness
(Sundararajan et al. 2017, Sec. 3, the completeness axiom: ``sum_i a_i = f(x) - f(b)``) and sensitivity-n
(Ancona et al. 2018, Sec. 3.2: the sum of attributions of a set equals the output drop when the set is set to
the baseline) hold for the baseline ``b`` the attributions were computed from, and only for it.
``OUTPUT`` pairs their ``output`` with what the method attributes: the logit.
"""
from __future__ import annotations

from xaibench.contract.specs import Pairing

FILLS = ("zero", "mean")

#: The output a method's additive attributions decompose: the target logit (the harness's methods explain the
#: model's logits), so a sum of attributions is compared with a change of the logit, never of a probability.
OUTPUT = Pairing(param="output", method_params=("output",), values=("logit",), implied="logit",
                 why="the output the method's attributions decompose (the target logit)")

REFERENCE = Pairing(param="fill", method_params=("baseline", "fill"), values=FILLS,
                    why="the method's own baseline (the reference input its attributions are relative to)")

"""Registers the location-supervised model and the method that reads its saliency branch.

The method ``supervised-saliency`` returns the model's own map (class-agnostic: it
shows where the model was taught to look), so the leaderboard scores it with the
same metrics as post-hoc methods on the same model family and data.
"""
from __future__ import annotations

from typing import Callable

from xaibench import hookimpl
from xaibench.contract.lazy import lazy
from xaibench.contract.specs import MethodSpec, ModelSpec, TrainRecipe

CITATION = ("Fan Z., Li X., location-supervised saliency (seed 002); cf. Li K. et al., Tell Me Where to Look: "
            "Guided Attention Inference Network, CVPR 2018")

#: The capability this plugin's model provides and its method requires (the runner skips other pairs).
BRANCH = "saliency-branch"


@hookimpl
def xaibench_register_models(register: Callable[[ModelSpec], None]) -> None:
    """Registers this plugin's model ``supervised-saliency-cnn`` with ``register`` (the ``xaibench_register_models`` hook), importing no torch."""
    register(ModelSpec(
        name="supervised-saliency-cnn",
        build=lazy("xaibench_supervised.model:build"),
        modalities=frozenset({"image", "signal"}),
        target_layer=lambda model: model.features[-1],
        description="small-cnn trunk with a saliency branch (branch: conv1x1 or attention) trained on the masks or "
                    "boxes (BCE + Dice) beside CE",
        recipe=TrainRecipe(epochs=15, batch_size=64, lr=2e-3, augment=("hflip",), patience=4),
        citation=CITATION,
        provides=frozenset({BRANCH}),
    ))


@hookimpl
def xaibench_register_methods(register: Callable[[MethodSpec], None]) -> None:
    """Registers this plugin's method ``supervised-saliency`` with ``register`` (the ``xaibench_register_methods`` hook), importing no torch."""
    register(MethodSpec(
        name="supervised-saliency",
        explain=lazy("xaibench_supervised.model:supervised_saliency"),
        modalities=frozenset({"image", "signal"}),
        needs_gradients=False,
        requires_model=frozenset({BRANCH}),
        description="the model's own mask-supervised saliency branch (class-agnostic); needs such a model",
        citation=CITATION,
        checked_against="equals the model's own branch output: tests/test_supervised.py::"
                        "test_method_reads_the_branch_and_refuses_models_without_one",
    ))

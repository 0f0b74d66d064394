"""Registers layer-wise relevance propagation (LRP) through zennit: the standard rules and composites.

Each method runs zennit's rules on the caller's model (canonized by zennit's ``ResNetCanonizer``:
BatchNorm merged into the convolution before it, torchvision ResNet adds made explicit) and returns
the input relevance summed over channels, in the target logit's units. ``covers``
(:func:`xaibench_zennit.coverage.lrp_covers`) marks every network with a layer or functional
operation LRP's rules do not define (SiLU, GELU, LayerNorm, a pre-activation BatchNorm, a residual
add zennit cannot canonize) not applicable, with the reason, before any training. See ``docs/lrp.md``.

The functions are named with :func:`xaibench.contract.lazy.lazy`: zennit and torch are imported at first use.
"""
from __future__ import annotations

from collections.abc import Callable

from xaibench import hookimpl
from xaibench.contract.lazy import lazy
from xaibench.contract.specs import MODALITIES, MethodSpec

OVERVIEW = ("Montavon, Binder, Lapuschkin, Samek & Mueller, Layer-wise relevance propagation: an overview, "
            "in Explainable AI, LNCS 11700, 2019, sec. 10.2")
BACH = "Bach et al., On pixel-wise explanations for non-linear classifier decisions by LRP, PLoS ONE 2015"
KOHLBRENNER = ("Kohlbrenner et al., Towards best practice in explaining neural network decisions with LRP, "
               "IJCNN 2020, sec. III")
ZENNIT = "through zennit 0.5 (Anders et al., arXiv 2106.13200), canonized (BatchNorm merged, ResNet adds as Sum)"
TESTS = "tests/test_methods_lrp.py"
FIRST_LAYER = (
    "tests/test_lrp_input_layer.py::test_the_input_layer_rule_lands_on_the_layer_that_reads_the_input_on_both_twins")


@hookimpl
def xaibench_register_methods(register: Callable[[MethodSpec], None]) -> None:
    """Registers the LRP rules and composites (zennit) with ``register`` (the ``xaibench_register_methods`` hook),
    importing no torch or zennit."""
    every = frozenset(MODALITIES)
    covers = lazy("xaibench_zennit.coverage:lrp_covers")
    first_layer_covers = lazy("xaibench_zennit.coverage:input_layer_covers")
    register(MethodSpec(
        name="lrp-epsilon", explain=lazy("xaibench_zennit.rules:lrp_epsilon"), modalities=every, covers=covers,
        # relevance is conserved layer by layer up to what epsilon and the biases absorb: on a bias-free ReLU
        # network the map sums to f_c(x) = f_c(x) - f_c(0), the quantity completeness metrics compare with
        additive=True,
        description="LRP-epsilon on every convolution and linear layer: additive, sums to the target logit up to "
                    "epsilon and biases " + ZENNIT,
        citation=f"{OVERVIEW}.2; {BACH}",
        defaults={"epsilon": 1e-6, "reduce": "sum"},
        checked_against=(f"Input x Gradient by hand on a bias-free ReLU net (the LRP-0 identity), conservation "
                         f"sum = logit, captum LRP (EpsilonRule) on a VGG-like net: {TESTS}::test_epsilon_is_input_"
                         f"times_gradient_without_biases, ::test_epsilon_conserves_the_logit, "
                         f"::test_epsilon_matches_captum_lrp"),
    ))
    register(MethodSpec(
        name="lrp-gamma", explain=lazy("xaibench_zennit.rules:lrp_gamma"), modalities=every, covers=covers,
        description="LRP-gamma (positive weights favoured by gamma = 0.25) on every convolution and linear layer "
                    + ZENNIT,
        citation=f"{OVERVIEW}.3", defaults={"gamma": 0.25, "reduce": "sum"},
        checked_against=f"captum LRP (GammaRule) on a bias-free VGG-like net: {TESTS}::test_gamma_matches_captum_lrp",
    ))
    register(MethodSpec(
        name="lrp-alpha-beta", explain=lazy("xaibench_zennit.rules:lrp_alpha_beta"), modalities=every, covers=covers,
        description="LRP-alpha-beta on every convolution and linear layer; alpha 1, beta 0 is the z+ rule " + ZENNIT,
        citation=f"{OVERVIEW}.4; {BACH}", defaults={"alpha": 1.0, "beta": 0.0, "reduce": "sum"},
        checked_against=f"captum LRP (Alpha1_Beta0_Rule) on a bias-free VGG-like net: "
                        f"{TESTS}::test_alpha_beta_matches_captum_lrp",
    ))
    register(MethodSpec(
        name="lrp-epsilon-plus-flat", explain=lazy("xaibench_zennit.rules:lrp_epsilon_plus_flat"), modalities=every,
        covers=first_layer_covers,
        description="zennit's EpsilonPlusFlat composite: flat rule on the layer that reads the input (found by the "
                    "data flow, not the definition order), z+ on the other convolutions, epsilon on dense layers " + ZENNIT,
        citation=f"{KOHLBRENNER}; {OVERVIEW}", defaults={"epsilon": 1e-6, "reduce": "sum"},
        checked_against=f"conservation (sum = logit) by hand on a bias-free net: {TESTS}::test_composites_conserve; "
                        f"zennit NameMapComposite by forward position: {FIRST_LAYER}",
    ))
    register(MethodSpec(
        name="lrp-epsilon-gamma-box", explain=lazy("xaibench_zennit.rules:lrp_epsilon_gamma_box"), modalities=every,
        covers=first_layer_covers,
        description="zennit's EpsilonGammaBox composite: box rule on the layer that reads the input (found by the data "
                    "flow; params low, high: the data's value range, required), gamma on the other convolutions, "
                    "epsilon on dense layers " + ZENNIT,
        citation=f"{OVERVIEW}, Fig. 10.2; {KOHLBRENNER}",
        defaults={"low": None, "high": None, "epsilon": 1e-6, "gamma": 0.25, "reduce": "sum"},
        checked_against=f"conservation (sum = logit) by hand on a bias-free net: {TESTS}::test_composites_conserve; "
                        f"zennit NameMapComposite by forward position: {FIRST_LAYER}",
    ))

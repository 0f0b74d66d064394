"""The specs of the metric families that live in their own modules, registered without importing them,
and the constants the specs share with the implementations.

Each family's functions are named here with :func:`xaibench.lazy.lazy`, so registering them
imports no torch; the module loads when the metric first runs.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from xaibench.lazy import lazy
from xaibench.specs import MetricSpec, ModelVariant

#: ROAD's default fractions of pixels removed (Rong et al. 2022, Sec. 5).
FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
#: The share of a map's pixels the overlap metrics select with ``selection: top-k``.
TOP_K = 0.1
#: The label-randomized twin of a model (data randomization test), trained and cached by the
#: runner under ``content_key("label-randomized", model key)``.
LABEL_RANDOMIZED = ModelVariant("label-randomized", lazy("xaibench_metrics.randomization:fit_on_permuted_labels"),
                                "the same architecture and recipe trained on permuted training labels")

BLUCHER = ("Blücher et al., Decoupling Pixel Flipping and Occlusion Strategy for Consistent XAI Benchmarks, "
           "TMLR 2024")
RIEGER = "Rieger and Hansen, IROF: a low resource evaluation metric for explanation methods, ICLR Workshop 2020"
YEH = "Yeh et al., On the (In)fidelity and Sensitivity of Explanations, NeurIPS 2019"
ALVAREZ_MELIS = "Alvarez-Melis and Jaakkola, On the Robustness of Interpretability Methods, ICML WHI 2018"
AGARWAL = "Agarwal et al., Rethinking Stability for Attribution-based Explanations, ICLR PAIR2Struct 2022"
#: What the robustness metrics take (``MetricSpec.needs``).
ROBUSTNESS_NEEDS = frozenset({"inputs", "maps", "explain", "sample_seeds"})
#: The definitions of the robustness metrics (``MetricSpec.formula``): ``Phi`` the method, ``x'_k = x + d_k`` the
#: draws, ``rel(u, v) = (u - v) / u``, ``h`` the logits, ``R`` the representation the classifier reads.
ROBUSTNESS_FORMULAS = {
    "max-sensitivity": "max_k ||Phi(x + d_k) - Phi(x)||_2 / ||Phi(x)||_2 (relative: true), d_k ~ U(-scale, scale)",
    "avg-sensitivity": "mean_k ||Phi(x + d_k) - Phi(x)||_2 / ||Phi(x)||_2 (relative: true), d_k ~ U(-scale, scale)",
    "local-lipschitz": "max_k ||Phi(x) - Phi(x'_k)||_2 / ||x - x'_k||_2, d_k ~ N(0, scale^2)",
    "relative-input-stability": "max_k ||rel(Phi(x), Phi(x'_k))|| / max(||rel(x, x'_k)||, eps_min) over draws keeping "
                                "the predicted class",
    "relative-representation-stability": "max_k ||rel(Phi(x), Phi(x'_k))|| / max(||rel(R(x), R(x'_k))||, eps_min) over "
                                         "draws keeping the predicted class",
    "relative-output-stability": "max_k ||rel(Phi(x), Phi(x'_k))|| / max(||h(x) - h(x'_k)||, eps_min) over draws "
                                 "keeping the predicted class",
}
#: The peer check shared by the six robustness metrics, and the hand check of each.
ROBUSTNESS_PEER = ("Quantus 0.6 (MaxSensitivity, AvgSensitivity, LocalLipschitzEstimate, RelativeInput/Output/"
                   "RepresentationStability) on the same draws: tests/test_metrics_robustness.py::"
                   "test_equals_quantus_on_the_same_draws")
ROBUSTNESS_HAND = {
    "max-sensitivity": "tests/test_metrics_robustness.py::test_sensitivity_of_the_identity_map_is_the_noise_norm_over_"
                       "the_map_norm",
    "avg-sensitivity": "tests/test_metrics_robustness_definitions.py::test_relative_sensitivity_is_nan_for_an_all_zero_"
                       "map_and_exact_for_a_map_of_norm_below_one",
    "local-lipschitz": "tests/test_metrics_robustness.py::test_a_map_invariant_to_the_perturbation_scores_zero",
    **dict.fromkeys(("relative-input-stability", "relative-representation-stability", "relative-output-stability"),
                    "tests/test_metrics_robustness_definitions.py::test_relative_stabilities_equal_the_equations_by_"
                    "hand_over_the_draws_that_keep_the_prediction"),
}
DASGUPTA = "Dasgupta, Frost and Moshkovitz, Framework for Evaluating Faithfulness of Local Explanations, ICML 2022"
SANITY_REVISITED = ("Hedström et al., Sanity Checks Revisited: An Exploration to Repair the Model Parameter "
                    "Randomisation Test, XAI in Action workshop, NeurIPS 2023")
RANDOM_LOGIT = "Sixt et al., When Explanations Lie: Why Many Modified BP Attributions Fail, ICML 2020"
#: The NaN rule every metric shares (``MetricSpec.undefined``): the runner scores a constant map NaN.
CONSTANT = "a constant map (the runner's rule for every metric: it ranks no pixel)"

symmetric_relevance_gain = lazy("xaibench_metrics.srg:symmetric_relevance_gain")
irof = lazy("xaibench_metrics.irof:irof")
avg_sensitivity = lazy("xaibench_metrics.robustness:avg_sensitivity")
local_lipschitz = lazy("xaibench_metrics.robustness:local_lipschitz")
max_sensitivity = lazy("xaibench_metrics.robustness:max_sensitivity")
relative_input_stability = lazy("xaibench_metrics.robustness:relative_input_stability")
relative_output_stability = lazy("xaibench_metrics.robustness:relative_output_stability")
relative_representation_stability = lazy("xaibench_metrics.robustness:relative_representation_stability")
consistency = lazy("xaibench_metrics.consistency:consistency")
efficient_mprt = lazy("xaibench_metrics.randomization_revisited:efficient_mprt")
random_logit = lazy("xaibench_metrics.randomization_revisited:random_logit")
smooth_mprt = lazy("xaibench_metrics.randomization_revisited:smooth_mprt")


def register_srg(register: Callable[[MetricSpec], None]) -> None:
    """Registers ``srg`` (category ``faithfulness``, higher is better) with ``register``."""
    register(MetricSpec(
        name="srg", bounds=(-1.0, 1.0), score=symmetric_relevance_gain,
        needs=frozenset({"inputs", "targets", "maps", "engine", "base_logits", "data_mean"}),
        category="faithfulness", higher_is_better=True,
        description="symmetric relevance gain: AUC of p_c removing the least relevant pixels first minus AUC "
                    "removing the most relevant first (training-mean fill)",
        citation=BLUCHER, defaults={"steps": 32, "fill": "mean", "blur_sigma": 2.0},
        formula="AUC_[0,1](p_c, least relevant pixels removed first) - AUC_[0,1](p_c, most relevant first), "
                "`steps` steps, removed pixels set to the fill",
        checked_against="both curves drawn by hand: tests/test_metrics_srg_irof.py::test_srg_is_lif_minus_mif_area_of_curves_drawn_by_hand; "
                        "the blur fill against scipy: tests/test_metrics_srg_irof.py::"
                        "test_srg_with_a_blur_fill_removes_pixels_to_scipys_gaussian_blur",
        undefined=f"only for {CONSTANT}"))


def register_irof(register: Callable[[MetricSpec], None]) -> None:
    """Registers ``irof`` (category ``faithfulness``, higher is better, images only) with ``register``."""
    register(MetricSpec(
        name="irof", bounds=(None, 1.0), score=irof,
        needs=frozenset({"inputs", "targets", "maps", "engine", "base_logits", "data_mean"}),
        category="faithfulness", higher_is_better=True, modalities=frozenset({"image"}),
        description="area over the curve of p_c / p_c(x) as SLIC superpixels are removed, most relevant first "
                    "(training-mean fill)",
        citation=RIEGER, defaults={"fill": "mean", "n_segments": 100, "compactness": 10.0},
        formula="1 - AUC_[0,1] over k = 0..S of p_c(x with the k most relevant SLIC segments set to the fill) / p_c(x)",
        checked_against="Quantus 0.6 IROF curves on the same SLIC segments (Quantus's unnormalised area): "
                        "tests/test_metrics_srg_irof.py::test_irof_curves_equal_quantus",
        undefined=f"p_c(x) is 0 in floating point (the curve divides by it), or {CONSTANT}"))


def register_robustness(register: Callable[[MetricSpec], None]) -> None:
    """Registers the robustness metrics (category ``robustness``, lower is better) with ``register``."""
    uniform = {"draws": 10, "noise": "uniform", "scale": 0.05}
    stability = {**uniform, "eps_min": 1e-6, "same_prediction": True}
    for name, score, what, reduce in (
        ("max-sensitivity", max_sensitivity, "max", "largest"),
        ("avg-sensitivity", avg_sensitivity, "mean", "mean"),
    ):
        register(MetricSpec(
            name=name, bounds=(0.0, None), score=score, needs=ROBUSTNESS_NEEDS, category="robustness", higher_is_better=False,
            description=f"{reduce} ||Phi(x+d) - Phi(x)|| / ||Phi(x)|| over `draws` uniform perturbations d "
                        "(the method re-run on each)", citation=YEH, defaults={**uniform, "relative": True},
            formula=ROBUSTNESS_FORMULAS[name], checked_against=f"{ROBUSTNESS_PEER}; by hand: {ROBUSTNESS_HAND[name]}",
            undefined=f"||Phi(x)|| = 0 with relative: true (an all-zero map), or {CONSTANT}"))
    register(MetricSpec(
        name="local-lipschitz", bounds=(0.0, None), score=local_lipschitz, needs=ROBUSTNESS_NEEDS, category="robustness", higher_is_better=False,
        description="largest ||Phi(x) - Phi(x')|| / ||x - x'|| over `draws` Gaussian perturbations",
        citation=ALVAREZ_MELIS, defaults={"draws": 10, "noise": "gaussian", "scale": 0.05},
        formula=ROBUSTNESS_FORMULAS["local-lipschitz"],
        checked_against=f"{ROBUSTNESS_PEER}; by hand: {ROBUSTNESS_HAND['local-lipschitz']}",
        undefined=f"only for {CONSTANT}"))
    for name, score, versus, extra in (
        ("relative-input-stability", relative_input_stability, "the relative change of the input", frozenset()),
        ("relative-representation-stability", relative_representation_stability,
         "the relative change of the representation the classifier reads", frozenset({"model"})),
        ("relative-output-stability", relative_output_stability, "the change of the logits", frozenset()),
    ):
        register(MetricSpec(
            name=name, bounds=(0.0, None), score=score, needs=ROBUSTNESS_NEEDS | {"engine", "base_logits"} | extra, category="robustness",
            higher_is_better=False,
            description=f"largest relative change of the map over {versus}, among uniform perturbations that keep "
                        "the predicted class", citation=AGARWAL,
            defaults=dict(stability, **({"layer": None} if "model" in extra else {})),
            formula=ROBUSTNESS_FORMULAS[name], checked_against=f"{ROBUSTNESS_PEER}; by hand: {ROBUSTNESS_HAND[name]}",
            undefined=f"every draw changes the predicted class (same_prediction: true), or {CONSTANT}"))


def register_consistency(register: Callable[[MetricSpec], None]) -> None:
    """Registers ``consistency`` (category ``robustness``, higher is better, in [0, 1]) with ``register``."""
    register(MetricSpec(
        name="consistency", bounds=(0.0, 1.0), score=consistency, needs=frozenset({"maps", "base_logits"}), category="robustness",
        higher_is_better=True,
        description="share of the other samples whose map peaks in the same grid cell that get the same "
                    "prediction", citation=DASGUPTA, defaults={"grid": 4, "abs": True},
        formula="#{j != i : g(a_j) = g(a_i), y^_j = y^_i} / #{j != i : g(a_j) = g(a_i)}, g(a) the grid cell of the "
                "peak of |a|, y^ the predicted class",
        checked_against="Quantus 0.6 Consistency with the same discretisation: tests/test_metrics_consistency.py::"
                        "test_equals_quantus_with_the_same_discretisation; by hand: tests/test_metrics_consistency.py::"
                        "test_hand_worked_labels_and_predictions",
        undefined=f"no other sample's map peaks in the same grid cell, or {CONSTANT}"))


def register_randomization_revisited(register: Callable[[MetricSpec], None]) -> None:
    """Registers eMPRT, sMPRT and the random logit test (category ``randomization``) with ``register``."""
    register(MetricSpec(
        name="emprt", bounds=(-1.0, None), score=efficient_mprt, version="2", needs=frozenset({"maps", "model", "explain", "model_seed", "shared"}),
        category="randomization", higher_is_better=True,
        description="relative rise of the map's histogram entropy when every layer is randomized "
                    "(higher: the map depends on the weights)", citation=SANITY_REVISITED, defaults={"n_bins": 100},
        formula="(H(Phi_rand(x)) - H(Phi(x))) / H(Phi(x)), H the entropy of the map's histogram in n_bins bins, "
                "Phi_rand on the fully randomized model",
        checked_against="Quantus 0.6 EfficientMPRT: tests/test_metrics_randomization_revisited.py::test_emprt_equals_quantus; "
                        "by hand: tests/test_metrics_randomization_revisited.py::"
                        "test_emprt_is_the_relative_entropy_rise_by_hand_and_nan_for_a_constant_trained_map",
        undefined=f"the trained model's map has a histogram entropy of 0, or {CONSTANT}"))
    register(MetricSpec(
        name="smprt", bounds=(-1.0, 1.0), score=smooth_mprt, version="2",
        needs=frozenset({"inputs", "maps", "model", "explain", "sample_seeds", "model_seed", "shared"}),
        category="randomization", higher_is_better=False,
        description="absolute Spearman correlation of noise-averaged maps of the trained and the fully randomized "
                    "model (lower: the map depends on the weights)", citation=SANITY_REVISITED,
        defaults={"draws": 10, "noise_magnitude": 0.1, "sign": "abs"},
        formula="|Spearman(mean_k Phi(x + e_k), mean_k Phi_rand(x + e_k))| over k = 1..draws, e_1 = 0, "
                "e_k ~ N(0, (noise_magnitude * (max x - min x))^2)",
        checked_against="Quantus 0.6 SmoothMPRT on the same noise (ours |rho|): tests/test_metrics_randomization_revisited.py::"
                        "test_smprt_equals_quantus_on_the_same_noise; by hand: tests/test_metrics_randomization_revisited.py::"
                        "test_smprt_averages_maps_over_noise_scaled_by_each_samples_range_by_hand",
        undefined=f"a noise-averaged map is constant (rank correlation undefined), or {CONSTANT}"))
    register(MetricSpec(
        name="random-logit", bounds=(-1.0, 1.0), score=random_logit, version="2",
        needs=frozenset({"targets", "maps", "base_logits", "explain", "sample_seeds"}),
        category="randomization", higher_is_better=False,
        description="absolute SSIM between the maps of the explained class and of a random other class "
                    "(lower: the map depends on the class)", citation=RANDOM_LOGIT,
        defaults={"similarity_measure": "ssim", "sign": "abs"},
        formula="|SSIM(Phi_c(x), Phi_c'(x))|, c' drawn uniformly from the classes other than c",
        checked_against="Quantus 0.6 RandomLogit with Spearman similarity (ours |rho|): "
                        "tests/test_metrics_randomization_revisited.py::test_random_logit_equals_quantus_with_spearman_similarity",
        undefined="the explained class's map is constant (with similarity_measure: spearman, the other class's map "
                  f"too: rank correlation undefined), or {CONSTANT}"))


def mprt_description(label: str) -> Callable[[Mapping[str, Any]], str]:
    """``describe(params)`` of MPRT with similarity ``label``: names the randomization that ``steps`` gives.

    ``steps: 1`` re-initialises every layer at once (the fully randomized model, not a cascade);
    more steps are a cascade of that many stages over the layers, top first, which is the paper's
    layer-by-layer cascade only for a model with at most ``steps`` randomizable layers.
    """
    def describe(params: Mapping[str, Any]) -> str:
        steps = int(params["steps"])
        if steps == 1:
            what = ("MPRT, fully randomized model only (steps: 1, not a cascade): absolute "
                    f"{label} between the maps of the trained model and of the model with every layer re-initialised")
        else:
            what = (f"MPRT, cascade of {steps} stages spread over the layers, top first (layer by layer only for "
                    f"a model with at most {steps} layers to randomize): absolute {label} between the maps of the "
                    "trained and of the randomized model, averaged over the stages")
        return what + "; lower: the map depends on the weights"
    return describe

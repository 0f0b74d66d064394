"""The specs of the metric families that live in their own modules, registered without importing them,
and the constants the specs share with the implementations.

Each family's functions are named here with :func:`xaibench.contract.lazy.lazy`, so registering them
imports no torch; the module loads when the metric first runs.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from xaibench.contract.lazy import lazy
from xaibench.contract.specs import MetricSpec, ModelVariant

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
#: The NaN rule every metric shares (``MetricSpec.undefined``): the runner scores a constant map NaN
#: (xaibench.scoring.degenerate), whatever the metric.
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
        formula="m(x_i) = |{j != i : e(x_j) = e(x_i), f(x_j) = f(x_i)}| / |{j != i : e(x_j) = e(x_i)}|, e = peak's cell",
        checked_against="the paper's local and global consistency by brute force over pairs: "
                        "tests/test_metrics_consistency.py::test_the_papers_definition_local_and_global; Quantus 0.6 "
                        "Consistency with the same discretisation (it scores 'no peer' 0): "
                        "tests/test_metrics_consistency.py::test_equals_quantus_with_the_same_discretisation",
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
        name="smprt", bounds=(0.0, 1.0), score=smooth_mprt, version="2",
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
        name="random-logit", bounds=(0.0, 1.0), score=random_logit, version="2",
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


ALVAREZ_MELIS_SENN = ("Alvarez-Melis and Jaakkola, Towards Robust Interpretability with Self-Explaining Neural "
                      "Networks, NeurIPS 2018, Sec. 3")
ARYA = ("Arya et al., One Explanation Does Not Fit All: A Toolkit and Taxonomy of AI Explainability Techniques, "
        "arXiv:1909.03012, 2019")
NGUYEN = "Nguyen and Martinez, On Quantitative Aspects of Model Interpretability, arXiv:2007.07584, 2020"
SAMEK = ("Samek et al., Evaluating the Visualization of What a Deep Neural Network Has Learned, IEEE TNNLS 2017, "
         "Sec. III")
MONTAVON = ("Montavon, Samek and Müller, Methods for Interpreting and Understanding Deep Neural Networks, Digital "
            "Signal Processing 2018, Sec. 5")
MESGARI = ("Mesgari, Ma, Samek, Lapuschkin and Weber, Structural Compactness as a Complementary Criterion for "
           "Explanation Quality, arXiv:2603.29491, 2026 (Quantus PR #377)")
#: What the metrics that rank pixels and read the model's outputs take.
RANKED = frozenset({"inputs", "targets", "maps", "engine", "base_logits", "sample_seeds"})

faithfulness_estimate = lazy("xaibench_metrics.monotonicity:faithfulness_estimate")
monotonicity = lazy("xaibench_metrics.monotonicity:monotonicity")
monotonicity_correlation = lazy("xaibench_metrics.monotonicity:monotonicity_correlation")
region_perturbation = lazy("xaibench_metrics.regions:region_perturbation")
selectivity = lazy("xaibench_metrics.regions:selectivity")
sufficiency = lazy("xaibench_metrics.consistency:sufficiency")
effective_complexity = lazy("xaibench_metrics.complexity:effective_complexity")
mst_compactness = lazy("xaibench_metrics.compactness:mst_compactness")

PEER_TEST = "tests/test_metrics_peers_extra.py"


def register_ranked_faithfulness(register: Callable[[MetricSpec], None]) -> None:
    """Registers Faithfulness Estimate, Monotonicity (Arya) and Monotonicity Correlation (Nguyen & Martinez)."""
    register(MetricSpec(
        name="faithfulness-estimate", bounds=(-1.0, 1.0), score=faithfulness_estimate,
        needs=RANKED | {"data_mean"}, category="faithfulness", higher_is_better=True,
        description="Pearson correlation, over `steps` groups of pixels ranked by the map, between the map's sum over "
                    "a group and the drop of the target's `output` when that group alone is set to `fill`",
        formula="FE = corr_g( sum_{i in G_g} a_i , f(x) - f(x_{G_g <- fill}) )",
        undefined="the output drops or the map's group sums do not vary over the groups: Pearson correlation undefined",
        checked_against=f"Quantus 0.6 FaithfulnessEstimate (features_in_step = P/steps, baseline 0): {PEER_TEST}"
                        "::test_faithfulness_estimate",
        citation=ALVAREZ_MELIS_SENN, defaults={"steps": 64, "fill": "zero", "output": "logit"}))
    register(MetricSpec(
        name="monotonicity-arya", bounds=(0.0, 1.0), score=monotonicity,
        needs=RANKED | {"data_mean"}, category="faithfulness", higher_is_better=True,
        description="1 when p_c never falls as `steps` groups of the input are put back onto the `fill`, least "
                    "relevant first, else 0",
        formula="M = 1[ p_c(x^(1)) <= p_c(x^(2)) <= ... <= p_c(x^(steps)) ], x^(s): the s least relevant groups restored",
        checked_against=f"Quantus 0.6 Monotonicity's loop with a perturb_func that puts the input back: {PEER_TEST}"
                        "::test_monotonicity_arya; as shipped, Quantus writes the baseline into the all-baseline "
                        "canvas, its curve is flat and every map scores 1 (pinned there); by hand on a linear model: "
                        f"{PEER_TEST}::test_monotonicity_arya_by_hand",
        undefined=f"only for {CONSTANT}",
        citation=ARYA, defaults={"steps": 32, "fill": "zero", "abs": False}))
    register(MetricSpec(
        name="monotonicity-correlation", bounds=(-1.0, 1.0), score=monotonicity_correlation,
        needs=RANKED, category="faithfulness", higher_is_better=True,
        description="Spearman correlation, over `steps` groups of pixels, between the map's |sum| over a group and "
                    "the mean squared change of p_c when the group is replaced by a uniform value (`draws` draws)",
        formula="MC = spearman_g( sum_{i in G_g} |a_i| , E_u[(f(x) - f(x_{G_g <- u}))^2] / f(x)^2 ), u ~ U[low, high]",
        undefined="the map's group sums or the output changes are constant over the groups: rank correlation "
                  "undefined",
        checked_against=f"Quantus 0.6 MonotonicityCorrelation, the same draws: {PEER_TEST}"
                        "::test_monotonicity_correlation",
        citation=NGUYEN, defaults={"steps": 32, "draws": 8, "low": 0.0, "high": 1.0, "abs": True, "output": "prob"}))


def register_patch_faithfulness(register: Callable[[MetricSpec], None]) -> None:
    """Registers Region Perturbation (MoRF, LeRF) and Selectivity: patches removed in the map's order."""
    for order, better, what in (("morf", True, "most"), ("lerf", False, "least")):
        register(MetricSpec(
            name=f"region-perturbation-{order}", bounds=(-1.0, 1.0),
            score=region_perturbation, needs=RANKED | {"data_mean"}, category="faithfulness",
            higher_is_better=better,
            description=f"AOPC: mean drop of p_c as `patch`-pixel patches are set to `fill`, {what} relevant "
                        "(by the map's sum over the patch) first",
            formula="AOPC = 1/(L+1) sum_{k=0}^{L} ( p_c(x) - p_c(x^(k)) ), x^(k): the first k patches removed",
            checked_against=f"Quantus 0.6 RegionPerturbation curve (baseline 0), summed: {PEER_TEST}"
                            "::test_region_perturbation",
            undefined=f"only for {CONSTANT}",
            citation=SAMEK, defaults={"patch": 8, "order": order, "steps": None, "fill": "zero"}))
    register(MetricSpec(
        name="selectivity", bounds=(0.0, 1.0), score=selectivity,
        needs=RANKED | {"data_mean"}, category="faithfulness", higher_is_better=False,
        description="area under p_c (x-axis scaled to [0, 1], from the input) as `patch`-pixel patches are set "
                    "to `fill`, most relevant first",
        formula="S = AUC_[0,1]( p_c(x^(0)), ..., p_c(x^(K)) ), x^(k): the k most relevant patches removed",
        checked_against=f"Quantus 0.6 Selectivity curve (baseline 0), with p_c(x) prepended: {PEER_TEST}"
                        "::test_selectivity",
        undefined=f"only for {CONSTANT}",
        citation=MONTAVON, defaults={"patch": 8, "fill": "zero"}))


def register_sufficiency(register: Callable[[MetricSpec], None]) -> None:
    """Registers ``sufficiency`` (Dasgupta et al. 2022, category ``faithfulness``, higher is better, in [0, 1])."""
    register(MetricSpec(
        name="sufficiency", bounds=(0.0, 1.0), score=sufficiency,
        needs=frozenset({"maps", "base_logits"}), category="faithfulness", higher_is_better=True,
        description="share of the other samples of the cell whose scaled maps lie within `threshold` of the "
                    "sample's (standardised Euclidean distance / the largest) that get the same prediction; maps "
                    "scaled by their own largest |a| (`normalise: sample`) or the batch's (`batch`, Quantus's)",
        formula="Suff_i = |{j != i : d(a_i, a_j) <= t, f(x_j) = f(x_i)}| / |{j != i : d(a_i, a_j) <= t}|",
        undefined="no other sample of the cell has a map within the threshold",
        checked_against=f"Quantus 0.6 Sufficiency, same maps (Quantus returns 0 where we return NaN): {PEER_TEST}"
                        "::test_sufficiency; normalise: batch equals Quantus's scaling and sample differs, on "
                        f"maps of different scales: {PEER_TEST}::test_sufficiency_scales_per_map_or_per_batch",
        citation=DASGUPTA, defaults={"threshold": 0.6, "abs": True, "normalise": "sample"}))


def register_map_complexity(register: Callable[[MetricSpec], None]) -> None:
    """Registers Effective Complexity and MST-C (category ``complexity``)."""
    register(MetricSpec(
        name="effective-complexity", bounds=(0.0, 1.0), score=effective_complexity,
        category="complexity", higher_is_better=False,
        description="share of pixels whose |relevance| exceeds `eps` times the map's largest (`normalise: sample`) "
                    "or the batch's (`batch`, Quantus's)",
        formula="EC = |{i : |a_i| / max_j |a_j| > eps}| / P, max over the map (sample) or the batch",
        undefined="an all-zero map: nothing to measure (Quantus refuses the batch)",
        checked_against=f"Quantus 0.6 EffectiveComplexity / P: {PEER_TEST}::test_effective_complexity; normalise: "
                        "batch equals Quantus on maps of different scales, sample counts each map on its own: "
                        f"{PEER_TEST}::test_effective_complexity_scales_per_map_or_per_batch",
        citation=NGUYEN, defaults={"eps": 1e-5, "normalise": "sample"}))
    register(MetricSpec(
        name="mst-c", modalities=frozenset({"image"}), bounds=(0.0, None), score=mst_compactness,
        category="complexity", higher_is_better=True,
        description="minimum spanning tree compactness of the pixels above the `threshold` percentile of |map|: "
                    "their count over (MST length x sqrt(convex hull area)), times 100 x the image diagonal",
        formula="MST-C = 100 D |V| / (L_MST(V) sqrt(A_hull(V)))",
        undefined="fewer than 2 salient pixels, or an all-zero map (Quantus PR #377 scores it 0)",
        checked_against=f"hand value on a 5x5 block: {PEER_TEST}::test_mst_c_by_hand; Quantus PR #377's MSTC "
                        f"re-derived with its scipy/scikit-learn calls: {PEER_TEST}"
                        "::test_mst_c_matches_the_reference_construction",
        citation=MESGARI, defaults={"threshold": 80.0, "k": 20}))


KINDERMANS = ("Kindermans et al., The (Un)reliability of Saliency Methods, in Explainable AI: Interpreting, "
              "Explaining and Visualizing Deep Learning, Springer 2019, Sec. 2")
ARIAS_DUART = ("Arias-Duart, Parés, Garcia-Gasulla and Giménez-Ábalos, Focus! Rating XAI Methods and Finding "
               "Biases, FUZZ-IEEE 2022, Sec. III")

non_sensitivity = lazy("xaibench_metrics.axiomatic:non_sensitivity")
input_invariance = lazy("xaibench_metrics.axiomatic:input_invariance")
continuity = lazy("xaibench_metrics.continuity:continuity")
focus = lazy("xaibench_metrics.focus:focus")


def register_axiomatic(register: Callable[[MetricSpec], None]) -> None:
    """Registers Non-Sensitivity and Input Invariance (category ``axiomatic``)."""
    register(MetricSpec(
        name="non-sensitivity", bounds=(0.0, 1.0), score=non_sensitivity,
        needs=frozenset({"inputs", "targets", "maps", "engine", "base_logits", "data_mean"}),
        category="axiomatic", higher_is_better=False,
        description="share of `patch`-pixel patches where zero relevance (scaled by the map's largest patch, "
                    "`normalise: sample`, or the batch's, `batch`, Quantus's) and insensitivity of p_c (setting the "
                    "patch to `fill` moves it by < `eps`) disagree",
        formula="NS = |Z xor I| / patches, Z = {g : |a|_g / max |a| < eps}, "
                "I = {g : |p_c(x) - p_c(x_{g <- fill})| < eps}, max over the map (sample) or the batch",
        undefined="an all-zero map: no relevance to compare",
        checked_against=f"Quantus 0.6 NonSensitivity (features_in_step=1, baseline 0) / P with patch 1, and by hand: "
                        f"{PEER_TEST}::test_non_sensitivity (Quantus raises with features_in_step > 1); normalise: "
                        f"batch equals Quantus on maps of different scales: {PEER_TEST}"
                        "::test_non_sensitivity_scales_per_map_or_per_batch",
        citation=NGUYEN, defaults={"patch": 4, "eps": 1e-5, "fill": "zero", "output": "prob", "normalise": "sample"}))
    register(MetricSpec(
        name="input-invariance", bounds=(0.0, 1.0), score=input_invariance,
        needs=frozenset({"inputs", "maps", "model", "explain"}), category="axiomatic", higher_is_better=True,
        description="1 when the map of x + `shift` under the model whose first layer absorbs the shift equals the "
                    "map of x (within `tol` of its largest value), else 0",
        formula="II = 1[ max |Phi_{f'}(x + c) - Phi_f(x)| <= tol max |Phi_f(x)| ], f'(x + c) = f(x)",
        undefined="an all-zero map",
        checked_against=f"by hand (f'(x + c) = f(x) on the logits; gradient 1, gradient x input 0): {PEER_TEST}"
                        "::test_input_invariance; Quantus 0.6 leaves the first input value unshifted (pinned)",
        citation=KINDERMANS, defaults={"shift": -1.0, "tol": 1e-4}))


def register_continuity(register: Callable[[MetricSpec], None]) -> None:
    """Registers ``continuity`` (Montavon et al. 2018, category ``robustness``, lower is better)."""
    register(MetricSpec(
        name="continuity", bounds=(0.0, None), score=continuity,
        needs=frozenset({"inputs", "maps", "explain", "data_mean"}), category="robustness", higher_is_better=False,
        description="largest ||R(x) - R(x')||_1 / ||x - x'||_2 over translations x' of x by `shifts` pixels along "
                    "the last axis (maps scaled by their own largest |value|, `normalise: sample`, or the batch's, "
                    "`batch`, Quantus's, or not, `none`; absolute)",
        formula="C = max_{t in shifts} ||R(x) - R(x_t)||_1 / ||x - x_t||_2",
        undefined="no translation changes the input (constant along the last axis)",
        checked_against=f"Quantus 0.6 Continuity on its nonzero translations, unscaled maps and with normalise: batch "
                        f"(Quantus's scaling): {PEER_TEST}::test_continuity (Quantus fills with the sample's minimum "
                        "whatever its baseline; its batch scaling makes a score depend on the other samples: pinned "
                        f"there); by hand: {PEER_TEST}::test_continuity_by_hand",
        citation=MONTAVON, defaults={"shifts": (1, 2, 3, 4), "fill": "zero", "normalise": "sample", "abs": True}))


def register_focus(register: Callable[[MetricSpec], None]) -> None:
    """Registers ``focus`` (Arias-Duart et al. 2022, category ``localization``, images only)."""
    register(MetricSpec(
        name="focus", modalities=frozenset({"image"}), bounds=(0.0, 1.0), score=focus,
        needs=frozenset({"inputs", "targets", "explain", "sample_seeds"}), category="localization",
        higher_is_better=True,
        description="share of positive relevance on the explained class's two tiles of a 2x2 mosaic (two images "
                    "of the class, two of others; tiles at half size)",
        formula="F = sum_{tiles of c} a^+ / sum a^+ on the mosaic's map",
        undefined="the cell has no other sample of the class or fewer than two of other classes, or the mosaic's "
                  "map has no positive relevance",
        checked_against=f"Quantus 0.6 Focus on the same (square) mosaics and maps: {PEER_TEST}::test_focus; by hand: "
                        f"{PEER_TEST}::test_focus_by_hand",
        citation=ARIAS_DUART))


DOMENICONI = "Domeniconi, How to Evaluate and Refine your CAM, ICPR 2026 (pytorch-grad-cam PR #595)"
arcc = lazy("xaibench_metrics.arcc:arcc")


def register_arcc(register: Callable[[MetricSpec], None]) -> None:
    """Registers ``arcc`` (category ``faithfulness``, higher is better, in [0, 1])."""
    register(MetricSpec(
        name="arcc", bounds=(0.0, 1.0), score=arcc,
        needs=frozenset({"inputs", "targets", "maps", "engine", "sample_seeds", "explain"}), category="faithfulness",
        higher_is_better=True,
        description="harmonic mean of coherency (map of x * L vs L), 1 - complexity (mean of L) and "
                    "clip(2 ROAD-combined) of the map L scaled to [0, 1]",
        formula="ARCC = 3 / (1/Coh + 1/(1 - Comp) + 1/clip(ROAD_LeRF - ROAD_MoRF, 0, 1))",
        undefined="the map, or the method's map of the input masked by it, is constant: Pearson correlation "
                  "undefined",
        checked_against=f"pytorch-grad-cam ARCC (PR #595) with GradCAM, imputation noise 0, on maps without ties "
                        f"across a removal cut: {PEER_TEST}::test_arcc (it removes every pixel at a tied percentile; "
                        f"ROAD and ours exactly round(f P)); by hand: {PEER_TEST}::test_arcc_components_by_hand",
        citation=DOMENICONI, defaults={"percentiles": (20, 40, 60, 80), "noise": 0.01}))

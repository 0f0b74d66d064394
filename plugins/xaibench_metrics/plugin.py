"""Registers the built-in metrics with their categories, directions and citations.

Directions of the DiC/IiC variants (seed 001). Covering the *non-essential* part
(the Grad-CAM++ setting: keep what the map marks) should leave the confidence
intact, so a lower drop and a higher increase rate are better. Covering the
*important* part (remove what the map marks) should destroy the evidence, so there
a *larger* drop is better and an increase in confidence is a failure: the
``-important`` variants flip ``higher_is_better``.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from xaibench import hookimpl
from xaibench.contract.lazy import lazy
from xaibench.contract.specs import MODALITIES, MetricSpec
from xaibench_metrics.checks import checked
from xaibench_metrics.families import (
    CONSTANT,
    FRACTIONS,
    LABEL_RANDOMIZED,
    TOP_K,
    mprt_description,
    register_arcc,
    register_axiomatic,
    register_consistency,
    register_continuity,
    register_focus,
    register_irof,
    register_map_complexity,
    register_patch_faithfulness,
    register_randomization_revisited,
    register_ranked_faithfulness,
    register_robustness,
    register_srg,
    register_sufficiency,
)
from xaibench_metrics.references import OUTPUT, REFERENCE
from xaibench_metrics.segspecs import register_segmentation

# The scoring functions load with their modules (and torch) when a metric first runs (xaibench.contract.lazy).
completeness_error = lazy("xaibench_metrics.completeness:completeness_error")
faithfulness_correlation = lazy("xaibench_metrics.completeness:faithfulness_correlation")
sensitivity_n = lazy("xaibench_metrics.completeness:sensitivity_n")
entropy = lazy("xaibench_metrics.complexity:entropy")
sparseness = lazy("xaibench_metrics.complexity:sparseness")
drop_in_confidence = lazy("xaibench_metrics.confidence:drop_in_confidence")
increase_in_confidence = lazy("xaibench_metrics.confidence:increase_in_confidence")
deletion_auc = lazy("xaibench_metrics.deletion:deletion_auc")
deletion_curve = lazy("xaibench_metrics.deletion:deletion_curve")
insertion_auc = lazy("xaibench_metrics.deletion:insertion_auc")
insertion_curve = lazy("xaibench_metrics.deletion:insertion_curve")
infidelity = lazy("xaibench_metrics.infidelity:infidelity")
energy_pointing_game = lazy("xaibench_metrics.localization:energy_pointing_game")
graded_hit_rate = lazy("xaibench_metrics.localization:graded_hit_rate")
mask_overlap = lazy("xaibench_metrics.localization:mask_overlap")
overlap_check = lazy("xaibench_metrics.localization:overlap_check")
relevance_mass_accuracy = lazy("xaibench_metrics.localization:relevance_mass_accuracy")
relevance_rank_accuracy = lazy("xaibench_metrics.localization:relevance_rank_accuracy")
hit_rate = lazy("xaibench_metrics.pointing:hit_rate")
pixel_auc = lazy("xaibench_metrics.localization:pixel_auc")
data_randomization = lazy("xaibench_metrics.randomization:data_randomization")
model_randomization = lazy("xaibench_metrics.randomization:model_randomization")
road = lazy("xaibench_metrics.road:road")

GRADCAM_PP = "Chattopadhay et al., Grad-CAM++, WACV 2018; variants of seed 001"
RISE = "Petsiuk et al., RISE: Randomized Input Sampling for Explanation of Black-box Models, BMVC 2018"
ROAD = "Rong et al., A Consistent and Efficient Evaluation Strategy for Attribution Methods (ROAD), ICML 2022"
CLEVR_XAI = "Arras et al., CLEVR-XAI: A benchmark dataset for the ground truth evaluation of neural network explanations, Information Fusion 2022"
EMPTY_MASK = f"an empty mask (no lesion to score against), or {CONSTANT}"


def _mask_fraction(params: Any) -> str:
    """A uniformly random map puts the mask's area fraction of its relevance (and of its top-|mask|
    pixels) inside the mask, in expectation (Arras et al. 2022, Sec. 4)."""
    return "mask-fraction"


def _exact_pointing_chance(params: Any) -> str | None:
    """With tolerance 0 a uniformly random map's peak hits with the mask's area fraction; with a
    tolerance the chance level is the area of the dilated mask, which the store does not keep."""
    return "mask-fraction" if float(params.get("tolerance", 0)) == 0 else None
SANITY = "Adebayo et al., Sanity Checks for Saliency Maps, NeurIPS 2018"
BHATT = "Bhatt et al., Evaluating and Aggregating Feature-based Model Explanations, IJCAI 2020"

#: The metrics checked on volumes (tests/test_metrics_volumes.py) declare every modality.
ANY = frozenset(MODALITIES)
#: What the metrics that perturb inputs and read the model's outputs take (``MetricSpec.needs``).
MODEL = frozenset({"inputs", "targets", "maps", "engine"})
#: What the mask-scoring metrics take: the maps, the masks and the memo their fused kernel call shares.
MASK = frozenset({"maps", "masks", "shared"})

#: (suffix, cover, fill, what is covered) of the four seed-001 DiC/IiC variants.
CONFIDENCE_VARIANTS = (
    ("", "nonessential", "darken", "the image darkened by the map (x*L): non-essential part covered"),
    ("-mask", "nonessential", "zero", "pixels below the threshold zeroed: non-essential part covered"),
    ("-important", "important", "darken", "the image darkened by 1-L: important part covered"),
    ("-mask-important", "important", "zero", "pixels at or above the threshold zeroed: important part covered"),
)
#: The covered input ``x_L`` of each DiC/IiC variant (``t`` the ``threshold``), for ``MetricSpec.formula``.
COVERED = {"": "x * L", "-mask": "x * 1[L >= t]", "-important": "x * (1 - L)", "-mask-important": "x * 1[L < t]"}
#: The test that checks each variant's covered input by hand (every variant of ``dic`` and ``iic``).
COVER_TEST = ("tests/test_confidence_definitions.py::test_average_drop_variants_cover_the_image_as_defined; "
              "tests/test_confidence_definitions.py::test_mask_threshold_keeps_the_pixels_at_the_threshold")


def _register_confidence(register: Callable[[MetricSpec], None]) -> None:
    for suffix, cover, fill, what in CONFIDENCE_VARIANTS:
        defaults: dict[str, Any] = {"cover": cover, "fill": fill, "threshold": 0.5, "sign": "positive"}
        important = cover == "important"
        register(MetricSpec(
            name=f"dic{suffix}", modalities=ANY, bounds=(0.0, 100.0), score=drop_in_confidence, version="2",
            needs=MODEL | {"base_logits", "shared"},
            category="faithfulness", higher_is_better=important,
            description=f"Average Drop (% confidence lost) with {what}", citation=GRADCAM_PP, defaults=defaults,
            undefined=f"p_c(x) is 0 in floating point (a `target: label` class the model rules out), or {CONSTANT}",
            formula=f"DiC = 100 * max(0, p_c(x) - p_c({COVERED[suffix]})) / p_c(x)",
            checked_against=("pytorch-grad-cam CamMultImageConfidenceChange on the same min-max scaled L: "
                             "tests/test_peers_gradcam.py::test_registered_dic_iic_scale_the_map_as_pytorch_grad_cam_scales_a_cam; "
                             if not suffix else "") + "the covered input by hand: " + COVER_TEST,
        ))
        register(MetricSpec(
            name=f"iic{suffix}", modalities=ANY, bounds=(0.0, 100.0), score=increase_in_confidence, version="2",
            needs=MODEL | {"base_logits", "shared"},
            category="faithfulness", higher_is_better=not important,
            description=f"Increase in Confidence (% of samples whose confidence rises) with {what}",
            citation=GRADCAM_PP, defaults=defaults, undefined=f"only for {CONSTANT}",
            formula=f"IiC = 100 * 1[p_c({COVERED[suffix]}) > p_c(x)]",
            checked_against=("pytorch-grad-cam CamMultImageConfidenceChange on the same min-max scaled L: "
                             "tests/test_peers_gradcam.py::test_registered_dic_iic_scale_the_map_as_pytorch_grad_cam_scales_a_cam; "
                             if not suffix else "") + "strict increases by hand: tests/test_confidence_definitions.py::"
                             "test_increase_in_confidence_counts_strict_increases_only; the covered input as for "
                             f"dic{suffix}: " + COVER_TEST,
        ))


#: Each overlap score of the selected pixels ``B`` against the mask ``M``, for ``MetricSpec.formula``.
OVERLAP = {"iou": "|B & M| / |B | M|", "dice": "2 |B & M| / (|B| + |M|)", "coverage": "|B & M| / |M|"}


def _register_overlaps(register: Callable[[MetricSpec], None]) -> None:
    for score in ("iou", "dice", "coverage"):
        register(MetricSpec(
            name=score, modalities=ANY, bounds=(0.0, 1.0), score=mask_overlap,
            needs=MASK,
            category="localization", higher_is_better=True, requires_mask=True,
            description=f"{score} of the map's top {TOP_K:.0%} pixels against the lesion mask; NaN on empty masks",
            citation="seed 001 (coverage of the heat map); Jaccard 1901 / Dice 1945",
            defaults={"score": score, "selection": "top-k", "k": TOP_K, "sign": "positive"}, check=overlap_check,
            undefined=EMPTY_MASK,
            formula=f"{score} = {OVERLAP[score]}, B = the top k * P pixels of a^+",
            checked_against="by hand: the mask itself scores 1 and an empty mask NaN: tests/test_metrics_localization.py::"
                            "test_the_oracle_map_scores_one_on_every_localization_metric_and_empty_masks_give_nan"
                            + ("; a constant map scores the mask fraction: tests/test_metrics_localization.py::"
                               "test_a_constant_map_scores_chance_not_one" if score == "coverage" else ""),
        ))
        register(MetricSpec(
            name=f"{score}-threshold", modalities=ANY, bounds=(0.0, 1.0), score=mask_overlap, needs=MASK, category="localization", higher_is_better=True,
            requires_mask=True,
            description=f"{score} of the binary mask L >= 0.5 (map scaled to [0, 1]) against the lesion; NaN on empty masks",
            citation="seed 001 (masks generated from the heat map); Jaccard 1901 / Dice 1945",
            defaults={"score": score, "selection": "threshold", "threshold": 0.5, "sign": "positive"},
            check=overlap_check,
            undefined=EMPTY_MASK,
            formula=f"{score} = {OVERLAP[score]}, B = {{i : L_i >= t}}",
            checked_against="by hand on a 10x10 map: tests/test_metrics_localization.py::"
                            "test_energy_pointing_game_uses_the_bounding_box_and_overlaps_follow_their_formulas"
                            + ("; on a shifted cube: tests/test_metrics_volumes.py::test_overlap_of_a_shifted_cube_by_hand"
                               if score != "coverage" else ""),
        ))


@hookimpl
def xaibench_register_metrics(register: Callable[[MetricSpec], None]) -> None:
    """Registers this plugin's metrics (every family, :mod:`xaibench_metrics.families` included) with ``register`` (the ``xaibench_register_metrics`` hook), importing no torch; each with the parameter rules of :mod:`xaibench_metrics.checks` as its ``check``."""
    register = checked(register)
    _register_confidence(register)
    register(MetricSpec(
        name="deletion-auc", modalities=ANY, bounds=(0.0, 1.0), score=deletion_auc, curve=deletion_curve,
        needs=MODEL | {"base_logits", "data_mean", "sample_seeds"},
        category="faithfulness", higher_is_better=False,
        description="area under p_c as pixels are zeroed in decreasing order of the map, P/steps per step "
                    "(ties in a seeded random order)",
        citation=RISE, defaults={"steps": 64, "fill": "zero"}, version="2",
        undefined=f"only for {CONSTANT}",
        formula="AUC_[0,1] over k = 0..steps of p_c(x with the top k/steps of the pixels of a set to the fill)",
        checked_against="Quantus 0.6 PixelFlipping (perturb_baseline 0), same inputs: tests/test_peers_quantus.py::"
                        "test_deletion_curve_equals_quantus_pixel_flipping; step by step by hand: "
                        "tests/test_metrics_faithfulness.py::test_deletion_curve_matches_a_step_by_step_hand_computation",
    ))
    register(MetricSpec(
        name="insertion-auc", modalities=ANY, bounds=(0.0, 1.0), score=insertion_auc, curve=insertion_curve,
        needs=MODEL | {"base_logits", "data_mean", "sample_seeds"},
        category="faithfulness", higher_is_better=True,
        description="area under p_c as pixels are restored onto a blurred canvas in decreasing order of the map "
                    "(ties in a seeded random order)",
        citation=RISE, defaults={"steps": 64, "fill": "blur", "blur_size": 11, "blur_sigma": 5.0}, version="2",
        undefined=f"only for {CONSTANT}",
        formula="AUC_[0,1] over k = 0..steps of p_c(blur(x) with the top k/steps of the pixels of a restored from x)",
        checked_against="by hand: the canvas is scipy's Gaussian filter of the stated width: tests/test_deletion_definitions.py::"
                        "test_insertion_auc_restores_pixels_onto_a_gaussian_of_the_given_width; exact contributions score best: "
                        "tests/test_metrics_faithfulness.py::test_exact_contributions_give_the_best_deletion_and_insertion_auc",
    ))
    register(MetricSpec(
        name="road-morf", modalities=ANY, score=road, version="2", needs=MODEL | {"sample_seeds"},
        category="faithfulness",
        higher_is_better=False,
        description="mean p_c after removing the most relevant fractions of pixels with noisy linear imputation",
        citation=ROAD, defaults={"order": "morf", "fractions": FRACTIONS, "noise": 0.01},
        undefined=f"only for {CONSTANT}", bounds=(0.0, 1.0),
        formula="mean over q in fractions of p_c(x with the most relevant q of the pixels imputed by noisy linear imputation)",
        checked_against="pytorch-grad-cam ROAD (NoisyLinearImputer, AveragerAcrossThresholds), same draws: "
                        "tests/test_peers_gradcam.py::test_registered_road_with_noise_equals_pytorch_grad_cam_on_the_same_draws; "
                        "without noise: tests/test_peers_gradcam.py::test_road_morf_and_lerf_equal_pytorch_grad_cam_on_rgb_without_noise",
    ))
    register(MetricSpec(
        name="road-lerf", modalities=ANY, score=road, version="2", needs=MODEL | {"sample_seeds"},
        category="faithfulness",
        higher_is_better=True,
        description="mean p_c after removing the least relevant fractions of pixels with noisy linear imputation",
        citation=ROAD, defaults={"order": "lerf", "fractions": FRACTIONS, "noise": 0.01},
        undefined=f"only for {CONSTANT}", bounds=(0.0, 1.0),
        formula="mean over q in fractions of p_c(x with the least relevant q of the pixels imputed by noisy linear imputation)",
        checked_against="pytorch-grad-cam ROAD (NoisyLinearImputer, AveragerAcrossThresholds), same draws: "
                        "tests/test_peers_gradcam.py::test_registered_road_with_noise_equals_pytorch_grad_cam_on_the_same_draws; "
                        "without noise: tests/test_peers_gradcam.py::test_road_morf_and_lerf_equal_pytorch_grad_cam_on_rgb_without_noise",
    ))
    register(MetricSpec(
        name="completeness-error", modalities=ANY, bounds=(0.0, None), score=completeness_error, requires_additive=True,
        needs=MODEL | {"data_mean"},
        category="faithfulness", higher_is_better=False,
        description="|sum of the map - (f(x) - f(occluded x))| / |f(x) - f(occluded x)| on the target logit",
        undefined="the target output is the same at the input and at the occluded baseline: no change to account for",
        citation="Sundararajan et al., ICML 2017 (completeness axiom); seed 003",
        defaults={"fill": "zero", "output": "logit"}, pairs=(REFERENCE, OUTPUT),
        formula="|sum_i a_i - (f_c(x) - f_c(x_0))| / |f_c(x) - f_c(x_0)|, x_0 the input set to the fill",
        checked_against="by hand on a linear model, each fill: tests/test_completeness_definitions.py::"
                        "test_completeness_error_is_relative_to_the_change_from_the_fill; integrated gradients on a linear "
                        "model scores 0: tests/test_metrics.py::test_integrated_gradients_on_a_linear_model_is_complete",
    ))
    register(MetricSpec(
        name="sensitivity-n", modalities=ANY, bounds=(-1.0, 1.0), score=sensitivity_n, requires_additive=True, version="2",
        needs=MODEL | {"sample_seeds", "data_mean"},
        category="faithfulness", higher_is_better=True,
        description="Pearson correlation between the map's sum over random patch sets and the logit drop they cause",
        undefined="the output change or the map's sum does not vary over the random sets (a saturated output, or a map constant on them): Pearson correlation undefined",
        citation="Ancona et al., Towards better understanding of gradient-based attribution methods, ICLR 2018",
        defaults={"n": 8, "patch": 8, "sets": 32, "fill": "zero", "output": "logit"}, pairs=(REFERENCE, OUTPUT),
        formula="Pearson_S(sum_{i in S} a_i, f_c(x) - f_c(x with S set to the fill)) over `sets` random sets S of n patches",
        checked_against="by hand on the cell's seeded patch sets: tests/test_completeness_definitions.py::"
                        "test_sensitivity_n_is_the_correlation_of_map_sums_and_logit_drops; exact occlusion effects score 1: "
                        "tests/test_metrics.py::test_exact_occlusion_effect_has_zero_completeness_error_and_perfect_sensitivity_n",
    ))
    register(MetricSpec(
        name="faithfulness-correlation", modalities=ANY, bounds=(-1.0, 1.0), score=faithfulness_correlation, version="2",
        needs=MODEL | {"sample_seeds", "data_mean"},
        category="faithfulness",
        higher_is_better=True,
        description="Pearson correlation between the map's sum over random pixel subsets (`subset` of the pixels) "
                    "and the drop of the target's `output` (logit by default) when they are set to `fill`",
        undefined="the output change or the map's sum does not vary over the random sets (a saturated output, or a map constant on them): Pearson correlation undefined",
        citation=BHATT, defaults={"subset": 0.05, "runs": 64, "fill": "zero", "output": "logit"},
        formula="Pearson_S(sum_{i in S} a_i, f_c(x) - f_c(x with S set to the fill)) over `runs` random sets S of "
                "round(subset * P) pixels",
        checked_against="by hand on the seeded pixel sets: tests/test_completeness_definitions.py::"
                        "test_faithfulness_correlation_occludes_round_subset_times_pixels_single_pixels; exact contributions "
                        "score 1: tests/test_metrics_faithfulness.py::test_faithfulness_correlation_is_one_for_exact_contributions",
    ))
    register(MetricSpec(
        name="infidelity", bounds=(0.0, None), score=infidelity, version="2", needs=MODEL | {"sample_seeds"},
        requires_additive=True,
        category="faithfulness", higher_is_better=False,
        description="mean squared error between the (optimally scaled) map's prediction of the logit change "
                    "under Gaussian pixel noise and the actual change",
        citation="Yeh et al., On the (In)fidelity and Sensitivity of Explanations, NeurIPS 2019",
        defaults={"runs": 32, "noise": 0.1, "normalize": True, "output": "logit"},
        undefined=f"only for {CONSTANT}",
        formula="mean_I (beta * sum_i I_i a_i - (f_c(x) - f_c(x - I)))^2, I ~ N(0, noise^2) per pixel, beta the "
                "least-squares scale (1 without normalize)",
        checked_against="captum.metrics.infidelity, same perturbations, with and without normalize: "
                        "tests/test_peers_captum.py::test_infidelity_equals_captum_on_rgb_input; one perturbation by hand: "
                        "tests/test_metrics_infidelity.py::test_one_perturbation_by_hand",
    ))
    register(MetricSpec(
        name="hit-rate", modalities=ANY, bounds=(0.0, 1.0), score=hit_rate, needs=MASK, category="localization", higher_is_better=True, requires_mask=True,
        box_ground_truth=True,
        description="pointing game: the map's peak within 15 px (at 224 px) of the lesion; NaN on empty masks",
        citation="Zhang et al., Top-down Neural Attention by Excitation Backprop, ECCV 2016",
        defaults={"tolerance": 15.0, "reference_size": 224}, chance=_exact_pointing_chance, oracle=1.0,
        undefined=EMPTY_MASK + " (Quantus counts an empty mask as a hit)",
        formula="1[dist(argmax_i a_i, M) <= tolerance * max(spatial size) / reference_size]; tied peaks count as their "
                "mean",
        checked_against="Quantus 0.6 PointingGame, tolerance 0: tests/test_peers_quantus.py::"
                        "test_pointing_game_equals_quantus_on_tie_free_maps_without_tolerance; with the scaled tolerance, "
                        "Quantus on the dilated mask: tests/test_peers_quantus.py::"
                        "test_pointing_game_with_its_scaled_tolerance_equals_quantus_on_the_dilated_mask",
    ))
    register(MetricSpec(
        name="graded-hit-rate", modalities=ANY, score=graded_hit_rate,
        needs=frozenset({"maps", "regions", "dataset"}),
        category="localization", higher_is_better=True,
        requires_region=True,
        description="region level at the map's peak / top level (levels 3..-1: distractors score negative)",
        citation="seed 001 (hit rate on skin layer maps, scale 3 to -1)",
        undefined=f"no pixel of the region map has a positive level, or {CONSTANT}", bounds=(None, 1.0),
        formula="R(argmax_i a_i) / max R, R the region map's level (3..-1); tied peaks average",
        checked_against="by hand, one peak per level: tests/test_metrics_localization.py::"
                        "test_graded_hit_rate_reads_the_level_at_the_peak",
    ))
    register(MetricSpec(
        name="energy-pointing-game", modalities=ANY, bounds=(0.0, 1.0), score=energy_pointing_game,
        needs=MASK,
        category="localization", higher_is_better=True,
        requires_mask=True,
        box_ground_truth=True,
        description="share of the map's positive energy inside the lesion's bounding box; NaN on empty masks",
        citation="Wang et al., Score-CAM, CVPR Workshops 2020", defaults={"sign": "positive"}, oracle=1.0,
        undefined=f"an empty mask, or a map whose positive part sums to 0, or {CONSTANT}",
        formula="sum_{i in box(M)} a_i^+ / sum_i a_i^+, box(M) the box enclosing the mask",
        checked_against="by hand on a 10x10 map: tests/test_metrics_localization.py::"
                        "test_energy_pointing_game_uses_the_bounding_box_and_overlaps_follow_their_formulas",
    ))
    register(MetricSpec(
        name="relevance-mass", modalities=ANY, bounds=(0.0, 1.0), score=relevance_mass_accuracy,
        needs=MASK,
        category="localization", higher_is_better=True,
        requires_mask=True, box_ground_truth=True,
        description="relevance mass accuracy: share of positive relevance inside the mask (or the boxes)",
        citation=CLEVR_XAI, defaults={"sign": "positive"}, chance=_mask_fraction, oracle=1.0,
        undefined=f"an empty mask, or a map whose positive part sums to 0, or {CONSTANT}",
        formula="sum_{i in M} a_i^+ / sum_i a_i^+",
        checked_against="Quantus 0.6 RelevanceMassAccuracy on max(a, 0): tests/test_peers_quantus.py::"
                        "test_relevance_mass_rank_and_attribution_localisation_equal_quantus",
    ))
    register(MetricSpec(
        name="attribution-localisation", modalities=ANY, bounds=(0.0, 1.0), score=relevance_mass_accuracy, needs=MASK, category="localization",
        higher_is_better=True, requires_mask=True,
        description="share of absolute relevance inside the mask (unweighted inside-total ratio)",
        citation="Kohlbrenner et al., Towards Best Practice in Explaining Neural Network Decisions with LRP, IJCNN 2020",
        defaults={"sign": "abs"}, chance=_mask_fraction, oracle=1.0,
        undefined=EMPTY_MASK,
        formula="sum_{i in M} |a_i| / sum_i |a_i|",
        checked_against="Quantus 0.6 AttributionLocalisation: tests/test_peers_quantus.py::"
                        "test_relevance_mass_rank_and_attribution_localisation_equal_quantus",
    ))
    register(MetricSpec(
        name="relevance-rank", modalities=ANY, bounds=(0.0, 1.0), score=relevance_rank_accuracy,
        needs=MASK,
        category="localization", higher_is_better=True,
        requires_mask=True, description="relevance rank accuracy: share of the top-|mask| pixels inside the mask",
        citation=CLEVR_XAI, defaults={"sign": "positive"}, chance=_mask_fraction, oracle=1.0,
        undefined=EMPTY_MASK,
        formula="|top_{|M|}(a^+) & M| / |M|; tied pixels count as their expectation",
        checked_against="Quantus 0.6 RelevanceRankAccuracy on max(a, 0): tests/test_peers_quantus.py::"
                        "test_relevance_mass_rank_and_attribution_localisation_equal_quantus",
    ))
    _register_overlaps(register)
    register(MetricSpec(
        name="top-k-intersection", modalities=ANY, bounds=(0.0, 1.0), score=mask_overlap, needs=MASK,
        category="localization", higher_is_better=True, requires_mask=True,
        description=f"precision of the map's top {TOP_K:.0%} pixels: the share of them inside the lesion mask "
                    "(`coverage` is the recall form); NaN on empty masks",
        formula="TKI = |top_k(a) ∩ M| / k",
        citation="Theiner, Müller-Budack and Ewerth, Interpretable Semantic Photo Geolocation, WACV 2022, Sec. 4.2",
        checked_against="Quantus 0.6 TopKIntersection with k = round(0.1 P) pixels: "
                        "tests/test_metrics_peers_extra.py::test_top_k_intersection",
        undefined=EMPTY_MASK,
        defaults={"score": "precision", "selection": "top-k", "k": TOP_K, "sign": "positive"}, check=overlap_check,
        chance=_mask_fraction))
    register(MetricSpec(
        name="auc", modalities=ANY, bounds=(0.0, 1.0), score=pixel_auc, needs=frozenset({"maps", "masks"}),
        category="localization", higher_is_better=True, requires_mask=True,
        description="pixel ROC-AUC of the map against the lesion mask (0.5: no better than chance, ties count 1/2); "
                    "NaN on empty or full masks",
        formula="AUC = P(a_i > a_j) + P(a_i = a_j)/2, i in M, j not in M",
        undefined="the mask is empty or covers the whole input: one class only, ROC undefined",
        citation="Fawcett, An introduction to ROC analysis, Pattern Recognition Letters 2006",
        checked_against="Quantus 0.6 AUC (scikit-learn roc_curve): tests/test_metrics_peers_extra.py::test_auc",
        oracle=1.0))
    register_srg(register)
    register_irof(register)
    register_robustness(register)
    register_consistency(register)
    register_ranked_faithfulness(register)
    register_patch_faithfulness(register)
    register_sufficiency(register)
    register_segmentation(register)
    register_map_complexity(register)
    register_axiomatic(register)
    register_continuity(register)
    register_focus(register)
    register_arcc(register)
    for measure, label in (("spearman", "Spearman rank correlation"), ("ssim", "SSIM")):
        register(MetricSpec(
            name=f"mprt-{measure}", modalities=ANY, bounds=(0.0, 1.0), score=model_randomization, version="2",
            needs=frozenset({"inputs", "maps", "model", "explain", "model_seed", "shared"}),
            category="randomization", higher_is_better=False,
            description=f"absolute {label} between the maps of the trained and of the randomized model, averaged "
                        "over `steps` cascade stages spread over the layers, top first (steps: 1 = the fully "
                        "randomized model only; fewer steps than layers = a coarse cascade); lower: the map "
                        "depends on the weights",
            citation=SANITY, defaults={"similarity_measure": measure, "steps": 3, "sign": "abs"},
            describe=mprt_description(label),
            formula=f"mean over the `steps` stages k of |{'Spearman' if measure == 'spearman' else 'SSIM'}(a, a^(k))|, a^(k) the map "
                    "of the model with its top layers randomized cumulatively",
            checked_against="by hand: the mean of |rho| over three stages with known correlations: "
                            "tests/test_metrics_randomization.py::test_mprt_averages_the_absolute_similarity_over_every_stage_of_the_cascade; "
                            + ("SSIM against scikit-image's structural_similarity: tests/test_metrics_randomization.py::"
                               "test_an_inverted_map_is_as_similar_as_the_map_itself" if measure == "ssim" else
                               "the map of a model-independent method scores 1, the gradient's less: "
                               "tests/test_metrics_randomization.py::test_a_map_that_ignores_the_model_fails_and_the_gradient_passes"),
            undefined="the trained model's map is constant, or (Spearman) a randomized model's map is constant "
                      "(a CAM that ReLU zeroed): rank correlation undefined, never scored as the best value 0",
        ))
    register(MetricSpec(
        name="data-randomization", modalities=ANY, score=data_randomization, version="2",
        needs=frozenset({"maps", "variant", "explain"}), variants=(LABEL_RANDOMIZED,),
        category="randomization", higher_is_better=False,
        description="absolute Spearman rank correlation between the maps of the trained model and of the same model "
                    "trained on permuted labels (lower: the map depends on what was learned)",
        citation=SANITY, defaults={"similarity_measure": "spearman", "sign": "abs"},
        undefined="the trained model's map is constant, or the label-randomized model's map is constant (rank "
                  "correlation undefined, never scored as the best value 0)", bounds=(0.0, 1.0),
        formula="|Spearman(a, a^perm)|, a^perm the map of the same model trained on permuted labels",
        checked_against="behaviour: input-only maps score 1, model-dependent maps less: tests/test_metrics_randomization.py::"
                        "test_data_randomization_separates_model_dependent_maps_from_input_maps",
    ))
    register_randomization_revisited(register)
    register(MetricSpec(
        name="sparseness", modalities=ANY, bounds=(0.0, 1.0), score=sparseness, needs=frozenset({"maps"}), category="complexity", higher_is_better=True,
        description="Gini index of the absolute map (1 - 1/P: one pixel, 0: uniform)",
        citation="Chalasani et al., Concise Explanations of Neural Networks using Adversarial Training, ICML 2020",
        undefined=f"only for {CONSTANT}",
        formula="Gini = sum_k (2k - P - 1) |a|_(k) / (P * sum_k |a|_(k)), |a|_(k) sorted ascending",
        checked_against="Quantus 0.6 Sparseness: tests/test_peers_quantus.py::test_sparseness_and_entropy_equal_quantus; "
                        "closed forms: tests/test_metrics_localization.py::test_complexity_metrics_match_their_closed_forms",
    ))
    register(MetricSpec(
        name="entropy", modalities=ANY, bounds=(0.0, None), score=entropy, needs=frozenset({"maps"}), category="complexity", higher_is_better=False,
        description="Shannon entropy (nats) of |map| / sum |map|", citation=BHATT,
        undefined=f"only for {CONSTANT}",
        formula="-sum_i p_i ln p_i, p_i = |a_i| / sum_j |a_j|",
        checked_against="Quantus 0.6 Complexity: tests/test_peers_quantus.py::test_sparseness_and_entropy_equal_quantus; "
                        "closed forms: tests/test_metrics_localization.py::test_complexity_metrics_match_their_closed_forms",
    ))

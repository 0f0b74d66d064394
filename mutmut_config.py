"""mutmut 2 hooks (docs/mutation.md): each module's mutants run only its fast tests; some functions are left out.

``mutmut run --paths-to-mutate xaibench/scoring/stats.py`` mutates one line at a time and runs
``TESTS[module]`` against each mutant; jitted kernels run as plain Python
(``NUMBA_DISABLE_JIT=1``) so that a mutant needs no compilation. ``ONLY`` restricts a
module to the named functions, ``SKIP`` leaves functions out (with the reason).
"""
from __future__ import annotations

import ast
from functools import lru_cache

PYTEST = "env NUMBA_DISABLE_JIT=1 OMP_NUM_THREADS=1 python -m pytest -x -q -p no:hypothesispytest -p no:benchmark"

#: The fast tests that pin each module's behaviour (seconds per run; ``--noconftest`` where no fixture is used).
TESTS = {
    # model inspection and the method rules: the hand-built networks of the matrix (the zoo's builds take seconds each)
    "xaibench/models/nonlinearities.py": "tests/test_method_rules.py -k 'not zoo and not mobilenet and not fullgrad'",
    "plugins/xaibench_captum/rules.py": "tests/test_method_rules.py tests/test_deeplift_rules.py -k 'not zoo and not "
                                        "fullgrad and not resnet'",
    # the copy captum's hooking methods run on: one module per call site, each reading its own clone of its input
    "plugins/xaibench_captum/modelcopy.py": "tests/test_deeplift_rules.py tests/test_method_rules.py -k 'not zoo and not "
                                            "fullgrad and not resnet'",
    # the input layer, the output layer and the forward order, from the traced graph (issue 42 item 2)
    "xaibench/contract/layers.py": "tests/test_lrp_input_layer.py tests/test_layer_order.py "
                          "tests/test_metrics_robustness_definitions.py -k 'not stability or representation'",
    # parameter names and a method's value check, at suite load and in the Python API
    "xaibench/suites/params.py": "tests/test_boundary_params.py tests/test_api.py tests/test_lazy_imports.py -k 'not heavy_library'",
    # user-given values: the shared integer / finite-number predicates, the suite's training options
    "xaibench/contract/validate.py": "tests/test_boundary_params.py tests/test_suite.py tests/test_first_contact_cli.py",
    # the captum methods' value rules, one per parameter, refused with the suite's file:line
    "plugins/xaibench_captum/checks.py": "tests/test_boundary_params.py",
    # LIME's and KernelSHAP's superpixels (grey / RGB twin, value range, lesion edges, refusals) and both methods
    "plugins/xaibench_captum/superpixels.py": "tests/test_superpixels.py tests/test_methods_new.py -k 'not suite_with "
                                              "and (superpixel or lime or shap or grey or constant or signals)'",
    # the metrics' parameter rules (MetricSpec.check) and the progress lines' rate (issue 44 item 5)
    "plugins/xaibench_metrics/checks.py": "tests/test_one_rule.py -k 'metric_values or defaults or least_value'",
    "xaibench/base/progress.py": "tests/test_one_rule.py tests/test_first_contact_progress.py -k 'eta or bar or plain'",
    # the noise tunnels, Integrated Gradients, occlusion and feature ablation against captum, and their passes;
    # the seeded per-sample path (LIME, SHAP)
    "plugins/xaibench_captum/stochastic.py": "tests/test_methods_new.py tests/test_peers_captum.py tests/test_conformance.py "
                                             "tests/test_boundary_params.py -k 'noise or integrated or smooth or vargrad "
                                             "or shap or lime or perturbation_methods or values'",
    # timm's networks: builds, CAM layers, refusals, published weights through a mirror, Grad-CAM against the peer
    "plugins/xaibench_networks/timm_nets.py": "tests/test_networks.py tests/test_networks_peers.py "
                                              "-k 'timm or convolutional or checkpoints'",
    "plugins/xaibench_networks/monai_nets.py": "tests/test_networks.py -k 'monai'",
    # --check's content comparison of two <suite>.json documents
    # the processor a board's numbers were computed on (its provenance row "CPU kernels", .ci/run's same-machine test)
    "xaibench/running/environment.py": "tests/test_reproducible_boards.py -k 'provenance or processor'",
    # the flat layout's old module paths (issue 43)
    "xaibench/base/moved.py": "tests/test_moved.py",
    "xaibench/leaderboard/compare.py": "--noconftest tests/test_leaderboard_compare.py",
    "xaibench/scoring/stats.py": "--noconftest tests/test_stats.py tests/test_stats_definitions.py tests/test_ties.py "
                         "tests/test_leaderboard_chance.py",
    # issue 44.1: each metric against chance and the oracle; the aggregate over one set of methods (issue 42.3)
    "xaibench/leaderboard/chance.py": "--noconftest tests/test_leaderboard_chance.py tests/test_leaderboard_trust.py",
    "xaibench/leaderboard/ranking.py": "--noconftest tests/test_leaderboard_chance.py tests/test_leaderboard_trust.py",
    "xaibench/scoring/curves.py": "tests/test_curves.py -k 'not figure_draws' tests/test_metrics.py::test_curves_reuse_the_unperturbed_pass "
                          "tests/test_figures.py::test_deletion_and_insertion_curves_are_exact_on_a_linear_model "
                          "tests/test_metrics_faithfulness.py::test_deletion_curve_matches_a_step_by_step_hand_computation",
    # without numba the float32 sums of 3600-pixel maps round differently (test_fused_kernel_..._large_maps) and the
    # 2000-map calibration tests take a minute: they run in the default suite, not against each mutant
    "xaibench/scoring/kernels.py": "--noconftest tests/test_kernels.py -k 'not large_maps and not random_map'",
    "xaibench/scoring/maps.py": "--noconftest tests/test_maps.py",
    # the metric and method reference pages: each field rendered from the spec, the missing-field rules
    "xaibench/authoring/reference.py": "--noconftest tests/test_reference.py tests/test_one_rule.py -k 'reference or needs'",
    # one -k per command (pytest keeps only the last): the selection is one expression over the named files
    "plugins/xaibench_metrics/pointing.py": "tests/test_metric_defaults.py tests/test_metric_definitions.py tests/test_peers_quantus.py "
                                            "-k 'defaults or pointing_tolerance or pointing_game_equals or pointing_game_with or hit_rate_without'",
    "plugins/xaibench_metrics/localization.py": "tests/test_metric_defaults.py tests/test_metrics_localization.py tests/test_peers_quantus.py "
                                                "tests/test_api_suite_parity.py "
                                                "-k 'defaults or test_metrics_localization or relevance_mass_rank or overlap'",
    "plugins/xaibench_metrics/confidence.py": "tests/test_metric_defaults.py tests/test_metric_definitions.py tests/test_peers_gradcam.py "
                                              "tests/test_metrics_faithfulness.py tests/test_confidence_definitions.py "
                                              "tests/test_confidence_sharing.py "
                                              "-k 'defaults or average_drop or dic_iic or confidence_change or confidence_variants "
                                              "or confidence_definitions or covered_pass'",
    "plugins/xaibench_metrics/completeness.py": "tests/test_metric_defaults.py tests/test_metric_definitions.py tests/test_metrics_faithfulness.py "
                                                "tests/test_metrics.py tests/test_metrics_volumes.py tests/test_completeness_definitions.py "
                                                "-k 'defaults or completeness or faithfulness_correlation or sensitivity_n "
                                                "or linear_model_is_complete or patch_sets'",
    # ROAD: its peer tests (pytorch-grad-cam, with and without the same noise draws), the noise-on-imputed-pixels
    # test, the imputation and solver tests (2D, volumes, conjugate gradients against spsolve)
    "plugins/xaibench_metrics/road.py": "tests/test_metric_defaults.py tests/test_metric_definitions.py tests/test_metrics_faithfulness.py "
                                        "tests/test_peers_gradcam.py tests/test_road_solver.py tests/test_road_volumes.py tests/test_road_definitions.py "
                                        "-k 'defaults or road or imputation'",
    "plugins/xaibench_metrics/deletion.py": "tests/test_metric_defaults.py tests/test_peers_quantus.py tests/test_curves.py tests/test_metrics_faithfulness.py "
                                            "tests/test_deletion_definitions.py "
                                            "-k 'defaults or deletion_curve_equals or flat_maps_deletion or exact_contributions "
                                            "or deletion_curve_matches or deletion_definitions'",
    # captum's infidelity on the same perturbations, the analytic zero of a linear model, the defaults
    "plugins/xaibench_metrics/infidelity.py": "tests/test_metric_defaults.py tests/test_peers_captum.py tests/test_metrics_infidelity.py",
    # test_irof / test_srg: the test names, not the file name (test_metrics_srg_irof.py holds both)
    "plugins/xaibench_metrics/irof.py": "tests/test_metric_defaults.py tests/test_metrics_srg_irof.py -k 'defaults or test_irof'",
    "plugins/xaibench_metrics/srg.py": "tests/test_metric_defaults.py tests/test_metrics_srg_irof.py -k 'defaults or test_srg'",
    "plugins/xaibench_metrics/complexity.py": "tests/test_metrics_localization.py tests/test_peers_quantus.py tests/test_metrics_volumes.py "
                                              "tests/test_metrics_peers_extra.py -k 'complexity or sparseness or entropy'",
    "plugins/xaibench_metrics/consistency.py": "tests/test_metric_defaults.py tests/test_metrics_consistency.py "
                                               "tests/test_metrics_peers_extra.py -k 'defaults or consistency or sufficiency'",
    # issue 35: each module's peer (Quantus 0.6, pytorch-grad-cam) and hand-value tests
    "plugins/xaibench_metrics/monotonicity.py": "tests/test_metric_defaults.py tests/test_metrics_peers_extra.py "
                                                "-k 'defaults or faithfulness_estimate or monotonicity or outside_the_definition'",
    "plugins/xaibench_metrics/regions.py": "tests/test_metric_defaults.py tests/test_metrics_peers_extra.py "
                                           "-k 'defaults or region_perturbation or selectivity or outside_the_definition "
                                           "or non_sensitivity'",
    "plugins/xaibench_metrics/axiomatic.py": "tests/test_metrics_peers_extra.py -k 'non_sensitivity or input_invariance'",
    # issue 42: the per-map and per-batch scaling, against Quantus and the minimal cases by hand
    "plugins/xaibench_metrics/scaling.py": "tests/test_metrics_peers_extra.py "
                                           "-k 'sufficiency or effective_complexity or non_sensitivity'",
    "plugins/xaibench_metrics/continuity.py": "tests/test_metrics_peers_extra.py -k continuity",
    "plugins/xaibench_metrics/focus.py": "tests/test_metrics_peers_extra.py tests/test_sample_order.py -k 'focus or mosaics'",
    "plugins/xaibench_metrics/compactness.py": "tests/test_metrics_peers_extra.py -k mst_c",
    "plugins/xaibench_metrics/arcc.py": "tests/test_metrics_peers_extra.py -k arcc",
    # the runner's target selection and seeding (ONLY below); the common-random-numbers test through every
    # metric takes 45 s and runs in the default suite, not against each mutant
    "xaibench/running/execution.py": "tests/test_execution_context.py "
                             "tests/test_metric_definitions.py::test_target_predicted_explains_and_scores_the_predicted_class_not_the_label "
                             "tests/test_runner.py::test_target_label_and_unknown_layer",
    # issue 29: re-explained copies, the streamed masked sums and Score-CAM, against definitions by hand and peers
    "xaibench/running/explaining.py": "tests/test_reexplain.py tests/test_execution_context.py "
                              "tests/test_reliability_faults.py -k 'reexplain or copies or calls or masks or every_fault'",
    "xaibench/scoring/engine.py": "tests/test_methods_rise.py tests/test_sise.py -k 'score_weighted or layer_maps'",
    "plugins/xaibench_gradcam/methods.py": "tests/test_cam_streaming.py",
    # the engine's batch size by throughput: the simulated-clock tests (the runner's test takes a whole run)
    "xaibench/scoring/throughput.py": "tests/test_throughput.py -k 'not runner'",
    "plugins/xaibench_metrics/randomization.py": "tests/test_metrics_randomization.py tests/test_randomization_sharing.py "
                                                 "tests/test_metric_defaults.py tests/test_metrics_volumes.py tests/test_metric_definitions.py "
                                                 "-k 'randomiz or mprt or defaults'",
    "plugins/xaibench_metrics/randomization_revisited.py": "tests/test_metrics_randomization_revisited.py tests/test_randomization_sharing.py "
                                                         "tests/test_metric_defaults.py",
    "plugins/xaibench_metrics/robustness.py": "tests/test_metrics_robustness.py tests/test_metrics_robustness_definitions.py "
                                              "tests/test_metric_defaults.py",
    "plugins/xaibench_medical/masks.py": "tests/test_folder_reading.py -k 'mask'",
    "xaibench/scoring/metaeval.py": "tests/test_board_shapes.py tests/test_metaeval.py -k 'not every_suite_shape and not built_in "
                            "and not publishing and not every_process'",
    "xaibench/suites/plan.py": "tests/test_metric_pairing.py -k 'not own_baseline_only'",
    # LRP through zennit: the identities, captum peers, conservation and covers reasons (docs/lrp.md)
    "plugins/xaibench_zennit/coverage.py": "tests/test_methods_lrp.py",
    "plugins/xaibench_zennit/rules.py": "tests/test_methods_lrp.py tests/test_lrp_input_layer.py",
}

#: Functions not mutated (none at present; name the reason beside any added).
SKIP: dict[str, set[str]] = {}

#: Modules of which only these functions are mutated: the runner's target selection and seeding.
ONLY = {"xaibench/running/execution.py": {"group_context", "metric_context"},
        "xaibench/scoring/engine.py": {"masked_score_sum"},
        "plugins/xaibench_gradcam/methods.py": {"streamed_score_cam"},
        # the definitions issue 33 added: the post-hoc rule and the method/metric pairing
        "xaibench/scoring/metaeval.py": {"posthoc_blocks", "why_no_friedman", "friedman_posthoc"},
        "xaibench/suites/plan.py": {"_paired", "metric_params", "pairing_conflict"},
        # issue 42.3: the aggregate over one set of methods and metrics (the renderers have their own tests)
        "xaibench/leaderboard/ranking.py": {"_means", "aggregate", "_uninformative"},
        # the data-flow layer finders (issue 42 item 2); the per-modality classes run in every model's tests
        "xaibench/contract/layers.py": {"is_leaf_module", "traced", "input_layers", "output_layers", "forward_order",
                               "last_convolution"}}


def functions(source: str) -> tuple[tuple[str, int, int, int], ...]:
    """(name, def line, first body line, last line) of every function of ``source``, outer before inner."""
    return tuple((n.name, n.lineno, n.body[0].lineno, n.end_lineno or n.lineno) for n in ast.walk(ast.parse(source))
                 if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))


def mutated(module: str, line: int, module_functions: tuple[tuple[str, int, int, int], ...]) -> bool:
    """Whether ``ONLY`` and ``SKIP`` let ``line`` of ``module`` (with its ``functions``) be mutated."""
    def inside(names: set[str]) -> bool:
        return any(name in names and start <= line <= end for name, start, _, end in module_functions)

    only = ONLY.get(module)
    return (only is None or inside(only)) and not inside(SKIP.get(module, set()))


@lru_cache(maxsize=None)
def _file_functions(filename: str) -> tuple[tuple[str, int, int, int], ...]:
    with open(filename, encoding="utf-8") as f:
        return functions(f.read())


def pre_mutation(context) -> None:  # type: ignore[no-untyped-def]
    """Skip left-out functions; run the module's own fast tests against the mutant."""
    filename = context.filename.replace("\\", "/")
    line = context.current_line_index + 1
    if not mutated(filename, line, _file_functions(filename)):
        context.skip = True
        return
    if filename not in TESTS:  # the default runner would let every mutant "survive" on unrelated tests
        raise RuntimeError(f"mutmut_config.TESTS names no fast tests for {filename}; add them first")
    context.config.test_command = f"{PYTEST} {TESTS[filename]}"

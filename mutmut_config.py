"""mutmut 2 hooks (docs/mutation.md): each module's mutants run only its fast tests; some functions are left out.

``mutmut run --paths-to-mutate xaibench/stats.py`` mutates one line at a time and runs
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
    "xaibench/stats.py": "--noconftest tests/test_stats.py tests/test_stats_definitions.py",
    "xaibench/curves.py": "tests/test_curves.py -k 'not figure_draws' tests/test_metrics.py::test_curves_reuse_the_unperturbed_pass "
                          "tests/test_figures.py::test_deletion_and_insertion_curves_are_exact_on_a_linear_model "
                          "tests/test_metrics_faithfulness.py::test_deletion_curve_matches_a_step_by_step_hand_computation",
    # without numba the float32 sums of 3600-pixel maps round differently (test_fused_kernel_..._large_maps) and the
    # 2000-map calibration tests take a minute: they run in the default suite, not against each mutant
    "xaibench/kernels.py": "--noconftest tests/test_kernels.py -k 'not large_maps and not random_map'",
    "xaibench/maps.py": "--noconftest tests/test_maps.py",
    # one -k per command (pytest keeps only the last): the selection is one expression over the named files
    "plugins/xaibench_metrics/pointing.py": "tests/test_metric_defaults.py tests/test_metric_definitions.py tests/test_peers_quantus.py "
                                            "-k 'defaults or pointing_tolerance or pointing_game_equals or pointing_game_with or hit_rate_without'",
    "plugins/xaibench_metrics/localization.py": "tests/test_metric_defaults.py tests/test_metrics_localization.py tests/test_peers_quantus.py "
                                                "-k 'defaults or test_metrics_localization or relevance_mass_rank'",
    "plugins/xaibench_metrics/confidence.py": "tests/test_metric_defaults.py tests/test_metric_definitions.py tests/test_peers_gradcam.py "
                                              "tests/test_metrics_faithfulness.py "
                                              "-k 'defaults or average_drop or dic_iic or confidence_change or confidence_variants'",
    "plugins/xaibench_metrics/completeness.py": "tests/test_metric_defaults.py tests/test_metric_definitions.py tests/test_metrics_faithfulness.py "
                                                "-k 'defaults or completeness_error or faithfulness_correlation'",
    "plugins/xaibench_metrics/deletion.py": "tests/test_metric_defaults.py tests/test_peers_quantus.py tests/test_curves.py tests/test_metrics_faithfulness.py "
                                            "-k 'defaults or deletion_curve_equals or flat_maps_deletion or exact_contributions "
                                            "or deletion_curve_matches'",
}

#: Functions not mutated (none at present; name the reason beside any added).
SKIP: dict[str, set[str]] = {}

#: Modules of which only these functions are mutated: the runner's target selection and seeding.
ONLY = {"xaibench/execution.py": {"group_context", "metric_context"}}


@lru_cache(maxsize=None)
def _functions(filename: str) -> tuple[tuple[str, int, int], ...]:
    with open(filename, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    return tuple((node.name, node.lineno, node.end_lineno or node.lineno) for node in ast.walk(tree)
                 if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)))


def _inside(filename: str, line: int, names: set[str]) -> bool:
    return any(name in names and start <= line <= end for name, start, end in _functions(filename))


def pre_mutation(context) -> None:  # type: ignore[no-untyped-def]
    """Skip left-out functions; run the module's own fast tests against the mutant."""
    filename = context.filename.replace("\\", "/")
    line = context.current_line_index + 1
    if filename in SKIP and _inside(filename, line, SKIP[filename]):
        context.skip = True
        return
    if filename in ONLY and not _inside(filename, line, ONLY[filename]):
        context.skip = True
        return
    if filename not in TESTS:  # the default runner would let every mutant "survive" on unrelated tests
        raise RuntimeError(f"mutmut_config.TESTS names no fast tests for {filename}; add them first")
    context.config.test_command = f"{PYTEST} {TESTS[filename]}"

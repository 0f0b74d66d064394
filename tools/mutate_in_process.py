"""Mutation testing in one process: mutmut 2's mutants, each run against the module's fast tests by ``pytest.main``.

``mutmut run`` starts a fresh interpreter per mutant, and importing torch then costs more
than the tests; on a busy machine a module did not fit a session. This driver generates
the same mutants (``mutmut.list_mutations``), writes each into the file, drops every
``xaibench*`` and test module from ``sys.modules`` (torch, numpy and scipy stay imported)
and runs ``mutmut_config.TESTS[module]`` in this process; exit status 0 means the mutant
survived. ``mutmut_config.ONLY`` and ``SKIP`` restrict the mutated functions as for mutmut.
The file is restored after every mutant and on any exit but SIGKILL: run it in a scratch
copy (``git archive HEAD | tar -x -C /tmp/m``), from that copy's root::

    PYTHONPATH=$PWD:$PWD/plugins:$PWD/tests NUMBA_DISABLE_JIT=1 python tools/mutate_in_process.py \\
        xaibench/scoring/maps.py mutants.json

``mutants.json`` gets, per mutant, its line, the mutated line, and killed / survived / timeout.

Test selection (mutmut 3 does the same): a first run records, with ``coverage`` dynamic
contexts, which tests execute each line of the module. A mutant inside a function body
runs first against only the tests that execute that function; a mutant elsewhere (module
level, a default, a decorator) or in a function that also runs at import against all of them. A mutant no test executes survives
without a run ("not covered"). Selection can only miss a kill (a module-scoped fixture
is recorded under its first test), never invent one, so every survivor is run again
against the module's whole ``TESTS`` before it is reported.
"""
from __future__ import annotations

import json
import os
import shlex
import signal
import sys
import time

os.environ.setdefault("NUMBA_DISABLE_JIT", "1")  # a mutant in a jitted kernel runs as Python, no compilation

import coverage  # noqa: E402
import mutmut  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402,F401  (imported once, kept across mutants)

import mutmut_config  # noqa: E402

#: Modules reloaded for every mutant: the package under test, its plugins and the test modules.
RELOADED = ("xaibench", "test_", "conftest", "oracles", "faults", "boards", "worker_plugins")
#: A mutant's tests may take this many times the unmutated run (at least ``MIN_TIMEOUT_S``): a mutant
#: that loops forever (a quickselect bound) is a kill by timeout, not a wait of minutes.
TIMEOUT_FACTOR, MIN_TIMEOUT_S = 10, 20


class _Timeout(Exception):
    pass


def _alarm(*_: object) -> None:
    raise _Timeout()


class _Contexts:
    """pytest plugin: names the coverage context after the running test."""

    def __init__(self, cov: coverage.Coverage) -> None:
        self.cov = cov

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: object):  # type: ignore[no-untyped-def]
        self.cov.switch_context(item.nodeid)
        yield
        self.cov.switch_context("")


def _run(args: list[str], timeout: int, plugins: tuple[object, ...] = ()) -> int:
    """The tests' exit status, -1 on timeout (0: none), with every reloaded module imported afresh."""
    for name in list(sys.modules):
        if name.startswith(RELOADED):
            del sys.modules[name]
    signal.alarm(timeout)
    try:
        return int(pytest.main(["-x", "-q", "-p", "no:cacheprovider", "-p", "no:hypothesispytest",
                                "-p", "no:benchmark", *args], plugins=list(plugins)))
    except _Timeout:
        return -1
    finally:
        signal.alarm(0)


def _line_tests(module: str, args: list[str]) -> tuple[dict[int, set[str]], float]:
    """Run the tests once under coverage: for each executed line of ``module``, the tests that executed it; the seconds."""
    path = os.path.abspath(module)
    cov = coverage.Coverage(data_file=None, include=[path])
    start = time.time()
    cov.start()
    try:
        code = _run(args, timeout=0, plugins=(_Contexts(cov),))  # the first run imports everything: no time limit
    finally:
        cov.stop()
    seconds = time.time() - start
    if code != 0:
        raise SystemExit(f"the tests of {module} fail without mutations")
    data = cov.get_data()
    measured = [f for f in data.measured_files() if os.path.abspath(f) == path]
    by_line = data.contexts_by_lineno(measured[0]) if measured else {}
    return {line: set(contexts) for line, contexts in by_line.items()}, seconds  # "": outside a test (an import)


def _tests_for(line: int, functions: tuple[tuple[str, int, int, int], ...], line_tests: dict[int, set[str]]) -> set[str] | None:
    """Tests that execute the innermost function whose body holds ``line``.

    None (run them all) when the line is not in a function body, or when the function also
    runs outside any test (at import: a module constant built by it), where no test is recorded.
    """
    bodies = [(body, end) for _, _, body, end in functions if body <= line <= end]
    if not bodies:
        return None
    body, end = max(bodies)  # innermost: the latest first body line
    tests = set().union(*(line_tests.get(k, set()) for k in range(body, end + 1)))
    return None if "" in tests else tests


def _narrowed(args: list[str], tests: set[str]) -> list[str]:
    """``args`` with its test files replaced by the selected test ids (options and ``-k`` kept)."""
    options, k = [], 0
    while k < len(args):
        if args[k] == "-k":
            options += args[k : k + 2]
            k += 2
            continue
        if args[k].startswith("-"):
            options.append(args[k])
        k += 1
    return [*options, *sorted(tests)]


def main(module: str, out: str) -> None:
    """Run every selected mutant of ``module`` against its fast tests; write the results to ``out``."""
    with open(module, encoding="utf-8") as f:
        source = f.read()
    args = shlex.split(mutmut_config.TESTS[module])
    functions = mutmut_config.functions(source)
    ids = [m for m in mutmut.list_mutations(mutmut.Context(source=source, filename=module, dict_synonyms=[]))
           if mutmut_config.mutated(module, m.line_number + 1, functions)]
    signal.signal(signal.SIGALRM, _alarm)
    stop: list[int] = []

    def terminate(*_: object) -> None:  # SIGTERM: stop after this mutant (pytest would catch SystemExit)
        stop.append(1)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    results: dict[int, dict[str, object]] = {}
    try:
        line_tests, seconds = _line_tests(module, args)
        timeout = max(MIN_TIMEOUT_S, int(TIMEOUT_FACTOR * seconds))
        for k, mid in enumerate(ids):
            if stop:
                break
            mutated, _ = mutmut.mutate(mutmut.Context(source=source, mutation_id=mid, filename=module,
                                                      dict_synonyms=[]))
            if mutated == source:
                continue
            with open(module, "w", encoding="utf-8") as f:
                f.write(mutated)
            start = time.time()
            selected = _tests_for(mid.line_number + 1, functions, line_tests)
            try:
                if selected == set():
                    code, ran = 0, "none (not covered)"
                else:
                    code, ran = _run(args if selected is None else _narrowed(args, selected), timeout), "all"
                    if selected is not None:
                        ran = f"{len(selected)} selected"
                        if code == 0:  # selection may miss a kill: confirm a survivor on every test
                            code, ran = _run(args, timeout), f"{len(selected)} selected, then all"
            finally:
                with open(module, "w", encoding="utf-8") as f:
                    f.write(source)
            changed = [line for line in mutated.splitlines() if line not in source.splitlines()]
            results[k] = {"line": mid.line_number + 1, "mutant": changed[:2], "tests": ran,
                          "seconds": round(time.time() - start, 1),
                          "status": "survived" if code == 0 else "timeout" if code == -1 else "killed"}
            print(k, results[k]["status"], results[k]["line"], changed[:1], flush=True)
            if stop:  # interrupted: this mutant's status is not a result
                del results[k]
            with open(out, "w", encoding="utf-8") as f:
                json.dump({"module": module, "tests": args, "total": len(ids), "results": results}, f, indent=1)
    finally:
        with open(module, "w", encoding="utf-8") as f:
            f.write(source)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

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
        xaibench/maps.py mutants.json

``mutants.json`` gets, per mutant, its line, the mutated line, and killed / survived / timeout.
"""
from __future__ import annotations

import ast
import json
import os
import shlex
import signal
import sys
import time

os.environ.setdefault("NUMBA_DISABLE_JIT", "1")  # a mutant in a jitted kernel runs as Python, no compilation

import mutmut  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402,F401  (imported once, kept across mutants)

import mutmut_config  # noqa: E402

#: Modules reloaded for every mutant: the package under test, its plugins and the test modules.
RELOADED = ("xaibench", "test_", "conftest", "oracles", "faults", "boards", "worker_plugins")
TIMEOUT_S = 300


def _selected(module: str, source: str) -> list[mutmut.RelativeMutationID]:
    functions = [(n.name, n.lineno, n.end_lineno or n.lineno) for n in ast.walk(ast.parse(source))
                 if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]

    def inside(line: int, names: set[str]) -> bool:
        return any(name in names and start <= line <= end for name, start, end in functions)

    ids = mutmut.list_mutations(mutmut.Context(source=source, filename=module, dict_synonyms=[]))
    only, skip = mutmut_config.ONLY.get(module), mutmut_config.SKIP.get(module, set())
    return [m for m in ids if (only is None or inside(m.line_number + 1, only)) and not inside(m.line_number + 1, skip)]


class _Timeout(Exception):
    pass


def _alarm(*_: object) -> None:
    raise _Timeout()


def _run(args: list[str], timeout: int = TIMEOUT_S) -> int:
    """The tests' exit status, -1 on timeout (0: none), with every reloaded module imported afresh."""
    for name in list(sys.modules):
        if name.startswith(RELOADED):
            del sys.modules[name]
    signal.alarm(timeout)
    try:
        return int(pytest.main(["-x", "-q", "-p", "no:cacheprovider", "-p", "no:hypothesispytest",
                                "-p", "no:benchmark", *args]))
    except _Timeout:
        return -1
    finally:
        signal.alarm(0)


def main(module: str, out: str) -> None:
    """Run every selected mutant of ``module`` against its fast tests; write the results to ``out``."""
    with open(module, encoding="utf-8") as f:
        source = f.read()
    args = shlex.split(mutmut_config.TESTS[module])
    ids = _selected(module, source)
    signal.signal(signal.SIGALRM, _alarm)
    stop: list[int] = []

    def terminate(*_: object) -> None:  # SIGTERM: stop after this mutant (pytest would catch SystemExit)
        stop.append(1)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    results: dict[int, dict[str, object]] = {}
    try:
        if _run(args, timeout=0) != 0:  # the first run imports everything: no time limit
            raise SystemExit(f"the tests of {module} fail without mutations")
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
            try:
                code = _run(args)
            finally:
                with open(module, "w", encoding="utf-8") as f:
                    f.write(source)
            changed = [line for line in mutated.splitlines() if line not in source.splitlines()]
            results[k] = {"line": mid.line_number + 1, "mutant": changed[:2], "seconds": round(time.time() - start, 1),
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

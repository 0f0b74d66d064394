"""Numba kernels compiled on first use, so that importing a kernel module does not import numba.

``@njit(...)`` records the plain function; the first call of any kernel of a module imports
numba (about 0.2 s), points its cache at ``$XAIBENCH_HOME`` (:func:`xaibench.storage.paths.use_numba_cache`)
and replaces every recorded kernel of that module, and its ``prange``, by numba's in the
module's namespace, so kernels that call each other compile as one. Numba compiles (or loads
from its cache) each signature on first call as before; the results are the same functions.

Numba's threading layer starts with the first of them (:func:`start_numba_threads`). Its
OpenMP layer sets OpenMP's thread count to ``NUMBA_NUM_THREADS`` (the CPU count unless set),
which torch reads as its own: with ``OMP_NUM_THREADS=1`` torch ran on 2 threads after the first
parallel kernel. The user's torch thread count is put back, and numba keeps its own setting.
"""
from __future__ import annotations

import functools
import threading
from typing import Any, Callable

from xaibench.storage.paths import use_numba_cache

#: Stands for ``numba.prange`` in a kernel module until its kernels are compiled.
prange = range

_PENDING: dict[str, list[tuple[Callable[..., Any], dict[str, Any]]]] = {}
_LOCK = threading.Lock()


def njit(**options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``numba.njit(**options)``, applied to the whole defining module at its first kernel call.

    Returns a decorator; the decorated name, once compiled, is numba's dispatcher itself.
    """
    def record(fn: Callable[..., Any]) -> Callable[..., Any]:
        _PENDING.setdefault(fn.__module__, []).append((fn, options))

        @functools.wraps(fn)
        def first_call(*args: Any) -> Any:
            compile_module(fn.__globals__)
            return fn.__globals__[fn.__name__](*args)
        return first_call
    return record


def compile_module(namespace: dict[str, Any]) -> None:
    """Replace the recorded kernels of the module whose globals are ``namespace`` by numba dispatchers."""
    with _LOCK:
        pending = _PENDING.pop(namespace["__name__"], None)
        if pending is None:
            return
        use_numba_cache()  # before the first dispatcher: nothing is written inside the package
        import numba

        start_numba_threads()

        namespace["prange"] = numba.prange
        for fn, options in pending:
            namespace[fn.__name__] = numba.njit(**options)(fn)


def start_numba_threads() -> int:
    """Start numba's threading layer, leaving torch's thread count as the user set it.

    Numba starts its layer once per process, at the first parallel kernel (or at ``numba.get_num_threads``);
    the OpenMP layer calls ``omp_set_num_threads(NUMBA_NUM_THREADS)``, which torch (built on the same OpenMP)
    then reports and uses. Numba's parallel loops name their own thread count, so torch's is restored
    without changing numba's. Returns numba's thread count (``numba.get_num_threads()``).
    """
    import numba
    import torch

    threads = torch.get_num_threads()
    numba_threads = numba.get_num_threads()
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return numba_threads

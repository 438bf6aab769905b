"""Thread-count control for numba kernels and BLAS (scanpy ``_utils/_numba.py`` style).

Two scopes, one home:

* :func:`numba_threads` — numba's thread count for the calling thread only (numba's setting is
  thread-local), leaving the process-wide BLAS limit alone: safe inside concurrent jobs (batch
  parallelism, a server, several perturbations at once).
* :func:`thread_limit` — numba *and* BLAS threads (process-wide for BLAS): for a whole stage run by one
  thread (training, received ligands, transitions).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

THREADS_ENV = "SPACETRAVLR_NUM_THREADS"


def _max_threads() -> int:
    import numba

    return int(numba.config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]


def default_threads() -> int:
    """``$SPACETRAVLR_NUM_THREADS`` if set, else every core numba may use."""

    env = os.environ.get(THREADS_ENV)
    if env:
        try:
            return max(1, min(int(env), _max_threads()))
        except ValueError:
            pass
    return int(_max_threads())


@contextlib.contextmanager
def numba_threads(n_threads: int | None) -> Iterator[int]:
    """numba threads of the calling thread inside the block.

    ``None`` keeps the caller's setting (e.g. a batch worker's share), capped by
    ``$SPACETRAVLR_NUM_THREADS``; a number is clipped to ``1..NUMBA_NUM_THREADS``.
    """
    import numba

    old = numba.get_num_threads()
    n = min(old, default_threads()) if n_threads is None else max(1, min(int(n_threads), _max_threads()))
    numba.set_num_threads(n)
    try:
        yield n
    finally:
        numba.set_num_threads(old)


@contextlib.contextmanager
def thread_limit(n_threads: int | None) -> Iterator[int]:
    """numba and BLAS threads limited to ``n_threads`` inside the block (None = :func:`default_threads`)."""
    from threadpoolctl import threadpool_limits

    n = default_threads() if n_threads is None else max(1, min(int(n_threads), _max_threads()))
    with numba_threads(n), threadpool_limits(limits=n):
        yield n

"""Thread-count control for numba kernels and BLAS (scanpy ``_utils/_numba.py`` style)."""

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
def thread_limit(n_threads: int | None) -> Iterator[int]:
    """Limit numba and BLAS threads to ``n_threads`` inside the block (None = default)."""
    import numba

    n = default_threads() if n_threads is None else max(1, min(int(n_threads), _max_threads()))
    old = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=n):
            yield n
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        yield n
    finally:
        numba.set_num_threads(old)

"""numba kernels of the layer reader. Arrays and scalars only."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def csr_gather(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, pos: np.ndarray, row0: int,
               out: np.ndarray) -> None:
    """Scatter a slice of CSR rows into the dense ``out`` over the wanted columns.

    ``indptr`` (B + 1,) are the offsets of B consecutive rows into ``indices`` / ``data`` (already
    shifted so that ``indptr[0]`` is the first entry given), ``pos[column]`` is the output column of a
    stored column (−1: not wanted). Row ``b`` of the slice lands in ``out[row0 + b]``. Entries are added
    (``out`` starts at 0), so a repeated (row, column) entry sums like :meth:`scipy.sparse.csr_matrix.toarray`.
    Values are converted to ``out``'s dtype (float32 or float64).
    """
    n_rows = indptr.shape[0] - 1
    for b in range(n_rows):
        r = row0 + b
        for p in range(indptr[b], indptr[b + 1]):
            c = pos[indices[p]]
            if c >= 0:
                out[r, c] += data[p]


@njit(cache=True, nogil=True)
def cut_small(out: np.ndarray, threshold: float) -> None:
    """``out[out <= threshold] = 0`` in place, without a boolean temporary (2-D, any float dtype)."""
    n, g = out.shape
    for i in range(n):
        for c in range(g):
            if out[i, c] <= threshold:
                out[i, c] = 0.0

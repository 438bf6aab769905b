"""numba kernels of the diffusion imputer. Arrays and scalars in, arrays out; nothing else."""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, parallel=True, nogil=True)
def csr_dense_matmul(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, B: np.ndarray,
                     out: np.ndarray) -> None:
    """``out = M @ B`` for a CSR matrix ``M`` (``indptr, indices, data``) and a dense C-contiguous ``B``.

    Parallel over the rows of ``M``; each row of ``out`` is written by one thread only, so there is no
    shared reduction (the ``+=`` accumulates into that thread's own row).
    """
    n = indptr.shape[0] - 1
    m = B.shape[1]
    for i in prange(n):
        for j in range(m):
            out[i, j] = 0.0
        for p in range(indptr[i], indptr[i + 1]):
            w = data[p]
            row = B[indices[p]]
            for j in range(m):
                out[i, j] += w * row[j]

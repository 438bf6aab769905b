"""numba kernels of the transition field. Arrays and scalars only.

Neighbour lists are a dense ``(N, k)`` int64 array (``-1`` = no neighbour in that slot).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def row_stats(X: np.ndarray, mean: np.ndarray, ssq: np.ndarray) -> None:
    """Per cell: mean over genes and centred sum of squares ``Σ (x − x̄)²`` (two passes)."""
    n, g = X.shape
    for i in prange(n):
        m = 0.0
        for c in range(g):
            m += X[i, c]
        m /= g
        q = 0.0
        for c in range(g):
            t = X[i, c] - m
            q += t * t
        mean[i] = m
        ssq[i] = q


@njit(cache=True, fastmath={"reassoc", "contract"})
def _dots(X: np.ndarray, i: int, j: int, dc: np.ndarray) -> tuple[float, float]:
    """``(X_j · dc, X_j · X_i)``; reassociation lets LLVM vectorise the reductions."""
    a = 0.0
    b = 0.0
    for c in range(X.shape[1]):
        x = X[j, c]
        a += x * dc[c]
        b += x * X[i, c]
    return a, b


@njit(cache=True)
def _centred_ss(X: np.ndarray, i: int, j: int) -> float:
    """``Σ (d − d̄)²`` of ``d = X_j − X_i``, two passes (fallback for near-identical cells)."""
    g = X.shape[1]
    s1 = 0.0
    for c in range(g):
        s1 += X[j, c] - X[i, c]
    m = s1 / g
    s2 = 0.0
    for c in range(g):
        t = X[j, c] - X[i, c] - m
        s2 += t * t
    return s2


@njit(parallel=True, cache=True)
def delta_correlation(X: np.ndarray, D: np.ndarray, nbrs: np.ndarray, order: np.ndarray, mean: np.ndarray,
                      ssq: np.ndarray, nan_value: float, out: np.ndarray) -> None:
    """``out[i, s] = Pearson(D[i], X[j] − X[i])`` over genes, ``j = nbrs[i, s]`` (velocyto colΔCor).

    With ``dc = D_i − mean(D_i)`` (so ``Σ dc = 0``) the Pearson numerator is ``X_j·dc − X_i·dc`` and
    the centred sum of squares of ``X_j − X_i`` is ``ssq_i + ssq_j − 2(X_j·X_i − g·x̄_i·x̄_j)``: one pass
    over ``X_j`` per pair. When that difference loses more than ~8 digits to cancellation (nearly
    identical cells) it is recomputed directly. Undefined correlations get ``nan_value``.
    Cells are visited in ``order`` (a space-filling curve of the embedding) so that neighbouring rows
    of X stay in cache; each iteration writes only its own cell's row.
    """
    n, g = X.shape
    k = nbrs.shape[1]
    for t in prange(n):
        i = order[t]
        dc = np.empty(g)
        dm = 0.0
        for c in range(g):
            dm += D[i, c]
        dm /= g
        dss = 0.0
        for c in range(g):
            v = D[i, c] - dm
            dc[c] = v
            dss += v * v
        xi_d, _ = _dots(X, i, i, dc)
        for s in range(k):
            j = nbrs[i, s]
            if j < 0:
                out[i, s] = 0.0
                continue
            a, b = _dots(X, i, j, dc)
            var = ssq[i] + ssq[j] - 2.0 * (b - g * mean[i] * mean[j])
            if var <= 1e-8 * (ssq[i] + ssq[j]):
                var = _centred_ss(X, i, j)
            den = np.sqrt(var * dss) if var > 0.0 else 0.0
            if den > 0.0 and np.isfinite(den):
                out[i, s] = (a - xi_d) / den
            else:
                out[i, s] = nan_value


@njit(parallel=True, cache=True)
def softmax_rows(corr: np.ndarray, nbrs: np.ndarray, self_mask: np.ndarray, inv_t: float, out: np.ndarray) -> None:
    """``out[i, s] ∝ exp(corr[i, s] / T)`` over valid, non-self slots; rows sum to 1.

    Slots with ``nbrs < 0`` or ``self_mask`` true get 0. The maximum is subtracted before ``exp``
    (the same ratios, no overflow).
    """
    n, k = corr.shape
    for i in prange(n):
        mx = -np.inf
        for s in range(k):
            if nbrs[i, s] >= 0 and not self_mask[i, s]:
                v = corr[i, s] * inv_t
                if v > mx:
                    mx = v
        tot = 0.0
        for s in range(k):
            if nbrs[i, s] >= 0 and not self_mask[i, s]:
                e = np.exp(corr[i, s] * inv_t - mx)
                out[i, s] = e
                tot += e
            else:
                out[i, s] = 0.0
        if tot > 0.0:
            for s in range(k):
                out[i, s] /= tot


@njit(parallel=True, cache=True)
def project(E: np.ndarray, nbrs: np.ndarray, P: np.ndarray, unit: bool, out: np.ndarray) -> None:
    """``out[i] = Σ_s P[i, s] · (E[j] − E[i])`` (or unit directions), ``j = nbrs[i, s]``."""
    n, k = P.shape
    dim = E.shape[1]
    for i in prange(n):
        for d in range(dim):
            out[i, d] = 0.0
        for s in range(k):
            j = nbrs[i, s]
            if j < 0 or j == i:
                continue
            w = P[i, s]
            if w == 0.0:
                continue
            if unit:
                nrm = 0.0
                for d in range(dim):
                    t = E[j, d] - E[i, d]
                    nrm += t * t
                nrm = np.sqrt(nrm)
                if nrm == 0.0:
                    continue
                for d in range(dim):
                    out[i, d] += w * (E[j, d] - E[i, d]) / nrm
            else:
                for d in range(dim):
                    out[i, d] += w * (E[j, d] - E[i, d])

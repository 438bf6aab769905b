"""numba kernels of the transition field. Arrays and scalars only.

Neighbour lists are a dense ``(N, k)`` int64 array (``-1`` = no neighbour in that slot).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

# A centred sum of squares at most this fraction of the raw sum of squares means "constant": the
# coefficient of variation is below 1e-10, which is rounding noise (for example ``Σ (c − mean(c))²`` of a
# constant vector whose mean is not exactly representable), so the correlation is undefined.
UNDEFINED_RSS = 1e-20
# ``Σd² − (Σd)²/g`` loses ``log10(Σd² / var)`` digits; below this ratio the variance is recomputed in
# two passes (only when the mean of ``d`` dwarfs its spread, which expression differences rarely do).
TWO_PASS_BELOW = 1e-3


@njit(cache=True, inline="always")
def _scaled(x: float, rescale: float, f: float, mode: int) -> float:
    """``x · rescale`` rounded as ``np.round`` does: ``rint(y·f)/f`` (``mode`` 1, decimals ≥ 0) or
    ``rint(y/f)·f`` (``mode`` −1, decimals < 0), ``f = 10^|decimals|``; ``mode`` 0: no rounding."""
    y = x * rescale
    if mode == 1:
        return np.rint(y * f) / f
    if mode == -1:
        return np.rint(y / f) * f
    return y


@njit(parallel=True, cache=True)
def all_finite(X: np.ndarray) -> bool:
    """True when every value of the matrix is finite (no temporary, parallel over rows)."""
    n, g = X.shape
    bad = 0
    for i in prange(n):
        b = 0
        for c in range(g):
            if not np.isfinite(X[i, c]):
                b = 1
        bad += b
    return bad == 0


@njit(parallel=True, cache=True)
def round_scaled(D: np.ndarray, rescale: float, f: float, mode: int, out: np.ndarray) -> bool:
    """``out = round(D · rescale)`` (see ``_scaled``); returns False when a value is not finite."""
    n, g = D.shape
    bad = 0
    for i in prange(n):
        b = 0
        for c in range(g):
            x = _scaled(D[i, c], rescale, f, mode)
            if not np.isfinite(x):
                b = 1
            out[i, c] = x
        bad += b
    return bad == 0


@njit(cache=True, fastmath={"reassoc", "contract"})
def _pair_sums(X: np.ndarray, i: int, j: int, dc: np.ndarray) -> tuple[float, float, float]:
    """``(Σ d, Σ d², Σ d·dc)`` of ``d = X_j − X_i`` (in float64 for a float32 X); reassociation lets LLVM
    vectorise the reductions."""
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    for c in range(X.shape[1]):
        d = np.float64(X[j, c]) - np.float64(X[i, c])
        s1 += d
        s2 += d * d
        s3 += d * dc[c]
    return s1, s2, s3


@njit(cache=True, fastmath={"reassoc", "contract"})
def _quad_sums(X: np.ndarray, i: int, j1: int, j2: int, j3: int, j4: int, dc: np.ndarray, acc: np.ndarray,
               s: int) -> None:
    """``_pair_sums`` of four neighbours in one pass: ``X_i`` and ``dc`` are loaded once for the four, which
    relieves the loads that bound the single-pair loop (about 1.6× faster). Writes ``acc[s..s+3]``."""
    x1 = X[j1]
    x2 = X[j2]
    x3 = X[j3]
    x4 = X[j4]
    xi = X[i]
    a1 = a2 = a3 = b1 = b2 = b3 = e1 = e2 = e3 = f1 = f2 = f3 = 0.0
    for c in range(xi.shape[0]):
        x = np.float64(xi[c])
        w = dc[c]
        d = np.float64(x1[c]) - x
        a1 += d
        a2 += d * d
        a3 += d * w
        d = np.float64(x2[c]) - x
        b1 += d
        b2 += d * d
        b3 += d * w
        d = np.float64(x3[c]) - x
        e1 += d
        e2 += d * d
        e3 += d * w
        d = np.float64(x4[c]) - x
        f1 += d
        f2 += d * d
        f3 += d * w
    acc[s, 0], acc[s, 1], acc[s, 2] = a1, a2, a3
    acc[s + 1, 0], acc[s + 1, 1], acc[s + 1, 2] = b1, b2, b3
    acc[s + 2, 0], acc[s + 2, 1], acc[s + 2, 2] = e1, e2, e3
    acc[s + 3, 0], acc[s + 3, 1], acc[s + 3, 2] = f1, f2, f3


@njit(cache=True)
def _centred_ss(X: np.ndarray, i: int, j: int, m: float) -> float:
    """``Σ (d − m)²`` of ``d = X_j − X_i`` (second pass of the two-pass variance)."""
    s2 = 0.0
    for c in range(X.shape[1]):
        t = np.float64(X[j, c]) - np.float64(X[i, c]) - m
        s2 += t * t
    return s2


@njit(parallel=True, cache=True)
def delta_correlation(X: np.ndarray, D: np.ndarray, rescale: float, f: float, mode: int, nbrs: np.ndarray,
                      order: np.ndarray, nan_value: float, out: np.ndarray, bad: np.ndarray,
                      dpos: np.ndarray) -> None:
    """``out[i, s] = Pearson(Δ_i, X[j] − X[i])`` over genes, ``j = nbrs[i, s]`` (velocyto colΔCor).

    X may be float32 (every difference is taken in float64). Δ of gene ``c`` is ``D[i, dpos[c]]``, or 0
    when ``dpos[c] < 0`` (a gene that did not change needs no column).

    ``Δ_i`` is row i of D scaled and rounded on the fly (``_scaled``; bit-identical to
    ``np.round(D · rescale, decimals)``), so no rounded copy of the N × G matrix is made. A row with a
    non-finite Δ sets ``bad[i]`` and is skipped.

    Per cell, ``dc = Δ_i − mean(Δ_i)`` is formed once (two passes). Per pair, one pass over the genes
    (shared by four neighbours at a time) accumulates ``Σd``, ``Σd²`` and ``Σd·dc`` of
    ``d = X_j − X_i``: the numerator is ``Σd·dc − mean(d)·Σdc`` and the variance ``Σd² − (Σd)²/g``
    (recomputed in two passes when that difference would cancel). Working on ``d`` itself keeps full
    precision for nearly identical cells, where expanding ``|X_j − X_i|²`` from per-cell sums would not.

    A correlation is undefined (→ ``nan_value``) when either vector is constant: its centred sum of
    squares is 0 or below ``UNDEFINED_RSS`` of its raw sum of squares. A cell whose Δ is constant (no
    change) skips its pairs entirely. Empty slots (``nbrs < 0``) get 0.
    Cells are visited in ``order`` (a space-filling curve of the embedding) so that neighbouring rows
    of X stay in cache; each iteration writes only its own cell's row, so the order changes nothing.
    """
    n, g = X.shape
    k = nbrs.shape[1]
    for t in prange(n):
        i = order[t]
        dc = np.empty(g)
        dm = 0.0
        draw = 0.0
        finite = True
        for c in range(g):
            p = dpos[c]
            x = _scaled(D[i, p] if p >= 0 else 0.0, rescale, f, mode)
            if not np.isfinite(x):
                finite = False
            dc[c] = x
            dm += x
            draw += x * x
        if not finite:
            bad[i] = True
            for s in range(k):
                out[i, s] = 0.0
            continue
        dm /= g
        dss = 0.0
        sdc = 0.0
        for c in range(g):
            v = dc[c] - dm
            dc[c] = v
            dss += v * v
            sdc += v
        if not dss > UNDEFINED_RSS * draw:
            for s in range(k):
                out[i, s] = nan_value if nbrs[i, s] >= 0 else 0.0
            continue
        # sums of d = X_j − X_i: four neighbours at a time, then the rest one by one
        acc = np.empty((k, 3))
        s = 0
        while s + 3 < k and nbrs[i, s] >= 0 and nbrs[i, s + 1] >= 0 and nbrs[i, s + 2] >= 0 and nbrs[i, s + 3] >= 0:
            _quad_sums(X, i, nbrs[i, s], nbrs[i, s + 1], nbrs[i, s + 2], nbrs[i, s + 3], dc, acc, s)
            s += 4
        while s < k:
            j = nbrs[i, s]
            if j >= 0:
                acc[s, 0], acc[s, 1], acc[s, 2] = _pair_sums(X, i, j, dc)
            s += 1
        for s in range(k):
            j = nbrs[i, s]
            if j < 0:
                out[i, s] = 0.0
                continue
            s1 = acc[s, 0]
            s2 = acc[s, 1]
            s3 = acc[s, 2]
            m = s1 / g
            var = s2 - s1 * m
            if var < TWO_PASS_BELOW * s2:
                var = _centred_ss(X, i, j, m)
            if var > UNDEFINED_RSS * s2:
                out[i, s] = (s3 - m * sdc) / np.sqrt(var * dss)
            else:
                out[i, s] = nan_value


@njit(parallel=True, cache=True)
def softmax_rows(corr: np.ndarray, nbrs: np.ndarray, inv_t: float, remove_null: bool, out: np.ndarray) -> None:
    """``out[i, s] ∝ exp(corr[i, s] / T)`` over valid, non-self slots; rows sum to 1.

    Empty slots (``nbrs < 0``) and the cell itself get 0. The maximum is subtracted before ``exp``
    (the same ratios, no overflow). ``remove_null`` subtracts the Δ = 0 distribution, which is uniform
    over those slots (``1/count``, exactly what the softmax of equal values gives), so rows sum to 0.
    """
    n, k = corr.shape
    for i in prange(n):
        mx = -np.inf
        cnt = 0
        for s in range(k):
            j = nbrs[i, s]
            if j >= 0 and j != i:
                cnt += 1
                v = corr[i, s] * inv_t
                if v > mx:
                    mx = v
        tot = 0.0
        for s in range(k):
            j = nbrs[i, s]
            if j >= 0 and j != i:
                e = np.exp(corr[i, s] * inv_t - mx)
                out[i, s] = e
                tot += e
            else:
                out[i, s] = 0.0
        if tot > 0.0:
            u = 1.0 / cnt
            for s in range(k):
                j = nbrs[i, s]
                if j >= 0 and j != i:
                    out[i, s] /= tot
                    if remove_null:
                        out[i, s] -= u


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

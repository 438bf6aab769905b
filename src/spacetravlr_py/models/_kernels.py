"""numba kernels of the sparse group lasso (SPEC §5.1). Arrays and scalars in, arrays out; nothing else.

The problem, for one (gene, cluster) block of ``m`` cells and ``p`` features, after centring::

    min_w  ½ wᵀGw − cᵀw + ½‖y_c‖²/m  +  Σ_g λ_g ‖w_g‖₂  +  l1 ‖w‖₁,
    G = X_cᵀX_c / m,   c = X_cᵀy_c / m.

Working in Gram form makes a gradient cost ``p²`` (less when the iterate is sparse) instead of ``2mp``,
and makes the backtracking test exact: for a quadratic, ``f(x) − f(y) − ∇f(y)·(x − y) = ½ dᵀGd`` with
``d = x − y``, computed from ``Gx − Gy`` without the cancellation of an objective difference.

Conventions: ``X`` ``(N, p)`` float64 C-contiguous (all cells of a gene), ``y`` ``(N,)``, ``order``
``(N,)`` int64 (cells sorted by cluster), ``starts`` ``(K + 1,)`` int64 (cluster ``k`` owns
``order[starts[k]:starts[k + 1]]``), ``feature_group`` ``(p,)`` int64 in ``0..n_groups − 1``,
``group_lam`` ``(n_groups,)`` float64. Everything is float64 and every cluster's arithmetic is serial:
the parallel driver only distributes whole clusters over threads, so results are bit-identical for any
thread count. No fast-math: LLVM may not reassociate or contract, so the serial and parallel drivers
(which inline the same code) round identically.
"""

from __future__ import annotations

import numpy as np
from numba import get_thread_id, njit, prange

STATUS_FITTED = 0
STATUS_TOO_FEW_CELLS = 1
STATUS_NONFINITE_INPUT = 2

_TINY = 1e-300
_MAX_BACKTRACKS = 200
"""Doublings of L per iteration before giving up (2^200 exceeds any finite curvature ratio)."""


@njit(cache=True, nogil=True)
def rank4_update(r0: np.ndarray, r1: np.ndarray, r2: np.ndarray, r3: np.ndarray, G: np.ndarray) -> None:
    """``G[a, b] += Σ_q r_q[a]·r_q[b]`` for ``b ≥ a`` (a few entries just below the diagonal are also
    written; :func:`symmetrize_scale` overwrites them).

    Register-blocked: four rows of ``G`` per pass, so each loaded ``r_q[b]`` feeds four multiply-adds and
    ``G`` (L2-resident) is streamed once per four cells. Slicing ``[a:]`` keeps the inner index provably
    non-negative so LLVM vectorises the loop. The summation order is fixed (no fast-math).
    """
    p = G.shape[0]
    a = 0
    while a + 4 <= p:
        s0 = r0[a:]
        s1 = r1[a:]
        s2 = r2[a:]
        s3 = r3[a:]
        g0 = G[a, a:]
        g1 = G[a + 1, a:]
        g2 = G[a + 2, a:]
        g3 = G[a + 3, a:]
        u0, u1, u2, u3 = r0[a], r1[a], r2[a], r3[a]
        v0, v1, v2, v3 = r0[a + 1], r1[a + 1], r2[a + 1], r3[a + 1]
        w0, w1, w2, w3 = r0[a + 2], r1[a + 2], r2[a + 2], r3[a + 2]
        z0, z1, z2, z3 = r0[a + 3], r1[a + 3], r2[a + 3], r3[a + 3]
        for k in range(p - a):
            e0 = s0[k]
            e1 = s1[k]
            e2 = s2[k]
            e3 = s3[k]
            g0[k] += (u0 * e0 + u1 * e1) + (u2 * e2 + u3 * e3)
            g1[k] += (v0 * e0 + v1 * e1) + (v2 * e2 + v3 * e3)
            g2[k] += (w0 * e0 + w1 * e1) + (w2 * e2 + w3 * e3)
            g3[k] += (z0 * e0 + z1 * e1) + (z2 * e2 + z3 * e3)
        a += 4
    while a < p:
        s0 = r0[a:]
        s1 = r1[a:]
        s2 = r2[a:]
        s3 = r3[a:]
        g0 = G[a, a:]
        u0, u1, u2, u3 = r0[a], r1[a], r2[a], r3[a]
        for k in range(p - a):
            g0[k] += (u0 * s0[k] + u1 * s1[k]) + (u2 * s2[k] + u3 * s3[k])
        a += 1


@njit(cache=True, nogil=True)
def centred_gram(
    X: np.ndarray, rows: np.ndarray, xbar: np.ndarray, yc: np.ndarray, G: np.ndarray, c: np.ndarray
) -> None:
    """Unscaled ``G = X_cᵀX_c`` (upper triangle) and ``c = X_cᵀy_c`` with ``X_c = X[rows] − x̄``.

    Rows are gathered and centred four at a time into a small buffer, so no ``m × p`` copy is made
    (large per-block allocations stall the parallel driver). A short last block is padded with zero
    rows, which add exact zeros.
    """
    m = rows.shape[0]
    p = X.shape[1]
    for a in range(p):
        c[a] = 0.0
        for b in range(p):
            G[a, b] = 0.0
    buf = np.zeros((4, p))
    i = 0
    while i < m:
        for q in range(4):
            bq = buf[q]
            if i + q < m:
                xr = X[rows[i + q]]
                yq = yc[i + q]
                for j in range(p):
                    v = xr[j] - xbar[j]
                    bq[j] = v
                    c[j] += yq * v
            else:
                for j in range(p):
                    bq[j] = 0.0
        rank4_update(buf[0], buf[1], buf[2], buf[3], G)
        i += 4


@njit(cache=True, nogil=True)
def symmetrize_scale(G: np.ndarray, scale: float) -> None:
    """``G ← scale · (upper triangle mirrored)``: a full symmetric matrix from :func:`centred_gram`."""
    p = G.shape[0]
    for a in range(p):
        for b in range(a, p):
            v = G[a, b] * scale
            G[a, b] = v
            G[b, a] = v


@njit(cache=True, nogil=True)
def symv(G: np.ndarray, x: np.ndarray, out: np.ndarray) -> None:
    """``out = G x`` for symmetric ``G`` as a sum of rows ``Σ_b x_b G[b, :]``, skipping ``x_b = 0``.

    Row access is contiguous and vectorises; lasso iterates are sparse, so most rows are skipped.
    """
    p = G.shape[0]
    for a in range(p):
        out[a] = 0.0
    for b in range(p):
        xb = x[b]
        if xb != 0.0:
            row = G[b]
            for a in range(p):
                out[a] += xb * row[a]


@njit(cache=True, nogil=True)
def power_lipschitz(G: np.ndarray, n_power: int) -> float:
    """Rayleigh-quotient estimate of ``λ_max(G) = σ_max(X_c)²/m`` by ``n_power`` power iterations.

    Deterministic start ``v_j ∝ 1 + j/p``. The estimate is a lower bound of ``λ_max``; backtracking
    raises ``L`` when a step needs more. Returns 0 for a zero matrix.
    """
    p = G.shape[0]
    if p == 0:
        return 0.0
    v = np.empty(p)
    gv = np.empty(p)
    nrm = 0.0
    for j in range(p):
        v[j] = 1.0 + j / p
        nrm += v[j] * v[j]
    nrm = np.sqrt(nrm)
    for j in range(p):
        v[j] /= nrm
    est = 0.0
    for _ in range(max(n_power, 1)):
        symv(G, v, gv)
        rq = 0.0
        nrm = 0.0
        for j in range(p):
            rq += v[j] * gv[j]
            nrm += gv[j] * gv[j]
        est = rq
        nrm = np.sqrt(nrm)
        if not nrm > 0.0:
            return 0.0
        for j in range(p):
            v[j] = gv[j] / nrm
    return est


@njit(cache=True, nogil=True)
def prox_sparse_group(
    z: np.ndarray,
    l1_thresh: float,
    feature_group: np.ndarray,
    group_thresh: np.ndarray,
    group_norm: np.ndarray,
    out: np.ndarray,
) -> None:
    """Prox of ``t·(l1‖·‖₁ + Σ λ_g‖·_g‖₂)``: soft-threshold by ``l1_thresh = t·l1``, then shrink each
    group by ``max(0, 1 − t·λ_g/‖u_g‖)`` with ``group_thresh[g] = t·λ_g``. ``group_norm`` is workspace.
    """
    p = z.shape[0]
    n_groups = group_thresh.shape[0]
    for g in range(n_groups):
        group_norm[g] = 0.0
    for j in range(p):
        zj = z[j]
        if zj > l1_thresh:
            u = zj - l1_thresh
        elif zj < -l1_thresh:
            u = zj + l1_thresh
        else:
            u = 0.0
        out[j] = u
        group_norm[feature_group[j]] += u * u
    for g in range(n_groups):
        th = group_thresh[g]
        nrm = np.sqrt(group_norm[g])
        if th <= 0.0:
            group_norm[g] = 1.0  # no group penalty: keep the soft-thresholded block as is
        elif nrm > th:
            group_norm[g] = 1.0 - th / nrm
        else:
            group_norm[g] = 0.0
    for j in range(p):
        out[j] *= group_norm[feature_group[j]]


@njit(cache=True, nogil=True)
def fista_gram(
    G: np.ndarray,
    c: np.ndarray,
    feature_group: np.ndarray,
    group_lam: np.ndarray,
    l1: float,
    w: np.ndarray,
    lipschitz: float,
    n_iter: int,
    tol: float,
    backtrack: float,
) -> tuple[int, bool, float, int, int]:
    """FISTA with backtracking and gradient-based adaptive restart on the Gram-form problem.

    Starts from ``w`` (updated in place) and step ``1/lipschitz``. Each iteration:
    ``x⁺ = prox_{1/L}(y − (Gy − c)/L)``; while ``dᵀGd > L‖d‖²`` (``d = x⁺ − y``, the sufficient-decrease
    condition of Beck & Teboulle 2009, exact for a quadratic) ``L ← backtrack·L``; restart the momentum
    (``t = 1``, ``y = x⁺``) when ``(y − x⁺)·(x⁺ − x) > 0`` (O'Donoghue & Candès 2012), else
    ``t⁺ = (1 + √(1 + 4t²))/2``, ``y = x⁺ + (t − 1)/t⁺ · (x⁺ − x)``. Stops when
    ``‖x⁺ − x‖ / max(‖x⁺‖, tiny) < tol`` or after ``n_iter`` iterations.

    ``Gy`` is carried by linearity (``Gy = Gx⁺ + β(Gx⁺ − Gx)``), so an iteration costs one product
    with ``G`` plus one per backtrack.

    Returns ``(iterations, converged, final L, restarts, backtracks)``.
    """
    p = G.shape[0]
    n_groups = group_lam.shape[0]
    x = w.copy()
    gx = np.empty(p)
    symv(G, x, gx)
    yv = x.copy()
    gy = gx.copy()
    xn = np.empty(p)
    gxn = np.empty(p)
    z = np.empty(p)
    gthr = np.empty(n_groups)
    gwork = np.empty(n_groups)
    L = lipschitz
    if not (L > 0.0 and L < np.inf):
        L = 1.0
    t = 1.0
    it = 0
    converged = False
    n_restarts = 0
    n_backtracks = 0
    for k in range(n_iter):
        it = k + 1
        tries = 0
        while True:
            inv_l = 1.0 / L
            for j in range(p):
                z[j] = yv[j] - (gy[j] - c[j]) * inv_l
            for g in range(n_groups):
                gthr[g] = group_lam[g] * inv_l
            prox_sparse_group(z, l1 * inv_l, feature_group, gthr, gwork, xn)
            symv(G, xn, gxn)
            quad = 0.0
            dd = 0.0
            for j in range(p):
                d = xn[j] - yv[j]
                quad += d * (gxn[j] - gy[j])
                dd += d * d
            if not np.isfinite(quad) or quad <= L * dd * (1.0 + 1e-12) or tries >= _MAX_BACKTRACKS:
                break
            L *= backtrack
            tries += 1
            n_backtracks += 1
        if not np.isfinite(quad):
            # overflow (only possible with absurdly scaled inputs): stop; the caller sees non-finite output
            for j in range(p):
                x[j] = xn[j]
            break
        step2 = 0.0
        norm2 = 0.0
        restart_dot = 0.0
        for j in range(p):
            dx = xn[j] - x[j]
            step2 += dx * dx
            norm2 += xn[j] * xn[j]
            restart_dot += (yv[j] - xn[j]) * dx
        if restart_dot > 0.0:
            n_restarts += 1
            t = 1.0
            for j in range(p):
                yv[j] = xn[j]
                gy[j] = gxn[j]
        else:
            t_next = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
            beta = (t - 1.0) / t_next
            for j in range(p):
                yv[j] = xn[j] + beta * (xn[j] - x[j])
                gy[j] = gxn[j] + beta * (gxn[j] - gx[j])
            t = t_next
        for j in range(p):
            x[j] = xn[j]
            gx[j] = gxn[j]
        if np.sqrt(step2) < tol * max(np.sqrt(norm2), _TINY):
            converged = True
            break
    for j in range(p):
        w[j] = x[j]
    return it, converged, L, n_restarts, n_backtracks


@njit(cache=True, nogil=True)
def penalty_value(w: np.ndarray, feature_group: np.ndarray, group_lam: np.ndarray, l1: float) -> float:
    """``Σ_g λ_g‖w_g‖₂ + l1‖w‖₁``."""
    n_groups = group_lam.shape[0]
    sq = np.zeros(n_groups)
    s1 = 0.0
    for j in range(w.shape[0]):
        s1 += abs(w[j])
        sq[feature_group[j]] += w[j] * w[j]
    val = l1 * s1
    for g in range(n_groups):
        val += group_lam[g] * np.sqrt(sq[g])
    return val


# ---------------------------------------------------------------------------------------------------
# Split design: gene-specific columns (XS) + columns shared by every gene (XL), with per-cluster Gram
# blocks of the shared columns computed once per run.
#
# A target's features are TF / TF–ligand / extra columns of its own (``XS``, N × p_s) and a subset of
# the run's ligand–receptor columns (``XL``, N × P, identical for every target). ``src_kind[j]`` (0 =
# XS, 1 = XL) and ``src_col[j]`` locate feature ``j``. The unscaled centred Gram of XL over each
# cluster's cells (``shared_gram[k]``, P × P) and the cluster means (``shared_mean[k]``) are computed
# once; a target then only computes the rows of its own columns (m·p_s·p instead of m·p²/2).
# ---------------------------------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def _feature(XS: np.ndarray, XL: np.ndarray, r: int, kind: int, col: int) -> float:
    return XS[r, col] if kind == 0 else XL[r, col]


@njit(cache=True, nogil=True)
def shared_block_stats(XL: np.ndarray, rows: np.ndarray, mean: np.ndarray, G: np.ndarray) -> bool:
    """Cluster means of XL over ``rows`` and the unscaled centred Gram (full, symmetric) into ``G``.

    Returns False when a value is not finite. Uses the same centring and rank-4 accumulation as
    :func:`centred_gram`.
    """
    m = rows.shape[0]
    P = XL.shape[1]
    for j in range(P):
        mean[j] = 0.0
    for i in range(m):
        xr = XL[rows[i]]
        for j in range(P):
            mean[j] += xr[j]
    for j in range(P):
        if not np.isfinite(mean[j]):
            return False
        mean[j] = mean[j] / m if m > 0 else 0.0
    yc = np.zeros(m)
    c = np.empty(P)
    centred_gram(XL, rows, mean, yc, G, c)
    for a in range(P):
        for b in range(a + 1, P):
            G[b, a] = G[a, b]
    return True


@njit(cache=True, parallel=True)
def shared_grams(XL: np.ndarray, order: np.ndarray, starts: np.ndarray, means: np.ndarray,
                 grams: np.ndarray, ok: np.ndarray) -> None:
    """:func:`shared_block_stats` for every cluster (one cluster per ``prange`` iteration; each writes
    only its own slot)."""
    for k in prange(starts.shape[0] - 1):
        ok[k] = shared_block_stats(XL, order[starts[k]:starts[k + 1]], means[k], grams[k])


@njit(cache=True, nogil=True)
def fit_block(
    XS: np.ndarray,
    XL: np.ndarray,
    src_kind: np.ndarray,
    src_col: np.ndarray,
    y: np.ndarray,
    rows: np.ndarray,
    shared_gram: np.ndarray,
    shared_mean: np.ndarray,
    has_shared: bool,
    feature_group: np.ndarray,
    group_lam: np.ndarray,
    l1: float,
    n_iter: int,
    tol: float,
    lipschitz_init: float,
    n_power: int,
    backtrack: float,
    G: np.ndarray,
    coef: np.ndarray,
    stats: np.ndarray,
    counts: np.ndarray,
) -> None:
    """Fit one cluster block (cells ``rows``): centre, Gram, power iteration, FISTA, scores.

    Features come from the split design (see the section comment); a plain design is ``XS = X`` with
    ``src_kind = 0`` and ``src_col = 0..p−1`` (then the register-blocked :func:`centred_gram` is used).
    Writes ``coef`` (p,), ``stats = [intercept, r2, mse, lipschitz, objective]`` and
    ``counts = [n_iter, converged, status, restarts, backtracks]``; ``G`` (p, p) is workspace. Blocks
    with fewer than 2 cells or non-finite inputs are not fitted (zero coefficients and stats, status
    set). ``R² = 1 − SS_res/SS_tot``, defined as 0 when ``y`` is constant in the block.
    """
    m = rows.shape[0]
    p = src_kind.shape[0]
    for j in range(p):
        coef[j] = 0.0
    for q in range(stats.shape[0]):
        stats[q] = 0.0
    for q in range(counts.shape[0]):
        counts[q] = 0
    if m < 2:
        counts[2] = STATUS_TOO_FEW_CELLS
        return
    use_shared = np.zeros(p, dtype=np.bool_)
    if has_shared:
        for j in range(p):
            use_shared[j] = src_kind[j] == 1
    # pass 1: means (shared columns: the run's cluster means), finiteness, constant y
    yc = np.empty(m)
    xbar = np.zeros(p)
    ybar = 0.0
    finite = True
    y0 = y[rows[0]]
    y_const = True
    for i in range(m):
        r = rows[i]
        yi = y[r]
        yc[i] = yi
        ybar += yi
        if not np.isfinite(yi):
            finite = False
        if yi != y0:
            y_const = False
        for j in range(p):
            if not use_shared[j]:
                xbar[j] += _feature(XS, XL, r, src_kind[j], src_col[j])
    for j in range(p):
        if use_shared[j]:
            xbar[j] = shared_mean[src_col[j]]
        elif not np.isfinite(xbar[j]):
            finite = False
    if not finite:
        counts[2] = STATUS_NONFINITE_INPUT
        return
    inv_m = 1.0 / m
    if y_const:
        ybar = y0
    else:
        ybar *= inv_m
    for j in range(p):
        if not use_shared[j]:
            xbar[j] *= inv_m
    for i in range(m):
        yc[i] = 0.0 if y_const else yc[i] - ybar
    # pass 2: c for every column; G rows of own columns from the cells, shared block copied
    own = np.empty(p, dtype=np.int64)
    n_own = 0
    plain = XS.shape[1] == p
    for j in range(p):
        if not use_shared[j]:
            own[n_own] = j
            n_own += 1
        if src_kind[j] != 0 or src_col[j] != j:
            plain = False
    c = np.zeros(p)
    if plain:
        centred_gram(XS, rows, xbar, yc, G, c)
        symmetrize_scale(G, inv_m)
        n_own = 0  # nothing left for the split loop below
        m_loop = 0
    else:
        for a in range(p):
            for b in range(p):
                G[a, b] = 0.0
        m_loop = m
    buf = np.empty(p)
    for i in range(m_loop):
        r = rows[i]
        yq = yc[i]
        for j in range(p):
            v = _feature(XS, XL, r, src_kind[j], src_col[j]) - xbar[j]
            buf[j] = v
            c[j] += yq * v
        for t in range(n_own):
            a = own[t]
            va = buf[a]
            if va != 0.0:
                ga = G[a]
                for b in range(p):
                    ga[b] += va * buf[b]
    for t in range(n_own):
        a = own[t]
        for b in range(p):
            G[b, a] = G[a, b]
    if has_shared:
        for a in range(p):
            if use_shared[a]:
                sa = src_col[a]
                for b in range(p):
                    if use_shared[b]:
                        G[a, b] = shared_gram[sa, src_col[b]]
    for a in range(p):
        c[a] *= inv_m
        if not plain:
            for b in range(p):
                G[a, b] *= inv_m
    lip = lipschitz_init if lipschitz_init > 0.0 else power_lipschitz(G, n_power)
    it, conv, lip, n_restarts, n_backtracks = fista_gram(
        G, c, feature_group, group_lam, l1, coef, lip, n_iter, tol, backtrack
    )
    # pass 3: intercept and in-sample scores
    intercept = ybar
    for j in range(p):
        intercept -= xbar[j] * coef[j]
    ss_res = 0.0
    ss_tot = 0.0
    for i in range(m):
        r = rows[i]
        pred = 0.0
        for j in range(p):
            if coef[j] != 0.0:
                pred += (_feature(XS, XL, r, src_kind[j], src_col[j]) - xbar[j]) * coef[j]
        res = yc[i] - pred
        ss_res += res * res
        ss_tot += yc[i] * yc[i]
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0.0 else 0.0
    stats[0] = intercept
    stats[1] = r2
    stats[2] = ss_res * inv_m
    stats[3] = lip
    stats[4] = 0.5 * ss_res * inv_m + penalty_value(coef, feature_group, group_lam, l1)
    counts[0] = it
    counts[1] = 1 if conv else 0
    counts[2] = STATUS_FITTED
    counts[3] = n_restarts
    counts[4] = n_backtracks


@njit(cache=True, nogil=True)
def fit_blocks_serial(XS: np.ndarray, XL: np.ndarray, src_kind: np.ndarray, src_col: np.ndarray,
                            y: np.ndarray, order: np.ndarray, starts: np.ndarray, shared_grams_: np.ndarray,
                            shared_means: np.ndarray, has_shared: bool, feature_group: np.ndarray,
                            group_lam: np.ndarray, l1: float, n_iter: int, tol: float, lipschitz_init: float,
                            n_power: int, backtrack: float, gram_ws: np.ndarray, coef: np.ndarray,
                            stats: np.ndarray, counts: np.ndarray) -> None:
    """:func:`fit_block` for every cluster, one after another (workspace slot 0). ``nogil``: callers may
    run genes in threads, each with its own workspace."""
    for k in range(starts.shape[0] - 1):
        sg = shared_grams_[k] if has_shared else shared_grams_[0]
        sm = shared_means[k] if has_shared else shared_means[0]
        fit_block(XS, XL, src_kind, src_col, y, order[starts[k]:starts[k + 1]], sg, sm, has_shared,
                        feature_group, group_lam, l1, n_iter, tol, lipschitz_init, n_power, backtrack,
                        gram_ws[0], coef[k], stats[k], counts[k])


@njit(cache=True, parallel=True)
def fit_blocks_parallel(XS: np.ndarray, XL: np.ndarray, src_kind: np.ndarray, src_col: np.ndarray,
                              y: np.ndarray, order: np.ndarray, starts: np.ndarray, shared_grams_: np.ndarray,
                              shared_means: np.ndarray, has_shared: bool, feature_group: np.ndarray,
                              group_lam: np.ndarray, l1: float, n_iter: int, tol: float, lipschitz_init: float,
                              n_power: int, backtrack: float, gram_ws: np.ndarray, coef: np.ndarray,
                              stats: np.ndarray, counts: np.ndarray) -> None:
    """:func:`fit_blocks_serial` with clusters over numba threads. No reductions: iteration ``k`` writes
    only row ``k`` and runs the same serial code, hence bit-identical results for any thread count; each
    thread uses its own Gram workspace ``gram_ws[get_thread_id()]``."""
    for k in prange(starts.shape[0] - 1):
        sg = shared_grams_[k] if has_shared else shared_grams_[0]
        sm = shared_means[k] if has_shared else shared_means[0]
        fit_block(XS, XL, src_kind, src_col, y, order[starts[k]:starts[k + 1]], sg, sm, has_shared,
                        feature_group, group_lam, l1, n_iter, tol, lipschitz_init, n_power, backtrack,
                        gram_ws[get_thread_id()], coef[k], stats[k], counts[k])

"""numba kernels of splash and perturbation propagation. Arrays and scalars only.

Betabase layout (see :meth:`spacetravlr_py.betadata.Betabase.flat`), for model ``k``:

* ``coefs[coef_ptr[k] + row * n_cols[k] + j]`` — beta of term ``j`` in beta row ``row``;
  ``row = mappings[mapping_id[k], cell]`` (−1: the cell has no row → zero betas);
* terms grouped by kind: TF/extra ``kind_ptr[k, 0] .. kind_ptr[k, 1]``, ``L$R`` up to ``kind_ptr[k, 2]``,
  ``L#TF`` up to ``kind_ptr[k, 3]``; term ``t`` is beta column ``coef_col[t]``, gene indices ``a[t]``,
  ``b[t]`` and their slots ``slot_a[t]``, ``slot_b[t]`` among the model's sorted unique modulator genes
  ``mods[mod_ptr[k] .. mod_ptr[k+1]]``.

Received ligands are dense (cells × ligands) with ``lig_col[gene]`` the column of a ligand gene.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, inline="always")
def _splash_row(k: int, i: int, g: np.ndarray, RW: np.ndarray, RLt: np.ndarray, lig_col: np.ndarray,
                coefs: np.ndarray, coef_ptr: np.ndarray, n_cols: np.ndarray, mapping_id: np.ndarray,
                mappings: np.ndarray, kind_ptr: np.ndarray, coef_col: np.ndarray, a: np.ndarray, b: np.ndarray,
                slot_a: np.ndarray, slot_b: np.ndarray, n_mods: int, scale: float, cap: float,
                min_expr: float, buf: np.ndarray) -> bool:
    """Derivatives of model ``k`` at cell ``i`` into ``buf[:n_mods]``; False when the cell has no row.

    ``g`` is the cell's expression row (``G[i]``). Terms come grouped by kind (``kind_ptr[k]``: TF /
    extra, ``L$R``, ``L#TF`` ranges), so each range is a branch-free loop. Expression values
    ``<= min_expr`` read as 0 (no filtered copy of G is needed); a zero expression factor adds nothing,
    so it is skipped. ``coefs`` may be float32 (per-cell betas): every product is taken in float64.
    """
    for u in range(n_mods):
        buf[u] = 0.0
    row = mappings[mapping_id[k], i]
    if row < 0:
        return False
    base = coef_ptr[k] + row * n_cols[k]
    for t in range(kind_ptr[k, 0], kind_ptr[k, 1]):  # TF / extra: ∂y/∂t = β
        buf[slot_a[t]] += np.float64(coefs[base + coef_col[t]])
    for t in range(kind_ptr[k, 1], kind_ptr[k, 2]):  # L$R: ∂y/∂R = sβ·RL[L] if G[R] > 0, ∂y/∂L = sβ·G[R]
        g_r = g[b[t]]
        if g_r > min_expr:
            beta = scale * np.float64(coefs[base + coef_col[t]])
            buf[slot_b[t]] += beta * RW[i, lig_col[a[t]]]
            buf[slot_a[t]] += beta * g_r
    for t in range(kind_ptr[k, 2], kind_ptr[k, 3]):  # L#T: ∂y/∂L = sβ·G[T], ∂y/∂T = sβ·RLt[L]
        beta = scale * np.float64(coefs[base + coef_col[t]])
        g_t = g[b[t]]
        if g_t > min_expr:
            buf[slot_a[t]] += beta * g_t
        buf[slot_b[t]] += beta * RLt[i, lig_col[a[t]]]
    if cap > 0.0:
        for u in range(n_mods):
            if buf[u] > cap:
                buf[u] = cap
            elif buf[u] < -cap:
                buf[u] = -cap
    return True


@njit(cache=True, inline="always")
def _splash_cell(k: int, i: int, G: np.ndarray, RW: np.ndarray, RLt: np.ndarray, lig_col: np.ndarray,
                 coefs: np.ndarray, coef_ptr: np.ndarray, n_cols: np.ndarray, mapping_id: np.ndarray,
                 mappings: np.ndarray, kind_ptr: np.ndarray, coef_col: np.ndarray, a: np.ndarray, b: np.ndarray,
                 slot_a: np.ndarray, slot_b: np.ndarray, n_mods: int, scale: float, cap: float,
                 min_expr: float, buf: np.ndarray) -> bool:
    """:func:`_splash_row` of row ``i`` of the expression matrix ``G``."""
    return _splash_row(k, i, G[i], RW, RLt, lig_col, coefs, coef_ptr, n_cols, mapping_id, mappings, kind_ptr,
                       coef_col, a, b, slot_a, slot_b, n_mods, scale, cap, min_expr, buf)


@njit(cache=True)
def splash_base_rows(k: int, coefs: np.ndarray, coef_ptr: np.ndarray, n_cols: np.ndarray, kind_ptr: np.ndarray,
                     coef_col: np.ndarray, slot_a: np.ndarray, n_mods: int) -> np.ndarray:
    """Per beta row of model ``k``: the TF / extra part of its splash, ``base[row, slot] = Σ β_t``."""
    nc = n_cols[k]
    n_rows = (coef_ptr[k + 1] - coef_ptr[k]) // nc if nc > 0 else 0
    base = np.zeros((n_rows, n_mods))
    for r in range(n_rows):
        off = coef_ptr[k] + r * nc
        for t in range(kind_ptr[k, 0], kind_ptr[k, 1]):
            base[r, slot_a[t]] += np.float64(coefs[off + coef_col[t]])
    return base


SPLASH_BLOCK = 128  # cells per block of the materialised splash: one block's output columns stay in L2


@njit(parallel=True, cache=True)
def splash_matrix(k: int, G: np.ndarray, RW: np.ndarray, RLt: np.ndarray, lig_col: np.ndarray,
                  coefs: np.ndarray, coef_ptr: np.ndarray, n_cols: np.ndarray, mapping_id: np.ndarray,
                  mappings: np.ndarray, kind_ptr: np.ndarray, coef_col: np.ndarray, a: np.ndarray, b: np.ndarray,
                  slot_a: np.ndarray, slot_b: np.ndarray, base: np.ndarray, scale: float, cap: float,
                  min_expr: float, out: np.ndarray) -> None:
    """Materialised splash of model ``k``: ``out[i, u] = ∂y_k/∂mods[u]`` at cell ``i`` (same terms as
    :func:`_splash_cell`), computed term by term over blocks of cells.

    Written for column-major (Fortran-ordered) ``G``, ``RW``, ``RLt`` and ``out``: for one term, a
    block's values of one gene are contiguous, so every inner loop streams and the whole input is not
    read when a model uses a few of its columns. Other layouts give the same numbers, slower.
    ``base`` (from :func:`splash_base_rows`) holds the TF part per beta row; with zero rows the TF
    terms are added here instead (per-cell betadata, where such a table would be as large as ``out``).
    The model must have at least one beta row. Cells without a row (−1) get 0.
    """
    n = G.shape[0]
    n_mods = out.shape[1]
    t0, t1, t2, t3 = kind_ptr[k, 0], kind_ptr[k, 1], kind_ptr[k, 2], kind_ptr[k, 3]
    nc = n_cols[k]
    cp = coef_ptr[k]
    mp = mappings[mapping_id[k]]
    use_base = base.shape[0] > 0
    # initial values column by column, i.e. in memory order: a fresh output is first touched (its pages
    # faulted in) sequentially by each thread rather than in 4 KiB pieces by the cell blocks below
    for u in prange(n_mods):
        if use_base:
            for i in range(n):
                r = mp[i]
                out[i, u] = base[r, u] if r >= 0 else 0.0
        else:
            for i in range(n):
                out[i, u] = 0.0
    nb = (n + SPLASH_BLOCK - 1) // SPLASH_BLOCK
    for blk in prange(nb):
        i0 = blk * SPLASH_BLOCK
        m = min(n, i0 + SPLASH_BLOCK) - i0
        row = np.empty(SPLASH_BLOCK, np.int64)
        has = np.empty(SPLASH_BLOCK, np.bool_)
        w = np.empty(SPLASH_BLOCK)
        g = np.empty(SPLASH_BLOCK)
        for j in range(m):
            r = mp[i0 + j]
            has[j] = r >= 0
            row[j] = r if r >= 0 else 0  # row 0 is read and discarded for cells without a row
        if not use_base:
            for t in range(t0, t1):  # TF / extra: ∂y/∂t = β
                p, cc = slot_a[t], coef_col[t]
                for j in range(m):
                    x = np.float64(coefs[cp + row[j] * nc + cc])
                    out[i0 + j, p] += x if has[j] else 0.0
        for t in range(t1, t3):
            c, lc, p, q, cc = b[t], lig_col[a[t]], slot_a[t], slot_b[t], coef_col[t]
            for j in range(m):  # g: G of the receptor (L$R) or TF (L#T), values <= min_expr read as 0
                x = G[i0 + j, c]
                g[j] = x if x > min_expr else 0.0
                beta = scale * np.float64(coefs[cp + row[j] * nc + cc])
                w[j] = beta if has[j] else 0.0
            if t < t2:  # L$R: ∂y/∂R = sβ·RL[L] if G[R] > 0, ∂y/∂L = sβ·G[R]
                for j in range(m):
                    w[j] = w[j] if g[j] > 0.0 else 0.0
                for j in range(m):
                    out[i0 + j, q] += w[j] * RW[i0 + j, lc]
            else:  # L#T: ∂y/∂T = sβ·RLt[L], ∂y/∂L = sβ·G[T]
                for j in range(m):
                    out[i0 + j, q] += w[j] * RLt[i0 + j, lc]
            for j in range(m):
                out[i0 + j, p] += w[j] * g[j]
        if cap > 0.0:
            for u in range(n_mods):
                for j in range(m):
                    x = out[i0 + j, u]
                    out[i0 + j, u] = cap if x > cap else (-cap if x < -cap else x)


@njit(parallel=True, cache=True)
def propagate(G: np.ndarray, RW: np.ndarray, RLt: np.ndarray, lig_col: np.ndarray, delta: np.ndarray,
              target: np.ndarray, coefs: np.ndarray, coef_ptr: np.ndarray, n_cols: np.ndarray,
              mapping_id: np.ndarray, mappings: np.ndarray, kind_ptr: np.ndarray, coef_col: np.ndarray,
              a: np.ndarray, b: np.ndarray, slot_a: np.ndarray, slot_b: np.ndarray, mods: np.ndarray,
              mod_ptr: np.ndarray, scale: float, cap: float, max_mods: int, min_expr: float,
              out: np.ndarray) -> None:
    """Fused splash + propagation: ``out[i, target_k] = Σ_u splash_k[i, u] · delta[i, mods_k[u]]``.

    Every column of ``out`` that is not a model target is set to 0 (genes without a model do not
    change). One cell per ``prange`` iteration: each writes only its own output row.
    """
    n = G.shape[0]
    n_models = target.shape[0]
    n_genes = out.shape[1]
    for i in prange(n):
        buf = np.empty(max(max_mods, 1))
        for g in range(n_genes):
            out[i, g] = 0.0
        for k in range(n_models):
            m0 = mod_ptr[k]
            n_mods = mod_ptr[k + 1] - m0
            if not _splash_cell(k, i, G, RW, RLt, lig_col, coefs, coef_ptr, n_cols, mapping_id, mappings,
                                kind_ptr, coef_col, a, b, slot_a, slot_b, n_mods, scale, cap, min_expr, buf):
                continue
            acc = 0.0
            for u in range(n_mods):
                acc += buf[u] * delta[i, mods[m0 + u]]
            out[i, target[k]] = acc


@njit(parallel=True, cache=True)
def propagate_state(x0: np.ndarray, P: np.ndarray, D: np.ndarray, SW: np.ndarray, lig_col: np.ndarray,
                    RW: np.ndarray, RLt: np.ndarray, target: np.ndarray, coefs: np.ndarray, coef_ptr: np.ndarray,
                    n_cols: np.ndarray, mapping_id: np.ndarray, mappings: np.ndarray, kind_ptr: np.ndarray,
                    coef_col: np.ndarray, a: np.ndarray, b: np.ndarray, slot_a: np.ndarray, slot_b: np.ndarray,
                    mods: np.ndarray, mod_ptr: np.ndarray, scale: float, cap: float, max_mods: int,
                    min_expr: float) -> None:
    """:func:`propagate` over the state genes, without full-width temporaries; the result goes into ``P``.

    Per cell ``i``: the expression where derivatives are taken is ``G_i = x0_i + P_i`` (x0 float32 or
    float64, converted exactly); the change read at state column ``s`` is ``SW[i, lig_col[s]]`` for a
    ligand (its column after the delta swap) and ``D[i, s]`` otherwise. Every model's
    ``Σ_u splash_k[i, u] · Δ[i, mods_k[u]]`` is formed from row i only (skipped, as exactly 0, where none
    of the model's modulators changed in that cell: most of them in the first steps of a perturbation),
    then row i of ``P`` is overwritten: 0 except at the model targets (cells without a beta row keep 0).
    Rows are independent, so ``P`` is both input and output. The arithmetic is :func:`propagate`'s, term for term.
    """
    n, width = P.shape
    n_models = target.shape[0]
    for i in prange(n):
        buf = np.empty(max(max_mods, 1))
        g = np.empty(width)
        d = np.empty(width)
        acc = np.zeros(max(n_models, 1))
        for c in range(width):
            g[c] = np.float64(x0[i, c]) + P[i, c]
            lc = lig_col[c]
            d[c] = SW[i, lc] if lc >= 0 else D[i, c]
        for k in range(n_models):
            m0 = mod_ptr[k]
            n_mods = mod_ptr[k + 1] - m0
            moved = False  # no modulator changed in this cell: the sum is exactly 0, the splash not needed
            for u in range(n_mods):
                if d[mods[m0 + u]] != 0.0:
                    moved = True
                    break
            if not moved:
                continue
            if not _splash_row(k, i, g, RW, RLt, lig_col, coefs, coef_ptr, n_cols, mapping_id, mappings,
                               kind_ptr, coef_col, a, b, slot_a, slot_b, n_mods, scale, cap, min_expr, buf):
                continue
            s = 0.0
            for u in range(n_mods):
                s += buf[u] * d[mods[m0 + u]]
            acc[k] = s
        for c in range(width):
            P[i, c] = 0.0
        for k in range(n_models):
            P[i, target[k]] = acc[k]


@njit(parallel=True, cache=True)
def pin_and_clip(x0: np.ndarray, P: np.ndarray, pin_cols: np.ndarray, pin_vals: np.ndarray, pin_where: np.ndarray,
                 lo: np.ndarray, hi: np.ndarray, as_values: bool) -> None:
    """Pin the perturbed columns, then clip the state to ``[lo, hi]``, in place.

    ``P[i, pin_cols[t]] = pin_vals[t, i]`` where ``pin_where[t, i]``; then ``x = min(max(x0 + P, lo), hi)``
    (``np.clip``) and ``P = x − x0``, or ``P = x`` itself when ``as_values`` (the last step: the clipped
    state, not ``x0 + (x − x0)``, which can land 1 ulp above the observed maximum).
    """
    n, width = P.shape
    for i in prange(n):
        for t in range(pin_cols.shape[0]):
            if pin_where[t, i]:
                P[i, pin_cols[t]] = pin_vals[t, i]
        for c in range(width):
            base = np.float64(x0[i, c])
            x = base + P[i, c]
            if x < lo[c]:
                x = lo[c]
            if x > hi[c]:
                x = hi[c]
            P[i, c] = x if as_values else x - base


@njit(cache=True)
def abs_delta_sums(values: np.ndarray, x0: np.ndarray, row_cols: np.ndarray, col_sums: np.ndarray,
                   col_max: np.ndarray, col_signed: np.ndarray, row_sums: np.ndarray) -> None:
    """Sums of ``|Δ|`` with ``Δ = values − x0`` (x0 converted to float64), without forming Δ.

    ``col_sums[c] = Σ_i |Δ[i, c]|`` accumulated over cells in order, ``col_signed[c] = Σ_i Δ[i, c]``,
    ``col_max[c] = max_i |Δ[i, c]|``; ``row_sums[i] = Σ |Δ[i, c]|`` over the columns ``c`` with
    ``row_cols[c]`` true, in column order. These are the sums NumPy forms for
    ``np.abs(delta).mean(axis=0)`` on a C-ordered (cells × genes) matrix and for
    ``np.abs(delta[:, keep]).mean(axis=1)`` — one accumulator per output, added in storage order — so
    dividing by the counts gives the same numbers bit for bit; columns outside the state (Δ = 0) add
    exactly nothing.
    """
    n, width = values.shape
    for i in range(n):
        r = 0.0
        for c in range(width):
            dv = values[i, c] - np.float64(x0[i, c])
            ad = abs(dv)
            col_sums[c] += ad
            col_signed[c] += dv
            if ad > col_max[c]:
                col_max[c] = ad
            if row_cols[c]:
                r += ad
        row_sums[i] += r

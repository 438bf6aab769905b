"""numba kernels of splash and perturbation propagation. Arrays and scalars only.

Betabase layout (see :meth:`spacetravlr.betadata.Betabase.flat`), for model ``k``:

* ``coefs[coef_ptr[k] + row * n_cols[k] + j]`` — beta of term ``j`` in beta row ``row``;
  ``row = mappings[mapping_id[k], cell]`` (−1: the cell has no row → zero betas);
* terms ``t`` in ``term_ptr[k] .. term_ptr[k+1]``: ``kind[t]`` (0 TF/extra, 1 ``L$R``, 2 ``L#TF``),
  gene indices ``a[t]``, ``b[t]`` and their slots ``slot_a[t]``, ``slot_b[t]`` among the model's
  sorted unique modulator genes ``mods[mod_ptr[k] .. mod_ptr[k+1]]``.

Received ligands are dense (cells × ligands) with ``lig_col[gene]`` the column of a ligand gene.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, inline="always")
def _splash_cell(k: int, i: int, G: np.ndarray, RW: np.ndarray, RLt: np.ndarray, lig_col: np.ndarray,
                 coefs: np.ndarray, coef_ptr: np.ndarray, n_cols: np.ndarray, mapping_id: np.ndarray,
                 mappings: np.ndarray, kind: np.ndarray, a: np.ndarray, b: np.ndarray, slot_a: np.ndarray,
                 slot_b: np.ndarray, term_ptr: np.ndarray, n_mods: int, scale: float, cap: float,
                 min_expr: float, buf: np.ndarray) -> bool:
    """Derivatives of model ``k`` at cell ``i`` into ``buf[:n_mods]``; False when the cell has no row.

    Expression values ``<= min_expr`` read as 0 (no filtered copy of G is needed).
    """
    for u in range(n_mods):
        buf[u] = 0.0
    row = mappings[mapping_id[k], i]
    if row < 0:
        return False
    base = coef_ptr[k] + row * n_cols[k]
    t0 = term_ptr[k]
    for t in range(t0, term_ptr[k + 1]):
        beta = coefs[base + (t - t0)]
        if beta == 0.0:
            continue
        kd = kind[t]
        if kd == 0:
            buf[slot_a[t]] += beta
        elif kd == 1:
            g_r = G[i, b[t]]
            if g_r <= min_expr:
                g_r = 0.0
            if g_r > 0.0:
                buf[slot_b[t]] += scale * beta * RW[i, lig_col[a[t]]]
            buf[slot_a[t]] += scale * beta * g_r
        else:
            g_t = G[i, b[t]]
            if g_t <= min_expr:
                g_t = 0.0
            buf[slot_a[t]] += scale * beta * g_t
            buf[slot_b[t]] += scale * beta * RLt[i, lig_col[a[t]]]
    if cap > 0.0:
        for u in range(n_mods):
            if buf[u] > cap:
                buf[u] = cap
            elif buf[u] < -cap:
                buf[u] = -cap
    return True


@njit(parallel=True, cache=True)
def splash_matrix(k: int, G: np.ndarray, RW: np.ndarray, RLt: np.ndarray, lig_col: np.ndarray,
                  coefs: np.ndarray, coef_ptr: np.ndarray, n_cols: np.ndarray, mapping_id: np.ndarray,
                  mappings: np.ndarray, kind: np.ndarray, a: np.ndarray, b: np.ndarray, slot_a: np.ndarray,
                  slot_b: np.ndarray, term_ptr: np.ndarray, n_mods: int, scale: float, cap: float,
                  min_expr: float, out: np.ndarray) -> None:
    """Materialised splash of model ``k``: ``out[i, u] = ∂y_k/∂mods[u]`` at cell ``i``."""
    n = G.shape[0]
    for i in prange(n):
        buf = np.empty(max(n_mods, 1))
        _splash_cell(k, i, G, RW, RLt, lig_col, coefs, coef_ptr, n_cols, mapping_id, mappings, kind, a, b,
                     slot_a, slot_b, term_ptr, n_mods, scale, cap, min_expr, buf)
        for u in range(n_mods):
            out[i, u] = buf[u]


@njit(parallel=True, cache=True)
def propagate(G: np.ndarray, RW: np.ndarray, RLt: np.ndarray, lig_col: np.ndarray, delta: np.ndarray,
              target: np.ndarray, coefs: np.ndarray, coef_ptr: np.ndarray, n_cols: np.ndarray,
              mapping_id: np.ndarray, mappings: np.ndarray, kind: np.ndarray, a: np.ndarray, b: np.ndarray,
              slot_a: np.ndarray, slot_b: np.ndarray, term_ptr: np.ndarray, mods: np.ndarray,
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
                                kind, a, b, slot_a, slot_b, term_ptr, n_mods, scale, cap, min_expr, buf):
                continue
            acc = 0.0
            for u in range(n_mods):
                acc += buf[u] * delta[i, mods[m0 + u]]
            out[i, target[k]] = acc

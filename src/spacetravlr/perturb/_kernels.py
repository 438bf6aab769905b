"""numba kernels of splash and perturbation propagation. Arrays and scalars only.

Betabase layout (see :meth:`spacetravlr.betadata.Betabase.flat`), for model ``k``:

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
def _splash_cell(k: int, i: int, G: np.ndarray, RW: np.ndarray, RLt: np.ndarray, lig_col: np.ndarray,
                 coefs: np.ndarray, coef_ptr: np.ndarray, n_cols: np.ndarray, mapping_id: np.ndarray,
                 mappings: np.ndarray, kind_ptr: np.ndarray, coef_col: np.ndarray, a: np.ndarray, b: np.ndarray,
                 slot_a: np.ndarray, slot_b: np.ndarray, n_mods: int, scale: float, cap: float,
                 min_expr: float, buf: np.ndarray) -> bool:
    """Derivatives of model ``k`` at cell ``i`` into ``buf[:n_mods]``; False when the cell has no row.

    Terms come grouped by kind (``kind_ptr[k]``: TF / extra, ``L$R``, ``L#TF`` ranges), so each range is
    a branch-free loop. Expression values ``<= min_expr`` read as 0 (no filtered copy of G is needed);
    a zero expression factor adds nothing, so it is skipped.
    """
    for u in range(n_mods):
        buf[u] = 0.0
    row = mappings[mapping_id[k], i]
    if row < 0:
        return False
    base = coef_ptr[k] + row * n_cols[k]
    for t in range(kind_ptr[k, 0], kind_ptr[k, 1]):  # TF / extra: ∂y/∂t = β
        buf[slot_a[t]] += coefs[base + coef_col[t]]
    for t in range(kind_ptr[k, 1], kind_ptr[k, 2]):  # L$R: ∂y/∂R = sβ·RL[L] if G[R] > 0, ∂y/∂L = sβ·G[R]
        g_r = G[i, b[t]]
        if g_r > min_expr:
            beta = scale * coefs[base + coef_col[t]]
            buf[slot_b[t]] += beta * RW[i, lig_col[a[t]]]
            buf[slot_a[t]] += beta * g_r
    for t in range(kind_ptr[k, 2], kind_ptr[k, 3]):  # L#T: ∂y/∂L = sβ·G[T], ∂y/∂T = sβ·RLt[L]
        beta = scale * coefs[base + coef_col[t]]
        g_t = G[i, b[t]]
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


@njit(parallel=True, cache=True)
def splash_matrix(k: int, G: np.ndarray, RW: np.ndarray, RLt: np.ndarray, lig_col: np.ndarray,
                  coefs: np.ndarray, coef_ptr: np.ndarray, n_cols: np.ndarray, mapping_id: np.ndarray,
                  mappings: np.ndarray, kind_ptr: np.ndarray, coef_col: np.ndarray, a: np.ndarray, b: np.ndarray,
                  slot_a: np.ndarray, slot_b: np.ndarray, n_mods: int, scale: float, cap: float,
                  min_expr: float, out: np.ndarray) -> None:
    """Materialised splash of model ``k``: ``out[i, u] = ∂y_k/∂mods[u]`` at cell ``i``."""
    n = G.shape[0]
    for i in prange(n):
        buf = np.empty(max(n_mods, 1))
        _splash_cell(k, i, G, RW, RLt, lig_col, coefs, coef_ptr, n_cols, mapping_id, mappings, kind_ptr,
                     coef_col, a, b, slot_a, slot_b, n_mods, scale, cap, min_expr, buf)
        for u in range(n_mods):
            out[i, u] = buf[u]


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

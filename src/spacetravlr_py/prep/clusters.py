"""Leiden clusters too small to train on are merged into the cluster they are most connected to.

Training fits one model per gene and cluster; a cluster of a handful of cells gives an ill-posed fit
(SPEC: fewer than 2 cells cannot be fitted at all). Clusters below ``min_cells`` are visited smallest
first; each one's cells join the other cluster that receives the largest total kNN connectivity from
them (ties: the larger cluster, then the lower label), or the largest cluster if they have no edge
to any other. Labels are then renumbered ``'0'``, ``'1'``, … by decreasing size, as Leiden numbers them.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

#: default smallest cluster kept by ``spacetravlr prep`` (Leiden labels only; given labels are never merged)
DEFAULT_MIN_CELLS = 10


def merge_small_clusters(labels: np.ndarray, connectivities: sp.spmatrix | sp.sparray,
                         min_cells: int) -> tuple[np.ndarray, int]:
    """``(new labels as strings, number of clusters merged away)``.

    Parameters
    ----------
    labels : (N,) array of cluster labels
    connectivities : (N, N) sparse kNN connectivities (``obsp['connectivities']``)
    min_cells : int
        Clusters with fewer cells are merged (≤ 1: nothing is merged).
    """
    _, ids = np.unique(np.asarray(labels).astype(str), return_inverse=True)
    ids = ids.astype(np.int64)
    n_merged = 0
    C = sp.csr_matrix(connectivities)
    while True:
        sizes = np.bincount(ids)
        alive = np.flatnonzero(sizes > 0)
        small = [c for c in alive[np.argsort(sizes[alive], kind="stable")] if sizes[c] < min_cells]
        if not small or len(alive) <= 1:
            break
        c = small[0]
        members = np.flatnonzero(ids == c)
        rows = C[members]
        weight = np.bincount(ids[rows.indices], weights=rows.data, minlength=len(sizes))
        weight[c] = 0.0
        candidates = np.flatnonzero(weight > 0)
        if candidates.size == 0:
            candidates = alive[alive != c]
            weight = sizes.astype(np.float64)
        best = max(candidates.tolist(), key=lambda d: (weight[d], sizes[d], -d))
        ids[members] = best
        n_merged += 1
    sizes = np.bincount(ids)
    order = np.argsort(-sizes, kind="stable")
    order = order[sizes[order] > 0]
    rank = np.empty(len(sizes), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank[ids].astype(str), n_merged

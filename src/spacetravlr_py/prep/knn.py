"""The kNN graph of prep: exact for small and mid-size data, pynndescent above a cell count.

scanpy 1.11's own pynndescent path reads the transformer's output with ``getnnz``, which scipy ≥ 1.15
sparse *arrays* no longer have, so it fails; its ``"sklearn"`` path is exact but brute force
(O(N²): ≈ 50 s at 100k cells, hours at 1M). Above :data:`APPROX_ABOVE_CELLS` cells this module hands
scanpy a pynndescent transformer whose output is a ``csr_matrix``, with UMAP's tree and iteration
defaults; below it, the exact search.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: cells above which the kNN graph is approximate (pynndescent) instead of exact brute force
APPROX_ABOVE_CELLS = 100_000


class NNDescentCSR:
    """pynndescent's k-nearest-neighbour distance graph (self included) as a ``scipy.sparse.csr_matrix``.

    Follows the scikit-learn transformer protocol that ``scanpy.pp.neighbors`` expects
    (``get_params``, ``fit``, ``fit_transform``).

    Parameters
    ----------
    n_neighbors : int
        Neighbours per cell, the cell itself included (scanpy's convention).
    random_state : int
    n_jobs : int
        Threads of the search (−1: all cores).
    """

    def __init__(self, n_neighbors: int = 15, random_state: int = 0, n_jobs: int = -1) -> None:
        self.n_neighbors = n_neighbors
        self.random_state = random_state
        self.n_jobs = n_jobs

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {"n_neighbors": self.n_neighbors, "random_state": self.random_state, "n_jobs": self.n_jobs}

    def fit(self, X: Any, y: Any = None) -> NNDescentCSR:
        self.fit_transform(X)
        return self

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> Any:
        import scipy.sparse as sp
        from pynndescent import PyNNDescentTransformer

        n = X.shape[0]
        t = PyNNDescentTransformer(n_neighbors=self.n_neighbors, random_state=self.random_state,
                                   n_jobs=self.n_jobs, n_trees=min(64, 5 + round(n ** 0.5 / 20.0)),
                                   n_iters=max(5, round(float(np.log2(max(n, 2))))))
        return sp.csr_matrix(t.fit_transform(X))


def transformer_for(n_cells: int, n_neighbors: int, random_state: int) -> Any:
    """What prep passes to ``scanpy.pp.neighbors(transformer=...)`` for ``n_cells`` cells."""
    if n_cells > APPROX_ABOVE_CELLS:
        return NNDescentCSR(n_neighbors=n_neighbors, random_state=random_state)
    return "sklearn"

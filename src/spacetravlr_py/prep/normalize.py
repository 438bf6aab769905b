"""Library-size normalisation and ``log1p`` with scanpy, kept sparse (CSR, float32)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from .. import _keys
from ._deps import require_scanpy

if TYPE_CHECKING:
    import anndata as ad

DEFAULT_TARGET_SUM = 1e4
"""Counts per cell after library-size normalisation (scanpy's and Seurat's customary 10,000)."""


def as_csr32(X: Any) -> sp.csr_matrix:
    """``X`` as a float32 CSR matrix (a copy when the type or format differs)."""
    if sp.issparse(X):
        M = X.tocsr()
    else:
        M = sp.csr_matrix(np.asarray(X))
    if M.dtype != np.float32:
        M = M.astype(np.float32)
    M.sort_indices()
    return M


def normalize(adata: ad.AnnData, *, target_sum: float = DEFAULT_TARGET_SUM,
              counts_layer: str = _keys.RAW_LAYER,
              key_added: str = _keys.NORMALIZED_LAYER) -> sp.csr_matrix:
    """Library-size normalise and log-transform the counts; store the result in ``layers[key_added]``.

    ``normalized[i, g] = log1p(target_sum · counts[i, g] / Σ_h counts[i, h])``, so that
    ``Σ_g expm1(normalized[i, g]) = target_sum`` for every cell (scanpy ``normalize_total`` then
    ``log1p``). The matrix stays sparse (CSR, float32).

    Parameters
    ----------
    adata
        Holds raw counts in ``layers[counts_layer]``; modified in place (``layers[key_added]`` and ``X``
        are set to the normalised matrix).
    target_sum
        Counts per cell after normalisation (default 10,000).

    Returns
    -------
    scipy.sparse.csr_matrix
        The normalised matrix (the same object as ``adata.layers[key_added]``).
    """
    sc = require_scanpy()
    res = sc.pp.normalize_total(adata, target_sum=float(target_sum), layer=counts_layer, inplace=False)
    assert res is not None  # inplace=False returns the matrix
    norm = as_csr32(res["X"])
    norm = sc.pp.log1p(norm)
    adata.layers[key_added] = norm
    adata.X = norm
    return norm

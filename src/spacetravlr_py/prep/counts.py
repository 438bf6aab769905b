"""Checks on the count matrix: raw counts really are counts; empty cells and genes are dropped.

Everything here works on CSR ``data`` arrays (or dense blocks) in chunks, so a 100k × 20k matrix is
checked without a dense copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from ..errors import InputError, short_list

if TYPE_CHECKING:
    import anndata as ad

#: ``|x - round(x)|`` above this counts as a non-integer (float32 counts are exact up to 2**24)
INTEGER_TOL = 1e-4
_CHUNK = 1 << 24

COUNT_FIXES = ("pass --layer NAME with the layer that holds raw counts, --skip-normalize if the matrix is "
               "already log-normalised, or --allow-non-integer for corrected (e.g. CellBender/SoupX) counts")


@dataclass(frozen=True)
class CountSummary:
    """What :func:`check_counts` found.

    Attributes
    ----------
    n_nonzero : int
        Stored non-zero entries.
    n_non_integer : int
        Entries that are not whole numbers (0 unless ``allow_non_integer``).
    max_value : float
        Largest entry.
    """

    n_nonzero: int
    n_non_integer: int
    max_value: float


def _values(X: Any) -> tuple[np.ndarray, Any]:
    """Flat stored values of ``X`` and the CSR/dense matrix they come from."""
    if sp.issparse(X):
        M = X.tocsr() if X.format != "csr" else X
        return np.asarray(M.data), M
    A = np.asarray(X)
    return A.reshape(-1), A


def _locate(M: Any, k: int) -> tuple[int, int]:
    """(row, column) of the ``k``-th stored value of ``M`` (CSR data index or dense flat index)."""
    if sp.issparse(M):
        row = int(np.searchsorted(M.indptr, k, side="right") - 1)
        return row, int(M.indices[k])
    r, c = np.unravel_index(k, M.shape)
    return int(r), int(c)


def _first(mask_fn: Any, vals: np.ndarray) -> tuple[int, int]:
    """(count of True, index of the first True) of ``mask_fn(chunk)`` over ``vals`` in chunks."""
    n = 0
    first = -1
    for s in range(0, vals.size, _CHUNK):
        m = mask_fn(vals[s:s + _CHUNK])
        c = int(np.count_nonzero(m))
        if c and first < 0:
            first = s + int(np.argmax(m))
        n += c
    return n, first


def check_counts(X: Any, *, where: str, obs_names: Any = None, var_names: Any = None,
                 allow_non_integer: bool = False, counts: bool = True) -> CountSummary:
    """Check that ``X`` holds finite, non-negative (and, for counts, whole-number) values.

    Parameters
    ----------
    X
        (cells × genes) sparse or dense matrix.
    where
        Name of the matrix for the messages, e.g. ``"data.h5ad: X"``.
    obs_names, var_names
        Cell and gene names, to say where the first offending value is.
    allow_non_integer
        Accept non-integer (corrected) counts.
    counts
        False when ``X`` is already normalised (``--skip-normalize``): only finiteness and
        non-negativity are checked.

    Raises
    ------
    InputError
        One line naming the matrix, the first offending cell/gene and the fix.
    """
    vals, M = _values(X)

    def at(k: int) -> str:
        r, c = _locate(M, k)
        cell = f"cell '{obs_names[r]}'" if obs_names is not None else f"row {r}"
        gene = f"gene '{var_names[c]}'" if var_names is not None else f"column {c}"
        return f"{cell}, {gene}"

    n_bad, k = _first(lambda v: ~np.isfinite(v), vals)
    if n_bad:
        raise InputError(f"{where}: {n_bad:,} non-finite values (NaN/inf), first at {at(k)}; "
                         "prep needs finite expression values: fix or drop those cells")
    if vals.size == 0:
        return CountSummary(0, 0, 0.0)
    n_neg, k = _first(lambda v: v < 0, vals)
    if n_neg:
        what = "raw counts" if counts else "expression values"
        raise InputError(f"{where}: {n_neg:,} negative values (e.g. {vals[k]:g} at {at(k)}), so these are not "
                         f"{what} (scaled or centred data?); pass --layer NAME with the layer that holds raw "
                         "counts" + ("" if counts else " or non-negative log-normalised values"))
    vmax = float(max((float(vals[s:s + _CHUNK].max()) for s in range(0, vals.size, _CHUNK)), default=0.0))
    n_frac = 0
    if counts:
        n_frac, k = _first(lambda v: np.abs(v - np.rint(v)) > INTEGER_TOL, vals)
        if n_frac and not allow_non_integer:
            nnz = int(np.count_nonzero(vals))
            share = f"{n_frac / max(nnz, 1):.1%} of non-zero entries"
            raise InputError(f"{where}: holds non-integer values ({share}; e.g. {vals[k]:.6g} at {at(k)}), so "
                             f"these are not raw counts; {COUNT_FIXES}")
    return CountSummary(int(np.count_nonzero(vals)), n_frac, vmax)


def _axis_sums(X: Any, axis: int) -> np.ndarray:
    return np.asarray(X.sum(axis=axis), dtype=np.float64).ravel()


def drop_empty(adata: ad.AnnData, *, where: str = "AnnData") -> tuple[ad.AnnData, list[str], int, int]:
    """Drop cells and genes whose total in ``adata.X`` is 0.

    Returns
    -------
    (AnnData, notes, n_cells_dropped, n_genes_dropped)
        ``adata`` itself when nothing is empty, else a subset copy; one note per kind dropped.

    Raises
    ------
    InputError
        When no cell or no gene has any count.
    """
    X = adata.X
    cell_tot = _axis_sums(X, 1)
    gene_tot = _axis_sums(X, 0)
    keep_c = cell_tot > 0
    keep_g = gene_tot > 0
    n_c, n_g = int((~keep_c).sum()), int((~keep_g).sum())
    if not keep_c.any() or not keep_g.any():
        raise InputError(f"{where}: every value is 0 ({adata.n_obs:,} cells × {adata.n_vars:,} genes); "
                         "check that the right layer was given with --layer")
    if int(keep_c.sum()) < 3:
        raise InputError(f"{where}: only {int(keep_c.sum())} cells have any counts; prep needs at least 3")
    notes: list[str] = []
    if n_c:
        ex = short_list(adata.obs_names[~keep_c], 3)
        notes.append(f"dropped {n_c:,} cells with 0 counts (e.g. {ex})")
    if n_g:
        ex = short_list(adata.var_names[~keep_g], 3)
        notes.append(f"dropped {n_g:,} genes with 0 counts in every cell (e.g. {ex})")
    if n_c or n_g:
        adata = adata[keep_c, keep_g].copy()
    return adata, notes, n_c, n_g

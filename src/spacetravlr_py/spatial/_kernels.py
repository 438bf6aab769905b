"""numba kernels of the received-ligand operator. Arrays and scalars in, arrays out; nothing else.

Conventions: coordinates ``(n, 2)`` float64 C-contiguous, ligand matrices ``(n, m)`` float64
C-contiguous (cells × ligands), grids ``(nx, ny, m)`` float64 C-contiguous.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, nogil=True)
def gaussian_block(xa: np.ndarray, xb: np.ndarray, inv_two_var: float, out: np.ndarray) -> None:
    """``out[i, j] = exp(-|xa_i - xb_j|^2 * inv_two_var)``.

    Serial and ``nogil``: callers run one block per thread, each followed by a single-threaded GEMM
    (interleaving numba's and BLAS's own thread pools makes them fight for the cores).
    """
    na = xa.shape[0]
    nb = xb.shape[0]
    for i in range(na):
        x0 = xa[i, 0]
        y0 = xa[i, 1]
        for j in range(nb):
            dx = x0 - xb[j, 0]
            dy = y0 - xb[j, 1]
            out[i, j] = np.exp(-(dx * dx + dy * dy) * inv_two_var)


@njit(cache=True)
def bspline_weights(t: float, p: int, w: np.ndarray) -> None:
    """Cardinal B-spline of order ``p`` at ``t + k``: ``w[k] = M_p(t + k)``, ``k = 0..p-1``, t in [0, 1).

    Cox–de Boor recursion ``M_n(u) = (u M_{n-1}(u) + (n - u) M_{n-1}(u - 1)) / (n - 1)``, started from
    ``M_2(t) = t``, ``M_2(t + 1) = 1 - t``. The weights sum to 1 (partition of unity).
    """
    for k in range(p):
        w[k] = 0.0
    w[0] = t
    w[1] = 1.0 - t
    for n in range(3, p + 1):
        # in-place, from the top so that w[k-1] is still the order n-1 value
        for k in range(n - 1, -1, -1):
            u = t + k
            a = w[k] if k < n - 1 else 0.0
            b = w[k - 1] if k >= 1 else 0.0
            w[k] = (u * a + (n - u) * b) / (n - 1)


@njit(cache=True, inline="always")
def _bspline_node(ux: float, uy: float, p: int, half: int, wx: np.ndarray, wy: np.ndarray) -> tuple[int, int]:
    """The B-spline weights of a point at grid coordinates ``(ux, uy)`` along x and y (into ``wx``, ``wy``)
    and the index ``(ix, iy)`` of the node its weight ``wx[0] · wy[0]`` belongs to (nodes ``ix - a``,
    ``iy - b`` for ``a, b < p``)."""
    fx = np.floor(ux)
    fy = np.floor(uy)
    bspline_weights(ux - fx, p, wx)
    bspline_weights(uy - fy, p, wy)
    return int(fx) + half, int(fy) + half


@njit(cache=True, nogil=True)
def spread_bspline(u: np.ndarray, values: np.ndarray, p: int, grid: np.ndarray) -> None:
    """Spread ``values`` (n, m) of points at grid coordinates ``u`` (n, 2) onto ``grid`` (nx, ny, m).

    Point ``i`` adds ``M_p(u_i - node + p/2)``-weighted copies of its row to the ``p × p`` nodes
    around it. Serial (the scatter would race under ``prange``); ``nogil`` so that callers can run
    column chunks in threads.
    """
    n = u.shape[0]
    m = values.shape[1]
    half = p // 2
    wx = np.empty(p)
    wy = np.empty(p)
    for i in range(n):
        ix, iy = _bspline_node(u[i, 0], u[i, 1], p, half, wx, wy)
        for a in range(p):
            for b in range(p):
                w = wx[a] * wy[b]
                for c in range(m):
                    grid[ix - a, iy - b, c] += w * values[i, c]


@njit(parallel=True, cache=True)
def interpolate_bspline(u: np.ndarray, grid: np.ndarray, p: int, out: np.ndarray) -> None:
    """``out[i] = Σ_nodes M_p-weights(u_i) · grid[node]`` — the adjoint of :func:`spread_bspline`."""
    n = u.shape[0]
    m = grid.shape[2]
    half = p // 2
    for i in prange(n):
        wx = np.empty(p)
        wy = np.empty(p)
        ix, iy = _bspline_node(u[i, 0], u[i, 1], p, half, wx, wy)
        for c in range(m):
            out[i, c] = 0.0
        for a in range(p):
            for b in range(p):
                w = wx[a] * wy[b]
                for c in range(m):
                    out[i, c] += w * grid[ix - a, iy - b, c]


@njit(parallel=True, cache=True, nogil=True)
def csr_weighted_sum(indptr: np.ndarray, indices: np.ndarray, weights: np.ndarray,
                     values: np.ndarray, out: np.ndarray) -> None:
    """``out[i] = Σ_{k in row i} weights[k] · values[indices[k]]``, i.e. ``out = M @ values`` for a CSR
    matrix ``M`` (``indptr, indices, weights``) and a dense C-contiguous ``values`` (sparse kernel × dense
    ligands here; one diffusion step of the imputer in :mod:`spacetravlr_py.prep.impute`).

    Rows are independent: one output row per iteration of the ``prange`` loop, no reduction races.
    """
    n = indptr.shape[0] - 1
    m = values.shape[1]
    for i in prange(n):
        for c in range(m):
            out[i, c] = 0.0
        for k in range(indptr[i], indptr[i + 1]):
            w = weights[k]
            j = indices[k]
            for c in range(m):
                out[i, c] += w * values[j, c]


@njit(cache=True)
def pairs_to_csr(coords: np.ndarray, pairs: np.ndarray, inv_two_var: float, indptr: np.ndarray,
                 indices: np.ndarray, data: np.ndarray) -> None:
    """CSR of the symmetric kernel matrix over ``pairs`` plus the unit diagonal.

    ``pairs`` (P, 2) lists each unordered pair ``{i, j}``, ``i != j``, once (``cKDTree.query_pairs``).
    Fills ``indptr`` (n + 1,), ``indices`` and ``data`` (2P + n,) with ``K[i, j] = K[j, i] =
    exp(-|x_i - x_j|² · inv_two_var)`` and ``K[i, i] = 1``, column indices ascending within each row
    (what ``scipy.sparse.csr_matrix((v, (r, c))).sort_indices()`` gives, without its general sort).

    Two counting sorts, O(n + P): entries are bucketed by column, then the buckets are read in
    column order and scattered into row buckets, so each row receives its columns in ascending
    order. The matrix is symmetric, so one count array gives both the column and the row buckets.
    Serial: both passes are scatters.
    """
    n = coords.shape[0]
    n_pairs = pairs.shape[0]
    nnz = 2 * n_pairs + n
    deg = np.ones(n, dtype=np.int64)  # the diagonal entry
    for k in range(n_pairs):
        deg[pairs[k, 0]] += 1
        deg[pairs[k, 1]] += 1
    indptr[0] = 0
    for r in range(n):
        indptr[r + 1] = indptr[r] + deg[r]
    # pass 1: bucket by column, keeping the row and the weight of each entry
    pos = np.empty(n, dtype=np.int64)
    for r in range(n):
        pos[r] = indptr[r]
    tmp_row = np.empty(nnz, dtype=indices.dtype)
    tmp_val = np.empty(nnz)
    for r in range(n):
        p = pos[r]
        tmp_row[p] = r
        tmp_val[p] = 1.0
        pos[r] = p + 1
    for k in range(n_pairs):
        a = pairs[k, 0]
        b = pairs[k, 1]
        dx = coords[a, 0] - coords[b, 0]
        dy = coords[a, 1] - coords[b, 1]
        w = np.exp(-(dx * dx + dy * dy) * inv_two_var)
        p = pos[b]  # entry (a, b) in column b
        tmp_row[p] = a
        tmp_val[p] = w
        pos[b] = p + 1
        p = pos[a]  # entry (b, a) in column a
        tmp_row[p] = b
        tmp_val[p] = w
        pos[a] = p + 1
    # pass 2: columns in ascending order, each entry to the next free slot of its row
    for r in range(n):
        pos[r] = indptr[r]
    for c in range(n):
        for p in range(indptr[c], indptr[c + 1]):
            r = tmp_row[p]
            q = pos[r]
            indices[q] = c
            data[q] = tmp_val[p]
            pos[r] = q + 1


@njit(cache=True, parallel=True)
def distance_maps(coords: np.ndarray, x0: float, y0: float, width: float, height: float,
                  out: np.ndarray) -> None:
    """Per-cell distance maps over a ``dim × dim`` grid, min–max normalised per cell (full mode).

    Pixel ``(i, j)`` has centre ``(x0 + (j + ½)·width, y0 − (i + ½)·height)`` (row 0 at the top, ``y0`` =
    the largest y); ``out[s, i, j] = (d − min_s d) / max(max_s d − min_s d, 1e-15)`` with ``d`` the
    Euclidean distance from cell ``s`` to the pixel centre, computed in float64, stored in ``out``'s dtype.
    """
    n = coords.shape[0]
    dim = out.shape[1]
    for s in prange(n):
        x = coords[s, 0]
        y = coords[s, 1]
        d = np.empty((dim, dim))
        lo = np.inf
        hi = -np.inf
        for i in range(dim):
            dy = (y0 - (i + 0.5) * height) - y
            for j in range(dim):
                dx = (x0 + (j + 0.5) * width) - x
                v = np.sqrt(dx * dx + dy * dy)
                d[i, j] = v
                lo = min(lo, v)
                hi = max(hi, v)
        den = max(hi - lo, 1e-15)
        for i in range(dim):
            for j in range(dim):
                out[s, i, j] = (d[i, j] - lo) / den

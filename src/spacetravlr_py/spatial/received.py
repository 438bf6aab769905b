"""Received ligands ``RL = (1/N) · s · K · L`` (SPEC §3): one API, exact and approximate strategies.

``K[i, j] = k(‖x_i − x_j‖)`` over **all** N cells (self included) with

* ``kernel="gaussian"`` (seed): ``k(d) = exp(−d² / 2r²)``, no cutoff;
* ``kernel="truncated"`` (Python reference 0.1.18): ``σ = r / sqrt(−2 ln 1e-3)``,
  ``k(d) = exp(−d² / 2σ²)`` for ``d ≤ r`` and 0 beyond.

Strategies (all behind :class:`ReceivedOperator`; none holds an N×N matrix):

``dense``
    Exact for the Gaussian: the kernel is evaluated block by block (numba, parallel) and multiplied
    with the ligands by BLAS. O(N²·M) time, O(B·N) memory.
``sparse``
    Exact for the truncated kernel (compact support): a k-d tree lists the pairs within ``r``, a
    counting sort assembles the CSR matrix (numba, O(N + pairs)) and a parallel CSR kernel sums
    them. Also the approximate Gaussian path for small radii, cut at ``6r`` with the truncation error
    bounded a posteriori.
``grid``
    Approximate Gaussian for large N: cells are spread onto a regular grid (spacing ``h = r·f``) with
    quintic (order-6) B-splines, convolved with the Gaussian by FFT with B-spline deconvolution (the
    smooth particle-mesh method), and interpolated back with the same splines. With order 6 the
    error is below 2e-5·max at ``f = 1/3`` (default) and 2e-4·max at ``f = 0.5`` (order 4 gave
    5e-4 and 2e-3); at ``f >= 1`` the grid under-resolves the Gaussian (error ~1e-2). Every
    approximate result is checked against exact sums at sample cells and a warning is logged above
    ``APPROX_TOL``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from .. import _keys
from .._threads import thread_limit
from . import _kernels

log = logging.getLogger("spacetravlr_py.spatial")

KERNELS = ("gaussian", "truncated")
METHODS = ("auto", "exact", "approx")
TRUNCATION_EPS = 1e-3
"""Kernel value at ``d = r`` of the reference's truncated kernel."""
DEFAULT_GRID_FACTOR = 1.0 / 3.0
SPLINE_ORDER = 6
"""Order of the cardinal B-splines of the grid path (even; the error falls like ``f**SPLINE_ORDER``)."""
GAUSS_CUTOFF = 6.0
"""The sparse approximate Gaussian drops pairs beyond ``GAUSS_CUTOFF · r`` (k < 1.6e-8)."""
APPROX_TOL = 1e-3
"""Contract: approximate error ≤ ``APPROX_TOL · max|RL|`` per ligand."""
_DENSE_BLOCK = 256
_ERROR_SAMPLE = 64


def kernel_sigma(radius: float, kernel: str) -> float:
    """Standard deviation of the Gaussian used by ``kernel`` at ``radius``."""
    if kernel == "gaussian":
        return float(radius)
    if kernel == "truncated":
        return float(radius) / math.sqrt(-2.0 * math.log(TRUNCATION_EPS))
    raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")


def kernel_value(d: np.ndarray, radius: float, kernel: str) -> np.ndarray:
    """``k(d)`` of SPEC §3 (for tests and small problems)."""
    sigma = kernel_sigma(radius, kernel)
    w = np.exp(-(np.asarray(d, dtype=np.float64) ** 2) / (2.0 * sigma * sigma))
    if kernel == "truncated":
        w = np.where(np.asarray(d) > radius, 0.0, w)
    return w


@dataclass
class ReceivedInfo:
    """What a :class:`ReceivedOperator` did: strategy, sizes, time and error estimate."""

    strategy: str
    kernel: str
    radius: float
    n_cells: int
    exact: bool
    grid_shape: tuple[int, int] | None = None
    grid_spacing: float | None = None
    cutoff: float | None = None
    n_pairs: int | None = None
    error_estimate: float | None = None
    """max over ligands of (max abs error at sampled cells) / max|RL|; 0 for exact strategies, None for an
    approximate one until an application measured it."""
    error_bound: float | None = None
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.exact and self.error_estimate is None:
            self.error_estimate = 0.0

    def describe(self) -> str:
        s = f"received ligands: {self.strategy} ({'exact' if self.exact else 'approximate'}), " \
            f"kernel={self.kernel}, r={self.radius:g}, N={self.n_cells}"
        if self.grid_shape:
            s += f", grid {self.grid_shape[0]}x{self.grid_shape[1]} h={self.grid_spacing:.3g}"
        if self.n_pairs is not None:
            s += f", {self.n_pairs} pairs within {self.cutoff:.4g}"
        if not self.exact:
            s += (", error not measured yet" if self.error_estimate is None
                  else f", sampled max rel. error {self.error_estimate:.2e}")
        return s + f", {self.seconds:.3f}s"


class ReceivedOperator:
    """The linear map ``L ↦ (s/N)·K·L`` for fixed coordinates, radius and kernel.

    Preparation (k-d tree pairs, FFT of the kernel) happens once; :meth:`apply` can then be called on
    many ligand matrices (training shares one operator across genes, perturbation across steps).

    Parameters
    ----------
    coords : (N, 2) array
    radius : float
        ``r`` (> 0).
    kernel : {"gaussian", "truncated"}
    scale : float
        ``s`` (``weighted_ligand_scale_factor``).
    method : {"auto", "exact", "approx"}
        ``auto``: exact when ``N <= approx_above_cells`` and ``grid_factor`` is None.
    grid_factor : float, optional
        Grid spacing in units of ``r`` for the approximate path (``ligand_grid_factor``).
    n_threads : int, optional
        numba/BLAS threads.
    """

    def __init__(self, coords: np.ndarray, radius: float, *, kernel: str = "gaussian", scale: float = 1.0,
                 method: str = "auto", approx_above_cells: int = 15000, grid_factor: float | None = None,
                 n_threads: int | None = None) -> None:
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        if not (radius > 0 and math.isfinite(radius)):
            raise ValueError(f"radius must be a positive number, got {radius!r}")
        self.coords = _as_coords(coords)
        self.n = self.coords.shape[0]
        self.radius = float(radius)
        self.kernel = kernel
        self.scale = float(scale)
        self.n_threads = n_threads
        self.sigma = kernel_sigma(radius, kernel)
        want_approx = method == "approx" or (
            method == "auto" and (self.n > approx_above_cells or grid_factor is not None))
        self.grid_factor = DEFAULT_GRID_FACTOR if grid_factor is None else float(grid_factor)
        t0 = time.perf_counter()
        self._csr: sp.csr_matrix | None = None
        self._grid: dict[str, Any] | None = None
        if kernel == "truncated":
            # compact support: the sparse sum is exact and cheaper than any approximation
            self.strategy = "sparse"
            self._prepare_sparse(self.radius, exact=True)
        elif not want_approx:
            self.strategy = "dense"
            self.info = ReceivedInfo("dense", kernel, self.radius, self.n, exact=True)
        else:
            self.strategy = self._choose_approx()
            if self.strategy == "grid":
                self._prepare_grid()
            elif self.strategy == "sparse":
                self._prepare_sparse(GAUSS_CUTOFF * self.sigma, exact=False)
            else:
                self.info = ReceivedInfo("dense", kernel, self.radius, self.n, exact=True,
                                         extra={"reason": "no approximation cheaper than exact"})
        self.info.extra["prepare_seconds"] = time.perf_counter() - t0

    # -- strategy selection ----------------------------------------------------------------

    def _bbox(self) -> tuple[np.ndarray, np.ndarray]:
        if self.n == 0:
            return np.zeros(2), np.zeros(2)
        return self.coords.min(axis=0), self.coords.max(axis=0)

    def _grid_dims(self, h: float) -> tuple[int, int, int]:
        lo, hi = self._bbox()
        pad = int(math.ceil(4.5 * self.sigma / h)) + SPLINE_ORDER
        ext = (hi - lo) / h
        nx = int(math.ceil(ext[0])) + 2 * pad + 1
        ny = int(math.ceil(ext[1])) + 2 * pad + 1
        return nx, ny, pad

    def _choose_approx(self) -> str:
        h = self.grid_factor * self.sigma
        nx, ny, _ = self._grid_dims(h)
        grid_cost = nx * ny * (math.log2(max(nx * ny, 2)) + 4.0) + self.n * SPLINE_ORDER**2 * 2.0
        lo, hi = self._bbox()
        area = max(float(np.prod(np.maximum(hi - lo, 1e-12))), 1e-12)
        cut = GAUSS_CUTOFF * self.sigma
        nbrs = 1.0 + self.n * min(1.0, math.pi * cut * cut / area)
        sparse_cost = self.n * nbrs * 1.5
        grid_ok = nx * ny <= 64_000_000
        if grid_ok and grid_cost <= sparse_cost:
            return "grid"
        if self.n * nbrs <= 400_000_000:
            return "sparse"
        return "grid" if grid_ok else "dense"

    # -- preparation -------------------------------------------------------------------------

    def _prepare_sparse(self, cutoff: float, *, exact: bool) -> None:
        from scipy.spatial import cKDTree

        tree = cKDTree(self.coords)
        pairs = tree.query_pairs(cutoff, output_type="ndarray")  # each pair within the cutoff once
        nnz = 2 * pairs.shape[0] + self.n
        # the index dtype scipy would pick, so that the matrix is not converted again
        idx_dtype = np.int32 if max(nnz, self.n + 1) < np.iinfo(np.int32).max else np.int64
        indptr = np.empty(self.n + 1, dtype=idx_dtype)
        indices = np.empty(nnz, dtype=idx_dtype)
        data = np.empty(nnz)
        _kernels.pairs_to_csr(self.coords, pairs.reshape(-1, 2), 1.0 / (2.0 * self.sigma * self.sigma),
                              indptr, indices, data)
        csr = sp.csr_matrix((data, indices, indptr), shape=(self.n, self.n), copy=False)
        csr.has_sorted_indices = True
        self._csr = csr
        self.info = ReceivedInfo("sparse", self.kernel, self.radius, self.n, exact=exact, cutoff=cutoff,
                                 n_pairs=int(csr.nnz))
        if not exact:
            # every dropped pair has k < exp(-c²/2): the error of RL_i is below that times mean|L|
            self.info.extra["tail_kernel"] = math.exp(-0.5 * (cutoff / self.sigma) ** 2)

    def _prepare_grid(self) -> None:
        import scipy.fft

        h = self.grid_factor * self.sigma
        nx, ny, pad = self._grid_dims(h)
        lo, _ = self._bbox()
        u = (self.coords - lo) / h + pad
        p = SPLINE_ORDER
        # minimal-image Gaussian on the periodic grid, then divide by the spline's discrete spectrum
        ix = np.arange(nx)
        mx = np.where(ix > nx // 2, ix - nx, ix) * h
        iy = np.arange(ny)
        my = np.where(iy > ny // 2, iy - ny, iy) * h
        inv = 1.0 / (2.0 * self.sigma * self.sigma)
        g = np.exp(-(mx[:, None] ** 2) * inv) * np.exp(-(my[None, :] ** 2) * inv)
        G = scipy.fft.rfft2(g)
        wk = np.empty(p)
        _kernels.bspline_weights(0.0, p, wk)  # wk[k] = M_p(k)

        def spectrum(freq: np.ndarray) -> np.ndarray:
            b = sum(wk[k] * np.exp(-2j * np.pi * freq * k) for k in range(p))
            return np.abs(b) ** 2

        bx = spectrum(np.fft.fftfreq(nx))
        by = spectrum(np.fft.rfftfreq(ny))
        G = G / (bx[:, None] * by[None, :])
        self._grid = dict(u=np.ascontiguousarray(u), shape=(nx, ny), G=G)
        self.info = ReceivedInfo("grid", self.kernel, self.radius, self.n, exact=False, grid_shape=(nx, ny),
                                 grid_spacing=h, extra={"spline_order": p, "grid_factor": self.grid_factor})

    # -- application -------------------------------------------------------------------------

    def apply(self, ligands: np.ndarray | sp.spmatrix, *, estimate_error: bool = True) -> np.ndarray:
        """``(s/N)·K·L`` for ``ligands`` of shape (N, M); returns (N, M) float64."""
        L = _as_dense(ligands, self.n)
        t0 = time.perf_counter()
        out = np.zeros((self.n, L.shape[1]))
        if L.shape[1] == 0 or self.n == 0:
            return out
        nz = np.flatnonzero(np.any(L != 0.0, axis=0))
        if nz.size:
            Lnz = np.ascontiguousarray(L[:, nz]) if nz.size < L.shape[1] else L
            with thread_limit(self.n_threads):
                if self.strategy == "dense":
                    res = self._apply_dense(Lnz)
                elif self.strategy == "sparse":
                    res = self._apply_sparse(Lnz)
                else:
                    res = self._apply_grid(Lnz)
            res *= self.scale / self.n
            out[:, nz] = res
            if not self.info.exact and estimate_error:
                self._estimate_error(Lnz, res)
        self.info.seconds = time.perf_counter() - t0
        log.info(self.info.describe())
        return out

    def _apply_dense(self, L: np.ndarray) -> np.ndarray:
        import threading
        from concurrent.futures import ThreadPoolExecutor

        import numba
        from threadpoolctl import threadpool_limits

        n = self.n
        out = np.empty((n, L.shape[1]))
        block = max(16, min(n, _DENSE_BLOCK))
        inv = 1.0 / (2.0 * self.sigma * self.sigma)
        local = threading.local()

        def work(s: int) -> None:
            e = min(n, s + block)
            if not hasattr(local, "buf"):
                local.buf = np.empty((block, n))
            kb = local.buf[: e - s]
            _kernels.gaussian_block(self.coords[s:e], self.coords, inv, kb)
            np.matmul(kb, L, out=out[s:e])

        # one thread = kernel block (numba, nogil) + its GEMM (BLAS limited to 1 thread)
        with threadpool_limits(limits=1), ThreadPoolExecutor(max_workers=numba.get_num_threads()) as ex:
            list(ex.map(work, range(0, n, block)))
        return out

    def _apply_sparse(self, L: np.ndarray) -> np.ndarray:
        assert self._csr is not None
        out = np.empty((self.n, L.shape[1]))
        c = self._csr
        _kernels.csr_weighted_sum(c.indptr, c.indices, c.data, L, out)
        return out

    def _apply_grid(self, L: np.ndarray) -> np.ndarray:
        import numba
        import scipy.fft

        assert self._grid is not None
        u, (nx, ny), G = self._grid["u"], self._grid["shape"], self._grid["G"]
        m = L.shape[1]
        grid = np.zeros((nx, ny, m))
        # spreading is a scatter: split the columns across threads so that no two threads write
        # the same grid element (each chunk is an independent serial spread)
        n_chunks = max(1, min(m, numba.get_num_threads()))
        bounds = np.linspace(0, m, n_chunks + 1).astype(np.int64)
        if n_chunks == 1:
            _kernels.spread_bspline(u, L, SPLINE_ORDER, grid)
        else:
            _spread_parallel(u, L, SPLINE_ORDER, grid, bounds)
        workers = numba.get_num_threads()
        F = scipy.fft.rfft2(grid, axes=(0, 1), workers=workers)
        F *= G[:, :, None]
        phi = np.ascontiguousarray(scipy.fft.irfft2(F, s=(nx, ny), axes=(0, 1), workers=workers))
        out = np.empty((self.n, m))
        _kernels.interpolate_bspline(u, phi, SPLINE_ORDER, out)
        return out

    def _estimate_error(self, L: np.ndarray, approx: np.ndarray) -> None:
        """Compare with exact sums at a deterministic sample of cells (relative to max|RL|)."""
        k = min(self.n, _ERROR_SAMPLE)
        idx = np.random.default_rng(0).choice(self.n, size=k, replace=False)
        kb = np.empty((k, self.n))
        _kernels.gaussian_block(self.coords[idx], self.coords, 1.0 / (2.0 * self.sigma**2), kb)
        exact = (kb @ L) * (self.scale / self.n)
        scale = np.abs(approx).max(axis=0)
        scale[scale == 0] = 1.0
        err = np.abs(approx[idx] - exact).max(axis=0) / scale
        self.info.error_estimate = float(err.max()) if err.size else 0.0
        if self.info.error_estimate > APPROX_TOL:
            log.warning("received ligands: approximate error %.2e exceeds %.0e·max; "
                        "lower ligand_grid_factor or use exact", self.info.error_estimate, APPROX_TOL)


def _spread_parallel(u: np.ndarray, L: np.ndarray, p: int, grid: np.ndarray, bounds: np.ndarray) -> None:
    from concurrent.futures import ThreadPoolExecutor

    # spread_bspline is a nogil kernel: each thread spreads one column chunk into its own
    # contiguous grid, copied back afterwards (threads never share an output array)
    def work(c: int) -> tuple[int, np.ndarray]:
        a, b = int(bounds[c]), int(bounds[c + 1])
        g = np.zeros(grid.shape[:2] + (b - a,))
        _kernels.spread_bspline(u, np.ascontiguousarray(L[:, a:b]), p, g)
        return c, g

    with ThreadPoolExecutor(max_workers=len(bounds) - 1) as ex:
        for c, g in ex.map(work, range(len(bounds) - 1)):
            grid[:, :, bounds[c]:bounds[c + 1]] = g


def _as_coords(coords: np.ndarray) -> np.ndarray:
    """(N, 2) float64 C-contiguous finite coordinates (extra columns dropped) or a ValueError."""
    xy = np.asarray(coords, dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] < 2:
        raise ValueError(f"coords must have shape (N, 2), got {xy.shape}")
    xy = np.ascontiguousarray(xy[:, :2])
    if not np.isfinite(xy).all():
        bad = np.flatnonzero(~np.isfinite(xy).all(axis=1))
        raise ValueError(f"coords: {bad.size} cells have NaN/inf coordinates (first: cell {bad[0]})")
    return xy


def _as_dense(ligands: np.ndarray | sp.spmatrix, n: int) -> np.ndarray:
    if sp.issparse(ligands):
        L = np.asarray(ligands.toarray(), dtype=np.float64)  # type: ignore[union-attr]
    else:
        L = np.asarray(ligands, dtype=np.float64)
    if L.ndim == 1:
        L = L[:, None]
    if L.ndim != 2 or L.shape[0] != n:
        raise ValueError(f"ligands must have shape (N, M) with N = {n} cells, got {L.shape}")
    if not np.isfinite(L).all():
        i, j = np.argwhere(~np.isfinite(L))[0]
        raise ValueError(f"ligands: {int((~np.isfinite(L)).sum())} NaN/inf values "
                         f"(first: cell {i}, ligand column {j})")
    return np.ascontiguousarray(L)


def received_ligands(
    ligands: np.ndarray | sp.spmatrix,
    coords: np.ndarray,
    radius: float | Sequence[float] | np.ndarray = 200.0,
    *,
    kernel: str = "gaussian",
    scale: float = 1.0,
    method: str = "auto",
    approx_above_cells: int = 15000,
    grid_factor: float | None = None,
    min_expression: float = _keys.MIN_EXPRESSION,
    n_threads: int | None = None,
    return_info: bool = False,
) -> np.ndarray | tuple[np.ndarray, list[ReceivedInfo]]:
    """Ligand amounts received by every cell: ``RL[i, l] = (s/N) Σ_j k(‖x_i − x_j‖) L[j, l]``.

    Parameters
    ----------
    ligands : (N, M) array or sparse matrix
        Ligand expression (cells × ligands). Values ``<= min_expression`` count as 0.
    coords : (N, 2) array
        Cell coordinates (same unit as ``radius``).
    radius : float or (M,) array
        Kernel radius ``r``, one for all ligands or one per ligand (e.g. ``contact_distance`` for
        contact ligands under ``per_ligand_radius``).
    kernel : {"gaussian", "truncated"}
        See the module docstring.
    scale : float
        ``s`` = ``weighted_ligand_scale_factor``.
    method : {"auto", "exact", "approx"}
        ``auto`` chooses approximate above ``approx_above_cells`` cells or when ``grid_factor`` is set.
    grid_factor : float, optional
        Grid spacing of the approximate path in units of ``r``.
    n_threads : int, optional
        numba/BLAS threads (default: all).
    return_info : bool
        Also return one :class:`ReceivedInfo` per distinct radius.

    Returns
    -------
    (N, M) float64 array (and the infos).

    Examples
    --------
    >>> import numpy as np
    >>> xy = np.array([[0.0, 0.0], [3.0, 4.0]])
    >>> received_ligands(np.array([[1.0], [0.0]]), xy, radius=5.0).round(6).ravel().tolist()
    [0.5, 0.30327]
    """
    coords = _as_coords(coords)
    n = coords.shape[0]
    L = _as_dense(ligands, n).copy()
    L[L <= min_expression] = 0.0
    m = L.shape[1]
    radii = np.asarray(radius, dtype=np.float64)
    if radii.ndim > 1 or (radii.ndim == 1 and radii.shape[0] != m):
        raise ValueError(f"radius must be a number or one value per ligand ({m}), got shape {radii.shape}")
    radii = np.broadcast_to(radii, (m,))
    out = np.zeros((n, m))
    infos: list[ReceivedInfo] = []
    for r in np.unique(radii):
        cols = np.flatnonzero(radii == r)
        op = ReceivedOperator(coords, float(r), kernel=kernel, scale=scale, method=method,
                              approx_above_cells=approx_above_cells, grid_factor=grid_factor,
                              n_threads=n_threads)
        out[:, cols] = op.apply(L[:, cols])
        infos.append(op.info)
    return (out, infos) if return_info else out


class ReceivedOperators:
    """Prepared :class:`ReceivedOperator` per radius for one tissue, shared by every caller.

    Training (through :class:`ReceivedLigandCache`) and perturbation both get their operators here, so a
    radius is prepared once. Applications are serialised: they set the process-wide BLAS thread limit,
    and GEMM results depend in the last bit on its thread count, so concurrent callers sharing these
    operators still get bit-identical results.

    Parameters
    ----------
    coords : (N, 2) array
    kernel, scale, method, approx_above_cells, grid_factor, n_threads
        As in :func:`received_ligands`.
    """

    def __init__(self, coords: np.ndarray, *, kernel: str = "gaussian", scale: float = 1.0, method: str = "auto",
                 approx_above_cells: int = 15000, grid_factor: float | None = None,
                 n_threads: int | None = None) -> None:
        import threading

        self.coords = np.asarray(coords, dtype=np.float64)
        self._opts = dict(kernel=kernel, scale=scale, method=method, approx_above_cells=approx_above_cells,
                          grid_factor=grid_factor, n_threads=n_threads)
        self._ops: dict[float, ReceivedOperator] = {}
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        """Picklable (shipped to Dask workers with a run's perturbation engine): the lock is not state."""
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        import threading

        self.__dict__.update(state)
        self._lock = threading.Lock()

    def operator(self, radius: float) -> ReceivedOperator:
        """The prepared operator for ``radius`` (built on first use)."""
        r = float(radius)
        if r not in self._ops:
            self._ops[r] = ReceivedOperator(self.coords, r, **self._opts)  # type: ignore[arg-type]
        return self._ops[r]

    def apply(self, ligands: np.ndarray, radii: np.ndarray, *, estimate_error: bool = True) -> np.ndarray:
        """Received amounts of the columns of ``ligands`` (N, M), column ``k`` at ``radii[k]``.

        Columns sharing a radius are computed together, in their order. A column of zeros receives exactly
        zero and is not computed (the kernels are linear): a perturbation's first steps move few ligands.
        """
        radii = np.asarray(radii, dtype=np.float64)
        out = np.zeros((self.coords.shape[0], ligands.shape[1]))
        moving = np.any(ligands != 0, axis=0)
        with self._lock:
            for r in np.unique(radii[moving]):
                cols = np.flatnonzero((radii == r) & moving)
                out[:, cols] = self.operator(float(r)).apply(ligands[:, cols], estimate_error=estimate_error)
        return out

    def infos(self) -> list[ReceivedInfo]:
        return [op.info for op in self._ops.values()]


class ReceivedLigandCache:
    """Received ligands computed once per (radius, ligand) and shared by every target gene.

    Parameters
    ----------
    coords : (N, 2) array
    expression : callable
        ``expression(names) -> (N, len(names))`` ligand expression.
    kernel, scale, method, approx_above_cells, grid_factor, n_threads
        As in :func:`received_ligands`.
    """

    def __init__(self, coords: np.ndarray, expression: Callable[[list[str]], np.ndarray], *,
                 kernel: str = "gaussian", scale: float = 1.0, method: str = "auto",
                 approx_above_cells: int = 15000, grid_factor: float | None = None,
                 n_threads: int | None = None) -> None:
        self.coords = np.asarray(coords, dtype=np.float64)
        self._expr = expression
        self.operators = ReceivedOperators(coords, kernel=kernel, scale=scale, method=method,
                                           approx_above_cells=approx_above_cells, grid_factor=grid_factor,
                                           n_threads=n_threads)
        self._cols: dict[tuple[float, str], np.ndarray] = {}
        self.n_computed = 0

    def operator(self, radius: float) -> ReceivedOperator:
        """The prepared operator for ``radius`` (built on first use)."""
        return self.operators.operator(radius)

    def prefetch(self, names: Sequence[str], radii: Sequence[float]) -> None:
        """Compute every missing (radius, ligand) column in one batch per radius."""
        todo: dict[float, list[str]] = {}
        for g, r in zip(names, radii):
            key = (float(r), g)
            if key not in self._cols and g not in todo.get(float(r), []):
                todo.setdefault(float(r), []).append(g)
        for r, genes in todo.items():
            L = self._expr(genes)
            L = np.where(L <= _keys.MIN_EXPRESSION, 0.0, L)
            res = self.operator(r).apply(L)
            for k, g in enumerate(genes):
                self._cols[(r, g)] = np.ascontiguousarray(res[:, k])
            self.n_computed += len(genes)

    def get(self, names: Sequence[str], radii: Sequence[float]) -> np.ndarray:
        """(N, len(names)) received amounts of ``names`` at their ``radii``."""
        self.prefetch(names, radii)
        if not names:
            return np.zeros((self.coords.shape[0], 0))
        return np.column_stack([self._cols[(float(r), g)] for g, r in zip(names, radii)])

    def infos(self) -> list[ReceivedInfo]:
        return self.operators.infos()

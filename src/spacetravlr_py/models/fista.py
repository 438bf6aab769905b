"""Sparse group lasso by FISTA, per (gene, cluster) (SPEC §5.1): validation, thread control, gating.

For the ``m`` cells of a block::

    min_{w, b}  (1/2m)‖Xw + b − y‖² + Σ_g λ_g‖w_g‖₂ + l1_reg‖w‖₁,   λ_g = group_reg · scale(|g|)

The intercept is unpenalised: ``X`` and ``y`` are centred, the centred problem is solved in Gram form
(``G = X_cᵀX_c/m``, ``c = X_cᵀy_c/m``) by FISTA with backtracking and adaptive restart, and
``b = ȳ − x̄·w``. The numerics live in :mod:`._kernels`; this module checks inputs, picks the serial or
parallel driver, and applies the R² gate.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = rng.standard_normal((200, 6)); y = X @ [1.0, -2, 0, 0, 0.5, 0] + 3
>>> res = fit_sparse_group_lasso(X, y, [0, 0, 1, 1, 2, 2], l1_reg=1e-3, group_reg=1e-3, n_iter=500, tol=1e-8)
>>> bool(res.converged), round(res.intercept, 2), round(res.r2, 4)
(True, 3.0, 1.0)
"""

from __future__ import annotations

import enum
import threading
from dataclasses import dataclass

import numpy as np

from .._threads import default_threads, numba_threads
from . import _kernels
from .penalties import SparseGroupL1L2

N_POWER_ITER = 12
"""Power iterations for the starting Lipschitz estimate (a lower bound; backtracking corrects it)."""
BACKTRACK_FACTOR = 2.0
"""``L ← BACKTRACK_FACTOR · L`` while the sufficient-decrease condition fails."""


class FitStatus(enum.IntEnum):
    """Why a cluster's betas are (or are not) kept."""

    FITTED = 0
    """Fitted and kept (R² ≥ score_threshold)."""
    TOO_FEW_CELLS = 1
    """0 or 1 cell: nothing to fit; zero betas."""
    NONFINITE = 2
    """Non-finite input or result; zero betas."""
    LOW_SCORE = 3
    """R² < score_threshold; zero betas."""


@dataclass(frozen=True)
class FistaResult:
    """One sparse group lasso fit.

    Attributes
    ----------
    coef : (p,) float64
        ``w``.
    intercept : float
        ``b = ȳ − x̄·w``.
    n_iter : int
        FISTA iterations run.
    converged : bool
        Whether ``‖Δw‖/max(‖w‖, tiny) < tol`` was reached within ``n_iter``.
    r2 : float
        In-sample ``1 − SS_res/SS_tot``; 0 when ``y`` is constant (``SS_tot = 0``).
    mse : float
        ``SS_res / n``.
    lipschitz : float
        Final Lipschitz constant (step ``1/L``).
    objective : float
        ``(1/2n)‖Xw + b − y‖² + penalty(w)``.
    n_restarts, n_backtracks : int
        Momentum restarts and ``L`` increases performed.
    """

    coef: np.ndarray
    intercept: float
    n_iter: int
    converged: bool
    r2: float
    mse: float
    lipschitz: float
    objective: float
    n_restarts: int
    n_backtracks: int


@dataclass(frozen=True)
class ClusterFits:
    """One gene's per-cluster fits (K clusters, p features), after the R² gate.

    Attributes
    ----------
    coef : (K, p) float64
        Betas; all zero for a gated cluster.
    intercept : (K,) float64
        ``beta0``; zero for a gated cluster.
    n_cells : (K,) int64
        Cells per cluster.
    n_iter : (K,) int64
        FISTA iterations (0 when not fitted).
    converged : (K,) bool
    r2 : (K,) float64
        In-sample R² of the fit before gating (0 when not fitted or non-finite, and for constant ``y``).
    mse : (K,) float64
        ``SS_res/n`` of the fit before gating (0 when not fitted or non-finite).
    lipschitz, objective : (K,) float64
        Final ``L`` and objective value (0 when not fitted or non-finite).
    status : (K,) int8
        :class:`FitStatus` of each cluster.
    """

    coef: np.ndarray
    intercept: np.ndarray
    n_cells: np.ndarray
    n_iter: np.ndarray
    converged: np.ndarray
    r2: np.ndarray
    mse: np.ndarray
    lipschitz: np.ndarray
    objective: np.ndarray
    status: np.ndarray

    @property
    def gated(self) -> np.ndarray:
        """(K,) bool: clusters whose betas were zeroed."""
        return self.status != FitStatus.FITTED


def _check_xy(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    X = np.ascontiguousarray(X, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_cells, n_features), got shape {X.shape}")
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise ValueError(f"y must have shape ({X.shape[0]},), got {y.shape}")
    return X, y


def _check_solver(n_iter: int, tol: float) -> None:
    if int(n_iter) != n_iter or n_iter < 1:
        raise ValueError(f"n_iter must be an integer >= 1, got {n_iter}")
    if not (np.isfinite(tol) and tol >= 0):
        raise ValueError(f"tol must be finite and >= 0, got {tol}")


_WORKSPACE = threading.local()


def _gram_workspace(n_slots: int, p: int) -> np.ndarray:
    """A ``(n_slots, p, p)`` float64 workspace, reused across calls from the same Python thread.

    Reuse matters: a fresh multi-megabyte buffer per gene comes from ``mmap`` and every worker thread
    then page-faults on it, which made the parallel driver slower than the serial one.
    """
    need = n_slots * p * p
    buf = getattr(_WORKSPACE, "gram", None)
    if buf is None or buf.shape[0] < need:
        buf = np.empty(max(need, 1))
        _WORKSPACE.gram = buf
    return buf[:need].reshape(n_slots, p, p)


def _dispatch(XS: np.ndarray, XL: np.ndarray, kind: np.ndarray, col: np.ndarray, y: np.ndarray,
              order: np.ndarray, starts: np.ndarray, grams: np.ndarray, means: np.ndarray, has_grams: bool,
              penalty: SparseGroupL1L2, n_iter: int, tol: float, lipschitz_init: float | None,
              n_threads: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit every cluster block with the serial kernel or, for several threads, the parallel one."""
    import numba

    p = kind.shape[0]
    if penalty.n_features != p:
        raise ValueError(f"penalty has {penalty.n_features} features, the design has {p}")
    k = starts.shape[0] - 1
    coef = np.zeros((k, p))
    stats = np.zeros((k, 5))
    counts = np.zeros((k, 5), dtype=np.int64)
    fg, lam, l1 = penalty.kernel_arrays()
    lip0 = -1.0 if lipschitz_init is None else float(lipschitz_init)
    threads = max(1, min(n_threads, k, numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]
    args = (XS, XL, kind, col, y, order, starts, grams, means, has_grams, fg, lam, l1, int(n_iter), float(tol),
            lip0, N_POWER_ITER, BACKTRACK_FACTOR)
    if threads == 1:
        _kernels.fit_blocks_serial(*args, _gram_workspace(1, p), coef, stats, counts)
    else:
        with numba_threads(threads):
            _kernels.fit_blocks_parallel(*args, _gram_workspace(threads, p), coef, stats, counts)
    return coef, stats, counts


_NO_SHARED = (np.zeros((1, 1)), np.zeros((1, 1, 1)), np.zeros((1, 1)))


def _run(X: np.ndarray, y: np.ndarray, order: np.ndarray, starts: np.ndarray, penalty: SparseGroupL1L2,
         n_iter: int, tol: float, lipschitz_init: float | None,
         n_threads: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A plain design: every feature is its own column of ``X``."""
    p = X.shape[1]
    XL, grams, means = _NO_SHARED
    return _dispatch(X, XL, np.zeros(p, dtype=np.int64), np.arange(p, dtype=np.int64), y, order, starts, grams,
                     means, False, penalty, n_iter, tol, lipschitz_init, n_threads)


def fit_sgl(
    X: np.ndarray,
    y: np.ndarray,
    penalty: SparseGroupL1L2,
    *,
    n_iter: int,
    tol: float,
    lipschitz_init: float | None = None,
) -> FistaResult:
    """Fit ``(1/2n)‖Xw + b − y‖² + penalty(w)`` on all rows (one block).

    Parameters
    ----------
    X : (n, p) array
        Design matrix (converted to float64).
    y : (n,) array
        Response.
    penalty : SparseGroupL1L2
        Also :class:`~.penalties.L1` or :class:`~.penalties.GroupL2`.
    n_iter, tol
        Iteration cap and relative-step tolerance.
    lipschitz_init : float, optional
        Starting ``L``; default: power-iteration estimate of ``σ_max(X_c)²/n``.

    Raises
    ------
    ValueError
        Bad shapes, fewer than 2 rows, or non-finite ``X``/``y``.
    """
    X, y = _check_xy(X, y)
    _check_solver(n_iter, tol)
    n = X.shape[0]
    if n < 2:
        raise ValueError(f"need at least 2 rows to fit, got {n}")
    if not (np.all(np.isfinite(X)) and np.all(np.isfinite(y))):
        raise ValueError("X and y must be finite")
    order = np.arange(n, dtype=np.int64)
    starts = np.array([0, n], dtype=np.int64)
    coef, stats, counts = _run(X, y, order, starts, penalty, n_iter, tol, lipschitz_init, 1)
    return FistaResult(
        coef=coef[0],
        intercept=float(stats[0, 0]),
        n_iter=int(counts[0, 0]),
        converged=bool(counts[0, 1]),
        r2=float(stats[0, 1]),
        mse=float(stats[0, 2]),
        lipschitz=float(stats[0, 3]),
        objective=float(stats[0, 4]),
        n_restarts=int(counts[0, 3]),
        n_backtracks=int(counts[0, 4]),
    )


def fit_sparse_group_lasso(
    X: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray | list[int],
    *,
    l1_reg: float,
    group_reg: float,
    group_reg_scaling: str = "sqrt_group_size",
    n_iter: int,
    tol: float,
    lipschitz_init: float | None = None,
) -> FistaResult:
    """:func:`fit_sgl` with the SPEC §5.1 penalty built from ``groups`` (p,) int ids (0 TF, 1 LR,
    2 TF–ligand, 3 extra) and ``λ_g = group_reg · scale(|g|)``."""
    X, y = _check_xy(X, y)
    penalty = SparseGroupL1L2.from_groups(groups, l1_reg, group_reg, group_reg_scaling)
    if penalty.n_features != X.shape[1]:
        raise ValueError(f"groups has {penalty.n_features} entries, X has {X.shape[1]} columns")
    return fit_sgl(X, y, penalty, n_iter=n_iter, tol=tol, lipschitz_init=lipschitz_init)


def fit_clusters(
    X: np.ndarray,
    y: np.ndarray,
    clusters: np.ndarray,
    groups: np.ndarray | list[int],
    *,
    l1_reg: float,
    group_reg: float,
    group_reg_scaling: str = "sqrt_group_size",
    n_iter: int,
    tol: float,
    score_threshold: float,
    n_clusters: int | None = None,
    n_threads: int | None = None,
) -> ClusterFits:
    """One sparse group lasso per cluster of a target gene, with the R² gate (SPEC §5.1).

    Parameters
    ----------
    X : (n_cells, p) array
        Modulator features of every cell.
    y : (n_cells,) array
        Target expression.
    clusters : (n_cells,) int array
        Cluster id of each cell, ``0..n_clusters − 1``.
    groups : (p,) int array
        Group id of each feature (0 TF, 1 LR, 2 TF–ligand, 3 extra).
    l1_reg, group_reg, group_reg_scaling
        Penalty (see :mod:`.penalties`).
    n_iter, tol
        FISTA iteration cap and relative-step tolerance.
    score_threshold : float
        Clusters with ``R² < score_threshold`` get zero betas and intercept.
    n_clusters : int, optional
        Number of clusters K (default ``max(clusters) + 1``); clusters without cells get zero rows.
    n_threads : int, optional
        Threads over clusters (default :func:`spacetravlr_py._threads.default_threads`). Each cluster is
        fitted serially, so results are bit-identical for any value.

    Returns
    -------
    ClusterFits
        Gated clusters (``status != FITTED``): fewer than 2 cells, non-finite input or result, or low R².
        No NaN or Inf is ever returned.
    """
    X, y = _check_xy(X, y)
    _check_solver(n_iter, tol)
    if not np.isfinite(score_threshold) and score_threshold != -np.inf:
        raise ValueError(f"score_threshold must be a number, got {score_threshold}")
    cl = np.asarray(clusters)
    if cl.ndim != 1 or cl.shape[0] != X.shape[0]:
        raise ValueError(f"clusters must have shape ({X.shape[0]},), got {cl.shape}")
    if cl.size and not np.issubdtype(cl.dtype, np.integer):
        raise ValueError(f"clusters must hold integer ids, got dtype {cl.dtype}")
    cl = cl.astype(np.int64)
    k_seen = int(cl.max()) + 1 if cl.size else 0
    k = k_seen if n_clusters is None else int(n_clusters)
    if cl.size and cl.min() < 0:
        raise ValueError("cluster ids must be >= 0")
    if k < k_seen:
        raise ValueError(f"n_clusters={k} but a cluster id is {k_seen - 1}")
    penalty = SparseGroupL1L2.from_groups(groups, l1_reg, group_reg, group_reg_scaling)
    if penalty.n_features != X.shape[1]:
        raise ValueError(f"groups has {penalty.n_features} entries, X has {X.shape[1]} columns")

    order, starts, n_cells = cluster_blocks(cl, k)
    threads = default_threads() if n_threads is None else int(n_threads)
    coef, stats, counts = _run(X, y, order, starts, penalty, n_iter, tol, None, threads)
    return _gated(coef, stats, counts, n_cells, score_threshold)


def cluster_blocks(clusters: np.ndarray, n_clusters: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cells sorted by cluster (stable), block starts (K + 1,) and cells per cluster."""
    cl = np.asarray(clusters, dtype=np.int64)
    order = np.argsort(cl, kind="stable").astype(np.int64)
    n_cells = np.bincount(cl, minlength=n_clusters).astype(np.int64)
    starts = np.zeros(n_clusters + 1, dtype=np.int64)
    np.cumsum(n_cells, out=starts[1:])
    return order, starts, n_cells


def _gated(coef: np.ndarray, stats: np.ndarray, counts: np.ndarray, n_cells: np.ndarray,
           score_threshold: float) -> ClusterFits:
    """Statuses, the R² gate and the result object (no NaN/Inf ever leaves)."""
    status = counts[:, 2].astype(np.int8)
    status[status == _kernels.STATUS_TOO_FEW_CELLS] = FitStatus.TOO_FEW_CELLS
    status[status == _kernels.STATUS_NONFINITE_INPUT] = FitStatus.NONFINITE
    finite = np.all(np.isfinite(coef), axis=1) & np.all(np.isfinite(stats), axis=1)
    fitted = status == FitStatus.FITTED
    status[fitted & ~finite] = FitStatus.NONFINITE
    status[(status == FitStatus.FITTED) & ~(stats[:, 1] >= score_threshold)] = FitStatus.LOW_SCORE
    gated = status != FitStatus.FITTED
    coef[gated] = 0.0
    intercept = np.where(gated, 0.0, stats[:, 0])
    stats[~finite] = 0.0
    return ClusterFits(
        coef=coef,
        intercept=intercept,
        n_cells=n_cells,
        n_iter=counts[:, 0].copy(),
        converged=counts[:, 1].astype(bool),
        r2=stats[:, 1].copy(),
        mse=stats[:, 2].copy(),
        lipschitz=stats[:, 3].copy(),
        objective=stats[:, 4].copy(),
        status=status,
    )


@dataclass(frozen=True)
class SharedColumns:
    """Feature columns shared by every target of a run, with per-cluster statistics computed once.

    Attributes
    ----------
    XL : (N, P) float64, C-contiguous
        The shared columns (the run's ligand–receptor features).
    means : (K, P) float64
        Per-cluster column means.
    grams : (K, P, P) float64 or (1, 1, 1) zeros
        Per-cluster unscaled centred Gram matrices (absent when they would not fit in memory).
    """

    XL: np.ndarray
    means: np.ndarray
    grams: np.ndarray
    has_grams: bool

    @classmethod
    def build(cls, XL: np.ndarray, clusters: np.ndarray, n_clusters: int, *,
              max_bytes: float = 1.5 * 2**30, n_threads: int | None = None) -> SharedColumns:
        """Compute the per-cluster means and (when ``K·P²·8 ≤ max_bytes``) Gram blocks of ``XL``."""
        XL = np.ascontiguousarray(XL, dtype=np.float64)
        order, starts, _ = cluster_blocks(clusters, n_clusters)
        P = XL.shape[1]
        has = n_clusters * P * P * 8 <= max_bytes and P > 0
        means = np.zeros((n_clusters, P))
        grams = np.zeros((n_clusters, P, P) if has else (1, 1, 1))
        if has:
            ok = np.zeros(n_clusters, dtype=np.bool_)
            with numba_threads(default_threads() if n_threads is None else int(n_threads)):
                _kernels.shared_grams(XL, order, starts, means, grams, ok)
            if not ok.all():
                raise ValueError("shared feature columns contain non-finite values")
        return cls(XL=XL, means=means, grams=grams, has_grams=has)


def fit_clusters_split(
    XS: np.ndarray,
    shared: SharedColumns,
    src_kind: np.ndarray,
    src_col: np.ndarray,
    y: np.ndarray,
    clusters: np.ndarray,
    groups: np.ndarray | list[int],
    *,
    l1_reg: float,
    group_reg: float,
    group_reg_scaling: str = "sqrt_group_size",
    n_iter: int,
    tol: float,
    score_threshold: float,
    n_clusters: int,
    n_threads: int | None = None,
) -> ClusterFits:
    """:func:`fit_clusters` on a split design: feature ``j`` is column ``src_col[j]`` of ``XS``
    (``src_kind[j] == 0``, the target's own columns) or of ``shared.XL`` (``1``, columns every target
    shares, whose per-cluster Gram blocks are computed once per run).

    Same problem, penalty, gate and outputs as :func:`fit_clusters` on the assembled design
    ``X[:, j] = (XS, XL)[src_kind[j]][:, src_col[j]]``; the shared Gram entries come from
    ``shared.grams`` instead of being recomputed for every target.
    """
    XS = np.ascontiguousarray(XS, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    kind = np.ascontiguousarray(src_kind, dtype=np.int64)
    col = np.ascontiguousarray(src_col, dtype=np.int64)
    _check_solver(n_iter, tol)
    p = kind.shape[0]
    penalty = SparseGroupL1L2.from_groups(groups, l1_reg, group_reg, group_reg_scaling)
    if penalty.n_features != p or col.shape[0] != p:
        raise ValueError(f"groups ({penalty.n_features}), src_kind ({p}) and src_col ({col.shape[0]}) disagree")
    order, starts, n_cells = cluster_blocks(np.asarray(clusters, dtype=np.int64), n_clusters)
    threads = default_threads() if n_threads is None else int(n_threads)
    coef, stats, counts = _dispatch(XS, shared.XL, kind, col, y, order, starts, shared.grams, shared.means,
                                    shared.has_grams, penalty, n_iter, tol, None, threads)
    return _gated(coef, stats, counts, n_cells, score_threshold)

"""Transition field: where perturbed cells would move on the embedding (SPEC §8, velocyto colΔCor).

For a simulated change Δ (cells × genes) and an embedding E (cells × 2):

1. kNN graph on E (``n_neighbors``; self excluded — under python-reference compat the cell is one of its
   own k neighbours, as sklearn's ``kneighbors`` returns it, and gets probability 0).
2. ``corr[i, j] = Pearson(Δ_i, X_j − X_i)`` over genes for each neighbour j; undefined (Δ_i or
   X_j − X_i constant, to rounding) → 0 (python-reference: 1, velocyto's ``nan_to_num(nan=1)``). Δ is
   rescaled and rounded on the fly (no N × G copy).
3. ``P_ij ∝ exp(corr_ij / T)`` over neighbours, rows sum to 1; ``remove_null`` subtracts the same
   quantity for Δ = 0 (uniform over the neighbours), so rows then sum to 0.
4. ``v_i = Σ_j P_ij (E_j − E_i)`` (or unit directions ``(E_j − E_i)/‖E_j − E_i‖``).
5. Grid: cells binned on an ``nx × ny`` grid over E, vectors averaged per bin, bins with fewer than
   ``min_cells`` cells masked, scaled by ``vector_scale / max|v|``, vectors shorter than
   ``magnitude_threshold`` (after scaling) zeroed.

Everything is sparse: the kNN graph and P are ``(N, k)``; no N×N array exists at any size. Cells are
visited in a space-filling-curve order of the embedding so that neighbouring rows of X stay in cache.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from .._threads import thread_limit
from . import _kernels

if TYPE_CHECKING:
    import anndata as ad

log = logging.getLogger("spacetravlr_py.transitions")

DEFAULT_KEY = "spacetravlr"


@dataclass
class TransitionGraph:
    """kNN neighbours and transition probabilities in ``(N, k)`` slot form.

    Attributes
    ----------
    neighbors : (N, k) int64
        ``neighbors[i, s]`` is the s-th neighbour of cell i (−1 = empty slot).
    probabilities : (N, k) float64
        ``P[i, neighbors[i, s]]`` (after null removal when requested).
    correlations : (N, k) float64
        ``corr[i, neighbors[i, s]]``.
    """

    neighbors: np.ndarray
    probabilities: np.ndarray
    correlations: np.ndarray
    params: dict[str, Any] = field(default_factory=dict)

    def to_csr(self, which: str = "probabilities") -> sp.csr_matrix:
        """The N×N sparse matrix of ``probabilities`` or ``correlations`` (explicit zeros kept)."""
        vals = getattr(self, which)
        n = self.neighbors.shape[0]
        valid = self.neighbors >= 0
        counts = valid.sum(axis=1)
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return sp.csr_matrix((vals[valid], self.neighbors[valid], indptr), shape=(n, n))


@dataclass
class GridField:
    """Vectors averaged on a regular grid over the embedding (for quiver / stream plots).

    ``x`` (nx,), ``y`` (ny,) bin centres; ``u``, ``v`` (ny, nx) components (NaN where masked);
    ``counts`` (ny, nx) cells per bin; ``mask`` (ny, nx) True where a bin is shown.
    """

    x: np.ndarray
    y: np.ndarray
    u: np.ndarray
    v: np.ndarray
    counts: np.ndarray
    mask: np.ndarray
    params: dict[str, Any] = field(default_factory=dict)


def _morton_order(E: np.ndarray) -> np.ndarray:
    """Cells sorted along a Z-order curve of the embedding (16 bits per axis); ties by index."""
    lo = E.min(axis=0)
    span = np.maximum(E.max(axis=0) - lo, 1e-300)
    q = np.minimum(((E - lo) / span * 65535.0).astype(np.uint64), np.uint64(65535))

    def spread(v: np.ndarray) -> np.ndarray:
        v = (v | (v << np.uint64(8))) & np.uint64(0x00FF00FF)
        v = (v | (v << np.uint64(4))) & np.uint64(0x0F0F0F0F)
        v = (v | (v << np.uint64(2))) & np.uint64(0x33333333)
        return (v | (v << np.uint64(1))) & np.uint64(0x55555555)

    code = spread(q[:, 0]) | (spread(q[:, 1]) << np.uint64(1))
    return np.argsort(code, kind="stable")


def knn(embedding: np.ndarray, n_neighbors: int, *, include_self: bool = False,
        n_threads: int | None = None) -> np.ndarray:
    """(N, k) neighbour indices on the embedding, nearest first (k-d tree; all pairs for small N).

    ``include_self``: the query point is one of its own k neighbours (sklearn ``kneighbors`` on the
    fitted set, as velocyto / the Python reference use it).
    """
    E = np.ascontiguousarray(embedding, dtype=np.float64)
    n = E.shape[0]
    if n == 0:
        return np.zeros((0, 0), dtype=np.int64)
    k = min(n_neighbors, n) if include_self else min(n_neighbors, n - 1)
    if k <= 0:
        return np.full((n, 1), -1, dtype=np.int64)
    from scipy.spatial import cKDTree

    tree = cKDTree(E)
    if include_self:
        _, idx = tree.query(E, k=k, workers=n_threads or -1)
        return np.asarray(idx).reshape(n, k).astype(np.int64)
    _, idx = tree.query(E, k=k + 1, workers=n_threads or -1)
    idx = np.asarray(idx).reshape(n, k + 1).astype(np.int64)
    # drop the cell itself: nearly always the first (distance 0); with duplicate points it may be
    # elsewhere in the list, or absent when more than k others sit at the same place
    out = idx[:, 1:].copy()
    rows = np.arange(n)
    for i in np.flatnonzero(idx[:, 0] != rows):
        r = idx[i][idx[i] != i]
        out[i] = r[:k]
    return out


def _round_mode(round_decimals: int | None) -> tuple[float, int]:
    if round_decimals is None:
        return 1.0, 0
    d = int(round_decimals)
    return 10.0 ** abs(d), (1 if d >= 0 else -1)


def _as_matrix(a: Any) -> np.ndarray:
    """A dense float32/float64 matrix (C order when a copy is needed anyway)."""
    m = a.toarray() if sp.issparse(a) else np.asarray(a)
    if m.dtype not in (np.float32, np.float64):
        m = m.astype(np.float64)
    return m


def prepare_delta(delta: np.ndarray, *, rescale: float = 1.0, round_decimals: int | None = 3,
                  n_threads: int | None = None) -> np.ndarray:
    """Δ × ``rescale``, rounded to ``round_decimals`` (None = no rounding), as a new C-contiguous float64
    array, bit-identical to ``np.round(delta * rescale, round_decimals)`` (the input is not modified).

    :func:`transition_probabilities` applies the same rounding on the fly without this copy.
    Raises ValueError when a value is not finite.
    """
    D = _as_matrix(delta)
    if D.ndim != 2:
        raise ValueError(f"delta must be a cells × genes matrix, got shape {D.shape}")
    f, mode = _round_mode(round_decimals)
    out = np.empty(D.shape)
    with thread_limit(n_threads):
        ok = _kernels.round_scaled(D, float(rescale), f, mode, out)
    if not ok:
        raise ValueError("delta must be finite")
    return out


def _checked_inputs(expression: np.ndarray, delta: np.ndarray, embedding: np.ndarray, temperature: float,
                    n_threads: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(X (N, G) float64 C-contiguous, Δ (N, G), E (N, 2) float64 C-contiguous)`` after shape,
    temperature and finiteness checks (Δ is checked by the kernels that read it)."""
    X = np.ascontiguousarray(_as_matrix(expression), dtype=np.float64)
    E = np.asarray(embedding, dtype=np.float64)
    if E.ndim != 2 or E.shape[1] < 2:
        raise ValueError(f"embedding must be N × 2 (or more columns; the first two are used), got {E.shape}")
    E = np.ascontiguousarray(E[:, :2])
    dshape = np.shape(delta)
    if X.ndim != 2 or dshape != X.shape or E.shape[0] != X.shape[0]:
        raise ValueError(f"shapes disagree: expression {X.shape}, delta {dshape}, embedding {E.shape}")
    if X.shape[1] == 0:
        raise ValueError("expression has no genes")
    if not (temperature > 0):
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if not np.isfinite(E).all():
        raise ValueError("embedding must be finite")
    with thread_limit(n_threads):
        if not _kernels.all_finite(X):
            raise ValueError("expression must be finite")
    return X, _as_matrix(delta), E


def transition_probabilities(
    expression: np.ndarray,
    delta: np.ndarray,
    embedding: np.ndarray,
    *,
    n_neighbors: int = 150,
    temperature: float = 0.05,
    remove_null: bool = True,
    reference_compat: bool = False,
    delta_rescale: float = 1.0,
    round_decimals: int | None = 3,
    n_threads: int | None = None,
    neighbors: np.ndarray | None = None,
) -> TransitionGraph:
    """Transition probabilities of every cell towards its embedding neighbours (colΔCor).

    Parameters
    ----------
    expression : (N, G) array
        Base expression X (the layer the perturbation started from).
    delta : (N, G) array
        Simulated change Δ.
    embedding : (N, 2) array
        E (UMAP).
    n_neighbors : int
        k (capped at N−1, or N with ``reference_compat``).
    temperature : float
        T of ``exp(corr / T)``.
    remove_null : bool
        Subtract P computed with Δ = 0.
    reference_compat : bool
        velocyto semantics: self among the k neighbours (probability 0), undefined correlation = 1.
    delta_rescale, round_decimals
        Δ is multiplied by ``delta_rescale`` then rounded (as the Python reference's field does).
    neighbors : (N, k) int array, optional
        A precomputed ``knn(embedding, n_neighbors, include_self=reference_compat)`` (e.g. cached by a
        server that computes many fields on one embedding); computed here when None.

    Returns
    -------
    TransitionGraph
    """
    t0 = time.perf_counter()
    X, D, E = _checked_inputs(expression, delta, embedding, temperature, n_threads)
    n = X.shape[0]
    t_prep = time.perf_counter()
    if neighbors is None:
        nb = knn(E, n_neighbors, include_self=reference_compat, n_threads=n_threads)
    else:
        nb = np.ascontiguousarray(neighbors, dtype=np.int64)
        if nb.ndim != 2 or nb.shape[0] != n or (n and (nb.max() >= n or nb.min() < -1)):
            raise ValueError(f"neighbors must be an (N, k) array of cell indices (N = {n}), got shape {nb.shape}")
    t_knn = time.perf_counter()
    nan_value = 1.0 if reference_compat else 0.0
    k = nb.shape[1]
    corr = np.empty((n, k))
    P = np.empty((n, k))
    bad = np.zeros(n, dtype=np.bool_)
    f, mode = _round_mode(round_decimals)
    # visit cells along a space-filling curve: neighbouring rows of X are then close in memory
    # (the visiting order does not change any value)
    order = _morton_order(E) if n > 1 else np.arange(n)
    with thread_limit(n_threads):
        # Δ is scaled and rounded inside the kernel (no N × G copy)
        _kernels.delta_correlation(X, D, float(delta_rescale), f, mode, nb, order, nan_value, corr, bad)
        if bad.any():
            raise ValueError(f"delta must be finite (row {int(np.flatnonzero(bad)[0])} is not, after rescaling)")
        t_corr = time.perf_counter()
        # remove_null: with Δ = 0 every correlation is undefined, so P0 is uniform over the (non-self)
        # neighbours; the kernel subtracts it
        _kernels.softmax_rows(corr, nb, 1.0 / temperature, bool(remove_null), P)
    timings = dict(prepare=t_prep - t0, knn=t_knn - t_prep, delta_correlation=t_corr - t_knn,
                   probabilities=time.perf_counter() - t_corr)
    params = dict(n_neighbors=int(k), temperature=float(temperature), remove_null=bool(remove_null),
                  reference_compat=bool(reference_compat), delta_rescale=float(delta_rescale),
                  round_decimals=round_decimals, seconds=time.perf_counter() - t0,
                  timings={k_: round(v, 6) for k_, v in timings.items()})
    log.info("transition probabilities: %d cells, k=%d, %.2fs", n, k, params["seconds"])
    return TransitionGraph(neighbors=nb, probabilities=P, correlations=corr, params=params)


def cell_vectors(graph: TransitionGraph, embedding: np.ndarray, *, unit_directions: bool = False,
                 n_threads: int | None = None) -> np.ndarray:
    """``v_i = Σ_j P_ij (E_j − E_i)`` (or with unit directions); (N, 2) float64."""
    E = np.ascontiguousarray(embedding, dtype=np.float64)[:, :2]
    out = np.empty((E.shape[0], 2))
    with thread_limit(n_threads):
        _kernels.project(E, graph.neighbors, graph.probabilities, bool(unit_directions), out)
    return out


def default_bins(n_cells: int) -> int:
    """Grid bins along x: about 10 cells per bin on a square layout, between 10 and 50."""
    return int(np.clip(round(np.sqrt(max(n_cells, 1) / 10.0)), 10, 50))


def grid_field(embedding: np.ndarray, vectors: np.ndarray, *, nx: int | None = None, ny: int | None = None,
               min_cells: int = 3, vector_scale: float | None = None, magnitude_threshold: float = 0.0,
               weight_by_count: bool = False) -> GridField:
    """Average ``vectors`` on an ``nx × ny`` grid over the embedding.

    Parameters
    ----------
    nx, ny : bins along each axis (``nx`` defaults to :func:`default_bins`, ``ny`` keeps bins square).
    min_cells : bins with fewer cells are masked (near-empty bins give noisy arrows).
    vector_scale : the longest shown vector gets this length (embedding units; default: one bin, so
        arrows do not overlap).
    magnitude_threshold : vectors shorter than this (after scaling) are zeroed.
    weight_by_count : multiply each bin's mean by its cell count before scaling (the Python
        reference's choice: arrows of busy bins stand out).
    """
    E = np.asarray(embedding, dtype=np.float64)[:, :2]
    V = np.asarray(vectors, dtype=np.float64)
    if nx is None:
        nx = default_bins(E.shape[0])
    lo, hi = E.min(axis=0), E.max(axis=0)
    span = np.maximum(hi - lo, 1e-12)
    if ny is None:
        # square bins; capped so that a degenerate (line-like) embedding cannot ask for millions of bins
        ny = int(np.clip(round(nx * span[1] / span[0]), 1, max(4 * nx, 200)))
    ix = np.clip(((E[:, 0] - lo[0]) / span[0] * nx).astype(np.int64), 0, nx - 1)
    iy = np.clip(((E[:, 1] - lo[1]) / span[1] * ny).astype(np.int64), 0, ny - 1)
    flat = iy * nx + ix
    counts = np.bincount(flat, minlength=nx * ny).reshape(ny, nx)
    su = np.bincount(flat, weights=V[:, 0], minlength=nx * ny).reshape(ny, nx)
    sv = np.bincount(flat, weights=V[:, 1], minlength=nx * ny).reshape(ny, nx)
    with np.errstate(invalid="ignore", divide="ignore"):
        u = np.where(counts > 0, su / np.maximum(counts, 1), 0.0)
        v = np.where(counts > 0, sv / np.maximum(counts, 1), 0.0)
    if weight_by_count:
        u, v = u * counts, v * counts
    mask = counts >= max(1, min_cells)
    if vector_scale is None:
        vector_scale = float(min(span[0] / nx, span[1] / ny))
    mag = np.hypot(u, v)
    mmax = float(mag[mask].max()) if mask.any() else 0.0
    if mmax > 0:
        u, v = u * (vector_scale / mmax), v * (vector_scale / mmax)
        small = np.hypot(u, v) < magnitude_threshold
        u[small] = 0.0
        v[small] = 0.0
    u = np.where(mask, u, np.nan)
    v = np.where(mask, v, np.nan)
    xs = lo[0] + (np.arange(nx) + 0.5) * span[0] / nx
    ys = lo[1] + (np.arange(ny) + 0.5) * span[1] / ny
    return GridField(x=xs, y=ys, u=u, v=v, counts=counts, mask=mask,
                     params=dict(nx=nx, ny=ny, min_cells=min_cells, vector_scale=vector_scale,
                                 magnitude_threshold=magnitude_threshold, weight_by_count=weight_by_count))


@dataclass
class TransitionField:
    """Probabilities, per-cell vectors and the grid field of one perturbation."""

    graph: TransitionGraph
    vectors: np.ndarray
    grid: GridField
    embedding: np.ndarray


def transition_field(
    data: ad.AnnData | np.ndarray,
    delta: np.ndarray,
    embedding: np.ndarray | None = None,
    *,
    layer: str | None = "imputed_count",
    n_neighbors: int = 150,
    temperature: float = 0.05,
    remove_null: bool = True,
    unit_directions: bool = False,
    delta_rescale: float = 1.0,
    round_decimals: int | None = 3,
    reference_compat: bool = False,
    nx: int | None = None,
    min_cells: int = 3,
    vector_scale: float | None = None,
    magnitude_threshold: float = 0.0,
    key_added: str | None = DEFAULT_KEY,
    copy: bool = False,
    n_threads: int | None = None,
) -> TransitionField | ad.AnnData | None:
    """The whole field from a perturbation's Δ; stores it the scverse way when given an AnnData.

    Parameters
    ----------
    data : AnnData or (N, G) array
        With an AnnData, the base expression is ``layers[layer]`` (``X`` when ``layer`` is None; a
        named layer that is absent is an error) and the embedding ``obsm['X_umap']`` (or ``obsm['umap']``).
    delta : (N, G) array
        Simulated change (e.g. ``PerturbResult.delta``).
    embedding : (N, 2) array, optional
        Overrides the AnnData's UMAP; required with an array.
    key_added : str
        With an AnnData, results go to ``obsp[f"{key}_transitions"]`` (sparse P),
        ``obsp[f"{key}_correlations"]``, ``obsm[f"{key}_vectors"]`` (N×2) and
        ``uns[f"{key}_field"]`` (grid x, y, u, v, counts and every parameter). Returns None (or the
        copy with ``copy=True``). With an array the :class:`TransitionField` is returned.
    Other parameters: see :func:`transition_probabilities` and :func:`grid_field`.
    """
    import anndata as ad

    from .. import _keys

    adata = data if isinstance(data, ad.AnnData) else None
    if adata is not None:
        if layer and layer not in adata.layers:
            raise ValueError(f"layer {layer!r} not in adata.layers ({list(adata.layers)})")
        X = adata.layers[layer] if layer else adata.X
        X = X.toarray() if sp.issparse(X) else np.asarray(X)  # type: ignore[union-attr]
        if embedding is None:
            key = next((k for k in _keys.UMAP_KEYS if k in adata.obsm), None)
            if key is None:
                raise ValueError(f"no embedding: adata.obsm has none of {_keys.UMAP_KEYS}; pass embedding=")
            embedding = np.asarray(adata.obsm[key])
    else:
        X = np.asarray(data)
        if embedding is None:
            raise ValueError("embedding is required when data is an array")
    g = transition_probabilities(X, delta, embedding, n_neighbors=n_neighbors, temperature=temperature,
                                 remove_null=remove_null, reference_compat=reference_compat,
                                 delta_rescale=delta_rescale, round_decimals=round_decimals, n_threads=n_threads)
    V = cell_vectors(g, embedding, unit_directions=unit_directions, n_threads=n_threads)
    grid = grid_field(embedding, V, nx=nx, min_cells=min_cells, vector_scale=vector_scale,
                      magnitude_threshold=magnitude_threshold)
    result = TransitionField(graph=g, vectors=V, grid=grid, embedding=np.asarray(embedding)[:, :2])
    if adata is None or key_added is None:
        return result
    target = adata.copy() if copy else adata
    store(target, result, key_added=key_added, unit_directions=unit_directions)
    return target if copy else None


def store(adata: ad.AnnData, result: TransitionField, *, key_added: str = DEFAULT_KEY,
          unit_directions: bool = False) -> None:
    """Write a :class:`TransitionField` into ``adata`` (obsp / obsm / uns under ``key_added``)."""
    adata.obsp[f"{key_added}_transitions"] = result.graph.to_csr("probabilities")
    adata.obsp[f"{key_added}_correlations"] = result.graph.to_csr("correlations")
    adata.obsm[f"{key_added}_vectors"] = result.vectors
    gr = result.grid
    adata.uns[f"{key_added}_field"] = {
        "x": gr.x, "y": gr.y, "u": np.nan_to_num(gr.u), "v": np.nan_to_num(gr.v), "counts": gr.counts,
        "mask": gr.mask, "params": {**{k: v for k, v in result.graph.params.items() if v is not None},
                                    **gr.params, "unit_directions": unit_directions, "key_added": key_added}}

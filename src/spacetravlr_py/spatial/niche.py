"""A cell's spatial niche as full mode sees it (SPEC §5.2): a distance map and niche features.

Both are computed once per run, shared by every gene and cluster, and shipped to workers memory-mapped:

- **distance maps** ``(N, dim, dim)`` float32 (N·dim² values, one channel): for cell ``s``, the
  Euclidean distance from ``s`` to the centre of each pixel of a ``dim × dim`` grid laid over the
  bounding box of *all* cells, min–max normalised per cell. The map encodes where the cell sits in the
  tissue. (The Python reference stores one identical copy per cluster, N·K·dim²; one is enough.)
- **niche features** ``(N, K)`` float32: the number of cells of each cluster within
  ``spatial_feature_radius`` of the cell (distance ≤ radius, the cell itself included), min–max scaled
  per column over all cells (a constant column becomes 0, as scikit-learn's ``MinMaxScaler``).

>>> maps = distance_maps(coords, 32)                                   # doctest: +SKIP
>>> feats, lo, hi = niche_features(coords, clusters, n_clusters, 100.0)  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._threads import thread_limit
from . import _kernels


@dataclass(frozen=True)
class MapGrid:
    """The pixel grid of the distance maps: ``dim × dim`` pixels over ``[xmin, xmax] × [ymin, ymax]``.

    Pixel ``(i, j)`` (row ``i`` from the top, column ``j`` from the left) has centre
    ``(xmin + (j + ½)·(xmax − xmin)/dim, ymax − (i + ½)·(ymax − ymin)/dim)``, as in the Python reference.
    """

    xmin: float
    xmax: float
    ymin: float
    ymax: float
    dim: int

    @classmethod
    def of(cls, coords: np.ndarray, dim: int) -> MapGrid:
        """The grid over the bounding box of ``coords`` (N, 2)."""
        xy = _check_coords(coords)
        if xy.shape[0] == 0:
            return cls(0.0, 0.0, 0.0, 0.0, int(dim))
        return cls(float(xy[:, 0].min()), float(xy[:, 0].max()), float(xy[:, 1].min()), float(xy[:, 1].max()),
                   int(dim))

    def centres(self) -> tuple[np.ndarray, np.ndarray]:
        """Pixel-centre coordinates ``(cx (dim,), cy (dim,))``: column ``j`` at ``cx[j]``, row ``i`` at ``cy[i]``."""
        k = np.arange(self.dim) + 0.5
        return (self.xmin + k * ((self.xmax - self.xmin) / self.dim),
                self.ymax - k * ((self.ymax - self.ymin) / self.dim))


def _check_coords(coords: np.ndarray) -> np.ndarray:
    xy = np.asarray(coords, dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] < 2:
        raise ValueError(f"coordinates must have shape (n_cells, 2), got {xy.shape}")
    return np.ascontiguousarray(xy[:, :2])


def distance_maps(coords: np.ndarray, dim: int, *, grid: MapGrid | None = None,
                  out: np.ndarray | None = None, n_threads: int | None = None) -> np.ndarray:
    """Every cell's min–max normalised distance map.

    Parameters
    ----------
    coords : (N, 2) array
        Cell coordinates.
    dim : int
        Pixels per side (``[spatial].spatial_dim``).
    grid : MapGrid, optional
        Defaults to :meth:`MapGrid.of` ``(coords, dim)`` (the bounding box of every cell).
    out : (N, dim, dim) float32 array, optional
        Written in place (e.g. a memory-mapped file), else allocated.
    n_threads : int, optional
        numba threads (default: :func:`spacetravlr_py._threads.default_threads`).

    Returns
    -------
    (N, dim, dim) float32
        ``m[s, i, j] = (d_sij − min_ij d_sij) / max(max_ij d_sij − min_ij d_sij, 1e-15)``,
        ``d_sij = ‖x_s − centre(i, j)‖₂``; values in [0, 1], 0 at the pixel nearest the cell.
    """
    xy = _check_coords(coords)
    if int(dim) < 1:
        raise ValueError(f"dim must be >= 1, got {dim}")
    g = grid if grid is not None else MapGrid.of(xy, dim)
    if g.dim != int(dim):
        raise ValueError(f"grid has dim {g.dim}, asked for {dim}")
    if out is None:
        out = np.empty((xy.shape[0], g.dim, g.dim), dtype=np.float32)
    elif out.shape != (xy.shape[0], g.dim, g.dim):
        raise ValueError(f"out must have shape {(xy.shape[0], g.dim, g.dim)}, got {out.shape}")
    if xy.shape[0]:
        with thread_limit(n_threads):
            _kernels.distance_maps(xy, g.xmin, g.ymax, (g.xmax - g.xmin) / g.dim, (g.ymax - g.ymin) / g.dim, out)
    return out


def niche_counts(coords: np.ndarray, clusters: np.ndarray, n_clusters: int, radius: float) -> np.ndarray:
    """``c[s, k]`` = number of cells of cluster ``k`` within ``radius`` of cell ``s`` (itself included).

    One k-d tree per cluster and a ball count per cell: O(N log N + N·neighbours), never N×N.

    Returns
    -------
    (N, K) float64
    """
    from scipy.spatial import cKDTree

    xy = _check_coords(coords)
    cl = np.asarray(clusters, dtype=np.int64)
    if cl.shape != (xy.shape[0],):
        raise ValueError(f"clusters must have shape ({xy.shape[0]},), got {cl.shape}")
    if not radius > 0:
        raise ValueError(f"radius must be > 0, got {radius}")
    out = np.zeros((xy.shape[0], int(n_clusters)))
    if xy.shape[0] == 0:
        return out
    for k in range(int(n_clusters)):
        members = xy[cl == k]
        if members.shape[0]:
            out[:, k] = cKDTree(members).query_ball_point(xy, r=float(radius), return_length=True)
    return out


def niche_features(coords: np.ndarray, clusters: np.ndarray, n_clusters: int,
                   radius: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Min–max scaled :func:`niche_counts`, with the scaling constants.

    Returns
    -------
    features : (N, K) float32
        ``(c − lo) / (hi − lo)`` per column; a constant column (``hi == lo``) is 0.
    lo, hi : (K,) float64
        Column minimum and maximum of the counts (kept in exported weights so that features of new
        cells can be scaled the same way).
    """
    c = niche_counts(coords, clusters, n_clusters, radius)
    if c.shape[0] == 0:
        z = np.zeros(c.shape[1])
        return c.astype(np.float32), z, z.copy()
    lo, hi = c.min(axis=0), c.max(axis=0)
    span = hi - lo
    scaled = (c - lo) / np.where(span > 0, span, 1.0)
    return scaled.astype(np.float32), lo, hi

"""Spatial coordinates: nearest-neighbour spacing, rescaling to a fixed cell size, section layout.

The training radius (``[spatial].radius``, default 200) is in coordinate units. Rescaling so that the
median distance from a cell to its nearest neighbour is ``cell_size`` (15, as the Python reference's
``scale_adata``) makes one radius mean the same thing across technologies (µm, pixels, array units).

Multi-section data (one obs column naming the section) are laid out side by side on a grid with a gap
between bounding boxes, so that no received-ligand kernel reaches from one section into another.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError

DEFAULT_CELL_SIZE = 15.0
"""Median nearest-neighbour distance after rescaling (the Python reference's ``scale_adata`` default)."""
DEFAULT_GAP_CELLS = 2000.0 / DEFAULT_CELL_SIZE
"""Default gap between sections, in median nearest-neighbour distances: 2,000 units after rescaling to 15,
i.e. 10 × the default training radius of 200 (the Gaussian kernel is ``exp(-50)`` there)."""


def nn_distances(coords: np.ndarray, sections: np.ndarray | None = None) -> np.ndarray:
    """Distance from every cell to its nearest other cell (in the same section).

    Parameters
    ----------
    coords : (N, D) float
        Coordinates; the first two columns are used.
    sections : (N,) or None
        Section label of each cell; neighbours are searched within a section only.

    Returns
    -------
    (N,) float64
        NaN for a cell alone in its section.
    """
    from scipy.spatial import cKDTree

    xy = np.asarray(coords, dtype=np.float64)[:, :2]
    out = np.full(xy.shape[0], np.nan)
    groups = [np.arange(xy.shape[0])] if sections is None else [
        np.flatnonzero(sections == s) for s in pd_unique(sections)]
    for idx in groups:
        if idx.size < 2:
            continue
        d, _ = cKDTree(xy[idx]).query(xy[idx], k=2)
        out[idx] = d[:, 1]
    return out


def pd_unique(values: np.ndarray) -> list[object]:
    """Unique values in order of first appearance."""
    import pandas as pd

    return list(pd.unique(np.asarray(values, dtype=object)))


def median_nn_distance(coords: np.ndarray, sections: np.ndarray | None = None) -> float:
    """Median of :func:`nn_distances` over the cells that have a neighbour (NaN if none has)."""
    d = nn_distances(coords, sections)
    d = d[np.isfinite(d)]
    return float(np.median(d)) if d.size else math.nan


def rescale_factor(median_nn: float, cell_size: float = DEFAULT_CELL_SIZE, *, where: str = "obsm") -> float:
    """``cell_size / median_nn``; an error when the spacing is 0 or undefined."""
    if cell_size <= 0 or not math.isfinite(cell_size):
        raise InputError(f"cell size {cell_size} must be a positive number (--cell-size)")
    if not math.isfinite(median_nn) or median_nn <= 0:
        raise InputError(f"{where}: the median nearest-neighbour distance is {median_nn:g} (most cells share "
                         "their coordinates with another cell), so the coordinates cannot be rescaled; "
                         "fix the coordinates or pass --no-rescale")
    return float(cell_size) / median_nn


@dataclass
class SectionLayout:
    """Where each section went: ``new = old + offsets[section]`` (x, y)."""

    offsets: dict[str, tuple[float, float]] = field(default_factory=dict)
    n_cols: int = 1
    gap: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return {"n_cols": self.n_cols, "gap": self.gap,
                "sections": list(self.offsets),
                "offsets": np.array([self.offsets[s] for s in self.offsets], dtype=np.float64).reshape(-1, 2)}


def layout_sections(coords: np.ndarray, sections: np.ndarray, *, gap: float,
                    n_cols: int | None = None) -> tuple[np.ndarray, SectionLayout]:
    """Translate each section onto a grid cell so that sections never overlap.

    Sections keep their shape and orientation; section ``s`` (in order of first appearance) goes to
    grid cell ``(row, col) = divmod(s, n_cols)``, ``n_cols = ceil(sqrt(S))``. Every grid cell is as wide
    and as tall as the largest section plus ``gap``, and a section's bounding box starts at its grid
    cell's corner, so the boxes of two sections are at least ``gap`` apart.

    Parameters
    ----------
    coords : (N, D) float
        Coordinates; only the first two columns move.
    sections : (N,)
        Section label of each cell.
    gap
        Minimum distance between the bounding boxes of two sections (coordinate units).

    Returns
    -------
    (coords, layout)
        New coordinates (a copy) and the offsets per section.
    """
    if not (gap >= 0 and math.isfinite(gap)):
        raise InputError(f"section gap {gap} must be a non-negative number (--section-gap)")
    xy = np.array(coords, dtype=np.float64, copy=True)
    labels = pd_unique(sections)
    S = len(labels)
    cols = n_cols or max(1, math.ceil(math.sqrt(S)))
    idxs = [np.flatnonzero(sections == s) for s in labels]
    lo = np.array([xy[i, :2].min(axis=0) for i in idxs])
    hi = np.array([xy[i, :2].max(axis=0) for i in idxs])
    w, h = (hi - lo).max(axis=0)
    layout = SectionLayout(n_cols=cols, gap=float(gap))
    for s, (lab, idx) in enumerate(zip(labels, idxs)):
        row, col = divmod(s, cols)
        origin = np.array([col * (w + gap), row * (h + gap)])
        off = origin - lo[s]
        xy[idx, :2] += off
        layout.offsets[str(lab)] = (float(off[0]), float(off[1]))
    return xy, layout


def bounding_boxes(coords: np.ndarray, sections: np.ndarray) -> dict[str, tuple[float, float, float, float]]:
    """``{section: (xmin, ymin, xmax, ymax)}``."""
    out: dict[str, tuple[float, float, float, float]] = {}
    for s in pd_unique(sections):
        p = np.asarray(coords)[sections == s, :2]
        out[str(s)] = (float(p[:, 0].min()), float(p[:, 1].min()), float(p[:, 0].max()), float(p[:, 1].max()))
    return out

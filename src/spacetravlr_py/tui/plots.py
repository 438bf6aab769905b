"""Text plots for the terminal: bars with eighth-block resolution, a histogram, and a half-block map
of values on the tissue (two pixels per character cell, each with its own colour).

Plain numpy + Rich (no Textual), so the plots are testable on their own.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
from rich.text import Text

EIGHTHS = " ▏▎▍▌▋▊▉█"
COLUMN_EIGHTHS = " ▁▂▃▄▅▆▇█"
#: anchors of the viridis colour map (low → high), interpolated linearly in RGB
VIRIDIS = ((0x44, 0x01, 0x54), (0x3B, 0x52, 0x8B), (0x21, 0x91, 0x8C), (0x5E, 0xC9, 0x62), (0xFD, 0xE7, 0x25))


def bar(value: float, vmax: float, width: int) -> str:
    """A horizontal bar of ``value / vmax`` of ``width`` characters, in eighths of a character.

    Values ≤ 0 (or ``vmax`` ≤ 0) give an empty bar; values above ``vmax`` a full one.
    """
    if width <= 0 or vmax <= 0 or not np.isfinite(value) or value <= 0:
        return " " * max(width, 0)
    eighths = int(round(min(value / vmax, 1.0) * width * 8))
    full, part = divmod(eighths, 8)
    s = "█" * full + (EIGHTHS[part] if part else "")
    return s.ljust(width)


def bar_lines(labels: Sequence[str], values: Sequence[float], width: int = 30, fmt: str = "{:.3g}") -> list[str]:
    """One ``label  bar  value`` line per item, bars scaled to the largest value."""
    if not labels:
        return []
    vmax = max((float(v) for v in values), default=0.0)
    lw = max(len(str(lab)) for lab in labels)
    return [f"{lab!s:<{lw}}  {bar(float(v), vmax, width)}  {fmt.format(v)}" for lab, v in zip(labels, values)]


def r2_histogram(values: Sequence[float], n_bins: int = 10) -> tuple[list[str], list[int]]:
    """Counts of R² values in ``n_bins`` equal bins over [0, 1] (1 included in the last bin), with a
    first bin ``< 0`` for negative values. Returns (bin labels, counts)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    inside = np.clip(v[v >= 0], 0.0, 1.0)
    counts, _ = np.histogram(inside, bins=edges)
    labels = ["   < 0"] + [f"{lo:.1f}–{hi:.1f}" for lo, hi in itertools.pairwise(edges)]
    return labels, [int((v < 0).sum()), *(int(c) for c in counts)]


def histogram_lines(values: Sequence[float], n_bins: int = 10, width: int = 24) -> list[str]:
    """The R² histogram as text lines, highest bin first (``0.9–1.0  ████▌  12``)."""
    labels, counts = r2_histogram(values, n_bins)
    vmax = max(counts) if counts else 0
    lines = [f"{lab}  {bar(c, vmax, width)}  {c}" for lab, c in zip(labels, counts)]
    return lines[::-1]


def column_histogram(values: Sequence[float], n_bins: int = 10, height: int = 4, col: int = 4) -> list[str]:
    """The R² histogram as vertical bars ``height`` characters tall (eighths of a character), one column
    of ``col`` characters per bin, with the bins' lower edges (``<0 .0 .1 … .9``) and counts below."""
    labels, counts = r2_histogram(values, n_bins)
    vmax = max(counts) if counts else 0
    levels = [int(round(c / vmax * height * 8)) if vmax else 0 for c in counts]
    lines = []
    for row in range(height, 0, -1):  # top line first
        cells = []
        for lv in levels:
            filled = lv - (row - 1) * 8  # eighths of this line that are filled
            ch = "█" if filled >= 8 else (COLUMN_EIGHTHS[filled] if filled > 0 else " ")
            cells.append((ch * (col - 1)).ljust(col))
        lines.append("".join(cells).rstrip())
    axis = ["<0"] + [f".{k}" if k < 10 else "1" for k in range(n_bins)] if n_bins == 10 else \
        ["<0"] + [lab.split("–")[0] for lab in labels[1:]]
    lines.append("".join(a.ljust(col) for a in axis).rstrip())
    lines.append("".join(_short_count(c).ljust(col) for c in counts).rstrip())
    return lines


def _short_count(n: int) -> str:
    return str(n) if n < 1000 else f"{n / 1000:.0f}k" if n < 999_500 else f"{n / 1e6:.0f}M"


def pixel_grid(coords: np.ndarray, values: np.ndarray, cols: int, rows: int) -> np.ndarray:
    """Mean of ``values`` of the cells falling in each pixel of a ``rows × cols`` grid (NaN: no cell).

    Parameters
    ----------
    coords : (N, 2) float
        x, y positions; the grid keeps their aspect ratio (square pixels) and puts larger y at the top.
    values : (N,) float
    cols, rows : int
        The largest grid allowed; one side is shortened to keep the aspect ratio.

    Returns
    -------
    (R, C) float64 with R ≤ rows and C ≤ cols.
    """
    x, y = coords[:, 0].astype(np.float64), coords[:, 1].astype(np.float64)
    xr = max(float(x.max() - x.min()), 1e-12)
    yr = max(float(y.max() - y.min()), 1e-12)
    size = max(xr / cols, yr / rows)  # pixel side in data units: the whole tissue fits
    nc = max(1, min(cols, int(np.ceil(xr / size - 1e-9))))
    nr = max(1, min(rows, int(np.ceil(yr / size - 1e-9))))
    ci = np.minimum(((x - x.min()) / size).astype(np.int64), nc - 1)
    ri = np.minimum(((y.max() - y) / size).astype(np.int64), nr - 1)  # top row = largest y
    flat = ri * nc + ci
    sums = np.bincount(flat, weights=values.astype(np.float64), minlength=nr * nc)
    n = np.bincount(flat, minlength=nr * nc)
    with np.errstate(invalid="ignore", divide="ignore"):
        grid = np.where(n > 0, sums / np.maximum(n, 1), np.nan)
    return grid.reshape(nr, nc)


def colour(frac: float) -> str:
    """Viridis colour of ``frac`` in [0, 1] as ``#rrggbb``."""
    f = min(max(float(frac), 0.0), 1.0) * (len(VIRIDIS) - 1)
    i = min(int(f), len(VIRIDIS) - 2)
    t = f - i
    rgb = [round(a + (b - a) * t) for a, b in zip(VIRIDIS[i], VIRIDIS[i + 1])]
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def halfblock(grid: np.ndarray, vmax: float | None = None) -> Text:
    """Draw a pixel grid with ``▀``/``▄`` characters: two pixels (top, bottom) per character cell.

    NaN pixels are left blank; colours are viridis of ``value / vmax`` (default: the grid's maximum).
    """
    g = np.asarray(grid, dtype=np.float64)
    if g.shape[0] % 2:
        g = np.vstack([g, np.full((1, g.shape[1]), np.nan)])
    top = float(np.nanmax(g)) if vmax is None and np.isfinite(g).any() else (vmax or 0.0)
    scale = top if top > 0 else 1.0
    out = Text()
    for r in range(0, g.shape[0], 2):
        for a, b in zip(g[r], g[r + 1]):
            if np.isnan(a) and np.isnan(b):
                out.append(" ")
            elif np.isnan(b):
                out.append("▀", style=colour(a / scale))
            elif np.isnan(a):
                out.append("▄", style=colour(b / scale))
            else:
                out.append("▀", style=f"{colour(a / scale)} on {colour(b / scale)}")
        out.append("\n")
    out.rstrip()
    return out


def spatial_map(coords: np.ndarray, values: np.ndarray, width: int = 48, height: int = 16,
                cells_per_pixel: float = 3.0) -> Text:
    """A half-block map of per-cell ``values`` on the tissue in at most ``width × height`` characters,
    with a colour legend line.

    The grid is no finer than about ``cells_per_pixel`` cells per pixel (a sparse tissue would otherwise
    show as scattered dots); each grid pixel is then drawn as a square block of screen pixels.
    """
    max_cols, max_rows = max(width, 1), max(2 * (height - 1), 2)  # one line for the legend
    n = max(len(values), 1)
    # the finest grid with about cells_per_pixel cells per pixel over the tissue's bounding box
    x, y = coords[:, 0], coords[:, 1]
    aspect = max(float(np.ptp(y)), 1e-12) / max(float(np.ptp(x)), 1e-12)
    cols = int(np.clip(np.sqrt(n / cells_per_pixel / aspect), 1, max_cols))
    rows = int(np.clip(cols * aspect, 1, max_rows))
    grid = pixel_grid(coords, values, cols, rows)
    k = max(1, min(max_cols // grid.shape[1], max_rows // grid.shape[0]))
    grid = np.kron(grid, np.ones((k, k)))  # nearest-neighbour upscaling
    vmax = float(np.nanmax(grid)) if np.isfinite(grid).any() else 0.0
    text = halfblock(grid, vmax)
    text.append("\n")
    text.append("0 ")
    for j in range(12):
        text.append("█", style=colour(j / 11))
    text.append(f" {vmax:.3g}")
    return text

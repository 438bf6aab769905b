"""Figures of screens and neighbour effects (re-exported by :mod:`spacetravlr_py.plotting`, i.e. ``st.pl``):
the top genes of a screen, its gene × cell type heat map, and the response of other cells against their
distance to a scoped perturbation. ``ax=``, ``show=``, ``save=`` as everywhere; each returns its Axes.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING

import numpy as np

from .plotting import _PALETTE, _figure, _finish

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

    from .perturb.neighbours import NeighbourEffects

ROLE_COLOURS = {"tf": "#1f77b4", "ligand": "#ff7f0e", "receptor": "#2ca02c"}


def screen_top(ranked: pd.DataFrame, *, n: int = 20, ax: Axes | None = None, show: bool | None = None,
               save: str | os.PathLike[str] | None = None, title: str | None = None) -> Axes:
    """The ``n`` genes of a screen with the largest impact (horizontal bars, coloured by the gene's first
    role: TF, ligand, receptor).

    ``ranked``: the table of :func:`spacetravlr_py.perturbation.screen.rank_scores` (``gene``, ``impact``,
    ``roles``).
    """
    fig, ax, own = _figure(ax)
    top = ranked.head(n).iloc[::-1]
    roles = top["roles"].fillna("").astype(str) if "roles" in top else None
    colours = ([ROLE_COLOURS.get(r.split(",")[0], "#7f7f7f") for r in roles] if roles is not None
               else ["#4c72b0"] * len(top))
    from matplotlib.patches import Patch

    ax.barh(top["gene"].astype(str), top["impact"].to_numpy(dtype=float), color=colours)
    if roles is not None:
        first = set(roles.str.split(",").str[0])
        handles = [Patch(color=c, label=role) for role, c in ROLE_COLOURS.items() if role in first]
        ax.legend(handles=handles, frameon=False, fontsize="small", loc="lower right", title="first role")
    ax.set_xlabel("impact: mean |Δ| over all cells and all other genes")
    ax.tick_params(axis="y", labelsize="small" if len(top) <= 25 else "x-small")
    ax.set_title(title or f"top {len(top)} genes by impact")
    _finish(fig, ax, show, save, own)
    return ax


def screen_heatmap(cell_types: pd.DataFrame, *, n: int = 30, ax: Axes | None = None, show: bool | None = None,
                   save: str | os.PathLike[str] | None = None, title: str | None = None) -> Axes:
    """Mean |Δ| per cell type of the first ``n`` genes of a screen (rows in rank order, columns cell types).

    ``cell_types``: the table of :func:`spacetravlr_py.perturbation.screen.cell_type_table`.
    """
    fig, ax, own = _figure(ax)
    M = cell_types.head(n)
    vals = M.to_numpy(dtype=float)
    im = ax.imshow(np.ma.masked_invalid(vals), cmap="viridis", aspect="auto")
    ax.set_xticks(np.arange(M.shape[1]))
    ax.set_xticklabels([str(c) for c in M.columns], rotation=45, ha="right")
    ax.set_yticks(np.arange(M.shape[0]))
    ax.set_yticklabels([str(g) for g in M.index], fontsize="small" if M.shape[0] <= 30 else "x-small")
    fig.colorbar(im, ax=ax, shrink=0.7, label="mean |Δ| per cell")
    ax.set_xlabel("cell type")
    ax.set_title(title or f"impact per cell type (top {M.shape[0]} genes)")
    _finish(fig, ax, show, save, own)
    return ax


def neighbour_effects(effects: NeighbourEffects, *, ax: Axes | None = None, show: bool | None = None,
                      save: str | os.PathLike[str] | None = None, title: str | None = None,
                      log: bool = True) -> Axes:
    """Response of the cells outside a perturbation's scope against their distance to it: one line per
    cell type (mean |Δ| of the cells of each distance bin, at the bins' mean distance).

    ``log``: a logarithmic y axis (zero responses are left out there).
    """
    fig, ax, own = _figure(ax)
    bd = effects.by_distance
    order = effects.by_type["cell_type"].tolist()
    for k, ct in enumerate(order):
        d = bd[bd["cell_type"] == ct].sort_values("bin")
        y = d["mean_abs_delta"].to_numpy(dtype=float)
        x = d["d_mean"].to_numpy(dtype=float)
        keep = y > 0 if log else np.ones_like(y, dtype=bool)
        quiet = not (y > 0).any()  # drawn nowhere on a log axis: say so in the legend
        ax.plot(x[keep], y[keep], "o-", color=_PALETTE[k % len(_PALETTE)], ms=4,
                label=f"{ct} (no change)" if quiet else f"{ct}")
    for e in effects.edges[1:-1]:
        if math.isfinite(e):
            ax.axvline(e, color="#ddd", lw=0.6, zorder=0)
    if log and (bd["mean_abs_delta"] > 0).any():
        ax.set_yscale("log")
    ax.set_xlabel("distance to the nearest perturbed cell")
    ax.set_ylabel("mean |Δ| per cell (other genes)")
    ax.legend(frameon=False, fontsize="small", title="cell type (ranked)")
    head = ", ".join(f"{g}→{v:g}" for g, v in zip(effects.targets, effects.desired))
    ax.set_title(title or f"{head} in {effects.scope_label}: the other cells by distance")
    _finish(fig, ax, show, save, own)
    return ax


__all__ = ["neighbour_effects", "screen_heatmap", "screen_top"]

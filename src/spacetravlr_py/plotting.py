"""matplotlib figures in the scanpy style: every function takes ``ax=``, ``show=``, ``save=`` and returns
the Axes (or the Figure for multi-panel figures).

* :func:`transition_field` — arrows (quiver) or streamlines of a transition field over the embedding
  scatter coloured by cell type (works with UMAP or spatial coordinates as the embedding).
* :func:`spatial_delta` — the simulated change of one gene (or mean |Δ| over genes) on the tissue.
* :func:`perturbation_summary` — top affected genes and per-cluster impact of a perturbation.
* run figures (:mod:`.plotting_runs`): :func:`cell_types`, :func:`r2_by_cluster`, :func:`gene_r2`,
  :func:`modulator_families`, :func:`gene_seconds`, :func:`interaction_heatmap`;
* screens and neighbours (:mod:`.plotting_effects`): :func:`screen_top`, :func:`screen_heatmap`,
  :func:`neighbour_effects`.
* :func:`cells` — the cells on an embedding coloured by cluster / cell type or by a value per cell.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from .perturbation.propagate import PerturbResult
    from .transitions.field import GridField

_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
            "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94",
            "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5"]


def _pyplot() -> Any:
    import matplotlib

    if os.environ.get("MPLBACKEND") is None and not os.environ.get("DISPLAY"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _figure(ax: Any) -> tuple[Any, Any, bool]:
    """``(figure, axes, own)``: a new 6.5 × 5.5 in figure when ``ax`` is None (``own``), else ``ax``'s."""
    if ax is None:
        fig, ax = _pyplot().subplots(figsize=(6.5, 5.5))
        return fig, ax, True
    return ax.figure, ax, False


def _finish(fig: Any, ax: Any, show: bool | None, save: str | os.PathLike[str] | None, own: bool) -> None:
    plt = _pyplot()
    if save:
        from .io.atomic import atomic_write

        path = os.fspath(save)
        fmt = os.path.splitext(path)[1].lstrip(".") or "png"
        atomic_write(path, lambda p: fig.savefig(p, dpi=150, bbox_inches="tight", format=fmt))
    if show:
        plt.show()
    elif own and (save or show is False):
        plt.close(fig)


def _cluster_codes(clusters: Any, labels: Sequence[str] | None) -> tuple[np.ndarray, list[str]]:
    """Integer cluster ids and their labels; string / categorical clusters are coded in sorted order."""
    c = np.asarray(clusters)
    if c.dtype.kind in "iu":
        labs = list(labels) if labels is not None else [str(k) for k in range(int(c.max()) + 1 if c.size else 0)]
        return c.astype(np.int64), [str(x) for x in labs]
    if labels is not None:
        index = {str(lab): k for k, lab in enumerate(labels)}
        return np.array([index.get(str(x), -1) for x in c], dtype=np.int64), [str(x) for x in labels]
    uniq, codes = np.unique(c.astype(str), return_inverse=True)
    return codes.astype(np.int64), [str(x) for x in uniq]


def _scatter_clusters(ax: Any, coords: np.ndarray, clusters: Any, labels: Sequence[str] | None,
                      size: float, legend: bool) -> None:
    if clusters is None:
        ax.scatter(coords[:, 0], coords[:, 1], s=size, c="#bbbbbb", linewidths=0, rasterized=True)
        return
    codes, labs = _cluster_codes(clusters, labels)
    if len(codes) != len(coords):
        raise ValueError(f"clusters has {len(codes)} entries for {len(coords)} cells")
    for k, lab in enumerate(labs):
        m = codes == k
        if m.any():
            ax.scatter(coords[m, 0], coords[m, 1], s=size, c=_PALETTE[k % len(_PALETTE)], linewidths=0,
                       label=str(lab), alpha=0.6, rasterized=True)
    if legend and len(labs):
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, markerscale=max(1.0, 12 / size),
                  fontsize="small")


def transition_field(coords: np.ndarray, grid: GridField, *, clusters: Any = None,
                     cluster_labels: Sequence[str] | None = None, kind: str = "quiver",
                     ax: Axes | None = None, show: bool | None = None, save: str | os.PathLike[str] | None = None,
                     title: str | None = None, basis: str = "UMAP", point_size: float = 6.0,
                     legend: bool = True) -> Axes:
    """Arrows (``kind="quiver"``) or streamlines (``"stream"``) of a grid field over the cells.

    Parameters
    ----------
    coords : (N, 2) array
        The embedding the field was computed on (UMAP or spatial coordinates).
    grid : GridField
        From :func:`spacetravlr_py.transitions.grid_field` (``TransitionField.grid``).
    clusters, cluster_labels : colour cells by cluster: integer ids (``cluster_labels[k]`` names id k), or
        labels themselves (strings / a categorical, e.g. ``adata.obs["louvain"]``).
    kind : ``"quiver"`` (one arrow per shown bin, lengths in embedding units as in the grid) or
        ``"stream"`` (streamlines, width ∝ speed).
    """
    if kind not in ("quiver", "stream"):
        raise ValueError(f"kind must be 'quiver' or 'stream', got {kind!r}")
    fig, ax, own = _figure(ax)
    coords = np.asarray(coords)
    _scatter_clusters(ax, coords, clusters, cluster_labels, point_size, legend)
    X, Y = np.meshgrid(grid.x, grid.y)
    if kind == "quiver":
        m = grid.mask & np.isfinite(grid.u) & np.isfinite(grid.v)
        if m.any():
            ax.quiver(X[m], Y[m], grid.u[m], grid.v[m], angles="xy", scale_units="xy", scale=1.0, width=0.004,
                      color="black", zorder=3)
    elif kind == "stream":
        u = np.where(grid.mask, np.nan_to_num(grid.u), 0.0)
        v = np.where(grid.mask, np.nan_to_num(grid.v), 0.0)
        speed = np.hypot(u, v)
        if speed.max() > 0 and len(grid.x) > 1 and len(grid.y) > 1:
            lw = 0.5 + 2.0 * speed / speed.max()
            ax.streamplot(grid.x, grid.y, u, v, color="black", linewidth=lw, density=1.2, arrowsize=1.0,
                          zorder=3)
    ax.set_xlabel(f"{basis}1")
    ax.set_ylabel(f"{basis}2")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_aspect("equal", adjustable="datalim")
    if title:
        ax.set_title(title)
    _finish(fig, ax, show, save, own)
    return ax


def cells(coords: np.ndarray, *, values: np.ndarray | None = None, clusters: Any = None,
          cluster_labels: Sequence[str] | None = None, label: str = "", cmap: str = "viridis",
          centred: bool = False, ax: Axes | None = None, show: bool | None = None,
          save: str | os.PathLike[str] | None = None, title: str | None = None, basis: str = "spatial",
          point_size: float = 6.0, legend: bool = True) -> Axes:
    """The cells on an embedding, coloured by ``values`` (a colour bar labelled ``label``) or by ``clusters``.

    Parameters
    ----------
    coords : (N, 2) array
        Spatial coordinates or a UMAP.
    values : (N,) array, optional
        A number per cell (expression, a coefficient, Δ); ``centred`` puts 0 in the middle of ``cmap``
        (limits ±max|value|), else the limits are the 0.5 / 99.5 percentiles so outliers do not wash it out.
    clusters, cluster_labels : as in :func:`transition_field` (used when ``values`` is None).
    basis : axis label stem (``"spatial"`` → x / y; ``"UMAP"`` → UMAP1 / UMAP2).
    """
    coords = np.asarray(coords)
    fig, ax, own = _figure(ax)
    if values is not None:
        v = np.asarray(values, dtype=float)
        if v.shape != (coords.shape[0],):
            raise ValueError(f"values has shape {v.shape} for {coords.shape[0]} cells")
        finite = v[np.isfinite(v)]
        if centred:
            lim = float(np.abs(finite).max()) if finite.size else 1.0
            lo, hi = -(lim or 1.0), lim or 1.0
        else:
            lo, hi = (np.percentile(finite, [0.5, 99.5]) if finite.size else (0.0, 1.0))
            hi = hi if hi > lo else lo + 1e-9
        sc = ax.scatter(coords[:, 0], coords[:, 1], c=v, s=point_size, cmap=cmap, vmin=lo, vmax=hi, linewidths=0,
                        rasterized=True)
        fig.colorbar(sc, ax=ax, shrink=0.7, label=label)
    else:
        _scatter_clusters(ax, coords, clusters, cluster_labels, point_size, legend)
    spatial = basis.lower() == "spatial"
    ax.set_xlabel("x" if spatial else f"{basis}1")
    ax.set_ylabel("y" if spatial else f"{basis}2")
    if not spatial:
        ax.set_xticks([])
        ax.set_yticks([])
    ax.set_aspect("equal", adjustable="datalim")
    if title:
        ax.set_title(title)
    _finish(fig, ax, show, save, own)
    return ax


def spatial_delta(coords: np.ndarray, delta: np.ndarray, *, var_names: Sequence[str] | None = None,
                  gene: str | None = None, ax: Axes | None = None, show: bool | None = None,
                  save: str | os.PathLike[str] | None = None, title: str | None = None, point_size: float = 8.0,
                  cmap: str = "RdBu_r", scope: np.ndarray | None = None) -> Axes:
    """The simulated change on the tissue: Δ of ``gene`` (diverging colours), or mean |Δ| over genes.

    ``scope`` (boolean mask) outlines the perturbed cells.
    """
    D = np.asarray(delta)
    coords = np.asarray(coords)
    if D.ndim != 2 or D.shape[0] != coords.shape[0]:
        raise ValueError(f"delta {D.shape} does not match coords {coords.shape}")
    col = None
    if gene is not None:
        if var_names is None:
            raise ValueError("var_names are needed to pick a gene")
        names = list(var_names)
        if gene not in names:
            raise ValueError(f"gene {gene!r} is not in var_names")
        col = names.index(gene)
    fig, ax, own = _figure(ax)
    if col is not None:
        vals = D[:, col]
        lim = float(np.abs(vals).max()) or 1.0
        sc = ax.scatter(coords[:, 0], coords[:, 1], c=vals, s=point_size, cmap=cmap, vmin=-lim, vmax=lim,
                        linewidths=0, rasterized=True)
        label = f"Δ {gene}"
    else:
        vals = np.abs(D).mean(axis=1)
        sc = ax.scatter(coords[:, 0], coords[:, 1], c=vals, s=point_size, cmap="viridis", linewidths=0,
                        rasterized=True)
        label = "mean |Δ| over genes"
    if scope is not None and 0 < int(np.sum(scope)) < len(scope):
        m = np.asarray(scope, dtype=bool)
        ax.scatter(coords[m, 0], coords[m, 1], s=point_size * 1.8, facecolors="none", edgecolors="black",
                   linewidths=0.3, rasterized=True)
    fig.colorbar(sc, ax=ax, shrink=0.7, label=label)
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    if title:
        ax.set_title(title)
    _finish(fig, ax, show, save, own)
    return ax


def perturbation_summary(result: PerturbResult, *, n_top: int = 15, ax: Sequence[Axes] | None = None,
                         show: bool | None = None, save: str | os.PathLike[str] | None = None,
                         title: str | None = None) -> Figure:
    """Two panels: top affected genes (mean |Δ|, signed by the mean direction) and per-cluster impact.

    ``ax``: two Axes to draw into (default: a new 1 × 2 figure). Returns the Figure.
    """
    plt = _pyplot()
    own = ax is None
    if ax is None:
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.5), gridspec_kw={"width_ratios": [1.4, 1]})
    else:
        if len(ax) != 2:
            raise ValueError(f"ax must be two Axes (genes, clusters), got {len(ax)}")
        a1, a2 = ax
        fig = a1.figure
    top = result.top_genes(n_top)
    if top:
        names = [g for g, _ in top][::-1]
        mags = np.array([v for _, v in top])[::-1]
        signs = np.array([np.sign(result.delta_of(g).mean()) for g in names])
        colors = np.where(signs >= 0, "#d62728", "#1f77b4")
        a1.barh(names, mags, color=colors)
        a1.set_xlabel("mean |Δ| (red: up on average, blue: down)")
    else:
        a1.text(0.5, 0.5, "no gene changed", ha="center", va="center", transform=a1.transAxes)
    a1.set_title("most affected genes")
    imp = result.cluster_impact()
    a2.bar(list(imp), list(imp.values()), color=[_PALETTE[k % len(_PALETTE)] for k in range(len(imp))])
    a2.set_ylabel("mean |Δ| per cell")
    a2.set_title("impact per cluster")
    a2.tick_params(axis="x", rotation=45)
    head = ", ".join(f"{g}→{v:g}" for g, v in zip(result.targets, result.desired))
    label = title or f"{head} ({result.scope_label}, {result.n_propagation} steps)"
    if own:
        fig.suptitle(label)
        fig.tight_layout()
    else:
        a1.set_title(f"{label}\nmost affected genes", fontsize="medium")
    _finish(fig, a1, show, save, own)
    return fig


# the figures of runs, screens and neighbour effects live in two modules of their own (same conventions,
# the helpers above); reached through this module lazily, so that they can import it
_MORE: dict[str, str] = {
    **{n: "plotting_runs" for n in ("cell_types", "gene_r2", "gene_seconds", "interaction_heatmap",
                                     "modulator_families", "r2_by_cluster")},
    **{n: "plotting_effects" for n in ("neighbour_effects", "screen_heatmap", "screen_top")},
}

__all__ = ["perturbation_summary", "spatial_delta", "transition_field", *_MORE]


def __getattr__(name: str) -> Any:
    mod = _MORE.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__package__}.{mod}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_MORE))

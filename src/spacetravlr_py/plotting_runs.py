"""Figures of a training run (re-exported by :mod:`spacetravlr_py.plotting`, i.e. ``st.pl``): the cells by
cell type, R² per cluster, genes by R², modulators by family, training time per gene and the strongest
interactions per cell type. Same conventions as the other figures: ``ax=``, ``show=``, ``save=``; each
returns its Axes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .naming import KIND_NAMES
from .plotting import _figure, _finish, _scatter_clusters

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

FAMILY_COLOURS = {"tf": "#1f77b4", "lr": "#ff7f0e", "tfl": "#2ca02c", "extra": "#7f7f7f"}
FAMILY_NAMES = {"tf": "TF", "lr": "ligand–receptor", "tfl": "ligand–TF", "extra": "extra"}


def cell_types(coords: np.ndarray, clusters: Any, cluster_labels: Sequence[str] | None = None, *,
               basis: str = "spatial", ax: Axes | None = None, show: bool | None = None,
               save: str | os.PathLike[str] | None = None, title: str | None = None,
               point_size: float | None = None) -> Axes:
    """Cells at ``coords`` (the tissue or a UMAP) coloured by cluster.

    ``point_size`` defaults to a size that keeps 100k cells readable (smaller for more cells).
    """
    fig, ax, own = _figure(ax)
    xy = np.asarray(coords)
    size = point_size if point_size is not None else float(np.clip(4000.0 / max(len(xy), 1), 0.3, 12.0))
    _scatter_clusters(ax, xy, clusters, cluster_labels, size, legend=True)
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel(f"{basis} 1" if basis != "spatial" else "x")
    ax.set_ylabel(f"{basis} 2" if basis != "spatial" else "y")
    if basis != "spatial":
        ax.set_xticks([])
        ax.set_yticks([])
    ax.set_title(title or ("the tissue by cell type" if basis == "spatial" else f"{basis} by cell type"))
    _finish(fig, ax, show, save, own)
    return ax


def r2_by_cluster(fits: pd.DataFrame, *, ax: Axes | None = None, show: bool | None = None,
                  save: str | os.PathLike[str] | None = None, title: str | None = None) -> Axes:
    """Box plots of R² per cluster over the gene models the R² gate kept: in-sample, and in full mode
    (columns ``heldout_r2_lasso`` / ``heldout_r2_cnn`` present) the held-out R² of lasso and CNN beside it.

    ``fits``: one row per (gene, cluster) model with columns ``label``, ``r2``, ``kept`` (and optionally
    the held-out columns), as :attr:`spacetravlr_py.report.RunFacts.fits`.
    """
    fig, ax, own = _figure(ax)
    kept = fits[fits["kept"]]
    labels = list(dict.fromkeys(fits["label"].tolist()))
    series = [("in-sample", "r2", "#4c72b0")]
    for col, name, colour in (("heldout_r2_lasso", "held-out, lasso", "#dd8452"),
                              ("heldout_r2_cnn", "held-out, CNN", "#55a868")):
        if col in kept and kept[col].notna().any():
            series.append((name, col, colour))
    width = 0.8 / len(series)
    for s, (name, col, colour) in enumerate(series):
        data = [kept.loc[kept["label"] == lab, col].dropna().to_numpy() for lab in labels]
        pos = np.arange(len(labels)) + (s - (len(series) - 1) / 2) * width
        show_at = [i for i, d in enumerate(data) if d.size]
        if show_at:
            bp = ax.boxplot([data[i] for i in show_at], positions=pos[show_at], widths=width * 0.85,
                            patch_artist=True, showfliers=True, flierprops={"markersize": 2},
                            medianprops={"color": "black"})
            for b in bp["boxes"]:
                b.set_facecolor(colour)
                b.set_alpha(0.75)
        ax.plot([], [], "s", color=colour, label=name)
    ax.set_xticks(np.arange(len(labels)))
    ax.set_xticklabels(labels, rotation=45 if len(labels) > 6 else 0, ha="right" if len(labels) > 6 else "center")
    ax.set_ylabel("R² of the kept gene models")
    ax.set_xlabel("cluster")
    ax.axhline(0.0, color="#999", lw=0.6)
    if len(series) > 1:
        ax.legend(frameon=False, fontsize="small")
    ax.set_title(title or "R² per cluster")
    _finish(fig, ax, show, save, own)
    return ax


def gene_r2(genes: pd.DataFrame, *, n_worst: int = 10, ax: Axes | None = None, show: bool | None = None,
            save: str | os.PathLike[str] | None = None, title: str | None = None) -> Axes:
    """Trained genes ranked by mean R² (over their kept cluster models), the ``n_worst`` named.

    ``genes``: columns ``gene`` and ``mean_r2`` (NaN rows are left out).
    """
    fig, ax, own = _figure(ax)
    d = genes.dropna(subset=["mean_r2"]).sort_values("mean_r2", kind="stable")
    y = d["mean_r2"].to_numpy()
    x = np.arange(1, len(y) + 1)
    ax.plot(x, y, ".", ms=max(1.0, min(5.0, 400 / max(len(y), 1))), color="#4c72b0")
    for i in range(min(n_worst, len(y))):  # names alternate right / further right so neighbours do not collide
        ax.annotate(str(d["gene"].iloc[i]), (x[i], y[i]), textcoords="offset points", xytext=(6 + 40 * (i % 2), -3),
                    fontsize="x-small", color="#c44e52",
                    arrowprops={"arrowstyle": "-", "color": "#c44e52", "lw": 0.4} if i % 2 else None)
        ax.plot(x[i], y[i], "o", ms=4, color="#c44e52")
    ax.set_xlabel("genes, worst to best")
    ax.set_ylabel("mean R² over kept clusters")
    ax.set_title(title or f"genes by R² ({len(y)} trained; worst {min(n_worst, len(y))} named)")
    _finish(fig, ax, show, save, own)
    return ax


def modulator_families(genes: pd.DataFrame, *, ax: Axes | None = None, show: bool | None = None,
                       save: str | os.PathLike[str] | None = None, title: str | None = None) -> Axes:
    """Modulators per gene by family, genes sorted by their total: stacked TF / L–R / L–TF / extra.

    ``genes``: columns ``tf``, ``lr``, ``tfl``, ``extra`` (counts per gene).
    """
    fig, ax, own = _figure(ax)
    fams = [k for k in KIND_NAMES if k in genes]
    counts = genes[fams].to_numpy(dtype=float)
    order = np.argsort(counts.sum(axis=1), kind="stable")
    counts = counts[order]
    x = np.arange(1, len(counts) + 1)
    ax.stackplot(x, counts.T, labels=[FAMILY_NAMES[k] for k in fams], colors=[FAMILY_COLOURS[k] for k in fams],
                 alpha=0.85, step="mid")
    ax.set_xlabel("genes, sorted by number of modulators")
    ax.set_ylabel("modulators")
    ax.legend(loc="upper left", frameon=False, fontsize="small")
    ax.set_title(title or "modulators per gene by family")
    _finish(fig, ax, show, save, own)
    return ax


def gene_seconds(seconds: Sequence[float] | np.ndarray, *, ax: Axes | None = None, show: bool | None = None,
                 save: str | os.PathLike[str] | None = None, title: str | None = None) -> Axes:
    """Histogram of the training time per gene (log-spaced bins)."""
    fig, ax, own = _figure(ax)
    s = np.asarray(seconds, dtype=float)
    s = s[np.isfinite(s) & (s > 0)]
    if s.size:
        lo, hi = float(s.min()), float(s.max())
        bins = np.geomspace(lo, hi * 1.0001, 30).tolist() if hi > lo else 10
        ax.hist(s, bins=bins, color="#8172b2")
        ax.set_xscale("log")
    ax.set_xlabel("seconds per gene (log scale)")
    ax.set_ylabel("genes")
    ax.set_title(title or "training time per gene")
    _finish(fig, ax, show, save, own)
    return ax


def interaction_heatmap(interactions: pd.DataFrame, *, n_per_type: int = 5, ax: Axes | None = None,
                        show: bool | None = None, save: str | os.PathLike[str] | None = None,
                        title: str | None = None) -> Axes:
    """The strongest interactions of each cell type (``n_per_type`` by |value|) as a heat map of their
    aggregated β in every cell type (rows ``modulator → target``, columns cell types).

    ``interactions``: the table of :func:`spacetravlr_py.betadata.collect_interactions`.
    """
    fig, ax, own = _figure(ax)
    df = interactions.assign(edge=interactions["modulator"].astype(str) + " → " + interactions["target"].astype(str))
    types = sorted(set(df["cell_type"].tolist()), key=str)
    top = (df.assign(_a=df["value"].abs()).sort_values("_a", ascending=False, kind="stable")
           .groupby("cell_type", sort=False).head(n_per_type))
    edges = list(dict.fromkeys(e for ct in types for e in top.loc[top["cell_type"] == ct, "edge"].tolist()))
    M = (df[df["edge"].isin(edges)].pivot_table(index="edge", columns="cell_type", values="value", aggfunc="first")
         .reindex(index=edges, columns=types))
    vals = M.to_numpy(dtype=float)
    lim = float(np.nanmax(np.abs(vals))) if np.isfinite(vals).any() else 1.0
    import matplotlib

    # a coefficient that is exactly zero (left out of the table) is grey, not white
    cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="#c8c8c8")
    im = ax.imshow(np.ma.masked_invalid(vals), cmap=cmap, vmin=-lim, vmax=lim, aspect="auto")
    ax.set_xticks(np.arange(len(types)))
    ax.set_xticklabels(types, rotation=45, ha="right")
    ax.set_yticks(np.arange(len(edges)))
    ax.set_yticklabels(edges, fontsize="x-small" if len(edges) > 25 else "small")
    fig.colorbar(im, ax=ax, shrink=0.6, label="aggregated β (grey: zero)")
    ax.set_title(title or f"strongest interactions per cell type (top {n_per_type} each)")
    _finish(fig, ax, show, save, own)
    return ax


__all__ = ["FAMILY_COLOURS", "cell_types", "gene_r2", "gene_seconds", "interaction_heatmap", "modulator_families",
           "r2_by_cluster"]

"""The HTML report of a training run: ``spacetravlr run-summary`` and :func:`write_run_summary`.

One self-contained file (every figure an inlined PNG, no script, nothing fetched): the dataset and its
clusters, the tissue and the UMAP by cell type, R² per cluster (in-sample; held-out in full mode), genes by
R² with the worst listed, modulators per gene by family, the strongest interactions per cell type, timings
and throughput, warnings, failed and orphaned genes with their reasons, screens of the run and the
configuration.

>>> import spacetravlr_py as st
>>> st.report.write_run_summary("runs/a", screens=["runs/a/screen"])   # doctest: +SKIP
PosixPath('runs/a/spacetravlr_run_summary.html')
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import _keys
from ..io.atomic import atomic_write_text
from ..naming import KIND_NAMES
from ..rundir import RunDir
from .facts import RunFacts, gather_run_facts
from .html import Figures, Section, esc, frame_table, page, path_code, table, warn

if TYPE_CHECKING:
    import pandas as pd

N_WORST = 15
"""Genes listed by name in the worst-R² table."""
N_INTERACTIONS = 8
"""Interactions listed per cell type."""


def _pl() -> Any:
    from .. import plotting

    return plotting


def _new_axes(w: float = 6.5, h: float = 4.5) -> tuple[Any, Any]:
    return _pl()._pyplot().subplots(figsize=(w, h))


def _overview(f: RunFacts) -> str:
    m = f.manifest
    r2 = f.genes["mean_r2"].dropna()
    rows: list[tuple[object, ...]] = [
        ("run folder", str(f.run_dir.resolve())), ("training mode", f.mode),
        ("status", m.status if m else "unknown (no manifest)"),
        ("dataset", f"{f.tissue.n_cells:,} cells × {f.tissue.n_genes:,} genes, {f.tissue.n_clusters} clusters"),
        ("genes", ", ".join(f"{f.count(s):,} {s}" for s in ("done", "orphan", "failed", "unfinished"))),
        ("mean R² of trained genes", float(r2.mean()) if len(r2) else None),
        ("total time (s)", (m.timings.get("total_s") if m else None)),
    ]
    if m and m.started:
        rows.append(("started / finished", f"{m.started} / {m.finished or '—'}"))
    return table(rows)


def _dataset(f: RunFacts, figs: Figures) -> Section:
    t = f.tissue
    info = table([("file", f.h5ad), ("cells", t.n_cells), ("genes", t.n_genes), ("layer", t.layer or "X"),
                  ("spatial key", f"obsm['{t.spatial_key}']"), ("cluster column", t.cluster_annot),
                  ("UMAP", "yes" if t.umap is not None else "no")])
    fits = f.fits
    rows = []
    for k, (lab, n) in enumerate(zip(t.cluster_labels, t.cluster_sizes())):
        sub = fits[fits["label"] == lab]
        kept = sub[sub["kept"]]
        rows.append((k, lab, int(n), 100.0 * n / max(t.n_cells, 1), int(len(kept)),
                     float(kept["r2"].median()) if len(kept) else None))
    clusters = table(rows, ("id", "label", "cells", "% of cells", "gene models kept", "median R² (kept)"), digits=3)
    plots = [figs.img(_pl().cell_types(t.coords, t.clusters, t.cluster_labels, ax=_new_axes(5.4, 4.5)[1],
                                       show=False).figure, "tissue", "The tissue coloured by cell type.")]
    if t.umap is not None:
        plots.append(figs.img(_pl().cell_types(t.umap, t.clusters, t.cluster_labels, basis="UMAP",
                                               ax=_new_axes(5.4, 4.5)[1], show=False).figure,
                              "umap", "The UMAP coloured by cell type."))
    body = info + clusters + "<div class='cols'>" + "".join(plots) + "</div>"
    return Section("dataset", "Dataset and clusters", body)


def _fit(f: RunFacts, figs: Figures) -> Section:
    fits, genes = f.fits, f.genes
    if not len(fits):
        return Section("fit", "Model fit (R²)", "<p class='muted'>No per-cluster fits in the logs.</p>")
    kept = fits[fits["kept"]]
    head = ["cluster", "models kept", "median R² (in-sample)"]
    rows = []
    for lab in dict.fromkeys(fits["label"].tolist()):
        k = kept[kept["label"] == lab]
        row: list[object] = [lab, int(len(k)), float(k["r2"].median()) if len(k) else None]
        if f.full_mode:
            ch = k["choice"].astype(str)
            row += [float(k["heldout_r2_lasso"].median()) if k["heldout_r2_lasso"].notna().any() else None,
                    float(k["heldout_r2_cnn"].median()) if k["heldout_r2_cnn"].notna().any() else None,
                    100.0 * float((ch == "cnn").mean()) if len(k) else None]
        rows.append(tuple(row))
    if f.full_mode:
        head += ["median R² held-out (lasso)", "median R² held-out (CNN)", "% CNN chosen"]
    what = ("in-sample and, for full mode, on held-out cells (lasso vs CNN)" if f.full_mode else "in-sample")
    box = figs.img(_pl().r2_by_cluster(fits, ax=_new_axes(max(6.5, 0.9 * f.tissue.n_clusters + 3), 4.5)[1],
                                       show=False).figure, "r2_clusters",
                   f"R² of the gene models the R² gate kept, per cluster: {what}.")
    trained = genes[genes["status"] == "done"]
    ranked = figs.img(_pl().gene_r2(trained, n_worst=6, ax=_new_axes()[1], show=False).figure, "r2_genes",
                      "Trained genes ranked by mean R² over their kept cluster models; the worst are named.")
    worst = trained.dropna(subset=["mean_r2"]).sort_values("mean_r2", kind="stable").head(N_WORST)
    cols = ["gene", "mean_r2", *(["mean_heldout_r2"] if f.full_mode else []), "n_clusters_kept", "n_modulators",
            "seconds"]
    worst_t = frame_table(worst[cols], digits=3)
    body = (table(rows, head, digits=3) + "<div class='cols'>" + box + ranked + "</div>"
            + f"<h3>The {len(worst)} genes with the lowest mean R²</h3>" + worst_t)
    return Section("fit", "Model fit (R²)", body)


def _modulators(f: RunFacts, figs: Figures) -> Section:
    g = f.genes[f.genes["n_modulators"] > 0]
    if not len(g):
        return Section("modulators", "Modulators per gene", "<p class='muted'>No modulator counts recorded.</p>")
    names = {"tf": "TF", "lr": "ligand–receptor (L$R)", "tfl": "ligand–TF (L#TF)", "extra": "extra"}
    rows = [(names[k], int((g[k] > 0).sum()), float(g[k].median()), int(g[k].max()), int(g[k].sum()))
            for k in KIND_NAMES]
    rows.append(("all", len(g), float(g["n_modulators"].median()), int(g["n_modulators"].max()),
                 int(g["n_modulators"].sum())))
    fig = figs.img(_pl().modulator_families(g, ax=_new_axes()[1], show=False).figure, "modulators",
                   "Modulators per gene by family (genes sorted by their total).")
    return Section("modulators", "Modulators per gene",
                   table(rows, ("family", "genes using it", "median per gene", "max per gene", "total")) + fig)


def _interactions(f: RunFacts, figs: Figures, df: pd.DataFrame | None) -> Section:
    from ..betadata.interactions_run import top_per_cell_type

    title = "Strongest interactions per cell type"
    if df is None or not len(df):
        return Section("interactions", title, "<p class='muted'>No interaction table (no betadata, or skipped).</p>")
    heat = figs.img(_pl().interaction_heatmap(df, n_per_type=4, ax=_new_axes(7.5, 7.0)[1], show=False).figure,
                    "interactions", "Mean β of the strongest interactions of each cell type, in every cell type.")
    top = top_per_cell_type(df, N_INTERACTIONS)
    parts = []
    for ct, rows in top.groupby("cell_type", sort=True):
        parts.append(f"<div><h3>{esc(ct)} ({int(rows['n_cells'].iloc[0]):,} cells)</h3>"
                     + frame_table(rows[["modulator", "target", "value", "family"]], digits=3) + "</div>")
    intro = (f"<p>{len(df):,} non-zero (modulator, target, cell type) coefficients, mean β over each cell type's "
             f"cells; the {N_INTERACTIONS} largest |β| of each type below (<code>spacetravlr collect-interactions"
             "</code> writes the whole table).</p>")
    return Section("interactions", title, intro + heat + "<div class='cols'>" + "".join(parts) + "</div>")


def _timings(f: RunFacts, figs: Figures) -> Section:
    m = f.manifest
    t = dict(m.timings) if m else {}
    g = f.genes
    sec = g["seconds"].to_numpy(dtype=float)
    fin = sec[np.isfinite(sec)]
    done = f.count("done") + f.count("orphan")
    train_s = t.get("train_s")
    rows: list[tuple[object, ...]] = [(k.replace("_s", "").replace("_", " ") + " (s)", v) for k, v in t.items()
                                      if k != "per_gene_s" and isinstance(v, (int, float))]
    rows += [("worker processes", m.n_parallel if m else None),
             ("genes finished", done),
             ("genes per second (training)", done / train_s if train_s else None),
             ("cells × genes per second", f.tissue.n_cells * done / train_s if train_s else None),
             ("median / max seconds per gene", f"{np.median(fin):.3g} / {fin.max():.3g}" if fin.size else None)]
    slow = g.dropna(subset=["seconds"]).sort_values("seconds", ascending=False, kind="stable").head(5)
    body = table(rows, digits=4)
    if fin.size:
        body += figs.img(_pl().gene_seconds(fin, ax=_new_axes(6.0, 3.6)[1], show=False).figure, "seconds",
                         "Training time per gene (the first gene of a process includes JIT compilation).")
        body += "<h3>Slowest genes</h3>" + frame_table(slow[["gene", "seconds", "n_modulators", "status"]], digits=3)
    return Section("timings", "Timings and throughput", body)


def _problems(f: RunFacts) -> Section:
    g = f.genes
    parts = [warn(w) for w in f.warnings] or ["<p>No warnings.</p>"]
    for st, title in (("failed", "Failed genes"), ("orphan", "Orphaned genes (no model)"),
                      ("unfinished", "Unfinished genes")):
        sub = g[g["status"] == st]
        if len(sub):
            parts.append(f"<h3>{title}: {len(sub)}</h3>" + frame_table(sub[["gene", "reason"]]))
    return Section("problems", "Warnings and failed genes", "".join(parts))


def _screens(screens: Sequence[str | os.PathLike[str]], figs: Figures) -> list[Section]:
    from ..perturbation.screen_files import load_screen

    out = []
    for i, d in enumerate(screens):
        s = load_screen(d)
        ranked = s.ranked
        head = (f"<p>{esc(s.mode)} screen of {len(ranked):,} genes in {path_code(s.folder)}"
                + (f" ({s.n_missing} of the requested genes not finished yet)" if s.n_missing else "") + "</p>")
        body = head + figs.img(_pl().screen_top(ranked, n=20, ax=_new_axes(6.5, 5.0)[1], show=False).figure,
                               f"screen{i}_top", "Genes ranked by impact (mean |Δ| over all cells and other genes).")
        if s.cell_types is not None and s.cell_types.shape[1]:
            body += figs.img(_pl().screen_heatmap(s.cell_types, n=25, ax=_new_axes(7.0, 6.5)[1], show=False).figure,
                             f"screen{i}_heatmap", "Mean |Δ| per cell type of the top genes.")
        cols = [c for c in ("rank", "gene", "roles", "impact", "n_genes_changed", "top_cell_types", "top_affected")
                if c in ranked]
        body += frame_table(ranked[cols], max_rows=25, digits=3)
        out.append(Section(f"screen{i}", f"Screen: {Path(d).name}", body))
    return out


def run_summary_html(facts: RunFacts, *, interactions: pd.DataFrame | None = None,
                     screens: Sequence[str | os.PathLike[str]] = (), figures_dir: str | os.PathLike[str] | None = None
                     ) -> str:
    """The report page of a run (see the module doc).

    Parameters
    ----------
    facts
        From :func:`~.facts.gather_run_facts`.
    interactions
        The run's interaction table (:func:`~spacetravlr_py.betadata.collect_interactions`); None leaves
        the section empty.
    screens
        Screen folders of the run (``spacetravlr-perturb screen --out-dir``) to show.
    figures_dir
        Also write every figure there as ``report_{name}.png``.
    """
    figs = Figures(Path(figures_dir) if figures_dir else None)
    sections = [_dataset(facts, figs), _fit(facts, figs), _modulators(facts, figs),
                _interactions(facts, figs, interactions), _timings(facts, figs), _problems(facts),
                *_screens(screens, figs),
                Section("config", "Configuration", f"<pre>{esc(facts.cfg.to_toml())}</pre>"
                        + (table(sorted(facts.manifest.versions.items()), ("package", "version"))
                           if facts.manifest and facts.manifest.versions else ""))]
    intro = _overview(facts) + "".join(warn(w) for w in facts.warnings[:3])
    return page("SpaceTravLR run report", intro, sections)


def write_run_summary(run_dir: str | os.PathLike[str], *, config: str | os.PathLike[str] | None = None,
                      h5ad: str | os.PathLike[str] | None = None, manifest: str | os.PathLike[str] | None = None,
                      out: str | os.PathLike[str] | None = None, screens: Sequence[str | os.PathLike[str]] = (),
                      interactions: bool | str | os.PathLike[str] = True,
                      figures_dir: str | os.PathLike[str] | None = None) -> Path:
    """Write the run's HTML report (default ``run_dir/spacetravlr_run_summary.html``); returns its path.

    Parameters
    ----------
    run_dir, config, h5ad, manifest
        As :func:`~.facts.gather_run_facts`.
    out
        Where to write the page.
    screens
        Screen folders to include.
    interactions
        True: aggregate the run's betadata per cell type now (streamed gene by gene); a path: read that
        table (``spacetravlr collect-interactions --out``); False: leave the section out.
    figures_dir
        Also keep every figure as a PNG there.
    """
    html = build_run_summary(run_dir, config=config, h5ad=h5ad, manifest=manifest, screens=screens,
                             interactions=interactions, figures_dir=figures_dir)
    dest = Path(out) if out else RunDir(run_dir).root / _keys.RUN_SUMMARY_HTML
    atomic_write_text(dest, html)
    return dest


def build_run_summary(run_dir: str | os.PathLike[str], *, config: str | os.PathLike[str] | None = None,
                      h5ad: str | os.PathLike[str] | None = None, manifest: str | os.PathLike[str] | None = None,
                      screens: Sequence[str | os.PathLike[str]] = (),
                      interactions: bool | str | os.PathLike[str] = True,
                      figures_dir: str | os.PathLike[str] | None = None) -> str:
    """The run's HTML report as a string, built in memory: the page :func:`write_run_summary` writes and
    ``spatial_viewer`` serves (``GET /api/run/report``). Nothing is written unless ``figures_dir`` is given.

    Parameters are those of :func:`write_run_summary` (less ``out``).
    """
    facts = gather_run_facts(run_dir, config=config, h5ad=h5ad, manifest=manifest)
    table_ = _interaction_table(facts, interactions)
    return run_summary_html(facts, interactions=table_, screens=screens, figures_dir=figures_dir)


def _interaction_table(facts: RunFacts, interactions: bool | str | os.PathLike[str]) -> pd.DataFrame | None:
    from ..betadata.interactions import collect_interactions
    from ..betadata.interactions_run import read_interactions

    if interactions is False:
        return None
    if interactions is not True:
        return read_interactions(interactions)
    if not facts.run_dir.is_dir() or not any(facts.run_dir.glob(f"*{_keys.BETADATA_SUFFIX}.*")):
        return None
    return collect_interactions(facts.run_dir, facts.tissue, aggregate="mean")

"""Reports: the files a perturbation leaves next to its exported expression (the transition field and its
figures), and the HTML summary of a training run (:func:`write_run_summary`).

``write_field_outputs(result, "out/foxo1_ko")`` writes

* ``foxo1_ko_field.npz`` — per-cell vectors, grid (x, y, u, v, counts, mask), sparse P (indptr, indices,
  data) and the parameters as JSON;
* ``foxo1_ko_umap_field.png`` — arrows over the UMAP coloured by cell type (when a UMAP exists);
* ``foxo1_ko_spatial_field.png`` — the same field computed on the tissue coordinates;
* ``foxo1_ko_spatial_delta.png`` — mean |Δ| per cell on the tissue;
* ``foxo1_ko_summary.png`` — top affected genes and per-cluster impact.

``write_run_summary("runs/a")`` writes ``runs/a/spacetravlr_run_summary.html``: dataset shape, cluster
sizes, spatial key, genes done / orphaned / failed, timings and the configuration.
"""

from __future__ import annotations

import html
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _keys
from .errors import InputError
from .io.atomic import atomic_write_bytes, atomic_write_text
from .perturb.propagate import PerturbResult
from .transitions.field import TransitionField, transition_field

if TYPE_CHECKING:
    from .config import SpaceshipConfig
    from .io.anndata import Tissue


def save_field(field: TransitionField, path: str | os.PathLike[str]) -> Path:
    """Atomically write a transition field as a compressed ``.npz``."""
    P = field.graph.to_csr("probabilities")
    g = field.grid
    buf = io.BytesIO()
    np.savez_compressed(buf, vectors=field.vectors, embedding=field.embedding, grid_x=g.x, grid_y=g.y,
                        grid_u=g.u, grid_v=g.v, grid_counts=g.counts, grid_mask=g.mask, P_indptr=P.indptr,
                        P_indices=P.indices, P_data=P.data,
                        params=np.array(json.dumps({**field.graph.params, **g.params})))
    return atomic_write_bytes(path, buf.getvalue())


def write_field_outputs(result: PerturbResult, prefix: str | os.PathLike[str], *, n_neighbors: int = 150,
                        grid_bins: int | None = None, kind: str = "quiver", reference_compat: bool = False,
                        spatial: bool = True) -> dict[str, Path]:
    """Compute the transition field of ``result`` and write the field and figures (see module doc)."""
    from . import plotting

    t = result.tissue
    pre = Path(prefix)
    pre.parent.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    head = ", ".join(f"{g}→{v:g}" for g, v in zip(result.targets, result.desired))
    common: dict[str, Any] = dict(n_neighbors=n_neighbors, nx=grid_bins, reference_compat=reference_compat)
    if t.umap is not None:
        f = transition_field(t.expression, result.delta, t.umap, **common)
        assert isinstance(f, TransitionField)
        out["field"] = save_field(f, f"{pre}_field.npz")
        plotting.transition_field(t.umap, f.grid, clusters=t.clusters, cluster_labels=t.cluster_labels, kind=kind,
                                  title=f"{head}: transitions on the UMAP", show=False,
                                  save=f"{pre}_umap_field.png")
        out["umap_field_png"] = Path(f"{pre}_umap_field.png")
    if spatial:
        fs = transition_field(t.expression, result.delta, t.coords, **common)
        assert isinstance(fs, TransitionField)
        out["spatial_field"] = save_field(fs, f"{pre}_spatial_field.npz")
        plotting.transition_field(t.coords, fs.grid, clusters=t.clusters, cluster_labels=t.cluster_labels,
                                  kind=kind, basis="spatial", title=f"{head}: transitions on the tissue",
                                  show=False, save=f"{pre}_spatial_field.png")
        out["spatial_field_png"] = Path(f"{pre}_spatial_field.png")
    plotting.spatial_delta(t.coords, result.delta, scope=result.scope, title=f"{head}: mean |Δ| per cell",
                           show=False, save=f"{pre}_spatial_delta.png")
    out["spatial_delta_png"] = Path(f"{pre}_spatial_delta.png")
    plotting.perturbation_summary(result, show=False, save=f"{pre}_summary.png")
    out["summary_png"] = Path(f"{pre}_summary.png")
    return out


# --------------------------------------------------------------------------------------------------
# The HTML summary of a training run
# --------------------------------------------------------------------------------------------------

_CSS = """body{font-family:system-ui,sans-serif;margin:2rem;max-width:60rem;color:#222}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:1.6rem}table{border-collapse:collapse}
td,th{padding:.25rem .7rem;border-bottom:1px solid #ddd;text-align:left}th{background:#f4f4f4}
code{background:#f4f4f4;padding:0 .2rem}"""


def _table(rows: Sequence[tuple[object, ...]], head: tuple[str, ...]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    trs = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{trs}</table>"


def _dataset_sections(tissue: Tissue, h5ad: str | os.PathLike[str]) -> list[str]:
    clusters = [(k, lab, int(n)) for k, (lab, n) in enumerate(zip(tissue.cluster_labels, tissue.cluster_sizes()))]
    return ["<h2>Dataset</h2>",
            _table([("file", h5ad), ("cells", tissue.n_cells), ("genes", tissue.n_genes),
                    ("layer", tissue.layer or "X"), ("spatial key", f"obsm['{tissue.spatial_key}']"),
                    ("cluster column", tissue.cluster_annot), ("UMAP", "yes" if tissue.umap is not None else "no")],
                   ("", "")),
            "<h2>Clusters</h2>", _table(clusters, ("id", "label", "cells"))]


def _training_sections(manifest: dict[str, Any]) -> list[str]:
    if not manifest:
        return []
    c = manifest.get("counts", {})
    parts = ["<h2>Training</h2>",
             _table([("status", manifest.get("status")), ("started", manifest.get("started")),
                     ("finished", manifest.get("finished")), ("genes done", c.get("done")),
                     ("orphaned", c.get("orphaned")), ("failed", c.get("failed")),
                     ("unfinished", c.get("unfinished")),
                     ("total time (s)", manifest.get("timings", {}).get("total_s"))], ("", ""))]
    failed = manifest.get("genes", {}).get("failed", {})
    if failed:
        parts += ["<h2>Failed genes</h2>", _table(sorted(failed.items()), ("gene", "error"))]
    return parts


def run_summary_html(run_dir: str | os.PathLike[str], cfg: SpaceshipConfig, tissue: Tissue,
                     manifest: dict[str, Any], *, h5ad: str | os.PathLike[str]) -> str:
    """A small self-contained HTML page about a training run.

    Parameters
    ----------
    run_dir
        The run folder (shown resolved).
    cfg
        The run's configuration (shown as TOML).
    tissue
        The dataset it was trained on (shape, layer, spatial key, cluster sizes).
    manifest
        The run's manifest (status, counts, timings, failed genes); ``{}`` leaves the training part out.
    h5ad
        The dataset path as shown.
    """
    parts = [f"<h1>SpaceTravLR run summary</h1><p>Run folder <code>{html.escape(str(Path(run_dir).resolve()))}"
             "</code></p>", *_dataset_sections(tissue, h5ad), *_training_sections(manifest),
             "<h2>Configuration</h2>", f"<pre>{html.escape(cfg.to_toml())}</pre>"]
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>SpaceTravLR run</title><style>{_CSS}</style>"
            f"</head><body>{''.join(parts)}</body></html>")


def write_run_summary(run_dir: str | os.PathLike[str], *, config: str | os.PathLike[str] | None = None,
                      h5ad: str | os.PathLike[str] | None = None,
                      manifest: str | os.PathLike[str] | None = None) -> Path:
    """Write ``run_dir/spacetravlr_run_summary.html`` (see :func:`run_summary_html`); returns its path.

    ``config`` defaults to the run's repro TOML, ``h5ad`` to its ``[data].adata_path``, ``manifest`` to
    the run's manifest (absent: no training part).
    """
    from .config import SpaceshipConfig
    from .io.anndata import tissue_from_config

    out = Path(run_dir)
    cfg_path = Path(config) if config else out / _keys.REPRO_TOML
    if not cfg_path.is_file():
        raise InputError(f"{cfg_path} not found; pass -c CONFIG or a run folder with {_keys.REPRO_TOML}")
    cfg = SpaceshipConfig.from_toml(cfg_path)
    shown = h5ad or cfg.data.adata_path
    tissue = tissue_from_config(cfg, adata_path=shown)
    man_path = Path(manifest) if manifest else out / _keys.MANIFEST_JSON
    man = json.loads(man_path.read_text(encoding="utf-8")) if man_path.is_file() else {}
    dest = out / _keys.RUN_SUMMARY_HTML
    atomic_write_text(dest, run_summary_html(out, cfg, tissue, man, h5ad=shown))
    return dest

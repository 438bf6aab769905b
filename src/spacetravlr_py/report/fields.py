"""The files a perturbation leaves next to its exported expression: the transition field and its figures.

``write_field_outputs(result, "out/foxo1_ko")`` writes

* ``foxo1_ko_field.npz`` — per-cell vectors, grid (x, y, u, v, counts, mask), sparse P (indptr, indices,
  data) and the parameters as JSON;
* ``foxo1_ko_umap_field.png`` — arrows over the UMAP coloured by cell type (when a UMAP exists);
* ``foxo1_ko_spatial_field.png`` — the same field computed on the tissue coordinates;
* ``foxo1_ko_spatial_delta.png`` — mean |Δ| per cell on the tissue;
* ``foxo1_ko_summary.png`` — top affected genes and per-cluster impact.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..io.atomic import atomic_write_bytes
from ..perturbation.propagate import PerturbResult
from ..transitions.field import TransitionField, transition_field


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
                        spatial: bool = True, field_genes: Sequence[str] | None = None) -> dict[str, Path]:
    """Compute the transition field of ``result`` and write the field and figures (see module doc).

    The field's genes are :meth:`PerturbResult.field_genes` (``field_genes`` or the default: changed
    plus highly variable genes).
    """
    from .. import plotting

    t = result.tissue
    pre = Path(prefix)
    pre.parent.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    head = ", ".join(f"{g}→{v:g}" for g, v in zip(result.targets, result.desired))
    X, D, cols = result.field_inputs(field_genes)
    common: dict[str, Any] = dict(n_neighbors=n_neighbors, nx=grid_bins, reference_compat=reference_compat,
                                  delta_genes=cols)
    if t.umap is not None:
        f = transition_field(X, D, t.umap, **common)
        assert isinstance(f, TransitionField)
        out["field"] = save_field(f, f"{pre}_field.npz")
        plotting.transition_field(t.umap, f.grid, clusters=t.clusters, cluster_labels=t.cluster_labels, kind=kind,
                                  title=f"{head}: transitions on the UMAP", show=False,
                                  save=f"{pre}_umap_field.png")
        out["umap_field_png"] = Path(f"{pre}_umap_field.png")
    if spatial:
        fs = transition_field(X, D, t.coords, **common)
        assert isinstance(fs, TransitionField)
        out["spatial_field"] = save_field(fs, f"{pre}_spatial_field.npz")
        plotting.transition_field(t.coords, fs.grid, clusters=t.clusters, cluster_labels=t.cluster_labels,
                                  kind=kind, basis="spatial", title=f"{head}: transitions on the tissue",
                                  show=False, save=f"{pre}_spatial_field.png")
        out["spatial_field_png"] = Path(f"{pre}_spatial_field.png")
    del X, D
    plotting.spatial_delta(t.coords, result.held_delta()[1], scope=result.scope,
                           title=f"{head}: mean |Δ| per cell", show=False, save=f"{pre}_spatial_delta.png")
    out["spatial_delta_png"] = Path(f"{pre}_spatial_delta.png")
    plotting.perturbation_summary(result, show=False, save=f"{pre}_summary.png")
    out["summary_png"] = Path(f"{pre}_summary.png")
    return out


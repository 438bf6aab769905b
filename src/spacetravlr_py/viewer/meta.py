"""The ``GET /api/meta`` payload (see docs/viewer.md for every field)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from . import payloads as pl
from .conditions import ConditionChoice

if TYPE_CHECKING:
    from .state import ViewerState


def _empty(state: ViewerState) -> dict[str, Any]:
    inp = state.inputs
    return {
        "n_obs": 0, "n_vars": 0, "spatial_obsm_key": None,
        "layer": inp.layer if inp else None, "cluster_annot": inp.cluster_annot if inp else None,
        "bounds": pl.bounds(np.zeros((0, 2))), "umap_obsm_key": None, "umap_bounds": None,
        "n_clusters": 0, "cluster_labels": [], "cell_type_column": None, "cell_type_categories": [],
        "network_loaded": False, "network_species": None, "network_error": None,
        "betadata_row_id": None, "n_trained_genes": 0, "n_propagation_default": None,
        "adata_path": str(inp.adata_path) if inp else None, "betadata_dir": None,
        "network_dir": str(inp.network_dir) if inp and inp.network_dir else None,
        "run_toml": str(inp.run_toml) if inp and inp.run_toml else None,
    }


def meta_payload(state: ViewerState, version: str) -> dict[str, Any]:
    """Dataset description, loading state and the running job."""
    st = state.status
    ds = state.dataset
    prog = state.jobs.progress()
    job = prog["job"]
    run_loading = st.state == "loading" and st.stage in ("tissue", "run") and (ds is None or ds.run_toml is not None)
    if ds is None:
        out = _empty(state)
    else:
        t = ds.tissue
        s = ds.session
        out = {
            "n_obs": t.n_cells, "n_vars": t.n_panel_genes, "spatial_obsm_key": t.spatial_key,
            "layer": t.layer, "cluster_annot": t.cluster_annot, "bounds": pl.bounds(t.coords),
            "umap_obsm_key": ds.umap_key, "umap_bounds": pl.bounds(t.umap) if t.umap is not None else None,
            "n_clusters": t.n_clusters, "cluster_labels": [str(x) for x in t.cluster_labels],
            "cell_type_column": ds.cell_types.column if ds.cell_types.codes is not None else None,
            "cell_type_categories": list(ds.cell_types.categories),
            "network_loaded": ds.selector is not None, "network_species": ds.network_species,
            "network_error": ds.network_error, "betadata_row_id": ds.betadata_row_id,
            "n_trained_genes": len(s.betabase) if s is not None else 0,
            "n_propagation_default": int(s.perturber.s.n_propagation) if s is not None else None,
            "adata_path": str(ds.adata_path), "betadata_dir": str(s.run_dir) if s is not None else None,
            "network_dir": str(ds.network_dir) if ds.network_dir else None,
            "run_toml": str(ds.run_toml) if ds.run_toml else None,
        }
    has_run = ds is not None and ds.run_toml is not None
    label, pct = None, None
    if job is not None:
        label, pct = job["message"], job["percent"]
    elif st.state == "loading":
        label, pct = st.label, st.percent
    return {
        "status": st.state, "dataset_ready": ds is not None,
        "perturb_ready": ds is not None and ds.session is not None,
        "perturb_loading": bool(run_loading or job is not None),
        "perturb_error": st.error if (st.state == "error" and has_run) else None,
        "perturb_progress_percent": pct, "perturb_progress_label": label,
        "load": st.to_json(), **out, **(state.inputs.condition if state.inputs else ConditionChoice()).to_json(),
        "data_roots": [str(r) for r in state.guard.roots], "job": job,
        "view": state.view.to_json(), "version": version,
    }


"""The shared view: what the browser page shows (layout, colouring and its gene), set through the API.

An assistant (the MCP server's ``show_in_viewer``) or any client ``POST``s a change to ``/api/view``; the
page polls ``GET /api/view`` and applies a view whose ``version`` is newer than the one it applied last.
The server validates every field against the loaded dataset, so the page never receives a gene it cannot
colour by.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from .. import _keys
from ._errors import ApiError

if TYPE_CHECKING:
    from .schemas import ViewRequest
    from .state import ViewerState

FIELDS: tuple[str, ...] = ("layout", "colour", "gene", "beta_gene", "beta_column", "delta_gene", "message", "source")


class ViewState:
    """The current view and its version (0 = never set); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.version = 0
        self.values: dict[str, Any] = dict.fromkeys(FIELDS)
        self.perturbation: dict[str, Any] | None = None
        self.updated: float | None = None

    def to_json(self) -> dict[str, Any]:
        with self._lock:
            return {**self.values, "perturbation": self.perturbation, "version": self.version,
                    "updated_unix_s": self.updated}

    def apply(self, state: ViewerState, req: ViewRequest) -> dict[str, Any]:
        """Validate ``req`` against the loaded dataset and make it the view (fields not sent are kept, except
        ``message`` and ``source``, which belong to one post)."""
        patch = {k: getattr(req, k) for k in req.model_fields_set}
        with self._lock:
            # the message and its source belong to this post only: a later post does not repeat them
            merged = {**self.values, "message": None, "source": None, **patch}
        perturbation = _validated(state, merged, patch)
        with self._lock:
            self.values = merged
            self.perturbation = perturbation
            self.version += 1
            self.updated = time.time()
        return self.to_json()


def _validated(state: ViewerState, v: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any] | None:
    """Check (and complete) the merged view in place; returns the perturbation a ``delta`` colouring shows."""
    ds = state.require_dataset()
    if v["layout"] == "umap" and ds.tissue.umap is None:
        raise ApiError(400, "layout: this dataset has no UMAP (obsm['X_umap'] or obsm['umap']); use 'spatial'")
    for key in ("gene", "beta_gene", "delta_gene"):
        if v[key] is not None and key in patch:
            state.require_gene(ds, v[key], key)
    colour = v["colour"]
    if colour == "gene" and v["gene"] is None:
        raise ApiError(400, "colour 'gene' needs gene (a gene of the dataset)")
    if colour == "beta":
        _complete_beta(state, v)
    if colour != "delta":
        return None
    last = state.last
    if last is None:
        raise ApiError(404, "colour 'delta' needs a perturbation: run one first (POST /api/perturb/preview or "
                            "/api/perturb/summary)")
    res = last.result
    if v["delta_gene"] is None:
        top = res.top_genes(1)
        v["delta_gene"] = top[0][0] if top else res.targets[0]
    return {"gene": res.targets[0], "genes": list(res.targets), "desired_expr": float(res.desired[0]),
            "scope": res.scope_label, "n_scope_cells": int(res.scope.sum()), "n_propagation": res.n_propagation,
            "job_id": last.job_id}


def _complete_beta(state: ViewerState, v: dict[str, Any]) -> None:
    """``beta_gene`` must have betadata; ``beta_column`` defaults to its strongest coefficient."""
    from . import payloads as pl

    _, s = state.require_run()
    gene = v["beta_gene"] or v["gene"]
    if gene is None:
        raise ApiError(400, "colour 'beta' needs beta_gene (a trained gene; GET /api/betadata/genes)")
    if gene not in s.betabase:
        raise ApiError(404, f"beta_gene: {gene} has no betadata in {s.run_dir} (see GET /api/betadata/genes)")
    v["beta_gene"] = gene
    gm = s.betabase[gene]
    if v["beta_column"] is None:
        rows = s.betabase.mappings[gm.mapping]
        top = pl.top_coefficients(gm.frame.coefs, gm.frame.modulators, rows, 1)
        v["beta_column"] = top[0]["column"] if top else _keys.INTERCEPT
    elif pl.resolve_column(v["beta_column"], gm.frame.modulators) is None:
        raise ApiError(400, f"beta_column: {gene} has no betadata column '{v['beta_column'][:120]}' "
                            "(see GET /api/betadata/columns)")

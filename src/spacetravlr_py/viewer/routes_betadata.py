"""Routes of the betadata (per-cell betas, top coefficients, interactions) and the cell inspector."""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter, Query
from fastapi.responses import Response

from . import payloads as pl
from ._errors import ApiError
from .inspector import cell_context, spatial_neighbors
from .jobs import run_job
from .routes_data import binary, binary_doc
from .schemas import CellContextRequest, CollectInteractionsRequest, TopBetasRequest
from .state import ViewerState


def build(state: ViewerState, errors: dict[int | str, dict[str, Any]]) -> APIRouter:
    r = APIRouter(prefix="/api", responses=errors)

    def model(gene: str) -> Any:
        ds, s = state.require_run()
        state.gene_column(ds, gene)
        if gene not in s.betabase:
            raise ApiError(404, f"{gene} has no betadata in {s.run_dir} (see GET /api/betadata/genes)")
        gm = s.betabase[gene]
        return ds, gm, s.betabase.mappings[gm.mapping]

    @r.get("/betadata/genes", summary="trained genes")
    def betadata_genes() -> list[str]:
        ds = state.require_dataset()
        if ds.run_toml is None:
            return []
        return list(state.require_run()[1].betabase.genes)

    @r.get("/betadata/columns", summary="betadata columns of a gene")
    def betadata_columns(gene: str = Query(..., min_length=1, max_length=200)) -> list[str]:
        _, gm, _ = model(gene)
        return pl.betadata_columns(gm.frame.modulators)

    @r.get("/betadata/values", response_class=Response,
           responses=binary_doc("float32[N] one betadata column for every cell"))
    def betadata_values(gene: str = Query(..., min_length=1, max_length=200),
                        column: str = Query(..., min_length=1, max_length=400)) -> Response:
        _, gm, rows = model(gene)
        f = gm.frame
        j = pl.resolve_column(column, f.modulators)
        if j is None:
            raise ApiError(400, f"{gene} has no betadata column '{column[:120]}' (see /api/betadata/columns)")
        col = f.intercept if j < 0 else f.coefs[:, j]
        vals = np.where(rows >= 0, col[np.maximum(rows, 0)], 0.0)
        return binary(pl.to_bytes(vals, pl.F32))

    @r.post("/betadata/top", summary="strongest coefficients over selected cells")
    def betadata_top(body: TopBetasRequest) -> list[dict[str, Any]]:
        ds, gm, rows = model(body.gene)
        if body.indices is not None:
            idx = np.asarray(body.indices, dtype=np.int64)
            if idx.size and idx.max() >= ds.tissue.n_cells:
                raise ApiError(400, f"indices: cell {int(idx.max())} out of range (N = {ds.tissue.n_cells})")
            rows = rows[idx]
        return pl.top_coefficients(gm.frame.coefs, gm.frame.modulators, rows, body.top_k)

    @r.post("/betadata/collect_interactions", summary="aggregate every coefficient over a cell type or cluster")
    async def collect(body: CollectInteractionsRequest) -> dict[str, Any]:
        from . import work

        ds, s = state.require_run()
        out, _ = await run_job(state, "collect_interactions", lambda job: work.interactions(ds, s, job, body))
        return out

    @r.post("/network/cell-context", summary="the cell inspector")
    def network_cell_context(body: CellContextRequest) -> dict[str, Any]:
        ds = state.require_dataset()
        t = ds.tissue
        if body.cell_index >= t.n_cells:
            raise ApiError(400, f"cell_index {body.cell_index} out of range (the dataset has {t.n_cells} cells)")
        state.gene_column(ds, body.focus_gene, "focus_gene")
        radius = body.radius if body.neighbor_mode == "radius" else None
        if body.neighbor_mode == "radius" and radius is None:
            raise ApiError(400, "neighbor_mode 'radius' needs radius (> 0, coordinate units)")
        nbs = spatial_neighbors(ds.spatial_tree(), t.coords, body.cell_index, k=body.neighbor_k, radius=radius)
        mods, betas = ds.modulators_of(body.focus_gene)
        ct = ds.cell_types
        code = int(ct.codes[body.cell_index]) if ct.codes is not None else pl.NO_CELL_TYPE
        return cell_context(
            cell=body.cell_index, focus_gene=body.focus_gene, X=t.expression, gi=t.gene_index,
            obs_names=t.obs_names, coords=t.coords, clusters=t.clusters, cluster_labels=t.cluster_labels,
            cell_type=ct.categories[code] if code < len(ct.categories) else None, neighbors=nbs, mods=mods,
            betas=betas, direction=body.direction, threshold=body.expr_threshold, max_edges=body.max_edges,
            neighbor_query=body.neighbor_mode, radius=radius)

    return r

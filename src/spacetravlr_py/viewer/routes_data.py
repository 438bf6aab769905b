"""Routes of the dataset itself: meta, configure, coordinates, clusters, cell types, genes, expression."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response

from . import payloads as pl
from ._errors import ApiError
from .schemas import ClusterMeanRequest, ConfigureRequest, LabelClustersRequest
from .state import ViewerState

MAX_FULL_GENE_LIST = 50_000
BINARY = "application/octet-stream"


def binary(data: tuple[bytes, dict[str, str]], extra: dict[str, str] | None = None) -> Response:
    """A little-endian array as ``application/octet-stream`` with its dtype/length/shape headers."""
    body, headers = data
    return Response(content=body, media_type=BINARY, headers={**headers, **(extra or {})})


def binary_doc(what: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI description of a binary 200 response."""
    return {200: {"description": what, "content": {BINARY: {"schema": {"type": "string", "format": "binary"}}}}}


def build(state: ViewerState, errors: dict[int | str, dict[str, Any]]) -> APIRouter:
    r = APIRouter(prefix="/api", responses=errors)

    @r.get("/meta", summary="dataset, loading state and the running job")
    def meta() -> dict[str, Any]:
        return state.meta()

    @r.post("/session/configure", summary="open another .h5ad or run", status_code=202,
            responses={200: {"description": "loaded (wait: true)"}})
    async def configure(body: ConfigureRequest) -> JSONResponse:
        inputs = await asyncio.to_thread(state.prepare, adata_path=body.adata_path, run_toml=body.run_toml,
                                         layer=body.layer, cluster_annot=body.cluster_annot,
                                         network_dir=body.network_dir, condition=body.condition)
        done = state.start(inputs)
        if not body.wait:
            return JSONResponse({"ok": True, "message": f"loading {inputs.run_toml or inputs.adata_path}",
                                 "meta": state.meta()}, status_code=202)
        await asyncio.to_thread(done.wait)
        if state.status.state == "error":
            raise ApiError(400, f"load failed: {state.status.error}")
        return JSONResponse({"ok": True, "message": "loaded", "meta": state.meta()}, status_code=200)

    @r.get("/spatial", response_class=Response, responses=binary_doc("float32[2N] interleaved x, y"))
    def spatial() -> Response:
        return binary(state.require_dataset().spatial)

    @r.get("/umap", response_class=Response, responses=binary_doc("float32[2N] interleaved UMAP x, y"))
    def umap() -> Response:
        ds = state.require_dataset()
        if ds.umap is None:
            raise ApiError(404, "this dataset has no UMAP (obsm['X_umap'] or obsm['umap']); "
                                "run `spacetravlr prep` to compute one")
        return binary(ds.umap)

    @r.get("/clusters", response_class=Response, responses=binary_doc("uint32[N] cluster id per cell"))
    def clusters() -> Response:
        return binary(state.require_dataset().clusters)

    @r.get("/cell_type/codes", response_class=Response,
           responses=binary_doc("uint16[N] cell-type code per cell (65535 = none)"))
    def cell_type_codes() -> Response:
        ct = state.require_dataset().cell_types
        if ct.codes is None:
            raise ApiError(404, "this dataset has no cell-type column")
        return binary(pl.to_bytes(ct.codes, pl.U16))

    @r.get("/genes", summary="gene names starting with a prefix")
    def genes(prefix: str = Query("", max_length=100), limit: int = Query(500, ge=1, le=10_000)) -> list[str]:
        ds = state.require_dataset()
        return pl.genes_with_prefix(ds.tissue.all_genes, prefix, limit)

    @r.get("/genes/full", summary="every gene name")
    def genes_full() -> list[str]:
        ds = state.require_dataset()
        if ds.tissue.n_panel_genes > MAX_FULL_GENE_LIST:
            raise ApiError(400, f"{ds.tissue.n_panel_genes} genes (more than {MAX_FULL_GENE_LIST}); "
                                "use /api/genes?prefix=...")
        return list(ds.tissue.all_genes)

    @r.get("/gene/expression", response_class=Response, responses=binary_doc("float32[N] expression"))
    def gene_expression(gene: str = Query(..., min_length=1, max_length=200)) -> Response:
        ds = state.require_dataset()
        state.require_gene(ds, gene)
        return binary(pl.to_bytes(ds.expression_of(gene), pl.F32))

    _cluster_routes(r, state)
    return r


def _cluster_routes(r: APIRouter, state: ViewerState) -> None:
    """``cluster/mean_expression`` and ``meta/label_clusters``."""

    @r.post("/cluster/mean_expression", summary="mean expression per cluster")
    def cluster_mean_expression(body: ClusterMeanRequest) -> dict[str, Any]:
        ds = state.require_dataset()
        t = ds.tissue
        for g in body.genes:
            state.require_gene(ds, g)
        cols = (np.column_stack([np.asarray(ds.expression_of(g), dtype=np.float64) for g in body.genes])
                if body.genes else np.zeros((t.n_cells, 0)))
        means, counts = pl.cluster_means(cols, t.clusters, t.n_clusters)
        return {"cluster_ids": list(range(t.n_clusters)), "cluster_labels": [str(x) for x in t.cluster_labels],
                "n_cells_per_cluster": counts.astype(int).tolist(),
                "genes": {g: means[i].tolist() for i, g in enumerate(body.genes)}}

    @r.post("/meta/label_clusters", summary="name the clusters (the cell-type colouring follows)")
    def label_clusters(body: LabelClustersRequest) -> dict[str, Any]:
        from .dataset import CellTypes

        ds = state.require_dataset()
        t = ds.tissue
        labels: dict[int, str] = {}
        for key, name in body.labels.items():
            if not key.strip().isdigit() or int(key) >= t.n_clusters:
                raise ApiError(400, f"labels: '{key[:20]}' is not a cluster id (0..{t.n_clusters - 1})")
            if not name.strip():
                raise ApiError(400, f"labels: cluster {key} has an empty label")
            labels[int(key)] = name.strip()
        cats, codes = pl.relabel_clusters([str(x) for x in t.cluster_labels], t.clusters, labels)
        ds.cell_types = CellTypes(pl.ANNOTATED_COLUMN, cats, codes)
        return {"ok": True, "cell_type_column": pl.ANNOTATED_COLUMN, "categories": cats, "n_clusters": t.n_clusters}

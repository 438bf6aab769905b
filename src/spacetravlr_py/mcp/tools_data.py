"""Tools about the dataset: get_meta, load_dataset, wait_ready, list_genes, cluster_expression, label_clusters."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Annotated, Any

from mcp.types import CallToolResult, TextContent
from pydantic import Field

from .errors import ToolInputError
from .params import Gene
from .summaries import cluster_cell_types, fmt, table_text

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from .backend import Backend

Path_ = Annotated[str | None, Field(min_length=1, max_length=4096)]
Timeout = Annotated[float, Field(gt=0, le=600, allow_inf_nan=False, description="seconds to wait at most")]
Prefix = Annotated[str, Field(max_length=100, description="case-sensitive matches first, then case-insensitive")]
Limit = Annotated[int, Field(ge=1, le=5000, description="genes returned at most")]
GenesUpTo200 = Annotated[list[Gene], Field(min_length=1, max_length=200, description="1 to 200 genes")]
Labels = Annotated[dict[str, Annotated[str, Field(min_length=1, max_length=200)]], Field(
    min_length=1, max_length=10_000, description='cluster id (as a string) → new label, e.g. {"0": "B cells"}')]


def ok(data: dict[str, Any], text: str) -> CallToolResult:
    """A tool result: ``data`` as structured content and a short text rendering."""
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=data)


def meta_digest(b: Backend, m: dict[str, Any]) -> dict[str, Any]:
    """The parts of the viewer's meta an assistant needs (the rest is in ``viewer_meta``)."""
    return {
        "mode": b.mode, "viewer_url": b.base, "status": m["status"], "dataset_ready": m["dataset_ready"],
        "perturb_ready": m["perturb_ready"], "load": m["load"], "n_obs": m["n_obs"], "n_vars": m["n_vars"],
        "clusters": [{"cluster_id": k, "label": lab} for k, lab in enumerate(m["cluster_labels"])],
        "cell_type_column": m["cell_type_column"], "cell_types": m["cell_type_categories"],
        "has_umap": m["umap_obsm_key"] is not None, "n_trained_genes": m["n_trained_genes"],
        "n_propagation_default": m["n_propagation_default"], "run_toml": m["run_toml"],
        "adata_path": m["adata_path"], "data_roots": m["data_roots"], "job": m["job"],
        "conditions": m.get("conditions"), "condition": m.get("condition"), "view": m.get("view"),
        "viewer_meta": m,
    }


def meta_text(d: dict[str, Any]) -> str:
    if d["status"] in ("empty", "starting"):
        return f"{d['status']}: no dataset loaded yet ({d['mode']}); call load_dataset"
    load = d["load"]
    if d["status"] == "loading":
        return f"loading ({load['stage']}, {load['percent']}%: {load['label']}); call wait_ready"
    if d["status"] == "error":
        return f"the dataset failed to load: {load['error']}"
    labels = ", ".join(f"{c['cluster_id']}={c['label']}" for c in d["clusters"][:12])
    run = (f"{d['n_trained_genes']} trained genes, n_propagation {d['n_propagation_default']}"
           if d["perturb_ready"] else "no trained run (no betas, no perturbation)")
    return (f"{d['status']}: {d['n_obs']} cells × {d['n_vars']} genes; clusters {labels}; cell types "
            f"({d['cell_type_column']}): {', '.join(d['cell_types'][:12])}; {run}; UMAP: "
            f"{'yes' if d['has_umap'] else 'no'}; viewer: {d['viewer_url']}")


def register(server: MCPServer, b: Backend) -> None:
    @server.tool(description=(
        "Describe the loaded dataset and the server: loading status, cells × genes, clusters (id and label), "
        "cell types, whether a trained run (betas, perturbation) and a UMAP are loaded, the default number "
        "of propagation steps, the data roots and the viewer URL a human can open. Call it first; it answers "
        "at once, also while data load."))
    async def get_meta() -> CallToolResult:
        if b.base is None and b.engine is not None and b.engine.error is None:
            d = {"mode": b.mode, "viewer_url": None, "status": "starting", "dataset_ready": False,
                 "perturb_ready": False}
            return ok(d, "starting: the engine is starting; call wait_ready")
        d = meta_digest(b, await b.meta())
        return ok(d, meta_text(d))

    @server.tool(description=(
        "Open a dataset in the viewer: a training run's spacetravlr_run_repro.toml (run_toml: enables betas "
        "and perturbations; its [data] section names the .h5ad) or a plain .h5ad (h5ad, with optional layer "
        "and cluster_annot). Paths must lie under the data roots (get_meta: data_roots). A run trained with "
        "--condition holds one model set per group: condition picks it (a label or folder from get_meta's "
        "conditions; alone, it switches the condition of the run that is open). Loading runs in the "
        "background: call wait_ready next (or pass wait=true)."))
    async def load_dataset(run_toml: Path_ = None, h5ad: Path_ = None,
                           layer: Annotated[str | None, Field(max_length=200)] = None,
                           cluster_annot: Annotated[str | None, Field(max_length=200)] = None,
                           condition: Annotated[str | None, Field(min_length=1, max_length=200)] = None,
                           wait: bool = False) -> CallToolResult:
        if (run_toml is not None and h5ad is not None) or (run_toml is None and h5ad is None and condition is None):
            raise ToolInputError("give exactly one of run_toml (a training run) or h5ad (a dataset), or only "
                                 "condition to switch the open run's condition", "run_toml")
        api = await b.api()
        body: dict[str, Any] = {"layer": layer, "cluster_annot": cluster_annot, "wait": wait}
        if run_toml or h5ad:
            roots = (await b.meta()).get("data_roots") or []
            what = "run_toml" if run_toml else "h5ad"
            p = b.check_path(run_toml or h5ad or "", what, roots)
            body.update(run_toml=str(p) if run_toml else "", adata_path="" if run_toml else str(p))
        if condition is not None:
            body["condition"] = condition
        out = await api.post("session/configure", body, job=True)
        d = meta_digest(b, out["meta"])
        return ok(d, f"{out['message']}. " + meta_text(d))

    @server.tool(description=(
        "Wait until the dataset (and its run) finished loading, at most timeout_s seconds. Returns ready=true "
        "with the dataset description, or ready=false with the loading stage when the time ran out (call it "
        "again). A failed load is an error with the reason."))
    async def wait_ready(timeout_s: Timeout = 60.0) -> CallToolResult:
        t0 = time.perf_counter()
        api = await b.api(timeout=timeout_s)
        while True:
            m = await api.get("meta")
            if m["status"] == "error":
                raise ToolInputError(f"the dataset failed to load: {m['load']['error']}; fix it and call "
                                     "load_dataset again")
            if m["status"] == "empty":
                raise ToolInputError("nothing is loading: call load_dataset first")
            waited = time.perf_counter() - t0
            if m["status"] != "loading" or waited >= timeout_s:
                d = {"ready": m["status"] == "ready", "waited_s": round(waited, 3), **meta_digest(b, m)}
                return ok(d, ("" if d["ready"] else f"not ready after {waited:.1f} s: ") + meta_text(d))
            await asyncio.sleep(min(0.25, max(0.0, timeout_s - waited)))

    @server.tool(description=(
        "List gene names of the dataset starting with prefix (case-sensitive matches first). With "
        "trained_only=true, only genes that have a trained model (betas; these can be targets of top_betas). "
        "Use it to check spelling before other tools."))
    async def list_genes(prefix: Prefix = "", limit: Limit = 100, trained_only: bool = False) -> CallToolResult:
        m = await b.ready_meta(need_run=trained_only)
        api = await b.api()
        if trained_only:
            trained = await api.get("betadata/genes")
            genes = [g for g in trained if g.startswith(prefix)]
            genes += [g for g in trained if g.lower().startswith(prefix.lower()) and g not in set(genes)]
            total = len(genes)
            genes = genes[:limit]
        else:
            genes = await api.get("genes", prefix=prefix, limit=limit)
            total = None
        d = {"genes": genes, "n_returned": len(genes), "n_vars": m["n_vars"], "n_matching": total}
        return ok(d, f"{len(genes)} genes: {', '.join(genes[:200])}" + (" …" if len(genes) > 200 else ""))

    @server.tool(description=(
        "Mean expression of up to 200 genes in each cluster (the loaded expression layer), with each cluster's "
        "label, majority cell type and size. Use it to recognise clusters from marker genes before "
        "label_clusters, or to see where a gene is expressed."))
    async def cluster_expression(genes: GenesUpTo200) -> CallToolResult:
        cells = await b.cells()
        out = await (await b.api()).post("cluster/mean_expression", {"genes": list(dict.fromkeys(genes))})
        cts = cluster_cell_types(cells.clusters, cells.codes, cells.categories, len(out["cluster_ids"]))
        rows = [{"cluster_id": k, "label": lab, "cell_type": ct, "n_cells": n,
                 "mean": {g: v[i] for g, v in out["genes"].items()}}
                for i, (k, lab, ct, n) in enumerate(zip(out["cluster_ids"], out["cluster_labels"], cts,
                                                        out["n_cells_per_cluster"]))]
        top = {g: rows[max(range(len(rows)), key=lambda i: v[i])]["label"] for g, v in out["genes"].items()}
        shown = list(out["genes"])[:8]
        text = table_text(["cluster", "label", "cells", *shown],
                          [[r["cluster_id"], r["label"], r["n_cells"], *[fmt(r["mean"][g]) for g in shown]]
                           for r in rows])
        return ok({"clusters": rows, "highest_in": top}, text)

    @server.tool(description=(
        "Name clusters (e.g. after cluster_expression showed their markers): labels maps cluster ids (as "
        "strings) to names, e.g. {\"2\": \"fibroblasts\", \"3\": \"T cells\"}. Clusters not named keep their "
        "label. The names become the cell types used by every other tool (scopes, top_betas, "
        "collect_interactions) and by the viewer's colouring."))
    async def label_clusters(labels: Labels) -> CallToolResult:
        await b.ready_meta()
        out = await (await b.api()).post("meta/label_clusters", {"labels": labels})
        return ok(out, f"cell types now: {', '.join(out['categories'])}")

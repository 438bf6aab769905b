"""Tools of perturbations: run_perturbation, perturbation_field, screen, check_progress, cancel."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

import numpy as np
from mcp.server.mcpserver import Context
from mcp.types import CallToolResult
from pydantic import Field

from .errors import ToolInputError
from .http import ApiFailure, ViewerApi
from .params import (
    CellIndices,
    CellTypes,
    Clusters,
    Gene,
    Genes,
    NPropagation,
    ScopeKind,
    Value,
    ValueOfMax,
    perturb_body,
    scope_body,
)
from .summaries import (
    cluster_cell_types,
    field_directions,
    field_text,
    group_effects,
    group_masks,
    perturbation_text,
    rank_screen,
    screen_row,
    strongest_bins,
    table_text,
)
from .tools_data import ok

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from .backend import Backend, Cells, Job

T = TypeVar("T")

TopN = Annotated[int, Field(ge=1, le=100, description="most affected genes returned")]
Focus = Annotated[list[Annotated[str, Field(min_length=1, max_length=200)]] | None, Field(
    max_length=20, description=("cell types to report separately: the genes that change most, on average, in "
                                "their cells (e.g. ['T cells'] to see what happens to T cells)"))]
ExportName = Annotated[str | None, Field(min_length=1, max_length=120, pattern=r"^[A-Za-z0-9._-]+$", description=(
    "file stem of the export in <run folder>/perturbations/ (default: gene_value_scope_Nsteps)"))]
Basis = Annotated[Literal["umap", "spatial"], Field(description="embedding of the field: UMAP or tissue coordinates")]
Neighbors = Annotated[int, Field(ge=3, le=500, description="kNN of the transition probabilities")]
Nx = Annotated[int | None, Field(ge=2, le=200, description="grid columns (null = about 10 cells per bin)")]
ScreenGenes = Annotated[list[Gene], Field(min_length=1, max_length=200, description="genes to perturb, one at a time")]
Mode = Annotated[Literal["knockout", "overexpress"], Field(description=(
    "knockout sets each gene to 0; overexpress to its maximum observed expression"))]
WaitS = Annotated[float, Field(ge=0, le=600, allow_inf_nan=False, description=(
    "seconds to wait for the result before returning the job's progress (check_progress job_id later)"))]
JobId = Annotated[str | None, Field(min_length=1, max_length=40, description=(
    "an MCP job (e.g. 'screen-1') or a viewer job id (digits); null = all jobs"))]

#: all genes are reported per focus cell type when the Δ matrix is at most this many values; else the top 200
FOCUS_ALL_GENES_MAX_VALUES = 5_000_000
FOCUS_CANDIDATES = 200
POLL_S = 0.5


async def while_running(ctx: Context | None, api: ViewerApi, work: Awaitable[T]) -> T:
    """Await ``work`` (a job request) while forwarding the viewer's job progress as MCP progress."""
    task: asyncio.Future[T] = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=POLL_S)
            if done:
                return task.result()
            if ctx is not None:
                job = (await api.get("perturb/progress")).get("job")
                if job is not None:
                    await ctx.report_progress(float(job["step"]), float(job["n_steps"] or 0) or None,
                                              str(job["message"]))
    finally:
        if not task.done():
            task.cancel()


async def _checked_scope(b: Backend, cells: Cells, scope: str, cell_types: list[str] | None,
                         clusters: list[int] | None, cell_indices: list[int] | None) -> dict[str, Any]:
    body = scope_body(scope, cell_types, clusters, cell_indices)
    for name in cell_types or []:
        cells.cell_type_mask(name, "cell_types")
    return body


async def _focus(api: ViewerApi, cells: Cells, summary: dict[str, Any], targets: list[str], names: list[str],
                 n_top: int) -> dict[str, list[dict[str, Any]]]:
    """Per focus cell type: the genes whose mean Δ over its cells is largest (from ``perturb/delta``)."""
    groups = {n: cells.cell_type_mask(n, "focus_cell_types") for n in names}
    m = cells.meta
    if m["n_obs"] * m["n_vars"] <= FOCUS_ALL_GENES_MAX_VALUES:
        genes = await api.get("genes/full")
    else:
        genes = [g["gene"] for g in summary["top_affected_genes"][:FOCUS_CANDIDATES]]
    genes = [g for g in genes if g not in set(targets)]
    deltas = {g: await api.array("perturb/delta", gene=g) for g in genes}
    return group_effects(deltas, groups, n_top)


def _summary_out(s: dict[str, Any], cells: Cells, genes: list[str], top_n: int) -> dict[str, Any]:
    cts = cluster_cell_types(cells.clusters, cells.codes, cells.categories, len(s["cluster_mean_abs_delta"]))
    return {
        "genes": genes, "desired_expr": s["desired_expr"], "scope": s["scope"], "n_scope_cells": s["n_scope_cells"],
        "n_obs": s["n_obs"], "n_propagation": s["n_propagation"],
        "perturbed_gene": {k: s[k] for k in ("gene", "mean_delta", "max_abs_delta", "n_positive", "n_negative",
                                              "n_zero")},
        "top_affected_genes": s["top_affected_genes"][:top_n],
        "cluster_mean_abs_delta": [{**c, "cell_type": ct} for c, ct in zip(s["cluster_mean_abs_delta"], cts)],
        "n_genes_changed": s["n_genes_changed"], "job_id": s["job_id"], "cached": s["cached"],
        "timings_s": s.get("timings_s"), "focus": None, "files": None,
    }


def register(server: MCPServer, b: Backend) -> None:
    @server.tool(description=(
        "Simulate setting gene(s) to a value (0 = knockout; value_of_max=1 = overexpress to the maximum) in "
        "some cells (scope: all, cell_types, clusters or cells) and propagate the change through the trained "
        "regulatory network and across the tissue. Returns the perturbed gene's change, the most affected "
        "other genes with their mean Δ over all cells, the mean |Δ| per cluster (with its cell type), for each "
        "of focus_cell_types the genes that change most there, and the path of the simulated expression "
        "exported into the run folder (<run>/perturbations/*.feather + .json). Long runs report progress; "
        "check_progress answers meanwhile and cancel stops it."))
    async def run_perturbation(genes: Genes, value: Value = 0.0, value_of_max: ValueOfMax = None,
                               scope: ScopeKind = "all", cell_types: CellTypes = None, clusters: Clusters = None,
                               cell_indices: CellIndices = None, n_propagation: NPropagation = None,
                               top_n: TopN = 15, focus_cell_types: Focus = None, export: bool = True,
                               export_name: ExportName = None, recompute: bool = False,
                               ctx: Context | None = None) -> CallToolResult:
        cells = await b.cells(need_run=True)
        body = perturb_body(genes, value, value_of_max, await _checked_scope(b, cells, scope, cell_types, clusters,
                                                                             cell_indices), n_propagation)
        for n in focus_cell_types or []:
            cells.cell_type_mask(n, "focus_cell_types")
        api = await b.api()
        s = await while_running(ctx, api, api.post("perturb/summary", {**body, "top_n": max(top_n, FOCUS_CANDIDATES),
                                                                       "recompute": recompute}, job=True))
        out = _summary_out(s, cells, list(dict.fromkeys(genes)), top_n)
        if focus_cell_types:
            out["focus"] = await _focus(api, cells, s, out["genes"], list(dict.fromkeys(focus_cell_types)), top_n)
        if export:
            ex = await api.post("perturb/export", {"name": export_name, "overwrite": export_name is None}, job=True)
            if ex["job_id"] != s["job_id"]:
                raise ToolInputError("another perturbation replaced this one in the viewer before it was "
                                     "exported; call run_perturbation again")
            out["files"] = ex["files"]
        b.last_summary = out
        return ok(out, perturbation_text(out))

    @server.tool(description=(
        "Transition field of a perturbation (same arguments as run_perturbation; computed once and reused): "
        "where the change pushes each cell's state, as vectors on the UMAP (basis='umap') or on the tissue "
        "(basis='spatial'). Summarised per cell type as the dominant direction (compass, in plot orientation), "
        "net shift, coherence (1 = all cells agree) and 'towards': the cell type whose centre lies in that "
        "direction; plus the strongest grid arrows. render with field=true draws it."))
    async def perturbation_field(genes: Genes, value: Value = 0.0, value_of_max: ValueOfMax = None,
                                 scope: ScopeKind = "all", cell_types: CellTypes = None, clusters: Clusters = None,
                                 cell_indices: CellIndices = None, n_propagation: NPropagation = None,
                                 basis: Basis = "umap", n_neighbors: Neighbors = 150, nx: Nx = None,
                                 ctx: Context | None = None) -> CallToolResult:
        cells = await b.cells(need_run=True)
        if basis == "umap" and cells.meta["umap_obsm_key"] is None:
            raise ToolInputError("this dataset has no UMAP; use basis='spatial'", "basis")
        body = perturb_body(genes, value, value_of_max, await _checked_scope(b, cells, scope, cell_types, clusters,
                                                                             cell_indices), n_propagation)
        api = await b.api()
        f = await while_running(ctx, api, api.post("perturb/umap-field", {
            **body, "embedding": basis, "n_neighbors": n_neighbors, "nx": nx, "include_cell_vectors": True}, job=True))
        E = (await api.array("umap" if basis == "umap" else "spatial")).reshape(-1, 2).astype(np.float64)
        V = np.column_stack([np.asarray(f["cell_u"], float), np.asarray(f["cell_v"], float)])
        rows = field_directions(E, V, group_masks(cells.clusters, cells.codes, cells.categories, cells.labels))
        grid = {k: f[k] for k in ("nx", "ny", "grid_x", "grid_y", "u", "v", "mask", "counts")}
        b.last_field = {"basis": basis, "genes": list(dict.fromkeys(genes)), "grid": grid}
        out = {"basis": basis, "genes": b.last_field["genes"], "job_id": f["job_id"], "cached": f["cached"],
               "groups": rows, "strongest_bins": strongest_bins(f), "n_bins_shown": int(np.sum(f["mask"])),
               "nx": f["nx"], "ny": f["ny"], "params": f["params"]}
        return ok(out, field_text(rows, basis))

    _register_jobs(server, b)


def _register_jobs(server: MCPServer, b: Backend) -> None:
    @server.tool(description=(
        "Perturb each of a list of genes on its own (knockout or overexpress, in scope) and rank them by "
        "impact: the mean |Δ| over all cells and all other genes. Runs as a job: returns the ranking when it "
        "finishes within wait_s seconds, else the job's progress — then call check_progress with its job_id "
        "(cancel stops it; finished genes are kept)."))
    async def screen(genes: ScreenGenes, mode: Mode = "knockout", scope: ScopeKind = "all",
                     cell_types: CellTypes = None, clusters: Clusters = None, cell_indices: CellIndices = None,
                     n_propagation: NPropagation = None, wait_s: WaitS = 20.0) -> CallToolResult:
        from ..errors import near_matches

        cells = await b.cells(need_run=True)
        sc = await _checked_scope(b, cells, scope, cell_types, clusters, cell_indices)
        known = set(await (await b.api()).get("genes/full"))
        for g in genes:
            if g not in known:
                raise ToolInputError(f"'{g[:80]}' is not a gene of the dataset{near_matches(g, known)}", "genes")
        uniq = list(dict.fromkeys(genes))
        job = b.new_job("screen", len(uniq))
        job.task = asyncio.create_task(_run_screen(b, job, uniq, mode, sc, n_propagation))
        await asyncio.wait({job.task}, timeout=wait_s)
        return _job_result(job)

    @server.tool(description=(
        "Progress of the work in flight: with job_id of an MCP job (from screen), its state, step and — once "
        "done — its result; without, the viewer's running perturbation job (step of n_steps), the dataset "
        "load and every MCP job. Answers at once, also while a perturbation runs."))
    async def check_progress(job_id: JobId = None) -> CallToolResult:
        if job_id is not None and not job_id.isdigit():
            return _job_result(_job(b, job_id))
        p = await (await b.api()).get("perturb/progress")
        jobs = [j.to_json(with_result=False) for j in b.jobs.values()]
        out = {"viewer": p, "jobs": jobs}
        run = p.get("job")
        text = (f"viewer job {run['id']} ({run['kind']} {run['gene']}): {run['message']}, {run['percent']}%"
                if run else "no viewer job running")
        text += f"; load: {p['load']['state']}" + "".join(
            f"; {j['job_id']}: {j['state']} {j['step']}/{j['n_steps']}" for j in jobs)
        return ok(out, text)

    @server.tool(description=(
        "Cancel work: job_id of an MCP job (screen; finished genes are kept), a viewer job id, or nothing to "
        "cancel every running and waiting job. include_load=true also abandons a dataset load in progress. "
        "A cancelled run_perturbation returns an error saying so."))
    async def cancel(job_id: JobId = None, include_load: bool = False) -> CallToolResult:
        api = await b.api()
        mine = [] if job_id is not None and job_id.isdigit() else (
            [_job(b, job_id)] if job_id else [j for j in b.jobs.values() if j.state == "running"])
        for j in mine:
            if j.state == "running":
                j.state, j.message = "cancelled", "cancel requested"
        body: dict[str, Any] = {"include_load": include_load}
        if job_id is not None and job_id.isdigit():
            body["job_id"] = int(job_id)
        out = await api.post("cancel", body)
        out["mcp_jobs"] = [j.id for j in mine]
        return ok(out, out["message"] + (f"; MCP jobs: {', '.join(out['mcp_jobs'])}" if mine else ""))


def _job(b: Backend, job_id: str) -> Job:
    job = b.jobs.get(job_id)
    if job is None:
        raise ToolInputError(f"no MCP job '{job_id[:40]}' (jobs: {', '.join(b.jobs) or 'none'})", "job_id")
    return job


def _job_result(job: Job) -> CallToolResult:
    d = job.to_json()
    res = d["result"]
    if res is not None and res.get("ranking"):
        rows = [[r["rank"], r["gene"], r["impact"], r["n_genes_changed"],
                 ", ".join(t["gene"] for t in r["top_affected"][:3])] for r in res["ranking"]]
        head = f"{job.id} {job.state} ({job.step}/{job.n_steps} genes):\n"
        return ok(d, head + table_text(["rank", "gene", "impact", "changed", "top affected"], rows))
    return ok(d, f"{job.id} {job.state}: {job.message} ({job.step}/{job.n_steps}); check_progress job_id="
                 f"{job.id}" + (f"; error: {job.error}" if job.error else ""))


async def _run_screen(b: Backend, job: Job, genes: list[str], mode: str, scope: dict[str, Any],
                      n_propagation: int | None) -> None:
    import time

    api = await b.api()
    rows: list[dict[str, Any]] = []
    try:
        for i, g in enumerate(genes):
            if job.state != "running":
                break
            job.step, job.message = i, f"gene {i + 1}/{len(genes)}: {g}"
            body = perturb_body([g], 0.0, 1.0 if mode == "overexpress" else None, scope, n_propagation)
            s = await api.post("perturb/summary", {**body, "top_n": 5}, job=True)
            rows.append(screen_row(g, s))
            job.step = i + 1
        if job.state == "running":
            job.state, job.message = "done", "done"
    except ApiFailure as e:
        if job.state == "cancelled" or (e.status == 409 and "cancel" in e.detail):
            job.state, job.message = "cancelled", "cancelled"
        else:
            job.state, job.message, job.error = "error", "failed", str(e)
    except Exception as e:  # keep the server up; the job says what happened
        job.state, job.message, job.error = "error", "failed", f"{type(e).__name__}: {e}"
    finally:
        job.t1 = time.perf_counter()
        job.result = {"mode": mode, "scope": scope, "n_screened": len(rows), "ranking": rank_screen(rows)}

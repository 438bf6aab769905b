"""Routes of perturbations: preview, delta, summary, UMAP field, export, progress, cancel."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from fastapi.responses import Response

from . import payloads as pl
from . import work
from ._errors import ApiError
from .jobs import Job, run_job
from .routes_data import binary, binary_doc
from .schemas import CancelRequest, ExportRequest, FieldRequest, PreviewRequest, SummaryRequest
from .state import LastResult, ViewerState


def build(state: ViewerState, errors: dict[int | str, dict[str, Any]]) -> APIRouter:
    r = APIRouter(prefix="/api", responses=errors)

    async def result_for(kind: str, req: PreviewRequest | SummaryRequest | FieldRequest,
                         then: Any = None) -> tuple[LastResult, bool, Any, Job]:
        """Validate, then compute (or reuse) the perturbation in a job; ``then(job, last)`` runs after it."""
        ds, s = state.require_run()
        gene, desired, mask, label, n_prop, key = work.prepared(state, ds, s, req)

        def task(job: Job) -> tuple[LastResult, bool, Any]:
            last, cached = work.perturbation(state, s, job, gene, desired, mask, label, n_prop, key, req.recompute)
            return last, cached, (then(job, last) if then is not None else None)

        (last, cached, extra), job = await run_job(state, kind, task, gene=req.gene)
        return last, cached, extra, job

    @r.post("/perturb/preview", response_class=Response,
            responses=binary_doc("float32[N] Δ of return_gene (default: the perturbed gene)"))
    async def preview(body: PreviewRequest) -> Response:
        ds, _ = state.require_run()
        rgene = body.return_gene or body.gene
        state.require_gene(ds, rgene, "return_gene")
        last, cached, _, _ = await result_for("preview", body)
        headers = {pl.H_JOB: str(last.job_id), pl.H_DELTA_GENE: rgene,
                   pl.H_SECONDS: f"{0.0 if cached else last.seconds:.6f}", pl.H_CACHED: "1" if cached else "0"}
        return binary(pl.to_bytes(last.result.delta_of(rgene), pl.F32), headers)

    @r.post("/perturb/summary", summary="summary of a perturbation (reuses the last result)")
    async def summary(body: SummaryRequest) -> dict[str, Any]:
        last, cached, _, _ = await result_for("summary", body)
        return {"job_id": last.job_id, "cached": cached, **pl.perturb_summary(last.result, body.top_n)}

    @r.post("/perturb/umap-field", summary="transition field of a perturbation on the UMAP (or the tissue)")
    async def umap_field(body: FieldRequest) -> dict[str, Any]:
        ds, s = state.require_run()
        if body.embedding == "umap" and ds.tissue.umap is None:
            raise ApiError(404, "this dataset has no UMAP (obsm['X_umap'] or obsm['umap'])")
        if body.quick_ko_sanity:
            gene, desired, mask, _, _, _ = work.prepared(state, ds, s, body)

            def quick(job: Job) -> dict[str, Any]:
                return work.field(ds, s, job, body, work.quick_delta(s, gene, desired, mask))

            out, job = await run_job(state, "umap-field", quick, gene=body.gene)
            return {"job_id": job.id, "cached": False, **out}
        last, cached, out, _ = await result_for(
            "umap-field", body, lambda job, last: work.field(ds, s, job, body, last.result))
        return {"job_id": last.job_id, "cached": cached, **out}

    @r.post("/perturb/export", summary="write the last result into the run folder")
    async def export(body: Annotated[ExportRequest | None, Body()] = None) -> dict[str, Any]:
        req = body or ExportRequest()
        _, s = state.require_run()
        last = state.last
        if last is None:
            raise ApiError(404, "no perturbation to export; POST /api/perturb/preview first")
        files, _ = await run_job(state, "export", lambda job: work.export(s, last, req.name, req.overwrite),
                                 gene=last.result.targets[0])
        return {"ok": True, "job_id": last.job_id, "files": files}

    _control_routes(r, state)
    return r


def _control_routes(r: APIRouter, state: ViewerState) -> None:
    """``perturb/delta``, ``perturb/progress`` and ``cancel``: no job of their own."""

    @r.get("/perturb/delta", response_class=Response,
           responses=binary_doc("float32[N] Δ of a gene in the last perturbation"))
    def delta(gene: str = Query(..., min_length=1, max_length=200)) -> Response:
        ds, _ = state.require_run()
        state.require_gene(ds, gene)
        last = state.last
        if last is None:
            raise ApiError(404, "no perturbation yet; POST /api/perturb/preview first")
        return binary(pl.to_bytes(last.result.delta_of(gene), pl.F32), {pl.H_JOB: str(last.job_id)})

    @r.get("/perturb/progress", summary="the running and the last job, and the load")
    def progress() -> dict[str, Any]:
        return {**state.jobs.progress(), "load": state.status.to_json()}

    @r.post("/cancel", summary="cancel perturbation jobs (and optionally the load)")
    def cancel(body: Annotated[CancelRequest | None, Body()] = None) -> dict[str, Any]:
        req = body or CancelRequest()
        ids = state.jobs.cancel(req.job_id)
        load = state.cancel_load() if req.include_load else False
        msg = f"cancel requested for {len(ids)} job(s)" + ("; load abandoned" if load else "")
        return {"ok": True, "cancelled": ids, "load_cancelled": load, "message": msg}

"""The work behind the perturbation routes: scopes, the cached last result, fields, exports, interactions.

Functions here run inside jobs (worker thread) or validate requests before a job is queued; they raise
:class:`ApiError` for a request that cannot be served and call ``job.tick`` so that cancel works.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import _keys
from . import payloads as pl
from ._errors import ApiError
from .state import LastResult

if TYPE_CHECKING:
    from ..perturbation.result import PerturbResult
    from ..perturbation.session import RunSession
    from .dataset import Dataset
    from .jobs import Job
    from .schemas import CollectInteractionsRequest, FieldRequest, PerturbRequest
    from .state import ViewerState


def scope_mask(ds: Dataset, scope: dict[str, Any]) -> tuple[np.ndarray, str]:
    """Boolean mask of the cells a ``Scope`` selects and its label; ApiError 400 when it selects none."""
    t = ds.tissue
    n = t.n_cells
    kind = scope.get("type", "all")
    ct = ds.cell_types
    if kind == "all":
        return np.ones(n, dtype=bool), "all cells"
    if kind == "indices":
        idx = np.asarray(scope["indices"], dtype=np.int64)
        if idx.max() >= n:
            raise ApiError(400, f"scope: cell index {int(idx.max())} out of range (the dataset has {n} cells)")
        mask = np.zeros(n, dtype=bool)
        mask[idx] = True
        return mask, f"{int(mask.sum())} listed cells"
    if kind in ("cell_type", "cell_type_name", "cell_types"):
        if ct.codes is None:
            raise ApiError(400, "scope: this dataset has no cell-type column; use a cluster or cell scope")
        if kind == "cell_type":
            if scope["category"] >= len(ct.categories):
                raise ApiError(400, f"scope: cell-type category {scope['category']} out of range "
                                    f"(0..{len(ct.categories) - 1})")
            names = [ct.categories[scope["category"]]]
        else:
            names = [scope["name"]] if kind == "cell_type_name" else list(scope["names"])
            bad = [x for x in names if x not in set(ct.categories)]
            if bad:
                from ..errors import near_matches

                raise ApiError(400, f"scope: cell type '{bad[0][:80]}' is not a label of "
                                    f"{ct.column}{near_matches(bad[0], ct.categories)}")
        return _nonempty(ct.labels_of(names), "cell types " + ", ".join(names))
    ids = [scope["cluster_id"]] if kind == "cluster" else list(scope["cluster_ids"])
    bad_ids = [c for c in ids if c >= t.n_clusters]
    if bad_ids:
        raise ApiError(400, f"scope: cluster id {bad_ids[0]} out of range (0..{t.n_clusters - 1})")
    return _nonempty(np.isin(t.clusters, ids), "clusters " + ", ".join(map(str, ids)))


def _nonempty(mask: np.ndarray, label: str) -> tuple[np.ndarray, str]:
    if not mask.any():
        raise ApiError(400, f"scope: {label} select no cell")
    return mask, label


Targets = str | list[str]
"""The perturbed gene, or the gene and its ``with_genes`` (set together)."""
Values = float | list[float]


def prepared(state: ViewerState, ds: Dataset, session: RunSession, req: PerturbRequest
             ) -> tuple[Targets, Values, np.ndarray, str, int, tuple[Any, ...]]:
    """Validate a perturbation request: (gene(s), desired value(s), mask, scope label, n_propagation, cache key).

    One gene gives a ``str`` and a ``float``; with ``with_genes``, lists in the same order.
    """
    genes = list(dict.fromkeys([req.gene, *req.with_genes]))
    for k, g in enumerate(genes):
        state.require_gene(ds, g, "gene" if k == 0 else "with_genes")
    desired = [float(req.desired_expr)] * len(genes)
    if req.desired_of_max is not None:
        gi = session.tissue.gene_index
        desired = [float(req.desired_of_max) * float(session.perturber.hi[gi[g]] if g in gi
                                                     else ds.expression_of(g).max()) for g in genes]
    mask, label = scope_mask(ds, req.scope.model_dump())
    n_prop = int(req.n_propagation or session.perturber.s.n_propagation)
    key = (state.generation, tuple(genes), tuple(desired), pl.mask_digest(mask), n_prop)
    if len(genes) == 1:
        return genes[0], desired[0], mask, label, n_prop, key
    return genes, desired, mask, label, n_prop, key


def perturbation(state: ViewerState, session: RunSession, job: Job, gene: Targets, desired: Values, mask: np.ndarray,
                 label: str, n_prop: int, key: tuple[Any, ...], recompute: bool) -> tuple[LastResult, bool]:
    """The last result when it answers ``key`` (and not ``recompute``), else a new run; returns (result, cached)."""
    last = state.last
    if last is not None and last.key == key and not recompute:
        return last, True
    job.tick(0, n_prop, f"propagation step 0/{n_prop}")
    t0 = time.perf_counter()
    res = session.run(gene, desired, scope=mask, scope_label=label, n_propagation=n_prop,
                      on_step=lambda s, n: job.tick(s, n, f"propagation step {s}/{n}"))
    out = LastResult(key=key, result=res, job_id=job.id, seconds=time.perf_counter() - t0)
    if key[0] == state.generation:
        state.last = out
    return out, False


def field(ds: Dataset, session: RunSession, job: Job, req: FieldRequest, result: PerturbResult) -> dict[str, Any]:
    """Transition field of ``result`` on the UMAP or the spatial coordinates (``req.embedding``; the numbers
    of ``transitions.transition_field`` over :meth:`PerturbResult.field_genes`)."""
    from ..transitions import cell_vectors, grid_field, transition_probabilities

    t = ds.tissue
    E = t.umap if req.embedding == "umap" else t.coords
    assert E is not None
    X, delta, cols = result.field_inputs()
    if req.limit_clusters:
        if not req.highlight_cell_types:
            raise ApiError(400, "limit_clusters needs highlight_cell_types (cell-type labels to keep)")
        keep = ds.cell_types.labels_of(list(req.highlight_cell_types))
        if keep.size == 0 or not keep.any():
            raise ApiError(400, "highlight_cell_types: no cell has any of these cell-type labels")
        delta = delta * keep[:, None]
    compat = session.cfg.reference_compat
    job.tick(1, 3, f"neighbours on the {req.embedding} coordinates")
    nb = ds.umap_knn(req.n_neighbors, compat, req.embedding)
    job.tick(2, 3, "transition probabilities")
    graph = transition_probabilities(X, delta, E, n_neighbors=req.n_neighbors,
                                     temperature=req.temperature, remove_null=req.remove_null,
                                     reference_compat=compat, delta_rescale=req.delta_rescale, neighbors=nb,
                                     delta_genes=cols)
    job.tick(3, 3, "vectors and grid")
    V = cell_vectors(graph, E, unit_directions=req.unit_directions)
    grid = grid_field(E, V, nx=req.nx, min_cells=req.min_cells, vector_scale=req.vector_scale,
                      magnitude_threshold=req.magnitude_threshold)
    params = {k: v for k, v in graph.params.items() if k != "timings"}
    params.update(grid.params)
    params["unit_directions"] = req.unit_directions
    params["embedding"] = req.embedding
    return pl.field_payload(grid, V if req.include_cell_vectors else None, params)


def quick_delta(session: RunSession, gene: Targets, desired: Values, mask: np.ndarray) -> PerturbResult:
    """``gene`` (or each gene of a list) set to ``desired`` in ``mask`` without propagation (every other
    gene unchanged)."""
    from ..perturbation.result import HeldColumns, PerturbResult

    genes = [gene] if isinstance(gene, str) else list(gene)
    values_of = [float(desired)] * len(genes) if isinstance(desired, float | int) else [float(v) for v in desired]
    base = session.tissue.columns(genes)
    values = base.copy()
    for k, v in enumerate(values_of):
        values[mask, k] = v
    return PerturbResult(session.tissue, targets=genes, desired=values_of, scope=mask,
                         held=[HeldColumns(genes, values, x0=base)])


def export(session: RunSession, last: LastResult, name: str | None, overwrite: bool) -> dict[str, str]:
    """Write the last result (feather + JSON summary) into ``<run>/perturbations/``, atomically."""
    from ..perturbation.session import write_result

    res = last.result
    stem = name or pl.export_stem(res.targets[0], res.desired[0], res.scope_label, res.n_propagation)
    folder = session.run_dir / _keys.PERTURB_EXPORT_DIR
    dest = folder / f"{stem}.feather"
    if not overwrite and (dest.exists() or dest.with_suffix(".json").exists()):
        raise ApiError(409, f"{dest} already exists; choose another name or pass overwrite: true")
    try:
        paths = write_result(res, dest)
    except OSError as e:  # a read-only or full run folder: say where, nothing partial is left behind
        raise ApiError(409, f"cannot write {dest}: {e.strerror or e}; check the run folder's permissions "
                            "and free space") from None
    return {k: str(v) for k, v in paths.items()}


def interactions(ds: Dataset, session: RunSession, job: Job, req: CollectInteractionsRequest) -> dict[str, Any]:
    """``betadata/collect_interactions``: one cell type or cluster, every trained gene."""
    from ..betadata.interactions import collect_interactions

    t = ds.tissue
    if req.filter == "cell_type":
        ct = ds.cell_types
        if req.cell_type is None:
            raise ApiError(400, "cell_type is required with filter=cell_type")
        if ct.codes is None or req.cell_type not in ct.categories:
            raise ApiError(400, f"cell_type '{req.cell_type[:80]}' is not a cell-type label of this dataset")
        cats = np.asarray([*ct.categories, ""], dtype=object)
        labels = cats[np.minimum(ct.codes.astype(np.int64), len(ct.categories))]
        group = req.cell_type
    else:
        if req.cluster_id is None:
            raise ApiError(400, "cluster_id is required with filter=cluster")
        if req.cluster_id >= t.n_clusters:
            raise ApiError(400, f"cluster_id {req.cluster_id} out of range (0..{t.n_clusters - 1})")
        labels = np.asarray(t.cluster_labels, dtype=object)[t.clusters]
        group = str(t.cluster_labels[req.cluster_id])
    trained = session.betabase.genes
    genes = trained if req.genes is None else [g for g in req.genes if g in session.betabase]
    if not genes:
        raise ApiError(400, "none of the requested genes has betadata (see GET /api/betadata/genes)")
    genes = genes[: req.max_genes]
    df = collect_interactions(session.betabase, t, labels, aggregate=req.aggregate, cell_types=[group],
                              genes=genes, on_gene=lambda i, n, g: job.tick(i, n, f"gene {i + 1}/{n}: {g}"))
    rows = df.head(req.limit).astype(object).where(df.head(req.limit).notna(), None).to_dict(orient="records")
    return {"interactions": rows, "n_reported": len(rows), "n_total": len(df), "capped": len(df) > req.limit,
            "aggregate": req.aggregate, "n_cells": int((labels == group).sum()), "n_genes": len(genes)}

"""Tools of the trained models and the cell neighbourhood: top_betas, cell_context, collect_interactions."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from mcp.server.mcpserver import Context
from mcp.types import CallToolResult
from pydantic import Field

from ..naming import LR, TFL, parse_modulator
from .errors import ToolInputError
from .params import CellType, ClusterId, Gene
from .summaries import fmt, table_text
from .tools_data import ok
from .tools_perturb import while_running

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from .backend import Backend, Cells

TopK = Annotated[int, Field(ge=1, le=200, description="modulators returned")]
CellIndex = Annotated[int | None, Field(ge=0, description="a cell position in obs order (0-based)")]
NeighborK = Annotated[int, Field(ge=1, le=200, description="spatial nearest neighbours examined")]
Direction = Annotated[Literal["incoming", "outgoing"], Field(description=(
    "incoming: neighbours send ligands to the cell; outgoing: the cell sends to its neighbours"))]
Aggregate = Annotated[Literal["mean", "min", "max", "sum", "positive", "negative"], Field(description=(
    "how each coefficient is aggregated over the cells (positive/negative: mean of those values only)"))]
Family = Annotated[Literal["any", "tf", "lr", "tfl"] , Field(description=(
    "keep only TF modulators (tf), ligand–receptor pairs (lr) or ligand–TF pairs (tfl)"))]
Rows = Annotated[int, Field(ge=1, le=5000, description="rows returned (strongest |value| first)")]
TargetGenes = Annotated[list[Gene] | None, Field(max_length=5000, description="target genes (null = all trained)")]


def parts(modulator: str) -> dict[str, Any]:
    """``family``, ``ligand``, ``receptor``, ``tf`` of a modulator name (``TF``, ``L$R``, ``L#TF``)."""
    m = parse_modulator(modulator)
    if m.kind == LR:
        return {"family": "lr", "ligand": m.first, "receptor": m.second, "tf": None}
    if m.kind == TFL:
        return {"family": "tfl", "ligand": m.first, "receptor": None, "tf": m.second}
    return {"family": "tf", "ligand": None, "receptor": None, "tf": m.first}


def _cells_of(cells: Cells, cell_type: str | None, cluster: int | None) -> tuple[np.ndarray | None, str]:
    if cell_type is not None and cluster is not None:
        raise ToolInputError("give cell_type or cluster, not both", "cluster")
    if cell_type is not None:
        return cells.cell_type_mask(cell_type), cell_type
    if cluster is not None:
        if cluster >= len(cells.labels):
            raise ToolInputError(f"cluster id {cluster} out of range (0..{len(cells.labels) - 1})", "cluster")
        return cells.clusters == cluster, f"cluster {cluster} ({cells.labels[cluster]})"
    return None, "all cells"


def pick_cell(xy: np.ndarray, members: np.ndarray, near: np.ndarray | None) -> int:
    """A representative cell of ``members`` (mask): the one nearest the members' median position, or with
    ``near`` (mask of other cells) the member nearest to any of those (ties: lowest index)."""
    idx = np.flatnonzero(members)
    if near is None:
        d = np.hypot(*(xy[idx] - np.median(xy[idx], axis=0)).T)
    else:
        from scipy.spatial import cKDTree

        others = np.flatnonzero(near & ~members)
        if others.size == 0:
            raise ToolInputError("no cell of that type outside cell_type", "near_cell_type")
        d, _ = cKDTree(xy[others]).query(xy[idx])
    return int(idx[int(np.argmin(d))])


def _group_of(cells: Cells, i: int) -> str:
    if cells.codes is not None and int(cells.codes[i]) < len(cells.categories):
        return cells.categories[int(cells.codes[i])]
    return cells.labels[int(cells.clusters[i])]


def register(server: MCPServer, b: Backend) -> None:
    @server.tool(description=(
        "The strongest modulators of a target gene's trained model: TFs, ligand–receptor pairs (L$R: ligand "
        "received from neighbours × receptor) and ligand–TF pairs (L#TF), ranked by mean |β| over the cells of "
        "one cell type (or cluster, or all cells). A positive mean β activates the target, a negative one "
        "represses it. The target must be trained (list_genes trained_only=true)."))
    async def top_betas(target_gene: Gene, cell_type: CellType = None, cluster: ClusterId = None,
                        top_k: TopK = 15) -> CallToolResult:
        cells = await b.cells(need_run=True)
        mask, where = _cells_of(cells, cell_type, cluster)
        idx = None if mask is None else np.flatnonzero(mask).tolist()
        rows = await (await b.api()).post("betadata/top", {"gene": target_gene, "indices": idx, "top_k": top_k})
        out = [{**r, **parts(r["modulator"]), "effect": "activates" if r["mean"] > 0 else "represses"}
               for r in rows]
        text = f"Modulators of {target_gene} in {where} (by mean |β|):\n" + table_text(
            ["modulator", "family", "mean β", "mean |β|"],
            [[r["modulator"], r["family"], fmt(r["mean"]), fmt(r["mean_abs"])] for r in out])
        return ok({"target_gene": target_gene, "cells": where, "n_cells": cells.meta["n_obs"] if idx is None
                   else len(idx), "modulators": out}, text)

    @server.tool(description=(
        "Who sends ligands to a cell (direction='incoming'; 'outgoing': whom it sends to): the spatial "
        "neighbours that express a ligand of focus_gene's modulators whose receptor the cell expresses, with "
        "support √(ligand × receptor expression) and the cell's β for that pair, ranked by |β| × the strongest "
        "support (the pairs that matter most for focus_gene first). Give cell_index, or cell_type "
        "to examine the cell of that type nearest the type's spatial centre — or, with near_cell_type, the "
        "one nearest to a cell of that other type (a border cell: e.g. the T cell closest to fibroblasts). "
        "Summarised per ligand–receptor pair by partner cell type."))
    async def cell_context(focus_gene: Gene, cell_index: CellIndex = None, cell_type: CellType = None,
                           near_cell_type: CellType = None, neighbor_k: NeighborK = 24,
                           direction: Direction = "incoming") -> CallToolResult:
        cells = await b.cells()
        api = await b.api()
        if (cell_index is None) == (cell_type is None):
            raise ToolInputError("give exactly one of cell_index or cell_type", "cell_index")
        if near_cell_type is not None and cell_type is None:
            raise ToolInputError("near_cell_type needs cell_type (the type of the cell to pick)", "near_cell_type")
        if cell_type is not None:
            xy = (await api.array("spatial")).reshape(-1, 2).astype(np.float64)
            near = cells.cell_type_mask(near_cell_type, "near_cell_type") if near_cell_type else None
            cell_index = pick_cell(xy, cells.cell_type_mask(cell_type), near)
        elif cell_index >= cells.meta["n_obs"]:  # type: ignore[operator]
            raise ToolInputError(f"{cell_index} out of range (the dataset has {cells.meta['n_obs']} cells)",
                                 "cell_index")
        assert cell_index is not None
        c = await api.post("network/cell-context", {"cell_index": cell_index, "focus_gene": focus_gene,
                                                     "neighbor_k": neighbor_k, "direction": direction})
        pairs: dict[tuple[str, str], dict[str, Any]] = {}
        for nb in c["neighbors"]:
            for e in nb["edges"]:
                p = pairs.setdefault((e["ligand"], e["receptor"]), {
                    "ligand": e["ligand"], "receptor": e["receptor"], "beta": e["beta"], "n_partners": 0,
                    "max_support": 0.0, "partner_types": Counter(), "partners": []})
                p["n_partners"] += 1
                p["max_support"] = max(p["max_support"], e["support_score"])
                p["partner_types"][_group_of(cells, nb["index"])] += 1
                p["partners"].append({"index": nb["index"], "cell_type": _group_of(cells, nb["index"]),
                                      "distance": nb["distance"], "support": e["support_score"]})
        for p in pairs.values():  # what matters for the focus gene: its coefficient × the strongest support
            p["weight"] = abs(p["beta"] or 0.0) * p["max_support"]
        summary = sorted(pairs.values(), key=lambda p: (-p["weight"], -p["max_support"], p["ligand"], p["receptor"]))
        for p in summary:
            p["partner_types"] = dict(p["partner_types"].most_common())
            p["partners"] = sorted(p["partners"], key=lambda x: -x["support"])[:10]
        me = _group_of(cells, cell_index)
        who = "senders" if direction == "incoming" else "receivers"
        lines = [f"cell {cell_index} ({me}), {focus_gene} = {fmt(c['focus_expr'])}; modulators from "
                 f"{c['modulator_source']}; {len(c['neighbors'])} neighbours examined."]
        lines += [f"  {p['ligand']}→{p['receptor']} (β {fmt(p['beta'])}): {p['n_partners']} {who} ("
                  + ", ".join(f"{k} ×{v}" for k, v in p["partner_types"].items()) + f"), max support "
                  f"{fmt(p['max_support'])}" for p in summary[:10]]
        if not summary:
            lines.append(f"  no neighbour exchanges a ligand of {focus_gene}'s modulators with this cell")
        out = {"cell_index": cell_index, "cell_type": me, "focus_gene": focus_gene, "direction": direction,
               "pairs": summary, "context": c}
        return ok(out, "\n".join(lines))

    @server.tool(description=(
        "Every coefficient of every trained gene aggregated over the cells of one cell type (or cluster): rows "
        "of modulator → target with the aggregated β, family (tf, lr, tfl) and its ligand/receptor/TF, "
        "strongest |value| first. Answers 'which signals drive which genes in T cells'. family filters the "
        "rows; genes limits the targets."))
    async def collect_interactions(cell_type: CellType = None, cluster: ClusterId = None,
                                   aggregate: Aggregate = "mean", family: Family = "any",
                                   genes: TargetGenes = None, limit: Rows = 50,
                                   ctx: Context | None = None) -> CallToolResult:
        cells = await b.cells(need_run=True)
        if (cell_type is None) == (cluster is None):
            raise ToolInputError("give exactly one of cell_type or cluster", "cell_type")
        _cells_of(cells, cell_type, cluster)
        body: dict[str, Any] = {"aggregate": aggregate, "genes": genes,
                                "limit": limit if family == "any" else 200_000}
        body |= {"filter": "cell_type", "cell_type": cell_type} if cell_type else {"filter": "cluster",
                                                                                    "cluster_id": cluster}
        api = await b.api()
        res = await while_running(ctx, api, api.post("betadata/collect_interactions", body, job=True))
        rows = [r for r in res["interactions"] if family == "any" or r["family"] == family]
        out = {**{k: res[k] for k in ("n_total", "aggregate", "n_cells", "n_genes")}, "family": family,
               "n_matching": len(rows), "interactions": rows[:limit]}
        where = cell_type or f"cluster {cluster}"
        text = f"{len(rows)} {family if family != 'any' else ''} interactions in {where} ({res['n_cells']} cells); " \
               f"strongest:\n" + table_text(["modulator", "target", aggregate, "family"],
                                            [[r["modulator"], r["target"], fmt(r["value"]), r["family"]]
                                             for r in rows[:limit]], limit=15)
        return ok(out, text)

"""Tools of what the human sees: render (a PNG drawn with ``st.pl``) and show_in_viewer (the shared view)."""

from __future__ import annotations

import asyncio
import base64
import io
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from mcp.types import CallToolResult, ImageContent, TextContent
from pydantic import Field

from .errors import ToolInputError
from .summaries import fmt
from .tools_data import ok

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from .backend import Backend, Cells

Layout = Annotated[Literal["spatial", "umap"] | None, Field(description=(
    "spatial (tissue coordinates) or umap; null = the viewer's current layout"))]
Colour = Annotated[Literal["celltype", "gene", "beta", "delta"] | None, Field(description=(
    "celltype, gene (expression of gene), beta (coefficient beta_column of beta_gene's model) or delta (the "
    "last perturbation's change of delta_gene); null = the viewer's current colouring"))]
OptGene = Annotated[str | None, Field(min_length=1, max_length=200, description="a gene of the dataset")]
Column = Annotated[str | None, Field(min_length=1, max_length=400, description=(
    "a betadata column of beta_gene, e.g. 'beta_Il6$Il6st' (null = its strongest)"))]
Message = Annotated[str | None, Field(max_length=500, description="a short note shown to the human in the page")]
Dpi = Annotated[int, Field(ge=50, le=200, description="resolution (the figure is 6.5 × 5.5 in)")]


def _view_values(view: dict[str, Any], **given: Any) -> dict[str, Any]:
    """The view to draw: arguments given win over the viewer's current view; defaults spatial / celltype."""
    out = {k: (v if v is not None else view.get(k)) for k, v in given.items()}
    out["layout"] = out["layout"] or "spatial"
    out["colour"] = out["colour"] or "celltype"
    return out


async def _values(b: Backend, v: dict[str, Any]) -> tuple[np.ndarray | None, str, str, bool]:
    """Per-cell values of the colouring, the colour-bar label, the colour map and whether it is centred."""
    api = await b.api()
    c = v["colour"]
    if c == "gene":
        if not v["gene"]:
            raise ToolInputError("colour 'gene' needs gene", "gene")
        return await api.array("gene/expression", gene=v["gene"]), f"{v['gene']} expression", "viridis", False
    if c == "beta":
        if not v["beta_gene"]:
            raise ToolInputError("colour 'beta' needs beta_gene (a trained gene)", "beta_gene")
        col = v["beta_column"]
        if not col:
            top = await api.post("betadata/top", {"gene": v["beta_gene"], "top_k": 1})
            col = v["beta_column"] = top[0]["column"] if top else "beta0"
        vals = await api.array("betadata/values", gene=v["beta_gene"], column=col)
        return vals, f"β {col} of {v['beta_gene']}", "RdBu_r", True
    if c == "delta":
        gene = v["delta_gene"] or (b.last_summary["top_affected_genes"][0]["gene"] if b.last_summary and
                                   b.last_summary["top_affected_genes"] else None)
        if not gene:
            raise ToolInputError("colour 'delta' needs delta_gene (or run_perturbation first)", "delta_gene")
        v["delta_gene"] = gene
        return await api.array("perturb/delta", gene=gene), f"Δ {gene}", "RdBu_r", True
    return None, "", "", False


def _draw(coords: np.ndarray, cells: Cells, v: dict[str, Any], values: np.ndarray | None, label: str, cmap: str,
          centred: bool, grid: Any, dpi: int, title: str) -> bytes:
    """The PNG of one view, drawn with :mod:`spacetravlr_py.plotting` on a private (thread-safe) figure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .. import plotting

    fig = Figure(figsize=(6.5, 5.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    groups = cells.codes if cells.codes is not None else cells.clusters
    names = cells.categories if cells.codes is not None else cells.labels
    if cells.codes is not None:
        groups = np.where(groups == 65535, -1, groups).astype(np.int64)
    basis = "UMAP" if v["layout"] == "umap" else "spatial"
    if grid is not None:
        plotting.transition_field(coords, grid, clusters=groups, cluster_labels=names, ax=ax, basis=basis,
                                  title=title)
    else:
        plotting.cells(coords, values=values, clusters=groups, cluster_labels=names, label=label, cmap=cmap,
                       centred=centred, ax=ax, basis=basis, title=title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def _grid(last: dict[str, Any]) -> Any:
    from ..transitions.field import GridField

    g = last["grid"]
    ny, nx = int(g["ny"]), int(g["nx"])
    mask = np.asarray(g["mask"], bool).reshape(ny, nx)
    u = np.where(mask, np.asarray(g["u"], float).reshape(ny, nx), np.nan)
    v = np.where(mask, np.asarray(g["v"], float).reshape(ny, nx), np.nan)
    return GridField(np.asarray(g["grid_x"], float), np.asarray(g["grid_y"], float), u, v,
                     np.asarray(g["counts"], float).reshape(ny, nx), mask)


def register(server: MCPServer, b: Backend) -> None:
    @server.tool(description=(
        "A PNG image of the cells on the tissue (layout='spatial') or the UMAP, coloured by cell type, a "
        "gene's expression, a model coefficient (beta) or the last perturbation's Δ of a gene — drawn with "
        "the package's matplotlib plots. Arguments left null follow the viewer's current view (what "
        "show_in_viewer set). field=true draws the last perturbation_field's arrows over the cell types "
        "(the field's basis must match the layout)."))
    async def render(layout: Layout = None, colour: Colour = None, gene: OptGene = None, beta_gene: OptGene = None,
                     beta_column: Column = None, delta_gene: OptGene = None, field: bool = False,
                     dpi: Dpi = 100) -> CallToolResult:
        cells = await b.cells()
        api = await b.api()
        v = _view_values(await api.get("view"), layout=layout, colour=colour, gene=gene, beta_gene=beta_gene,
                         beta_column=beta_column, delta_gene=delta_gene)
        if v["layout"] == "umap" and cells.meta["umap_obsm_key"] is None:
            raise ToolInputError("this dataset has no UMAP; use 'spatial'", "layout")
        grid = None
        if field:
            last = b.last_field
            if last is None or last["basis"] != v["layout"]:
                raise ToolInputError(f"no perturbation_field on the {v['layout']} yet: call perturbation_field "
                                     f"with basis='{v['layout']}' first", "field")
            grid = _grid(last)
        values, label, cmap, centred = (None, "", "", False) if grid is not None else await _values(b, v)
        coords = (await api.array(v["layout"])).reshape(-1, 2).astype(np.float64)
        what = ("transition field of " + ", ".join(b.last_field["genes"]) if grid is not None and b.last_field
                else label or "cell types")
        title = f"{what} ({v['layout']})"
        png = await asyncio.to_thread(_draw, coords, cells, v, values, label, cmap, centred, grid, dpi, title)
        rng = "" if values is None else f"; range {fmt(float(np.min(values)))}..{fmt(float(np.max(values)))}"
        text = f"{title}: {cells.meta['n_obs']} cells{rng}; PNG {len(png)} bytes"
        info = {k: v[k] for k in ("layout", "colour", "gene", "beta_gene", "beta_column", "delta_gene")}
        info |= {"field": field, "png_bytes": len(png), "title": title}
        return CallToolResult(content=[ImageContent(type="image", data=base64.b64encode(png).decode(),
                                                    mime_type="image/png"), TextContent(type="text", text=text)],
                              structured_content=info)

    @server.tool(description=(
        "Make the viewer in the human's browser show something: the layout (spatial / umap), the colouring "
        "(celltype, gene + gene, beta + beta_gene [+ beta_column], delta + delta_gene of the last perturbation) "
        "and an optional message shown in the page. Fields left null keep their current value. The page "
        "follows within about a second; open viewer_url (get_meta) to see it."))
    async def show_in_viewer(layout: Layout = None, colour: Colour = None, gene: OptGene = None,
                             beta_gene: OptGene = None, beta_column: Column = None, delta_gene: OptGene = None,
                             message: Message = None) -> CallToolResult:
        await b.ready_meta()
        given = {"layout": layout, "colour": colour, "gene": gene, "beta_gene": beta_gene,
                 "beta_column": beta_column, "delta_gene": delta_gene, "message": message}
        body = {k: v for k, v in given.items() if v is not None}
        if not body:
            raise ToolInputError("give at least one of layout, colour, gene, beta_gene, beta_column, delta_gene, "
                                 "message", "layout")
        view = await (await b.api()).post("view", {**body, "source": "assistant"})
        what = {"celltype": "cell types", "gene": f"expression of {view['gene']}",
                "beta": f"β {view['beta_column']} of {view['beta_gene']}",
                "delta": f"Δ {view['delta_gene']}"}.get(view["colour"] or "", "its current colouring")
        text = (f"The viewer at {b.base} now shows {what} on the {view['layout'] or 'current'} layout "
                f"(view version {view['version']}).")
        return ok({"view": view, "viewer_url": b.base}, text)

"""Argument types shared by the tools (their JSON schemas: constraints and descriptions) and the one
place that turns scope arguments into the viewer's ``Scope`` object."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from .errors import ToolInputError

Gene = Annotated[str, Field(min_length=1, max_length=200, description="a gene name of the dataset (var_names)")]
Genes = Annotated[list[Gene], Field(min_length=1, max_length=20, description=(
    "gene(s) to perturb; several are set together, to the same value, in the same cells"))]
Value = Annotated[float, Field(ge=0, le=1e9, allow_inf_nan=False, description=(
    "expression to set the gene(s) to; 0 = knockout (default)"))]
ValueOfMax = Annotated[float | None, Field(ge=0, le=1e6, allow_inf_nan=False, description=(
    "instead of value: this multiple of each gene's maximum observed expression (1 = overexpress to the "
    "maximum); null = use value"))]
ScopeKind = Annotated[Literal["all", "cell_types", "clusters", "cells"], Field(description=(
    "which cells receive the perturbation: all cells, the cell types listed in cell_types, the cluster ids "
    "listed in clusters, or the cell positions listed in cell_indices"))]
CellTypes = Annotated[list[Annotated[str, Field(min_length=1, max_length=200)]] | None, Field(
    max_length=100, description="cell-type labels (get_meta: cell_types) for scope 'cell_types'")]
Clusters = Annotated[list[Annotated[int, Field(ge=0)]] | None, Field(
    max_length=1000, description="cluster ids (get_meta: clusters) for scope 'clusters'")]
CellIndices = Annotated[list[Annotated[int, Field(ge=0)]] | None, Field(
    max_length=1_000_000, description="cell positions in obs order (0-based) for scope 'cells'")]
NPropagation = Annotated[int | None, Field(ge=1, le=32, description=(
    "propagation steps through the regulatory network (null = the run's [perturbation].n_propagation)"))]
CellType = Annotated[str | None, Field(min_length=1, max_length=200, description=(
    "a cell-type label (get_meta: cell_types)"))]
ClusterId = Annotated[int | None, Field(ge=0, description="a cluster id (get_meta: clusters)")]


def scope_body(scope: str, cell_types: list[str] | None, clusters: list[int] | None,
               cell_indices: list[int] | None) -> dict[str, Any]:
    """The viewer's ``Scope`` object for the flat scope arguments, or one line naming the missing list."""
    given = {"cell_types": cell_types, "clusters": clusters, "cell_indices": cell_indices}
    want = {"all": None, "cell_types": "cell_types", "clusters": "clusters", "cells": "cell_indices"}[scope]
    for name, val in given.items():
        if val is not None and name != want:
            raise ToolInputError(f"given with scope '{scope}'; set scope to "
                                 f"'{'cells' if name == 'cell_indices' else name}' or drop it", name)
    if want is None:
        return {"type": "all"}
    if not given[want]:
        raise ToolInputError(f"scope '{scope}' needs a non-empty {want} list", want)
    if scope == "cell_types":
        return {"type": "cell_types", "names": cell_types}
    if scope == "clusters":
        return {"type": "clusters", "cluster_ids": clusters}
    return {"type": "indices", "indices": cell_indices}


def perturb_body(genes: list[str], value: float, value_of_max: float | None, scope: dict[str, Any],
                 n_propagation: int | None) -> dict[str, Any]:
    """The viewer's ``PerturbRequest`` (first gene + ``with_genes``)."""
    uniq = list(dict.fromkeys(genes))
    return {"gene": uniq[0], "with_genes": uniq[1:], "desired_expr": value, "desired_of_max": value_of_max,
            "scope": scope, "n_propagation": n_propagation}

"""Effects of a scoped perturbation on the other cells: by distance to the perturbed cells, by cell type,
and through which ligands.

For a perturbation applied to some cells (the *scope*), every other cell gets

* its distance ``d`` to the nearest perturbed cell (k-d tree over the scope's coordinates);
* its response ``r`` = mean |Δ| over every gene except the perturbed ones;
* per ligand ``l``, the first-order change it receives through ``l``:
  ``e_l = (1/G') Σ_g |Σ_{m ∈ terms of g with ligand l} β_m · partner_m · ΔRL_l|``, where ``ΔRL_l`` is the
  change of the ligand's received amount (from the simulated expression, by the perturbation's kernel),
  ``partner_m`` the baseline expression of the receptor (``L$R``) or TF (``L#TF``), ``β_m`` the cell's
  coefficient (times ``beta_scale_factor``) and ``G'`` the number of genes averaged in ``r``. It says
  which ligands carry the change into a cell; ``r`` also holds what follows inside the cell.

Tables: per (cell type, distance bin) the mean response; per cell type the mean response outside the
scope, ranked, with its strongest ligands; per (cell type, ligand) the mean ``e_l``.

>>> from spacetravlr_py.perturbation.neighbours import neighbour_effects     # doctest: +SKIP
>>> res = session.run("Il6", 0.0, scope=mask)                          # doctest: +SKIP
>>> eff = neighbour_effects(res, session.perturber)                    # doctest: +SKIP
>>> eff.by_type.head()                                                 # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .. import _keys
from ..errors import InputError
from ..naming import LR, TFL

if TYPE_CHECKING:
    from .propagate import Perturber, PerturbResult

BY_DISTANCE_COLUMNS = ("cell_type", "bin", "d_min", "d_max", "d_mean", "n_cells", "mean_abs_delta")
BY_TYPE_COLUMNS = ("rank", "cell_type", "n_cells", "mean_abs_delta", "nearest_bin_mean_abs_delta", "top_ligands")
LIGAND_COLUMNS = ("cell_type", "ligand", "effect", "mean_abs_received_change")
N_TOP_LIGANDS = 3


def default_edges(radius: float) -> np.ndarray:
    """Distance bin edges in units of the kernel radius r: 0, r/8, r/4, r/2, r, 2r, ∞."""
    r = float(radius)
    return np.array([0.0, r / 8, r / 4, r / 2, r, 2 * r, math.inf])


def check_edges(edges: Sequence[float]) -> np.ndarray:
    """Increasing, non-negative edges (a last edge of ∞ is added when missing)."""
    e = np.asarray([float(x) for x in edges], dtype=np.float64)
    if e.size < 1 or not np.all(np.diff(e) > 0) or e[0] < 0 or np.isnan(e).any():
        raise InputError(f"--bins {', '.join(f'{x:g}' for x in e)}: give increasing distances >= 0 (e.g. 0,50,100,200)")
    if e[0] > 0:
        e = np.r_[0.0, e]
    if math.isfinite(e[-1]):
        e = np.r_[e, math.inf]
    return e


@dataclass
class NeighbourEffects:
    """The response of the cells outside a perturbation's scope (see the module doc)."""

    targets: list[str]
    desired: list[float]
    scope_label: str
    n_scope: int
    n_outside: int
    edges: np.ndarray
    inside_mean_abs_delta: float
    by_distance: pd.DataFrame
    by_type: pd.DataFrame
    ligands: pd.DataFrame
    distance: np.ndarray = field(repr=False)
    """(N,) distance of each cell to the nearest perturbed cell (0 inside the scope)."""
    response: np.ndarray = field(repr=False)
    """(N,) mean |Δ| of each cell over the non-perturbed genes."""

    def summary(self) -> dict[str, Any]:
        """JSON-ready: the perturbation, the scope, the ranking of cell types with their ligands."""
        return {"genes": self.targets, "desired_expr": self.desired, "scope": self.scope_label,
                "n_scope_cells": self.n_scope, "n_other_cells": self.n_outside,
                "inside_mean_abs_delta": self.inside_mean_abs_delta,
                "bin_edges": [x if math.isfinite(x) else None for x in self.edges.tolist()],
                "cell_types": self.by_type.to_dict(orient="records")}


def _response(result: PerturbResult) -> np.ndarray:
    """Mean |Δ| of each cell over every gene of the panel but the perturbed ones (genes that did not move
    add 0: only the held columns are read)."""
    t = result.tissue
    n_other = t.n_panel_genes - len(set(result.targets))
    genes, D = result.held_delta()
    keep = [k for k, g in enumerate(genes) if g not in set(result.targets)]
    if n_other <= 0 or not keep:
        return np.zeros(t.n_cells)
    return np.abs(D[:, keep]).sum(axis=1) / n_other


def _ligand_effects(perturber: Perturber, result: PerturbResult, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(e, |ΔRL|)``: (n_cells, n_ligands) first-order effect through each ligand and the absolute change
    of its received amount, for the cells ``cells`` (indices)."""
    names = result.tissue.var_names
    lig_col = {int(c): k for k, c in enumerate(perturber.lig_genes)}
    L1 = np.column_stack([result.expression_of(names[c]) for c in perturber.lig_genes]) if lig_col else None
    dRL = (perturber.received_change(L1) if L1 is not None else np.zeros((result.tissue.n_cells, 0)))[cells]
    del L1
    X = perturber.tissue.expression  # base expression in its own dtype: partner columns read per term
    bb = perturber.bb
    n_other = max(result.tissue.n_panel_genes - len(set(result.targets)), 1)
    effect = np.zeros_like(dRL)
    moving = np.flatnonzero(np.any(dRL != 0.0, axis=0))
    if not moving.size:
        return effect, np.abs(dRL)
    scale = float(perturber.s.beta_scale_factor)
    moving_set = set(moving.tolist())
    for gm in bb.models:
        rows = bb.mappings[gm.mapping][cells]
        terms = np.flatnonzero(np.isin(gm.kind, (LR, TFL)))
        per_lig: dict[int, np.ndarray] = {}
        for j in terms:
            col = lig_col.get(int(gm.a[j]), -1)
            if col not in moving_set:
                continue
            beta = np.where(rows >= 0, gm.coefs[np.maximum(rows, 0), j], 0.0) * scale
            c = beta * np.asarray(X[cells, gm.b[j]], dtype=np.float64) * dRL[:, col]
            per_lig[col] = per_lig[col] + c if col in per_lig else c
        for col, c in per_lig.items():
            effect[:, col] += np.abs(c)
    return effect / n_other, np.abs(dRL)


def _by_distance(labels: np.ndarray, d: np.ndarray, r: np.ndarray, edges: np.ndarray) -> pd.DataFrame:
    b = np.searchsorted(edges, d, side="right") - 1
    df = pd.DataFrame({"cell_type": labels, "bin": b, "d": d, "r": r})
    g = df.groupby(["cell_type", "bin"], sort=True)
    out = g.agg(d_mean=("d", "mean"), n_cells=("r", "size"), mean_abs_delta=("r", "mean")).reset_index()
    out["d_min"] = edges[out["bin"].to_numpy()]
    out["d_max"] = edges[out["bin"].to_numpy() + 1]
    return out[list(BY_DISTANCE_COLUMNS)]


def neighbour_effects(result: PerturbResult, perturber: Perturber, *, edges: Sequence[float] | None = None,
                      labels: Sequence[Any] | np.ndarray | None = None) -> NeighbourEffects:
    """How the cells outside ``result.scope`` respond, by distance, cell type and ligand.

    Parameters
    ----------
    result
        A perturbation scoped to some cells (:meth:`Perturber.run` with ``scope=``).
    perturber
        The engine that ran it (its kernel gives the received-ligand changes).
    edges
        Distance bin edges (coordinate units); default :func:`default_edges` of the run's radius.
    labels
        (N,) cell-type label of each cell; default the tissue's cluster labels.

    Returns
    -------
    NeighbourEffects
        ``by_type`` ranked by mean |Δ| outside the scope (descending, then name).
    """
    from scipy.spatial import cKDTree

    t = result.tissue
    scope = np.asarray(result.scope, dtype=bool)
    out_idx = np.flatnonzero(~scope)
    if not out_idx.size:
        raise InputError("the perturbation covers every cell, so no other cell can respond; scope it to some "
                         "cells (--cell-types, --clusters or --cells-csv)")
    e = check_edges(edges) if edges is not None else default_edges(perturber.s.radius)
    labs = (np.asarray(t.cluster_labels, dtype=object)[t.clusters] if labels is None
            else np.asarray([str(x) for x in np.asarray(labels, dtype=object).tolist()], dtype=object))
    if len(labs) != t.n_cells:
        raise InputError(f"labels has {len(labs)} entries, the dataset has {t.n_cells} cells")
    d = np.zeros(t.n_cells)
    d[out_idx] = cKDTree(t.coords[scope]).query(t.coords[out_idx], k=1)[0]
    r = _response(result)
    by_distance = _by_distance(labs[out_idx], d[out_idx], r[out_idx], e)
    effect, drl = _ligand_effects(perturber, result, out_idx)
    lig_names = [t.var_names[g] for g in perturber.lig_genes]
    ligands, by_type = _tables(labs[out_idx], r[out_idx], effect, drl, lig_names, by_distance)
    return NeighbourEffects(targets=list(result.targets), desired=list(result.desired), scope_label=result.scope_label,
                            n_scope=int(scope.sum()), n_outside=int(out_idx.size), edges=e,
                            inside_mean_abs_delta=float(r[scope].mean()), by_distance=by_distance, by_type=by_type,
                            ligands=ligands, distance=d, response=r)


def _tables(labs: np.ndarray, r: np.ndarray, effect: np.ndarray, drl: np.ndarray, lig_names: list[str],
            by_distance: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    types = sorted(set(labs.tolist()), key=str)
    rows, lig_rows = [], []
    for ct in types:
        m = labs == ct
        eff = effect[m].mean(axis=0) if effect.shape[1] else np.zeros(0)
        mov = drl[m].mean(axis=0) if drl.shape[1] else np.zeros(0)
        order = [k for k in np.argsort(-eff, kind="stable") if eff[k] > 0]
        lig_rows += [(ct, lig_names[k], float(eff[k]), float(mov[k])) for k in order]
        near = by_distance[by_distance["cell_type"] == ct].sort_values("bin")
        rows.append({"cell_type": ct, "n_cells": int(m.sum()), "mean_abs_delta": float(r[m].mean()),
                     "nearest_bin_mean_abs_delta": float(near["mean_abs_delta"].iloc[0]) if len(near) else math.nan,
                     "top_ligands": ";".join(f"{lig_names[k]}:{eff[k]:.4g}" for k in order[:N_TOP_LIGANDS])})
    rows.sort(key=lambda x: (-x["mean_abs_delta"], str(x["cell_type"])))
    for i, x in enumerate(rows, 1):
        x["rank"] = i
    by_type = pd.DataFrame(rows, columns=list(BY_TYPE_COLUMNS))
    ligands = pd.DataFrame(lig_rows, columns=list(LIGAND_COLUMNS))
    return ligands, by_type


def write_neighbour_effects(eff: NeighbourEffects, out_dir: str | os.PathLike[str], *,
                            figure: bool = True) -> dict[str, Path]:
    """Write the three tables (CSV), the summary (JSON) and the figure (Δ vs distance per cell type)."""
    from ..io.atomic import atomic_write, atomic_write_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"by_type": out / _keys.NEIGHBOURS_BY_TYPE_CSV, "by_distance": out / _keys.NEIGHBOURS_BY_DISTANCE_CSV,
             "ligands": out / _keys.NEIGHBOURS_LIGANDS_CSV, "summary": out / _keys.NEIGHBOURS_JSON}
    atomic_write(files["by_type"], lambda p: eff.by_type.to_csv(p, index=False))
    atomic_write(files["by_distance"], lambda p: eff.by_distance.to_csv(p, index=False))
    atomic_write(files["ligands"], lambda p: eff.ligands.to_csv(p, index=False))
    atomic_write_text(files["summary"], json.dumps(eff.summary(), indent=1))
    if figure:
        from .. import plotting

        files["figure"] = out / _keys.NEIGHBOURS_PNG
        plotting.neighbour_effects(eff, show=False, save=files["figure"])
    return files

"""Conditions of a run compared: the same perturbation in two groups, gene by gene.

>>> from spacetravlr_py.perturb.compare import compare_conditions, list_conditions
>>> list_conditions("runs/by_sample")                                       # doctest: +SKIP
[{'label': 'ctrl', 'folder': 'ctrl', 'n_cells': 1200, 'status': 'complete'}, ...]
>>> cmp = compare_conditions("runs/by_sample", ("ctrl", "ko"), "Foxo1")       # doctest: +SKIP
>>> cmp.table.head()                                                        # doctest: +SKIP

For each condition the perturbation runs on that condition's own models and cells (its run folder under
``conditions/``); the response of a gene is its mean Δ (simulated − baseline expression) over the
condition's cells. The table ranks genes by how differently they respond: ``difference = mean Δ in A −
mean Δ in B``, largest ``|difference|`` first. The perturbed genes themselves are left out (their Δ is
the perturbation, not a response), and so are genes that change in neither condition. Cluster labels
are the same in every condition, so a scope given by cell types means the same cells' types in both.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import _keys
from ..errors import InputError

COLUMNS = ("gene", "mean_delta_a", "mean_delta_b", "difference", "abs_difference")


def _run_root(run_toml: str | os.PathLike[str]) -> Path:
    """The run per condition a TOML, a run folder or one of its condition folders belongs to."""
    from ..rundir.conditions import parent_run
    from ..rundir.run import run_folder

    root = run_folder(run_toml)
    return parent_run(root) or root


def list_conditions(run_toml: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The conditions of a run per condition (its TOML, its folder, or one of its condition folders).

    Returns one ``{"label", "folder", "n_cells", "status"}`` per group (``n_cells``/``status`` as the
    parent manifest records them; None for runs of the Rust seed). Empty for an ordinary run.
    """
    from ..rundir.conditions import recorded_groups
    from ..rundir.manifest import Manifest

    root = _run_root(run_toml)
    m = Manifest.read(root / _keys.MANIFEST_JSON)
    groups = m.conditions.get("groups", []) if m is not None and isinstance(m.conditions, dict) else []
    info = {str(g.get("label")): g for g in (groups if isinstance(groups, list) else []) if isinstance(g, dict)}
    return [{"label": lab, "folder": folder, "n_cells": info.get(lab, {}).get("n_cells"),
             "status": info.get(lab, {}).get("status")} for lab, folder in recorded_groups(root).items()]


@dataclass
class ConditionComparison:
    """One perturbation in two conditions, and the genes whose response differs most.

    ``table`` columns: ``gene``, ``mean_delta_a`` (mean Δ over condition A's cells), ``mean_delta_b``,
    ``difference`` (= a − b) and ``abs_difference``, ranked by ``abs_difference`` (ties by gene name).
    """

    genes: list[str]
    desired: list[float]
    conditions: tuple[str, str]
    table: pd.DataFrame
    n_cells: tuple[int, int]
    scopes: tuple[str, str]
    n_propagation: int
    extra: dict[str, Any] = field(default_factory=dict)

    def top(self, n: int = 20) -> pd.DataFrame:
        return self.table.head(n)

    def summary(self, n_top: int = 20) -> dict[str, Any]:
        """A JSON-able summary: the perturbation, both conditions and the top ``n_top`` rows."""
        a, b = self.conditions
        return {"genes": self.genes, "desired_expr": self.desired, "n_propagation": self.n_propagation,
                "condition_a": {"label": a, "n_cells": self.n_cells[0], "scope": self.scopes[0]},
                "condition_b": {"label": b, "n_cells": self.n_cells[1], "scope": self.scopes[1]},
                "n_genes_differing": int((self.table["abs_difference"] > 0).sum()),
                "top": self.top(n_top).to_dict(orient="records"), **self.extra}


def compare_conditions(run_toml: str | os.PathLike[str], conditions: Sequence[str], genes: str | Sequence[str],
                       desired: float | Sequence[float] = 0.0, *, n_propagation: int | None = None,
                       cell_types: Sequence[str] | None = None, n_threads: int | None = None,
                       overrides: dict[str, Any] | None = None) -> ConditionComparison:
    """Run one perturbation in two conditions of a run and compare the responses gene by gene.

    Parameters
    ----------
    run_toml : path
        The run per condition (its repro TOML or folder).
    conditions : (A, B)
        Two group labels (or folder names).
    genes, desired
        The perturbation (default: knockout), as in :meth:`~spacetravlr_py.perturb.session.RunSession.run`.
    n_propagation : int, optional
        Default: the run's ``[perturbation].n_propagation``.
    cell_types : sequence of str, optional
        Perturb only cells of these cell types (in each condition); default every cell.

    Returns
    -------
    ConditionComparison
    """
    from .session import RunSession

    if len(conditions) != 2 or conditions[0] == conditions[1]:
        raise InputError(f"compare needs two different conditions, got {list(conditions)!r} "
                         "(e.g. --conditions ctrl,treated)")
    targets = [genes] if isinstance(genes, str) else list(genes)
    means, cells, scopes, used_n, used_desired = [], [], [], 0, [0.0]
    for cond in conditions:
        s = RunSession.open(run_toml, n_threads=n_threads, overrides=overrides, condition=cond)
        mask, label = s.scope(cell_types=cell_types) if cell_types else (None, "all cells")
        res = s.run(targets, desired, scope=mask, scope_label=label, n_propagation=n_propagation)
        means.append(np.asarray(res.delta, dtype=np.float64).mean(axis=0))
        cells.append(s.tissue.n_cells)
        scopes.append(f"{label}: {int(res.scope.sum())} cells")
        used_n, used_desired, var_names = res.n_propagation, [float(v) for v in res.desired], s.tissue.var_names
    table = comparison_table(var_names, means[0], means[1], exclude=targets)
    return ConditionComparison(genes=targets, desired=used_desired, conditions=(conditions[0], conditions[1]),
                               table=table, n_cells=(cells[0], cells[1]), scopes=(scopes[0], scopes[1]),
                               n_propagation=used_n)


def comparison_table(var_names: Sequence[str], mean_a: np.ndarray, mean_b: np.ndarray, *,
                     exclude: Sequence[str] = ()) -> pd.DataFrame:
    """Genes whose mean Δ is non-zero in A or B (``exclude`` left out), ranked by ``|a − b|`` then name."""
    df = pd.DataFrame({"gene": list(var_names), "mean_delta_a": mean_a, "mean_delta_b": mean_b})
    df["difference"] = df["mean_delta_a"] - df["mean_delta_b"]
    df["abs_difference"] = df["difference"].abs()
    keep = ((df["mean_delta_a"] != 0) | (df["mean_delta_b"] != 0)) & ~df["gene"].isin(list(exclude))
    df = df[keep].sort_values(["abs_difference", "gene"], ascending=[False, True], kind="stable")
    return df.reset_index(drop=True)[list(COLUMNS)]


def write_comparison(cmp: ConditionComparison, out: str | os.PathLike[str], *, n_top: int = 20) -> dict[str, Path]:
    """Atomically write ``<out>.csv`` (every row of the table) and ``<out>.json`` (summary + top rows)."""
    from ..io.atomic import atomic_write, atomic_write_text

    p = Path(out)
    base = p.with_suffix("") if p.suffix.lower() in (".csv", ".json") else p
    csv, js = base.with_name(base.name + ".csv"), base.with_name(base.name + ".json")
    csv.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(csv, lambda tmp: cmp.table.to_csv(tmp, index=False))
    atomic_write_text(js, json.dumps(cmp.summary(n_top), indent=1))
    return {"table": csv, "summary": js}

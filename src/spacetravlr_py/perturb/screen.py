"""The knockout (or overexpression) screen: perturb every TF, ligand and receptor with betas, one at a time,
and rank them by impact.

>>> from spacetravlr_py.perturb.session import RunSession            # doctest: +SKIP
>>> from spacetravlr_py.perturb.screen import screen, write_screen   # doctest: +SKIP
>>> ranked = screen(RunSession.open("run/spacetravlr_run_repro.toml"))  # doctest: +SKIP
>>> ranked.head(3)[["rank", "gene", "impact"]]                        # doctest: +SKIP
>>> write_screen(ranked, "screen/")                                   # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .. import _keys
from ..errors import InputError, near_matches

if TYPE_CHECKING:
    from .session import RunSession

MODES: tuple[str, ...] = ("knockout", "overexpress")
COLUMNS: tuple[str, ...] = ("rank", "gene", "roles", "desired_expr", "impact", "n_genes_changed", "top_affected")
"""Columns of the ranked table (and of ``screen.csv``)."""
_JSON_ORDER: tuple[str, ...] = (*COLUMNS[1:], "rank")
"""Key order of a row in ``screen.json`` (the rank is added last, after ranking)."""


def _roles_of(session: RunSession) -> dict[str, list[str]]:
    """``gene -> [tf, ligand, receptor ...]`` over every trained model."""
    role_of: dict[str, list[str]] = {}
    for role, gs in session.betabase.roles().items():
        for g in gs:
            role_of.setdefault(g, []).append(role)
    return role_of


def _impact_row(session: RunSession, gene: str, value: float, roles: list[str],
                n_propagation: int | None) -> dict[str, Any]:
    """Perturb ``gene`` to ``value`` in all cells; impact = mean |Δ| over all cells and all *other* genes."""
    gi = session.tissue.gene_index
    res = session.run(gene, value, n_propagation=n_propagation)
    top = res.top_genes(5)
    keep = np.ones(session.tissue.n_genes, dtype=bool)
    keep[gi[gene]] = False
    impact = float(np.abs(res.delta[:, keep]).mean()) if keep.any() else 0.0
    return {"gene": gene, "roles": ",".join(sorted(roles)), "desired_expr": value, "impact": impact,
            "n_genes_changed": int(np.count_nonzero(np.abs(res.delta[:, keep]).max(axis=0) > 0)),
            "top_affected": ";".join(f"{t}:{m:.4g}" for t, m in top)}


def screen(session: RunSession, *, mode: str = "knockout", genes: Sequence[str] | None = None,
           n_propagation: int | None = None,
           on_done: Callable[[dict[str, Any]], None] | None = None) -> pd.DataFrame:
    """Perturb every TF, ligand and receptor with betas (or ``genes``), one at a time; rank by impact.

    Parameters
    ----------
    session
        An opened run.
    mode
        ``"knockout"`` sets the gene to 0, ``"overexpress"`` to its maximum observed value.
    genes
        Screen only these genes (all checked before the first run); default every modulator gene.
    n_propagation
        Propagation steps (default from the run).
    on_done
        Called with each gene's row as it finishes (before ranking).

    Returns
    -------
    pandas.DataFrame
        One row per gene, columns :data:`COLUMNS`, sorted by impact (mean |Δ| over all cells and all
        other genes) descending, then gene name; ``rank`` starts at 1.
    """
    if mode not in MODES:
        raise InputError(f"screen mode must be knockout or overexpress, got {mode!r}")
    role_of = _roles_of(session)
    cands = sorted(role_of) if genes is None else list(genes)
    gi = session.tissue.gene_index
    for g in cands:  # all checked before the first run
        if g not in gi:
            raise InputError(f"screen: gene '{g}' is not in the dataset{near_matches(g, session.tissue.var_names)}")
    x0 = session.tissue.expression
    rows: list[dict[str, Any]] = []
    for g in cands:
        v = 0.0 if mode == "knockout" else float(x0[:, gi[g]].max())
        row = _impact_row(session, g, v, role_of.get(g, []), n_propagation)
        rows.append(row)
        if on_done is not None:
            on_done(row)
    rows.sort(key=lambda r: (-float(r["impact"]), str(r["gene"])))
    for rank, r in enumerate(rows, 1):
        r["rank"] = rank
    return pd.DataFrame(rows, columns=list(COLUMNS))


def write_screen(ranked: pd.DataFrame, out_dir: str | os.PathLike[str], *, mode: str = "knockout") -> dict[str, Path]:
    """Write ``screen.csv`` (the table) and ``screen.json`` (``{"mode", "results": [row, ...]}``) atomically.

    Returns
    -------
    dict
        ``{"csv": path, "json": path}``.
    """
    from ..io.atomic import atomic_write, atomic_write_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv, js = out / _keys.SCREEN_CSV, out / _keys.SCREEN_JSON
    table = ranked[list(COLUMNS)]
    atomic_write(csv, lambda p: table.to_csv(p, index=False))
    results = ranked[list(_JSON_ORDER)].to_dict(orient="records")
    atomic_write_text(js, json.dumps({"mode": mode, "results": results}, indent=1))
    return {"csv": csv, "json": js}

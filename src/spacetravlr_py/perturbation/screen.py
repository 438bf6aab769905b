"""The knockout (or overexpression) screen: perturb every TF, ligand and receptor with betas, one at a time,
and rank them by impact.

>>> from spacetravlr_py.perturbation.session import RunSession            # doctest: +SKIP
>>> from spacetravlr_py.perturbation.screen import screen, write_screen   # doctest: +SKIP
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


def impact_row(session: RunSession, gene: str, value: float, roles: list[str],
               n_propagation: int | None) -> dict[str, Any]:
    """Perturb ``gene`` to ``value`` in all cells; impact = mean |Δ| over all cells and all *other* genes."""
    res = session.run(gene, value, n_propagation=n_propagation)
    top = res.top_genes(5)
    # over every gene of the panel but the perturbed one; from the genes that moved (the others add 0)
    impact = res.mean_abs_delta(exclude=[gene])
    return {"gene": gene, "roles": ",".join(sorted(roles)), "desired_expr": value, "impact": impact,
            "n_genes_changed": res.n_genes_changed(exclude=[gene]),
            "top_affected": ";".join(f"{t}:{m:.4g}" for t, m in top)}


def screen(session: RunSession, *, mode: str = "knockout", genes: Sequence[str] | None = None,
           n_propagation: int | None = None, on_done: Callable[[dict[str, Any]], None] | None = None,
           scheduler: str | None = None) -> pd.DataFrame:
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
    scheduler
        Run the genes on a Dask cluster (``tcp://HOST:PORT`` or ``local:N``; see :mod:`.dask_jobs`); the
        table is the same.

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
    for g in cands:  # all checked before the first run
        if not session.tissue.has_gene(g):
            raise InputError(f"screen: gene '{g}' is not in the dataset{near_matches(g, session.tissue.all_genes)}")
    items = [(g, 0.0 if mode == "knockout" else float(session.tissue.column(g).max()), role_of.get(g, []))
             for g in cands]
    if scheduler:
        from .dask_jobs import screen_rows_on

        found = screen_rows_on(scheduler, session, items, n_propagation)
    else:
        found = (impact_row(session, g, v, roles, n_propagation) for g, v, roles in items)
    rows: list[dict[str, Any]] = []
    for row in found:  # ranked below: the order rows arrive in does not matter
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

"""The knockout (or overexpression) screen: perturb regulators one at a time and rank them by impact.

The unit of work is one gene: :func:`score_gene` turns a :class:`GeneTask` into a small
:class:`GeneScore` (impact, genes changed, most affected genes, mean |Δ| per cell type). Anything that
can run a function on a prepared :class:`~.propagate.Perturber` can run a screen — this process, local
worker processes (:mod:`.screen_run`), a Dask cluster — and the ranking of the scores does not depend on
who computed them.

>>> from spacetravlr_py.perturbation.session import RunSession            # doctest: +SKIP
>>> from spacetravlr_py.perturbation.screen import screen, write_screen   # doctest: +SKIP
>>> ranked = screen(RunSession.open("run/spacetravlr_run_repro.toml"))  # doctest: +SKIP
>>> ranked.head(3)[["rank", "gene", "impact", "top_cell_types"]]      # doctest: +SKIP
>>> write_screen(ranked, "screen/")                                   # doctest: +SKIP

For a resumable screen over many genes with parallel workers see :func:`.screen_run.run_screen`.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .. import _keys
from ..errors import InputError, near_matches, short_list

if TYPE_CHECKING:
    from .propagate import Perturber
    from .session import RunSession

log = logging.getLogger("spacetravlr_py.perturbation")

MODES: tuple[str, ...] = ("knockout", "overexpress")
ROLES: tuple[str, ...] = ("tf", "ligand", "receptor")
"""Roles a gene can have in the trained models (:meth:`~spacetravlr_py.betadata.Betabase.roles`)."""
COLUMNS: tuple[str, ...] = ("rank", "gene", "roles", "desired_expr", "impact", "n_genes_changed", "top_affected",
                            "top_cell_types")
"""Columns of the ranked table (and of ``screen.csv``)."""
_JSON_ORDER: tuple[str, ...] = (*COLUMNS[1:], "rank")
"""Key order of a row in ``screen.json`` (the rank is added last, after ranking)."""
N_TOP_GENES = 5
N_TOP_TYPES = 3


@dataclass(frozen=True)
class GeneTask:
    """One gene of a screen: set ``gene`` to ``value`` in every cell."""

    gene: str
    value: float
    roles: tuple[str, ...] = ()
    n_propagation: int | None = None


@dataclass
class GeneScore:
    """What a screen keeps of one perturbation (a few hundred bytes, whatever the run's size).

    ``impact`` = mean |Δ| over all cells and all *other* genes; ``cell_types`` = the same mean per cell
    type (cluster label); ``top_affected`` / ``top_cell_types`` = ``name:value`` pairs joined by ``;``.
    """

    gene: str
    roles: str
    desired_expr: float
    impact: float
    n_genes_changed: int
    top_affected: str
    top_cell_types: str
    cell_types: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> GeneScore:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})

    def row(self) -> dict[str, Any]:
        """The ranked-table row (without ``rank``)."""
        return {k: getattr(self, k) for k in COLUMNS[1:]}


def _pairs(names: Iterable[str], values: Iterable[float]) -> str:
    return ";".join(f"{n}:{v:.4g}" for n, v in zip(names, values))


def score_gene(perturber: Perturber, task: GeneTask) -> GeneScore:
    """Perturb ``task.gene`` to ``task.value`` in all cells and summarise the change (the screen's unit of
    work; pure: the same task on the same run gives the same score in any process).

    Means run over every gene of the panel but the perturbed one; only the genes that moved are read
    (the others add 0).
    """
    t0 = time.perf_counter()
    t = perturber.tissue
    res = perturber.run(task.gene, task.value, n_propagation=task.n_propagation)
    n_other = t.n_panel_genes - 1
    genes, D = res.held_delta()
    keep = [k for k, g in enumerate(genes) if g != task.gene]
    per_cell = (np.abs(D[:, keep]).sum(axis=1) / n_other if n_other and keep else np.zeros(t.n_cells))
    del D
    top = res.top_genes(N_TOP_GENES)
    counts = np.bincount(t.clusters, minlength=t.n_clusters)
    sums = np.bincount(t.clusters, weights=per_cell, minlength=t.n_clusters)
    by_type = {lab: float(sums[k] / counts[k]) for k, lab in enumerate(t.cluster_labels) if counts[k]}
    top_t = sorted(by_type, key=lambda lab: (-by_type[lab], lab))[:N_TOP_TYPES]
    return GeneScore(gene=task.gene, roles=",".join(sorted(task.roles)), desired_expr=float(task.value),
                     impact=res.mean_abs_delta(exclude=[task.gene]),
                     n_genes_changed=res.n_genes_changed(exclude=[task.gene]),
                     top_affected=_pairs((g for g, _ in top), (m for _, m in top)),
                     top_cell_types=_pairs(top_t, (by_type[x] for x in top_t)), cell_types=by_type,
                     seconds=time.perf_counter() - t0)


def rank_scores(scores: Iterable[GeneScore]) -> pd.DataFrame:
    """The ranked table: one row per gene, columns :data:`COLUMNS`, sorted by impact descending then gene
    name (so the ranking does not depend on the order the scores arrived in); ``rank`` starts at 1."""
    rows = sorted((s.row() for s in scores), key=lambda r: (-float(r["impact"]), str(r["gene"])))
    for rank, r in enumerate(rows, 1):
        r["rank"] = rank
    return pd.DataFrame(rows, columns=list(COLUMNS))


def cell_type_table(scores: Iterable[GeneScore], order: Sequence[str] | None = None) -> pd.DataFrame:
    """Mean |Δ| per (gene, cell type): genes as rows (in ``order``, e.g. the ranking), cell types as columns."""
    by = {s.gene: s.cell_types for s in scores}
    genes = list(order) if order is not None else sorted(by)
    df = pd.DataFrame([by[g] for g in genes], index=pd.Index(genes, name="gene"))
    return df.reindex(columns=sorted(df.columns, key=str))


# --------------------------------------------------------------------------------------------------
# which genes
# --------------------------------------------------------------------------------------------------


def read_gene_file(path: str | os.PathLike[str]) -> list[str]:
    """Gene names from a file: one per line or comma-separated, ``#`` comments."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise InputError(f"gene file {p}: cannot read ({e.strerror or e}); check --genes-file") from None
    out = [g.strip() for line in text.splitlines() for g in line.split("#", 1)[0].split(",") if g.strip()]
    if not out:
        raise InputError(f"gene file {p} lists no genes")
    return list(dict.fromkeys(out))


def check_roles(roles: Sequence[str] | None) -> tuple[str, ...]:
    """The roles asked for (default all of :data:`ROLES`), one line for an unknown one."""
    if not roles:
        return ROLES
    bad = [r for r in roles if r not in ROLES]
    if bad:
        raise InputError(f"--roles: '{bad[0]}' is not one of {', '.join(ROLES)}{near_matches(bad[0], ROLES)}")
    return tuple(dict.fromkeys(roles))


def roles_of(perturber: Perturber) -> dict[str, list[str]]:
    """``gene -> [tf, ligand, receptor ...]`` over every trained model."""
    role_of: dict[str, list[str]] = {}
    for role, gs in perturber.bb.roles().items():
        for g in gs:
            role_of.setdefault(g, []).append(role)
    return role_of


def select_genes(perturber: Perturber, *, genes: Sequence[str] | None = None,
                 roles: Sequence[str] | None = None) -> tuple[list[str], list[str]]:
    """The genes to screen and the genes skipped because they modulate no trained gene.

    ``genes`` (a list, e.g. read from a file) is screened as given (each must be a gene of the dataset);
    otherwise every gene with one of ``roles`` (default: TFs, ligands and receptors) in the models, in name
    order. With both, the list is kept to genes with one of the roles.
    """
    role_of = roles_of(perturber)
    want = check_roles(roles)
    if genes is None:
        cands = sorted(g for g, rs in role_of.items() if set(rs) & set(want))
    else:
        cands = list(dict.fromkeys(genes))
        t = perturber.tissue
        for g in cands:  # all checked before the first run
            if not t.has_gene(g):
                raise InputError(f"screen: gene '{g}' is not in the dataset{near_matches(g, t.all_genes)}")
        if roles:
            cands = [g for g in cands if set(role_of.get(g, ())) & set(want)]
    inert = set(perturber.inert_targets(cands))
    return [g for g in cands if g not in inert], [g for g in cands if g in inert]


def tasks_for(perturber: Perturber, genes: Sequence[str], *, mode: str = "knockout",
              n_propagation: int | None = None) -> list[GeneTask]:
    """One task per gene: 0 (knockout) or the gene's maximum observed value (overexpress)."""
    if mode not in MODES:
        raise InputError(f"screen mode must be knockout or overexpress, got {mode!r}")
    role_of = roles_of(perturber)
    t = perturber.tissue
    return [GeneTask(g, 0.0 if mode == "knockout" else float(t.column(g).max()), tuple(role_of.get(g, ())),
                     n_propagation) for g in genes]


def skipped_line(skipped: Sequence[str]) -> str:
    """One line naming the genes skipped because nothing depends on them."""
    return (f"screen: {len(skipped)} genes modulate no trained gene and are skipped (perturbing them changes "
            f"nothing else): {short_list(skipped)}")


# --------------------------------------------------------------------------------------------------
# in memory
# --------------------------------------------------------------------------------------------------


def screen(session: RunSession, *, mode: str = "knockout", genes: Sequence[str] | None = None,
           roles: Sequence[str] | None = None, n_propagation: int | None = None,
           on_done: Callable[[dict[str, Any]], None] | None = None, scheduler: str | None = None) -> pd.DataFrame:
    """Perturb every TF, ligand and receptor with betas (or ``genes`` / ``roles``), one at a time, in this
    process or on a Dask cluster; rank by impact.

    Parameters
    ----------
    session
        An opened run.
    mode
        ``"knockout"`` sets the gene to 0, ``"overexpress"`` to its maximum observed value.
    genes, roles
        Which genes (see :func:`select_genes`); genes that modulate no trained gene are skipped with a
        logged line.
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
    p = session.perturber
    todo, skipped = select_genes(p, genes=genes, roles=roles)
    if skipped:
        log.warning(skipped_line(skipped))
    tasks = tasks_for(p, todo, mode=mode, n_propagation=n_propagation)
    if scheduler:
        from .dask_jobs import screen_scores_on

        found: Iterable[GeneScore] = screen_scores_on(scheduler, session, tasks)
    else:
        found = (score_gene(p, task) for task in tasks)
    scores = []
    for s in found:  # ranked below: the order scores arrive in does not matter
        scores.append(s)
        if on_done is not None:
            on_done(s.row())
    return rank_scores(scores)


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

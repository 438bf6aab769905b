"""What the perturbation workbench shows and does, as plain Python: the perturbable genes with their
roles, the settings of a perturbation (gene, value, steps, scope), the result tables, the session's
history and exports. The Textual screens in :mod:`.workbench` only draw and edit these.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..betadata.betabase import Betabase
from ..errors import InputError
from ..io.anndata import Tissue

#: roles as the workbench names them, from :meth:`Betabase.roles` keys
ROLE_NAMES = {"tf": "TF", "ligand": "ligand", "receptor": "receptor"}


@dataclass(frozen=True)
class GeneRow:
    """A gene that can be perturbed: trained (has betas) and/or a modulator of trained genes."""

    gene: str
    roles: tuple[str, ...]
    """``TF`` / ``ligand`` / ``receptor``: how the gene enters other genes' models."""
    n_targets: int
    """Trained genes whose model has this gene among its modulators."""
    trained: bool
    lo: float
    hi: float
    """Observed expression range."""

    @property
    def role_text(self) -> str:
        return ", ".join(self.roles) if self.roles else "—"


def gene_rows(betabase: Betabase, tissue: Tissue) -> list[GeneRow]:
    """Every trained gene and every modulator of a trained gene, most targets first, then by name."""
    roles: dict[str, list[str]] = {}
    for role, genes in betabase.roles().items():
        for g in genes:
            roles.setdefault(g, []).append(ROLE_NAMES[role])
    names = tissue.var_names
    n_targets = np.zeros(len(names), dtype=np.int64)
    for gm in betabase.models:
        n_targets[gm.modulator_genes] += 1
    x = tissue.expression
    gi = tissue.gene_index
    out = []
    for g in set(betabase.genes) | set(roles):
        j = gi[g]
        col = x[:, j]
        order = [r for r in ROLE_NAMES.values() if r in roles.get(g, [])]
        out.append(GeneRow(g, tuple(order), int(n_targets[j]), g in betabase, float(col.min()), float(col.max())))
    out.sort(key=lambda r: (-r.n_targets, r.gene))
    return out


def filter_rows(rows: list[GeneRow], text: str) -> list[GeneRow]:
    """Rows whose gene contains every word of ``text`` (case-insensitive); a word that names a role
    (``tf``, ``ligand``, ``receptor``) keeps the genes with that role instead."""
    words = text.lower().split()
    if not words:
        return list(rows)
    role_words = {v.lower() for v in ROLE_NAMES.values()}

    def keep(r: GeneRow) -> bool:
        for w in words:
            if w in role_words:
                if w not in {x.lower() for x in r.roles}:
                    return False
            elif w not in r.gene.lower():
                return False
        return True

    return [r for r in rows if keep(r)]


def parse_desired(text: str, row: GeneRow) -> float:
    """A desired expression typed by the user: a number ≥ 0, ``max`` (observed maximum) or ``ko`` (0)."""
    t = text.strip().lower()
    if t in ("ko", "knockout"):
        return 0.0
    if t == "max":
        return row.hi
    try:
        v = float(t)
    except ValueError:
        raise InputError(f"desired expression: {text!r} is not a number (a value >= 0, 'max' or 'ko')") from None
    if not np.isfinite(v) or v < 0:
        raise InputError(f"desired expression must be a finite value >= 0, got {text!r}")
    return v


def parse_steps(text: str) -> int:
    """n_propagation typed by the user: an integer ≥ 1."""
    try:
        n = int(text.strip())
    except ValueError:
        raise InputError(f"n_propagation: {text!r} is not a whole number") from None
    if n < 1:
        raise InputError(f"n_propagation must be >= 1, got {n}")
    return n


ALL, CELL_TYPES, CLUSTERS, CELLS_CSV = "all cells", "cell types", "clusters", "cells CSV"


@dataclass(frozen=True)
class Scope:
    """Which cells receive the perturbation (the CLI's ``--cell-types`` / ``--clusters`` /
    ``--cells-csv`` + ``--cells-csv-column``)."""

    kind: str = ALL
    values: tuple[str, ...] = ()
    """Cell-type labels, or cluster ids as text."""
    csv: str = ""
    column: str = ""

    def resolve(self, session: Any) -> tuple[np.ndarray, str]:
        """(mask, label) as :meth:`RunSession.scope` gives them for the same flags."""
        if self.kind == CELL_TYPES:
            return session.scope(cell_types=list(self.values))
        if self.kind == CLUSTERS:
            return session.scope(clusters=[int(v) for v in self.values])
        if self.kind == CELLS_CSV:
            return session.scope(cells_csv=self.csv, cells_csv_column=self.column)
        return session.scope()

    def describe(self) -> str:
        if self.kind == ALL:
            return ALL
        if self.kind == CELLS_CSV:
            return f"{Path(self.csv).name}:{self.column}"
        return f"{self.kind} {', '.join(self.values)}"


def csv_columns(path: str | os.PathLike[str]) -> list[str]:
    """Column names of a cells CSV (its header line)."""
    import csv

    p = Path(path).expanduser()
    if not p.is_file():
        raise InputError(f"cells CSV {p} not found")
    try:
        with open(p, newline="", encoding="utf-8") as fh:
            header = next(csv.reader(fh), [])
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{p}: cannot read cells CSV ({e})") from None
    cols = [c for c in header if c.strip()]
    if not cols:
        raise InputError(f"{p}: no header with column names")
    return cols


# -- results ---------------------------------------------------------------------------------------


def top_rows(result: Any, n: int = 20) -> list[tuple[str, float, float, str]]:
    """Top affected genes: (gene, mean Δ, mean |Δ|, direction), ranked by mean |Δ| over all cells (the
    ranking of :meth:`PerturbResult.top_genes`, i.e. the CLI's output and JSON)."""
    idx = result.tissue.gene_index
    mean = result.delta.mean(axis=0)
    out = []
    for g, m_abs in result.top_genes(n):
        d = float(mean[idx[g]])
        out.append((g, d, m_abs, "up" if d > 0 else "down" if d < 0 else "mixed"))
    return out


def cell_impact(result: Any) -> np.ndarray:
    """Per cell: mean |Δ| over the genes that were not perturbed (what the cluster chart averages)."""
    t = result.tissue
    keep = np.array([g not in set(result.targets) for g in t.var_names])
    return np.abs(result.delta[:, keep]).mean(axis=1) if keep.any() else np.zeros(t.n_cells)


def slug(result: Any) -> str:
    """A file-name stem for a result: ``Foxo1_ko``, ``Tgfb1_to_4_B_cell``."""
    parts = [f"{g}_{'ko' if v == 0 else f'to_{v:g}'}" for g, v in zip(result.targets, result.desired)]
    if result.scope_label != ALL:
        parts.append(result.scope_label)
    return re.sub(r"[^A-Za-z0-9._-]+", "_", "_".join(parts)).strip("_")[:120]


def export_result(result: Any, out: str | os.PathLike[str], *, figures: bool = True, reference_compat: bool = False,
                  n_neighbors: int = 150, kind: str = "quiver") -> dict[str, Path]:
    """Write a result as ``spacetravlr-perturb --out OUT [--field]`` does, with the same writers:
    the expression (feather) and summary (JSON), then the transition field and figures."""
    from ..perturbation.session import write_result

    paths = write_result(result, out)
    if figures:
        import matplotlib

        from ..report import write_field_outputs

        # figures are files here, drawn off the main thread: never a GUI backend, even with a DISPLAY
        matplotlib.use("Agg")

        prefix = paths["expression"].with_suffix("")
        paths.update(write_field_outputs(result, prefix, n_neighbors=n_neighbors, kind=kind,
                                         reference_compat=reference_compat))
    return paths


@dataclass
class HistoryEntry:
    """One run of the session: what was asked, what came out, and where it was exported."""

    number: int
    genes: list[str]
    desired: list[float]
    scope_label: str
    n_scope_cells: int
    n_propagation: int
    status: str
    """``done``, ``cancelled`` or ``failed``."""
    seconds: float = 0.0
    top: list[tuple[str, float, float, str]] = field(default_factory=list)
    message: str = ""
    exports: list[Path] = field(default_factory=list)
    result: Any = None
    """The :class:`PerturbResult` while it is kept in memory (the latest few)."""

    @property
    def what(self) -> str:
        return ", ".join(f"{g}→{v:g}" for g, v in zip(self.genes, self.desired))


def keep_latest_results(history: list[HistoryEntry], n: int = 3) -> None:
    """Drop the arrays of all but the latest ``n`` results (each holds two cells × genes arrays)."""
    held = [h for h in history if h.result is not None]
    for h in held[:-n] if len(held) > n else []:
        h.result = None

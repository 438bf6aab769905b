"""The result of a perturbation, held over the genes that can move.

A :class:`PerturbResult` keeps the simulated expression of the *held* genes only — the state genes of
the propagation (trained genes and every gene their models read) and the perturbed genes — next to the
base expression they started from. Every other gene of the panel is unchanged (Δ = 0) and is read from
the tissue when asked for (:meth:`PerturbResult.expression_of`, the export). The summary numbers are
computed from the held columns with the same sums NumPy forms over the full (cells × genes) matrix, so
they are bit-identical to the full-width computation.

``expression`` and ``delta`` (full width over the tissue's loaded genes) still exist for code that wants
the matrices; they are built on first access and kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import _keys
from . import _kernels

if TYPE_CHECKING:
    from ..io.anndata import Tissue


@dataclass
class HeldColumns:
    """Simulated values of some genes: ``values`` (N, k) float64 and the base ``x0`` (N, k) they started
    from (float32 or float64), or the change itself (``delta``) when the base is not kept."""

    genes: list[str]
    values: np.ndarray
    x0: np.ndarray | None = None
    delta: np.ndarray | None = None

    def delta_block(self, cols: Sequence[int] | slice) -> np.ndarray:
        """Δ of some columns, ``values − x0`` (float64)."""
        if self.delta is not None:
            return np.asarray(self.delta[:, cols], dtype=np.float64)
        assert self.x0 is not None
        return self.values[:, cols] - np.asarray(self.x0[:, cols], dtype=np.float64)


def _cat(xs: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(xs) if xs else np.zeros(0)


class PerturbResult:
    """A simulated perturbation.

    Attributes
    ----------
    tissue : Tissue
    targets, desired : the perturbed genes and their values.
    scope : (N,) bool — cells that received the perturbation.
    n_propagation : int
    scope_label : str
    timings : seconds per step (``received``, ``propagate``, ``total``...).
    steps : per-step timings.
    held : list of HeldColumns — the genes whose values are kept (the others did not change).

    ``PerturbResult(tissue=..., expression=E, delta=D, ...)`` with full (N, G) matrices over
    ``tissue.var_names`` is still accepted.
    """

    def __init__(self, tissue: Tissue, expression: np.ndarray | None = None, delta: np.ndarray | None = None,
                 targets: Sequence[str] = (), desired: Sequence[float] = (), scope: np.ndarray | None = None,
                 n_propagation: int = 0, scope_label: str = "all cells", timings: dict[str, float] | None = None,
                 steps: list[dict[str, float]] | None = None, *, held: Sequence[HeldColumns] | None = None) -> None:
        self.tissue = tissue
        self.targets = list(targets)
        self.desired = [float(v) for v in desired]
        self.scope = np.ones(tissue.n_cells, dtype=bool) if scope is None else np.asarray(scope, dtype=bool)
        self.n_propagation = int(n_propagation)
        self.scope_label = scope_label
        self.timings = dict(timings or {})
        self.steps = list(steps or [])
        self._expression: np.ndarray | None = None
        self._delta: np.ndarray | None = None
        if held is None:
            if expression is None or delta is None:
                raise ValueError("PerturbResult needs expression and delta, or held columns")
            held = [HeldColumns(list(tissue.var_names), np.asarray(expression), delta=np.asarray(delta))]
            self._expression, self._delta = np.asarray(expression), np.asarray(delta)
        self.held = list(held)
        self._where = {g: (p, j) for p, h in enumerate(self.held) for j, g in enumerate(h.genes)}

    # -- columns ------------------------------------------------------------------------------

    @property
    def genes(self) -> list[str]:
        """The held genes (the others are unchanged)."""
        return [g for h in self.held for g in h.genes]

    def expression_of(self, gene: str) -> np.ndarray:
        """(N,) simulated expression of any gene of the panel (unchanged genes: their base expression)."""
        if gene in self._where:
            p, j = self._where[gene]
            return np.array(self.held[p].values[:, j])
        return self.tissue.column(gene)

    def delta_of(self, gene: str) -> np.ndarray:
        """(N,) Δ of any gene of the panel (0 for a gene that did not move)."""
        if gene in self._where:
            p, j = self._where[gene]
            return self.held[p].delta_block([j])[:, 0]
        self.tissue.require_gene(gene)
        return np.zeros(self.tissue.n_cells)

    def changed_genes(self) -> list[str]:
        """Held genes with a non-zero Δ somewhere, in panel order."""
        stats = self._column_stats()
        return [g for g, m in zip(self.genes, stats["max_abs"]) if m > 0]

    def held_delta(self) -> tuple[list[str], np.ndarray]:
        """``(genes, (N, K) Δ)`` of the held genes (the only genes whose Δ can be non-zero)."""
        blocks = [h.delta_block(slice(None)) for h in self.held]
        D = np.hstack(blocks) if len(blocks) > 1 else (blocks[0] if blocks else np.zeros((self.tissue.n_cells, 0)))
        return self.genes, D

    # -- the transition field's genes ---------------------------------------------------------------

    def field_genes(self, genes: Sequence[str] | None = None) -> list[str]:
        """The genes of the transition field's correlation, in panel order.

        ``genes`` when given (each must be a gene of the panel); by default the genes whose Δ is not 0
        plus the highly variable genes (``var['highly_variable']``, as ``spacetravlr prep`` and scanpy
        write it) — every gene of the panel when the dataset has no such column (then the correlation is
        the one over the whole layer, as before genes could be left unloaded).
        """
        t = self.tissue
        if genes is not None:
            for g in genes:
                t.require_gene(g, "field gene")
            want = set(genes)
        elif t.highly_variable is None:
            return list(t.all_genes)
        else:
            want = set(self.changed_genes()) | set(t.highly_variable)
        return [g for g in t.all_genes if g in want]

    def field_inputs(self, genes: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(X, Δ, delta_genes)`` for :func:`~spacetravlr_py.transitions.transition_probabilities`.

        X (N, F) is the base expression of :meth:`field_genes` in the layer's dtype (float32 stays
        float32; unloaded genes are read from the layer), Δ (N, C) float64 covers only the field genes
        that changed, ``delta_genes`` (C,) their columns in X. So the field never holds a full-width
        float64 X and Δ.
        """
        names = self.field_genes(genes)
        X = self.tissue.columns(names, dtype=self.tissue.layer_dtype)
        moved = set(self.changed_genes())
        cols = np.array([k for k, g in enumerate(names) if g in moved], dtype=np.int64)
        D = np.empty((self.tissue.n_cells, len(cols)))
        for c, k in enumerate(cols.tolist()):
            D[:, c] = self.delta_of(names[k])
        return X, D, cols

    @property
    def expression(self) -> np.ndarray:
        """(N, G) simulated expression over ``tissue.var_names`` (built on first access, then kept)."""
        if self._expression is None:
            X = np.array(self.tissue.expression, dtype=np.float64, order="C")
            self._fill(X, values=True)
            self._expression = X
        return self._expression

    @property
    def delta(self) -> np.ndarray:
        """(N, G) ``expression − x0`` over ``tissue.var_names`` (built on first access, then kept)."""
        if self._delta is None:
            D = np.zeros((self.tissue.n_cells, self.tissue.n_genes))
            self._fill(D, values=False)
            self._delta = D
        return self._delta

    def _fill(self, out: np.ndarray, *, values: bool) -> None:
        gi = self.tissue.gene_index
        for h in self.held:
            cols = [k for k, g in enumerate(h.genes) if g in gi]
            if cols:
                where = [gi[h.genes[k]] for k in cols]
                out[:, where] = h.values[:, cols] if values else h.delta_block(cols)

    # -- summary ------------------------------------------------------------------------------

    def _column_stats(self, exclude_rows_of: frozenset[str] = frozenset()) -> dict[str, np.ndarray]:
        """Per held gene: Σ|Δ|, ΣΔ, max|Δ| over cells; per cell: Σ|Δ| over held genes not in
        ``exclude_rows_of`` (see :func:`_kernels.abs_delta_sums`)."""
        n = self.tissue.n_cells
        sums, signed, mx, rows = [], [], [], np.zeros(n)
        for h in self.held:
            k = len(h.genes)
            cs, sg, cm = np.zeros(k), np.zeros(k), np.zeros(k)
            keep = np.array([g not in exclude_rows_of for g in h.genes], dtype=np.bool_)
            if h.delta is not None:
                _kernels.abs_delta_sums(np.ascontiguousarray(h.delta, dtype=np.float64), np.zeros((n, k)),
                                        keep, cs, cm, sg, rows)
            else:
                assert h.x0 is not None
                _kernels.abs_delta_sums(h.values, h.x0, keep, cs, cm, sg, rows)
            sums.append(cs)
            signed.append(sg)
            mx.append(cm)
        return {"abs_sum": _cat(sums), "signed_sum": _cat(signed), "max_abs": _cat(mx), "row_abs_sum": rows}

    def gene_stats(self) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
        """``(genes, mean Δ, mean |Δ|, max |Δ|)`` over every cell, for the held genes in panel order."""
        st = self._column_stats()
        order = self._panel_order()
        n = self.tissue.n_cells
        genes = self.genes
        return ([genes[k] for k in order], st["signed_sum"][order] / n, st["abs_sum"][order] / n,
                st["max_abs"][order])

    def _panel_order(self) -> np.ndarray:
        pos = {g: i for i, g in enumerate(self.tissue.all_genes)}
        return np.argsort([pos.get(g, len(pos)) for g in self.genes], kind="stable")

    def top_genes(self, n: int = 20, *, include_targets: bool = False) -> list[tuple[str, float]]:
        """Genes ranked by mean |Δ| over all cells (ties: panel order)."""
        genes, _, mean_abs, _ = self.gene_stats()
        order = np.argsort(-mean_abs, kind="stable")
        tset = set(self.targets)
        out = []
        for j in order:
            if (genes[j] in tset and not include_targets) or mean_abs[j] == 0:
                continue
            out.append((genes[j], float(mean_abs[j])))
            if len(out) == n:
                break
        return out

    def cluster_impact(self) -> dict[str, float]:
        """Per cluster: mean |Δ| over its cells and all non-target genes of the panel."""
        t = self.tissue
        tset = frozenset(self.targets)
        n_other = sum(1 for g in t.all_genes if g not in tset)
        if n_other:
            per_cell = self._column_stats(exclude_rows_of=tset)["row_abs_sum"] / n_other
        else:
            per_cell = np.zeros(t.n_cells)
        return {lab: float(per_cell[t.clusters == k].mean()) if (t.clusters == k).any() else 0.0
                for k, lab in enumerate(t.cluster_labels)}

    def mean_abs_delta(self, exclude: Sequence[str] = ()) -> float:
        """Mean |Δ| over all cells and every gene of the panel not in ``exclude``."""
        ex = set(exclude)
        genes, _, mean_abs, _ = self.gene_stats()
        n_genes = sum(1 for g in self.tissue.all_genes if g not in ex)
        total = float(sum(m for g, m in zip(genes, mean_abs) if g not in ex))
        return total / n_genes if n_genes else 0.0

    def n_genes_changed(self, exclude: Sequence[str] = ()) -> int:
        """Genes (not in ``exclude``) whose Δ is non-zero in some cell."""
        ex = set(exclude)
        genes, _, _, max_abs = self.gene_stats()
        return int(sum(1 for g, m in zip(genes, max_abs) if m > 0 and g not in ex))

    def summary(self, n_top: int = 20) -> dict[str, Any]:
        """JSON-ready summary: genes, values, scope, top affected genes, per-cluster impact, timings."""
        return {
            "genes": self.targets, "desired_expr": self.desired, "scope": self.scope_label,
            "n_scope_cells": int(self.scope.sum()), "n_cells": int(self.scope.size),
            "n_propagation": self.n_propagation,
            "top_affected_genes": [{"gene": g, "mean_abs_delta": v} for g, v in self.top_genes(n_top)],
            "cluster_mean_abs_delta": self.cluster_impact(),
            "n_genes_changed": self.n_genes_changed(),
            "timings_s": {k: round(v, 6) for k, v in self.timings.items()},
        }

    def to_frame(self) -> Any:
        """DataFrame: ``CellID`` + every gene of the panel (simulated expression); for large panels write
        with :func:`~spacetravlr_py.perturbation.export.write_expression`, which streams instead."""
        import pandas as pd

        t = self.tissue
        cols: dict[str, Any] = {_keys.CELLID_COL: t.obs_names}
        for g in t.all_genes:
            cols[g] = self.expression_of(g)
        return pd.DataFrame(cols)

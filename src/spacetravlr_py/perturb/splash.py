"""Splash: per-cell partial derivatives ∂y/∂gene of a trained gene (SPEC §6).

For cell ``i`` with beta row β, expression G, received ligands RL (LR) and RLt (TF–ligand) and
``s = beta_scale_factor``:

========================  =================================================
term                      contribution
========================  =================================================
TF (or extra) ``t``       ∂y/∂t += β_t
``L$R``                   ∂y/∂R += s·β·RL[L] if G[R] > 0; ∂y/∂L += s·β·G[R]
``L#T``                   ∂y/∂L += s·β·G[T]; ∂y/∂T += s·β·RLt[L]
========================  =================================================

Contributions to the same gene are summed, then clamped to ±``beta_cap`` if set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .._keys import MIN_EXPRESSION
from ..betadata.betabase import Betabase
from ..naming import TF
from . import _kernels


@dataclass
class LigandTable:
    """Received ligands indexed by gene: ``values[:, col[gene_index]]`` (col −1: not a ligand)."""

    values: np.ndarray
    col: np.ndarray

    @classmethod
    def from_columns(cls, values: np.ndarray, gene_indices: np.ndarray, n_genes: int) -> LigandTable:
        col = np.full(n_genes, -1, dtype=np.int64)
        col[np.asarray(gene_indices, dtype=np.int64)] = np.arange(len(gene_indices))
        return cls(np.ascontiguousarray(values, dtype=np.float64), col)

    @classmethod
    def from_frame(cls, df: pd.DataFrame, var_names: list[str]) -> LigandTable:
        """From a cells × ligand-genes DataFrame (columns not in ``var_names`` are ignored)."""
        gi = {g: i for i, g in enumerate(var_names)}
        cols = [c for c in df.columns if c in gi]
        return cls.from_columns(df[cols].to_numpy(dtype=np.float64), np.array([gi[c] for c in cols]),
                                len(var_names))


def filtered(expression: np.ndarray, min_expression: float = MIN_EXPRESSION) -> np.ndarray:
    """Expression with values ``<= min_expression`` (negatives included) set to 0."""
    G = np.array(expression, dtype=np.float64, order="C", copy=True)
    G[G <= min_expression] = 0.0
    return G


def _cap(beta_cap: float | None) -> float:
    if beta_cap is None:
        return 0.0
    if not beta_cap > 0:
        raise ValueError(f"beta_cap must be > 0, got {beta_cap}")
    return float(beta_cap)


def splash(betabase: Betabase, gene: str, expression: np.ndarray, received: LigandTable,
           received_tfl: LigandTable | None = None, *, beta_scale_factor: float = 1.0,
           beta_cap: float | None = None, as_frame: bool = False) -> np.ndarray | pd.DataFrame:
    """Derivatives of ``gene`` with respect to each of its modulator genes, for every cell.

    Parameters
    ----------
    betabase : Betabase
    gene : str
        A trained gene.
    expression : (N, G) array
        Expression G in ``betabase.var_names`` order (values ≤ 1e-9 count as 0).
    received, received_tfl : LigandTable
        RL (for ``L$R`` receptors) and RLt (for ``L#TF`` TFs); ``received_tfl`` defaults to ``received``.
    beta_scale_factor : float
        ``s``; multiplies the interaction terms only.
    beta_cap : float, optional
        Clamp each derivative to ±cap.
    as_frame : bool
        Return a DataFrame (index obs names, columns modulator genes).

    Returns
    -------
    (N, U) float64, columns = the sorted unique modulator genes (``betabase[gene].modulator_genes``);
    column-major (Fortran order).

    Notes
    -----
    The kernel reads one gene's values for a block of cells at a time: pass ``expression`` and the
    ligand tables in column-major order (``np.asfortranarray`` once, then splash many genes; pandas
    frames are stored that way) for the fastest path. Row-major input gives the same numbers, slower.
    """
    if gene not in betabase:
        from ..errors import InputError, near_matches, short_list

        raise InputError(f"splash: '{gene}' has no betadata{near_matches(gene, betabase.genes)} "
                         f"(trained genes: {short_list(betabase.genes)})")
    gm = betabase[gene]
    k = betabase.models.index(gm)
    f = betabase.flat()
    G = np.asarray(expression, dtype=np.float64)  # any layout; values <= MIN_EXPRESSION read as 0 in the kernel
    n_cells, n_genes = betabase.tissue.n_cells, len(betabase.var_names)
    if G.shape != (n_cells, n_genes):
        raise ValueError(f"splash: expression has shape {G.shape}, expected ({n_cells}, {n_genes}) "
                         "(cells × betabase.var_names)")
    rt = received_tfl if received_tfl is not None else received
    for name, tab in (("received", received), ("received_tfl", rt)):
        if tab.values.ndim != 2 or tab.values.shape[0] != n_cells or len(tab.col) != n_genes:
            raise ValueError(f"splash: {name} holds {tab.values.shape} values for {len(tab.col)} genes; expected "
                             f"{n_cells} rows and a column map over the {n_genes} genes (LigandTable.from_columns)")
    RW, RLt, lig_col = _aligned(received, rt)
    ligs = np.unique(gm.a[gm.kind != TF])
    missing = ligs[lig_col[ligs] < 0] if ligs.size else ligs
    if missing.size:
        raise ValueError(f"splash: no received-ligand values for {', '.join(betabase.var_names[j] for j in missing)} "
                         f"(ligands of {gene}); add them to the LigandTable")
    n_mods = len(gm.modulator_genes)
    out = np.empty((n_cells, n_mods), order="F")  # column-major: a DataFrame of it needs no copy
    if gm.coefs.shape[0] == 0 or n_mods == 0:
        out[:] = 0.0
    else:
        coef_args = (f["coefs"], f["coef_ptr"], f["n_cols"], f["mapping_id"], f["mappings"], f["kind_ptr"],
                     f["coef_col"], f["a"], f["b"], f["slot_a"], f["slot_b"])
        # the TF part per beta row, when there are few rows (seed betadata: one per cluster)
        few_rows = gm.coefs.shape[0] * 8 <= n_cells
        base = (_kernels.splash_base_rows(k, f["coefs"], f["coef_ptr"], f["n_cols"], f["kind_ptr"], f["coef_col"],
                                          f["slot_a"], n_mods) if few_rows else np.zeros((0, n_mods)))
        _kernels.splash_matrix(k, G, RW, RLt, lig_col, *coef_args, base, float(beta_scale_factor), _cap(beta_cap),
                               MIN_EXPRESSION, out)
    if as_frame:
        names = [betabase.var_names[j] for j in gm.modulator_genes]
        return pd.DataFrame(out, index=betabase.tissue.obs_names, columns=names)
    return out


def _aligned(rl: LigandTable, rlt: LigandTable) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One column map for both tables (union of their ligands; a ligand absent from one reads 0)."""
    if rl is rlt or np.array_equal(rl.col, rlt.col):
        return rl.values, rlt.values, rl.col
    genes = np.flatnonzero((rl.col >= 0) | (rlt.col >= 0))
    n = rl.values.shape[0]
    A = np.zeros((n, len(genes)))
    B = np.zeros((n, len(genes)))
    col = np.full(len(rl.col), -1, dtype=np.int64)
    for c, g in enumerate(genes):
        col[g] = c
        if rl.col[g] >= 0:
            A[:, c] = rl.values[:, rl.col[g]]
        if rlt.col[g] >= 0:
            B[:, c] = rlt.values[:, rlt.col[g]]
    return A, B, col

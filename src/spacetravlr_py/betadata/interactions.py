"""Aggregate every betadata coefficient over the cells of each cell type (``collect_interactions``).

For each target gene, each modulator column and each cell group (a cell type, a cluster...), one value
summarises the coefficient over the group's cells: ``mean``, ``min``, ``max``, ``sum``, or the mean of
the ``positive`` / ``negative`` values only. Cells are mapped to betadata rows exactly as the
:class:`~spacetravlr_py.betadata.Betabase` maps them (seed runs: the cell's cluster row; full-mode runs:
its own ``CellID`` row; a cell without a row has zero betas).

Genes are processed one at a time and no per-cell beta matrix is built: with ``C[g, r]`` = number of
cells of group ``g`` mapped to row ``r`` (a sparse matrix with one entry per cell at most),
``sum = C @ B``, ``mean = sum / n_g``, ``positive = (C @ max(B, 0)) / (C @ [B > 0])`` and min / max are
taken over the rows a group uses. Given a run folder instead of a Betabase, files are read one by one
and dropped after use, so the memory held is one gene's betadata.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import naming
from ..errors import InputError, near_matches, short_list
from ..io.anndata import Tissue
from .betabase import Betabase
from .frame import BetaFrame, list_betadata, read_betadata

if TYPE_CHECKING:
    import pandas as pd
    import scipy.sparse as sp

AGGREGATES: tuple[str, ...] = ("mean", "min", "max", "sum", "positive", "negative")
COLUMNS: tuple[str, ...] = ("modulator", "target", "cell_type", "value", "family", "ligand", "receptor", "tf",
                             "n_cells")
"""Columns of the table returned by :func:`collect_interactions`:

* ``modulator`` — the betadata column (``TF``, ``L$R`` or ``L#TF``);
* ``target`` — the gene whose model holds it;
* ``cell_type`` — the group of cells (a label of the annotation column);
* ``value`` — the coefficient aggregated over the group's cells (see ``aggregate``);
* ``family`` — ``tf``, ``lr`` or ``tfl`` (:data:`FAMILY_TF` ...);
* ``ligand``, ``receptor``, ``tf`` — the modulator's parts (None where the family has none);
* ``n_cells`` — cells in the group.
"""
_DTYPES: dict[str, Any] = {"value": float, "n_cells": np.int64}
FAMILY_TF, FAMILY_LR, FAMILY_TFL = (naming.KIND_NAMES[k] for k in (naming.TF, naming.LR, naming.TFL))
"""``family`` values: the short kind names (a name read back from betadata cannot tell an extra modulator
from a TF, so extras are ``tf`` here)."""


def modulator_parts(name: str) -> tuple[str, str | None, str | None, str | None]:
    """``(family, ligand, receptor, tf)`` of a modulator name: ``L$R`` → lr, ``L#TF`` → tfl, else tf."""
    m = naming.parse_modulator(name)
    if m.kind == naming.LR:
        return FAMILY_LR, m.first, m.second, None
    if m.kind == naming.TFL:
        return FAMILY_TFL, m.first, None, m.second
    return FAMILY_TF, None, None, m.first


class _Parts:
    """``modulator_parts`` memoised: every row of one modulator shares the same string objects, so a table
    of millions of rows holds pointers, not copies."""

    def __init__(self) -> None:
        self.cache: dict[str, tuple[str, str | None, str | None, str | None]] = {}
        self.names: dict[str, str] = {}

    def intern(self, name: str) -> str:
        """The first string object seen with this value."""
        return self.names.setdefault(name, name)

    def __call__(self, name: str) -> tuple[str, str | None, str | None, str | None]:
        p = self.cache.get(name)
        if p is None:
            p = self.cache[name] = modulator_parts(name)
        return p


def group_cells(labels: Sequence[Any] | np.ndarray, groups: Sequence[str] | None = None
                ) -> tuple[np.ndarray, list[str]]:
    """Per-cell group index (−1 = not reported) and the reported group names.

    ``labels`` are per-cell labels (strings or numbers, compared as strings); ``groups`` restricts the
    report to those labels (each must occur), in that order; by default every label, sorted.
    """
    labs = np.asarray([str(x) for x in np.asarray(labels, dtype=object).tolist()], dtype=object)
    present = sorted(set(labs.tolist()))
    if groups is None:
        names = present
    else:
        names = [str(g) for g in groups]
        bad = [g for g in names if g not in set(present)]
        if bad:
            raise InputError(f"cell type '{bad[0]}' has no cells{near_matches(bad[0], present)}; "
                             f"labels: {short_list(present)}")
    index = {g: i for i, g in enumerate(names)}
    idx = np.array([index.get(x, -1) for x in labs.tolist()], dtype=np.int64)
    return idx, names


def _count_matrix(group_idx: np.ndarray, rows: np.ndarray, n_groups: int, n_rows: int) -> sp.csr_matrix:
    """``C[g, r]`` = cells of group g mapped to row r; row ``n_rows`` collects cells without a row."""
    import scipy.sparse as sp

    keep = group_idx >= 0
    r = np.where(rows[keep] < 0, n_rows, rows[keep])
    C = sp.csr_matrix((np.ones(int(keep.sum())), (group_idx[keep], r)), shape=(n_groups, n_rows + 1))
    C.sum_duplicates()
    return C


def aggregate_rows(coefs: np.ndarray, C: sp.csr_matrix, how: str) -> np.ndarray:
    """(n_groups, M) aggregate of ``coefs`` (R, M) under the count matrix ``C`` (n_groups, R + 1).

    The extra last row of ``C`` holds cells without a beta row (zero betas). NaN = undefined (no cell
    in the group, or no positive / negative value).
    """
    B = np.vstack([coefs, np.zeros((1, coefs.shape[1]))])
    n = np.asarray(C.sum(axis=1)).ravel()
    with np.errstate(invalid="ignore", divide="ignore"):
        if how in ("sum", "mean"):
            s = np.asarray(C @ B)
            return s if how == "sum" else s / n[:, None]
        if how in ("positive", "negative"):
            part = np.maximum(B, 0.0) if how == "positive" else np.minimum(B, 0.0)
            cnt = np.asarray(C @ (part != 0).astype(np.float64))
            return np.where(cnt > 0, np.asarray(C @ part) / np.maximum(cnt, 1.0), np.nan)
    out = np.full((C.shape[0], B.shape[1]), np.nan)
    for g in range(C.shape[0]):
        used = C.indices[C.indptr[g]:C.indptr[g + 1]]
        if used.size:
            sub = B[used]
            out[g] = sub.min(axis=0) if how == "min" else sub.max(axis=0)
    return out


def _frames(source: Betabase | str | os.PathLike[str], tissue: Tissue, genes: set[str] | None
            ) -> tuple[int, Iterator[tuple[BetaFrame, np.ndarray]]]:
    """Number of target genes and an iterator of (frame, per-cell row index), one gene at a time."""
    if isinstance(source, Betabase):
        models = [gm for gm in source.models if genes is None or gm.gene in genes]
        return len(models), ((gm.frame, source.mappings[gm.mapping]) for gm in models)
    files = list_betadata(Path(source))
    todo = [g for g in sorted(files) if (genes is None or g in genes) and g in tissue.gene_index]

    def read() -> Iterator[tuple[BetaFrame, np.ndarray]]:
        for g in todo:
            frame = read_betadata(files[g], g)
            bb = Betabase([frame], tissue)  # the same cell → row mapping as a whole Betabase
            yield frame, bb.mappings[0]

    return len(todo), read()


def collect_interactions(
    betabase: Betabase | str | os.PathLike[str],
    tissue: Tissue | None = None,
    labels: Sequence[Any] | np.ndarray | None = None,
    *,
    aggregate: str = "mean",
    cell_types: Sequence[str] | None = None,
    genes: Sequence[str] | None = None,
    drop_zero: bool = True,
    on_gene: Callable[[int, int, str], None] | None = None,
) -> pd.DataFrame:
    """Every (modulator, target gene, cell type) coefficient aggregated over the cells of that type.

    Parameters
    ----------
    betabase : Betabase, or a run folder
        A loaded :class:`Betabase`, or the folder of ``*_betadata.*`` files (read one gene at a time).
    tissue : Tissue, optional
        The cells; default ``betabase.tissue`` (required with a folder).
    labels : (N,) sequence, optional
        Group label of each cell; default the tissue's cluster labels (``cluster_annot``).
    aggregate : {"mean", "min", "max", "sum", "positive", "negative"}
        Over a group's cells; ``positive`` / ``negative`` = mean of the positive / negative values only
        (rows without such values are left out).
    cell_types : sequence of str, optional
        Report only these labels (each must have cells).
    genes : sequence of str, optional
        Target genes to scan (default: all with betadata).
    drop_zero : bool
        Leave out zero and undefined values (as the seed does).
    on_gene : callable, optional
        ``on_gene(i, n, gene)`` before each target gene; raise from it to stop.

    Returns
    -------
    DataFrame with the columns :data:`COLUMNS` (``family``: ``tf`` (TF or extra), ``lr``, ``tfl``; absent
    parts are None), sorted by |value| descending, then target, then modulator. Strings of one name are
    one shared object (a table of millions of rows holds pointers).
    """
    import pandas as pd

    if aggregate not in AGGREGATES:
        raise InputError(f"aggregate '{aggregate}' is not one of {', '.join(AGGREGATES)}")
    t = tissue if tissue is not None else (betabase.tissue if isinstance(betabase, Betabase) else None)
    if t is None:
        raise InputError("collect_interactions: pass the tissue when giving a run folder")
    if labels is None:
        labels = np.asarray(t.cluster_labels, dtype=object)[t.clusters]
    if len(labels) != t.n_cells:
        raise InputError(f"labels has {len(labels)} entries, the dataset has {t.n_cells} cells")
    gidx, names = group_cells(labels, cell_types)
    sizes = np.bincount(gidx[gidx >= 0], minlength=len(names)).astype(np.int64)
    wanted = None if genes is None else {str(g) for g in genes}
    n_genes, frames = _frames(betabase, t, wanted)
    parts_of = _Parts()
    parts: list[pd.DataFrame] = []
    for i, (frame, rows) in enumerate(frames):
        if on_gene is not None:
            on_gene(i, n_genes, frame.gene)
        if not frame.modulators:
            continue
        C = _count_matrix(gidx, rows, len(names), frame.n_rows)
        vals = aggregate_rows(frame.coefs, C, aggregate)  # (groups, M)
        g_i, m_i = np.nonzero(np.isfinite(vals) & (vals != 0)) if drop_zero else np.indices(vals.shape).reshape(2, -1)
        if not g_i.size:
            continue
        bits = [parts_of(m) for m in frame.modulators]
        mods = np.asarray([parts_of.intern(m) for m in frame.modulators], dtype=object)
        cols = {k: np.asarray([b[j] for b in bits], dtype=object)[m_i] for j, k in enumerate(COLUMNS[4:8])}
        target = parts_of.intern(frame.gene)
        parts.append(pd.DataFrame({
            "modulator": mods[m_i], "target": target, "cell_type": np.asarray(names, dtype=object)[g_i],
            "value": vals[g_i, m_i], **cols, "n_cells": sizes[g_i]}))
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=_DTYPES.get(c, object)) for c in COLUMNS})
    df = pd.concat(parts, ignore_index=True)
    df["_abs"] = df["value"].abs()
    df = df.sort_values(["_abs", "target", "modulator"], ascending=[False, True, True], kind="stable")
    return df.drop(columns="_abs").reset_index(drop=True)[list(COLUMNS)]

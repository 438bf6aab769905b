"""Betabase: every betadata file of a run, mapped onto the cells of a tissue once.

* Files are read in parallel (pyarrow and pandas release the GIL while parsing).
* Cells are mapped to rows once per distinct row layout and the mapping is shared by every frame
  with that layout (seed runs: one mapping, cluster label → row, for all genes).
* Modulator names are resolved to gene indices once; the perturbation kernels then work on integer
  arrays only.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import _keys
from ..errors import InputError, short_list
from ..io.anndata import Tissue
from ..io.betadata import BetaFrame, list_betadata, read_betadata
from ..naming import LR, TF, TFL, parse_modulator

log = logging.getLogger("spacetravlr_py.betadata")


@dataclass
class GeneModel:
    """One trained gene with its modulators resolved to gene indices.

    Attributes
    ----------
    gene, gene_index : target name and its column in the expression matrix.
    coefs : (R, M) float64 — beta rows (intercept excluded).
    mapping : int — index into :attr:`Betabase.mappings` giving each cell's row (−1 = zero row).
    kind : (M,) int — :data:`~spacetravlr_py.naming.TF` (TF or extra), ``LR`` or ``TFL`` codes.
    a, b : (M,) int — gene indices: TF → (tf, −1); ``L$R`` → (L, R); ``L#TF`` → (L, TF).
    modulator_genes : (U,) int — sorted unique gene indices of the splash output.
    """

    gene: str
    gene_index: int
    frame: BetaFrame
    coefs: np.ndarray
    mapping: int
    kind: np.ndarray
    a: np.ndarray
    b: np.ndarray
    modulator_genes: np.ndarray
    dropped: list[str] = field(default_factory=list)


class Betabase:
    """The betadata of a run mapped onto a tissue's cells.

    Parameters
    ----------
    frames : sequence of BetaFrame
    tissue : Tissue
        The cells (obs names, cluster labels) and genes (var names) to map onto.
    """

    def __init__(self, frames: Sequence[BetaFrame], tissue: Tissue) -> None:
        self.tissue = tissue
        self.var_names = list(tissue.var_names)
        gi = tissue.gene_index
        self.mappings: list[np.ndarray] = []
        self._mapping_key: dict[tuple[object, ...], int] = {}
        self.models: list[GeneModel] = []
        self.unmatched_cells: dict[str, int] = {}
        unknown_targets = []
        for f in frames:
            if f.gene not in gi:
                unknown_targets.append(f.gene)
                continue
            m = self._mapping_for(f)
            kinds, aa, bb, keep, dropped = [], [], [], [], []
            for j, name in enumerate(f.modulators):
                kind, x, y = parse_modulator(name)
                if x not in gi or (y and y not in gi):
                    dropped.append(name)
                    continue
                kinds.append(kind)
                aa.append(gi[x])
                bb.append(gi[y] if y else -1)
                keep.append(j)
            kind_arr = np.array(kinds, dtype=np.int64)
            a_arr = np.array(aa, dtype=np.int64)
            b_arr = np.array(bb, dtype=np.int64)
            mods = np.unique(np.concatenate([a_arr, b_arr[b_arr >= 0]])) if keep else np.zeros(0, np.int64)
            self.models.append(GeneModel(
                gene=f.gene, gene_index=gi[f.gene], frame=f,
                coefs=(np.ascontiguousarray(f.coefs) if len(keep) == f.coefs.shape[1]  # no copy when all kept
                       else np.ascontiguousarray(f.coefs[:, keep])), mapping=m, kind=kind_arr, a=a_arr, b=b_arr,
                modulator_genes=mods.astype(np.int64), dropped=dropped))
            if dropped:
                log.warning("%s: %d modulators are not genes of the dataset and are ignored (%s)",
                            f.gene, len(dropped), short_list(dropped, 4))
        if unknown_targets:
            log.warning("%d betadata genes are not in the dataset and are ignored (%s)",
                        len(unknown_targets), short_list(unknown_targets, 5))
        self.models.sort(key=lambda gm: gm.gene_index)
        self._by_gene = {gm.gene: gm for gm in self.models}
        self._flat: dict[str, np.ndarray] | None = None

    # -- construction ----------------------------------------------------------------------

    @classmethod
    def from_dir(cls, directory: str | os.PathLike[str], tissue: Tissue, *, genes: Sequence[str] | None = None,
                 n_jobs: int | None = None) -> Betabase:
        """Read every ``*_betadata.{feather,parquet,csv}`` in ``directory`` (in parallel)."""
        files = list_betadata(directory)
        if genes is not None:
            files = {g: p for g, p in files.items() if g in set(genes)}
        if not files:
            raise InputError(f"{directory}: no *_betadata.feather/.parquet/.csv files; train first "
                             "(spacetravlr) or point to the folder that holds them")
        workers = n_jobs or min(8, (os.cpu_count() or 1) * 2)
        with ThreadPoolExecutor(max_workers=workers) as ex:
            frames = list(ex.map(lambda kv: read_betadata(kv[1], kv[0]), sorted(files.items())))
        return cls(frames, tissue)

    def _mapping_for(self, f: BetaFrame) -> int:
        ids = f.row_ids
        if len(ids) <= 4096:
            key: tuple[object, ...] = (f.row_kind, tuple(ids))
        else:  # per-cell frames: hash the ids instead of keeping a 100k-tuple as a key
            key = (f.row_kind, len(ids), hashlib.sha1("\n".join(ids).encode()).hexdigest())
        if key in self._mapping_key:
            return self._mapping_key[key]
        t = self.tissue
        labels = [str(lab) for lab in t.cluster_labels]
        id_set = set(ids) if len(ids) <= 4096 else None
        by_cluster = id_set is not None and all(lab in id_set for lab in labels)
        if f.row_kind == _keys.CLUSTER_COL or by_cluster:
            if by_cluster:
                rows = {r: i for i, r in enumerate(ids)}
                lut = np.array([rows[lab] for lab in labels], dtype=np.int64)
            else:
                lut = _integer_cluster_rows(f, labels, t.cluster_annot)
            mapping = lut[t.clusters]
            if (lut < 0).any():
                self.unmatched_cells[f.gene] = int((mapping < 0).sum())
        else:
            obs = np.asarray(t.obs_names, dtype=object)
            if len(ids) == t.n_cells and np.array_equal(np.asarray(ids, dtype=object), obs):
                mapping = np.arange(t.n_cells, dtype=np.int64)  # rows already in the tissue's cell order
            else:
                mapping = pd.Index(ids).get_indexer(obs).astype(np.int64)
            n_miss = int((mapping < 0).sum())
            if n_miss == t.n_cells:
                raise InputError(f"betadata of {f.gene}: none of its {len(ids)} cell ids is a cell of the "
                                 "dataset; the betadata come from another dataset")
            if n_miss:
                self.unmatched_cells[f.gene] = n_miss
                log.warning("betadata of %s: %d cells of the dataset have no row and get zero betas",
                            f.gene, n_miss)
        self.mappings.append(np.ascontiguousarray(mapping))
        self._mapping_key[key] = len(self.mappings) - 1
        return len(self.mappings) - 1

    # -- queries -----------------------------------------------------------------------------

    @property
    def genes(self) -> list[str]:
        """Trained genes (with betadata), in var_names order."""
        return [gm.gene for gm in self.models]

    def __contains__(self, gene: object) -> bool:
        return gene in self._by_gene

    def __getitem__(self, gene: str) -> GeneModel:
        return self._by_gene[gene]

    def __len__(self) -> int:
        return len(self.models)

    def ligands(self, kinds: tuple[int, ...] = (LR, TFL)) -> np.ndarray:
        """Sorted gene indices of every ligand in ``L$R`` / ``L#TF`` terms."""
        parts = [gm.a[np.isin(gm.kind, kinds)] for gm in self.models]
        return np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)

    def modulator_genes(self) -> set[str]:
        """Every gene that modulates some trained gene (TFs, ligands, receptors)."""
        idx = set()
        for gm in self.models:
            idx.update(gm.modulator_genes.tolist())
        return {self.var_names[i] for i in idx}

    def roles(self) -> dict[str, set[str]]:
        """``tf``, ``ligand`` and ``receptor`` genes across all models."""
        out: dict[str, set[str]] = {"tf": set(), "ligand": set(), "receptor": set()}
        for gm in self.models:
            for k, a, b in zip(gm.kind, gm.a, gm.b):
                if k == TF:
                    out["tf"].add(self.var_names[a])
                elif k == LR:
                    out["ligand"].add(self.var_names[a])
                    out["receptor"].add(self.var_names[b])
                else:
                    out["ligand"].add(self.var_names[a])
                    out["tf"].add(self.var_names[b])
        return out

    def flat(self) -> dict[str, np.ndarray]:
        """Concatenated integer/float arrays for the numba kernels (see ``perturb/_kernels.py``); cached."""
        if self._flat is None:
            self._flat = self._build_flat()
        return self._flat

    def _build_flat(self) -> dict[str, np.ndarray]:
        n_models = len(self.models)
        term_ptr = np.zeros(n_models + 1, np.int64)
        mod_ptr = np.zeros(n_models + 1, np.int64)
        coef_ptr = np.zeros(n_models + 1, np.int64)
        for k, gm in enumerate(self.models):
            term_ptr[k + 1] = term_ptr[k] + len(gm.kind)
            mod_ptr[k + 1] = mod_ptr[k] + len(gm.modulator_genes)
            coef_ptr[k + 1] = coef_ptr[k] + gm.coefs.size
        def cat(xs: list[np.ndarray], dt: type) -> np.ndarray:
            if not xs:
                return np.zeros(0, dt)
            if len(xs) == 1:  # one model (e.g. splash of a single frame): no concatenated copy
                return np.ascontiguousarray(xs[0], dtype=dt)
            return np.ascontiguousarray(np.concatenate(xs), dtype=dt)

        # terms of each model grouped by kind (TF, L$R, L#TF) so that the kernels loop over three ranges
        # without a branch per term; coef_col keeps each term's column in the model's beta rows
        slot_a, slot_b, kinds, aa, bb, coef_col = [], [], [], [], [], []
        kind_ptr = np.zeros((n_models, 4), np.int64)
        for k, gm in enumerate(self.models):
            order = np.argsort(gm.kind, kind="stable")
            pos = {g: s for s, g in enumerate(gm.modulator_genes.tolist())}
            a_o, b_o = gm.a[order], gm.b[order]
            slot_a.append(np.array([pos[x] for x in a_o.tolist()], np.int64))
            slot_b.append(np.array([pos[x] if x >= 0 else -1 for x in b_o.tolist()], np.int64))
            kinds.append(gm.kind[order])
            aa.append(a_o)
            bb.append(b_o)
            coef_col.append(order.astype(np.int64))
            counts = np.bincount(gm.kind, minlength=TFL + 1)  # TF, L$R, L#TF term counts
            kind_ptr[k] = term_ptr[k] + np.concatenate([[0], np.cumsum(counts)])
        return {
            "target": np.array([gm.gene_index for gm in self.models], np.int64),
            "n_cols": np.array([gm.coefs.shape[1] for gm in self.models], np.int64),
            "mapping_id": np.array([gm.mapping for gm in self.models], np.int64),
            "mappings": np.ascontiguousarray(np.stack(self.mappings)) if self.mappings
            else np.zeros((0, self.tissue.n_cells), np.int64),
            "coefs": cat([gm.coefs.ravel() for gm in self.models], np.float64), "coef_ptr": coef_ptr,
            "kind": cat(kinds, np.int64), "a": cat(aa, np.int64), "b": cat(bb, np.int64),
            "coef_col": cat(coef_col, np.int64), "kind_ptr": kind_ptr,
            "slot_a": cat(slot_a, np.int64), "slot_b": cat(slot_b, np.int64), "term_ptr": term_ptr,
            "mods": cat([gm.modulator_genes for gm in self.models], np.int64), "mod_ptr": mod_ptr,
        }


_INT_TEXT = re.compile(r"-?(0|[1-9][0-9]*)")


def _integer_cluster_rows(f: BetaFrame, labels: list[str], cluster_annot: str) -> np.ndarray:
    """Row of each cluster id for ``Cluster`` rows that are integers (the seed writes cluster ids).

    When the labels of the cluster column are themselves integers, a row names the cluster of that
    label (the seed casts an integer column such as ``cell_type_int`` to its values); otherwise a row
    ``k`` is cluster id ``k``, the k-th label in sorted order (SPEC §2.1). Clusters without a row (the
    seed writes only the clusters it fitted) get zero betas, with a warning. Returns ``lut`` with
    ``lut[cluster_id]`` = row, −1 for none.
    """
    ids = f.row_ids
    present = set(ids)
    if not all(_INT_TEXT.fullmatch(r) for r in ids):
        missing = [lab for lab in labels if lab not in present]
        raise InputError(f"betadata of {f.gene}: no row for cluster(s) {short_list(missing, 5)} of "
                         f"obs['{cluster_annot}'] (rows: {short_list(ids, 5)}); the betadata "
                         "come from another dataset or cluster column")
    if all(_INT_TEXT.fullmatch(lab) for lab in labels):
        pos = {lab: k for k, lab in enumerate(labels)}
        what = f"integer labels of obs['{cluster_annot}']"
    else:
        pos = {str(k): k for k in range(len(labels))}
        what = f"cluster ids 0..{len(labels) - 1} (sorted labels of obs['{cluster_annot}'])"
    stray = [r for r in ids if r not in pos]
    if stray:
        raise InputError(f"betadata of {f.gene}: Cluster row '{stray[0]}' is none of the {what}; the "
                         "betadata come from another dataset or cluster column")
    lut = np.full(len(labels), -1, dtype=np.int64)
    for i, r in enumerate(ids):
        lut[pos[r]] = i
    if (lut < 0).any():
        log.warning("betadata of %s: no row for cluster(s) %s (rows are %s); their cells get zero betas",
                    f.gene, short_list([labels[k] for k in np.flatnonzero(lut < 0)], 5), what)
    return lut


def load_betabase(directory: str | os.PathLike[str] | Path, tissue: Tissue, **kw: object) -> Betabase:
    """Shortcut for :meth:`Betabase.from_dir`."""
    return Betabase.from_dir(directory, tissue, **kw)  # type: ignore[arg-type]

"""A dataset as the viewer serves it: the tissue, its derived arrays, and (with a run) the RunSession.

Built in the background by :mod:`.state`; the binary payloads that never change (coordinates, clusters)
are encoded once here.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import _keys
from ..errors import SpaceTravLRError
from . import payloads as pl
from .inspector import CellBetas, ModulatorSet

if TYPE_CHECKING:
    from ..io.anndata import Tissue
    from ..modulators import ModulatorSelector
    from ..perturbation.session import RunSession

log = logging.getLogger("spacetravlr_py.viewer")

COLUMN_CACHE_BYTES = 256 << 20
"""Columns read from the layer on demand (genes not loaded) are kept up to this many bytes (LRU)."""


@dataclass
class CellTypes:
    """The cell-type colouring: the obs column used, its sorted labels and a uint16 code per cell."""

    column: str | None
    categories: list[str]
    codes: np.ndarray | None

    def labels_of(self, names: list[str]) -> np.ndarray:
        """Boolean mask of cells whose label is one of ``names`` (unknown names select nothing)."""
        if self.codes is None:
            return np.zeros(0, dtype=bool)
        want = [i for i, c in enumerate(self.categories) if c in set(names)]
        return np.isin(self.codes, np.asarray(want, dtype=np.uint16))


def cell_types_of(tissue: Tissue) -> CellTypes:
    """First of ``CELL_TYPE_COLUMNS`` present in obs, else the cluster column."""
    obs = tissue.obs
    if obs is not None:
        for col in (*pl.CELL_TYPE_COLUMNS, tissue.cluster_annot):
            if col in obs.columns:
                try:
                    cats, codes = pl.cell_type_encoding(obs[col].to_numpy())
                except ValueError as e:
                    log.warning("obs['%s'] not usable for cell types: %s", col, e)
                    continue
                return CellTypes(col, cats, codes)
    if tissue.cluster_annot not in (obs.columns if obs is not None else []) and tissue.n_clusters > 1:
        cats, codes = pl.relabel_clusters(tissue.cluster_labels, tissue.clusters, {})
        return CellTypes(tissue.cluster_annot, cats, codes)
    return CellTypes(None, [], None)


def cell_types_like(tissue: Tissue, whole: CellTypes) -> CellTypes:
    """The cell types of ``tissue`` (a condition's cells) coded with the categories of ``whole`` (the whole
    dataset's), so that a cell type keeps its code, hence its colour, in every condition."""
    own = cell_types_of(tissue)
    if whole.codes is None or own.codes is None or own.column != whole.column:
        return own
    index = {c: i for i, c in enumerate(whole.categories)}
    remap = np.array([index.get(c, pl.NO_CELL_TYPE) for c in own.categories] + [pl.NO_CELL_TYPE], dtype=np.uint16)
    codes = remap[np.minimum(own.codes, len(own.categories))]
    return CellTypes(whole.column, list(whole.categories), codes)


def umap_key_of(path: Path) -> str | None:
    """The first of ``UMAP_KEYS`` among the obsm keys of an .h5ad (the tissue keeps only the array)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            keys = set(f["obsm"].keys()) if "obsm" in f else set()
    except OSError:
        return None
    return next((k for k in _keys.UMAP_KEYS if k in keys), None)


@dataclass
class Dataset:
    """The loaded tissue (and run) with everything the routes serve."""

    tissue: Tissue
    adata_path: Path
    run_toml: Path | None = None
    network_dir: Path | None = None
    session: RunSession | None = None
    cell_types: CellTypes = field(default_factory=lambda: CellTypes(None, [], None))
    spatial: tuple[bytes, dict[str, str]] = (b"", {})
    umap: tuple[bytes, dict[str, str]] | None = None
    umap_key: str | None = None
    clusters: tuple[bytes, dict[str, str]] = (b"", {})
    selector: ModulatorSelector | None = None
    network_species: str | None = None
    network_error: str | None = None
    _tree: Any = None
    _knn: tuple[tuple[int, bool, str], np.ndarray] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _columns: OrderedDict[str, np.ndarray] = field(default_factory=OrderedDict)

    def expression_of(self, gene: str) -> np.ndarray:
        """(N,) expression of any gene of the panel in the layer's dtype (float32 for a float32 layer, else
        float64): a loaded column (a view), else read from the layer (a scan of the layer for a CSR
        file) and kept in a small LRU cache."""
        t = self.tissue
        j = t.gene_index.get(gene)
        if j is not None:
            return t.expression[:, j]
        with self._lock:
            hit = self._columns.get(gene)
            if hit is not None:
                self._columns.move_to_end(gene)
                return hit
        col = t.column(gene, t.layer_dtype)
        with self._lock:
            self._columns[gene] = col
            while len(self._columns) > 1 and sum(c.nbytes for c in self._columns.values()) > COLUMN_CACHE_BYTES:
                self._columns.popitem(last=False)
        return col

    @classmethod
    def from_tissue(cls, tissue: Tissue, adata_path: Path, *, run_toml: Path | None = None,
                    network_dir: Path | None = None) -> Dataset:
        ds = cls(tissue=tissue, adata_path=adata_path, run_toml=run_toml, network_dir=network_dir)
        ds.cell_types = cell_types_of(tissue)
        ds.spatial = pl.to_bytes(tissue.coords, pl.F32)
        ds.umap = pl.to_bytes(tissue.umap, pl.F32) if tissue.umap is not None else None
        ds.umap_key = umap_key_of(adata_path) if tissue.umap is not None else None
        ds.clusters = pl.to_bytes(tissue.clusters, pl.U32)
        return ds

    # -- derived structures, built on first use ------------------------------------------------

    def spatial_tree(self) -> Any:
        """k-d tree of the spatial coordinates (cell inspector neighbours)."""
        with self._lock:
            if self._tree is None:
                from scipy.spatial import cKDTree

                self._tree = cKDTree(self.tissue.coords)
            return self._tree

    def umap_knn(self, k: int, reference_compat: bool, embedding: str = "umap") -> np.ndarray:
        """kNN of the UMAP (or the spatial coordinates) for transition fields (the last (k, compat, embedding)
        kept)."""
        from ..transitions import knn

        key = (k, reference_compat, embedding)
        with self._lock:
            if self._knn is not None and self._knn[0] == key:
                return self._knn[1]
        E = self.tissue.umap if embedding == "umap" else self.tissue.coords
        assert E is not None
        nb = knn(E, k, include_self=reference_compat)
        with self._lock:
            self._knn = (key, nb)
        return nb

    # -- modulators and betas of a focus gene ----------------------------------------------------

    def modulators_of(self, gene: str) -> tuple[ModulatorSet, CellBetas | None]:
        """From the gene's betadata when trained, else from the prior network, else none."""
        s = self.session
        if s is not None and gene in s.betabase:
            gm = s.betabase[gene]
            f = gm.frame
            betas = CellBetas(list(f.modulators), s.betabase.mappings[gm.mapping], f.intercept, f.coefs)
            return ModulatorSet.from_names(f.modulators, "betadata"), betas
        if self.selector is not None:
            m = self.selector.select(gene)
            return ModulatorSet("network", tuple(m.tfs), tuple(m.lr_pairs), tuple(m.tfl_pairs)), None
        return ModulatorSet(), None

    def load_network(self) -> None:
        """Index the prior network for the inspector (errors are kept, not raised: it is optional)."""
        from ..config import SpaceshipConfig
        from ..io.network import guess_species, load_network, resolve_network_dir
        from ..modulators import ModulatorSelector

        try:
            cfg = self.session.cfg if self.session is not None else None
            species = (cfg.data.species if cfg is not None else None) or guess_species(self.tissue.all_genes)
            if species is None:
                raise SpaceTravLRError("cannot tell the species from var_names; the cell inspector shows "
                                       "betadata modulators only")
            configured = self.network_dir or (cfg.grn.network_data_dir if cfg is not None else None)
            net = load_network(resolve_network_dir(configured, species), species)
            cutoff = (cfg or SpaceshipConfig()).grn.tf_ligand_cutoff
            self.selector = ModulatorSelector(network=net, var_names=self.tissue.all_genes, tf_ligand_cutoff=cutoff)
            self.network_species = species
            self.network_error = None
        except (SpaceTravLRError, OSError, ValueError) as e:
            self.network_error = str(e)
            log.info("network not loaded: %s", e)

    @property
    def betadata_row_id(self) -> str | None:
        if self.session is None or not len(self.session.betabase):
            return None
        kinds = {gm.frame.row_kind for gm in self.session.betabase.models}
        return _keys.CELLID_COL if _keys.CELLID_COL in kinds else _keys.CLUSTER_COL

"""``prepare``: raw counts → a trainable AnnData (normalise, select genes, cluster, UMAP, impute, coordinates).

The steps, in order (each prints one progress line with its duration when ``verbose``):

1. checks: unique names, spatial coordinates, section and label columns, the network's species and
   gene overlap, and that the counts really are counts (finite, non-negative, whole numbers);
2. drop cells and genes with no counts;
3. ``layers['raw_count']`` = the counts (CSR); ``layers['normalized_count']`` = ``X`` =
   ``log1p(target_sum · counts / library size)`` (scanpy, CSR float32);
4. gene selection: highly variable genes ∪ every network TF, ligand and receptor present;
5. PCA (highly variable genes), kNN graph, Leiden labels when no label column is named, UMAP when absent
   (scanpy);
6. ``layers['imputed_count']``: per-cell-type diffusion (:mod:`spacetravlr_py.prep.impute`), dense float32
   for the selected genes only;
7. coordinates: median nearest-neighbour distance, rescaling to ``cell_size`` (original in
   ``obsm['spatial_unscaled']``), sections laid out side by side.

What was done is recorded in ``uns['spacetravlr_prep']``.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .. import _keys
from ..errors import InputError, near_matches, short_list
from ..io.species import check_species, guess_species
from . import clusters as _clusters
from . import coords as _coords
from . import impute as _impute
from . import knn as _knn
from ._deps import require_leiden, require_scanpy
from .counts import check_counts, drop_empty
from .genes import DEFAULT_N_TOP_GENES, GeneSelection, check_network_overlap, load_prep_network, select_genes
from .normalize import DEFAULT_TARGET_SUM, as_csr32, normalize

if TYPE_CHECKING:
    import anndata as ad

    from ..io.network import Network

UNS_KEY = "spacetravlr_prep"
UNLABELED = "unlabeled"
MISSING_LABELS = frozenset({"", "nan", "NaN", "NA", "<NA>", "None"})
"""Label strings read as "no label" (R and pandas spellings of a missing value)."""
DEFAULT_N_PCS = 50
DEFAULT_N_NEIGHBORS = 15
DEFAULT_RESOLUTION = 1.0


# --------------------------------------------------------------------------------------------------
# Progress and report
# --------------------------------------------------------------------------------------------------


class _Progress:
    """One line per finished step (``name: detail (1.2 s)``); long steps also announce their start."""

    def __init__(self, emit: Callable[[str], None] | None) -> None:
        self.emit = emit
        self.t0 = time.perf_counter()
        self.timings: dict[str, float] = {}

    def say(self, msg: str) -> None:
        if self.emit is not None:
            self.emit(msg)

    @contextlib.contextmanager
    def step(self, name: str, *, announce: bool = False) -> Iterator[dict[str, str]]:
        info: dict[str, str] = {}
        if announce:
            self.say(f"{name} …")
        t = time.perf_counter()
        yield info
        dt = time.perf_counter() - t
        self.timings[name] = self.timings.get(name, 0.0) + dt
        detail = info.get("detail", "done")
        self.say(f"{name}: {detail} ({dt:.1f} s)")


@dataclass
class PrepReport:
    """What :func:`prepare` did; ``lines()`` is the printed summary, ``as_uns()`` what goes in ``uns``."""

    n_cells_in: int
    n_genes_in: int
    n_cells: int = 0
    n_genes: int = 0
    n_cells_dropped: int = 0
    n_genes_dropped: int = 0
    n_unlabeled: int = 0
    genes: GeneSelection | None = None
    cluster_source: str = ""
    cluster_sizes: dict[str, int] = field(default_factory=dict)
    median_nn_before: float = math.nan
    median_nn_after: float = math.nan
    scale_factor: float = 1.0
    spatial_key: str = "spatial"
    sections: _coords.SectionLayout | None = None
    umap: str = ""
    species: str | None = None
    network: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def n_clusters(self) -> int:
        return len(self.cluster_sizes)

    def lines(self) -> list[str]:
        out = [f"cells: {self.n_cells:,} of {self.n_cells_in:,}"
               + (f" ({self.n_cells_dropped:,} with 0 counts dropped)" if self.n_cells_dropped else "")
               + (f" ({self.n_unlabeled:,} unlabeled dropped)" if self.n_unlabeled else "")]
        if self.genes is not None:
            out.append("genes: " + self.genes.summary(self.n_genes_in - self.n_genes_dropped)
                       + (f"; {self.n_genes_dropped:,} with 0 counts dropped first" if self.n_genes_dropped else ""))
        sizes = sorted(self.cluster_sizes.values())
        if sizes:
            out.append(f"cell types: {self.n_clusters} from {self.cluster_source} "
                       f"({sizes[0]:,}–{sizes[-1]:,} cells each)")
        out.append(f"coordinates: median nearest-neighbour distance {self.median_nn_before:.4g} → "
                   f"{self.median_nn_after:.4g}"
                   + (f" (× {self.scale_factor:.4g}; original in obsm['{_keys.SPATIAL_UNSCALED_KEY}'])"
                      if self.scale_factor != 1.0 else " (not rescaled)"))
        if self.sections is not None:
            S = len(self.sections.offsets)
            rows = math.ceil(S / self.sections.n_cols)
            out.append(f"sections: {S} laid out on a {rows}×{self.sections.n_cols} grid, "
                       f"at least {self.sections.gap:.4g} apart")
        if self.umap:
            out.append(f"umap: {self.umap}")
        out.extend(f"note: {n}" for n in self.notes)
        return out

    def as_uns(self) -> dict[str, Any]:
        """A dict that ``write_h5ad`` can store (scalars, strings, arrays, nested dicts)."""
        d: dict[str, Any] = {
            "n_cells_in": self.n_cells_in, "n_genes_in": self.n_genes_in,
            "n_cells_dropped": self.n_cells_dropped, "n_genes_dropped": self.n_genes_dropped,
            "n_unlabeled_dropped": self.n_unlabeled,
            "cluster_source": self.cluster_source,
            "median_nn_before": self.median_nn_before, "median_nn_after": self.median_nn_after,
            "scale_factor": self.scale_factor, "spatial_key": self.spatial_key,
            "umap": self.umap, "species": self.species or "", "network": self.network or "",
            "params": {k: ("" if v is None else v) for k, v in self.params.items()},
            "timings": dict(self.timings), "notes": list(self.notes),
        }
        if self.genes is not None:
            g = self.genes
            d["genes"] = {"n_kept": g.n_kept, "n_hvg": g.n_hvg, "n_tfs": g.n_tfs, "n_ligands": g.n_ligands,
                          "n_receptors": g.n_receptors, "n_extra": g.n_extra, "n_added": g.n_added,
                          "selected": g.selected}
        if self.sections is not None:
            d["sections"] = self.sections.as_dict()
        return d


# --------------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------------


def _spatial_key(adata: ad.AnnData, spatial_key: str | None, where: str) -> str:
    keys = [spatial_key] if spatial_key else list(_keys.SPATIAL_KEYS)
    skey = next((k for k in keys if k in adata.obsm), None)
    if skey is None:
        raise InputError(f"{where}: no spatial coordinates in obsm (looked for {', '.join(keys)}; obsm has: "
                         f"{short_list(adata.obsm.keys())}); store them as obsm['spatial'] (N×2) or pass "
                         "--spatial-key")
    xy = np.asarray(adata.obsm[skey])
    n = adata.n_obs
    if xy.ndim != 2 or xy.shape[0] != n or xy.shape[1] < 2:
        raise InputError(f"{where}: obsm['{skey}'] has shape {xy.shape}, expected ({n}, 2) or ({n}, 3)")
    if not np.issubdtype(xy.dtype, np.number):
        raise InputError(f"{where}: obsm['{skey}'] is not numeric ({xy.dtype}); store coordinates as numbers")
    bad = ~np.isfinite(xy.astype(np.float64)).all(axis=1)
    if bad.any():
        raise InputError(f"{where}: obsm['{skey}'] has non-finite coordinates in {int(bad.sum()):,} cells "
                         f"(e.g. {short_list(adata.obs_names[bad], 3)}); remove or fix those cells")
    return skey


def _obs_column(adata: ad.AnnData, key: str, where: str, flag: str) -> pd.Series:
    if key not in adata.obs.columns:
        raise InputError(f"{where}: obs has no column '{key}'{near_matches(key, map(str, adata.obs.columns))} "
                         f"(obs columns: {short_list(adata.obs.columns)}); fix {flag}")
    return adata.obs[key]


def _counts_matrix(adata: ad.AnnData, layer: str | None, where: str) -> tuple[Any, str]:
    if layer:
        if layer not in adata.layers:
            raise InputError(f"{where}: layer '{layer}' not found{near_matches(layer, adata.layers.keys())} "
                             f"(layers: {short_list(adata.layers.keys())}); fix --layer or omit it to use X")
        return adata.layers[layer], f"layer '{layer}'"
    if adata.X is None:
        raise InputError(f"{where}: has no X matrix; name the counts layer with --layer "
                         f"(layers: {short_list(adata.layers.keys())})")
    return adata.X, "X"


def _label_strings(col: pd.Series) -> np.ndarray:
    """Labels as strings; missing ones (NaN, "NA", ...) become ``UNLABELED``; 3.0 (a float id) becomes "3"."""
    vals = col.astype(object).to_numpy()
    numeric = pd.api.types.is_float_dtype(col) or (
        isinstance(col.dtype, pd.CategoricalDtype) and pd.api.types.is_float_dtype(col.cat.categories))
    out = np.empty(len(vals), dtype=object)
    for i, v in enumerate(vals):
        if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
            out[i] = UNLABELED
        elif numeric and float(v).is_integer():
            out[i] = str(int(v))
        else:
            t = str(v).strip()
            out[i] = UNLABELED if t in MISSING_LABELS else t
    return out


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence third-party chatter (numba/scanpy deprecation and performance notes) inside scanpy calls."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        try:
            from numba.core.errors import NumbaWarning

            warnings.simplefilter("ignore", NumbaWarning)
        except ImportError:  # pragma: no cover
            pass
        yield


# --------------------------------------------------------------------------------------------------
# The pipeline
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PrepParams:
    """The options of :func:`prepare` (documented there), checked by :meth:`check`.

    The field order is the order of the recorded ``uns['spacetravlr_prep']['params']``.
    """

    layer: str | None = None
    skip_normalize: bool = False
    allow_non_integer: bool = False
    target_sum: float = DEFAULT_TARGET_SUM
    cluster_key: str | None = None
    leiden: bool = False
    resolution: float = DEFAULT_RESOLUTION
    min_cluster_cells: int = _clusters.DEFAULT_MIN_CELLS
    key_added: str = _keys.DEFAULT_CLUSTER_ANNOT
    drop_unlabeled: bool = False
    species: str | None = None
    n_top_genes: int | None = DEFAULT_N_TOP_GENES
    keep_genes: tuple[str, ...] = ()
    n_pcs: int = DEFAULT_N_PCS
    n_neighbors: int = DEFAULT_N_NEIGHBORS
    compute_umap: bool | None = None
    impute_knn: int = _impute.DEFAULT_KNN
    impute_knn_max: int | None = None
    impute_decay: float = _impute.DEFAULT_DECAY
    impute_t: int = _impute.DEFAULT_T
    spatial_key: str | None = None
    rescale: bool = True
    cell_size: float = _coords.DEFAULT_CELL_SIZE
    section_key: str | None = None
    section_gap: float | None = None
    random_state: int = 0

    @classmethod
    def from_kwargs(cls, keep_genes: Iterable[str] = (), **kwargs: Any) -> PrepParams:
        """The options as :func:`prepare` takes them (``keep_genes`` any iterable of names)."""
        return cls(keep_genes=tuple(str(g) for g in keep_genes), **kwargs)

    def check(self) -> None:
        """One-line :class:`InputError` for an option out of range (before any data is looked at)."""
        if self.n_top_genes is not None and self.n_top_genes < 1:
            raise InputError(f"--n-top-genes {self.n_top_genes} must be at least 1 (or use --all-genes)")
        if not (self.target_sum > 0 and math.isfinite(self.target_sum)):
            raise InputError(f"--target-sum {self.target_sum} must be a positive number")
        if not self.resolution > 0:
            raise InputError(f"--resolution {self.resolution} must be positive")
        if self.min_cluster_cells < 1:
            raise InputError(f"--min-cluster-cells {self.min_cluster_cells} must be at least 1 "
                             "(1 keeps every cluster)")
        if self.n_pcs < 2 or self.n_neighbors < 2:
            raise InputError(f"--n-pcs {self.n_pcs} and --n-neighbors {self.n_neighbors} must be at least 2")
        _impute._check_params(self.impute_knn, self.impute_knn_max, self.impute_decay, self.impute_t)
        if self.species is not None:
            check_species(self.species)

    def as_record(self) -> dict[str, Any]:
        """The options as recorded in the report (``keep_genes`` last, as a list)."""
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "keep_genes"}
        d["keep_genes"] = list(self.keep_genes)
        return d


@dataclass
class _Checked:
    """What the checks found: where coordinates, labels and counts are, and the network."""

    spatial_key: str
    cluster_key: str | None
    """The obs column of given labels (None: Leiden clusters)."""
    counts: Any
    counts_name: str
    network: Network | None


def _given_labels(adata: ad.AnnData, p: PrepParams, where: str, notes: list[str]) -> str | None:
    """The obs column holding the user's cell types, or None when Leiden must make them."""
    if p.cluster_key and p.leiden:
        raise InputError("--cluster-key and --leiden exclude each other: name existing labels or ask for "
                         "Leiden clusters, not both")
    if p.cluster_key:
        _obs_column(adata, p.cluster_key, where, "--cluster-key")
        if p.cluster_key != p.key_added and p.key_added in adata.obs.columns:
            notes.append(f"obs['{p.key_added}'] was replaced by the labels of obs['{p.cluster_key}']")
        return p.cluster_key
    if p.key_added in adata.obs.columns and not p.leiden:
        notes.append(f"using the existing obs['{p.key_added}'] as cell types (pass --leiden to recluster)")
        return p.key_added
    require_leiden()
    return None


def _check_network(network: str | os.PathLike[str] | pd.DataFrame | Network | None, var_names: list[str],
                   where: str, rep: PrepReport) -> Network | None:
    """Load the prior network and check its species and gene overlap against the data's genes."""
    if network is None:
        return None
    net = load_prep_network(network, species=rep.species)
    rep.network = str(net.path) if net.path is not None else "(in memory)"
    n_common = check_network_overlap(var_names, net, where=where, data_species=rep.species)
    rep.network += f" ({n_common:,} of the data's genes are in it)"
    return net


def _check_input(adata: ad.AnnData, p: PrepParams, network: str | os.PathLike[str] | pd.DataFrame | Network
                 | None, where: str, rep: PrepReport) -> _Checked:
    """Step 1: options, coordinates, sections, labels, species, network and counts (cheap, before any
    heavy work); one-line :class:`InputError` on the first problem."""
    p.check()
    skey = _spatial_key(adata, p.spatial_key, where)
    rep.spatial_key = skey
    if p.section_key:
        col = _obs_column(adata, p.section_key, where, "--section-key")
        if col.isna().any():
            raise InputError(f"{where}: obs['{p.section_key}'] is empty for {int(col.isna().sum()):,} cells; "
                             "give every cell a section")
    cluster_key = _given_labels(adata, p, where, rep.notes)
    counts, lname = _counts_matrix(adata, p.layer, where)
    var_names = [str(v) for v in adata.var_names]
    rep.species = p.species or guess_species(var_names)
    net = _check_network(network, var_names, where, rep)
    try:
        check_counts(counts, where=f"{where}: {lname}", obs_names=adata.obs_names, var_names=adata.var_names,
                     allow_non_integer=p.allow_non_integer, counts=not p.skip_normalize)
    except InputError as e:
        if p.layer or not len(adata.layers):
            raise
        raise InputError(f"{e} (layers present: {short_list(adata.layers.keys())})") from None
    return _Checked(skey, cluster_key, counts, lname, net)


def _check_detail(adata: ad.AnnData, p: PrepParams, c: _Checked, rep: PrepReport) -> str:
    return (f"{adata.n_obs:,} cells × {adata.n_vars:,} genes, {c.counts_name} "
            + ("(log-normalised, --skip-normalize)" if p.skip_normalize else "holds counts")
            + f", coordinates obsm['{c.spatial_key}']"
            + (f", species {rep.species}" if rep.species else "")
            + (f"; network {rep.network}" if c.network is not None else ""))


def _working_copy(adata: ad.AnnData, counts: Any, layer: str | None, notes: list[str]) -> ad.AnnData:
    """The object the steps work on: counts (CSR) as X, obs, var, obsm, uns and the layers prep does not
    write; no stale graph or PCs; duplicate names made unique."""
    import anndata as ad

    counts = counts.tocsr() if hasattr(counts, "tocsr") else as_csr32(counts)
    work = ad.AnnData(X=counts, obs=adata.obs.copy(), var=adata.var.copy(),
                      obsm={k: np.asarray(v) if not isinstance(v, pd.DataFrame) else v
                            for k, v in adata.obsm.items()},
                      uns={k: v for k, v in adata.uns.items() if k != UNS_KEY})
    for k, v in adata.layers.items():
        if k not in (layer, _keys.RAW_LAYER, _keys.NORMALIZED_LAYER, _keys.DEFAULT_LAYER):
            work.layers[k] = v
    if not work.obs_names.is_unique:
        notes.append(f"{int(work.obs_names.duplicated().sum()):,} duplicate obs_names made unique")
        work.obs_names_make_unique()
    if not work.var_names.is_unique:
        notes.append(f"{int(work.var_names.duplicated().sum()):,} duplicate var_names made unique")
        work.var_names_make_unique()
    return work


def _apply_labels(work: ad.AnnData, cluster_key: str, p: PrepParams, where: str,
                  rep: PrepReport) -> ad.AnnData:
    """Step 2a: the given labels as ``obs[key_added]``; unlabeled cells dropped or their own type."""
    labs = _label_strings(work.obs[cluster_key])
    miss = labs == UNLABELED
    if miss.all():
        raise InputError(f"{where}: obs['{cluster_key}'] has no label at all; name another column "
                         "with --cluster-key or pass --leiden")
    if miss.any():
        if p.drop_unlabeled:
            rep.n_unlabeled = int(miss.sum())
            work = work[~miss].copy()
            labs = labs[~miss]
        else:
            rep.notes.append(f"{int(miss.sum()):,} cells without a label in obs['{cluster_key}'] form the "
                             f"cell type '{UNLABELED}' (--drop-unlabeled drops them)")
    work.obs[p.key_added] = pd.Categorical(labs)
    return work


def _normalise(work: ad.AnnData, p: PrepParams) -> str:
    """Step 3: ``normalized_count`` (and ``raw_count`` unless the input is already normalised)."""
    if p.skip_normalize:
        norm = as_csr32(work.X)
        work.layers[_keys.NORMALIZED_LAYER] = norm
        work.X = norm
        return "input used as normalized_count as given (--skip-normalize; no raw_count layer)"
    work.layers[_keys.RAW_LAYER] = work.X
    normalize(work, target_sum=p.target_sum)
    return f"normalized_count = log1p(counts / library size × {p.target_sum:g})"


def _network_roles(var_names: pd.Index, net: Network | None) -> np.ndarray:
    """``var['network_role']``: ``TF``, ``ligand``, ``receptor`` or several joined by commas, else ''."""
    roles = pd.Series("", index=var_names, dtype=object)
    if net is not None:
        for name, genes in (("TF", net.tfs), ("ligand", net.ligands), ("receptor", net.receptors)):
            m = var_names.isin(genes)
            roles[m] = np.where(roles[m] == "", name, roles[m] + "," + name)
    return roles.to_numpy()


def _select(work: ad.AnnData, net: Network | None, p: PrepParams, rep: PrepReport) -> ad.AnnData:
    """Step 4: highly variable genes ∪ network genes ∪ ``keep_genes``; ``var['network_role']``."""
    sel = select_genes(work, n_top_genes=p.n_top_genes, network=net, keep_genes=p.keep_genes,
                       batch_key=p.section_key if p.n_top_genes is not None else None)
    rep.genes = sel
    work.var["network_role"] = _network_roles(work.var_names, net)
    if sel.missing_keep:
        rep.notes.append(f"{len(sel.missing_keep)} requested genes are not in the data (or have no counts): "
                         f"{short_list(sel.missing_keep, 5)}")
    if sel.selected:
        work = work[:, sel.mask].copy()
    return work


def _pca(work: ad.AnnData, p: PrepParams, where: str, prog: _Progress) -> int:
    """Step 5a: PCA on the highly variable genes (all genes when too few); returns the components."""
    sc = require_scanpy()
    n_comps = int(min(p.n_pcs, work.n_obs - 1, work.n_vars - 1))
    if n_comps < 2:
        raise InputError(f"{where}: {work.n_obs:,} cells × {work.n_vars:,} genes is too small for a PCA; "
                         "prep needs at least 3 cells and 3 genes with counts")
    with prog.step("PCA", announce=True) as info, _quiet():
        use_mask = "highly_variable" if int(work.var["highly_variable"].sum()) > n_comps else None
        sc.pp.pca(work, n_comps=n_comps, mask_var=use_mask, random_state=p.random_state)
        info["detail"] = f"{n_comps} components"
    return n_comps


def _neighbours(work: ad.AnnData, n_comps: int, p: PrepParams) -> str:
    """Step 5b: the kNN graph on the PCs: exact up to ``knn.APPROX_ABOVE_CELLS`` cells, pynndescent
    above (see prep/knn.py)."""
    sc = require_scanpy()
    k_nn = min(p.n_neighbors, work.n_obs - 1)
    transformer = _knn.transformer_for(work.n_obs, k_nn, p.random_state)
    sc.pp.neighbors(work, n_neighbors=k_nn, use_rep="X_pca", transformer=transformer,
                    random_state=p.random_state)
    kind = "exact" if transformer == "sklearn" else "approximate (pynndescent)"
    return f"{k_nn}-NN graph on {n_comps} PCs, {kind}"


def _leiden(work: ad.AnnData, p: PrepParams, rep: PrepReport) -> str:
    """Step 5c: Leiden clusters in ``obs[key_added]``, clusters under ``min_cluster_cells`` merged."""
    sc = require_scanpy()
    sc.tl.leiden(work, resolution=p.resolution, key_added=p.key_added, flavor="igraph", n_iterations=2,
                 directed=False, random_state=p.random_state)
    rep.cluster_source = f"Leiden clustering (resolution {p.resolution})"
    n_found = work.obs[p.key_added].nunique()
    merged, n_merged = _clusters.merge_small_clusters(
        work.obs[p.key_added].to_numpy(), work.obsp["connectivities"], p.min_cluster_cells)
    work.obs[p.key_added] = pd.Categorical(merged, categories=sorted(set(merged), key=int))
    detail = f"{n_found} clusters"
    if n_merged:
        detail += (f"; {n_merged} with fewer than {p.min_cluster_cells} cells merged into their "
                   f"most connected neighbour → {n_found - n_merged}")
        rep.cluster_source += f", clusters under {p.min_cluster_cells} cells merged"
    return detail


def _cluster_ids(work: ad.AnnData, key_added: str, rep: PrepReport) -> None:
    """Step 5d: ``obs[key_added + '_int']``, ids in sorted label order as training numbers clusters."""
    from ..io.anndata import cluster_ids

    ids, id_labels = cluster_ids(work.obs[key_added], column=key_added)
    work.obs[f"{key_added}_int"] = ids
    rep.cluster_sizes = {lab: int(n) for lab, n in zip(id_labels, np.bincount(ids, minlength=len(id_labels)))}


def _embed(work: ad.AnnData, c: _Checked, p: PrepParams, where: str, prog: _Progress,
           rep: PrepReport) -> None:
    """Step 5: PCA, kNN graph, Leiden labels when none are given, cluster ids, UMAP when asked or absent."""
    n_comps = _pca(work, p, where, prog)
    need_labels = c.cluster_key is None
    umap_present = next((k for k in _keys.UMAP_KEYS if k in work.obsm), None)
    do_umap = p.compute_umap if p.compute_umap is not None else umap_present is None
    if need_labels or do_umap:
        with prog.step("neighbours", announce=True) as info, _quiet():
            info["detail"] = _neighbours(work, n_comps, p)
    if need_labels:
        with prog.step("Leiden", announce=True) as info, _quiet():
            info["detail"] = _leiden(work, p, rep)
    else:
        rep.cluster_source = f"obs['{c.cluster_key}']"
    _cluster_ids(work, p.key_added, rep)
    if do_umap:
        with prog.step("UMAP", announce=True) as info, _quiet():
            require_scanpy().tl.umap(work, random_state=p.random_state)
            rep.umap = ("computed (obsm['X_umap'])" if umap_present is None
                        else f"recomputed (was obsm['{umap_present}'])")
            info["detail"] = rep.umap
    else:
        rep.umap = f"kept obsm['{umap_present}']"


def _impute_layer(work: ad.AnnData, p: PrepParams, rep: PrepReport, prog: _Progress) -> str:
    """Step 6: ``imputed_count`` = per-cell-type diffusion of ``normalized_count`` (dense float32)."""
    labels = np.asarray(work.obs[p.key_added].astype(str))
    imputed = _impute.impute_by_cluster(
        work.layers[_keys.NORMALIZED_LAYER], np.asarray(work.obsm["X_pca"]), labels, knn=p.impute_knn,
        knn_max=p.impute_knn_max, decay=p.impute_decay, t=p.impute_t, emit_every=10.0, progress=prog.say)
    work.layers[_keys.DEFAULT_LAYER] = imputed
    return (f"imputed_count = M^{p.impute_t} · normalized_count within each of {rep.n_clusters} cell "
            f"types (k={p.impute_knn}, α={p.impute_decay:g}; {imputed.shape[0]:,} × {imputed.shape[1]:,} "
            f"float32, {imputed.nbytes / 1e6:.0f} MB)")


def _coordinates(work: ad.AnnData, skey: str, p: PrepParams, where: str, rep: PrepReport) -> str:
    """Step 7: rescale to ``cell_size`` and lay sections out side by side (original kept)."""
    xy = np.asarray(work.obsm[skey], dtype=np.float64)
    sec = np.asarray(work.obs[p.section_key].astype(str)) if p.section_key else None
    rep.median_nn_before = _coords.median_nn_distance(xy, sec)
    new = xy.copy()
    if p.rescale:
        rep.scale_factor = _coords.rescale_factor(rep.median_nn_before, p.cell_size,
                                                  where=f"{where}: obsm['{skey}']")
        new *= rep.scale_factor
    spacing = rep.median_nn_before * rep.scale_factor
    if sec is not None:
        gap = p.section_gap if p.section_gap is not None else _coords.DEFAULT_GAP_CELLS * spacing
        new, rep.sections = _coords.layout_sections(new, sec, gap=float(gap))
    if p.rescale or sec is not None:
        if _keys.SPATIAL_UNSCALED_KEY in work.obsm:
            rep.notes.append(f"obsm['{_keys.SPATIAL_UNSCALED_KEY}'] already existed and was kept as the original")
        else:
            work.obsm[_keys.SPATIAL_UNSCALED_KEY] = xy
        work.obsm[skey] = new
    rep.median_nn_after = _coords.median_nn_distance(new, sec)
    return f"median nearest-neighbour distance {rep.median_nn_before:.4g} → {rep.median_nn_after:.4g}"


def _prepare(
    adata: ad.AnnData,
    *,
    network: str | os.PathLike[str] | pd.DataFrame | Network | None = None,
    where: str = "AnnData",
    emit: Callable[[str], None] | None = None,
    **kwargs: Any,
) -> tuple[ad.AnnData, PrepReport]:
    """The steps of :func:`prepare` in order; ``kwargs`` are the :class:`PrepParams`."""
    require_scanpy()
    p = PrepParams.from_kwargs(**kwargs)
    prog = _Progress(emit)
    rep = PrepReport(n_cells_in=adata.n_obs, n_genes_in=adata.n_vars, params=p.as_record())
    with prog.step("checks") as info:
        c = _check_input(adata, p, network, where, rep)
        info["detail"] = _check_detail(adata, p, c, rep)
    work = _working_copy(adata, c.counts, p.layer, rep.notes)
    with prog.step("filter") as info:
        if c.cluster_key is not None:
            work = _apply_labels(work, c.cluster_key, p, where, rep)
        work, drop_notes, rep.n_cells_dropped, rep.n_genes_dropped = drop_empty(work, where=where)
        rep.notes.extend(drop_notes)
        info["detail"] = f"{work.n_obs:,} cells × {work.n_vars:,} genes with counts"
    with prog.step("normalise") as info, _quiet():
        info["detail"] = _normalise(work, p)
    with prog.step("genes") as info, _quiet():
        work = _select(work, c.network, p, rep)
        assert rep.genes is not None
        info["detail"] = rep.genes.summary(rep.n_genes_in - rep.n_genes_dropped)
    sel = rep.genes
    work.var["highly_variable"] = sel.hvg[sel.mask] if sel.selected else sel.hvg
    _embed(work, c, p, where, prog, rep)
    with prog.step("impute", announce=True) as info:
        info["detail"] = _impute_layer(work, p, rep, prog)
    with prog.step("coordinates") as info:
        info["detail"] = _coordinates(work, c.spatial_key, p, where, rep)
    rep.n_cells, rep.n_genes = work.n_obs, work.n_vars
    rep.timings = dict(prog.timings)
    rep.timings["total"] = time.perf_counter() - prog.t0
    work.uns[UNS_KEY] = rep.as_uns()
    return work, rep


def prepare(adata: ad.AnnData, *, verbose: bool = True, **kwargs: Any) -> ad.AnnData:
    """Turn a raw-count AnnData into a trainable one (see the module docstring for the steps).

    The input is not modified; a new AnnData is returned with

    - ``layers['raw_count']``: the counts (CSR; cells and genes with no counts dropped);
    - ``layers['normalized_count']`` and ``X``: ``log1p(target_sum · counts / library size)`` (CSR float32);
    - ``layers['imputed_count']``: per-cell-type diffusion imputation ``M^t · normalized`` (dense float32);
    - ``obs[key_added]`` (default ``cell_type``) and ``obs[key_added + '_int']`` (ids in sorted label
      order, as training numbers clusters); ``obsm['X_pca']``, ``obsm['X_umap']``;
    - ``var['highly_variable']``, ``var['network_role']``; ``uns['spacetravlr_prep']`` (the report);
    - ``obsm['spatial']`` rescaled / laid out, the original in ``obsm['spatial_unscaled']``.

    Parameters
    ----------
    adata
        Raw counts in ``X`` (or in ``layers[layer]``), coordinates in ``obsm['spatial']``.
    verbose
        Print one progress line per step.
    layer
        Layer holding the counts (default: ``X``).
    skip_normalize
        The matrix is already log-normalised: use it as ``normalized_count`` (no ``raw_count``).
    allow_non_integer
        Accept non-integer counts (ambient-corrected counts).
    target_sum
        Counts per cell after normalisation (default 1e4).
    cluster_key
        obs column with cell types (copied to ``obs[key_added]``); default: ``obs[key_added]`` if it
        exists, else Leiden clusters.
    leiden
        Recluster with Leiden even when ``obs[key_added]`` exists.
    resolution
        Leiden resolution (default 1.0).
    min_cluster_cells
        Leiden clusters with fewer cells are merged into the cluster their cells are most connected to
        in the kNN graph (default 10; 1 keeps every cluster; given labels are never merged).
    key_added
        obs column written with the cell types (default ``cell_type``).
    drop_unlabeled
        Drop cells whose label is missing (default: they form the type ``'unlabeled'``).
    network
        Prior network (path, folder, DataFrame or :class:`~spacetravlr_py.io.network.Network`): its TFs,
        ligands and receptors present are kept; its species and gene overlap are checked.
    species
        ``"mouse"`` or ``"human"`` (default: inferred from ``var_names``).
    n_top_genes
        Highly variable genes to keep (default 3000); None keeps every gene.
    keep_genes
        Further genes to keep.
    n_pcs, n_neighbors
        PCA components (default 50) and kNN graph size for Leiden/UMAP (default 15).
    compute_umap
        None (default): only when ``obsm`` has no UMAP; True: always; False: never.
    impute_knn, impute_knn_max, impute_decay, impute_t
        Diffusion operator parameters ``k`` (5), ``k_max`` (3k), ``α`` (1), ``t`` (3); ``t=0``
        copies ``normalized_count``.
    spatial_key
        obsm key of the coordinates (default: the first of ``spatial``, ``X_spatial``, ``spatial_loc``).
    rescale, cell_size
        Scale coordinates so the median nearest-neighbour distance is ``cell_size`` (default True, 15).
    section_key, section_gap
        obs column naming sections: nearest neighbours are measured within sections and the sections
        are laid out on a grid at least ``section_gap`` apart (default 133 median nearest-neighbour
        distances = 2,000 units after rescaling).
    random_state
        Seed of PCA, Leiden and UMAP.

    Returns
    -------
    anndata.AnnData
        The prepared dataset; ``uns['spacetravlr_prep']`` records parameters, counts and timings.
    """
    emit = (lambda s: print(f"prep: {s}", file=sys.stdout, flush=True)) if verbose else None
    out, _ = _prepare(adata, emit=emit, **kwargs)
    return out


def read_input(path: str | os.PathLike[str]) -> ad.AnnData:
    """Read an ``.h5ad`` with one-line errors for a missing, foreign or damaged file."""
    import anndata as ad

    from ..io.anndata import check_h5ad_path

    p = Path(path).expanduser()
    check_h5ad_path(p, "check the input path")
    try:
        return ad.read_h5ad(p)
    except Exception as e:
        raise InputError(f"{p}: cannot read as AnnData .h5ad ({e.__class__.__name__}: {e})") from None


def write_output(adata: ad.AnnData, path: str | os.PathLike[str], *, compression: str | None = None) -> Path:
    """Atomically write ``adata`` to ``path`` (temp file beside it, then rename)."""
    from ..io.atomic import atomic_write

    p = Path(path).expanduser()
    if p.is_dir():
        raise InputError(f"{p}: is a directory; pass the output .h5ad file name with -o")
    comp = None if compression in (None, "", "none") else compression
    return atomic_write(p, lambda tmp: adata.write_h5ad(tmp, compression=comp))


def prepare_file(input: str | os.PathLike[str], output: str | os.PathLike[str], *, verbose: bool = True,
                 compression: str | None = None, **kwargs: Any) -> PrepReport:
    """:func:`prepare` from an ``.h5ad`` file to another, written atomically; returns the report."""
    emit = (lambda s: print(f"prep: {s}", file=sys.stdout, flush=True)) if verbose else None
    require_scanpy()  # before reading a large file
    t0 = time.perf_counter()
    adata = read_input(input)
    if emit is not None:
        emit(f"read {input}: {adata.n_obs:,} cells × {adata.n_vars:,} genes ({time.perf_counter() - t0:.1f} s)")
    out, rep = _prepare(adata, emit=emit, where=str(input), **kwargs)
    del adata
    t1 = time.perf_counter()
    write_output(out, output, compression=compression)
    rep.timings["write"] = time.perf_counter() - t1
    rep.timings["total"] = time.perf_counter() - t0
    return rep

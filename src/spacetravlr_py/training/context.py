"""Everything a training worker needs, built once per run and shared.

The parent process builds a :class:`TrainingContext` (tissue arrays, modulator selector, received
ligands of every ligand any target needs) and, for ``--parallel N``, saves its arrays to a private
folder that worker processes memory-map. Every worker therefore fits on identical inputs, which makes
the results independent of the number of workers.
"""

from __future__ import annotations

import dataclasses
import logging
import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._keys import LR_SEP
from ..config import SpaceshipConfig
from ..errors import short_list
from ..io.anndata import Tissue
from ..io.tfprior import TfPrior
from ..modulators import Modulators, ModulatorSelector

log = logging.getLogger("spacetravlr_py.training")

#: python-reference compat: the reference's fits minimise its stated objective with both penalties doubled
REFERENCE_PENALTY_FACTOR = 2.0

_ARRAYS = ("expression", "clusters", "received", "lr_features", "lr_means", "lr_grams")
_META = ("cluster_labels", "var_names", "selector", "ligand_radius", "received_names", "fit", "received_info",
         "lr_pairs", "lr_has_grams", "coords", "random_seed", "tf_prior", "targets", "obs_names")
TARGET_CHUNK_BYTES = 256 << 20
"""Memory for the expression of targets that are not modulators: read from the layer in chunks of genes."""


class TargetColumns:
    """Expression of training targets that no model reads as a modulator, read from the layer in chunks.

    A wide panel has thousands of targets whose expression is only the response of their own fit. They
    are read in the order of the queue, ``chunk`` genes per pass over the layer (one pass per chunk for
    a CSR file), and only the current chunk is kept: memory is one chunk, not cells × targets.

    Parameters
    ----------
    reader : LayerReader
    order : list of str
        The targets, in the order the queue reaches them.
    cells : (N,) int array or None
        The layer rows of the tissue's cells (None: all).
    chunk_bytes : int
    """

    def __init__(self, reader: Any, order: list[str], cells: np.ndarray | None = None,
                 chunk_bytes: int = TARGET_CHUNK_BYTES) -> None:
        self.reader, self.order, self.cells = reader, list(order), cells
        n = reader.source.shape[0] if cells is None else len(cells)
        self.chunk = max(1, int(chunk_bytes // max(1, n * reader.dtype.itemsize)))
        self._pos = {g: i for i, g in enumerate(self.order)}
        self._names: dict[str, int] = {}
        self._block: np.ndarray | None = None
        self.n_reads = 0

    def __contains__(self, gene: object) -> bool:
        return gene in self._pos

    def get(self, gene: str) -> np.ndarray:
        """(N,) float64 expression of ``gene`` (reads its chunk when it is not the current one)."""
        if gene not in self._names:
            start = self._pos[gene]
            names = self.order[start:start + self.chunk]
            X = self.reader.columns(names)
            self._block = X if self.cells is None else np.ascontiguousarray(X[self.cells])
            self._names = {g: k for k, g in enumerate(names)}
            self.n_reads += 1
        assert self._block is not None
        return np.asarray(self._block[:, self._names[gene]], dtype=np.float64)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_block": None, "_names": {}}  # workers read their own chunks

    def held(self) -> TargetColumns:
        """The same targets read once into memory: for workers that cannot open the dataset file (a Dask
        worker on another machine). Values as :meth:`get` returns them (checked, small values 0)."""
        from ..io.layer import LayerReader, MemoryLayer

        X = self.reader.columns(self.order)
        if self.cells is not None:
            X = np.ascontiguousarray(X[self.cells])
        reader = LayerReader(MemoryLayer(X), np.arange(X.shape[0]).astype(str), self.order,
                             min_expression=self.reader.min_expression, keep_float32=True,
                             label=self.reader.label, layer=self.reader.layer)
        return TargetColumns(reader, self.order, None, chunk_bytes=max(1, X.nbytes))



@dataclass
class FitSettings:
    """Solver settings of a run (from ``[lasso]`` and ``[training]``)."""

    l1_reg: float
    group_reg: float
    group_reg_scaling: str
    n_iter: int
    tol: float
    score_threshold: float

    @classmethod
    def from_config(cls, cfg: SpaceshipConfig) -> FitSettings:
        """The solver settings of ``cfg``; under ``[compat] mode = "python-reference"`` both penalties are
        doubled: the reference's solver (group-lasso 1.5.0) steps by ``0.5·∇f/L`` but thresholds by
        ``reg/L``, so its fits converge to the minimiser of its stated objective with both penalties
        doubled (reference README, quirk 20). Its R² gate 0.15 is a compat key of the config.
        """
        k = REFERENCE_PENALTY_FACTOR if cfg.reference_compat else 1.0
        return cls(l1_reg=k * cfg.lasso.l1_reg, group_reg=k * cfg.lasso.group_reg,
                   group_reg_scaling=cfg.lasso.group_reg_scaling, n_iter=cfg.lasso.n_iter,
                   tol=cfg.lasso.tol, score_threshold=cfg.training.score_threshold)


@dataclass
class TrainingContext:
    """Shared, read-only inputs of the per-gene fits.

    Attributes
    ----------
    expression : (N, G) float64 or float32
        The columns training reads (``var_names``): targets with modulators and every modulator gene.
        float32 when the layer is stored as float32; :meth:`gene` returns float64 (an exact conversion).
    clusters : (N,) int64
    cluster_labels : list of str
    var_names : list of str
    selector : ModulatorSelector
    ligand_radius : dict of str → float
        Radius used for each ligand's received amount.
    received : (N, n_received) float64
        Received amount of ``received_names[k]`` at ``ligand_radius``.
    tf_prior : TfPrior or None
        ``[grn].tf_priors``: the TFs each target may use per cell type (see :meth:`feature_mask`).
    targets : TargetColumns or None
        Targets whose expression is not in ``expression``: read from the layer in chunks on demand.
    """

    expression: np.ndarray
    clusters: np.ndarray
    cluster_labels: list[str]
    var_names: list[str]
    selector: ModulatorSelector
    ligand_radius: dict[str, float]
    received: np.ndarray
    received_names: list[str]
    fit: FitSettings
    received_info: list[str] = field(default_factory=list)
    lr_pairs: list[tuple[str, str]] = field(default_factory=list)
    lr_features: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    lr_means: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    lr_grams: np.ndarray = field(default_factory=lambda: np.zeros((1, 1, 1)))
    lr_has_grams: bool = False
    coords: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    random_seed: int = 42
    tf_prior: TfPrior | None = None
    targets: TargetColumns | None = None
    obs_names: list[str] = field(default_factory=list)
    run_arrays: dict[str, np.ndarray] = field(default_factory=dict)
    _gi: dict[str, int] = field(default_factory=dict, repr=False)
    _ri: dict[str, int] = field(default_factory=dict, repr=False)
    _li: dict[tuple[str, str], int] = field(default_factory=dict, repr=False)

    def for_remote_workers(self) -> TrainingContext:
        """This context with nothing left to read from the dataset file (the targets read on demand are
        held in memory): what a distributed executor ships to workers that may not see the file."""
        if self.targets is None:
            return self
        return dataclasses.replace(self, targets=self.targets.held())

    def __post_init__(self) -> None:
        self._gi = {g: i for i, g in enumerate(self.var_names)}
        self._ri = {g: i for i, g in enumerate(self.received_names)}
        self._li = {p: i for i, p in enumerate(self.lr_pairs)}

    @property
    def shared(self) -> Any:
        """The run's ligand–receptor columns with their per-cluster statistics (SharedColumns)."""
        from ..models.fista import SharedColumns

        return SharedColumns(XL=self.lr_features, means=self.lr_means, grams=self.lr_grams,
                             has_grams=self.lr_has_grams)

    def lr_column(self, pair: tuple[str, str]) -> int:
        return self._li[pair]

    def gene(self, name: str) -> np.ndarray:
        """Expression of ``name`` as float64 (a view of a float64 context, else an exact copy)."""
        j = self._gi.get(name)
        if j is None and self.targets is not None and name in self.targets:
            return self.targets.get(name)
        if j is None:
            raise KeyError(f"{name}: not among the {len(self._gi)} genes loaded for training (an orphan "
                           "target, or a gene no model reads)")
        return np.asarray(self.expression[:, j], dtype=np.float64)

    def received_of(self, ligands: list[str]) -> np.ndarray:
        return self.received[:, [self._ri[l] for l in ligands]]

    def modulators(self, target: str) -> Modulators:
        return self.selector.select(target)

    def feature_mask(self, mods: Modulators) -> np.ndarray | None:
        """``(K, p)`` bool of the features each cluster may use under the TF prior (None: all of them)."""
        return self.tf_prior.feature_mask(mods, self.cluster_labels) if self.tf_prior is not None else None

    # -- sharing with worker processes ---------------------------------------------------------

    def save(self, folder: Path) -> None:
        """Write the arrays as .npy (memory-mappable) and the rest as a pickle."""
        folder.mkdir(parents=True, exist_ok=True)
        for name in _ARRAYS:
            np.save(folder / f"{name}.npy", np.ascontiguousarray(getattr(self, name)))
        for name, arr in self.run_arrays.items():
            np.save(folder / f"run_{name}.npy", np.ascontiguousarray(arr))
        meta = {k: getattr(self, k) for k in _META}
        meta["run_array_names"] = list(self.run_arrays)
        with open(folder / "context.pkl", "wb") as fh:
            pickle.dump(meta, fh, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def load(cls, folder: Path) -> TrainingContext:
        with open(folder / "context.pkl", "rb") as fh:
            meta: dict[str, Any] = pickle.load(fh)
        arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in _ARRAYS}
        run_arrays = {name: np.load(folder / f"run_{name}.npy", mmap_mode="r")
                      for name in meta.pop("run_array_names", [])}
        return cls(**arrays, **meta, run_arrays=run_arrays)


@dataclass
class ExtraModulators:
    """``[grn].extra_lr`` / ``extra_modulators`` with their files merged in, read and parsed once."""

    extra_lr: list[str]
    lr_items: list[tuple[str, str]]
    extra_modulators: list[str]

    @classmethod
    def from_config(cls, cfg: SpaceshipConfig) -> ExtraModulators:
        """Read the ``extra_*`` files and parse every extra LR pair (one clear line on a bad entry)."""
        from ..modulators import parse_lr, read_list_file

        g = cfg.grn
        extra_lr = list(g.extra_lr)
        items = parse_lr(extra_lr, source="[grn].extra_lr (--extra-lr)")
        if g.extra_lr_file:
            from_file = read_list_file(g.extra_lr_file, what="extra_lr")
            items += parse_lr(from_file, source=f"[grn].extra_lr_file {g.extra_lr_file}")
            extra_lr += from_file
        mods = list(g.extra_modulators)
        if g.extra_modulators_file:
            mods += read_list_file(g.extra_modulators_file, what="extra_modulators")
        return cls(extra_lr=extra_lr, lr_items=items, extra_modulators=mods)


def selector_for(cfg: SpaceshipConfig, tissue: Tissue, network: Any, extras: ExtraModulators, *,
                 rank_ligands: bool = True) -> ModulatorSelector:
    """The run's :class:`ModulatorSelector` over every gene of the panel.

    With ``[grn].max_ligands`` the ligands are ranked by mean expression: only the candidate ligands'
    columns are read for that (from the layer when not loaded). ``rank_ligands=False`` skips the ranking
    (keeps every ligand: a superset, e.g. to list the genes a run may read before loading them).
    """
    g = cfg.grn

    def make(means: dict[str, float] | None, max_ligands: int | None) -> ModulatorSelector:
        return ModulatorSelector(
            network=network, var_names=tissue.all_genes, ligand_means=means, max_ligands=max_ligands,
            tf_ligand_cutoff=g.tf_ligand_cutoff, use_tf=g.use_tf_modulators, use_lr=g.use_lr_modulators,
            use_tfl=g.use_tfl_modulators, extra_lr=extras.extra_lr, extra_modulators=extras.extra_modulators)

    if g.max_ligands is None or not rank_ligands:
        return make(None, None)
    candidates = sorted({l for l, _ in make(None, None).lr_pairs})
    # float64 C-order columns: the same column means as over the whole float64 layer
    means = dict(zip(candidates, tissue.columns(candidates).mean(axis=0).tolist()))
    return make(means, g.max_ligands)


def build_context(cfg: SpaceshipConfig, tissue: Tissue, network: Any, targets: list[str], *,
                  extras: ExtraModulators | None = None, n_threads: int | None = None,
                  tf_prior: TfPrior | None = None) -> TrainingContext:
    """Index the network, pick every target's modulators and compute the shared received ligands.

    ``tissue`` may hold a subset of the panel's genes: the genes the targets' models read are loaded
    from the layer when missing (:meth:`ModulatorSelector.genes_needed`). ``tf_prior``: the prior already
    read (otherwise ``[grn].tf_priors`` is read here when set)."""
    from ..spatial.radius import ligand_radius
    from ..spatial.received import ReceivedLigandCache

    extras = extras or ExtraModulators.from_config(cfg)
    if tf_prior is None and cfg.grn.tf_priors:
        from ..io.tfprior import read_tf_prior

        tf_prior = read_tf_prior(cfg.grn.tf_priors, var_names=tissue.all_genes, cluster_labels=tissue.cluster_labels,
                                 cluster_annot=tissue.cluster_annot, network=network)
    lr_items, extra_mods = extras.lr_items, extras.extra_modulators
    absent = [m for m in dict.fromkeys(extra_mods) if not tissue.has_gene(m)]
    if absent:
        log.warning("%d extra modulators are not genes of the dataset and are ignored: %s", len(absent),
                    short_list(absent, 8))
    absent_lr = [f"{l}{LR_SEP}{r}" for l, r in lr_items if not (tissue.has_gene(l) and tissue.has_gene(r))]
    if absent_lr:
        log.warning("%d extra ligand–receptor pairs name genes that are not in the dataset and are ignored: %s",
                    len(absent_lr), short_list(absent_lr, 8))
    selector = selector_for(cfg, tissue, network, extras)
    lazy: TargetColumns | None = None
    if targets:
        # modulator genes are held (every design matrix reads them); other targets are read in chunks
        tissue = tissue.with_genes(selector.modulator_genes(targets))
        rest = [t for t in selector.fitted_targets(targets) if t not in tissue.gene_index]
        if rest and tissue.reader is not None:
            lazy = TargetColumns(tissue.reader, rest, tissue.cells)
        elif rest:
            tissue = tissue.with_genes(rest)
    gi = tissue.gene_index
    sp = cfg.spatial
    # Received amounts of every ligand any target may use, in one canonical (sorted) batch, whatever
    # the queue: BLAS results can differ in the last bit with the number of columns computed together,
    # so computing exactly the pending targets' ligands would make a restarted, joined or --genes run
    # differ from an uninterrupted one. (In practice every target uses nearly every ligand anyway.)
    names = selector.all_ligands if targets else []
    radius = {l: ligand_radius(selector.signaling.get(l), radius=sp.radius, contact_distance=sp.contact_distance,
                               per_ligand_radius=sp.per_ligand_radius) for l in names}
    t0 = time.perf_counter()
    cache = ReceivedLigandCache(
        tissue.coords, lambda gs: tissue.expression[:, [gi[x] for x in gs]].astype(np.float64),
        kernel=sp.kernel, scale=sp.weighted_ligand_scale_factor,
        approx_above_cells=sp.approx_above_cells, grid_factor=cfg.perturbation.ligand_grid_factor,
        n_threads=n_threads)
    received = cache.get(names, [radius[l] for l in names])
    infos = [i.describe() for i in cache.infos()]
    log.info("received ligands for %d ligands in %.2fs", len(names), time.perf_counter() - t0)
    # the ligand–receptor columns are the same for every target (minus the pairs touching it): build
    # them once, with their per-cluster means and Gram blocks, and share them with every fit
    from ..models.fista import SharedColumns

    pairs = selector.all_lr_pairs if targets else []
    ri = {l: i for i, l in enumerate(names)}
    XL = np.empty((tissue.n_cells, len(pairs)))
    for k, (l, r) in enumerate(pairs):
        np.multiply(received[:, ri[l]], tissue.expression[:, gi[r]], out=XL[:, k])
    shared = SharedColumns.build(XL, tissue.clusters, tissue.n_clusters, n_threads=n_threads)
    return TrainingContext(expression=tissue.expression, clusters=tissue.clusters,
                           cluster_labels=list(tissue.cluster_labels), var_names=list(tissue.var_names),
                           selector=selector, ligand_radius=radius, received=received, received_names=names,
                           fit=FitSettings.from_config(cfg), received_info=infos,
                           lr_pairs=pairs, lr_features=shared.XL, lr_means=shared.means, lr_grams=shared.grams,
                           lr_has_grams=shared.has_grams, coords=tissue.coords,
                           random_seed=cfg.execution.random_seed, tf_prior=tf_prior, targets=lazy,
                           obs_names=[str(o) for o in tissue.obs_names])

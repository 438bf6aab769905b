"""Gene selection: highly variable genes plus every network TF, ligand and receptor present.

Training models every gene of the output as a target and uses TFs, ligands and receptors as
modulators, so a modulator dropped here is lost to every model; hence the network genes are kept
whatever their variability.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..errors import InputError, short_list
from ._deps import require_scanpy

if TYPE_CHECKING:
    import anndata as ad

    from ..io.network import Network

DEFAULT_N_TOP_GENES = 3000


def load_prep_network(network: str | os.PathLike[str] | pd.DataFrame | Network, *,
                      species: str | None) -> Network:
    """A :class:`~spacetravlr_py.io.network.Network` from a path, folder, frame or Network.

    A folder holding both species' files is resolved with ``species`` (inferred from the data).
    """
    from ..io.network import Network

    if isinstance(network, Network):
        return network
    if isinstance(network, pd.DataFrame):
        return Network.from_frame(network)  # species: guessed from its genes by check_network_overlap
    p = Path(network).expanduser()
    if p.is_dir() and species is not None:
        from ..io.network import network_filename

        if (p / network_filename(species)).is_file():
            return Network.load(p, species)
    return Network.load(p)


def check_network_overlap(var_names: Sequence[str], net: Network, *, where: str,
                          data_species: str | None) -> int:
    """Errors for a species mismatch and for no gene in common (one line each); returns the genes in common."""
    from ..io.species import guess_species

    net_name = str(net.path) if net.path is not None else "the network"
    net_species = net.species
    if net_species is None:
        genes = list(dict.fromkeys([*net.tfs[:50], *net.ligands[:50]]))
        net_species = guess_species(genes)
    if data_species is not None and net_species is not None and data_species != net_species:
        raise InputError(f"{where}: the genes look {data_species} (e.g. {short_list(list(var_names)[:3], 3)}) "
                         f"but {net_name} is a {net_species} network; pass a {data_species} network "
                         f"(spacetravlr network build --species {data_species} ...) or the matching data")
    net_genes = set(net.frame["source"]).union(net.frame["target"])
    common = net_genes.intersection(var_names)
    if not common:
        raise InputError(f"{where}: none of its {len(var_names):,} genes (e.g. {short_list(list(var_names)[:3], 3)}) "
                         f"is among the {len(net_genes):,} genes of {net_name} (e.g. "
                         f"{short_list(sorted(net_genes)[:3], 3)}); use gene symbols of the network's species "
                         "(convert Ensembl ids to symbols) or a matching network")
    return len(common)


@dataclass
class GeneSelection:
    """Which genes were kept and why.

    Attributes
    ----------
    mask : (G,) bool
        Kept genes, in ``var_names`` order.
    hvg : (G,) bool
        Highly variable genes (all True when no selection was asked).
    n_hvg : int
        Highly variable genes (all genes when no selection was asked).
    n_tfs, n_ligands, n_receptors : int
        Network TFs / ligands / receptors present in the data (all of them are kept).
    n_added : int
        Genes kept only because of the network or ``keep_genes`` (not highly variable).
    missing_keep : list of str
        ``keep_genes`` not in the data.
    """

    mask: np.ndarray
    hvg: np.ndarray
    n_hvg: int
    n_tfs: int = 0
    n_ligands: int = 0
    n_receptors: int = 0
    n_extra: int = 0
    n_added: int = 0
    selected: bool = True
    missing_keep: list[str] = field(default_factory=list)

    @property
    def n_kept(self) -> int:
        return int(self.mask.sum())

    def summary(self, n_total: int) -> str:
        if not self.selected:
            s = f"kept all {n_total:,} genes"
        else:
            s = f"kept {self.n_kept:,} of {n_total:,} genes: {self.n_hvg:,} highly variable"
        net = []
        if self.n_tfs or self.n_ligands or self.n_receptors:
            net.append(f"{self.n_tfs:,} TFs, {self.n_ligands:,} ligands, {self.n_receptors:,} receptors of the "
                       "network present")
        if self.n_extra:
            net.append(f"{self.n_extra:,} requested genes")
        if net and self.selected:
            s += " + every one of the " + " and ".join(net) + f" ({self.n_added:,} not highly variable)"
        elif net:
            s += ", among them " + " and ".join(net)
        return s


def highly_variable(adata: ad.AnnData, n_top_genes: int, *, batch_key: str | None = None) -> np.ndarray:
    """Boolean mask of the ``n_top_genes`` most variable genes of the log-normalised ``adata.X``.

    scanpy ``highly_variable_genes(flavor="seurat")`` (normalised dispersion in mean bins); with
    ``batch_key`` genes are ranked by the number of batches in which they are variable.
    """
    sc = require_scanpy()
    if n_top_genes >= adata.n_vars:
        return np.ones(adata.n_vars, dtype=bool)
    res = sc.pp.highly_variable_genes(adata, n_top_genes=int(n_top_genes), flavor="seurat",
                                      batch_key=batch_key, inplace=False, subset=False)
    assert res is not None
    return np.asarray(res["highly_variable"], dtype=bool)


def select_genes(adata: ad.AnnData, *, n_top_genes: int | None = DEFAULT_N_TOP_GENES,
                 network: Network | None = None, keep_genes: Iterable[str] = (),
                 batch_key: str | None = None) -> GeneSelection:
    """Highly variable genes ∪ network TFs, ligands and receptors ∪ ``keep_genes``.

    Parameters
    ----------
    adata
        Log-normalised expression in ``X``.
    n_top_genes
        Number of highly variable genes; None keeps every gene (the counts below are still reported).
        When the data have no more genes than this, every gene is kept.
    network
        Prior network whose TFs (``grn`` sources), ligands and receptors (``lr`` edges) are kept.
    keep_genes
        Further genes to keep (those absent from the data are listed in ``missing_keep``).
    batch_key
        obs column of sections/batches for the highly-variable ranking.
    """
    names = pd.Index(adata.var_names)
    G = len(names)
    if n_top_genes is not None and n_top_genes < G:
        selected = True
        hvg = highly_variable(adata, int(n_top_genes), batch_key=batch_key)
    else:
        selected = False
        hvg = np.ones(G, dtype=bool)
    mask = hvg.copy()
    sel = GeneSelection(mask=mask, hvg=hvg, n_hvg=int(hvg.sum()), selected=selected)
    if network is not None:
        present = set(names)
        tfs = present.intersection(network.tfs)
        ligs = present.intersection(network.ligands)
        recs = present.intersection(network.receptors)
        sel.n_tfs, sel.n_ligands, sel.n_receptors = len(tfs), len(ligs), len(recs)
        mask |= names.isin(list(tfs | ligs | recs))
    keep = [str(g) for g in keep_genes]
    if keep:
        sel.missing_keep = [g for g in keep if g not in names]
        extra = names.isin(keep)
        sel.n_extra = int(extra.sum())
        mask |= extra
    sel.n_added = int((mask & ~hvg).sum())
    sel.mask = mask
    return sel

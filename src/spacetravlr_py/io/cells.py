"""The cells of a dataset without its expression: for readers that group cells (interaction tables, run
reports) on datasets whose dense expression would not fit in memory (100k cells × 3,000 genes = 2.4 GB).

:func:`load_cells` reads ``obs``, the gene names and the coordinates / UMAP of an ``.h5ad`` — never ``X``
or a layer — with the same checks and the same cluster ids as :func:`~.anndata.load_tissue`, and returns
a :class:`~.anndata.Tissue` whose ``expression`` has no columns (``n_genes`` is still every gene).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from .. import _keys
from ..errors import InputError
from .anndata import Tissue, _checked_clusters, _checked_coords, _checked_names, _find_umap, _read_elem, check_h5ad_path


def load_cells(path: str | os.PathLike[str], *, cluster_annot: str = _keys.DEFAULT_CLUSTER_ANNOT,
               spatial_key: str | None = None, layer: str = _keys.DEFAULT_LAYER) -> Tissue:
    """A :class:`Tissue` of ``path``'s cells (names, coordinates, clusters, UMAP, ``obs``) with an (N, 0)
    expression matrix; ``layer`` is only recorded."""
    import h5py

    p = Path(path).expanduser().resolve()
    check_h5ad_path(p, "check the --h5ad path or [data].adata_path")
    label = str(p)
    try:
        with h5py.File(p, "r") as f:
            if "obs" not in f or "var" not in f:
                raise InputError(f"{p}: HDF5 file is not an AnnData .h5ad (no obs/var group)")
            obs = _read_elem(f["obs"])
            var = _read_elem(f["var"])
            wanted = {*_keys.SPATIAL_KEYS, *_keys.UMAP_KEYS, *([spatial_key] if spatial_key else [])}
            obsm = {k: (np.asarray(_read_elem(f["obsm"][k])) if k in wanted else None)
                    for k in (f["obsm"] if "obsm" in f else [])}
    except InputError:
        raise
    except Exception as e:  # h5py/anndata errors of a damaged or foreign file
        raise InputError(f"{p}: cannot read as AnnData .h5ad ({e.__class__.__name__}: {e})") from None
    if not (isinstance(obs, pd.DataFrame) and isinstance(var, pd.DataFrame)):
        raise InputError(f"{p}: HDF5 file is not an AnnData .h5ad (obs/var are not dataframes)")
    obs_names, var_names = _checked_names(obs, var, label)
    coords, skey = _checked_coords(obsm, spatial_key, obs_names, label)
    clusters, labels = _checked_clusters(obs, cluster_annot, True, label)
    return Tissue(obs_names=obs_names, var_names=var_names, coords=coords,
                  expression=np.zeros((len(obs_names), 0)), clusters=clusters, cluster_labels=labels,
                  umap=_find_umap(obsm, len(obs_names)), layer=layer, cluster_annot=cluster_annot, spatial_key=skey,
                  path=p, obs=obs)

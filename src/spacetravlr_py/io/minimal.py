"""The run folder's minimal ``.h5ad`` (``--write-minimal-repro-h5ad``): what perturbation and the viewer read.

``spacetravlr_minimal_repro.h5ad`` holds exactly the pieces :func:`~spacetravlr_py.io.anndata.load_tissue`
reads for a run, so a run folder can be moved to another machine without the original (often many-GB)
file: cell and gene names, the expression layer of ``[data].layer`` (``X`` when it is ``""``) in its own
dtype as a gzip-compressed CSR matrix, the obs column of ``[data].cluster_annot`` (and of
``[data].condition`` when set), the spatial coordinates under the key they were read from, and the UMAP.
Values at or below ``min_expression`` are dropped (the loader sets them to 0 anyway), so the tissue loaded
from it — and every perturbation — is bit-identical to the original's; the run's manifest fingerprint
checks that whenever it is opened.

When ``[data].adata_path`` of a run's TOML no longer exists, :func:`~spacetravlr_py.rundir.open_run` reads
this file instead (a condition folder uses its parent run's file), with a note.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .. import _keys
from ..errors import InputError
from .anndata import _read_partial
from .layer import LayerSource


def _sparse_layer(X: Any, min_expression: float, rows_per_block: int = 20_000) -> sp.csr_matrix:
    """The layer ``X`` (an :class:`~spacetravlr_py.io.layer.LayerSource`, read in row blocks, or an array)
    as CSR in its own dtype, entries ``<= min_expression`` (compared in float64) dropped."""
    if isinstance(X, LayerSource):
        parts = [_dropped(sp.csr_matrix(block), min_expression)
                 for _, block in X.row_blocks(rows_per_block, None, np.dtype(X.dtype))]
        return sp.csr_matrix(sp.vstack(parts, format="csr")) if parts else sp.csr_matrix(X.shape, dtype=X.dtype)
    M = sp.csr_matrix(X) if not sp.issparse(X) else sp.csr_matrix(X, copy=True)
    return _dropped(M, min_expression)


def _dropped(M: sp.csr_matrix, min_expression: float) -> sp.csr_matrix:
    if M.data.size:
        M.data[M.data.astype(np.float64) <= min_expression] = 0
    M.eliminate_zeros()
    return M


def write_minimal_h5ad(source: str | os.PathLike[str], out: str | os.PathLike[str], *, layer: str,
                       cluster_annot: str, obs_columns: Sequence[str] = (),
                       min_expression: float = _keys.MIN_EXPRESSION) -> Path:
    """Write the minimal ``.h5ad`` of ``source`` to ``out`` (atomically).

    Parameters
    ----------
    source : path
        The dataset the run trained on.
    out : path
        Usually ``<run folder>/spacetravlr_minimal_repro.h5ad``.
    layer, cluster_annot
        ``[data].layer`` (``""`` = X) and ``[data].cluster_annot``.
    obs_columns : sequence of str
        Further obs columns to keep (e.g. ``[data].condition``).

    Returns
    -------
    Path
        ``out``.
    """
    import anndata as ad

    from .atomic import atomic_write

    src = Path(source)
    parts = _read_partial(src, layer)
    obs: pd.DataFrame = parts["obs"]
    keep = [c for c in dict.fromkeys([cluster_annot, *obs_columns]) if c in obs.columns]
    obsm = {k: v for k, v in parts["obsm"].items() if v is not None}
    spatial = next((k for k in _keys.SPATIAL_KEYS if k in obsm), None)
    umap = next((k for k in _keys.UMAP_KEYS if k in obsm), None)
    M = _sparse_layer(parts["X"], min_expression)
    a = ad.AnnData(X=M if layer == "" else None, obs=obs[keep].copy(),
                   var=pd.DataFrame(index=parts["var"].index.astype(str)),
                   layers={} if layer == "" else {layer: M},
                   obsm={k: np.asarray(obsm[k]) for k in (spatial, umap) if k is not None})
    a.uns["spacetravlr_minimal_repro"] = {"source": str(src.resolve()), "layer": layer,
                                          "cluster_annot": cluster_annot}
    p = Path(out)
    try:
        atomic_write(p, lambda tmp: a.write_h5ad(tmp, compression="gzip"))
    except (OSError, TypeError, ValueError) as e:
        raise InputError(f"{p}: cannot write the minimal .h5ad ({e.__class__.__name__}: {e}); drop "
                         "--write-minimal-repro-h5ad or fix the obs columns it keeps ({', '.join(keep)})") from None
    return p

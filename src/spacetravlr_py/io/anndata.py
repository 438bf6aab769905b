"""Load and validate a tissue from an ``.h5ad`` file or an in-memory AnnData (SPEC §2.1).

Only the pieces the pipeline needs are read from disk (obs, var, the chosen layer and the obsm
entries), so a file with many large layers loads quickly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .. import _keys
from ..errors import InputError, short_list

if TYPE_CHECKING:
    import anndata as ad

    from ..config import SpaceshipConfig


@dataclass
class Tissue:
    """The validated view of a dataset that every stage works on.

    Attributes
    ----------
    obs_names : (N,) array of str
        Unique cell ids.
    var_names : list of str
        Gene symbols (columns of ``expression``).
    coords : (N, 2) float64
        Spatial coordinates (from ``obsm[spatial_key]``).
    expression : (N, G) float64, C-contiguous
        The chosen layer, dense, with values ``<= min_expression`` set to exactly 0.
    clusters : (N,) int64
        Cluster id of each cell, ``0..K-1`` in sorted label order.
    cluster_labels : list of str
        ``cluster_labels[k]`` is the label of cluster id ``k`` (the label↔id map).
    umap : (N, 2) float64 or None
        Embedding for transitions (``obsm['X_umap']`` or ``obsm['umap']``).
    """

    obs_names: np.ndarray
    var_names: list[str]
    coords: np.ndarray
    expression: np.ndarray
    clusters: np.ndarray
    cluster_labels: list[str]
    umap: np.ndarray | None = None
    layer: str = _keys.DEFAULT_LAYER
    cluster_annot: str = _keys.DEFAULT_CLUSTER_ANNOT
    spatial_key: str = "spatial"
    path: Path | None = None
    obs: pd.DataFrame | None = field(default=None, repr=False)
    _gene_index: dict[str, int] | None = field(default=None, repr=False)

    @property
    def n_cells(self) -> int:
        return int(self.coords.shape[0])

    @property
    def n_genes(self) -> int:
        return len(self.var_names)

    @property
    def n_clusters(self) -> int:
        return len(self.cluster_labels)

    @property
    def gene_index(self) -> dict[str, int]:
        """``{gene: column}`` for ``expression``."""
        if self._gene_index is None:
            self._gene_index = {g: i for i, g in enumerate(self.var_names)}
        return self._gene_index

    def gene(self, name: str) -> np.ndarray:
        """Expression column of ``name`` (a view)."""
        return self.expression[:, self.gene_index[name]]

    def cluster_sizes(self) -> np.ndarray:
        """Number of cells per cluster id."""
        return np.bincount(self.clusters, minlength=self.n_clusters)


def _read_elem(group: Any) -> Any:
    try:
        from anndata.io import read_elem  # anndata >= 0.11
    except ImportError:  # pragma: no cover - older anndata
        from anndata.experimental import read_elem  # type: ignore[no-redef]
    return read_elem(group)


def check_h5ad_path(path: Path, fix: str) -> None:
    """One-line :class:`InputError` unless ``path`` is an existing HDF5 file; ``fix`` ends the message
    about a missing file (e.g. which flag names it)."""
    import h5py

    if not path.exists():
        raise InputError(f"{path}: file not found; {fix}")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected an .h5ad file")
    if not h5py.is_hdf5(path):
        raise InputError(f"{path}: not an HDF5/.h5ad file (write it with AnnData.write_h5ad)")


def _read_partial(path: Path, layer: str, spatial_key: str | None = None) -> dict[str, Any]:
    """Read obs, var, obsm and one layer (or X) from an h5ad without loading the rest.

    Of ``obsm`` only the coordinates (``spatial_key`` or the default keys) and the UMAP are read; the
    other keys are listed with a ``None`` value.
    """
    import h5py

    check_h5ad_path(path, "check the --h5ad path or [data].adata_path")
    try:
        with h5py.File(path, "r") as f:
            missing = [k for k in ("obs", "var") if k not in f]
            if missing:
                raise InputError(f"{path}: HDF5 file is not an AnnData .h5ad (no {', '.join(missing)} group)")
            obs = _read_elem(f["obs"])
            var = _read_elem(f["var"])
            if not (isinstance(obs, pd.DataFrame) and isinstance(var, pd.DataFrame)):
                raise InputError(f"{path}: HDF5 file is not an AnnData .h5ad (obs/var are not dataframes)")
            obsm = {k: f["obsm"][k] for k in f["obsm"]} if "obsm" in f else {}
            layers = list(f["layers"].keys()) if "layers" in f else []
            if layer == "":
                if "X" not in f:
                    raise InputError(f"{path}: has no X matrix; choose a layer with --layer "
                                     f"(available: {short_list(layers)})")
                X = _read_elem(f["X"])
            else:
                if layer not in layers:
                    raise InputError(
                        f"{path}: layer '{layer}' not found (available layers: {short_list(layers)}; "
                        "use '' for X); set [data].layer or --layer, or run `spacetravlr prep`")
                X = _read_elem(f["layers"][layer])
            wanted = {*_keys.SPATIAL_KEYS, *_keys.UMAP_KEYS, *([spatial_key] if spatial_key else [])}
            obsm_arrays: dict[str, np.ndarray | None] = {}
            for k, ds in obsm.items():
                if k in wanted:
                    obsm_arrays[k] = np.asarray(_read_elem(ds))
                else:
                    obsm_arrays[k] = None  # present but not needed
    except InputError:
        raise
    except Exception as e:  # h5py/anndata errors of a damaged or foreign file
        raise InputError(f"{path}: cannot read as AnnData .h5ad ({e.__class__.__name__}: {e})") from None
    return dict(obs=obs, var=var, obsm=obsm_arrays, X=X, layers=layers)


def _from_adata(adata: ad.AnnData, layer: str) -> dict[str, Any]:
    if layer == "":
        X = adata.X
        if X is None:
            raise InputError(f"AnnData: has no X matrix; choose a layer (available layers: "
                             f"{short_list(adata.layers.keys())})")
    else:
        if layer not in adata.layers:
            raise InputError(f"AnnData: layer '{layer}' not found (available layers: "
                             f"{short_list(adata.layers.keys())}; use '' for X)")
        X = adata.layers[layer]
    obsm = {k: np.asarray(v) if not isinstance(v, pd.DataFrame) else v.to_numpy()
            for k, v in adata.obsm.items()}
    return dict(obs=adata.obs, var=adata.var, obsm=obsm, X=X, layers=list(adata.layers.keys()))


def _dense_expression(X: Any, min_expression: float) -> np.ndarray:
    if sp.issparse(X):
        M = X.tocsr().astype(np.float64)
        M.data[M.data <= min_expression] = 0.0
        out = M.toarray()
    else:
        out = np.array(X, dtype=np.float64, order="C", copy=True)
        out[out <= min_expression] = 0.0
    return out


def _where_nonfinite(values: np.ndarray, rows: np.ndarray, cols: list[str] | None) -> str:
    bad = ~np.isfinite(values)
    n = int(bad.sum())
    idx = np.argwhere(bad)
    i = idx[0]
    loc = f"cell '{rows[i[0]]}'" + (f", gene '{cols[i[1]]}'" if cols is not None and len(i) > 1 else "")
    n_nan = int(np.isnan(values).sum())
    n_rows = int(bad.any(axis=tuple(range(1, bad.ndim))).sum())
    return f"{n} non-finite values ({n_nan} NaN, {n - n_nan} inf) in {n_rows} cells; first at {loc}"


def cluster_ids(labels: pd.Series | np.ndarray, *, column: str = "") -> tuple[np.ndarray, list[str]]:
    """Map labels to ids ``0..K-1`` in sorted label order; return ``(ids, labels_by_id)``.

    Integer labels are sorted numerically, strings lexicographically. Missing labels are an error.
    """
    s = pd.Series(labels)
    if s.isna().any():
        raise InputError(f"obs['{column}']: {int(s.isna().sum())} cells have no label; "
                         "fill or drop them before training")
    if pd.api.types.is_integer_dtype(s) or pd.api.types.is_bool_dtype(s):
        uniq = np.unique(s.to_numpy())
        ids = np.searchsorted(uniq, s.to_numpy())
        return ids.astype(np.int64), [str(u) for u in uniq]
    if isinstance(s.dtype, pd.CategoricalDtype) and pd.api.types.is_integer_dtype(s.cat.categories):
        vals = s.astype(s.cat.categories.dtype).to_numpy()
        uniq = np.unique(vals)
        return np.searchsorted(uniq, vals).astype(np.int64), [str(u) for u in uniq]
    strs = s.astype(str).to_numpy()
    uniq = np.unique(strs)
    return np.searchsorted(uniq, strs).astype(np.int64), [str(u) for u in uniq]


def _read_source(data: str | os.PathLike[str] | ad.AnnData, layer: str,
                 spatial_key: str | None) -> tuple[dict[str, Any], str, Path | None]:
    """The parts :func:`load_tissue` needs (obs, var, obsm, the layer), the name used in errors and the
    resolved file path (None for an in-memory AnnData)."""
    import anndata as ad

    if isinstance(data, ad.AnnData):
        return _from_adata(data, layer), "AnnData", None
    path = Path(data).expanduser().resolve()
    return _read_partial(path, layer, spatial_key), str(path), path


def _checked_names(obs: pd.DataFrame, var: pd.DataFrame, label: str) -> tuple[np.ndarray, list[str]]:
    """Cell ids and gene symbols as strings: at least 2 cells, no duplicate of either."""
    obs_names = np.asarray(obs.index.astype(str))
    var_names = [str(v) for v in var.index]
    n = len(obs_names)
    if n < 2:
        raise InputError(f"{label}: has {n} cell(s); at least 2 cells are needed to fit spatial models")
    dup = pd.Index(obs_names).duplicated()
    if dup.any():
        ex = short_list(pd.unique(obs_names[dup]), 3)
        raise InputError(f"{label}: {int(dup.sum())} duplicate obs_names (e.g. {ex}); "
                         "make them unique with adata.obs_names_make_unique()")
    vdup = pd.Index(var_names).duplicated()
    if vdup.any():
        raise InputError(f"{label}: {int(vdup.sum())} duplicate var_names (e.g. "
                         f"{short_list(pd.unique(np.asarray(var_names)[vdup]), 3)}); "
                         "make them unique with adata.var_names_make_unique()")
    return obs_names, var_names


def _checked_coords(obsm: dict[str, Any], spatial_key: str | None, obs_names: np.ndarray,
                    label: str) -> tuple[np.ndarray, str]:
    """``(coords (N, 2) float64 C-contiguous, obsm key)``: the first two columns, all finite."""
    n = len(obs_names)
    keys = [spatial_key] if spatial_key else list(_keys.SPATIAL_KEYS)
    skey = next((k for k in keys if k in obsm), None)
    if skey is None:
        raise InputError(f"{label}: no spatial coordinates in obsm (looked for {', '.join(keys)}; "
                         f"obsm has: {short_list(obsm.keys())})")
    coords = np.asarray(obsm[skey], dtype=np.float64)
    if coords.ndim != 2 or coords.shape[0] != n or coords.shape[1] < 2:
        raise InputError(f"{label}: obsm['{skey}'] has shape {coords.shape}, expected ({n}, 2) or ({n}, 3)")
    coords = np.ascontiguousarray(coords[:, :2])
    if not np.isfinite(coords).all():
        raise InputError(f"{label}: obsm['{skey}']: {_where_nonfinite(coords, obs_names, None)}; "
                         "remove or fix those cells")
    return coords, skey


def _checked_expression(X: Any, layer: str, obs_names: np.ndarray, var_names: list[str], min_expression: float,
                        label: str) -> np.ndarray:
    """The layer as dense float64 after shape and finiteness checks, values ``<= min_expression`` → 0."""
    n = len(obs_names)
    lname = f"layer '{layer}'" if layer else "X"
    if X.shape != (n, len(var_names)):
        raise InputError(f"{label}: {lname} has shape {X.shape}, expected ({n}, {len(var_names)})")
    # non-finite values are checked before the min_expression cut, which would turn -inf into 0
    if sp.issparse(X):
        data_vals = X.tocsr().data
        if not np.isfinite(data_vals).all():
            dense = X.toarray() if X.shape[0] * X.shape[1] < 5e8 else None
            where = (_where_nonfinite(dense, obs_names, var_names) if dense is not None
                     else f"{int((~np.isfinite(data_vals)).sum())} non-finite values")
            raise InputError(f"{label}: {lname}: {where}; impute or drop them")
    else:
        X = np.asarray(X)
        if not np.isfinite(X).all():
            raise InputError(f"{label}: {lname}: {_where_nonfinite(X, obs_names, var_names)}; "
                             "impute or drop them")
    return _dense_expression(X, min_expression)


def _checked_clusters(obs: pd.DataFrame, cluster_annot: str, require_clusters: bool,
                      label: str) -> tuple[np.ndarray, list[str]]:
    """Cluster ids and labels of ``obs[cluster_annot]``; one cluster ``"all"`` when it is absent and not
    required."""
    if cluster_annot in obs.columns:
        return cluster_ids(obs[cluster_annot], column=cluster_annot)
    if require_clusters:
        raise InputError(f"{label}: obs has no cluster column '{cluster_annot}' (obs columns: "
                         f"{short_list(obs.columns)}); set [data].cluster_annot or --cluster-annot, "
                         "or run `spacetravlr prep` to cluster")
    return np.zeros(len(obs), dtype=np.int64), ["all"]


def _find_umap(obsm: dict[str, Any], n: int) -> np.ndarray | None:
    """The first usable ``(n, >=2)`` embedding among the UMAP keys, as ``(n, 2)`` float64."""
    for k in _keys.UMAP_KEYS:
        if k in obsm and obsm[k] is not None:
            u = np.asarray(obsm[k], dtype=np.float64)
            if u.ndim == 2 and u.shape[0] == n and u.shape[1] >= 2:
                return np.ascontiguousarray(u[:, :2])
    return None


def load_tissue(
    data: str | os.PathLike[str] | ad.AnnData,
    *,
    layer: str = _keys.DEFAULT_LAYER,
    cluster_annot: str = _keys.DEFAULT_CLUSTER_ANNOT,
    min_expression: float = _keys.MIN_EXPRESSION,
    spatial_key: str | None = None,
    require_clusters: bool = True,
) -> Tissue:
    """Load a tissue: coordinates, one expression layer, cluster ids and (if present) UMAP.

    Parameters
    ----------
    data
        Path to an ``.h5ad`` file or an in-memory :class:`anndata.AnnData`.
    layer
        Expression layer; ``""`` means ``X``. Sparse or dense.
    cluster_annot
        ``obs`` column with cell-type labels (categorical, string or integer).
    min_expression
        Values ``<= min_expression`` become exactly 0.
    spatial_key
        ``obsm`` key of the coordinates; by default the first of ``spatial``, ``X_spatial``,
        ``spatial_loc``. N×3 coordinates use the first two columns.
    require_clusters
        When False a missing cluster column puts every cell in one cluster ``"all"``.

    Raises
    ------
    InputError
        With one line naming the file, key or value and the fix.
    """
    parts, label, path = _read_source(data, layer, spatial_key)
    obs: pd.DataFrame = parts["obs"]
    obs_names, var_names = _checked_names(obs, parts["var"], label)
    coords, skey = _checked_coords(parts["obsm"], spatial_key, obs_names, label)
    expression = _checked_expression(parts["X"], layer, obs_names, var_names, min_expression, label)
    clusters, cluster_labels = _checked_clusters(obs, cluster_annot, require_clusters, label)
    return Tissue(obs_names=obs_names, var_names=var_names, coords=coords, expression=expression,
                  clusters=clusters, cluster_labels=cluster_labels, umap=_find_umap(parts["obsm"], len(obs_names)),
                  layer=layer, cluster_annot=cluster_annot, spatial_key=skey, path=path, obs=obs)


def tissue_from_config(cfg: SpaceshipConfig, *, adata_path: str | os.PathLike[str] | None = None) -> Tissue:
    """Load the tissue named by ``cfg.data`` (path, layer, cluster column).

    ``adata_path`` replaces ``[data].adata_path`` (e.g. a ``--h5ad`` flag).
    """
    path = adata_path or cfg.data.adata_path
    if not path:
        raise InputError("no dataset given: set [data].adata_path in the config or pass --h5ad")
    return load_tissue(path, layer=cfg.data.layer, cluster_annot=cfg.data.cluster_annot)

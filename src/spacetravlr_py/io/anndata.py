"""Load and validate a tissue from an ``.h5ad`` file or an in-memory AnnData (SPEC §2.1).

Only the pieces the pipeline needs are read from disk (obs, var, the obsm entries and, of the chosen
layer, the columns asked for), so a file with many large layers or thousands of unused genes loads
quickly and in little memory. A :class:`Tissue` may hold a subset of the panel's genes: it keeps the
full gene list (``panel``) and a reader of the layer (:class:`~spacetravlr_py.io.layer.LayerReader`) for
any other column (exports, the viewer).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .. import _keys
from ..errors import InputError, near_matches, short_list
from .layer import H5Layer, LayerReader, LayerSource, MemoryLayer

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
        Gene symbols of the loaded columns (columns of ``expression``): every gene of the panel unless
        the tissue was loaded for some genes only (``load_tissue(genes=...)``).
    coords : (N, 2) float64
        Spatial coordinates (from ``obsm[spatial_key]``).
    expression : (N, G) float64 (or float32), C-contiguous
        The loaded columns of the chosen layer, dense, with values ``<= min_expression`` set to exactly 0.
        float32 only when loaded with ``keep_float32`` from a layer that float32 holds exactly; every
        consumer converts to float64 (exact) before computing.
    clusters : (N,) int64
        Cluster id of each cell, ``0..K-1`` in sorted label order.
    cluster_labels : list of str
        ``cluster_labels[k]`` is the label of cluster id ``k`` (the label↔id map).
    umap : (N, 2) float64 or None
        Embedding for transitions (``obsm['X_umap']`` or ``obsm['umap']``).
    panel : list of str or None
        Every gene of the dataset, in layer order (None: the same as ``var_names``).
    reader : LayerReader or None
        Reads any column of the layer on demand (None: only the loaded columns exist).
    highly_variable : list of str or None
        Genes flagged in ``var['highly_variable']`` (None when the dataset has no such column).
    cells : (N,) int array or None
        The rows of the layer this tissue's cells are (a subset of cells, e.g. one condition group), in
        order; None: every row of the layer, in order.
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
    panel: list[str] | None = field(default=None, repr=False)
    reader: LayerReader | None = field(default=None, repr=False)
    highly_variable: list[str] | None = field(default=None, repr=False)
    cells: np.ndarray | None = field(default=None, repr=False)
    _panel_set: frozenset[str] | None = field(default=None, repr=False)

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
        """Expression column of ``name`` (a view when loaded, else read from the layer)."""
        j = self.gene_index.get(name)
        if j is None:
            return self.column(name)
        return self.expression[:, j]

    # -- the panel beyond the loaded columns -------------------------------------------------------

    @property
    def all_genes(self) -> list[str]:
        """Every gene of the dataset (the panel), loaded or not."""
        return self.panel if self.panel is not None else self.var_names

    @property
    def n_panel_genes(self) -> int:
        return len(self.all_genes)

    @property
    def is_subset(self) -> bool:
        """True when some genes of the panel are not loaded."""
        return self.panel is not None and len(self.panel) != len(self.var_names)

    def has_gene(self, name: str) -> bool:
        """``name`` is a gene of the dataset (loaded or readable)."""
        if name in self.gene_index:
            return True
        if self.panel is None:
            return False
        if self._panel_set is None:
            self._panel_set = frozenset(self.panel)
        return name in self._panel_set and self.reader is not None

    def require_gene(self, name: str, what: str = "gene") -> None:
        """One-line :class:`InputError` unless ``name`` is a gene of the dataset."""
        if not self.has_gene(name):
            raise InputError(f"{what} '{name}' is not in the dataset{near_matches(name, self.all_genes)}")

    def column(self, name: str, dtype: Any = np.float64) -> np.ndarray:
        """Expression of one gene of the panel as ``dtype`` (loaded: converted view; else read from the
        layer)."""
        return self.columns([name], dtype)[:, 0]

    @property
    def layer_dtype(self) -> np.dtype:
        """dtype of the expression in memory: float32 for a float32 layer loaded with ``keep_float32``."""
        return self.reader.dtype if self.reader is not None else self.expression.dtype

    def columns(self, names: Sequence[str], dtype: Any = np.float64) -> np.ndarray:
        """(N, len(names)) expression of genes of the panel as ``dtype``, loaded or read from the layer."""
        gi = self.gene_index
        out = np.empty((self.n_cells, len(names)), dtype=dtype)
        missing = [k for k, g in enumerate(names) if g not in gi]
        for k, g in enumerate(names):
            if g in gi:
                out[:, k] = self.expression[:, gi[g]]
        if missing:
            for g in (names[k] for k in missing):
                self.require_gene(g)
            out[:, missing] = self._read([names[k] for k in missing], np.dtype(dtype))
        return out

    def _read(self, names: Sequence[str], dtype: np.dtype) -> np.ndarray:
        """Columns of the layer for this tissue's cells."""
        assert self.reader is not None
        X = self.reader.columns(names, dtype)
        return X if self.cells is None else np.ascontiguousarray(X[self.cells])

    def row_blocks(self, rows_per_block: int, names: Sequence[str], dtype: Any = np.float64
                   ) -> Iterator[tuple[int, np.ndarray]]:
        """``(first cell, (B, len(names)) block)`` of columns read from the layer, over this tissue's
        cells in order (for genes that are not loaded: the export streams them)."""
        assert self.reader is not None
        if self.cells is None:
            yield from self.reader.row_blocks(rows_per_block, names, np.dtype(dtype))
            return
        cells = self.cells
        pending: list[np.ndarray] = []
        n_pending = 0
        r0 = 0
        for b0, blk in self.reader.row_blocks(rows_per_block, names, np.dtype(dtype)):
            lo, hi = np.searchsorted(cells, [b0, b0 + blk.shape[0]])
            if hi > lo:
                pending.append(blk[cells[lo:hi] - b0])
                n_pending += int(hi - lo)
            while n_pending >= rows_per_block or (n_pending and b0 + blk.shape[0] >= self.reader.source.shape[0]):
                allrows = np.concatenate(pending) if len(pending) > 1 else pending[0]
                take = min(rows_per_block, n_pending)
                yield r0, np.ascontiguousarray(allrows[:take])
                r0 += take
                rest = allrows[take:]
                pending, n_pending = ([rest] if len(rest) else []), len(rest)

    def values_at(self, rows: Sequence[int] | np.ndarray, names: Sequence[str], dtype: Any = np.float64) -> np.ndarray:
        """(len(rows), len(names)) expression of a few cells (loaded columns, else read from the layer)."""
        r = np.asarray(rows, dtype=np.int64)
        gi = self.gene_index
        out = np.empty((len(r), len(names)), dtype=dtype)
        missing = [k for k, g in enumerate(names) if g not in gi]
        for k, g in enumerate(names):
            if g in gi:
                out[:, k] = self.expression[r, gi[g]]
        if missing:
            for k in missing:
                self.require_gene(names[k])
            assert self.reader is not None
            rows_l = r if self.cells is None else self.cells[r]
            out[:, missing] = self.reader.cells(rows_l, [names[k] for k in missing], np.dtype(dtype))
        return out

    def with_genes(self, genes: Sequence[str]) -> Tissue:
        """This tissue with ``genes`` loaded too (columns in panel order, same dtype); self when nothing
        is missing. Raises :class:`InputError` for a gene that is not in the dataset."""
        gi = self.gene_index
        missing = [g for g in dict.fromkeys(genes) if g not in gi]
        if not missing:
            return self
        for g in missing:
            self.require_gene(g)
        order = {g: i for i, g in enumerate(self.all_genes)}
        names = sorted([*self.var_names, *missing], key=order.__getitem__)
        X = np.empty((self.n_cells, len(names)), dtype=self.expression.dtype)
        new = set(missing)
        for k, g in enumerate(names):
            if g not in new:
                X[:, k] = self.expression[:, gi[g]]
        cols = [k for k, g in enumerate(names) if g in new]
        X[:, cols] = self._read([names[k] for k in cols], X.dtype)
        return dataclasses.replace(self, var_names=names, expression=X, _gene_index=None,
                                   panel=list(self.all_genes))

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
    """Read obs, var and obsm of an h5ad and open its layer (or X) for reading, without loading the rest.

    Of ``obsm`` only the coordinates (``spatial_key`` or the default keys) and the UMAP are read; the
    other keys are listed with a ``None`` value. ``X`` is an :class:`~spacetravlr_py.io.layer.H5Layer`:
    nothing of the matrix is read yet.
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
                key = "X"
            else:
                if layer not in layers:
                    raise InputError(
                        f"{path}: layer '{layer}' not found (available layers: {short_list(layers)}; "
                        "use '' for X); set [data].layer or --layer, or run `spacetravlr prep`")
                key = f"layers/{layer}"
            wanted = {*_keys.SPATIAL_KEYS, *_keys.UMAP_KEYS, *([spatial_key] if spatial_key else [])}
            obsm_arrays: dict[str, np.ndarray | None] = {}
            for k, ds in obsm.items():
                if k in wanted:
                    obsm_arrays[k] = np.asarray(_read_elem(ds))
                else:
                    obsm_arrays[k] = None  # present but not needed
        X = H5Layer(path, key)
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
    return dict(obs=adata.obs, var=adata.var, obsm=obsm, X=MemoryLayer(X), layers=list(adata.layers.keys()))


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


def _checked_reader(X: LayerSource, layer: str, obs_names: np.ndarray, var_names: list[str],
                    min_expression: float, keep_float32: bool, label: str) -> LayerReader:
    """A reader of the layer after the shape check (values are checked as they are read)."""
    n = len(obs_names)
    lname = f"layer '{layer}'" if layer else "X"
    if X.shape != (n, len(var_names)):
        raise InputError(f"{label}: {lname} has shape {X.shape}, expected ({n}, {len(var_names)})")
    return LayerReader(X, obs_names, var_names, min_expression=min_expression, keep_float32=keep_float32,
                       label=label, layer=layer)


def _checked_expression(X: Any, layer: str, obs_names: np.ndarray, var_names: list[str], min_expression: float,
                        label: str) -> np.ndarray:
    """The whole layer ``X`` (array, sparse matrix or :class:`LayerSource`) as dense float64 after shape
    and finiteness checks, values ``<= min_expression`` → 0."""
    source = X if isinstance(X, LayerSource) else MemoryLayer(X)
    return _checked_reader(source, layer, obs_names, var_names, min_expression, False, label).columns(var_names)


def _highly_variable(var: pd.DataFrame, var_names: list[str]) -> list[str] | None:
    """Genes flagged by a boolean ``var['highly_variable']`` (scanpy / ``spacetravlr prep``), else None."""
    col = var.get(_keys.HVG_COLUMN)
    if col is None or not pd.api.types.is_bool_dtype(col):
        return None
    flags = col.to_numpy(dtype=bool)
    return [g for g, f in zip(var_names, flags) if f]


def _loaded_genes(genes: Sequence[str] | None, var_names: list[str], label: str) -> list[str]:
    """The genes to load, in panel order (None: all); one line for a gene that is not in the dataset."""
    if genes is None:
        return var_names
    present = set(var_names)
    wanted = set(genes)
    bad = [g for g in dict.fromkeys(genes) if g not in present]
    if bad:
        raise InputError(f"{label}: gene '{bad[0]}' is not in the dataset{near_matches(bad[0], var_names)}")
    return [g for g in var_names if g in wanted]


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
    genes: Sequence[str] | None = None,
    keep_float32: bool = False,
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
    genes
        Load only these columns of the layer (in panel order; ``[]`` loads none). The tissue keeps the
        panel's gene list and reads other columns on demand (:meth:`Tissue.column`,
        :meth:`Tissue.with_genes`). None (default) loads every gene.
    keep_float32
        Keep a float32 layer float32 in memory (half the memory; see :mod:`spacetravlr_py.io.layer`).

    Raises
    ------
    InputError
        With one line naming the file, key or value and the fix.
    """
    parts, label, path = _read_source(data, layer, spatial_key)
    obs: pd.DataFrame = parts["obs"]
    obs_names, var_names = _checked_names(obs, parts["var"], label)
    coords, skey = _checked_coords(parts["obsm"], spatial_key, obs_names, label)
    reader = _checked_reader(parts["X"], layer, obs_names, var_names, min_expression, keep_float32, label)
    loaded = _loaded_genes(genes, var_names, label)
    expression = reader.columns(loaded)
    clusters, cluster_labels = _checked_clusters(obs, cluster_annot, require_clusters, label)
    return Tissue(obs_names=obs_names, var_names=loaded, coords=coords, expression=expression,
                  clusters=clusters, cluster_labels=cluster_labels, umap=_find_umap(parts["obsm"], len(obs_names)),
                  layer=layer, cluster_annot=cluster_annot, spatial_key=skey, path=path, obs=obs,
                  panel=var_names, reader=reader, highly_variable=_highly_variable(parts["var"], var_names))


def tissue_from_config(cfg: SpaceshipConfig, *, adata_path: str | os.PathLike[str] | None = None,
                       genes: Sequence[str] | None = None, keep_float32: bool = False) -> Tissue:
    """Load the tissue named by ``cfg.data`` (path, layer, cluster column): the cells of group
    ``[data].condition_group`` of ``[data].condition`` when both are set (a condition's run).

    ``adata_path`` replaces ``[data].adata_path`` (e.g. a ``--h5ad`` flag); ``genes`` and
    ``keep_float32`` as in :func:`load_tissue`.
    """
    path = adata_path or cfg.data.adata_path
    if not path:
        raise InputError("no dataset given: set [data].adata_path in the config or pass --h5ad")
    tissue = load_tissue(path, layer=cfg.data.layer, cluster_annot=cfg.data.cluster_annot, genes=genes,
                         keep_float32=keep_float32)
    if cfg.data.condition and cfg.data.condition_group is not None:
        from .conditions import condition_tissue

        tissue = condition_tissue(tissue, cfg.data.condition, cfg.data.condition_group)
    return tissue

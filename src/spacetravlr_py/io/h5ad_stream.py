"""Write an ``.h5ad`` whose expression layer arrives in row blocks (CSR or dense, float32 or float64).

For datasets too large to hold as one matrix (benchmarks of wide panels, tiled tissues): obs, var, obsm
and uns are written with AnnData's own element writer; the layer is a CSR group (AnnData encoding
``csr_matrix`` 0.1.0) or a dense dataset, grown block by block, and ``X`` is a hard link to it (no second
copy on disk). The file is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .atomic import atomic_write


def _write_elem(group: Any, key: str, value: Any) -> None:
    try:
        from anndata.io import write_elem  # anndata >= 0.11
    except ImportError:  # pragma: no cover - older anndata
        from anndata.experimental import write_elem  # type: ignore[no-redef]
    write_elem(group, key, value)


def write_streamed_h5ad(path: str | os.PathLike[str], obs: pd.DataFrame, var: pd.DataFrame,
                        obsm: dict[str, np.ndarray], layer: str, blocks: Iterable[Any], *, dtype: Any = np.float32,
                        sparse: bool = True, uns: dict[str, Any] | None = None) -> Path:
    """Write obs / var / obsm / uns and the layer ``layers[layer]`` (= ``X``) from row blocks.

    ``blocks`` yields ``(rows, len(var))`` matrices (sparse or dense) whose rows, in order, are the cells
    of ``obs``; the layer is stored as CSR (``sparse``) or as a dense dataset. Peak memory is one block.
    """
    import h5py

    n, g = len(obs), len(var)

    def write(p: Path) -> None:
        with h5py.File(p, "w") as f:
            f.attrs["encoding-type"] = "anndata"
            f.attrs["encoding-version"] = "0.1.0"
            _write_elem(f, "obs", obs)
            _write_elem(f, "var", var)
            _write_elem(f, "obsm", obsm)
            for key in ("obsp", "varm", "varp"):
                _write_elem(f, key, {})
            _write_elem(f, "uns", uns or {})
            layers = f.create_group("layers")
            layers.attrs["encoding-type"] = "dict"
            layers.attrs["encoding-version"] = "0.1.0"
            if not sparse:
                _dense_layer(layers, layer, blocks, (n, g), dtype)
                f["X"] = layers[layer]
                return
            grp = layers.create_group(layer)
            grp.attrs["encoding-type"] = "csr_matrix"
            grp.attrs["encoding-version"] = "0.1.0"
            grp.attrs["shape"] = np.array([n, g], dtype=np.int64)
            data = grp.create_dataset("data", shape=(0,), maxshape=(None,), dtype=dtype, chunks=(1 << 20,))
            indices = grp.create_dataset("indices", shape=(0,), maxshape=(None,), dtype=np.int32,
                                         chunks=(1 << 20,))
            indptr = np.zeros(n + 1, dtype=np.int64)
            row = 0
            for blk in blocks:
                blk = sp.csr_matrix(blk)
                if blk.shape[1] != g:
                    raise ValueError(f"block has {blk.shape[1]} columns, expected {g}")
                blk.sort_indices()
                nnz0 = data.shape[0]
                data.resize((nnz0 + blk.nnz,))
                indices.resize((nnz0 + blk.nnz,))
                data[nnz0:] = blk.data.astype(dtype, copy=False)
                indices[nnz0:] = blk.indices.astype(np.int32, copy=False)
                indptr[row + 1:row + blk.shape[0] + 1] = nnz0 + blk.indptr[1:]
                row += blk.shape[0]
            if row != n:
                raise ValueError(f"the blocks hold {row} rows, obs has {n}")
            grp.create_dataset("indptr", data=indptr)
            f["X"] = grp  # a hard link: X and the layer are the same matrix

    return atomic_write(Path(path), write)


def _dense_layer(layers: Any, name: str, blocks: Iterable[Any], shape: tuple[int, int], dtype: Any) -> None:
    rows = max(1, min(shape[0], (1 << 20) // max(1, shape[1])))  # ~1M values per HDF5 chunk
    ds = layers.create_dataset(name, shape=shape, dtype=dtype, chunks=(rows, shape[1]))
    ds.attrs["encoding-type"] = "array"
    ds.attrs["encoding-version"] = "0.2.0"
    row = 0
    for blk in blocks:
        b = blk.toarray() if sp.issparse(blk) else np.asarray(blk)
        if b.shape[1] != shape[1]:
            raise ValueError(f"block has {b.shape[1]} columns, expected {shape[1]}")
        ds[row:row + b.shape[0]] = b.astype(dtype, copy=False)
        row += b.shape[0]
    if row != shape[0]:
        raise ValueError(f"the blocks hold {row} rows, obs has {shape[0]}")

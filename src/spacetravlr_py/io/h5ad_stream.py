"""Write an ``.h5ad`` whose expression layer arrives in row blocks (CSR, float32 or float64).

For datasets too large to hold as one matrix (benchmarks of wide panels, tiled tissues): obs, var, obsm
and uns are written with AnnData's own element writer; the layer is a CSR group (AnnData encoding
``csr_matrix`` 0.1.0) grown block by block, and ``X`` is a hard link to it (no second copy on disk).
The file is written under a temporary name and renamed when complete.
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


def write_csr_h5ad(path: str | os.PathLike[str], obs: pd.DataFrame, var: pd.DataFrame, obsm: dict[str, np.ndarray],
                   layer: str, blocks: Iterable[sp.csr_matrix], *, dtype: Any = np.float32,
                   uns: dict[str, Any] | None = None) -> Path:
    """Write obs / var / obsm / uns and the layer ``layers[layer]`` (= ``X``) from CSR row blocks.

    ``blocks`` yields ``(rows, len(var))`` CSR matrices whose rows, in order, are the cells of ``obs``.
    Peak memory is one block.
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

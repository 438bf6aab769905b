"""An expression layer read in pieces: some columns, or a block of rows, never the whole matrix densified.

A :class:`LayerSource` is where the stored matrix lives — an ``.h5ad`` file (dense HDF5 dataset, CSR
or CSC group, opened for each read) or an in-memory array / scipy sparse matrix — and hands out raw
values. A :class:`LayerReader` adds what every stage expects of expression (SPEC §2.1): the
finiteness check with a one-line error naming the cell and gene, and values ``<= min_expression`` set
to exactly 0.

Memory of a read is the output (cells × wanted columns) plus one bounded block of the stored arrays
(:data:`BLOCK_BYTES`). CSR files, the usual on-disk layout of wide panels, are read in row blocks and
scattered into the wanted columns by a numba kernel; dense datasets in row blocks; CSC groups column
by column.

Values kept in float32: a layer stored as float32 (or a narrower type that float32 holds exactly:
8/16-bit integers, float16, bool) may be kept as float32 in memory (``keep_float32``); every consumer
converts it to float64 before computing, and float32 → float64 is exact, so results are the same as
from a float64 copy. Wider integers and float64 are read as float64.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..errors import InputError
from . import _kernels

BLOCK_BYTES = 64 << 20
"""Bytes of stored arrays read per block (row blocks of a dense dataset, entries of a CSR slice)."""
_EXACT_IN_FLOAT32 = {np.dtype(t) for t in (np.float32, np.float16, np.int8, np.uint8, np.int16, np.uint16,
                                           np.bool_)}
DENSE, CSR, CSC = "dense", "csr", "csc"


def memory_dtype(stored: np.dtype, keep_float32: bool) -> np.dtype:
    """float32 when asked and exact for the stored type, else float64."""
    return np.dtype(np.float32) if keep_float32 and np.dtype(stored) in _EXACT_IN_FLOAT32 else np.dtype(np.float64)


class LayerSource:
    """Raw values of a stored (N, G) matrix. Subclasses: :class:`H5Layer`, :class:`MemoryLayer`."""

    kind: str
    shape: tuple[int, int]
    dtype: np.dtype

    def read_columns(self, cols: np.ndarray, dtype: np.dtype) -> np.ndarray:
        """(N, len(cols)) C-contiguous array of the columns ``cols`` (any order), in ``dtype``."""
        raise NotImplementedError

    def row_blocks(self, rows_per_block: int, cols: np.ndarray | None, dtype: np.dtype
                   ) -> Iterator[tuple[int, np.ndarray]]:
        """``(first row, (B, k) block)`` over all rows, for the columns ``cols`` (None: all)."""
        raise NotImplementedError

    def read_cells(self, rows: np.ndarray, cols: np.ndarray, dtype: np.dtype) -> np.ndarray:
        """(len(rows), len(cols)) values of a few cells (rows in any order); cheap for CSR and dense."""
        raise NotImplementedError

    def hash_update(self, h: ValuesHash) -> NonFinite:
        """Feed the values to ``h`` in row blocks; returns the count of non-finite stored values and where
        the first one is."""
        raise NotImplementedError


class NonFinite:
    """Non-finite values met while scanning a layer: how many, how many NaN, the first (row, column)."""

    def __init__(self) -> None:
        self.n = 0
        self.n_nan = 0
        self.first: tuple[int, int] | None = None

    def add(self, values: np.ndarray, where: Any) -> None:
        """Count the non-finite entries of ``values``; ``where(flat index)`` gives the first one's
        (row, column) when it is the first seen."""
        if values.dtype.kind != "f" or np.isfinite(values).all():
            return
        bad = ~np.isfinite(values)
        self.n += int(bad.sum())
        self.n_nan += int(np.isnan(values).sum())
        if self.first is None:
            self.first = where(int(np.flatnonzero(bad.ravel())[0]))


class ValuesHash:
    """SHA-1 of a layer's values *as loaded*: the (row, column) positions and float64 values of the
    entries above ``min_expression``, in row-major order.

    The same for every storage of the same values — dense, CSR or CSC, sorted or unsorted indices, any
    dtype that holds them exactly — and for any block size (positions and values go to two hashes fed in
    order), so a run's minimal ``.h5ad`` (CSR, small values dropped) has the fingerprint of the file it was
    written from. Values ``<= min_expression`` are 0 for every reader, so they are left out.
    """

    def __init__(self, shape: tuple[int, int], min_expression: float) -> None:
        self.shape, self.min_expression = shape, float(min_expression)
        self._pos, self._val = hashlib.sha1(), hashlib.sha1()

    def add_dense(self, r0: int, block: np.ndarray) -> None:
        """Rows ``r0 …`` as a dense (B, G) block."""
        v = np.asarray(block, dtype=np.float64)
        r, c = np.nonzero(v > self.min_expression)
        self._feed((r + r0) * self.shape[1] + c, v[r, c])

    def add_csr(self, r0: int, indptr: np.ndarray, indices: np.ndarray, data: np.ndarray) -> None:
        """Rows ``r0 …`` as CSR pieces (``indptr`` relative to ``indices``/``data``)."""
        ptr = np.asarray(indptr, dtype=np.int64)
        counts: np.ndarray = ptr[1:] - ptr[:-1]
        rows = np.repeat(np.arange(r0, r0 + len(counts), dtype=np.int64), counts)
        v: np.ndarray = np.asarray(data, dtype=np.float64)
        lin: np.ndarray = rows * self.shape[1] + np.asarray(indices, dtype=np.int64)
        if lin.size > 1 and not bool(np.all(lin[1:] > lin[:-1])):  # unsorted or duplicated entries
            uniq, inv = np.unique(lin, return_inverse=True)
            v = np.bincount(inv, weights=v, minlength=len(uniq))  # duplicates add up, as in scipy
            lin = uniq
        keep = v > self.min_expression
        self._feed(lin[keep], v[keep])

    def _feed(self, lin: np.ndarray, values: np.ndarray) -> None:
        self._pos.update(np.ascontiguousarray(lin, dtype="<i8").tobytes())
        self._val.update(np.ascontiguousarray(values, dtype="<f8").tobytes())

    def hexdigest(self) -> str:
        h = hashlib.sha1(f"values|{self.shape[0]}x{self.shape[1]}|{self.min_expression!r}\0".encode())
        h.update(self._pos.digest())
        h.update(self._val.digest())
        return h.hexdigest()


def _positions(cols: np.ndarray, n_genes: int) -> np.ndarray:
    pos = np.full(n_genes, -1, dtype=np.int64)
    pos[cols] = np.arange(len(cols))
    return pos


def _sparse_position(kind: str, ptr: np.ndarray, indices: Any, p: int) -> tuple[int, int]:
    """(row, column) of stored entry ``p`` of a CSR / CSC matrix."""
    major = int(np.searchsorted(ptr, p, side="right")) - 1
    minor = int(indices[p])
    return (major, minor) if kind == CSR else (minor, major)


class H5Layer(LayerSource):
    """A layer of an ``.h5ad`` file (``X`` or ``layers/<name>``); the file is opened for each read.

    Sparse groups follow the AnnData encoding (``encoding-type`` ``csr_matrix`` / ``csc_matrix`` and a
    ``shape`` attribute; the older ``h5sparse_format`` / ``h5sparse_shape`` too).
    """

    def __init__(self, path: Path, key: str) -> None:
        import h5py

        self.path, self.key = Path(path), key
        with h5py.File(self.path, "r") as f:
            node = f[key]
            if isinstance(node, h5py.Dataset):
                self.kind, self.shape, self.dtype = DENSE, tuple(node.shape), node.dtype  # type: ignore[assignment]
                if len(self.shape) != 2:
                    raise InputError(f"{path}: {key} has {len(self.shape)} dimensions, expected cells × genes")
                return
            attrs = node.attrs
            enc = str(attrs.get("encoding-type", attrs.get("h5sparse_format", "")))
            kind = CSR if enc.startswith("csr") else CSC if enc.startswith("csc") else ""
            shape = attrs.get("shape", attrs.get("h5sparse_shape"))
            if not kind or shape is None or not all(k in node for k in ("data", "indices", "indptr")):
                raise InputError(f"{path}: {key} is not a dense array or a CSR/CSC sparse matrix "
                                 f"(encoding '{enc or 'none'}')")
            self.kind, self.shape, self.dtype = kind, (int(shape[0]), int(shape[1])), node["data"].dtype
            self._indptr: np.ndarray | None = None

    @contextlib.contextmanager
    def _open(self) -> Iterator[Any]:
        import h5py

        with h5py.File(self.path, "r") as f:
            yield f[self.key]

    def _ptr(self, node: Any) -> np.ndarray:
        if self._indptr is None:  # (N + 1) or (G + 1) offsets, kept: every sparse read needs them
            self._indptr = np.asarray(node["indptr"][...], dtype=np.int64)
        return self._indptr

    def _rows_per_block(self, width: int) -> int:
        return max(1, BLOCK_BYTES // max(1, width * self.dtype.itemsize))

    def read_columns(self, cols: np.ndarray, dtype: np.dtype) -> np.ndarray:
        n, g = self.shape
        cols = np.asarray(cols, dtype=np.int64)
        out = np.zeros((n, len(cols)), dtype=dtype)
        if not len(cols):
            return out
        with self._open() as node:
            if self.kind == CSC:
                ptr = self._ptr(node)
                for k, c in enumerate(cols.tolist()):
                    a, b = int(ptr[c]), int(ptr[c + 1])
                    rows = node["indices"][a:b]
                    np.add.at(out[:, k], rows, node["data"][a:b].astype(dtype))
                return out
            for r0, block in self._blocks(node, self._rows_per_block(g), cols, dtype):
                out[r0:r0 + block.shape[0]] = block
        return out

    def row_blocks(self, rows_per_block: int, cols: np.ndarray | None, dtype: np.dtype
                   ) -> Iterator[tuple[int, np.ndarray]]:
        with self._open() as node:
            yield from self._blocks(node, rows_per_block, cols, dtype)

    def read_cells(self, rows: np.ndarray, cols: np.ndarray, dtype: np.dtype) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        cols = np.asarray(cols, dtype=np.int64)
        out = np.zeros((len(rows), len(cols)), dtype=dtype)
        if self.kind == CSC:
            return np.ascontiguousarray(self.read_columns(cols, dtype)[rows])
        with self._open() as node:
            if self.kind == DENSE:
                uniq, inv = np.unique(rows, return_inverse=True)
                raw = node[uniq.tolist()] if len(uniq) else np.zeros((0, self.shape[1]))
                return np.array(raw[:, cols][inv], dtype=dtype, order="C")
            ptr = self._ptr(node)
            pos = _positions(cols, self.shape[1])
            for k, r in enumerate(rows.tolist()):
                a, b = int(ptr[r]), int(ptr[r + 1])
                _kernels.csr_gather(np.array([0, b - a], dtype=np.int64), node["indices"][a:b], node["data"][a:b],
                                    pos, k, out)
        return out

    def _blocks(self, node: Any, rows_per_block: int, cols: np.ndarray | None, dtype: np.dtype
                ) -> Iterator[tuple[int, np.ndarray]]:
        n, g = self.shape
        cols_a = np.arange(g) if cols is None else np.asarray(cols, dtype=np.int64)
        if self.kind == DENSE:
            step = max(1, min(rows_per_block, self._rows_per_block(g)))
            every = cols is None or (len(cols_a) == g and np.array_equal(cols_a, np.arange(g)))
            for r0 in range(0, n, step):
                raw = node[r0:min(n, r0 + step)]
                yield r0, np.array(raw if every else raw[:, cols_a], dtype=dtype, order="C")
            return
        if self.kind == CSC:  # rows of a CSC matrix touch every column: read it whole (sparse), once
            M = sp.csc_matrix((node["data"][...], node["indices"][...], self._ptr(node)), shape=self.shape)
            yield from MemoryLayer(M).row_blocks(rows_per_block, cols, dtype)
            return
        ptr = self._ptr(node)
        pos = _positions(cols_a, g)
        max_nnz = max(1, BLOCK_BYTES // (self.dtype.itemsize + node["indices"].dtype.itemsize))
        r0 = 0
        while r0 < n:
            # as many rows as fit in the entry budget (at least one), at most rows_per_block
            r1 = int(np.searchsorted(ptr, ptr[r0] + max_nnz, side="right")) - 1
            r1 = min(n, max(r0 + 1, min(r1, r0 + rows_per_block)))
            a, b = int(ptr[r0]), int(ptr[r1])
            out = np.zeros((r1 - r0, len(cols_a)), dtype=dtype)
            _kernels.csr_gather(ptr[r0:r1 + 1] - a, node["indices"][a:b], node["data"][a:b], pos, 0, out)
            yield r0, out
            r0 = r1

    def hash_update(self, h: ValuesHash) -> NonFinite:
        bad = NonFinite()
        g = self.shape[1]
        with self._open() as node:
            if self.kind == DENSE:
                n = self.shape[0]
                step = self._rows_per_block(g)
                for r0 in range(0, n, step):
                    blk = node[r0:min(n, r0 + step)]
                    h.add_dense(r0, blk)
                    bad.add(blk, lambda k, r0=r0: (r0 + k // g, k % g))
                return bad
            if self.kind == CSC:  # rows of a CSC matrix touch every column: read it whole (sparse), once
                M = sp.csc_matrix((node["data"][...], node["indices"][...], self._ptr(node)), shape=self.shape)
                return MemoryLayer(M).hash_update(h)
            ptr = self._ptr(node)
            n = self.shape[0]
            max_nnz = max(1, BLOCK_BYTES // (self.dtype.itemsize + node["indices"].dtype.itemsize))
            r0 = 0
            while r0 < n:
                r1 = min(n, max(r0 + 1, int(np.searchsorted(ptr, ptr[r0] + max_nnz, side="right")) - 1))
                a, b = int(ptr[r0]), int(ptr[r1])
                data = node["data"][a:b]
                h.add_csr(r0, ptr[r0:r1 + 1] - a, node["indices"][a:b], data)
                bad.add(data, lambda k, a=a: _sparse_position(self.kind, ptr, node["indices"], a + k))
                r0 = r1
        return bad


class MemoryLayer(LayerSource):
    """A layer already in memory: a NumPy array or a scipy sparse matrix (any format)."""

    def __init__(self, X: Any) -> None:
        if sp.issparse(X):
            fmt = X.format
            self.X: Any = X if fmt in (CSR, CSC) else X.tocsr()
            self.kind = self.X.format
        else:
            self.X = np.asarray(X)
            self.kind = DENSE
        if self.X.ndim != 2:
            raise InputError(f"expression matrix has {self.X.ndim} dimensions, expected cells × genes")
        self.shape = (int(self.X.shape[0]), int(self.X.shape[1]))
        self.dtype = self.X.dtype

    def read_columns(self, cols: np.ndarray, dtype: np.dtype) -> np.ndarray:
        cols = np.asarray(cols, dtype=np.int64)
        every = len(cols) == self.shape[1] and np.array_equal(cols, np.arange(self.shape[1]))
        if self.kind == DENSE:
            return np.array(self.X if every else self.X[:, cols], dtype=dtype, order="C")
        sub = self.X if every else self.X[:, cols]
        return np.asarray(sub.toarray(order="C"), dtype=dtype, order="C")

    def row_blocks(self, rows_per_block: int, cols: np.ndarray | None, dtype: np.dtype
                   ) -> Iterator[tuple[int, np.ndarray]]:
        n = self.shape[0]
        step = max(1, rows_per_block)
        for r0 in range(0, n, step):
            blk = self.X[r0:min(n, r0 + step)]
            if cols is not None:
                blk = blk[:, np.asarray(cols, dtype=np.int64)]
            yield r0, np.asarray(blk.toarray() if sp.issparse(blk) else blk, dtype=dtype, order="C")

    def read_cells(self, rows: np.ndarray, cols: np.ndarray, dtype: np.dtype) -> np.ndarray:
        sub = self.X[np.asarray(rows, dtype=np.int64)][:, np.asarray(cols, dtype=np.int64)]
        return np.asarray(sub.toarray() if sp.issparse(sub) else sub, dtype=dtype, order="C")

    def hash_update(self, h: ValuesHash) -> NonFinite:
        bad = NonFinite()
        g = self.shape[1]
        if self.kind == DENSE:
            step = max(1, BLOCK_BYTES // max(1, g * self.dtype.itemsize))
            for r0 in range(0, self.shape[0], step):
                blk = self.X[r0:r0 + step]
                h.add_dense(r0, blk)
                bad.add(np.asarray(blk), lambda k, r0=r0: (r0 + k // g, k % g))
            return bad
        M = self.X if self.kind == CSR else self.X.tocsr()
        step = max(1, BLOCK_BYTES // max(1, 16 * max(1, M.nnz // max(1, self.shape[0]))))
        for r0 in range(0, self.shape[0], step):
            r1 = min(self.shape[0], r0 + step)
            a, b = int(M.indptr[r0]), int(M.indptr[r1])
            h.add_csr(r0, M.indptr[r0:r1 + 1] - a, M.indices[a:b], M.data[a:b])
        bad.add(self.X.data, lambda k: _sparse_position(self.kind, self.X.indptr, self.X.indices, k))
        return bad


def layer_sha1(source: LayerSource, min_expression: float) -> tuple[str, NonFinite]:
    """:class:`ValuesHash` of ``source`` (streamed; independent of storage and of what a stage loads) and
    the non-finite values met on the way."""
    h = ValuesHash(source.shape, min_expression)
    bad = source.hash_update(h)
    return h.hexdigest(), bad


class LayerReader:
    """Checked expression columns of a layer: finite values, ``<= min_expression`` → 0.

    Parameters
    ----------
    source : LayerSource
    obs_names, var_names : the cells and genes of the layer (for messages and name lookups).
    min_expression : float
    keep_float32 : bool
        Keep float32-exact layers float32 in memory (see the module docstring).
    label : str
        Dataset name used in errors (the file path or ``"AnnData"``).
    layer : str
        Layer name (``""``: X).
    """

    def __init__(self, source: LayerSource, obs_names: np.ndarray, var_names: Sequence[str], *,
                 min_expression: float, keep_float32: bool = False, label: str = "", layer: str = "") -> None:
        self.source = source
        self.obs_names = obs_names
        self.var_names = list(var_names)
        self.min_expression = float(min_expression)
        self.dtype = memory_dtype(source.dtype, keep_float32)
        self.label, self.layer = label, layer
        self._index = {g: i for i, g in enumerate(self.var_names)}

    @property
    def layer_name(self) -> str:
        return f"layer '{self.layer}'" if self.layer else "X"

    def positions(self, genes: Sequence[str]) -> np.ndarray:
        """Column of each gene in the layer (KeyError for an unknown gene)."""
        return np.array([self._index[g] for g in genes], dtype=np.int64)

    def columns(self, genes: Sequence[str], dtype: np.dtype | None = None) -> np.ndarray:
        """(N, len(genes)) checked expression of ``genes`` (C order, :attr:`dtype` unless given)."""
        cols = self.positions(genes)
        out = self.source.read_columns(cols, np.dtype(dtype or self.dtype))
        self.check(out, 0, cols)
        _kernels.cut_small(out, self.min_expression)
        return out

    def cells(self, rows: Sequence[int] | np.ndarray, genes: Sequence[str], dtype: np.dtype | None = None
              ) -> np.ndarray:
        """(len(rows), len(genes)) checked expression of a few cells."""
        cols = self.positions(genes)
        out = self.source.read_cells(np.asarray(rows, dtype=np.int64), cols, np.dtype(dtype or self.dtype))
        if out.size and not np.isfinite(out).all():
            i, j = np.argwhere(~np.isfinite(out))[0]
            raise InputError(f"{self.label}: {self.layer_name}: non-finite value at cell "
                             f"'{self.obs_names[int(np.asarray(rows)[i])]}', gene '{genes[j]}'; impute or drop it")
        _kernels.cut_small(out, self.min_expression)
        return out

    def row_blocks(self, rows_per_block: int, genes: Sequence[str] | None = None,
                   dtype: np.dtype | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """``(first row, (B, k) checked block)`` over every cell, for ``genes`` (None: every gene)."""
        cols = None if genes is None else self.positions(genes)
        for r0, blk in self.source.row_blocks(rows_per_block, cols, np.dtype(dtype or self.dtype)):
            self.check(blk, r0, np.arange(self.source.shape[1]) if cols is None else cols)
            _kernels.cut_small(blk, self.min_expression)
            yield r0, blk

    def raise_nonfinite(self, bad: NonFinite) -> None:
        """The one-line error for non-finite values found by a scan of the whole layer (if any)."""
        if bad.n == 0 or bad.first is None:
            return
        i, j = bad.first
        raise InputError(f"{self.label}: {self.layer_name}: {bad.n} non-finite values ({bad.n_nan} NaN, "
                         f"{bad.n - bad.n_nan} inf); first at cell '{self.obs_names[i]}', gene "
                         f"'{self.var_names[j]}'; impute or drop them")

    def check(self, values: np.ndarray, row0: int, cols: np.ndarray) -> None:
        """One-line :class:`InputError` when ``values`` (rows from ``row0``, layer columns ``cols``) holds
        a non-finite value: how many (NaN / inf), in how many cells, the first cell and gene."""
        if values.size == 0 or np.isfinite(values).all():
            return
        bad = ~np.isfinite(values)
        n = int(bad.sum())
        n_nan = int(np.isnan(values).sum())
        i, j = np.argwhere(bad)[0]
        where = (f"{n} non-finite values ({n_nan} NaN, {n - n_nan} inf) in {int(bad.any(axis=1).sum())} cells; "
                 f"first at cell '{self.obs_names[row0 + i]}', gene '{self.var_names[cols[j]]}'")
        raise InputError(f"{self.label}: {self.layer_name}: {where}; impute or drop them")

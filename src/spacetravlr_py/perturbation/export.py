"""Write a perturbation's simulated expression as a feather file, streamed in row blocks.

The file is an Arrow IPC file (Feather V2, LZ4), ``CellID`` then one float64 column per gene — every
gene of the panel by default, as the seed writes it, or only the genes that moved (``changed_only``).
It is written as record batches of :func:`rows_per_batch` cells: for each batch the genes that moved
come from the result, the other genes from the tissue (loaded columns) or from the layer itself, read
block by block, so no (cells × panel) matrix exists at any time. Readers see one table
(``pandas.read_feather``, ``pyarrow.feather.read_table``) with the same values as a full-width write.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .. import _keys
from ..io.atomic import atomic_write
from .result import PerturbResult

BATCH_BYTES = 128 << 20
"""Target size of one record batch's gene values (float64)."""
MAX_BATCH_ROWS = 65536
"""pyarrow's own feather chunk size: small panels are written in the same batches as before."""


def rows_per_batch(n_genes: int, batch_bytes: int = BATCH_BYTES) -> int:
    """Cells per record batch: ``batch_bytes`` of float64 values, between 1,024 and 65,536."""
    return int(min(MAX_BATCH_ROWS, max(1024, batch_bytes // max(1, 8 * n_genes))))


def exported_genes(result: PerturbResult, changed_only: bool) -> list[str]:
    """The gene columns of the export: the panel, or the genes that moved (in panel order)."""
    panel = result.tissue.all_genes
    if not changed_only:
        return list(panel)
    moved = set(result.changed_genes())
    return [g for g in panel if g in moved]


class _Sources:
    """Where each exported gene's values come from, and the row blocks of each source."""

    def __init__(self, result: PerturbResult, genes: list[str]) -> None:
        t = result.tissue
        gi = t.gene_index
        held = {g: (p, j) for p, h in enumerate(result.held) for j, g in enumerate(h.genes)}
        self.result, self.genes = result, genes
        self.held = [(k, *held[g]) for k, g in enumerate(genes) if g in held]
        self.loaded = [(k, gi[g]) for k, g in enumerate(genes) if g not in held and g in gi]
        self.unread = [(k, g) for k, g in enumerate(genes) if g not in held and g not in gi]
        if self.unread and t.reader is None:
            raise ValueError("the tissue has no layer reader for the genes it did not load")

    def blocks(self, rows: int) -> Iterator[tuple[int, np.ndarray]]:
        """``(first row, (B, genes) float64 Fortran-ordered block)`` over every cell."""
        t = self.result.tissue
        n = t.n_cells
        layer: Iterator[tuple[int, np.ndarray]] | None = None
        if self.unread:
            layer = t.row_blocks(rows, [g for _, g in self.unread], np.float64)
        for r0 in range(0, n, rows):
            r1 = min(n, r0 + rows)
            out = np.empty((r1 - r0, len(self.genes)), order="F")
            for k, p, j in self.held:
                out[:, k] = self.result.held[p].values[r0:r1, j]
            for k, j in self.loaded:
                out[:, k] = t.expression[r0:r1, j]
            if layer is not None:
                got_r0, blk = next(layer)
                assert got_r0 == r0 and blk.shape[0] == r1 - r0
                for c, (k, _) in enumerate(self.unread):
                    out[:, k] = blk[:, c]
            yield r0, out


def _schema(genes: list[str], first_ids: Any) -> Any:
    """The table schema (with pandas metadata, so ``read_feather`` rebuilds the same DataFrame)."""
    import pandas as pd
    import pyarrow as pa

    probe = pd.DataFrame({_keys.CELLID_COL: first_ids[:1], **{g: np.zeros(1) for g in genes}})
    return pa.Schema.from_pandas(probe, preserve_index=False)


def write_expression(result: PerturbResult, path: str | Path, *, changed_only: bool = False,
                     batch_bytes: int = BATCH_BYTES) -> Path:
    """Atomically write ``CellID`` + the simulated expression of every gene (or the genes that moved)."""
    import pyarrow as pa

    t = result.tissue
    genes = exported_genes(result, changed_only)
    if len(set(genes)) != len(genes) or _keys.CELLID_COL in genes:
        raise ValueError(f"gene names must be unique and differ from {_keys.CELLID_COL}")
    sources = _Sources(result, genes)
    rows = rows_per_batch(len(genes), batch_bytes)
    ids = np.asarray(t.obs_names)
    schema = _schema(genes, ids)

    def write(p: Path) -> None:
        opts = pa.ipc.IpcWriteOptions(compression="lz4")
        with pa.OSFile(str(p), "wb") as sink, pa.ipc.new_file(sink, schema, options=opts) as w:
            for r0, blk in sources.blocks(rows):
                arrays = [pa.array(ids[r0:r0 + blk.shape[0]], type=schema.field(0).type)]
                arrays += [pa.array(blk[:, k]) for k in range(blk.shape[1])]
                w.write_batch(pa.RecordBatch.from_arrays(arrays, schema=schema))
            if t.n_cells == 0:
                w.write_batch(pa.RecordBatch.from_arrays([pa.array([], type=f.type) for f in schema], schema=schema))

    return atomic_write(Path(path), write)

"""Cells CSV: one column per cell type (cluster label), each listing the obs names of its cells.

The file a perturbation scope starts from (``spacetravlr-perturb --make-cells-csv cells.csv``): copy or
edit a column, then perturb with ``--cells-csv cells.csv --cells-csv-column <label>``. Columns are the
labels of the run's ``[data].cluster_annot`` in sorted order (the cluster ids 0..K-1, SPEC §2.1); shorter
columns are padded with empty cells, which the reader ignores.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import SpaceshipConfig
from ..errors import InputError
from ..io.anndata import Tissue


def cells_csv_frame(tissue: Tissue) -> pd.DataFrame:
    """``DataFrame`` with one column per cluster label listing its obs names (padded with ``""``)."""
    names = np.asarray(tissue.obs_names, dtype=object)
    lists = [names[tissue.clusters == k].tolist() for k in range(tissue.n_clusters)]
    depth = max((len(x) for x in lists), default=0)
    return pd.DataFrame({lab: x + [""] * (depth - len(x)) for lab, x in zip(tissue.cluster_labels, lists)})


def write_cells_csv(tissue: Tissue, out: str | os.PathLike[str]) -> Path:
    """Atomically write :func:`cells_csv_frame` to ``out`` (folders created)."""
    from ..io.atomic import atomic_write

    df = cells_csv_frame(tissue)
    p = Path(out)
    p.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(p, lambda tmp: df.to_csv(tmp, index=False))


def write_run_cells_csv(run_toml: str | os.PathLike[str] | None, out: str | os.PathLike[str], *,
                        overlay: Callable[[SpaceshipConfig], SpaceshipConfig] | None = None
                        ) -> tuple[Path, list[str]]:
    """The cells CSV of a run's tissue (its repro TOML, with an optional overlay); returns (path, labels)."""
    from ..io.anndata import load_tissue
    from ..rundir import open_run

    if not run_toml:
        raise InputError("--make-cells-csv needs the run: give --run-toml, or run_toml = \"...\" in --config")
    cfg = open_run(run_toml, overlay=overlay).cfg
    tissue = load_tissue(cfg.data.adata_path, layer=cfg.data.layer, cluster_annot=cfg.data.cluster_annot)
    return write_cells_csv(tissue, out), list(tissue.cluster_labels)

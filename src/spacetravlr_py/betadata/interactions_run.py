"""The interaction table of a whole run folder, its files and its per-cell-type summary.

``spacetravlr collect-interactions`` is :func:`collect_run_interactions` + :func:`write_interactions`:

>>> from spacetravlr_py.betadata.interactions_run import collect_run_interactions, write_interactions
>>> df = collect_run_interactions("runs/a", annot="cell_type", aggregate="mean")  # doctest: +SKIP
>>> write_interactions(df, "runs/a/interactions.feather")                         # doctest: +SKIP

The betadata are streamed one gene at a time (:func:`~.interactions.collect_interactions` given a
folder): the memory held is one gene's betadata plus the table, whatever the number of genes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .. import _keys
from ..errors import InputError, near_matches, short_list
from .interactions import AGGREGATES, COLUMNS, collect_interactions

if TYPE_CHECKING:
    import pandas as pd

    from ..io.anndata import Tissue

FEATHER_SUFFIXES = (".feather", ".arrow", ".ipc")
CSV_SUFFIXES = (".csv", ".tsv")


def check_aggregate(name: str) -> str:
    """``name`` when it is one of :data:`AGGREGATES`, else one line naming the choices."""
    if name not in AGGREGATES:
        raise InputError(f"--aggregate '{name}' is not one of {', '.join(AGGREGATES)}{near_matches(name, AGGREGATES)}")
    return name


def obs_labels(tissue: Tissue, annot: str | None) -> np.ndarray:
    """Per-cell labels of ``obs[annot]`` (None: the tissue's cluster labels), as strings.

    Cells without a label (NaN) get ``""`` and are reported as their own group only if asked for.
    """
    if annot is None or annot == tissue.cluster_annot:
        return np.asarray(tissue.cluster_labels, dtype=object)[tissue.clusters]
    obs = tissue.obs
    cols = [] if obs is None else [str(c) for c in obs.columns]
    if obs is None or annot not in obs.columns:
        where = f"{tissue.path}: " if tissue.path else ""
        raise InputError(f"{where}obs has no annotation column '{annot}'{near_matches(annot, cols)} "
                         f"(obs columns: {short_list(cols)}); set --annot")
    col = obs[annot]
    vals = col.astype(object).where(col.notna(), "").to_numpy()
    return np.asarray([str(v) for v in vals.tolist()], dtype=object)


def open_run_tissue(run_toml: str | os.PathLike[str], *, cluster_col: str | None = None) -> tuple[Tissue, Path]:
    """The cells of a run's dataset (no expression: :func:`~spacetravlr_py.io.cells.load_cells`) and the run
    folder; one line when the folder holds no betadata, or the dataset's cell / gene names are not the run's.

    ``cluster_col`` replaces ``[data].cluster_annot``: the obs column whose labels name the ``Cluster``
    rows of seed betadata.
    """
    import dataclasses

    from ..io.anndata import cluster_ids
    from ..io.cells import load_cells
    from ..rundir import check_same_dataset, open_run

    run = open_run(run_toml)
    if not run.dir.betadata_files():
        raise InputError(f"run folder {run.dir.root} holds no *_betadata.feather/.parquet/.csv files; train it "
                         "first (spacetravlr) or point --run-toml at the run that has them")
    cfg = run.cfg
    tissue = load_cells(cfg.data.adata_path, cluster_annot=cfg.data.cluster_annot, layer=cfg.data.layer)
    if run.manifest is not None:  # names only: the expression is not read
        names = {k: v for k, v in run.manifest.dataset.items() if k != "data_sha1"}
        check_same_dataset(names, tissue, where=run.dir.manifest_json, what="use the matching .h5ad or run TOML")
    if cluster_col and cluster_col != tissue.cluster_annot:
        obs = tissue.obs
        cols = [] if obs is None else [str(c) for c in obs.columns]
        if obs is None or cluster_col not in obs.columns:
            raise InputError(f"{tissue.path}: obs has no cluster column '{cluster_col}'"
                             f"{near_matches(cluster_col, cols)} (obs columns: {short_list(cols)}); set --cluster-col")
        ids, labels = cluster_ids(obs[cluster_col], column=cluster_col)
        tissue = dataclasses.replace(tissue, clusters=ids, cluster_labels=labels, cluster_annot=cluster_col)
    return tissue, run.dir.root


def collect_run_interactions(run_toml: str | os.PathLike[str], *, annot: str | None = None,
                             cluster_col: str | None = None, aggregate: str = "mean",
                             cell_types: Sequence[str] | None = None, genes: Sequence[str] | None = None,
                             drop_zero: bool = True,
                             on_gene: Callable[[int, int, str], None] | None = None) -> pd.DataFrame:
    """Every (modulator, target, cell type) β of a run, aggregated over each cell type's cells.

    Parameters
    ----------
    run_toml
        The run's repro TOML or its folder.
    annot
        obs column whose labels are the cell types reported (default: the cluster column).
    cluster_col
        obs column naming the betadata's ``Cluster`` rows (default ``[data].cluster_annot``).
    aggregate, cell_types, genes, drop_zero, on_gene
        As :func:`~.interactions.collect_interactions`.

    Returns
    -------
    DataFrame with the columns :data:`~.interactions.COLUMNS`.
    """
    check_aggregate(aggregate)
    tissue, root = open_run_tissue(run_toml, cluster_col=cluster_col)
    labels = obs_labels(tissue, annot)
    return collect_interactions(root, tissue, labels, aggregate=aggregate, cell_types=cell_types, genes=genes,
                                drop_zero=drop_zero, on_gene=on_gene)


def check_table_path(out: str | os.PathLike[str]) -> Path:
    """``out`` when its suffix names a table format this module writes, else one line."""
    p = Path(out)
    if p.suffix.lower() not in (*FEATHER_SUFFIXES, *CSV_SUFFIXES):
        raise InputError(f"--out {p}: unknown table format '{p.suffix or '(none)'}'; end it in .feather or .csv "
                         f"(e.g. {_keys.INTERACTIONS_FILE})")
    return p


def write_interactions(df: pd.DataFrame, out: str | os.PathLike[str]) -> Path:
    """Atomically write the table as Feather (``.feather``/``.arrow``/``.ipc``, LZ4) or CSV (``.csv``;
    ``.tsv`` tab-separated); None parts are empty CSV cells / Arrow nulls."""
    from ..io.atomic import atomic_write

    p = check_table_path(out)
    suf = p.suffix.lower()
    if suf in FEATHER_SUFFIXES:
        import pyarrow as pa
        import pyarrow.feather as feather

        table = pa.Table.from_pandas(df[list(COLUMNS)], preserve_index=False)
        return atomic_write(p, lambda t: feather.write_feather(table, t, compression="lz4"))
    sep = "\t" if suf == ".tsv" else ","
    return atomic_write(p, lambda t: df[list(COLUMNS)].to_csv(t, index=False, sep=sep))


def read_interactions(path: str | os.PathLike[str]) -> pd.DataFrame:
    """A table written by :func:`write_interactions` (missing parts as None)."""
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise InputError(f"interaction table {p} not found; write it with `spacetravlr collect-interactions`")
    df = pd.read_feather(p) if p.suffix.lower() in FEATHER_SUFFIXES else pd.read_csv(
        p, sep="\t" if p.suffix.lower() == ".tsv" else ",", keep_default_na=False, na_values={"value": [""]})
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"{p}: not an interaction table (no column {', '.join(missing)})")
    for c in ("ligand", "receptor", "tf"):
        df[c] = df[c].astype(object).where(df[c].notna() & (df[c].astype(str) != ""), None)
    return df[list(COLUMNS)]


def top_per_cell_type(df: pd.DataFrame, n: int = 10) -> pd.DataFrame:
    """The ``n`` strongest rows (by |value|) of each cell type, cell types in order of appearance."""
    d = df.assign(_a=df["value"].abs()).sort_values("_a", ascending=False, kind="stable")
    return d.groupby("cell_type", sort=False).head(n).drop(columns="_a").reset_index(drop=True)


def summary_line(df: pd.DataFrame, seconds: float) -> str:
    """``N interactions: T targets × M modulators in K cell types (S s)``."""
    return (f"{len(df):,} interactions: {df['target'].nunique():,} targets × {df['modulator'].nunique():,} "
            f"modulators in {df['cell_type'].nunique()} cell types ({seconds:.1f}s)")


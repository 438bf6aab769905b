"""Condition groups (``--condition OBS_COL``, ``[data].condition``): the cells of each group of an obs column.

A run per condition trains one model set per group (sample, genotype, timepoint…) on that group's cells
only: received ligands, modulators' expression and every fit see no cell of another group. The cluster
ids are **not** re-derived per group: every group keeps the whole dataset's label↔id map
(``cluster_labels``), so cluster id ``k`` names the same cell type in every condition folder, betadata of
all groups have the same ``Cluster`` rows, and a scope by cell type means the same in each. A cluster
with fewer than 2 cells in a group gets zero betas there (with the usual warning).

Group labels are the column's values as strings (integers without ``.0``); cells with a missing value
belong to no group and are not trained (a warning counts them).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import InputError, near_matches, short_list
from .anndata import Tissue


@dataclass(frozen=True)
class ConditionGroup:
    """One group of a condition column: its label and the indices of its cells (in dataset order)."""

    label: str
    cells: np.ndarray

    @property
    def n_cells(self) -> int:
        return int(self.cells.shape[0])


def condition_values(tissue: Tissue, column: str) -> pd.Series:
    """The condition of each cell as a string (``None`` where missing); one line when the column is absent."""
    obs = tissue.obs
    if obs is None or column not in obs.columns:
        cols = list(obs.columns) if obs is not None else []
        raise InputError(f"{tissue.path or 'the dataset'}: obs has no condition column '{column}'"
                         f"{near_matches(column, cols)} (obs columns: {short_list(cols)}); fix --condition / "
                         "[data].condition")
    s = obs[column]
    if isinstance(s.dtype, pd.CategoricalDtype):
        s = s.astype(s.cat.categories.dtype if pd.api.types.is_integer_dtype(s.cat.categories) else object)
    missing = s.isna().to_numpy()
    if pd.api.types.is_float_dtype(s) and np.all(np.mod(s[~missing].to_numpy(dtype=float), 1.0) == 0.0):
        s = s.astype("Int64")
    vals = [None if m else str(v) for v, m in zip(s.tolist(), missing)]
    return pd.Series(vals, index=obs.index, dtype=object)


def condition_groups(tissue: Tissue, column: str) -> tuple[list[ConditionGroup], list[str]]:
    """Groups of ``column`` in sorted label order, and warnings (cells without a value).

    Raises one line when the column is missing or has no value.
    """
    vals = condition_values(tissue, column)
    missing = vals.isna().to_numpy()
    if missing.all():
        raise InputError(f"{tissue.path or 'the dataset'}: obs['{column}'] has no value in any cell; "
                         "fix --condition / [data].condition")
    warnings = []
    if missing.any():
        warnings.append(f"warning: obs['{column}']: {int(missing.sum())} cells have no condition value and are "
                        "not trained in any condition")
    arr = np.asarray(vals.to_numpy(), dtype=object)
    labels = sorted({v for v in arr[~missing]})
    groups = [ConditionGroup(lab, np.flatnonzero(arr == lab).astype(np.int64)) for lab in labels]
    return groups, warnings


def check_group(tissue: Tissue, group: ConditionGroup, column: str) -> None:
    """One line when a group has no cluster with 2 cells or more (nothing of it could be fitted)."""
    sizes = np.bincount(tissue.clusters[group.cells], minlength=tissue.n_clusters)
    if sizes.max(initial=0) < 2:
        raise InputError(f"obs['{column}']: condition group '{group.label}' has {group.n_cells} cell(s) and no "
                         f"cell type of obs['{tissue.cluster_annot}'] with 2 or more of them, so nothing can be "
                         "fitted; drop or relabel those cells, or merge the group into another")


def subset_tissue(tissue: Tissue, cells: np.ndarray) -> Tissue:
    """The tissue restricted to ``cells`` (indices, dataset order), keeping the whole label↔id map."""
    idx = np.asarray(cells, dtype=np.int64)
    return dataclasses.replace(
        tissue, obs_names=tissue.obs_names[idx], coords=np.ascontiguousarray(tissue.coords[idx]),
        expression=np.ascontiguousarray(tissue.expression[idx]), clusters=tissue.clusters[idx].copy(),
        umap=None if tissue.umap is None else np.ascontiguousarray(tissue.umap[idx]),
        obs=None if tissue.obs is None else tissue.obs.iloc[idx], _gene_index=None,
        cells=idx if tissue.cells is None else tissue.cells[idx])


def condition_tissue(tissue: Tissue, column: str, label: str) -> Tissue:
    """The cells of group ``label`` of ``column`` (one line when there is no such group or it is too small)."""
    groups, _ = condition_groups(tissue, column)
    found = next((g for g in groups if g.label == label), None)
    if found is None:
        names = [g.label for g in groups]
        raise InputError(f"obs['{column}'] has no condition group '{label}'{near_matches(label, names)} "
                         f"(groups: {short_list(names)})")
    check_group(tissue, found, column)
    return subset_tissue(tissue, found.cells)

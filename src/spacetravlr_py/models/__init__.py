"""Per-(gene, cluster) models (SPEC §5.1): the sparse group lasso solved by FISTA.

Public names
------------
:func:`fit_clusters`
    One fit per cluster of a target gene, with the R² gate → :class:`ClusterFits`.
:func:`fit_sparse_group_lasso`, :func:`fit_sgl`
    One fit (from group ids, or from a penalty object) → :class:`FistaResult`.
:class:`FitStatus`
    Why a cluster's betas are kept or zeroed.
:class:`SparseGroupL1L2`, :class:`L1`, :class:`GroupL2`, :func:`group_lambdas`
    Penalties (value, prox, KKT certificate) and the group weights ``λ_g``.
"""

from __future__ import annotations

from .fista import (
    ClusterFits,
    FistaResult,
    FitStatus,
    SharedColumns,
    fit_clusters,
    fit_clusters_split,
    fit_sgl,
    fit_sparse_group_lasso,
)
from .penalties import GROUP_REG_SCALINGS, L1, GroupL2, SparseGroupL1L2, group_lambdas

__all__ = [
    "GROUP_REG_SCALINGS",
    "L1",
    "ClusterFits",
    "FistaResult",
    "FitStatus",
    "GroupL2",
    "SharedColumns",
    "SparseGroupL1L2",
    "fit_clusters",
    "fit_clusters_split",
    "fit_sgl",
    "fit_sparse_group_lasso",
    "group_lambdas",
]

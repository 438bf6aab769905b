"""Trainers: how one gene's models are fitted, behind one small interface.

A :class:`Trainer` turns a target gene into a :class:`~.results.GeneFit` using the run's shared,
read-only :class:`~.context.TrainingContext`. It writes nothing: the run (or the client of a distributed
executor) writes the files. ``prepare`` runs once per run in the main process and may add run-wide arrays
to ``ctx.run_arrays`` (shipped to workers memory-mapped), e.g. the CNN's distance maps.

* :class:`SeedTrainer` — seed mode: one sparse group lasso per (gene, cluster) (SPEC §5.1).
* :class:`~.cnn_trainer.CnnTrainer` — full mode: per-cell CNN betas (SPEC §5.2).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from .. import _keys
from ..betadata.frame import BetaFrame
from ..config import SpaceshipConfig
from ..naming import KIND_NAMES
from .results import ClusterFit, GeneFit

if TYPE_CHECKING:
    from ..modulators import Modulators
    from .context import TrainingContext


class Trainer(Protocol):
    """Fits one gene at a time; picklable (it travels to worker processes)."""

    mode: str

    def prepare(self, ctx: TrainingContext) -> None:
        """Once per run, in the main process, before any gene is fitted."""

    def fit(self, ctx: TrainingContext, gene: str) -> GeneFit:
        """Fit ``gene``; raise on failure (the run records the error and goes on)."""
        ...


def split_design(ctx: TrainingContext, mods: Modulators) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A target's design matrix (:func:`~spacetravlr_py.modulators.design_matrix`) in split form.

    Returns ``XS`` — the target's own columns (TF expression, ``RL[L]·TF`` of its ``L#TF`` pairs, extra
    genes) — and, for every feature in :attr:`Modulators.names` order, where it lives: ``(kind, col)``
    with kind 0 = column ``col`` of ``XS``, 1 = column ``col`` of the run's shared ligand–receptor columns
    ``RL[L]·R`` (:attr:`TrainingContext.shared`), which are computed once per run.
    """
    from ..modulators import design_matrix

    XS = design_matrix(dataclasses.replace(mods, lr_pairs=()), ctx.gene, ctx.received_of)
    n_tf, n_lr = len(mods.tfs), len(mods.lr_pairs)
    kind = np.r_[np.zeros(n_tf), np.ones(n_lr), np.zeros(XS.shape[1] - n_tf)].astype(np.int64)
    col = np.r_[np.arange(n_tf), [ctx.lr_column(p) for p in mods.lr_pairs],
                np.arange(n_tf, XS.shape[1])].astype(np.int64)
    if XS.size == 0:
        XS = np.zeros((ctx.expression.shape[0], 0))
    return XS, kind, col


def families(mods: Modulators) -> dict[str, int]:
    """Number of modulators per family."""
    counts = np.bincount(np.asarray(mods.groups, dtype=np.int64), minlength=len(KIND_NAMES))
    return {name: int(n) for name, n in zip(KIND_NAMES, counts)}


@dataclass
class SeedTrainer:
    """Seed mode: per-cluster sparse group lasso on the target's modulators (SPEC §5.1)."""

    mode: str = "seed"

    def prepare(self, ctx: TrainingContext) -> None:
        """Nothing run-wide beyond the context."""

    def fit(self, ctx: TrainingContext, gene: str) -> GeneFit:
        from ..models.fista import fit_clusters_split

        mods = ctx.modulators(gene)
        if mods.is_orphan:
            return GeneFit(gene, None, "no modulators in the network")
        y = np.ascontiguousarray(ctx.gene(gene), dtype=np.float64)
        if np.ptp(y) == 0.0:
            return GeneFit(gene, None, f"constant expression ({y[0]:g} in every cell)", n_modulators=mods.n,
                           families=families(mods))
        XS, kind, col = split_design(ctx, mods)
        f = ctx.fit
        mask = ctx.feature_mask(mods)  # TF prior: each cluster's lasso without the TFs it may not use
        res = fit_clusters_split(XS, ctx.shared, kind, col, y, ctx.clusters, mods.groups, l1_reg=f.l1_reg,
                                 group_reg=f.group_reg, group_reg_scaling=f.group_reg_scaling, n_iter=f.n_iter,
                                 tol=f.tol, score_threshold=f.score_threshold, n_clusters=len(ctx.cluster_labels),
                                 feature_mask=mask)
        frame = BetaFrame(gene=gene, row_kind=_keys.CLUSTER_COL, row_ids=list(ctx.cluster_labels),
                          intercept=res.intercept, modulators=mods.names, coefs=res.coef, groups=mods.groups)
        n_used = mask.sum(axis=1) if mask is not None else np.full(len(ctx.cluster_labels), mods.n)
        clusters = [ClusterFit(label=str(lab), n_cells=int(res.n_cells[k]), n_modulators=int(n_used[k]),
                               r2=float(res.r2[k]), mse=float(res.mse[k]), iterations=int(res.n_iter[k]),
                               converged=bool(res.converged[k]), kept=not bool(res.gated[k]))
                    for k, lab in enumerate(ctx.cluster_labels)]
        fit = GeneFit(gene, frame, clusters=clusters, n_modulators=mods.n, families=families(mods))
        if ctx.tf_prior is not None:
            fit.log_lines += ctx.tf_prior.log_lines(mods, ctx.cluster_labels)
            fit.tf_masks = ctx.tf_prior.masked_tfs(mods, ctx.cluster_labels)
        if frame.is_all_zero():
            fit.frame = None
            fit.reason = "every cluster failed the R² gate (all betas zero)"
        return fit


def trainer_for(cfg: SpaceshipConfig) -> Trainer:
    """The trainer of ``[training].mode``."""
    if cfg.training.mode == "full":
        from .cnn_trainer import CnnTrainer

        return CnnTrainer.from_config(cfg)
    return SeedTrainer()

"""Full mode (SPEC §5.2): the seed lasso per cluster, then one CNN per cluster for per-cell betas.

:class:`CnnTrainer` plugs into the trainer seam (:mod:`.trainer`). ``prepare`` computes the run-wide
network inputs once — every cell's distance map (N·D² float32) and niche features (N·K) — into
``ctx.run_arrays`` (shipped to workers memory-mapped). ``fit`` runs the seed trainer (its R² gate decides
which clusters are modelled at all), then :func:`~spacetravlr_py.models.cnn_fit.fit_gene_cells`, and
returns ``CellID`` betadata in AnnData order (float32 on disk), a log with every cluster's loss per
epoch, in-sample and held-out R² of lasso and CNN and the choice made, and — with
``[model_export].save_cnn_weights`` — the weights as an ``.npz`` artifact.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import _keys
from ..betadata.frame import BetaFrame
from ..config import SpaceshipConfig
from .results import ClusterFit, GeneFit
from .trainer import SeedTrainer, split_design

CNN_MAPS, CNN_FEATURES, CNN_GRID, CNN_FEATURE_MIN, CNN_FEATURE_MAX = (
    "cnn_maps", "cnn_features", "cnn_grid", "cnn_feature_min", "cnn_feature_max")
"""Names of the run-wide arrays in ``ctx.run_arrays``."""


@dataclass
class CnnTrainer:
    """Full mode: per-cell betas from a CNN over each cell's spatial niche (picklable)."""

    settings: Any
    """:class:`~spacetravlr_py.models.cnn_fit.CnnSettings` (device resolved)."""
    spatial_dim: int = 32
    feature_radius: float = 100.0
    save_weights: bool = False
    compressed_npz: bool = True
    weights_subdir: str = "CNN_weights"
    mode: str = "full"
    notes: list[str] = field(default_factory=list)
    """Warnings found by :meth:`prepare` (e.g. clusters too small to hold out cells), one line each."""

    @classmethod
    def from_config(cls, cfg: SpaceshipConfig) -> CnnTrainer:
        """Checks torch, the device and the settings (one-line errors, before anything is written)."""
        from ..models._torch import require_torch, resolve_device
        from ..models.cnn_fit import CnnSettings

        require_torch()
        device = resolve_device(cfg.execution.device)
        me = cfg.model_export
        t = cls(settings=CnnSettings.from_config(cfg, device=device), spatial_dim=cfg.spatial.spatial_dim,
                feature_radius=cfg.cnn.spatial_feature_radius, save_weights=me.save_cnn_weights,
                compressed_npz=me.compressed_npz, weights_subdir=me.output_subdir)
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        if device == "cpu" and cfg.execution.n_parallel < cores:
            t.notes.append(f"note: full mode trains each gene on one CPU core (bit-identical results for any "
                           f"--parallel); --parallel {cores} would use all {cores} cores of this machine")
        return t

    def prepare(self, ctx: Any) -> None:
        """Distance maps and niche features of every cell, once per run."""
        from ..models.cnn_fit import holdout_split
        from ..spatial.niche import MapGrid, distance_maps, niche_features

        K = len(ctx.cluster_labels)
        grid = MapGrid.of(ctx.coords, self.spatial_dim)
        ctx.run_arrays[CNN_MAPS] = distance_maps(ctx.coords, self.spatial_dim, grid=grid)
        feats, lo, hi = niche_features(ctx.coords, ctx.clusters, K, self.feature_radius)
        ctx.run_arrays[CNN_FEATURES] = feats
        ctx.run_arrays[CNN_GRID] = np.array([grid.xmin, grid.xmax, grid.ymin, grid.ymax])
        ctx.run_arrays[CNN_FEATURE_MIN], ctx.run_arrays[CNN_FEATURE_MAX] = lo, hi
        s = self.settings
        n = np.bincount(np.asarray(ctx.clusters, dtype=np.int64), minlength=K)
        small = [f"'{lab}' ({n[k]} cells)" for k, lab in enumerate(ctx.cluster_labels)
                 if n[k] >= 2 and not holdout_split(int(n[k]), s.holdout_fraction, s.random_seed, k).has_heldout]
        if small and s.holdout_fraction > 0:
            from ..errors import short_list
            from ..models.cnn_fit import MIN_HOLDOUT_CELLS as m

            self.notes.append(f"warning: {len(small)} clusters are too small to hold out {s.holdout_fraction:.0%} "
                              f"of their cells ({m} validation + {m} test cells needed): {short_list(small, 6)}; "
                              "their CNN trains on every cell without early stopping and is compared with the "
                              "lasso in-sample")

    def fit(self, ctx: Any, gene: str) -> GeneFit:
        """Seed fit, then the per-cluster CNNs; raises CnnDiverged on a NaN loss (the gene fails)."""
        from ..models.cnn_fit import fit_gene_cells

        seed = SeedTrainer().fit(ctx, gene)
        if seed.frame is None:
            return seed  # orphan for the same reason as in seed mode
        mods = ctx.modulators(gene)
        XS, kind, col = split_design(ctx, mods)
        X = np.empty((XS.shape[0], mods.n))
        for j, (k, c) in enumerate(zip(kind, col)):
            X[:, j] = XS[:, c] if k == 0 else ctx.lr_features[:, c]
        y = np.ascontiguousarray(ctx.gene(gene), dtype=np.float64)
        f = ctx.fit
        lasso = dict(l1_reg=f.l1_reg, group_reg=f.group_reg, group_reg_scaling=f.group_reg_scaling,
                     n_iter=f.n_iter, tol=f.tol)
        kept = np.array([c.kept for c in seed.clusters], dtype=bool)
        cells = fit_gene_cells(gene, ctx.run_arrays[CNN_MAPS], ctx.run_arrays[CNN_FEATURES], X, y, ctx.clusters,
                               seed.frame.intercept, seed.frame.coefs, kept, mods.groups, lasso, self.settings,
                               labels=ctx.cluster_labels)
        frame = BetaFrame(gene=gene, row_kind=_keys.CELLID_COL, row_ids=list(ctx.obs_names),
                          intercept=cells.betas[:, 0], modulators=mods.names, coefs=cells.betas[:, 1:],
                          groups=mods.groups, disk_float32=True)
        fit = GeneFit(gene, frame, clusters=self._clusters(seed.clusters, cells, X, y, ctx.clusters),
                      n_modulators=mods.n, families=seed.families, log_lines=self._log(ctx, cells))
        if self.save_weights:
            fit.artifacts[f"{self.weights_subdir}/{_keys.CNN_WEIGHTS_FILE.format(gene=gene)}"] = \
                self._weights(ctx, gene, mods.names, cells)
        if frame.is_all_zero():
            fit.frame, fit.reason = None, "every cluster failed the R² gate (all betas zero)"
        return fit

    @staticmethod
    def _clusters(seed: list[ClusterFit], cells: Any, X: np.ndarray, y: np.ndarray,
                  clusters: np.ndarray) -> list[ClusterFit]:
        """Seed rows with the written betas' in-sample R²/MSE, held-out R² and the choice."""
        from ..models.cnn_fit import predict_rows, r2_score

        out = []
        pred = predict_rows(X, cells.betas)
        for k, (s, c) in enumerate(zip(seed, cells.clusters)):
            if c is None:
                out.append(s)
                continue
            m = clusters == k
            held = {"lasso": c.r2["lasso_heldout"], "cnn": c.r2["cnn_heldout"]} if c.n_test else {}
            out.append(ClusterFit(label=s.label, n_cells=s.n_cells, n_modulators=s.n_modulators,
                                  r2=r2_score(y[m], pred[m]), mse=float(np.mean((y[m] - pred[m]) ** 2)),
                                  iterations=s.iterations, converged=s.converged, kept=s.kept, heldout_r2=held,
                                  choice=c.choice))
        return out

    def _log(self, ctx: Any, cells: Any) -> list[str]:
        """Per-cluster CNN summary and loss per epoch (``cnn`` and ``loss`` rows of ``log/{gene}.log``)."""
        s = self.settings
        lines = [f"full_mode\tepochs {s.epochs}\tbatch_size {s.batch_size}\tlearning_rate {s.learning_rate:g}\t"
                 f"activation {s.output_activation}\tholdout_fraction {s.holdout_fraction:g}\tdevice {s.device}",
                 "cnn\tcluster\tlabel\tn_train\tn_val\tn_test\tepochs_run\tbest_epoch\tr2_lasso_in\tr2_cnn_in\t"
                 "r2_lasso_heldout\tr2_cnn_heldout\tchoice\tseconds"]
        rows = ["loss\tcluster\tlabel\tepoch\ttrain_mse\tval_mse"]
        for k, c in enumerate(cells.clusters):
            if c is None:
                continue
            lab = ctx.cluster_labels[k]
            r = c.r2
            lines.append(f"cnn\t{k}\t{lab}\t{c.n_train}\t{c.n_val}\t{c.n_test}\t{c.epochs_run}\t{c.best_epoch}\t"
                         f"{r['lasso_in']:.6g}\t{r['cnn_in']:.6g}\t{r['lasso_heldout']:.6g}\t"
                         f"{r['cnn_heldout']:.6g}\t{c.choice}\t{c.seconds:.3f}")
            for e in range(c.epochs_run + 1):
                tr = f"{c.train_loss[e - 1]:.6g}" if e >= 1 else ""
                ho = f"{c.val_loss[e]:.6g}" if e < len(c.val_loss) else ""
                rows.append(f"loss\t{k}\t{lab}\t{e}\t{tr}\t{ho}")
        return lines + rows

    def _weights(self, ctx: Any, gene: str, modulators: list[str], cells: Any) -> bytes:
        from ..models.cnn_export import NicheMeta, cnn_weights_bytes
        from ..spatial.niche import MapGrid

        g = np.asarray(ctx.run_arrays[CNN_GRID])
        niche = NicheMeta(grid=MapGrid(float(g[0]), float(g[1]), float(g[2]), float(g[3]), self.spatial_dim),
                          feature_radius=self.feature_radius,
                          feature_min=np.asarray(ctx.run_arrays[CNN_FEATURE_MIN]),
                          feature_max=np.asarray(ctx.run_arrays[CNN_FEATURE_MAX]),
                          cluster_labels=list(ctx.cluster_labels))
        fits = [c for c in cells.clusters if c is not None]
        return cnn_weights_bytes(gene, modulators, self.settings.output_activation, niche, fits,
                                 compressed=self.compressed_npz)

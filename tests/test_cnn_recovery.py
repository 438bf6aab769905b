"""Full mode recovers spatially varying betas (SPEC §5.2 recovery bar), on arrays."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import shared_path
from spacetravlr_py.spatial.niche import distance_maps, niche_features

pytest.importorskip("torch")

from spacetravlr_py.models.cnn_fit import CnnSettings, fit_gene_cells
from spacetravlr_py.models.fista import fit_clusters

LASSO = dict(l1_reg=1e-5, group_reg=1e-5, group_reg_scaling="sqrt_group_size", n_iter=500, tol=1e-4)


def recovery(betas: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column: Pearson correlation with the truth (0 for a constant column) and MSE / Var(truth)."""
    corr = np.array([np.corrcoef(betas[:, j], truth[:, j])[0, 1] if np.ptp(betas[:, j]) > 0 else 0.0
                     for j in range(truth.shape[1])])
    rel = ((betas - truth) ** 2).mean(0) / truth.var(0)
    return corr, rel


@pytest.mark.slow
@pytest.mark.realdata
def test_sinusoidal_fixture_per_cell_betas_beat_the_cluster_lasso():
    d = pd.read_csv(shared_path("fixtures", "simulated_sinusoidals.csv"))
    xy = d[["col", "row"]].to_numpy(dtype=np.float64)
    cl = np.zeros(len(d), dtype=np.int64)
    X, y = d[["x1", "x2"]].to_numpy(), d["y"].to_numpy()
    truth = d[["beta0", "beta1", "beta2"]].to_numpy()
    maps = distance_maps(xy, 16)
    feats, _, _ = niche_features(xy, cl, 1, 5.0)
    seed = fit_clusters(X, y, cl, [0, 0], score_threshold=0.2, n_clusters=1, **LASSO)
    g = fit_gene_cells("y", maps, feats, X, y, cl, seed.intercept, seed.coef, ~seed.gated, [0, 0], LASSO,
                       CnnSettings(epochs=10, batch_size=64, patience=0))
    c = g.clusters[0]
    assert c is not None and c.choice == "cnn"
    assert c.r2["cnn_heldout"] > 0.9 > 0.7 > c.r2["lasso_heldout"]
    lasso_b = np.tile(np.r_[seed.intercept[0], seed.coef[0]], (len(d), 1))
    corr_l, rel_l = recovery(lasso_b, truth)
    corr_c, rel_c = recovery(g.betas, truth)
    assert np.all(corr_l == 0) and np.all(rel_l > 0.99)  # one row per cluster: no within-cluster signal
    assert np.all(corr_c > 0.85), corr_c
    assert np.all(rel_c < 0.3), rel_c

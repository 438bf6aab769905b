"""The synthetic tissue's generation steps (the planted-truth generator itself is exercised by training)."""

from __future__ import annotations

import numpy as np
import pytest

from spacetravlr_py import _keys
from spacetravlr_py.datasets import (
    FLAT_FEATURE_SD,
    _layout,
    _network_table,
    _panel,
    _zero_flat_terms,
    synthetic_tissue,
)


def test_panel_real_symbols_first_then_synthetic_names() -> None:
    p = _panel(n_tfs=22, n_lr_pairs=18, n_targets=13, n_root=5)
    assert p.tfs[:2] == ["Foxo1", "Pax5"] and p.tfs[20:] == ["Tfx21", "Tfx22"]
    assert p.roots == p.tfs[:5] and p.level1 == p.tfs[5:]
    # pair 17 (i=16) is a multiple of 4: contact; pair 18 secreted
    assert p.pairs[16] == ("Ligx17", "Recx17", "Cell-Cell Contact") and p.pairs[17][2] == _keys.SECRETED
    assert p.ligands.count("Wnt5a") == 1 and p.receptors.count("Cd44") == 1  # first appearance kept
    assert p.signaling["Cd200"] == "Cell-Cell Contact" and p.targets[-1] == "Tgtx13"
    assert p.genes == p.tfs + p.ligands + p.receptors + p.targets
    assert set(p.roles()) == {"root_tfs", "tfs", "ligands", "receptors", "targets"}


def test_layout_square_and_noisy_voronoi_clusters() -> None:
    side, xy, cl = _layout(np.random.default_rng(3), 400, 4, 1e-3)
    assert side == pytest.approx(np.sqrt(400 / 1e-3))
    assert xy.shape == (400, 2) and (xy >= 0).all() and (xy <= side).all()
    assert set(np.unique(cl)) <= set(range(4)) and len(np.unique(cl)) > 1
    _, xy2, cl2 = _layout(np.random.default_rng(3), 400, 4, 1e-3)  # same seed, same tissue
    np.testing.assert_array_equal(xy, xy2)
    np.testing.assert_array_equal(cl, cl2)


def test_flat_interaction_terms_get_beta_zero() -> None:
    rng = np.random.default_rng(0)
    clusters = np.repeat([0, 1], 50)
    tf = rng.normal(size=100)
    feat = rng.normal(size=100)
    feat[clusters == 1] = 0.3  # flat in cluster 1: sd 0 < FLAT_FEATURE_SD · overall sd
    B = np.ones((2, 2))
    F = np.column_stack([tf, feat])
    _zero_flat_terms(B, F, 1, clusters)
    assert B[0, 0] == B[1, 0] == 1.0  # TF betas untouched
    assert B[0, 1] == pytest.approx(0.6 / (feat.std() + 1e-12)) and B[1, 1] == 0.0
    assert FLAT_FEATURE_SD > 0


def test_network_table_order_and_first_row_kept() -> None:
    net = _network_table([("A", "T"), ("A", "T"), ("B", "T")], [("L", "R", "ECM-Receptor")],
                         [("L", "A", 0.9), ("L", "A", 0.1)])
    assert list(net["edge_type"]) == [_keys.EDGE_GRN, _keys.EDGE_GRN, _keys.EDGE_LR, _keys.EDGE_NICHENET]
    assert net.loc[3, "weight"] == 0.9 and net.loc[2, "signaling"] == "ECM-Receptor"
    assert list(net.columns) == list(_keys.NETWORK_COLUMNS)


def test_same_seed_same_tissue() -> None:
    a, b = synthetic_tissue(n_cells=150, seed=4), synthetic_tissue(n_cells=150, seed=4)
    np.testing.assert_array_equal(a.adata.X, b.adata.X)
    assert a.network.equals(b.network) and a.planted == b.planted
    assert not np.array_equal(a.adata.X, synthetic_tissue(n_cells=150, seed=5).adata.X)


def test_spatial_betas_vary_smoothly_within_clusters_and_leave_other_genes_alone() -> None:
    plain = synthetic_tissue(n_cells=400, seed=1)
    syn = synthetic_tissue(n_cells=400, seed=1, spatial_betas=0.4)
    targets = syn.roles["targets"]
    X0, X1 = np.asarray(plain.adata.X), np.asarray(syn.adata.X)
    for j, g in enumerate(syn.adata.var_names):
        assert np.array_equal(X0[:, j], X1[:, j]) == (g not in targets), g
    assert not plain.cell_betas and sorted(syn.cell_betas) == sorted(targets)
    labels = np.asarray(syn.adata.obs["cell_type"].astype(str))
    xy = np.asarray(syn.adata.obsm["spatial"])
    nn = np.argsort(((xy[:, None] - xy[None]) ** 2).sum(-1), axis=1)[:, 1]  # nearest other cell
    for g in targets:
        cell, clus = syn.cell_betas[g], syn.betas[g]
        assert cell.row_kind == _keys.CELLID_COL and cell.row_ids == list(syn.adata.obs_names)
        assert cell.modulators == clus.modulators
        for k, lab in enumerate(clus.row_ids):
            m = labels == lab
            assert np.all(cell.intercept[m] == clus.intercept[k])
            np.testing.assert_allclose(cell.coefs[m].mean(axis=0), clus.coefs[k], atol=1e-12)  # mean 1 per cluster
            ratio = cell.coefs[m] / np.where(clus.coefs[k] == 0, np.nan, clus.coefs[k])
            assert np.nanmin(ratio) >= 0.6 - 1e-12 and np.nanmax(ratio) <= 1.4 + 1e-12
            assert np.all(cell.coefs[m][:, clus.coefs[k] == 0] == 0)
        same = labels[nn] == labels
        c = [np.corrcoef(cell.coefs[same, j], cell.coefs[nn[same], j])[0, 1] for j in range(len(cell.modulators))
             if np.ptp(cell.coefs[:, j]) > 0]
        assert np.mean(c) > 0.8  # smooth: neighbours have similar betas
    with pytest.raises(ValueError, match="spatial_betas"):
        synthetic_tissue(n_cells=50, spatial_betas=1.0)

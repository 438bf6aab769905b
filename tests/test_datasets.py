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

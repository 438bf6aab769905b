"""Full mode on arrays: niche inputs, the network, the per-cluster fit, weights export (SPEC §5.2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from spacetravlr_py.errors import ConfigError, InputError
from spacetravlr_py.spatial.niche import MapGrid, distance_maps, niche_counts, niche_features

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------
# distance maps and niche features (no torch needed)
# ---------------------------------------------------------------------------------------------


def _maps_numpy(xy: np.ndarray, dim: int) -> np.ndarray:
    """Direct NumPy: distance of every cell to every pixel centre, min–max per cell."""
    xmin, xmax, ymin, ymax = xy[:, 0].min(), xy[:, 0].max(), xy[:, 1].min(), xy[:, 1].max()
    k = np.arange(dim) + 0.5
    cx = xmin + k * (xmax - xmin) / dim
    cy = ymax - k * (ymax - ymin) / dim
    d = np.sqrt((cx[None, None, :] - xy[:, 0, None, None]) ** 2 + (cy[None, :, None] - xy[:, 1, None, None]) ** 2)
    lo = d.min(axis=(1, 2), keepdims=True)
    hi = d.max(axis=(1, 2), keepdims=True)
    return (d - lo) / np.maximum(hi - lo, 1e-15)


def test_distance_map_by_hand():
    # two cells at the corners of a 4 × 2 box, 2 × 2 pixels: centres x ∈ {1, 3}, y ∈ {1.5, 0.5} (row 0 on top)
    xy = np.array([[0.0, 0.0], [4.0, 2.0]])
    m = distance_maps(xy, 2)
    d0 = np.sqrt(np.array([[1 + 1.5**2, 9 + 1.5**2], [1 + 0.25, 9 + 0.25]]))
    want0 = (d0 - d0.min()) / (d0.max() - d0.min())
    assert m.dtype == np.float32 and m.shape == (2, 2, 2)
    np.testing.assert_allclose(m[0], want0, rtol=0, atol=1e-7)
    # the cell at (4, 2) is nearest the top-right pixel (row 0, column 1): 0 there, 1 at bottom-left
    assert m[1, 0, 1] == 0.0 and m[1, 1, 0] == 1.0


def test_distance_maps_match_numpy():
    rng = np.random.default_rng(1)
    xy = rng.uniform(-50, 300, size=(300, 2))
    for dim in (8, 32):
        np.testing.assert_allclose(distance_maps(xy, dim), _maps_numpy(xy, dim), rtol=0, atol=1e-6)
    g = MapGrid.of(xy, 16)
    cx, cy = g.centres()
    assert cx[0] > xy[:, 0].min() and cy[0] < xy[:, 1].max()


def test_distance_maps_degenerate_and_bad_input():
    assert distance_maps(np.zeros((3, 2)), 8).max() == 0.0  # every cell on one point: all-zero maps
    assert distance_maps(np.zeros((0, 2)), 8).shape == (0, 8, 8)
    with pytest.raises(ValueError, match="shape"):
        distance_maps(np.zeros(5), 8)


def test_niche_counts_match_bruteforce_including_boundary():
    # integer grid: many pairs at exactly the radius (distance 2 and √8 vs r = 2): ≤ r counts
    g = np.stack(np.meshgrid(np.arange(12.0), np.arange(9.0)), -1).reshape(-1, 2)
    rng = np.random.default_rng(2)
    cl = rng.integers(0, 4, size=len(g))
    d = np.sqrt(((g[:, None, :] - g[None, :, :]) ** 2).sum(-1))
    for r in (2.0, 2.5, 100.0):
        want = np.stack([(d <= r)[:, cl == k].sum(1) for k in range(5)], 1)  # cluster 4 is empty
        np.testing.assert_array_equal(niche_counts(g, cl, 5, r), want)
    f, lo, hi = niche_features(g, cl, 5, 2.0)
    c = niche_counts(g, cl, 5, 2.0)
    np.testing.assert_allclose(f[:, :4], (c[:, :4] - c[:, :4].min(0)) / (c[:, :4].max(0) - c[:, :4].min(0)), atol=1e-7)
    assert f.dtype == np.float32 and np.all(f[:, 4] == 0) and lo[4] == hi[4] == 0  # constant column → 0
    assert np.all(f[:, :4].min(0) == 0) and np.all(f[:, :4].max(0) == 1)


def test_per_cell_recovery_by_hand():
    from spacetravlr_py.betadata.frame import BetaFrame
    from spacetravlr_py.training.cnn_report import per_cell_recovery

    obs, labels = ["c0", "c1", "c2", "c3"], ["A", "A", "B", "B"]
    truth = {"G": BetaFrame("G", "CellID", obs, np.zeros(4), ["x"], np.array([[1.0], [3.0], [2.0], [2.0]]))}
    seed = {"G": BetaFrame("G", "Cluster", ["A", "B"], np.zeros(2), ["x", "y"], np.array([[2.0, 5.0], [2.0, 5.0]]))}
    full = {"G": BetaFrame("G", "CellID", obs, np.zeros(4), ["x"], np.array([[1.5], [2.5], [2.0], [2.0]]))}
    r = per_cell_recovery(truth, seed, obs, labels)
    # within A: truth 1, 3 around 2 (squared deviations 2); B is constant (no correlation term, no variance)
    assert r == {"within_cluster_corr": 0.0, "corr": 0.0, "relative_mse": 1.0, "n_terms": 1}
    r = per_cell_recovery(truth, full, obs, labels)
    assert r["within_cluster_corr"] == pytest.approx(1.0) and r["relative_mse"] == pytest.approx(0.5 / 2)


# ---------------------------------------------------------------------------------------------
# network (torch)
# ---------------------------------------------------------------------------------------------

torch = pytest.importorskip("torch")

from spacetravlr_py.models.cnn import ACTIVATIONS, CellularNicheNetwork  # noqa: E402
from spacetravlr_py.models.cnn_export import cnn_weights_bytes, load_cnn_weights  # noqa: E402
from spacetravlr_py.models.cnn_fit import (  # noqa: E402
    MIN_HOLDOUT_CELLS,
    CnnDiverged,
    CnnSettings,
    fit_cluster_cnn,
    fit_gene_cells,
    holdout_split,
    infer_betas,
    predict_rows,
)


def _randomise_head(net: CellularNicheNetwork, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        net.head.fc2.weight.copy_(torch.randn(net.head.fc2.weight.shape, generator=g) * 3)
        net.head.fc2.bias.copy_(torch.randn(net.head.fc2.bias.shape, generator=g) * 3)


def test_network_shapes_and_activation_ranges():
    torch.manual_seed(0)
    anchors = np.array([1.5, -2.0, 0.5, 3.0], dtype=np.float32)
    maps = torch.rand(7, 1, 16, 16)
    feats = torch.rand(7, 5)
    for act in ACTIVATIONS:
        net = CellularNicheNetwork(3, 5, anchors=anchors, activation=act).eval()
        with torch.no_grad():
            start = net.get_betas(maps, feats).numpy()
            _randomise_head(net)
            b = net.get_betas(maps, feats).numpy()
            mult = net.multipliers(maps, feats).numpy()
        assert b.shape == (7, 4) and b.dtype == np.float32
        np.testing.assert_allclose(b, mult * anchors, rtol=1e-6)
        lo, hi = {"sigmoidx2": (0, 2), "sigmoid": (0, 1), "tanh": (-1, 1), "identity": (-np.inf, np.inf)}[act]
        assert np.all(mult >= lo) and np.all(mult <= hi)
        if act in ("sigmoidx2", "identity"):  # an untrained network is the lasso
            np.testing.assert_array_equal(start, np.tile(anchors, (7, 1)))
    with pytest.raises(ValueError, match="activation"):
        CellularNicheNetwork(3, 5, activation="relu")


def test_forward_is_the_linear_prediction():
    torch.manual_seed(1)
    net = CellularNicheNetwork(4, 3, anchors=np.arange(1.0, 6.0)).eval()
    _randomise_head(net, 3)
    maps, feats, x = torch.rand(6, 1, 8, 8), torch.rand(6, 3), torch.randn(6, 4)
    with torch.no_grad():
        b = net.get_betas(maps, feats).double().numpy()
        y = net(maps, x, feats).double().numpy()
    np.testing.assert_allclose(y, b[:, 0] + (b[:, 1:] * x.double().numpy()).sum(1), rtol=1e-5)
    np.testing.assert_allclose(predict_rows(x.numpy(), b), y, rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# fits
# ---------------------------------------------------------------------------------------------


def _planted(n: int = 240, seed: int = 0, dim: int = 16):
    """One cluster on a square; y = β0(x) + β1(x)·x1 with β1 varying smoothly across the tissue."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 100, size=(n, 2))
    field = 1.0 + 0.8 * np.sin(xy[:, 0] / 30.0)
    X = rng.uniform(0, 1, size=(n, 2))
    y = 0.5 + 2.0 * field * X[:, 0] + 1.0 * X[:, 1] + rng.normal(0, 0.02, n)
    maps = distance_maps(xy, dim)
    cl = np.zeros(n, dtype=np.int64)
    feats, _, _ = niche_features(xy, cl, 1, 15.0)
    return xy, maps, feats, X, y, cl


LASSO = dict(l1_reg=1e-6, group_reg=1e-6, group_reg_scaling="sqrt_group_size", n_iter=500, tol=1e-6)


def _seed_fit(X, y, cl, K=1):
    from spacetravlr_py.models.fista import fit_clusters

    return fit_clusters(X, y, cl, [0] * X.shape[1], score_threshold=0.2, n_clusters=K, **LASSO)


def test_holdout_split_is_deterministic_and_skips_small_clusters():
    sp = holdout_split(200, 0.1, 42, 3)
    assert sp.val.size == 10 and sp.test.size == 10 and sp.train.size == 180
    assert np.union1d(np.union1d(sp.train, sp.val), sp.test).size == 200  # a partition
    np.testing.assert_array_equal(sp.held, np.sort(np.r_[sp.val, sp.test]))
    again = holdout_split(200, 0.1, 42, 3)
    np.testing.assert_array_equal(sp.test, again.test)
    np.testing.assert_array_equal(sp.val, again.val)
    assert not np.array_equal(sp.held, holdout_split(200, 0.1, 42, 4).held)  # another cluster, other cells
    n_small = 2 * MIN_HOLDOUT_CELLS * 10 - 10  # 9 held-out cells: a half would have 4
    small = holdout_split(n_small, 0.1, 42, 0)
    assert not small.has_heldout and small.train.size == n_small and small.val.size == 0
    assert holdout_split(2 * MIN_HOLDOUT_CELLS * 10, 0.1, 42, 0).has_heldout
    assert not holdout_split(500, 0.0, 42, 0).has_heldout


def test_loss_decreases_and_cnn_beats_lasso_on_spatial_betas():
    _, maps, feats, X, y, cl = _planted()
    seed = _seed_fit(X, y, cl)
    s = CnnSettings(epochs=12, batch_size=32, learning_rate=3e-3, patience=0)
    g = fit_gene_cells("G", maps, feats, X, y, cl, seed.intercept, seed.coef, ~seed.gated, [0, 0], LASSO, s)
    c = g.clusters[0]
    assert c is not None and (c.n_val, c.n_test, c.n_train) == (12, 12, 216)
    assert c.train_loss[-1] < 0.5 * c.train_loss[0]
    assert min(c.val_loss[1:]) < c.val_loss[0]  # validation loss of epoch 0 = the lasso's
    assert c.r2["cnn_heldout"] > c.r2["lasso_heldout"] and c.choice == "cnn"
    assert c.val_loss[c.best_epoch] == min(c.val_loss)
    np.testing.assert_array_equal(g.betas, c.betas.astype(np.float64))


def test_keep_lasso_rule_and_gate():
    _, maps, feats, X, y, cl = _planted(seed=3)
    y = 0.5 + 2.0 * X[:, 0] + X[:, 1] + np.random.default_rng(0).normal(0, 0.3, y.size)  # no spatial signal
    cl = (np.arange(y.size) % 2).astype(np.int64)
    seed = _seed_fit(X, y, cl, K=2)
    kept = ~seed.gated
    kept[1] = False  # as if cluster 1 failed the R² gate
    s = CnnSettings(epochs=3, batch_size=16, learning_rate=0.5, patience=0)  # a wild step: the CNN loses
    g = fit_gene_cells("G", maps, feats, X, y, cl, seed.intercept, seed.coef, kept, [0, 0], LASSO, s)
    c = g.clusters[0]
    assert c is not None and c.choice == "lasso"
    # either no epoch beat the untrained network (= the lasso), or the kept epoch does not beat it on R²
    assert c.best_epoch == 0 or not c.r2["cnn_heldout"] > c.r2["lasso_heldout"]
    rows = cl == 0
    np.testing.assert_array_equal(g.betas[rows, 0], seed.intercept[0])
    np.testing.assert_array_equal(g.betas[rows, 1:], np.tile(seed.coef[0], (rows.sum(), 1)))
    assert g.clusters[1] is None and not g.betas[cl == 1].any()


def test_seeded_fits_are_bit_identical_and_seed_dependent():
    _, maps, feats, X, y, cl = _planted(n=120)
    seed = _seed_fit(X, y, cl)
    args = ("G", maps, feats, X, y, cl, seed.intercept, seed.coef, ~seed.gated, [0, 0], LASSO)
    s = CnnSettings(epochs=2, batch_size=16, patience=0)
    a = fit_gene_cells(*args, s).clusters[0]
    b = fit_gene_cells(*args, s).clusters[0]
    c = fit_gene_cells(*args, CnnSettings(epochs=2, batch_size=16, patience=0, random_seed=7)).clusters[0]
    assert a is not None and b is not None and c is not None
    assert a.betas.tobytes() == b.betas.tobytes()
    assert all(a.state[k].tobytes() == b.state[k].tobytes() for k in a.state)
    assert a.betas.tobytes() != c.betas.tobytes()


def test_eval_betas_do_not_depend_on_batch_composition():
    _, maps, feats, X, y, cl = _planted(n=120)
    seed = _seed_fit(X, y, cl)
    anchors = np.r_[seed.intercept[0], seed.coef[0]]
    res = fit_cluster_cnn(maps, feats, X, y, anchors, holdout_split(120, 0.1, 42, 0),
                          CnnSettings(epochs=2, batch_size=16))
    net = CellularNicheNetwork(2, 1)  # the trained network, BatchNorm running statistics included
    net.load_state_dict({k: torch.from_numpy(v) for k, v in res.state.items()})
    m = torch.from_numpy(maps).unsqueeze(1)
    f = torch.from_numpy(feats)
    together = infer_betas(net, m, f).numpy()
    alone = np.concatenate([infer_betas(net, m[i:i + 1], f[i:i + 1]).numpy() for i in range(10)])
    np.testing.assert_allclose(alone, together[:10], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(together, res.betas, rtol=1e-6, atol=1e-7)
    net.train()  # train-mode BatchNorm (the reference's inference) depends on the other cells
    with torch.no_grad():
        tm = net.get_betas(m[:10], f[:10]).numpy()
        tm2 = net.get_betas(m[:2], f[:2]).numpy()
    assert np.abs(tm[:2] - tm2).max() > 1e-4


def test_nan_loss_fails_with_a_reason():
    _, maps, feats, X, y, _ = _planted(n=60)
    X = X * 1e30  # float32 products overflow: the loss is inf at the first step
    anchors = np.array([0.5, 1e10, 1.0])
    with pytest.raises(CnnDiverged, match=r"gene G, cluster 'a' epoch 1: CNN loss became inf"):
        fit_cluster_cnn(maps, feats, X, y, anchors, holdout_split(60, 0.0, 42, 0), CnnSettings(epochs=1), gene="G",
                        where="gene G, cluster 'a'")


def test_bad_settings_one_line():
    with pytest.raises(ConfigError, match=r"\[training\].epochs = 0: full mode trains for at least 1 epoch"):
        CnnSettings(epochs=0)
    with pytest.raises(ConfigError, match="holdout_fraction"):
        CnnSettings(holdout_fraction=0.9)


def test_device_choice():
    from spacetravlr_py.models._torch import resolve_device

    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match=r"\[execution\].device = \"cuda\" but PyTorch sees no CUDA device"):
            resolve_device("cuda")
    with pytest.raises(ConfigError, match="expected one of"):
        resolve_device("tpu")


def test_missing_torch_names_the_extra(monkeypatch):
    from spacetravlr_py.models._torch import require_torch

    monkeypatch.setitem(sys.modules, "torch", None)  # what Python does when the package is absent
    with pytest.raises(ConfigError) as e:
        require_torch()
    assert "pip install 'spacetravlr-py[full]'" in str(e.value) and "\n" not in str(e.value)


# ---------------------------------------------------------------------------------------------
# export
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from spacetravlr_py.models.cnn_export import NicheMeta

    xy, maps, feats, X, y, _ = _planted(n=160, dim=16)
    cl = (xy[:, 0] > 50).astype(np.int64)
    feats, lo, hi = niche_features(xy, cl, 2, 15.0)
    seed = _seed_fit(X, y, cl, K=2)
    s = CnnSettings(epochs=3, batch_size=16, learning_rate=3e-3, patience=0)
    g = fit_gene_cells("Foxo1", maps, feats, X, y, cl, seed.intercept, seed.coef, ~seed.gated, [0, 0], LASSO, s)
    fits = [c for c in g.clusters if c is not None]
    niche = NicheMeta(grid=MapGrid.of(xy, 16), feature_radius=15.0, feature_min=lo, feature_max=hi,
                      cluster_labels=["a", "b"])
    path = tmp_path_factory.mktemp("w") / "Foxo1_cnn_weights.npz"
    path.write_bytes(cnn_weights_bytes("Foxo1", ["x1", "x2"], "sigmoidx2", niche, fits))
    return path, xy, cl, maps, feats, fits


def test_npz_round_trip_reproduces_betas(exported):
    path, xy, cl, maps, feats, fits = exported
    w = load_cnn_weights(path, gene="Foxo1", n_modulators=2, spatial_dim=16, n_clusters=2)
    assert w.modulators == ["x1", "x2"] and w.activation == "sigmoidx2" and sorted(w.networks) == [0, 1]
    m2, f2 = w.inputs(xy, cl)  # inputs rebuilt from the file's grid and scaling constants
    np.testing.assert_array_equal(m2, maps)
    np.testing.assert_allclose(f2, feats, atol=1e-7)
    for c in fits:
        rows = cl == c.cluster
        b = w.betas(c.cluster, m2[rows], f2[rows])
        np.testing.assert_allclose(b, c.betas, rtol=1e-6, atol=1e-7)
        with np.load(path) as d:
            for k, v in c.state.items():
                assert d[f"c{c.cluster:04d}_{k}"].tobytes() == v.tobytes()


def test_loader_rejects_other_gene_and_shapes(exported, tmp_path):
    path = exported[0]
    for kw, msg in (({"gene": "Pax5"}, "weights are for gene 'Foxo1', expected 'Pax5'"),
                    ({"n_modulators": 5}, "n_modulators 2, expected 5"),
                    ({"spatial_dim": 32}, "spatial_dim 16, expected 32")):
        with pytest.raises(InputError, match=msg) as e:
            load_cnn_weights(path, **kw)
        assert "\n" not in str(e.value)
    bad = tmp_path / "x.npz"
    with np.load(path) as d:
        arrays = {k: d[k] for k in d.files}
    arrays["c0000_head.fc2.weight"] = np.zeros((4, 64), dtype=np.float32)
    np.savez(bad, **arrays)
    with pytest.raises(InputError, match=r"cluster 0 weights do not fit the network .*head.fc2.weight"):
        load_cnn_weights(bad)
    np.savez(bad, a=np.zeros(2))
    with pytest.raises(InputError, match="not a SpaceTravLR CNN weights file"):
        load_cnn_weights(bad)
    (tmp_path / "t.npz").write_text("hello")
    with pytest.raises(InputError, match=r"not a readable \.npz"):
        load_cnn_weights(tmp_path / "t.npz")


def test_standalone_script_reproduces_betas(exported, tmp_path):
    path, _, cl, maps, feats, fits = exported
    script = ROOT / "scripts" / "load_cnn_weights.py"
    for c in fits:
        rows = cl == c.cluster
        np.save(tmp_path / "m.npy", maps[rows])
        np.save(tmp_path / "f.npy", feats[rows])
        out = tmp_path / f"b{c.cluster}.npy"
        r = subprocess.run([sys.executable, str(script), str(path), "--cluster", str(c.cluster), "--maps",
                            str(tmp_path / "m.npy"), "--features", str(tmp_path / "f.npy"), "--out", str(out)],
                           capture_output=True, text=True, check=True)
        assert "wrote" in r.stdout
        np.testing.assert_allclose(np.load(out), c.betas, rtol=1e-6, atol=1e-7)
    r = subprocess.run([sys.executable, str(script), str(path)], capture_output=True, text=True, check=True)
    assert "gene Foxo1: 2 modulators, 2 clusters, spatial_dim 16, activation sigmoidx2" in r.stdout

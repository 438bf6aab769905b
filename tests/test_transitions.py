"""Transition field (SPEC §8, issue 6): colΔCor probabilities on a kNN graph of the embedding, per-cell
vectors, grid field, AnnData storage, and parity with the Python reference's ``transition`` harness.

The central check is equivalence with :func:`_dense_field`, a direct dense NumPy transcription of the
SPEC §8 formulas (N×N matrices, explicit loops), on small inputs.
"""

from __future__ import annotations

import os
import subprocess
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from builders import field_adata, field_inputs, two_cluster_field
from conftest import SHARED, shared_path
from spacetravlr_py.transitions import (
    GridField,
    TransitionField,
    TransitionGraph,
    cell_vectors,
    grid_field,
    knn,
    transition_field,
    transition_probabilities,
)
from spacetravlr_py.transitions.field import default_bins, prepare_delta

TOL = 1e-10


# ------------------------------------------------------------------------------------------------
# dense reference implementation of SPEC §8
# ------------------------------------------------------------------------------------------------


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Two-pass Pearson; undefined (NaN) when a vector is constant, i.e. its centred sum of squares is
    at most 1e-20 of its raw one (rounding noise of a constant vector's mean, not variation)."""
    ac = a - a.mean()
    bc = b - b.mean()
    va, vb = ac @ ac, bc @ bc
    if not (va > 1e-20 * (a @ a) and vb > 1e-20 * (b @ b)):
        return np.nan
    return float(ac @ bc / np.sqrt(va * vb))


def _dense_knn(E: np.ndarray, k: int, include_self: bool) -> np.ndarray:
    n = E.shape[0]
    dist = np.sqrt(((E[:, None, :] - E[None, :, :]) ** 2).sum(-1))
    if include_self:
        kk = min(k, n)
    else:
        kk = min(k, n - 1)
        dist[np.arange(n), np.arange(n)] = np.inf
    return np.argsort(dist, axis=1, kind="stable")[:, :kk]


def _dense_P(X: np.ndarray, D: np.ndarray, nbrs: np.ndarray, T: float,
             nan_value: float) -> tuple[np.ndarray, np.ndarray]:
    n = X.shape[0]
    corr = np.full((n, n), np.nan)
    A = np.zeros((n, n), dtype=bool)
    for i in range(n):
        for j in nbrs[i]:
            A[i, j] = True
            corr[i, j] = _pearson(X[j] - X[i], D[i])
    corr = np.where(np.isnan(corr), nan_value, corr)
    W = np.where(A, np.exp(corr / T), 0.0)
    np.fill_diagonal(W, 0.0)
    s = W.sum(axis=1, keepdims=True)
    P = np.divide(W, s, out=np.zeros_like(W), where=s > 0)
    return P, np.where(A, corr, 0.0)


def _dense_project(P: np.ndarray, E: np.ndarray, unit: bool) -> np.ndarray:
    diff = E[None, :, :] - E[:, None, :]  # diff[i, j] = E_j - E_i
    if unit:
        nrm = np.linalg.norm(diff, axis=2, keepdims=True)
        diff = np.divide(diff, nrm, out=np.zeros_like(diff), where=nrm > 0)
    return np.einsum("ij,ijk->ik", P, diff)


def _dense_field(X, D, E, k, *, T=0.05, remove_null=True, compat=False, unit=False):
    nbrs = _dense_knn(E, k, include_self=compat)
    nan_value = 1.0 if compat else 0.0
    P, corr = _dense_P(X, D, nbrs, T, nan_value)
    if remove_null:
        P0, _ = _dense_P(X, np.zeros_like(D), nbrs, T, nan_value)
        P = P - P0
    return P, corr, _dense_project(P, E, unit), nbrs


def _run(X, D, E, k, **kw) -> tuple[TransitionGraph, np.ndarray]:
    unit = kw.pop("unit", False)
    kw.setdefault("round_decimals", None)
    g = transition_probabilities(X, D, E, n_neighbors=k, **kw)
    return g, cell_vectors(g, E, unit_directions=unit)


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


# ------------------------------------------------------------------------------------------------
# kNN
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("include_self", [False, True])
@pytest.mark.parametrize("k", [1, 7, 39, 40, 100])
def test_knn_matches_brute_force(k: int, include_self: bool) -> None:
    E = np.random.default_rng(1).normal(size=(40, 2))
    nb = knn(E, k, include_self=include_self)
    ref = _dense_knn(E, k, include_self)
    assert nb.dtype == np.int64
    np.testing.assert_array_equal(nb, ref)
    if not include_self:
        assert not (nb == np.arange(40)[:, None]).any()
    else:
        np.testing.assert_array_equal(nb[:, 0], np.arange(40))  # self is the nearest, distance 0


def test_knn_tiny_and_duplicates() -> None:
    assert knn(np.zeros((1, 2)), 5).tolist() == [[-1]]
    assert knn(np.zeros((1, 2)), 5, include_self=True).tolist() == [[0]]
    assert knn(np.array([[0.0, 0], [1, 0]]), 5).tolist() == [[1], [0]]
    # all points identical: self is still never its own neighbour, each row holds the k others
    nb = knn(np.zeros((6, 2)), 3)
    assert nb.shape == (6, 3)
    assert not (nb == np.arange(6)[:, None]).any()
    assert all(len(set(r)) == 3 for r in nb.tolist())
    nb = knn(np.zeros((6, 2)), 10)
    assert nb.shape == (6, 5)
    assert [sorted(r) for r in nb.tolist()] == [[j for j in range(6) if j != i] for i in range(6)]


# ------------------------------------------------------------------------------------------------
# equivalence with the dense formulas
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("compat", [False, True], ids=["ours", "reference_compat"])
@pytest.mark.parametrize("remove_null", [True, False], ids=["null_removed", "keep_null"])
def test_probabilities_and_vectors_match_dense(compat: bool, remove_null: bool) -> None:
    X, D, E = field_inputs(60, 25, seed=2)
    k = 12
    D[3] = 0.0  # a cell without change: every correlation undefined
    D[5] = 0.25  # constant change: undefined too
    X[7] = X[8] + 1e-3 * np.random.default_rng(0).normal(size=25)  # near-identical expression
    g, V = _run(X, D, E, k, reference_compat=compat, remove_null=remove_null)
    P, corr, V_ref, nbrs = _dense_field(X, D, E, k, remove_null=remove_null, compat=compat)
    np.testing.assert_array_equal(g.neighbors, nbrs)
    Pc = g.to_csr()
    assert Pc.shape == (60, 60)
    assert Pc.nnz == 60 * nbrs.shape[1]
    assert np.abs(Pc.toarray() - P).max() <= TOL
    assert np.abs(g.to_csr("correlations").toarray() - corr).max() <= TOL
    assert np.abs(V - V_ref).max() <= TOL
    _, Vu = _run(X, D, E, k, reference_compat=compat, remove_null=remove_null, unit=True)
    assert np.abs(Vu - _dense_project(P, E, unit=True)).max() <= TOL
    # row sums: 1 without null removal, 0 with it; self gets probability 0
    rows = Pc.toarray().sum(axis=1)
    np.testing.assert_allclose(rows, 0.0 if remove_null else 1.0, atol=1e-12)
    assert np.all(np.diag(Pc.toarray()) == 0.0)
    if compat:
        assert (g.neighbors[:, 0] == np.arange(60)).all() and g.neighbors.shape[1] == k
        assert g.correlations[3, 1] == 1.0  # undefined correlation → 1 (velocyto)
    else:
        assert g.neighbors.shape[1] == k and g.correlations[3, 0] == 0.0
    # the undefined row is uniform over the non-self neighbours (exactly 0 after null removal)
    others = g.neighbors[3] != 3
    expected = 0.0 if remove_null else 1.0 / others.sum()
    assert np.all(g.probabilities[3][others] == expected) and np.all(g.probabilities[3][~others] == 0.0)


@pytest.mark.parametrize("temperature", [0.01, 0.05, 1.0])
def test_temperature_matches_dense(temperature: float) -> None:
    X, D, E = field_inputs(30, 12, seed=3)
    g, V = _run(X, D, E, 8, temperature=temperature)
    P, _, V_ref, _ = _dense_field(X, D, E, 8, T=temperature)
    assert np.abs(g.to_csr().toarray() - P).max() <= TOL
    assert np.abs(V - V_ref).max() <= TOL


def test_near_identical_cells_keep_precision() -> None:
    """Cells whose expression differs by 1e-4..1e-9 of its scale (and with a large offset) still match
    the two-pass dense Pearson: the kernel must not lose the correlation to cancellation."""
    rng = np.random.default_rng(4)
    base = rng.normal(size=(1, 40)) + 50.0
    scales = np.repeat([1e-2, 1e-4, 1e-6, 1e-9], 5)
    X = base + scales[:, None] * rng.normal(size=(20, 40))
    D = np.round(rng.normal(size=(20, 40)), 3)
    E = np.column_stack([np.arange(20.0), rng.normal(size=20) * 0.01])
    g, V = _run(X, D, E, 6)
    P, corr, V_ref, _ = _dense_field(X, D, E, 6)
    assert np.abs(g.to_csr("correlations").toarray() - corr).max() <= 1e-9
    assert np.abs(g.to_csr().toarray() - P).max() <= TOL * 10
    assert np.abs(V - V_ref).max() <= TOL * 10


def test_delta_rounding_and_rescale() -> None:
    X, _, E = field_inputs(40, 15, seed=5)
    D = np.random.default_rng(6).normal(size=(40, 15)) * 0.01
    Dp = prepare_delta(D, rescale=3.0, round_decimals=3)
    np.testing.assert_array_equal(Dp, np.round(D * 3.0, 3))
    assert Dp.dtype == np.float64 and Dp.flags.c_contiguous
    np.testing.assert_array_equal(prepare_delta(D, round_decimals=None), D)
    g = transition_probabilities(X, D, E, n_neighbors=10, delta_rescale=3.0)  # default: 3 decimals
    P, *_ = _dense_field(X, np.round(D * 3.0, 3), E, 10)
    assert np.abs(g.to_csr().toarray() - P).max() <= TOL
    g2 = transition_probabilities(X, D, E, n_neighbors=10, round_decimals=None)
    P2, *_ = _dense_field(X, D, E, 10)
    assert np.abs(g2.to_csr().toarray() - P2).max() <= TOL
    assert np.abs(P2 - P).max() > 1e-3  # rounding matters at this scale
    assert g.params["delta_rescale"] == 3.0 and g.params["round_decimals"] == 3
    # the kernel rounds on the fly exactly as prepare_delta / np.round do (any decimals, any dtype)
    for dec, resc in ((3, 3.0), (1, 1.0), (-1, 500.0), (0, 7.0)):
        np.testing.assert_array_equal(prepare_delta(D, rescale=resc, round_decimals=dec), np.round(D * resc, dec))
        a = transition_probabilities(X, D, E, n_neighbors=10, delta_rescale=resc, round_decimals=dec)
        b = transition_probabilities(X, np.round(D * resc, dec), E, n_neighbors=10, round_decimals=None)
        np.testing.assert_array_equal(a.probabilities, b.probabilities)
        np.testing.assert_array_equal(a.correlations, b.correlations)
    D32 = (D * 100).astype(np.float32)
    a = transition_probabilities(X, D32, E, n_neighbors=10)
    b = transition_probabilities(X, np.round(D32.astype(np.float64), 3), E, n_neighbors=10, round_decimals=None)
    np.testing.assert_array_equal(a.probabilities, b.probabilities)
    Di = np.round(D * 1000).astype(np.int64)
    a = transition_probabilities(X, Di, E, n_neighbors=10, delta_rescale=1e-3)
    b = transition_probabilities(X, np.round(Di * 1e-3, 3), E, n_neighbors=10, round_decimals=None)
    np.testing.assert_array_equal(a.probabilities, b.probabilities)
    # the caller's delta is never modified
    D0 = D.copy()
    transition_probabilities(X, D, E, n_neighbors=5, delta_rescale=2.0)
    np.testing.assert_array_equal(D, D0)


# ------------------------------------------------------------------------------------------------
# invariances and degenerate inputs
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("compat", [False, True])
def test_cell_order_invariance(compat: bool) -> None:
    X, D, E = field_inputs(200, 20, seed=7)
    perm = np.random.default_rng(8).permutation(200)
    inv = np.argsort(perm)
    g, V = _run(X, D, E, 15, reference_compat=compat)
    gp, Vp = _run(X[perm], D[perm], E[perm], 15, reference_compat=compat)
    P = g.to_csr().toarray()
    Pp = gp.to_csr().toarray()
    assert np.abs(Pp[np.ix_(inv, inv)] - P).max() <= 1e-12
    assert np.abs(Vp[inv] - V).max() <= 1e-12
    # neighbour sets map onto each other exactly (no distance ties)
    np.testing.assert_array_equal(perm[gp.neighbors][inv], g.neighbors)


@pytest.mark.parametrize("compat", [False, True])
@pytest.mark.parametrize("n,k", [(2, 150), (3, 150), (3, 2), (5, 5), (8, 20)])
def test_tiny_inputs(n: int, k: int, compat: bool) -> None:
    X, D, E = field_inputs(n, 6, seed=n + k)
    for remove_null in (True, False):
        g, V = _run(X, D, E, k, reference_compat=compat, remove_null=remove_null)
        kk = min(k, n) if compat else min(k, n - 1)
        assert g.neighbors.shape == (n, kk)
        P, _, V_ref, _ = _dense_field(X, D, E, k, compat=compat, remove_null=remove_null)
        assert np.abs(g.to_csr().toarray() - P).max() <= TOL
        assert np.abs(V - V_ref).max() <= TOL
        assert np.isfinite(g.probabilities).all() and np.isfinite(g.correlations).all()
    f = transition_field(X, D, E, n_neighbors=k, reference_compat=compat)
    assert isinstance(f, TransitionField)
    assert np.isfinite(f.vectors).all()
    assert f.grid.counts.sum() == n


def test_single_cell() -> None:
    X, D, E = field_inputs(1, 5, seed=0)
    g, V = _run(X, D, E, 10)
    assert g.neighbors.shape == (1, 1) and g.neighbors[0, 0] == -1
    assert g.to_csr().nnz == 0
    np.testing.assert_array_equal(V, 0.0)
    gc, Vc = _run(X, D, E, 10, reference_compat=True)
    np.testing.assert_array_equal(gc.probabilities, 0.0)
    np.testing.assert_array_equal(Vc, 0.0)


@pytest.mark.parametrize("compat", [False, True])
def test_zero_delta_gives_exactly_zero(compat: bool) -> None:
    X, _, E = field_inputs(50, 10, seed=9)
    for D in (np.zeros((50, 10)), np.full((50, 10), 1e-5)):  # the second rounds to 0 at 3 decimals
        g = transition_probabilities(X, D, E, n_neighbors=10, reference_compat=compat)
        assert np.all(g.probabilities == 0.0)
        V = cell_vectors(g, E)
        assert np.all(V == 0.0)
        assert np.all(cell_vectors(g, E, unit_directions=True) == 0.0)
        f = transition_field(X, D, E, n_neighbors=10, reference_compat=compat)
        assert np.all(f.vectors == 0.0)
        assert np.all(np.nan_to_num(f.grid.u) == 0.0) and np.all(np.nan_to_num(f.grid.v) == 0.0)
    # without null removal a zero Δ gives the uniform distribution over the (non-self) neighbours
    g = transition_probabilities(X, np.zeros((50, 10)), E, n_neighbors=10, remove_null=False)
    np.testing.assert_array_equal(g.probabilities, 0.1)


@pytest.mark.parametrize("compat", [False, True])
def test_constant_genes_and_cells_stay_finite(compat: bool) -> None:
    X, D, E = field_inputs(40, 12, seed=10)
    X[:, 0] = 7.3  # constant genes
    X[:, 5] = 0.0
    D[:, 3] = 0.1
    X[10] = 0.1  # constant cells (their difference with each other is constant too)
    X[11] = 0.7
    X[12] = 0.3
    E[10:13] = E[10] + np.array([[0, 0], [0.01, 0], [0, 0.01]])
    D[20] = 0.1  # constant Δ rows
    D[21] = -0.3
    g, V = _run(X, D, E, 8, reference_compat=compat)
    for a in (g.probabilities, g.correlations, V):
        assert np.isfinite(a).all()
    P, *_ = _dense_field(X, D, E, 8, compat=compat)
    # constant Δ: every correlation undefined → no preference, exactly 0 after null removal
    assert np.all(g.probabilities[[20, 21]] == 0.0)
    nan_value = 1.0 if compat else 0.0
    assert np.all(g.correlations[[20, 21]] == nan_value)
    # between two constant cells X_j − X_i is constant: undefined, not a rounding-noise correlation
    for i in (10, 11, 12):
        for s, j in enumerate(g.neighbors[i]):
            if j in (10, 11, 12) and j != i:
                assert g.correlations[i, s] == nan_value
    assert np.abs(g.to_csr().toarray() - P).max() <= TOL
    # everything constant: nothing anywhere
    Xc = np.tile(np.arange(40.0)[:, None] * 0.1, (1, 12))
    gc, Vc = _run(Xc, D, E, 8, reference_compat=compat)
    assert np.all(gc.correlations == nan_value)
    assert np.all(gc.probabilities == 0.0) and np.all(Vc == 0.0)


def test_duplicate_embedding_points() -> None:
    X, D, E = field_inputs(30, 8, seed=11)
    E[5:15] = E[5]  # ten cells at the same place
    for compat in (False, True):
        f = transition_field(X, D, E, n_neighbors=6, reference_compat=compat, unit_directions=True)
        assert isinstance(f, TransitionField)
        assert np.isfinite(f.graph.probabilities).all() and np.isfinite(f.vectors).all()
        if not compat:
            assert not (f.graph.neighbors == np.arange(30)[:, None]).any()
        # a zero-length step contributes nothing to unit directions (the reference gives NaN)
        np.testing.assert_allclose(np.asarray(f.graph.to_csr().sum(axis=1)).ravel(), 0.0, atol=1e-12)
        # cells 5..14 only see each other (k=6 < 9 others at distance 0): no step, no vector
        assert np.all(f.vectors[5:15] == 0.0)
        assert np.isfinite(cell_vectors(f.graph, E)).all()


def test_input_validation() -> None:
    X, D, E = field_inputs(10, 4)
    with pytest.raises(ValueError, match="shapes"):
        transition_probabilities(X, D[:, :3], E)
    with pytest.raises(ValueError, match="shapes"):
        transition_probabilities(X, D, E[:5])
    with pytest.raises(ValueError, match="temperature"):
        transition_probabilities(X, D, E, temperature=0.0)
    Dn = D.copy()
    Dn[0, 0] = np.nan
    with pytest.raises(ValueError, match="delta must be finite"):
        transition_probabilities(X, Dn, E)
    with pytest.raises(ValueError, match="delta must be finite"):
        transition_probabilities(X, D * 1e306, E, delta_rescale=1e10)  # overflows when rescaled
    with pytest.raises(ValueError, match="finite"):
        prepare_delta(Dn)
    Xn = X.copy()
    Xn[3, 1] = np.inf
    with pytest.raises(ValueError, match="expression must be finite"):
        transition_probabilities(Xn, D, E)
    En = E.copy()
    En[0, 0] = np.nan
    with pytest.raises(ValueError, match="embedding must be finite"):
        transition_probabilities(X, D, En)
    with pytest.raises(ValueError, match="embedding"):
        transition_probabilities(X, D, E[:, :1])
    with pytest.raises(ValueError, match="embedding"):
        transition_field(X, D)


# ------------------------------------------------------------------------------------------------
# planted shift: A → B
# ------------------------------------------------------------------------------------------------


def test_planted_shift_points_from_a_to_b() -> None:
    X, E, lab, _, _ = two_cluster_field()
    A = lab == 0
    D = np.zeros_like(X)
    D[A] = (X[~A].mean(0) - X[A].mean(0)) * 0.1
    direction = E[~A].mean(0) - E[A].mean(0)
    # with few neighbours a cell only sees its own cluster, and the field follows the A→B axis of the
    # embedding inside A; with many it sees B directly. Per-cell cosines between the two fields are
    # weaker at small k (the sideways components do not flip), the mean field reverses in both.
    for k, min_opp in ((30, 0.6), (200, 0.95)):
        f = transition_field(X, D, E, n_neighbors=k)
        assert isinstance(f, TransitionField)
        cos = _cos(f.vectors[A], direction[None, :])
        assert np.mean(cos > 0) >= 0.9, (k, np.mean(cos > 0))
        assert np.all(f.vectors[~A] == 0.0)  # B unchanged, exactly no motion
        # knockout vs overexpression: the opposite change reverses the field
        fn = transition_field(X, -D, E, n_neighbors=k)
        assert isinstance(fn, TransitionField)
        assert np.mean(_cos(fn.vectors[A], direction[None, :]) < 0) >= 0.9
        opp = _cos(f.vectors[A], fn.vectors[A])
        assert np.mean(opp) < -min_opp and np.mean(opp < 0) >= 0.85, (k, np.mean(opp), np.mean(opp < 0))
        assert _cos(f.vectors[A].mean(0), fn.vectors[A].mean(0)) < -0.99
        # the grid shows it too: the mean shown arrow points right, and left for the opposite change
        assert np.nanmean(f.grid.u) > 0 and np.nanmean(fn.grid.u) < 0


# ------------------------------------------------------------------------------------------------
# scale: no dense N×N
# ------------------------------------------------------------------------------------------------


def test_no_dense_n_by_n_at_30k_cells() -> None:
    n, g, k = 30_000, 50, 30
    rng = np.random.default_rng(13)
    E = rng.normal(size=(n, 2))
    X = rng.normal(size=(n, g))
    D = np.where(rng.random((n, g)) < 0.1, rng.normal(size=(n, g)), 0.0)
    transition_probabilities(X[:100], D[:100], E[:100], n_neighbors=5)  # compile outside the trace
    tracemalloc.start()
    try:
        f = transition_field(X, D, E, n_neighbors=k)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(f, TransitionField)
    assert peak < 2**30, f"peak {peak / 2**30:.2f} GiB (N²·8 = {n * n * 8 / 1e9:.1f} GB)"
    assert peak < 20 * n * g * 8  # a few copies of the N×G inputs, nothing quadratic
    assert f.graph.probabilities.shape == (n, k)
    P = f.graph.to_csr()
    assert P.nnz == n * k and np.isfinite(P.data).all()


# ------------------------------------------------------------------------------------------------
# AnnData storage
# ------------------------------------------------------------------------------------------------


def test_anndata_storage_and_h5ad_roundtrip(tmp_path: Path) -> None:
    import anndata as ad

    a, D = field_adata()
    n, k = a.n_obs, 12
    ret = transition_field(a, D, key_added="ko", n_neighbors=k)
    assert ret is None
    P = a.obsp["ko_transitions"]
    assert sp.issparse(P) and P.format == "csr" and P.shape == (n, n) and P.nnz == n * k
    assert sp.issparse(a.obsp["ko_correlations"]) and a.obsp["ko_correlations"].shape == (n, n)
    assert a.obsm["ko_vectors"].shape == (n, 2)
    u = a.uns["ko_field"]
    for key in ("x", "y", "u", "v", "counts", "mask", "params"):
        assert key in u
    assert u["counts"].sum() == n
    assert u["params"]["n_neighbors"] == k and u["params"]["key_added"] == "ko"
    # the stored values are the array API's
    f = transition_field(a.layers["imputed_count"], D, a.obsm["X_umap"], n_neighbors=k)
    assert isinstance(f, TransitionField)
    assert np.abs((P - f.graph.to_csr()).toarray()).max() == 0.0
    np.testing.assert_array_equal(a.obsm["ko_vectors"], f.vectors)
    np.testing.assert_array_equal(u["u"], np.nan_to_num(f.grid.u))
    # written and read back
    path = tmp_path / "field.h5ad"
    a.write_h5ad(path)
    b = ad.read_h5ad(path)
    assert np.abs((b.obsp["ko_transitions"] - P).toarray()).max() == 0.0
    np.testing.assert_array_equal(b.obsm["ko_vectors"], a.obsm["ko_vectors"])
    np.testing.assert_array_equal(b.uns["ko_field"]["mask"], u["mask"])
    assert b.uns["ko_field"]["params"]["temperature"] == 0.05
    # copy=True leaves the input alone
    c, D2 = field_adata(seed=15)
    out = transition_field(c, D2, key_added="oe", n_neighbors=k, copy=True)
    assert isinstance(out, ad.AnnData) and out is not c
    assert "oe_transitions" in out.obsp and "oe_transitions" not in c.obsp
    assert "oe_vectors" not in c.obsm and "oe_field" not in c.uns
    # key_added=None returns the field arrays
    res = transition_field(c, D2, key_added=None, n_neighbors=k)
    assert isinstance(res, TransitionField) and "spacetravlr_transitions" not in c.obsp


def test_anndata_layer_and_embedding_choices() -> None:
    a, D = field_adata()
    with pytest.raises(ValueError, match="layer"):
        transition_field(a, D, layer="missing")
    a.X = sp.csr_matrix(a.X)
    transition_field(a, D, layer=None, key_added="x", n_neighbors=5)
    transition_field(a, D, key_added="l", n_neighbors=5)
    np.testing.assert_array_equal(a.obsm["x_vectors"], a.obsm["l_vectors"])
    E2 = a.obsm["X_umap"][:, ::-1].copy()
    transition_field(a, D, E2, key_added="e", n_neighbors=5)
    assert not np.array_equal(a.obsm["e_vectors"], a.obsm["l_vectors"])
    del a.obsm["X_umap"]
    with pytest.raises(ValueError, match="embedding"):
        transition_field(a, D)
    a.obsm["umap"] = E2
    transition_field(a, D, key_added="u", n_neighbors=5)
    np.testing.assert_array_equal(a.obsm["u_vectors"], a.obsm["e_vectors"])


# ------------------------------------------------------------------------------------------------
# grid
# ------------------------------------------------------------------------------------------------


def test_grid_field_binning_mask_scale_threshold() -> None:
    rng = np.random.default_rng(16)
    E = rng.uniform(0, 10, size=(500, 2))
    E[:50] = rng.uniform(0, 1, size=(50, 2))  # a dense corner
    V = rng.normal(size=(500, 2))
    gr = grid_field(E, V, nx=10, ny=10, min_cells=4, vector_scale=0.7)
    assert isinstance(gr, GridField)
    assert gr.counts.shape == (10, 10) and gr.counts.sum() == 500
    np.testing.assert_allclose(gr.x, np.linspace(E[:, 0].min(), E[:, 0].max(), 21)[1::2])
    # brute-force bin means
    ix = np.minimum(((E[:, 0] - E[:, 0].min()) / np.ptp(E[:, 0]) * 10).astype(int), 9)
    iy = np.minimum(((E[:, 1] - E[:, 1].min()) / np.ptp(E[:, 1]) * 10).astype(int), 9)
    mean_u = np.full((10, 10), np.nan)
    mean_v = np.full((10, 10), np.nan)
    for r in range(10):
        for c in range(10):
            m = (iy == r) & (ix == c)
            assert gr.counts[r, c] == m.sum()
            if m.any():
                mean_u[r, c], mean_v[r, c] = V[m].mean(0)
    assert np.array_equal(gr.mask, gr.counts >= 4)
    assert np.isnan(gr.u[~gr.mask]).all() and np.isfinite(gr.u[gr.mask]).all()
    scale = 0.7 / np.hypot(mean_u, mean_v)[gr.mask].max()
    np.testing.assert_allclose(gr.u[gr.mask], mean_u[gr.mask] * scale, rtol=1e-12)
    np.testing.assert_allclose(gr.v[gr.mask], mean_v[gr.mask] * scale, rtol=1e-12)
    assert np.isclose(np.nanmax(np.hypot(gr.u, gr.v)), 0.7)  # longest shown arrow = vector_scale
    # magnitude threshold zeroes the short arrows only
    gt = grid_field(E, V, nx=10, ny=10, min_cells=4, vector_scale=0.7, magnitude_threshold=0.3)
    short = np.hypot(gr.u, gr.v) < 0.3
    assert (short & gr.mask).any() and (~short & gr.mask).any()
    assert np.all(gt.u[short & gr.mask] == 0) and np.all(gt.v[short & gr.mask] == 0)
    np.testing.assert_array_equal(gt.u[~short & gr.mask], gr.u[~short & gr.mask])
    assert gt.params["magnitude_threshold"] == 0.3 and gt.params["vector_scale"] == 0.7
    # count weighting (the Python reference's choice)
    gw = grid_field(E, V, nx=10, ny=10, min_cells=1, weight_by_count=True, vector_scale=1.0)
    w = np.hypot(mean_u, mean_v) * gr.counts
    np.testing.assert_allclose(np.hypot(gw.u, gw.v)[gw.mask], (w / np.nanmax(w))[gw.mask], rtol=1e-12)


def test_grid_field_defaults_and_degenerate() -> None:
    rng = np.random.default_rng(17)
    E = rng.uniform(size=(2000, 2)) * [20.0, 10.0]
    V = rng.normal(size=(2000, 2))
    gr = grid_field(E, V)
    nx = default_bins(2000)
    assert 10 <= nx <= 50 and gr.params["nx"] == nx
    assert gr.params["ny"] == round(nx * np.ptp(E[:, 1]) / np.ptp(E[:, 0]))  # square bins
    assert np.isclose(gr.params["vector_scale"], min(np.ptp(E[:, 0]) / nx, np.ptp(E[:, 1]) / gr.params["ny"]))
    assert np.isclose(np.nanmax(np.hypot(gr.u, gr.v)), gr.params["vector_scale"])
    assert default_bins(10) == 10 and default_bins(10**7) == 50
    # zero vectors: nothing scaled, no NaN in shown bins
    gz = grid_field(E, np.zeros_like(V))
    assert np.all(gz.u[gz.mask] == 0)
    # every cell at one point, or on a line: one bin row, finite
    g1 = grid_field(np.ones((5, 2)), np.ones((5, 2)), nx=4, min_cells=1)
    assert g1.counts.sum() == 5 and np.isfinite(g1.x).all()
    gl = grid_field(np.column_stack([np.zeros(50), np.arange(50.0)]), np.ones((50, 2)), nx=10, min_cells=1)
    assert gl.counts.sum() == 50 and gl.counts.size <= 10 * 1000
    # every bin masked: all NaN, nothing raised
    gm = grid_field(E[:5], V[:5], nx=10, min_cells=3)
    assert not gm.mask.any() and np.isnan(gm.u).all()


# ------------------------------------------------------------------------------------------------
# real data: pbmc68k_reduced UMAP
# ------------------------------------------------------------------------------------------------


@pytest.mark.realdata
def test_pbmc68k_umap_shift_towards_another_cluster() -> None:
    import anndata as ad

    path = shared_path("fixtures", "pbmc68k_reduced.h5ad")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = ad.read_h5ad(path)
    X = np.asarray(a.X, dtype=np.float64)
    U = np.asarray(a.obsm["X_umap"], dtype=np.float64)
    lab = a.obs["louvain"].astype(str).to_numpy()
    # source: cluster 3; target: the cluster whose UMAP centroid is nearest
    cent = {c: U[lab == c].mean(0) for c in np.unique(lab)}
    src = "3"
    dst = min((c for c in cent if c != src), key=lambda c: np.linalg.norm(cent[c] - cent[src]))
    A = lab == src
    D = np.zeros_like(X)
    D[A] = (X[lab == dst].mean(0) - X[A].mean(0)) * 0.2
    ret = transition_field(a, D, layer=None, key_added="shift", n_neighbors=150, copy=True)
    assert isinstance(ret, ad.AnnData)
    V = np.asarray(ret.obsm["shift_vectors"])
    assert np.isfinite(V).all() and np.all(V[~A] == 0.0)
    direction = cent[dst] - cent[src]
    cos = _cos(V[A], direction[None, :])
    assert np.mean(cos > 0) >= 0.8, np.mean(cos > 0)
    assert _cos(V[A].mean(0), direction) > 0.8
    # and the reverse change moves them away
    f = transition_field(X, -D, U, n_neighbors=150)
    assert isinstance(f, TransitionField)
    assert _cos(f.vectors[A].mean(0), direction) < -0.5


# ------------------------------------------------------------------------------------------------
# reference parity: the Python reference's transition harness (velocyto colDeltaCorpartial)
# ------------------------------------------------------------------------------------------------

REF_PY = Path(os.path.expanduser("~/.cache/spacetravlr-reference/venv/bin/python"))
HARNESS = SHARED / "tools" / "reference" / "harness.py"


def _harness(tmp: Path, X, D, E, k: int, *extra: str) -> tuple[np.ndarray, np.ndarray]:
    if not REF_PY.exists():
        pytest.skip(f"reference environment absent: {REF_PY} (run ../shared/tools/reference/setup.sh)")
    if not HARNESS.exists():
        pytest.skip(f"reference harness absent: {HARNESS}")
    tmp.mkdir(parents=True, exist_ok=True)
    for name, arr in (("E", X), ("D", D), ("U", E)):
        np.save(tmp / f"{name}.npy", np.ascontiguousarray(arr, dtype=np.float64))
    out = tmp / "out"
    cmd = [str(REF_PY), str(HARNESS), "--threads", "1", "transition", "--expr", str(tmp / "E.npy"),
           "--delta", str(tmp / "D.npy"), "--embedding", str(tmp / "U.npy"), "--n-neighbors", str(k),
           "--expr-dtype", "float64", "--p-format", "npz", "--out-dir", str(out), *extra]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return sp.load_npz(out / "P.npz").toarray(), np.load(out / "V.npy")


@pytest.mark.reference
def test_reference_parity_transition(tmp_path: Path) -> None:
    """colΔCor P and projected vectors equal the reference harness's to ≤ 1e-10 (reference_compat)."""
    rng = np.random.default_rng(18)
    n, g, k = 300, 40, 30
    X = np.maximum(rng.normal(size=(n, g)) + 0.3, 0.0)
    X[:, 5] = 1.0  # a constant gene
    D = np.round(rng.normal(size=(n, g)) * 0.2 * (rng.random((n, g)) < 0.5), 3)
    D[:20] = 0.0  # unperturbed cells: undefined correlations (NaN → 1 in the reference)
    E = rng.normal(size=(n, 2)) * 5.0  # continuous: no distance ties, kNN sets agree
    results = {}
    # Cartography.compute_transition_probabilities (remove_null) + project(normalize=False)
    P_ref, V_ref = _harness(tmp_path / "cart", X, D, E, k, "--mode", "cartography", "--no-normalize-projection")
    f = transition_field(X, D, E, n_neighbors=k, reference_compat=True, round_decimals=None)
    assert isinstance(f, TransitionField)
    results["cartography P"] = np.abs(f.graph.to_csr().toarray() - P_ref).max()
    results["cartography V"] = np.abs(f.vectors - V_ref).max()
    # estimate_transition_probabilities (no null removal) + project(normalize=True): unit directions
    P_ref2, V_ref2 = _harness(tmp_path / "shift", X, D, E, k, "--mode", "shift", "--keep-null")
    f2 = transition_field(X, D, E, n_neighbors=k, reference_compat=True, round_decimals=None, remove_null=False,
                          unit_directions=True)
    assert isinstance(f2, TransitionField)
    results["shift P"] = np.abs(f2.graph.to_csr().toarray() - P_ref2).max()
    results["shift V (unit)"] = np.abs(f2.vectors - V_ref2).max()
    print("reference parity max |diff|:", {k_: f"{v:.2e}" for k_, v in results.items()})
    assert np.count_nonzero(P_ref2) == n * (k - 1)  # self among the k, P_ii = 0
    for name, diff in results.items():
        assert diff <= TOL, f"{name}: max |diff| {diff:.3e}"


@pytest.mark.reference
@pytest.mark.realdata
def test_reference_parity_transition_pbmc68k(tmp_path: Path) -> None:
    """The same on the real pbmc68k_reduced UMAP with the reference's k = 150 (cartography mode)."""
    import anndata as ad

    path = shared_path("fixtures", "pbmc68k_reduced.h5ad")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = ad.read_h5ad(path)
    X = np.asarray(a.X, dtype=np.float64)
    U = np.asarray(a.obsm["X_umap"], dtype=np.float64)
    lab = a.obs["louvain"].astype(str).to_numpy()
    A = lab == "3"
    D = np.zeros_like(X)
    D[A] = np.round((X[lab == "6"].mean(0) - X[A].mean(0)) * 0.2, 3)
    D[lab == "0"] = np.round(np.random.default_rng(0).normal(size=(int((lab == "0").sum()), X.shape[1])) * 0.1, 3)
    P_ref, V_ref = _harness(tmp_path, X, D, U, 150, "--mode", "cartography", "--no-normalize-projection")
    f = transition_field(X, D, U, n_neighbors=150, reference_compat=True, round_decimals=None)
    assert isinstance(f, TransitionField)
    dP = np.abs(f.graph.to_csr().toarray() - P_ref).max()
    dV = np.abs(f.vectors - V_ref).max()
    print(f"pbmc68k reference parity max |diff|: P {dP:.2e}, V {dV:.2e}")
    assert dP <= TOL and dV <= TOL

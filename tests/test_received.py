"""Received ligands (SPEC §3): closed forms, an independent NumPy formula, approximate-vs-exact bounds.

``RL[i, l] = (1/N) · Σ_j s · k(‖x_i − x_j‖) · L[j, l]`` over all N cells, self included.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.spatial import cKDTree

from spacetravlr_py.spatial import _kernels
from spacetravlr_py.spatial.received import (
    APPROX_TOL,
    ReceivedLigandCache,
    ReceivedOperator,
    kernel_sigma,
    kernel_value,
    received_ligands,
)

LOGGER = "spacetravlr_py.spatial"
SIGMA_FACTOR = 1.0 / math.sqrt(-2.0 * math.log(1e-3))  # truncated kernel: σ = r / sqrt(−2 ln 1e-3)


# ---------------------------------------------------------------------------------------------
# an independent implementation: the formula written out with NumPy broadcasting
# ---------------------------------------------------------------------------------------------


def naive_kernel(d: np.ndarray, r: float, kernel: str) -> np.ndarray:
    if kernel == "gaussian":
        return np.exp(-(d**2) / (2.0 * r**2))
    sigma = r * SIGMA_FACTOR
    return np.where(d <= r, np.exp(-(d**2) / (2.0 * sigma**2)), 0.0)


def naive_rl(L: np.ndarray, xy: np.ndarray, r: float, kernel: str = "gaussian", s: float = 1.0) -> np.ndarray:
    L = np.where(L <= 1e-9, 0.0, np.asarray(L, dtype=np.float64))
    d = np.sqrt(((xy[:, None, :] - xy[None, :, :]) ** 2).sum(axis=-1))
    return s * naive_kernel(d, r, kernel) @ L / xy.shape[0]


def assert_rel(actual: np.ndarray, expected: np.ndarray, tol: float) -> None:
    """|actual − expected| ≤ tol · max|expected| per ligand column."""
    assert actual.shape == expected.shape
    if expected.size == 0:
        return
    scale = np.abs(expected).max(axis=0)
    scale[scale == 0] = 1.0
    err = np.abs(actual - expected).max(axis=0) / scale
    assert err.max() <= tol, f"relative error {err.max():.3e} > {tol:.1e} (per column: {err})"


def uniform_layout(n: int, side: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 2)) * side


def blob_layout(n: int, side: float, seed: int, n_blobs: int = 5, spread: float = 0.03) -> np.ndarray:
    """Gaussian blobs: dense clumps separated by empty space."""
    rng = np.random.default_rng(seed)
    centres = rng.random((n_blobs, 2)) * side
    return centres[rng.integers(0, n_blobs, n)] + rng.standard_normal((n, 2)) * spread * side


def ligands(n: int, m: int, seed: int) -> np.ndarray:
    """Sparse-ish non-negative expression with a spiky column (a few producing cells)."""
    rng = np.random.default_rng(seed)
    L = rng.gamma(2.0, 1.0, (n, m)) * (rng.random((n, m)) < 0.6)
    if m >= 2:
        L[:, -1] = 0.0
        L[rng.integers(0, n, 3), -1] = 10.0
    return L


# ---------------------------------------------------------------------------------------------
# the kernel
# ---------------------------------------------------------------------------------------------


def test_kernel_value_matches_definition():
    d = np.array([0.0, 1.0, 49.9, 50.0, 50.0 + 1e-9, 120.0])
    r = 50.0
    np.testing.assert_allclose(kernel_value(d, r, "gaussian"), np.exp(-(d**2) / (2 * r * r)), rtol=1e-15)
    sigma = r / math.sqrt(-2.0 * math.log(1e-3))
    assert kernel_sigma(r, "truncated") == pytest.approx(sigma, rel=1e-15)
    assert kernel_sigma(r, "gaussian") == r
    t = kernel_value(d, r, "truncated")
    np.testing.assert_allclose(t[:4], np.exp(-(d[:4] ** 2) / (2 * sigma**2)), rtol=1e-15)
    assert t[3] == pytest.approx(1e-3, rel=1e-12)  # k(r) = 1e-3: d == r is kept
    assert t[4] == 0.0 and t[5] == 0.0
    with pytest.raises(ValueError, match="kernel must be one of"):
        kernel_value(d, r, "box")


# ---------------------------------------------------------------------------------------------
# closed forms
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kernel", ["gaussian", "truncated"])
@pytest.mark.parametrize("method", ["exact", "approx"])
def test_two_cells(kernel, method):
    xy = np.array([[0.0, 0.0], [3.0, 4.0]])  # d = 5
    L = np.array([[2.0, 0.0], [0.5, 1.0]])
    r, s = 6.0, 1.5
    k = naive_kernel(np.array(5.0), r, kernel)
    expected = np.array([[2.0 + k * 0.5, k * 1.0],
                         [0.5 + k * 2.0, 1.0]]) * s / 2.0
    out = received_ligands(L, xy, r, kernel=kernel, scale=s, method=method)
    np.testing.assert_allclose(out, expected, rtol=1e-12 if method == "exact" or kernel == "truncated" else 1e-3)


@pytest.mark.parametrize("kernel", ["gaussian", "truncated"])
@pytest.mark.parametrize("method", ["exact", "approx"])
def test_one_cell_and_no_cells(kernel, method):
    one = received_ligands(np.array([[2.0, 0.0]]), np.array([[5.0, 5.0]]), 3.0, kernel=kernel, scale=1.5,
                           method=method)
    assert one.tolist() == [[3.0, 0.0]]  # s · L / 1: only itself
    none = received_ligands(np.zeros((0, 2)), np.zeros((0, 2)), 3.0, kernel=kernel, method=method)
    assert none.shape == (0, 2)


def test_two_cells_at_exactly_the_radius():
    xy = np.array([[0.0, 0.0], [3.0, 4.0]])
    out = received_ligands(np.array([[1.0], [0.0]]), xy, 5.0, kernel="truncated").ravel()
    assert out[0] == 0.5
    assert out[1] == pytest.approx(0.5 * 1e-3, rel=1e-12)  # d == r: kept, k = 1e-3
    beyond = received_ligands(np.array([[1.0], [0.0]]), xy, 5.0 - 1e-9, kernel="truncated").ravel()
    assert beyond[1] == 0.0


@pytest.mark.parametrize("method", ["exact", "approx"])
def test_constant_field_on_a_regular_grid(method):
    """A constant ligand on a lattice: every interior cell receives the lattice sum."""
    h, side, c, s = 10.0, 41, 3.0, 2.0
    ij = np.stack(np.meshgrid(np.arange(side), np.arange(side), indexing="ij"), -1).reshape(-1, 2)
    xy = ij * h + 123.0
    n = len(xy)
    L = np.full((n, 1), c)
    for kernel, r in (("gaussian", 1.0 * h), ("truncated", 2.5 * h)):
        rl = received_ligands(L, xy, r, kernel=kernel, scale=s, method=method).ravel()
        # interior: farther than 10h from the border (the Gaussian's tail there is < e^-50)
        interior = np.all((ij >= 10) & (ij <= side - 11), axis=1)
        off = np.arange(-12, 13)
        d = h * np.sqrt(off[:, None] ** 2 + off[None, :] ** 2)
        lattice_sum = naive_kernel(d, r, kernel).sum()
        expected = s * c * lattice_sum / n
        tol = 1e-12 if method == "exact" or kernel == "truncated" else 1e-4
        np.testing.assert_allclose(rl[interior], expected, rtol=tol)
        if method == "exact" or kernel == "truncated":
            assert np.ptp(rl[interior]) <= 1e-13 * expected
        assert (rl[~interior] < expected * (1 + 1e-12)).all()  # border cells lack neighbours


@pytest.mark.parametrize("kernel", ["gaussian", "truncated"])
@pytest.mark.parametrize("method", ["exact", "approx"])
@pytest.mark.parametrize("layout", ["uniform", "blobs"])
def test_radius_much_larger_than_the_tissue(kernel, method, layout):
    """k ≈ 1 everywhere: RL = s · mean(L) for every cell."""
    xy = uniform_layout(700, 100.0, 1) if layout == "uniform" else blob_layout(700, 100.0, 1)
    L = ligands(700, 3, 2)
    out = received_ligands(L, xy, 1e7, kernel=kernel, scale=0.5, method=method)
    np.testing.assert_allclose(out, np.broadcast_to(0.5 * L.mean(axis=0), out.shape), rtol=1e-9)


@pytest.mark.parametrize("kernel", ["gaussian", "truncated"])
@pytest.mark.parametrize("method", ["exact", "approx"])
def test_radius_far_smaller_than_the_spacing(kernel, method):
    """Only the cell itself counts: RL = s · L / N."""
    ij = np.stack(np.meshgrid(np.arange(30), np.arange(20), indexing="ij"), -1).reshape(-1, 2)
    xy = ij * 10.0
    L = ligands(len(xy), 4, 3)
    out = received_ligands(L, xy, 0.1, kernel=kernel, scale=3.0, method=method)
    np.testing.assert_allclose(out, 3.0 * L / len(xy), rtol=1e-12, atol=0)


# ---------------------------------------------------------------------------------------------
# exact paths vs the independent formula
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 7, 300, 2500])
@pytest.mark.parametrize("m", [0, 1, 5])
@pytest.mark.parametrize("kernel", ["gaussian", "truncated"])
def test_exact_matches_naive(n, m, kernel):
    xy = uniform_layout(n, 500.0, n)
    L = ligands(n, m, n + m)
    for r in (30.0, 150.0):
        out = received_ligands(L, xy, r, kernel=kernel, method="exact")
        assert out.shape == (n, m) and out.dtype == np.float64
        assert_rel(out, naive_rl(L, xy, r, kernel), 1e-12)


def test_truncated_with_duplicate_coordinates_and_pairs_at_the_radius():
    rng = np.random.default_rng(5)
    xy = rng.random((1200, 2)) * 300.0
    xy[100:300] = xy[rng.integers(0, 100, 200)]  # duplicated positions (d = 0)
    r = 25.0
    # pairs at exactly d = r (a 3-4-5 triangle scaled by 5) and just beyond it
    xy[400] = [1000.0, 1000.0]
    xy[401] = [1015.0, 1020.0]
    xy[402] = [1000.0, 975.0 - 1e-7]
    L = ligands(1200, 3, 6)
    L[400:403] = [[1.0, 0, 0], [0, 2.0, 0], [0, 0, 4.0]]
    out = received_ligands(L, xy, r, kernel="truncated")
    assert_rel(out, naive_rl(L, xy, r, "truncated"), 1e-12)
    n = len(xy)
    assert out[400, 1] == pytest.approx(2.0 * 1e-3 / n, rel=1e-12)  # from 401 at d == r
    assert out[400, 2] == 0.0  # 402 is just beyond r
    dup = (xy[:, None, :] == xy[None, :, :]).all(-1).sum(1)
    assert dup.max() > 1


def test_normalisation_by_n_and_the_scale_factor():
    xy = uniform_layout(400, 200.0, 7)
    L = ligands(400, 3, 8)
    for kernel in ("gaussian", "truncated"):
        base = received_ligands(L, xy, 20.0, kernel=kernel)
        np.testing.assert_allclose(received_ligands(L, xy, 20.0, kernel=kernel, scale=2.5), 2.5 * base,
                                   rtol=1e-14)
        # 600 silent cells far away: the same sums divided by 1000 instead of 400
        far = np.vstack([xy, 1e9 + uniform_layout(600, 200.0, 9)])
        Lf = np.vstack([L, np.zeros((600, 3))])
        diluted = received_ligands(Lf, far, 20.0, kernel=kernel)
        np.testing.assert_allclose(diluted[:400], base * 400 / 1000, rtol=1e-12)
        assert not diluted[400:].any()


def test_min_expression_applies_to_ligands():
    xy = uniform_layout(50, 100.0, 1)
    L = ligands(50, 2, 2)
    noisy = L.copy()
    noisy[::3, 0] = -0.5
    noisy[1::3, 1] = 1e-10
    clean = np.where(noisy <= 1e-9, 0.0, noisy)
    np.testing.assert_array_equal(received_ligands(noisy, xy, 30.0), received_ligands(clean, xy, 30.0))


def test_per_ligand_radius():
    xy = uniform_layout(600, 400.0, 11)
    L = ligands(600, 4, 12)
    radii = np.array([50.0, 15.0, 50.0, 80.0])
    out, infos = received_ligands(L, xy, radii, return_info=True)
    assert sorted(i.radius for i in infos) == [15.0, 50.0, 80.0]
    for j, r in enumerate(radii):
        np.testing.assert_allclose(out[:, j], naive_rl(L[:, [j]], xy, r).ravel(), rtol=1e-12)
    same = received_ligands(L, xy, [50.0] * 4)
    np.testing.assert_array_equal(same, received_ligands(L, xy, 50.0))


@pytest.mark.parametrize("kernel", ["gaussian", "truncated"])
def test_sparse_ligands_equal_dense(kernel):
    xy = uniform_layout(500, 300.0, 13)
    L = ligands(500, 6, 14)
    dense = received_ligands(L, xy, 40.0, kernel=kernel)
    for fmt in (sp.csr_matrix, sp.csc_matrix, sp.csr_array):
        np.testing.assert_array_equal(received_ligands(fmt(L), xy, 40.0, kernel=kernel), dense)


def test_operator_is_reusable_and_accepts_one_column():
    xy = uniform_layout(300, 200.0, 15)
    L = ligands(300, 3, 16)
    op = ReceivedOperator(xy, 25.0, scale=2.0)
    assert op.strategy == "dense" and op.info.exact
    a = op.apply(L)
    np.testing.assert_allclose(op.apply(L[:, 1]), a[:, [1]], rtol=1e-14)
    np.testing.assert_array_equal(op.apply(L), a)
    assert_rel(a, naive_rl(L, xy, 25.0, s=2.0), 1e-12)
    zeros = op.apply(np.zeros((300, 2)))
    assert zeros.shape == (300, 2) and not zeros.any()


def test_three_column_coordinates_use_two():
    xy = uniform_layout(100, 50.0, 1)
    xyz = np.column_stack([xy, np.arange(100.0)])
    L = ligands(100, 2, 1)
    np.testing.assert_array_equal(received_ligands(L, xyz, 10.0), received_ligands(L, xy, 10.0))


# ---------------------------------------------------------------------------------------------
# determinism
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kernel", "method", "strategy"), [
    ("gaussian", "exact", "dense"), ("truncated", "exact", "sparse"), ("gaussian", "approx", "grid"),
    ("gaussian", "approx", "sparse"),
])
def test_deterministic(kernel, method, strategy):
    xy = uniform_layout(2000, 1000.0, 17)
    L = ligands(2000, 5, 18)
    r = 60.0 if strategy != "sparse" or kernel == "truncated" else 4.0
    a, info = received_ligands(L, xy, r, kernel=kernel, method=method, return_info=True)
    assert info[0].strategy == strategy
    b = received_ligands(L, xy, r, kernel=kernel, method=method)
    np.testing.assert_array_equal(a, b)
    c = received_ligands(L, xy, r, kernel=kernel, method=method, n_threads=1)
    d = received_ligands(L, xy, r, kernel=kernel, method=method, n_threads=2)
    np.testing.assert_array_equal(c, d)
    if info[0].exact:
        np.testing.assert_array_equal(a, c)


# ---------------------------------------------------------------------------------------------
# approximate vs exact: error ≤ 1e-3 · max|RL| per ligand
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["uniform", "blobs", "strip"])
@pytest.mark.parametrize("radius", [0.5, 8.0, 20.0, 40.0, 150.0, 5000.0])
@pytest.mark.parametrize("options", [{"method": "approx"}, {"grid_factor": 0.5}], ids=["approx", "gf0.5"])
def test_approximate_error_bound(layout, radius, options):
    """Tissue 1000 wide, ~22 between neighbours (uniform): radii below the spacing up to 5× the tissue.

    ``strip`` is a 1000 × 10 band (nearly one-dimensional)."""
    n = 2000
    xy = {"uniform": uniform_layout(n, 1000.0, 21), "blobs": blob_layout(n, 1000.0, 21),
          "strip": uniform_layout(n, 1000.0, 21) * [1.0, 0.01]}[layout]
    L = ligands(n, 4, 22)
    exact = received_ligands(L, xy, radius, method="exact")
    approx, infos = received_ligands(L, xy, radius, return_info=True, **options)
    info = infos[0]
    assert not info.exact and info.strategy in ("grid", "sparse")
    assert_rel(approx, exact, APPROX_TOL)
    # the logged estimate (exact sums at sample cells) never exceeds the true error
    true_err = (np.abs(approx - exact).max(axis=0) / np.abs(approx).max(axis=0)).max()
    assert 0.0 <= info.error_estimate <= true_err * (1 + 1e-9) + 1e-15


def test_both_approximate_strategies_are_exercised():
    xy = uniform_layout(2000, 1000.0, 21)
    small = ReceivedOperator(xy, 2.0, method="approx")
    large = ReceivedOperator(xy, 100.0, method="approx")
    assert small.strategy == "sparse" and not small.info.exact
    assert small.info.cutoff == pytest.approx(6.0 * 2.0)
    assert large.strategy == "grid" and large.info.grid_shape is not None


def test_coarse_grid_warns_that_the_bound_is_missed(caplog):
    xy = uniform_layout(1500, 1000.0, 23)
    L = ligands(1500, 2, 24)
    caplog.set_level(logging.INFO, logger=LOGGER)
    _, infos = received_ligands(L, xy, 100.0, grid_factor=1.5, return_info=True)
    assert infos[0].error_estimate > APPROX_TOL
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings and "exceeds 1e-03·max; lower ligand_grid_factor or use exact" in warnings[0].getMessage()


# ---------------------------------------------------------------------------------------------
# strategy choice and logging
# ---------------------------------------------------------------------------------------------


def test_auto_switches_at_approx_above_cells(caplog):
    xy = uniform_layout(1000, 1000.0, 25)
    L = ligands(1000, 2, 26)
    caplog.set_level(logging.INFO, logger=LOGGER)
    _, at = received_ligands(L, xy, 80.0, approx_above_cells=1000, return_info=True)
    assert at[0].strategy == "dense" and at[0].exact
    assert "received ligands: dense (exact), kernel=gaussian, r=80, N=1000" in caplog.text
    caplog.clear()
    _, above = received_ligands(L, xy, 80.0, approx_above_cells=999, return_info=True)
    assert above[0].strategy == "grid" and not above[0].exact
    assert "received ligands: grid (approximate)" in caplog.text
    assert "sampled max rel. error" in caplog.text
    caplog.clear()
    _, by_grid = received_ligands(L, xy, 80.0, grid_factor=0.5, return_info=True)
    assert not by_grid[0].exact and by_grid[0].grid_spacing == pytest.approx(40.0)
    caplog.clear()
    # the truncated kernel has compact support: always the exact sparse sum
    _, trunc = received_ligands(L, xy, 80.0, kernel="truncated", method="approx", return_info=True)
    assert trunc[0].strategy == "sparse" and trunc[0].exact
    assert "received ligands: sparse (exact), kernel=truncated" in caplog.text
    assert "pairs within 80" in caplog.text


def test_exact_method_ignores_the_threshold():
    xy = uniform_layout(300, 100.0, 1)
    op = ReceivedOperator(xy, 10.0, method="exact", approx_above_cells=10)
    assert op.strategy == "dense"


def test_sparse_matrix_matches_scipy_construction():
    """The counting-sort CSR equals scipy's COO → CSR with sorted indices."""
    rng = np.random.default_rng(27)
    xy = rng.random((3000, 2)) * 500.0
    xy[:200] = xy[200:400]  # duplicates
    r = 20.0
    op = ReceivedOperator(xy, r, kernel="truncated")
    csr = op._csr
    assert csr is not None and csr.has_sorted_indices
    pairs = cKDTree(xy).query_pairs(r, output_type="ndarray")
    i, j = pairs[:, 0], pairs[:, 1]
    sigma = r * SIGMA_FACTOR
    w = np.exp(-((xy[i] - xy[j]) ** 2).sum(1) / (2 * sigma**2))
    diag = np.arange(len(xy))
    ref = sp.csr_matrix((np.concatenate([w, w, np.ones(len(xy))]),
                         (np.concatenate([i, j, diag]), np.concatenate([j, i, diag]))), shape=csr.shape)
    ref.sort_indices()
    np.testing.assert_array_equal(csr.indptr, ref.indptr)
    np.testing.assert_array_equal(csr.indices, ref.indices)
    np.testing.assert_allclose(csr.data, ref.data, rtol=4e-15)  # exp and d² rounding: a few ulp
    assert op.info.n_pairs == ref.nnz
    # the kernel alone, on a hand-made pair list
    indptr, indices, data = np.empty(4, np.int64), np.empty(7, np.int64), np.empty(7)
    _kernels.pairs_to_csr(np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]]), np.array([[2, 0], [1, 0]]), 0.5,
                          indptr, indices, data)
    assert indptr.tolist() == [0, 3, 5, 7]
    assert indices.tolist() == [0, 1, 2, 0, 1, 0, 2]
    np.testing.assert_allclose(data, [1, math.exp(-0.5), math.exp(-2), math.exp(-0.5), 1, math.exp(-2), 1])


# ---------------------------------------------------------------------------------------------
# the cache shared by target genes
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kernel", "method"), [("gaussian", "exact"), ("truncated", "exact"),
                                                 ("gaussian", "approx")])
def test_cache_computes_each_radius_ligand_once(kernel, method):
    xy = uniform_layout(800, 600.0, 29)
    X = ligands(800, 5, 30)
    names = ["A", "B", "C", "D", "E"]
    calls: list[list[str]] = []

    def expression(genes: list[str]) -> np.ndarray:
        calls.append(list(genes))
        return X[:, [names.index(g) for g in genes]]

    cache = ReceivedLigandCache(xy, expression, kernel=kernel, method=method)
    a = cache.get(["A", "C", "A"], [50.0, 50.0, 50.0])
    assert cache.n_computed == 2 and a.shape == (800, 3)
    np.testing.assert_array_equal(a[:, 0], a[:, 2])
    b = cache.get(["B", "C", "E"], [50.0, 50.0, 20.0])
    assert cache.n_computed == 4  # C at 50 was cached
    cache.get(["A", "B", "C"], [50.0, 50.0, 50.0])
    cache.get(["E"], [20.0])
    assert cache.n_computed == 4
    assert calls == [["A", "C"], ["B"], ["E"]]
    assert cache.get([], []).shape == (800, 0)
    direct = received_ligands(X[:, [1, 2, 4]], xy, [50.0, 50.0, 20.0], kernel=kernel, method=method)
    np.testing.assert_allclose(b, direct, rtol=1e-13, atol=0)
    assert len(cache.infos()) == 2
    assert cache.operator(50.0) is cache.operator(50)


def test_cache_applies_min_expression():
    xy = uniform_layout(100, 100.0, 31)
    X = ligands(100, 1, 32) - 0.5
    cache = ReceivedLigandCache(xy, lambda genes: X)
    np.testing.assert_allclose(cache.get(["L"], [10.0]), received_ligands(X, xy, 10.0), rtol=1e-14)


# ---------------------------------------------------------------------------------------------
# bad arguments
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"kernel": "box"}, "kernel must be one of ('gaussian', 'truncated'), got 'box'"),
    ({"method": "fast"}, "method must be one of ('auto', 'exact', 'approx'), got 'fast'"),
    ({"radius": -1.0}, "radius must be a positive number, got -1.0"),
    ({"radius": float("nan")}, "radius must be a positive number, got nan"),
    ({"radius": [1.0, 2.0, 3.0]}, "radius must be a number or one value per ligand (2), got shape (3,)"),
])
def test_bad_arguments(kwargs, message):
    xy = uniform_layout(5, 10.0, 1)
    args = {"radius": 3.0, **kwargs}
    with pytest.raises(ValueError) as ei:
        received_ligands(np.ones((5, 2)), xy, **args)
    assert str(ei.value) == message


def test_bad_shapes_and_values():
    xy = uniform_layout(5, 10.0, 1)
    with pytest.raises(ValueError, match=r"ligands must have shape \(N, M\) with N = 5 cells, got \(4, 2\)"):
        received_ligands(np.ones((4, 2)), xy, 1.0)
    with pytest.raises(ValueError, match=r"coords must have shape \(N, 2\), got \(5,\)"):
        received_ligands(np.ones((5, 2)), xy[:, 0], 1.0)
    bad_xy = xy.copy()
    bad_xy[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"coords: 1 cells have NaN/inf coordinates \(first: cell 3\)"):
        received_ligands(np.ones((5, 2)), bad_xy, 1.0)
    bad_L = np.ones((5, 2))
    bad_L[2, 1] = np.inf
    bad_L[4, 0] = np.nan
    with pytest.raises(ValueError, match=r"ligands: 2 NaN/inf values \(first: cell 2, ligand column 1\)"):
        received_ligands(bad_L, xy, 1.0)

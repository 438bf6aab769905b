"""Sparse group lasso by FISTA (SPEC §5.1): the numerical ladder.

hand-computed proxes → closed forms (orthogonal design) → independent solvers (scikit-learn's Lasso,
skglm's GroupBCD) → KKT certificates → solver mechanics (backtracking, restart, cap) → the per-cluster
driver (R² gate, degenerate clusters, thread-count invariance, no NaN).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

from builders import clustered_regression
from spacetravlr_py.models import (
    L1,
    ClusterFits,
    FitStatus,
    GroupL2,
    SparseGroupL1L2,
    _kernels,
    fit_clusters,
    fit_sgl,
    fit_sparse_group_lasso,
    group_lambdas,
)
from spacetravlr_py.models.penalties import block_shrink, soft_threshold

TIGHT: dict[str, Any] = {"n_iter": 200_000, "tol": 1e-14}


# ---------------------------------------------------------------- helpers


def objective(X: np.ndarray, y: np.ndarray, coef: np.ndarray, intercept: float, pen: SparseGroupL1L2) -> float:
    """``(1/2n)‖Xw + b − y‖² + penalty(w)``, computed independently of the solver."""
    r = y - X @ coef - intercept
    return 0.5 * float(r @ r) / len(y) + pen.value(coef)


def random_problem(
    seed: int, n: int = 150, p: int = 40, scales: tuple[float, float] = (0.3, 3.0), correlated: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A regression with a few planted modulators, 4 feature groups, an offset and non-zero column means."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p)) * rng.uniform(*scales, p) + rng.uniform(-2, 2, p)
    if correlated:
        X[:, 1:] += 0.7 * X[:, :1]
    groups = rng.integers(0, 4, p)
    beta = np.zeros(p)
    support = rng.choice(p, max(1, p // 5), replace=False)
    beta[support] = rng.standard_normal(support.size)
    y = X @ beta + 0.5 * rng.standard_normal(n) + 1.5
    return X, y, groups


def skglm_fit(X: np.ndarray, y: np.ndarray, pen: SparseGroupL1L2) -> tuple[np.ndarray, float]:
    """The same problem by skglm: ``WeightedL1GroupL2`` (alpha = 1, group weights λ_g, feature weights
    l1) + ``QuadraticGroup`` + ``GroupBCD``, on data we centre ourselves (intercept ``ȳ − x̄·w``)."""
    from skglm import GeneralizedLinearEstimator
    from skglm.datafits import QuadraticGroup
    from skglm.penalties import WeightedL1GroupL2
    from skglm.solvers import GroupBCD

    xbar, ybar = X.mean(0), y.mean()
    p = X.shape[1]
    n_groups = pen.group_lam.shape[0]
    grp_indices = np.argsort(pen.feature_group, kind="stable").astype(np.int32)
    grp_ptr = np.concatenate([[0], np.cumsum(np.bincount(pen.feature_group, minlength=n_groups))]).astype(np.int32)
    sk_pen = WeightedL1GroupL2(
        alpha=1.0,
        weights_groups=pen.group_lam.copy(),
        weights_features=np.full(p, pen.l1),
        grp_ptr=grp_ptr,
        grp_indices=grp_indices,
    )
    solver = GroupBCD(tol=1e-12, max_iter=10_000, max_epochs=100_000, fit_intercept=False, ws_strategy="fixpoint")
    est = GeneralizedLinearEstimator(QuadraticGroup(grp_ptr, grp_indices), sk_pen, solver=solver)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # skglm's own convergence / numba notices are not under test
        est.fit(X - xbar, y - ybar)
    w = np.asarray(est.coef_[:p], dtype=np.float64)
    return w, float(ybar - xbar @ w)


def gradient(X: np.ndarray, y: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """∇ of the centred smooth part, ``X_cᵀ(X_c w − y_c)/n``."""
    Xc = X - X.mean(0)
    yc = y - y.mean()
    return Xc.T @ (Xc @ coef - yc) / len(y)


# ---------------------------------------------------------------- 1. hand-computed vectors


def test_soft_threshold_by_hand() -> None:
    np.testing.assert_array_equal(soft_threshold(np.array([3.0, -0.5, -2.0, 0.2, 1.0]), 1.0), [2, 0, -1, 0, 0])


def test_block_shrink_by_hand() -> None:
    u = np.array([3.0, 4.0, 0.5, -0.2, 7.0])
    fg = np.array([0, 0, 1, 1, 2])
    out = block_shrink(u, fg, np.array([2.5, 1.0, 0.0]))
    # group 0: ‖(3, 4)‖ = 5 → factor 1 − 2.5/5 = 0.5; group 1: ‖·‖ < 1 → 0; group 2: λ = 0 → kept
    np.testing.assert_allclose(out, [1.5, 2.0, 0.0, 0.0, 7.0], rtol=0, atol=1e-15)


def test_sparse_group_prox_by_hand() -> None:
    pen = SparseGroupL1L2(1.0, np.array([0, 0, 1, 1]), np.array([2.5, 1.0]))
    out = pen.prox(np.array([3.0, 4.0, 0.5, -0.2]), step=0.5)
    # soft-threshold by 0.5 → (2.5, 3.5, 0, 0); group 0 shrunk by 1 − 1.25/√18.5; group 1 is zero
    f = 1.0 - 1.25 / np.sqrt(2.5**2 + 3.5**2)
    np.testing.assert_allclose(out, [2.5 * f, 3.5 * f, 0.0, 0.0], rtol=1e-15, atol=0)
    assert pen.value(np.array([3.0, 4.0, 0.0, -2.0])) == pytest.approx(1.0 * 9 + 2.5 * 5 + 1.0 * 2)


def test_numba_prox_matches_numpy_prox() -> None:
    rng = np.random.default_rng(3)
    fg = rng.integers(0, 4, 30).astype(np.int64)
    lam = np.array([0.4, 0.0, 2.0, 1.0])
    pen = SparseGroupL1L2(0.3, fg, lam)
    for _ in range(20):
        z = rng.standard_normal(30) * 2
        step = float(rng.uniform(0.1, 2))
        out = np.empty(30)
        _kernels.prox_sparse_group(z, step * pen.l1, fg, step * lam, np.empty(4), out)
        np.testing.assert_allclose(out, pen.prox(z, step), rtol=1e-14, atol=1e-15)


def test_group_lambdas_scalings() -> None:
    groups = np.array([0, 0, 0, 0, 1, 3, 3])  # group 2 is empty
    np.testing.assert_allclose(group_lambdas(groups, 0.5, "sqrt_group_size"), [1.0, 0.5, 0.0, 0.5 * np.sqrt(2)])
    np.testing.assert_allclose(
        group_lambdas(groups, 0.5, "inverse_sqrt_group_size"), [0.25, 0.5, 0.0, 0.5 / np.sqrt(2)]
    )
    np.testing.assert_allclose(group_lambdas(groups, 0.5, "none"), [0.5, 0.5, 0.0, 0.5])
    with pytest.raises(ValueError, match="group_reg_scaling"):
        group_lambdas(groups, 0.5, "sqrt")


def test_penalty_special_cases_are_one_family() -> None:
    l1 = L1(0.7, 5)
    assert l1.l1 == 0.7 and np.all(l1.group_lam == 0)
    gl = GroupL2.from_group_reg([0, 0, 1, 1, 1], 2.0)
    assert gl.l1 == 0.0
    np.testing.assert_allclose(gl.group_lam, [2 * np.sqrt(2), 2 * np.sqrt(3)])
    w = np.array([1.0, -2.0, 0.0, 3.0, 4.0])
    assert l1.value(w) == pytest.approx(0.7 * 10)
    assert gl.value(w) == pytest.approx(2 * np.sqrt(2) * np.sqrt(5) + 2 * np.sqrt(3) * 5)


# ---------------------------------------------------------------- 2. closed forms


@pytest.mark.parametrize("l1", [0.0, 0.05])
def test_orthogonal_design_closed_form(l1: float) -> None:
    """With ``X_cᵀX_c/n = I`` the problem separates: ``w = prox(c, 1)``, ``c = X_cᵀy_c/n``."""
    rng = np.random.default_rng(11)
    n, p = 120, 12
    A = rng.standard_normal((n, p))
    Q, _ = np.linalg.qr(A - A.mean(0))
    X = np.sqrt(n) * Q + rng.uniform(-3, 3, p)  # centred part orthonormal; offsets test the intercept
    groups = np.repeat([0, 1, 2, 3], 3)
    y = X[:, :4] @ [1.0, -1.0, 0.5, 0.2] + 0.3 * rng.standard_normal(n) + 2.0  # groups 2, 3: noise only
    pen = SparseGroupL1L2.from_groups(groups, l1, 0.08)
    Xc = X - X.mean(0)
    np.testing.assert_allclose(Xc.T @ Xc / n, np.eye(p), atol=1e-12)
    expected = pen.prox(Xc.T @ (y - y.mean()) / n, 1.0)
    assert np.count_nonzero(expected) < p  # the penalty bites
    res = fit_sgl(X, y, pen, **TIGHT)
    assert res.converged
    np.testing.assert_allclose(res.coef, expected, rtol=0, atol=1e-10)
    assert res.intercept == pytest.approx(y.mean() - X.mean(0) @ expected, abs=1e-10)


# ---------------------------------------------------------------- 3. independent solvers


@pytest.mark.parametrize(
    ("seed", "alpha", "scales"), [(0, 0.01, (0.3, 3.0)), (1, 0.1, (0.3, 3.0)), (2, 0.03, (0.01, 100.0))]
)
def test_lasso_matches_sklearn(seed: int, alpha: float, scales: tuple[float, float]) -> None:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import Lasso

    X, y, _ = random_problem(seed, n=200, p=30, scales=scales)
    pen = L1(alpha, X.shape[1])
    res = fit_sgl(X, y, pen, **TIGHT)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk = Lasso(alpha=alpha, fit_intercept=True, tol=1e-14, max_iter=1_000_000).fit(X, y)
    assert res.converged
    np.testing.assert_allclose(res.coef, sk.coef_, rtol=0, atol=1e-6)
    assert res.intercept == pytest.approx(sk.intercept_, abs=1e-6)
    ours = objective(X, y, res.coef, res.intercept, pen)
    theirs = objective(X, y, sk.coef_, float(sk.intercept_), pen)
    assert ours == pytest.approx(res.objective, rel=1e-12)
    assert abs(ours - theirs) <= 1e-8 * abs(theirs)


def test_group_lasso_matches_skglm() -> None:
    X, y, groups = random_problem(4, n=180, p=36, correlated=True)
    pen = GroupL2.from_group_reg(groups, 0.05)
    res = fit_sgl(X, y, pen, **TIGHT)
    w, b = skglm_fit(X, y, pen)
    theirs = objective(X, y, w, b, pen)
    assert np.any(res.coef == 0) and np.any(res.coef != 0)
    assert abs(res.objective - theirs) <= 1e-8 * abs(theirs)
    np.testing.assert_allclose(res.coef, w, atol=1e-6)


@pytest.mark.parametrize(
    ("seed", "n", "p", "l1", "group_reg", "scaling"),
    [
        (10, 150, 40, 0.02, 0.02, "sqrt_group_size"),
        (11, 60, 80, 0.01, 0.05, "sqrt_group_size"),  # p > n
        (12, 300, 25, 0.1, 0.01, "inverse_sqrt_group_size"),
        (13, 100, 50, 0.003, 0.1, "none"),
        (14, 250, 60, 0.05, 0.2, "sqrt_group_size"),
    ],
)
def test_sparse_group_lasso_matches_skglm(seed: int, n: int, p: int, l1: float, group_reg: float, scaling: str) -> None:
    X, y, groups = random_problem(seed, n=n, p=p, correlated=seed % 2 == 1)
    res = fit_sparse_group_lasso(X, y, groups, l1_reg=l1, group_reg=group_reg, group_reg_scaling=scaling, **TIGHT)
    pen = SparseGroupL1L2.from_groups(groups, l1, group_reg, scaling)
    w, b = skglm_fit(X, y, pen)
    ours = objective(X, y, res.coef, res.intercept, pen)
    theirs = objective(X, y, w, b, pen)
    assert res.converged
    assert ours == pytest.approx(res.objective, rel=1e-12)
    assert abs(ours - theirs) <= 1e-6 * abs(theirs)


# ---------------------------------------------------------------- 4. optimality certificates


@pytest.mark.parametrize("seed", [20, 21, 22])
def test_kkt_conditions_hold(seed: int) -> None:
    X, y, groups = random_problem(seed, n=120, p=45, correlated=True)
    pen = SparseGroupL1L2.from_groups(groups, 0.02, 0.04)
    res = fit_sgl(X, y, pen, **TIGHT)
    grad = gradient(X, y, res.coef)
    viol = pen.kkt_violation(res.coef, grad)
    assert viol.max() <= 1e-6
    # the certificate discriminates: a perturbed point violates it
    bad = res.coef.copy()
    bad[np.argmax(np.abs(bad))] *= 1.1
    assert pen.kkt_violation(bad, gradient(X, y, bad)).max() > 1e-4
    # spelled out: zero groups satisfy ‖S(−∇_g, l1)‖ ≤ λ_g, and the nonzero coordinates are stationary
    fg = pen.feature_group
    for g in range(pen.group_lam.shape[0]):
        in_g = fg == g
        wg = res.coef[in_g]
        if not in_g.any():
            continue
        if np.all(wg == 0):
            assert np.linalg.norm(soft_threshold(-grad[in_g], pen.l1)) <= pen.group_lam[g] + 1e-6
        else:
            nz = wg != 0
            station = grad[in_g][nz] + pen.l1 * np.sign(wg[nz]) + pen.group_lam[g] * wg[nz] / np.linalg.norm(wg)
            assert np.abs(station).max() <= 1e-6


def test_large_penalty_gives_exact_zero() -> None:
    X, y, groups = random_problem(5)
    c = np.abs(gradient(X, y, np.zeros(X.shape[1])))
    res = fit_sparse_group_lasso(X, y, groups, l1_reg=1.01 * c.max(), group_reg=0.0, **TIGHT)
    assert np.all(res.coef == 0)
    assert res.intercept == pytest.approx(y.mean())
    assert res.r2 == pytest.approx(0.0, abs=1e-12)


# ---------------------------------------------------------------- 5. solver mechanics


def test_backtracking_recovers_from_a_tiny_start() -> None:
    X, y, groups = random_problem(30, n=200, p=30)
    pen = SparseGroupL1L2.from_groups(groups, 0.01, 0.02)
    ref = fit_sgl(X, y, pen, **TIGHT)
    lam_max = np.linalg.eigvalsh(np.cov(X.T, bias=True)).max()
    res = fit_sgl(X, y, pen, lipschitz_init=1e-6 * lam_max, **TIGHT)
    assert res.n_backtracks >= 10
    # doubling stops within a factor 2 of the curvature a step needed, never above 2·λ_max
    assert 1e-6 * lam_max < res.lipschitz <= 2 * lam_max
    assert res.converged
    assert res.objective == pytest.approx(ref.objective, rel=1e-12)
    np.testing.assert_allclose(res.coef, ref.coef, atol=1e-8)
    assert ref.lipschitz <= 2 * lam_max


def test_adaptive_restart_fires_on_badly_scaled_features() -> None:
    X, y, groups = random_problem(31, n=200, p=30, scales=(0.01, 100.0), correlated=True)
    pen = SparseGroupL1L2.from_groups(groups, 0.01, 0.01)
    res = fit_sgl(X, y, pen, **TIGHT)
    assert res.converged and res.n_restarts > 0
    w, b = skglm_fit(X, y, pen)
    theirs = objective(X, y, w, b, pen)
    assert abs(res.objective - theirs) <= 1e-6 * abs(theirs)


def test_iteration_cap_and_convergence_flag() -> None:
    X, y, groups = random_problem(32, correlated=True)
    capped = fit_sparse_group_lasso(X, y, groups, l1_reg=0.01, group_reg=0.01, n_iter=3, tol=1e-12)
    assert capped.n_iter == 3 and not capped.converged
    loose = fit_sparse_group_lasso(X, y, groups, l1_reg=0.01, group_reg=0.01, n_iter=500, tol=1e-4)
    assert loose.converged and 1 <= loose.n_iter < 500
    tight = fit_sparse_group_lasso(X, y, groups, l1_reg=0.01, group_reg=0.01, **TIGHT)
    assert tight.n_iter > loose.n_iter
    assert tight.objective <= loose.objective <= capped.objective + 1e-12
    # reported scores are the in-sample definitions
    r = y - X @ tight.coef - tight.intercept
    assert tight.mse == pytest.approx(np.mean(r**2), rel=1e-10)
    assert tight.r2 == pytest.approx(1 - np.sum(r**2) / np.sum((y - y.mean()) ** 2), rel=1e-10)


def test_fit_validates_inputs() -> None:
    X, y, groups = random_problem(33, n=20, p=5)
    kw: dict[str, Any] = {"l1_reg": 0.1, "group_reg": 0.1, "n_iter": 10, "tol": 1e-4}
    with pytest.raises(ValueError, match="groups"):
        fit_sparse_group_lasso(X, y, groups[:-1], **kw)
    with pytest.raises(ValueError, match="y must"):
        fit_sparse_group_lasso(X, y[:-1], groups, **kw)
    with pytest.raises(ValueError, match="finite"):
        fit_sparse_group_lasso(np.where(X > 1, np.nan, X), y, groups, **kw)
    with pytest.raises(ValueError, match="n_iter"):
        fit_sparse_group_lasso(X, y, groups, **{**kw, "n_iter": 0})
    with pytest.raises(ValueError, match="l1"):
        fit_sparse_group_lasso(X, y, groups, **{**kw, "l1_reg": -1.0})


# ---------------------------------------------------------------- 6. per-cluster driver


CLUSTER_KW: dict[str, Any] = {"l1_reg": 0.01, "group_reg": 0.01, "n_iter": 500, "tol": 1e-6, "score_threshold": 0.2}


def _assert_all_finite(fits: ClusterFits) -> None:
    for name in ("coef", "intercept", "r2", "mse", "lipschitz", "objective"):
        assert np.all(np.isfinite(getattr(fits, name))), name


def test_fit_clusters_gate_and_degenerate_clusters() -> None:
    X, y, clusters, groups = clustered_regression()
    fits = fit_clusters(X, y, clusters, groups, n_clusters=7, n_threads=1, **CLUSTER_KW)
    assert fits.coef.shape == (7, X.shape[1])
    np.testing.assert_array_equal(fits.n_cells, [120, 90, 150, 400, 40, 1, 0])
    expected = [FitStatus.FITTED] * 3 + [FitStatus.LOW_SCORE, FitStatus.LOW_SCORE] + [FitStatus.TOO_FEW_CELLS] * 2
    np.testing.assert_array_equal(fits.status, expected)
    np.testing.assert_array_equal(fits.gated, [False] * 3 + [True] * 4)
    assert np.all(fits.r2[:3] > 0.9)
    assert 0 <= fits.r2[3] < 0.2
    assert fits.r2[4] == 0.0  # constant y: R² defined as 0
    assert np.all(fits.coef[3:] == 0) and np.all(fits.intercept[3:] == 0)
    assert np.all(fits.n_iter[5:] == 0) and not fits.converged[5:].any()
    _assert_all_finite(fits)
    # each kept cluster is exactly the single fit on its own cells (same kernel, same row order)
    for k in range(3):
        sel = clusters == k
        single_kw = {k_: v for k_, v in CLUSTER_KW.items() if k_ != "score_threshold"}
        one = fit_sparse_group_lasso(X[sel], y[sel], groups, **single_kw)
        np.testing.assert_array_equal(fits.coef[k], one.coef)
        assert fits.intercept[k] == one.intercept and fits.r2[k] == one.r2
        assert fits.n_iter[k] == one.n_iter and fits.converged[k] == one.converged


def test_fit_clusters_threshold_is_inclusive_and_configurable() -> None:
    X, y, clusters, groups = clustered_regression()
    kw: dict[str, Any] = {**CLUSTER_KW, "score_threshold": -np.inf}
    fits = fit_clusters(X, y, clusters, groups, n_threads=1, **kw)
    # nothing is gated by score; the constant-y cluster keeps its (exactly zero) betas and its mean
    np.testing.assert_array_equal(fits.status[:5], [FitStatus.FITTED] * 5)
    assert np.all(fits.coef[4] == 0) and fits.intercept[4] == 0.1
    r2 = fits.r2[0]
    at = fit_clusters(X, y, clusters, groups, n_threads=1, **{**CLUSTER_KW, "score_threshold": r2})
    assert at.status[0] == FitStatus.FITTED


def test_fit_clusters_nonfinite_inputs_are_gated_not_propagated() -> None:
    X, y, clusters, groups = clustered_regression()
    X = X.copy()
    y = y.copy()
    X[np.flatnonzero(clusters == 1)[3], 5] = np.nan
    y[np.flatnonzero(clusters == 2)[7]] = np.inf
    fits = fit_clusters(X, y, clusters, groups, n_threads=1, **CLUSTER_KW)
    assert fits.status[0] == FitStatus.FITTED
    assert fits.status[1] == FitStatus.NONFINITE and fits.status[2] == FitStatus.NONFINITE
    assert np.all(fits.coef[1:3] == 0)
    _assert_all_finite(fits)


@pytest.mark.parametrize("n_threads", [2, 3, None])
def test_fit_clusters_bit_identical_across_thread_counts(n_threads: int | None) -> None:
    X, y, clusters, groups = clustered_regression(41)
    serial = fit_clusters(X, y, clusters, groups, n_clusters=7, n_threads=1, **CLUSTER_KW)
    par = fit_clusters(X, y, clusters, groups, n_clusters=7, n_threads=n_threads, **CLUSTER_KW)
    for name in ClusterFits.__dataclass_fields__:
        assert np.array_equal(getattr(serial, name), getattr(par, name)), name


def test_fit_clusters_edge_shapes_and_validation() -> None:
    rng = np.random.default_rng(50)
    X = rng.standard_normal((30, 0))
    y = rng.standard_normal(30)
    clusters = np.repeat([0, 1], 15)
    fits = fit_clusters(X, y, clusters, np.zeros(0, dtype=int), n_threads=2, **CLUSTER_KW)
    assert fits.coef.shape == (2, 0) and np.all(fits.gated)  # no modulators: R² = 0 → gated
    _assert_all_finite(fits)
    X = rng.standard_normal((30, 4))
    with pytest.raises(ValueError, match="n_clusters"):
        fit_clusters(X, y, clusters, [0, 0, 1, 1], n_clusters=1, **CLUSTER_KW)
    with pytest.raises(ValueError, match=">= 0"):
        fit_clusters(X, y, clusters - 1, [0, 0, 1, 1], **CLUSTER_KW)
    with pytest.raises(ValueError, match="integer"):
        fit_clusters(X, y, clusters.astype(float), [0, 0, 1, 1], **CLUSTER_KW)
    with pytest.raises(ValueError, match="clusters must have shape"):
        fit_clusters(X, y, clusters[:-1], [0, 0, 1, 1], **CLUSTER_KW)


@pytest.mark.parametrize("with_grams", [True, False])
def test_split_design_equals_assembled_design(with_grams):
    """fit_clusters_split (own columns + shared columns with precomputed per-cluster Gram blocks) solves
    the same problems as fit_clusters on the assembled design, bit-identically for any thread count."""
    from spacetravlr_py.models import SharedColumns, fit_clusters_split

    rng = np.random.default_rng(11)
    n, n_own, n_shared, k = 900, 9, 40, 3
    XS = rng.random((n, n_own))
    XL = rng.random((n, n_shared)) * 0.05
    clusters = rng.integers(0, k, n)
    sub = np.sort(rng.choice(n_shared, 30, replace=False))
    kind = np.r_[np.zeros(4), np.ones(30), np.zeros(5)].astype(np.int64)
    col = np.r_[np.arange(4), sub, np.arange(4, 9)].astype(np.int64)
    X = np.column_stack([XS[:, :4], XL[:, sub], XS[:, 4:]])
    groups = np.r_[np.zeros(4), np.ones(30), 2 * np.ones(5)].astype(np.int64)
    y = X @ rng.normal(size=X.shape[1]) + 0.05 * rng.normal(size=n)
    kw = dict(l1_reg=1e-3, group_reg=1e-3, n_iter=3000, tol=1e-10, score_threshold=0.1, n_clusters=k)
    ref = fit_clusters(X, y, clusters, groups, **kw)
    shared = SharedColumns.build(XL, clusters, k, max_bytes=1e12 if with_grams else 0)
    assert shared.has_grams is with_grams
    one = fit_clusters_split(XS, shared, kind, col, y, clusters, groups, n_threads=1, **kw)
    two = fit_clusters_split(XS, shared, kind, col, y, clusters, groups, n_threads=2, **kw)
    np.testing.assert_allclose(one.coef, ref.coef, rtol=0, atol=1e-9)
    np.testing.assert_allclose(one.objective, ref.objective, rtol=1e-12)
    np.testing.assert_array_equal(one.status, ref.status)
    assert np.array_equal(one.coef, two.coef) and np.array_equal(one.intercept, two.intercept)

"""Transition field (velocyto colΔCor): probabilities over k = 150 embedding neighbours, per-cell vectors.

``transition_vs_reference``
    At a size the reference can run (10k cells × 2,000 genes): ours ``transition_probabilities`` +
    ``cell_vectors`` under python-reference semantics (self among the k neighbours, NaN correlation → 1,
    null removal, unit directions) vs the reference's ``Cartography.compute_transition_probabilities`` +
    ``project_probabilities`` (its ``t_core_s`` + ``t_project_s``).
``transition_vs_numpy``
    10k cells × 2,000 genes, k = 150, seed semantics (self excluded, undefined correlation = 0, null
    removal, plain directions): ours ``transition_probabilities`` + ``cell_vectors`` vs
    :func:`numpy_transition`, a straightforward NumPy implementation of the same formula (k-d tree
    neighbours, correlations of ``X_j − X_i`` with ``Δ_i`` by broadcasting over chunks of cells).
``transition_100k``
    100k cells × 2,000 genes, k = 150, ours only (seed semantics, the whole field including the grid):
    the reference builds dense N×N matrices (P, correlations and a (2, N, N) unit-vector tensor: ~320 GB).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from . import workloads as wl
from .common import Ctx, RefSide, diff_stats, row, timed_call
from .timing import compile_and_peak, interleave

K = 150


def _load(n: int, g: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, Any]:
    d = wl.transition_inputs(n, g)
    return np.load(d / "X.npy"), np.load(d / "D.npy"), np.load(d / "E.npy"), d


def field_runner(X: np.ndarray, D: np.ndarray, E: np.ndarray, *, compat: bool, k: int = K) -> Any:
    """Ours: ``transition_probabilities`` + ``cell_vectors`` (Δ not rounded), with python-reference
    semantics (self among the k neighbours, NaN correlation → 1, unit directions) or seed semantics."""
    from spacetravlr_py.transitions import cell_vectors, transition_probabilities

    def run() -> tuple[Any, np.ndarray]:
        g = transition_probabilities(X, D, E, n_neighbors=k, remove_null=True, reference_compat=compat,
                                     round_decimals=None)
        return g, cell_vectors(g, E, unit_directions=compat)

    return run


def numpy_transition(X: np.ndarray, D: np.ndarray, E: np.ndarray, k: int = K, temperature: float = 0.05,
                     chunk: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The colΔCor field in plain NumPy: ``(neighbours, P, V)`` with ``P`` as (N, k) rows over ``neighbours``.

    For each cell i and each of its k nearest embedding neighbours j (self excluded):
    ``c_ij = pearson(X_j − X_i, Δ_i)`` (0 where undefined), ``P_ij ∝ exp(c_ij / T)`` minus the same
    with Δ = 0 (uniform 1/k), and ``V_i = Σ_j P_ij (E_j − E_i)``.
    """
    from scipy.spatial import cKDTree

    n = X.shape[0]
    k = min(k, n - 1)
    _, nb = cKDTree(E).query(E, k=k + 1)
    nb = nb[:, 1:]  # drop self (distinct points: it comes first)
    Dc = D - D.mean(axis=1, keepdims=True)
    d_norm = np.linalg.norm(Dc, axis=1)
    corr = np.empty((n, k))
    for i0 in range(0, n, chunk):
        i1 = min(n, i0 + chunk)
        diff = X[nb[i0:i1]] - X[i0:i1, None, :]  # (c, k, G)
        diff -= diff.mean(axis=2, keepdims=True)
        num = np.einsum("ckg,cg->ck", diff, Dc[i0:i1])
        den = np.linalg.norm(diff, axis=2) * d_norm[i0:i1, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            c = num / den
        corr[i0:i1] = np.where(np.isfinite(c), c, 0.0)
    W = np.exp(corr / temperature)
    P = W / W.sum(axis=1, keepdims=True) - 1.0 / k
    V = np.einsum("ik,ikd->id", P, E[nb] - E[:, None, :])
    return nb, P, V


def numpy_factory(n: int, g: int) -> Any:
    X, D, E, _ = _load(n, g)
    return lambda: numpy_transition(X, D, E)


def ours_factory(n: int, g: int, compat: bool) -> Any:
    X, D, E, _ = _load(n, g)
    return field_runner(X, D, E, compat=compat)


def run_vs_numpy(ctx: Ctx) -> list[dict[str, Any]]:
    n, g = (2000, 300) if ctx.quick else (10_000, 2000)
    X, D, E, _ = _load(n, g)
    ctx.log(f"transition vs NumPy: {n} cells × {g} genes, k = {K}")
    runner = field_runner(X, D, E, compat=False)
    holder: dict[str, Any] = {}

    def ours() -> None:
        holder["ours"] = runner()

    def numpy_side() -> None:
        holder["numpy"] = numpy_transition(X, D, E)

    res = interleave({"ours": timed_call(ours), "numpy": timed_call(numpy_side)}, repeats=ctx.repeats,
                     log=ctx.log)
    graph, V = holder["ours"]
    nb, P_np, V_np = holder["numpy"]
    # compare P entry by entry through each cell's neighbour ids (the two sides may order ties differently)
    P_ours = graph.to_csr("probabilities")
    P_np_csr = sp.csr_matrix((P_np.ravel(), nb.ravel(), np.arange(0, nb.size + 1, nb.shape[1])), shape=(n, n))
    agreement: dict[str, Any] = {"P": {"max_abs_diff": float(abs(P_ours - P_np_csr).max())}, "V": diff_stats(V, V_np)}
    agreement["max_abs_diff"] = max(agreement["P"]["max_abs_diff"], agreement["V"]["max_abs_diff"])
    o = {"label": "ours: transition_probabilities + cell_vectors (seed semantics, sparse (N, k))", **res["ours"]}
    base = {"label": "NumPy: k-d tree neighbours + chunked broadcasting (numpy_transition)", **res["numpy"]}
    if ctx.measure_memory:
        o.update(compile_and_peak("benchmarks.bench_transition:ours_factory", {"n": n, "g": g, "compat": False}))
        base.update(compile_and_peak("benchmarks.bench_transition:numpy_factory", {"n": n, "g": g},
                                     measure_compile=False))
    return [row("transition_vs_numpy", f"transition probabilities + vectors, {n:,} cells × {g:,} genes, k = {K}",
                ours=o, baseline=base, size={"cells": n, "genes": g, "k": K}, agreement=agreement,
                notes="seed semantics on both sides (self excluded, undefined correlation = 0, null removal, "
                      "E_j − E_i directions); Δ not rounded")]


def field_factory(n: int, g: int) -> Any:
    from spacetravlr_py.transitions import transition_field

    X, D, E, _ = _load(n, g)
    return lambda: transition_field(X, D, E, n_neighbors=K)


def run_vs_reference(ctx: Ctx) -> list[dict[str, Any]]:
    n, g = (2000, 300) if ctx.quick else (10_000, 2000)
    X, D, E, d = _load(n, g)
    ctx.log(f"transition vs reference: {n} cells × {g} genes, k = {K}")
    runner = field_runner(X, D, E, compat=True)
    holder: dict[str, Any] = {}

    def ours() -> None:
        holder["res"] = runner()

    sides: dict[str, Any] = {"ours": timed_call(ours)}
    session = ref_side = None
    out = d / "ref_out"
    if ctx.reference_ok:
        session = ctx.open_session()

        class Side(RefSide):
            def __call__(self) -> float:
                rec = self.session.run(*self.args)
                self.records.append(rec)
                return float(rec["t_core_s"]) + float(rec["t_project_s"])

        ref_side = Side(session, ["transition", "--expr", d / "X.npy", "--delta", d / "D.npy", "--embedding",
                                  d / "E.npy", "--n-neighbors", K, "--mode", "cartography", "--expr-dtype", "float64",
                                  "--p-format", "npz", "--out-dir", out])
        sides["reference"] = ref_side
    try:
        res = interleave(sides, repeats=ctx.repeats, warmups={"reference": 0},
                         max_repeats={"reference": ctx.extras.get("max_ref_repeats", ctx.repeats)}, log=ctx.log)
    finally:
        if session is not None:
            ctx.release(session)
    o = {"label": "ours: transition_probabilities + cell_vectors (python-reference semantics, sparse (N, k))",
         **res["ours"]}
    if ctx.measure_memory:
        o.update(compile_and_peak("benchmarks.bench_transition:ours_factory", {"n": n, "g": g, "compat": True}))
    size = {"cells": n, "genes": g, "k": K}
    workload = f"transition probabilities + vectors, {n:,} cells × {g:,} genes, k = {K}"
    if ref_side is None:
        return [row("transition_vs_reference", workload, ours=o, baseline=None, size=size,
                    notes=f"reference not run: {ctx.reference_reason}")]
    graph, V = holder["res"]
    P_ref = sp.load_npz(out / "P.npz").toarray()
    V_ref = np.load(out / "V.npy")
    P_ours = graph.to_csr("probabilities").toarray()
    agreement: dict[str, Any] = {"P": diff_stats(P_ours, P_ref), "V": diff_stats(V, V_ref)}
    agreement["max_abs_diff"] = max(agreement["P"]["max_abs_diff"], agreement["V"]["max_abs_diff"])
    base = {"label": "reference Cartography.compute_transition_probabilities + project_probabilities",
            **ref_side.summary(res["reference"])}
    base["timing"] = "harness t_core_s + t_project_s (P and projection; imports and file I/O excluded)"
    return [row("transition_vs_reference", workload, ours=o, baseline=base, size=size, agreement=agreement,
                notes="Δ not rounded by either side (the harness does not round; cartography's field would)")]


def run_100k(ctx: Ctx) -> list[dict[str, Any]]:
    from spacetravlr_py.transitions import transition_field

    n, g = (20_000, 500) if ctx.quick else (100_000, 2000)
    X, D, E, _ = _load(n, g)
    ctx.log(f"transition field: {n} cells × {g} genes, k = {K}")
    res = interleave({"ours": timed_call(lambda: transition_field(X, D, E, n_neighbors=K))},
                     repeats=ctx.repeats, log=ctx.log)
    o = {"label": "ours: transition_field (kNN, colΔCor, P, vectors, grid; seed semantics)", **res["ours"]}
    if ctx.measure_memory:
        o.update(compile_and_peak("benchmarks.bench_transition:field_factory", {"n": n, "g": g}))
    r = row("transition_field", f"transition field, {n:,} cells × {g:,} genes, k = {K}", ours=o, baseline=None,
            size={"cells": n, "genes": g, "k": K}, goal="≤ 20 s; no dense N×N" if not ctx.quick else "",
            notes=f"reference infeasible: dense N×N P, correlations and unit vectors ({4 * n * n * 8 / 1e9:.0f} GB)")
    if not ctx.quick:
        r["goal_met"] = bool(o["median_s"] <= 20.0)
    return [r]



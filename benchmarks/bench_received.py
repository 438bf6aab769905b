"""Received ligands ``RL = (s/N)·K·L``: exact (ours vs NumPy and vs the reference) and approximate.

Rows
----
``received_exact``
    10k cells × 100 ligands, r = 200 (≈ 126 cells within r): ours Gaussian exact vs a blocked NumPy
    implementation; ours truncated (python-reference kernel) vs the reference's
    ``compute_radius_weights`` and vs NumPy.
``received_approx``
    100k cells × 100 ligands, Gaussian, approximate (B-spline grid + FFT) vs exact NumPy; error measured
    against exact sums at sampled cells. The reference cannot run this size (its kernel weights are
    N Python arrays of N floats: 80 GB).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import workloads as wl
from .common import Ctx, RefSide, diff_stats, row, timed_call
from .timing import compile_and_peak, interleave

RADIUS = 200.0


# --------------------------------------------------------------------------------------------------
# the NumPy baseline
# --------------------------------------------------------------------------------------------------


def numpy_received(L: np.ndarray, xy: np.ndarray, radius: float, kernel: str = "gaussian", scale: float = 1.0,
                   block: int = 512, rows: np.ndarray | None = None) -> np.ndarray:
    """Straightforward NumPy: kernel block by block from coordinate differences, then ``K_block @ L``.

    ``rows``: compute only these cells (for error checks at sampled cells).
    """
    L = np.where(L <= 1e-9, 0.0, np.asarray(L, dtype=np.float64))
    n = xy.shape[0]
    sigma = radius if kernel == "gaussian" else radius / math.sqrt(-2.0 * math.log(1e-3))
    inv = 1.0 / (2.0 * sigma * sigma)
    targets = np.arange(n) if rows is None else np.asarray(rows)
    out = np.empty((targets.size, L.shape[1]))
    x, y = xy[:, 0], xy[:, 1]
    for s in range(0, targets.size, block):
        t = targets[s:s + block]
        d2 = (x[t, None] - x[None, :]) ** 2 + (y[t, None] - y[None, :]) ** 2
        K = np.exp(-d2 * inv)
        if kernel == "truncated":
            K[d2 > radius * radius] = 0.0
        out[s:s + block] = K @ L
    return out * (scale / n)


def _load(n: int, l: int) -> tuple[np.ndarray, np.ndarray, Any]:
    d = wl.received_inputs(n, l)
    return np.load(d / "xy.npy"), np.load(d / "lig.npy"), d


# --------------------------------------------------------------------------------------------------
# factories for fresh-process measurements (benchmarks.worker)
# --------------------------------------------------------------------------------------------------


def ours_factory(n: int, l: int, kernel: str = "gaussian", method: str = "exact") -> Any:
    from spacetravlr_py.spatial.received import received_ligands

    xy, L, _ = _load(n, l)
    return lambda: received_ligands(L, xy, RADIUS, kernel=kernel, method=method)


def numpy_factory(n: int, l: int, kernel: str = "gaussian") -> Any:
    xy, L, _ = _load(n, l)
    return lambda: numpy_received(L, xy, RADIUS, kernel)


# --------------------------------------------------------------------------------------------------
# rows
# --------------------------------------------------------------------------------------------------


def _peak(ctx: Ctx, factory: str, params: dict[str, Any], *, compile_: bool = True, calls: int = 2) -> dict[str, Any]:
    if not ctx.measure_memory:
        return {}
    from .timing import worker

    if calls == 1:
        w = worker(factory, params, calls=1)
        return {"peak_rss_mib": round(w["maxrss_kb"] / 1024, 1), "setup_rss_mib": round(w["maxrss_setup_kb"] / 1024, 1),
                "memory_method": "ru_maxrss of a fresh subprocess running the workload once; includes the "
                                 "interpreter and imports"}
    return compile_and_peak(factory, params, measure_compile=compile_)


def run_exact(ctx: Ctx) -> list[dict[str, Any]]:
    from spacetravlr_py.spatial.received import received_ligands

    n, l = (2000, 20) if ctx.quick else (10_000, 100)
    xy, L, d = _load(n, l)
    ctx.log(f"received exact: {n} cells × {l} ligands, r = {RADIUS:g}")
    out: dict[str, np.ndarray] = {}

    def keep(key: str, f: Any) -> Any:
        def g() -> None:
            out[key] = f()
        return g

    sides = {
        "ours_gauss": timed_call(keep("ours_gauss", lambda: received_ligands(L, xy, RADIUS, kernel="gaussian",
                                                                             method="exact"))),
        "numpy_gauss": timed_call(keep("numpy_gauss", lambda: numpy_received(L, xy, RADIUS, "gaussian"))),
        "ours_trunc": timed_call(keep("ours_trunc", lambda: received_ligands(L, xy, RADIUS, kernel="truncated"))),
        "numpy_trunc": timed_call(keep("numpy_trunc", lambda: numpy_received(L, xy, RADIUS, "truncated"))),
    }
    session = None
    ref_side = None
    warm = {}
    if ctx.reference_ok:

        session = ctx.open_session()
        ref_side = RefSide(session, ["received", "--xy", d / "xy.npy", "--lig", d / "lig.parquet", "--radius", RADIUS,
                                     "--out", d / "ref_out" / "received.npy"])
        sides["reference"] = ref_side
        warm["reference"] = 0
    try:
        res = interleave(sides, repeats=ctx.repeats, warmups=warm, log=ctx.log)
    finally:
        if session is not None:
            ctx.release(session)
    size = {"cells": n, "ligands": l, "radius": RADIUS}
    mem = {
        "ours_gauss": _peak(ctx, "benchmarks.bench_received:ours_factory", {"n": n, "l": l, "kernel": "gaussian"}),
        "numpy_gauss": _peak(ctx, "benchmarks.bench_received:numpy_factory", {"n": n, "l": l, "kernel": "gaussian"},
                             compile_=False),
        "ours_trunc": _peak(ctx, "benchmarks.bench_received:ours_factory", {"n": n, "l": l, "kernel": "truncated"}),
        "numpy_trunc": _peak(ctx, "benchmarks.bench_received:numpy_factory", {"n": n, "l": l, "kernel": "truncated"},
                             compile_=False),
    }
    goal_s = 1.0
    goal = "" if ctx.quick else f"≤ {goal_s:g} s"
    og = {"label": "ours, Gaussian, exact (numba kernel blocks + BLAS)", **res["ours_gauss"], **mem["ours_gauss"]}
    ot = {"label": "ours, truncated (python-reference), exact (k-d tree + CSR)", **res["ours_trunc"],
          **mem["ours_trunc"]}
    rows = [
        row("received_exact_gaussian_vs_numpy", f"received ligands, exact, Gaussian, {n:,} cells × {l} ligands",
            ours=og, baseline={"label": "NumPy blocked (kernel from coordinate differences, K@L)",
                               **res["numpy_gauss"], **mem["numpy_gauss"]},
            goal=goal, goal_met=(og["median_s"] <= goal_s) if not ctx.quick else None,
            agreement=diff_stats(out["ours_gauss"], out["numpy_gauss"]), size=size),
        row("received_exact_truncated_vs_numpy",
            f"received ligands, exact, truncated kernel, {n:,} cells × {l} ligands",
            ours=ot, baseline={"label": "NumPy blocked, truncated", **res["numpy_trunc"], **mem["numpy_trunc"]},
            goal=goal, goal_met=(ot["median_s"] <= goal_s) if not ctx.quick else None,
            agreement=diff_stats(out["ours_trunc"], out["numpy_trunc"]), size=size),
    ]
    if ref_side is not None:
        theirs = np.load(d / "ref_out" / "received.npy")
        rows.append(row("received_exact_truncated_vs_reference",
                        f"received ligands, exact, truncated kernel, {n:,} cells × {l} ligands",
                        ours=ot, baseline={"label": "reference compute_radius_weights (one radius)",
                                           **ref_side.summary(res["reference"])},
                        goal="", agreement=diff_stats(out["ours_trunc"], theirs), size=size))
    else:
        rows.append(row("received_exact_truncated_vs_reference",
                        f"received ligands, exact, truncated kernel, {n:,} cells × {l} ligands", ours=ot,
                        baseline=None, notes=f"reference not run: {ctx.reference_reason}", size=size))
    return rows


def run_approx(ctx: Ctx) -> list[dict[str, Any]]:
    from spacetravlr_py.spatial.received import ReceivedOperator

    n, l = (10_000, 10) if ctx.quick else (100_000, 100)
    xy, L, _ = _load(n, l)
    ctx.log(f"received approximate: {n} cells × {l} ligands, r = {RADIUS:g}")
    holder: dict[str, Any] = {}

    def ours() -> None:
        op = ReceivedOperator(xy, RADIUS, kernel="gaussian", method="approx")
        holder["ours"] = op.apply(L, estimate_error=False)
        holder["info"] = op.info

    def numpy_exact() -> None:
        holder["numpy"] = numpy_received(L, xy, RADIUS, "gaussian")

    # the NumPy exact sum is O(N²·L): at 100k cells a single run takes minutes, so it is timed once
    np_runs = 1 if (n > 20_000 or ctx.quick) else ctx.repeats
    res = interleave({"ours": timed_call(ours), "numpy": timed_call(numpy_exact)}, repeats=ctx.repeats,
                     warmups={"numpy": 0 if np_runs == 1 else 1}, max_repeats={"numpy": np_runs}, log=ctx.log)
    approx = holder["ours"]
    exact = holder["numpy"]
    scale = np.abs(exact).max(axis=0)
    scale[scale == 0] = 1.0
    err = (np.abs(approx - exact).max(axis=0) / scale)
    rng = np.random.default_rng(0)
    sample = np.sort(rng.choice(n, size=min(n, 500), replace=False))
    mem_o = _peak(ctx, "benchmarks.bench_received:ours_factory",
                  {"n": n, "l": l, "kernel": "gaussian", "method": "approx"})
    mem_n = _peak(ctx, "benchmarks.bench_received:numpy_factory", {"n": n, "l": l, "kernel": "gaussian"}, calls=1) \
        if n <= 20_000 else {"peak_rss_mib": None, "memory_method": "not measured (a second O(N²) run)"}
    info = holder["info"]
    goal_s = 2.0
    o = {"label": f"ours, Gaussian, approximate ({info.strategy}: grid {info.grid_shape}, "
                  f"h = {info.grid_spacing:.3g})" if info.grid_shape else f"ours, approximate ({info.strategy})",
         **res["ours"], **mem_o}
    agreement = {"max_abs_diff": float(np.abs(approx - exact).max()),
                 "max_rel_err_per_ligand": float(err.max()),
                 "error_contract": "≤ 1e-3 × max|RL| per ligand",
                 "error_cells": f"all {n} cells (exact NumPy result available)",
                 "sampled_check": float((np.abs(approx[sample] - exact[sample]).max(axis=0) / scale).max())}
    return [row("received_approx_vs_numpy", f"received ligands, approximate, Gaussian, {n:,} cells × {l} ligands",
                ours=o, baseline={"label": "NumPy blocked exact", **res["numpy"], **mem_n},
                goal=f"≤ {goal_s:g} s, error ≤ 1e-3·max" if not ctx.quick else "",
                goal_met=(o["median_s"] <= goal_s and err.max() <= 1e-3) if not ctx.quick else None,
                agreement=agreement, size={"cells": n, "ligands": l, "radius": RADIUS},
                notes="reference infeasible at this size: compute_radius_weights keeps N kernel rows of N floats "
                      f"({n * n * 8 / 1e9:.0f} GB)")]

"""Scaling sweep: how our cost grows with cells (received ligands, perturbation) and with targets
(training), with the baselines where they can run; plotted to ``docs/benchmark_scaling.png``.

Each point is the median of ``min(3, repeats)`` in-process runs after a warm-up (ours), or a single
run (NumPy and the reference; the reference's ``t_core_s``).
"""

from __future__ import annotations

import statistics
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from . import workloads as wl
from .common import Ctx, timed_call


def _median(fn: Any, n: int, warm: bool = True) -> float:
    run = timed_call(fn)
    if warm:
        run()
    return statistics.median(run() for _ in range(n))


def grids(quick: bool) -> dict[str, list[int]]:
    if quick:
        return {"cells": [1000, 2000], "targets": [10, 20], "ligands": [20], "ref_cells_max": [1000]}
    return {"cells": [1000, 2000, 5000, 10_000, 20_000, 50_000, 100_000], "targets": [50, 100, 200],
            "ligands": [100], "ref_cells_max": [10_000]}


def received_sweep(ctx: Ctx) -> list[dict[str, Any]]:
    from spacetravlr_py.spatial.received import received_ligands

    from .bench_received import RADIUS, numpy_received

    g = grids(ctx.quick)
    L_n = g["ligands"][0]
    reps = min(3, ctx.repeats)
    pts: list[dict[str, Any]] = []
    session = ctx.open_session() if ctx.reference_ok else None
    try:
        for n in g["cells"]:
            d = wl.received_inputs(n, L_n)
            xy, L = np.load(d / "xy.npy"), np.load(d / "lig.npy")
            p: dict[str, Any] = {"cells": n, "ligands": L_n}
            args = (L, xy, RADIUS)
            p["ours_truncated_exact_s"] = _median(partial(received_ligands, *args, kernel="truncated"), reps)
            p["ours_gaussian_approx_s"] = _median(partial(received_ligands, *args, method="approx"), reps)
            if n <= 20_000:
                p["ours_gaussian_exact_s"] = _median(partial(received_ligands, *args, method="exact"), reps)
            if n <= 10_000:
                p["numpy_gaussian_exact_s"] = _median(partial(numpy_received, *args), 1, warm=False)
            if session is not None and n <= g["ref_cells_max"][0]:
                rec = session.run("received", "--xy", d / "xy.npy", "--lig", d / "lig.parquet", "--radius", RADIUS,
                                  "--out", d / "ref_out" / "received.npy")
                p["reference_truncated_s"] = rec["t_core_s"]
            ctx.log(f"    received sweep {n}: " + ", ".join(f"{k}={v:.3g}" for k, v in p.items()
                                                            if k.endswith("_s")))
            pts.append(p)
    finally:
        if session is not None:
            ctx.release(session)
    return pts


def perturb_sweep(ctx: Ctx) -> list[dict[str, Any]]:
    from .bench_perturb import TARGET, compat_runner, ref_args, seed_runner

    g = grids(ctx.quick)
    reps = min(3, ctx.repeats)
    pts: list[dict[str, Any]] = []
    known = {p["cells"]: p["t_core_s"] for p in ctx.extras.get("perturb_reference_points", [])}
    session = ctx.open_session() if ctx.reference_ok else None
    try:
        for n in g["cells"]:
            with_ref = n <= g["ref_cells_max"][0]
            d = wl.perturb_inputs(n, reference_files=with_ref)
            p: dict[str, Any] = {"cells": n}
            comp = compat_runner(d, betadata="betadata" if with_ref else "seed_betadata")
            p["ours_reference_mode_exact_s"] = _median(comp, reps)
            p["ours_seed_auto_s"] = _median(seed_runner(d, "auto"), reps)
            if session is not None and with_ref:
                if n in known:
                    p["reference_s"] = known[n]
                else:
                    rec = session.run(*ref_args(d, d / "ref_out" / "perturb.parquet", TARGET))
                    p["reference_s"] = rec["t_core_s"]
            ctx.log(f"    perturb sweep {n}: " + ", ".join(f"{k}={v:.3g}" for k, v in p.items() if k.endswith("_s")))
            pts.append(p)
    finally:
        if session is not None:
            ctx.release(session)
    return pts


def train_sweep(ctx: Ctx) -> list[dict[str, Any]]:
    from .bench_train import RADIUS, ref_train_args, run_cli, write_config

    g = grids(ctx.quick)
    nc = 300 if ctx.quick else 2000
    pts: list[dict[str, Any]] = []
    d = wl.training_inputs(max(g["targets"]), nc)
    targets = [t for t in (d / "targets.txt").read_text().split() if t]
    known = ctx.extras.get("train_reference_point")
    session = ctx.open_session() if ctx.reference_ok else None
    try:
        for nt in g["targets"]:
            sub = targets[:nt]
            out = d / f"sweep_ours_{nt}"
            cfg = write_config(d, out, compat=True, n_iter=100, tol=1e-5, genes=sub)
            p: dict[str, Any] = {"targets": len(sub), "cells": nc, "radius": RADIUS}
            run_cli(cfg, out)  # warm-up (numba cache, file cache)
            p["ours_cli_s"] = statistics.median(run_cli(cfg, out) for _ in range(min(3, ctx.repeats)))
            if session is not None:
                if known and known["targets"] == len(sub):
                    p["reference_s"] = known["t_core_s"]
                else:
                    tf = d / f"sweep_targets_{nt}.txt"
                    tf.write_text("\n".join(sub) + "\n")
                    rec = session.run(*ref_train_args(d, d / f"sweep_ref_{nt}", tf, 100))
                    p["reference_s"] = rec["t_core_s"]
            ctx.log(f"    train sweep {nt}: " + ", ".join(f"{k}={v:.3g}" for k, v in p.items() if k.endswith("_s")))
            pts.append(p)
    finally:
        if session is not None:
            ctx.release(session)
    return pts


def run(ctx: Ctx) -> dict[str, Any]:
    ctx.log("scaling sweep")
    return {"received": received_sweep(ctx), "perturb": perturb_sweep(ctx), "train": train_sweep(ctx),
            "method": "ours: median of min(3, repeats) runs after a warm-up; NumPy and reference: one run "
                      "(reference: harness t_core_s); training: CLI wall time"}


LABELS = {
    "ours_truncated_exact_s": "ours, truncated kernel, exact",
    "ours_gaussian_exact_s": "ours, Gaussian, exact",
    "ours_gaussian_approx_s": "ours, Gaussian, approximate",
    "numpy_gaussian_exact_s": "NumPy, Gaussian, exact",
    "reference_truncated_s": "reference (truncated)",
    "ours_reference_mode_exact_s": "ours, python-reference mode (exact)",
    "ours_seed_auto_s": "ours, seed mode (approximate above 15k cells)",
    "reference_s": "reference",
    "ours_cli_s": "ours (CLI, whole process)",
}


def plot(scaling: dict[str, Any], path: Path, title: str = "") -> Path:
    """Three log-log panels: received ligands and perturbation vs cells, training vs targets."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rec = scaling.get("received") or [{}]
    tr = scaling.get("train") or [{}]
    panels = [("received", "cells", f"received ligands ({rec[0].get('ligands', '?')} ligands, r = 200)"),
              ("perturb", "cells", "perturbation (50 trained genes, 4 steps)"),
              ("train", "targets", f"seed training ({tr[0].get('cells', 0):,} cells, n_iter 100)")]
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    for ax, (key, xkey, name) in zip(axes, panels):
        pts = scaling.get(key) or []
        keys = sorted({k for p in pts for k in p if k.endswith("_s")})
        for k in keys:
            xs = [p[xkey] for p in pts if p.get(k) is not None]
            ys = [p[k] for p in pts if p.get(k) is not None]
            if xs:
                style = "--" if k.startswith(("reference", "numpy")) else "-"
                ax.plot(xs, ys, style, marker="o", label=LABELS.get(k, k))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(xkey)
        ax.set_ylabel("seconds")
        ax.set_title(name, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

"""Full mode (per-cell CNN betas, SPEC §5.2).

``full_vs_reference``
    Per-gene time of a full-mode fit on the seed README's training workload (2,000 cells, 5 clusters,
    real mouse symbols), same epochs and map size on both sides. Ours: the ``spacetravlr`` CLI with
    ``--training-mode full`` on a few targets, ``--parallel 2`` (one single-threaded worker per core;
    per gene = training wall time / genes) and ``--parallel 1`` (one gene at a time on one core). The
    reference: ``SpatialCellularProgramsEstimator(...).fit(num_epochs=E)`` (its lasso + its CNN, batch
    512, torch on every core) per target through ``benchmarks/_ref_cnn.py`` in its venv; the first
    target (which also builds its caches: received ligands, spatial maps, features) is left out.
``full_ceiling``
    The physical ceiling: a bare PyTorch forward + backward + Adam step of the same network over exactly
    the cell-passes our ``--parallel 1`` run made (every (gene, cluster): its epochs × its training
    cells, same batch size and modulator count), single-threaded like ours, in a fresh process. Ratio =
    bare time / our whole training time (goal ≥ 0.5: the time goes into the network).
``full_200``
    200 genes × 2,000 cells × 10 epochs end to end (the CLI in a fresh process, ``--parallel 2``), with
    peak memory (the process tree's summed RSS, sampled, and each process's high-water mark).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import reference as ref
from . import workloads as wl
from .common import Ctx, row

RADIUS = 200.0
CONTACT = 50.0
EPOCHS = 10
DIM = 32
_REF_DRIVER = Path(__file__).resolve().parent / "_ref_cnn.py"


def write_config(d: Path, out: Path, genes: list[str] | None, *, n_parallel: int, epochs: int = EPOCHS,
                 dim: int = DIM) -> Path:
    lines = ["[data]", f'adata_path = "{d / "tissue.h5ad"}"', 'layer = "imputed_count"',
             'cluster_annot = "cell_type"', "", "[spatial]", f"radius = {RADIUS}", f"contact_distance = {CONTACT}",
             f"spatial_dim = {dim}", "", "[grn]", f'network_data_dir = "{d}"', "", "[training]", 'mode = "full"',
             f"epochs = {epochs}"]
    if genes:
        lines.append("genes = [" + ", ".join(json.dumps(g) for g in genes) + "]")
    lines += ["", "[execution]", f"n_parallel = {n_parallel}", f'output_dir = "{out}"', 'device = "cpu"', ""]
    p = out.parent / f"{out.name}.toml"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("\n".join(lines))
    return p


_RUN = ("import json, resource, sys; from spacetravlr_py.cli.main import main; "
        "rc = main(['-c', sys.argv[1], '--plain', '--quiet']); "
        "print(json.dumps({'rc': rc, 'self_kb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "
        "'children_kb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))")


def run_cli(cfg: Path, out: Path, *, timeout: float = 4 * 3600) -> dict[str, Any]:
    """The CLI in a fresh process; wall seconds, the manifest, per-process peaks and the tree's summed RSS."""
    import psutil

    if out.exists():
        shutil.rmtree(out)
    env = dict(os.environ)
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-c", _RUN, str(cfg)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=env)
    peak = [0]

    def sample() -> None:
        try:
            proc = psutil.Process(p.pid)
            while p.poll() is None:
                tree = [proc, *proc.children(recursive=True)]
                total = 0
                for q in tree:
                    try:
                        total += q.memory_info().rss
                    except psutil.Error:
                        pass
                peak[0] = max(peak[0], total)
                time.sleep(0.2)
        except psutil.Error:
            pass

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    stdout, stderr = p.communicate(timeout=timeout)
    wall = time.perf_counter() - t0
    th.join(timeout=5)
    if p.returncode != 0:
        raise RuntimeError(f"spacetravlr full mode failed (exit {p.returncode}): {stderr[-2000:]}")
    info = json.loads(stdout.strip().splitlines()[-1])
    man = json.loads((out / "spacetravlr_manifest.json").read_text())
    return {"wall_s": wall, "manifest": man, "self_peak_mib": info["self_kb"] / 1024,
            "children_peak_mib": info["children_kb"] / 1024, "tree_rss_peak_mib": peak[0] / 2**20}


def cell_passes(out: Path) -> list[tuple[int, int, int, int]]:
    """``(n_train, epochs_run, n_modulators, n_clusters)`` of every trained (gene, cluster), from the logs."""
    res = []
    for log in sorted((out / "log").glob("*.log")):
        lines = log.read_text().splitlines()
        head = lines[0].split("\t")
        n_mod = int(lines[1].split("\t")[head.index("n_modulators")]) if len(lines) > 1 and "n_modulators" in head \
            else 0
        K = sum(1 for x in lines[1:] if x and x.split("\t")[0].isdigit())
        for x in lines:
            f = x.split("\t")
            if f[0] == "cnn" and f[1].isdigit():
                res.append((int(f[3]), int(f[6]), n_mod, K))
    return res


def bare_factory(passes: list[list[int]], batch_size: int = 64, dim: int = DIM) -> Any:
    """A bare forward + backward + Adam loop of the full-mode network over the given cell-passes."""
    import torch

    from spacetravlr_py.models.cnn import CellularNicheNetwork

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    max_n = max((p[0] for p in passes), default=1)
    maps = torch.from_numpy(rng.random((max_n, 1, dim, dim), dtype=np.float32))

    def run() -> None:
        for n, epochs, m, k in passes:
            net = CellularNicheNetwork(m, k, anchors=np.ones(m + 1, dtype=np.float32))
            opt = torch.optim.Adam(net.parameters(), lr=1e-3)
            x = torch.rand(n, m)
            f = torch.rand(n, k)
            y = torch.rand(n)
            nb = max(1, -(-n // batch_size))
            net.train()
            for _ in range(epochs):
                for b in torch.tensor_split(torch.arange(n), nb):
                    s, e = int(b[0]), int(b[-1]) + 1
                    opt.zero_grad(set_to_none=True)
                    loss = ((net(maps[s:e], x[s:e], f[s:e]) - y[s:e]) ** 2).mean()
                    loss.backward()
                    opt.step()

    return run


def _targets(d: Path, k: int) -> list[str]:
    return [t for t in (d / "targets.txt").read_text().split() if t][:k]


def _reference(ctx: Ctx, d: Path, genes: list[str], epochs: int, dim: int) -> dict[str, Any]:
    (d / "targets_full.txt").write_text("\n".join(genes) + "\n")
    out = d / "ref_full.json"
    env = dict(os.environ)
    for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env[v] = str(ctx.threads)
    cmd = [str(ref.reference_python()), str(_REF_DRIVER), str(ref.harness_path().parent), str(d / "tissue.h5ad"),
           str(d / "regulators.json"), str(d / "targets_full.txt"), str(epochs), str(dim), str(RADIUS),
           str(CONTACT), str(out)]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=6 * 3600)
    if p.returncode != 0:
        raise RuntimeError(f"reference full-mode fit failed: {p.stderr[-3000:]}")
    rec: dict[str, Any] = json.loads(out.read_text())
    return rec


def run_vs_reference(ctx: Ctx) -> list[dict[str, Any]]:
    ng, nc, k = (20, 300, 3) if ctx.quick else (200, 2000, 4)
    epochs = 2 if ctx.quick else EPOCHS
    d = wl.training_inputs(ng, nc)
    genes = _targets(d, k)
    ctx.log(f"full vs reference: {len(genes)} targets × {nc} cells, {epochs} epochs, {DIM}² maps")
    runs = {}
    for par in ((1,) if ctx.quick else (2, 1)):
        out = d / f"full_p{par}"
        runs[par] = run_cli(write_config(d, out, genes, n_parallel=par, epochs=epochs), out)
        ctx.log(f"    ours --parallel {par}: {runs[par]['wall_s']:.1f}s wall, "
                f"train {runs[par]['manifest']['timings']['train_s']:.1f}s")
    ctx.extras["full_p1"] = {"out": str(d / "full_p1"), "train_s": runs[1]["manifest"]["timings"]["train_s"]}
    top = runs[max(runs)]  # --parallel 2 (quick: 1)
    per_gene_2 = top["manifest"]["timings"]["train_s"] / len(genes)
    per_gene_1 = float(np.median(list(runs[1]["manifest"]["timings"]["per_gene_s"].values())))
    o = {"label": f"ours: spacetravlr --training-mode full, --parallel 2 (1 torch thread per worker); training "
                  f"wall / {len(genes)} genes", "median_s": per_gene_2, "n": 1,
         "per_gene_parallel1_median_s": per_gene_1,
         "timing": "manifest train_s / genes (lasso, CNN, writing; excludes loading and received ligands)",
         "peak_rss_mib": round(top["tree_rss_peak_mib"], 1),
         "memory_method": "sampled sum of RSS over the CLI process and its workers"}
    size = {"genes": ng, "targets": len(genes), "cells": nc, "clusters": 5, "epochs": epochs, "spatial_dim": DIM}
    workload = f"full mode per gene, {nc:,} cells, 5 clusters, {epochs} epochs, {DIM}×{DIM} maps"
    if not ctx.reference_ok:
        return [row("full_vs_reference", workload, ours=o, baseline=None, size=size,
                    notes=f"reference not run: {ctx.reference_reason}")]
    rec = _reference(ctx, d, genes, epochs, DIM)
    times = [v["t_ctor_s"] + v["t_fit_s"] for v in rec["per_gene"].values()]
    base = {"label": f"reference SpatialCellularProgramsEstimator.fit(num_epochs={epochs}) per target "
                     f"(torch threads {rec['torch_threads']}, batch 512), first target left out",
            "median_s": float(np.median(times[1:] if len(times) > 1 else times)), "n": max(1, len(times) - 1),
            "first_target_s": times[0], "times_s": times,
            "timing": "constructor + fit of each target (its group lasso and its CNN), in one process"}
    r = row("full_vs_reference", workload, ours=o, baseline=base, size=size,
            goal="≥ 10× the reference per gene" if not ctx.quick else "",
            notes=f"ours one gene at a time on one core (--parallel 1): median {per_gene_1:.1f} s per gene; the "
                  "reference trains on random 90°-rotated maps with weight-normalised convolutions and keeps "
                  "BatchNorm in train mode at inference; ours holds out 10 % of each cluster for early stopping")
    if not ctx.quick:
        r["goal_met"] = bool(r["ratio"] and r["ratio"] >= 10)
    return [r]


def run_ceiling(ctx: Ctx) -> list[dict[str, Any]]:
    from .timing import worker

    p1 = ctx.extras.get("full_p1")
    if p1 is None:  # run on its own: make the --parallel 1 run first
        ng, nc, k = (20, 300, 3) if ctx.quick else (200, 2000, 4)
        d = wl.training_inputs(ng, nc)
        out = d / "full_p1"
        r1 = run_cli(write_config(d, out, _targets(d, k), n_parallel=1, epochs=2 if ctx.quick else EPOCHS), out)
        p1 = {"out": str(out), "train_s": r1["manifest"]["timings"]["train_s"]}
    passes = [list(p) for p in cell_passes(Path(p1["out"]))]
    n_passes = sum(p[0] * p[1] for p in passes)
    w = worker("benchmarks.bench_full:bare_factory", {"passes": passes}, calls=2)
    bare = float(min(w["t_calls_s"]))
    ours = float(p1["train_s"])
    o = {"label": "ours: the --parallel 1 full-mode run of full_vs_reference (training wall time)", "median_s": ours,
         "n": 1, "cells_per_s": n_passes / ours}
    base = {"label": "bare PyTorch forward + backward + Adam step, same network, same cell-passes, batch 64, "
                     "1 thread (fresh process, best of 2)", "median_s": bare, "n": 2, "cells_per_s": n_passes / bare,
            "times_s": w["t_calls_s"]}
    r = row("full_ceiling", f"full mode vs its physical ceiling ({n_passes:,} training cell-passes)", ours=o,
            baseline=base, size={"cell_passes": n_passes, "fits": len(passes)},
            goal="≥ 0.5 of the ceiling's throughput" if not ctx.quick else "",
            notes="ratio = ceiling time / our time = our share of the bare network throughput; ours also fits "
                  "the lasso twice per cluster, evaluates held-out cells every epoch, computes every cell's "
                  "betas and writes betadata, logs and npz")
    r["ratio_label"] = "share of the ceiling"
    if not ctx.quick:
        r["goal_met"] = bool(r["ratio"] and r["ratio"] >= 0.5)
    return [r]


def run_200(ctx: Ctx) -> list[dict[str, Any]]:
    ng, nc = (20, 300) if ctx.quick else (200, 2000)
    epochs = 2 if ctx.quick else EPOCHS
    d = wl.training_inputs(ng, nc)
    out = d / "full_all"
    ctx.log(f"full mode end to end: {ng} genes × {nc} cells × {epochs} epochs, --parallel 2")
    r2 = run_cli(write_config(d, out, None, n_parallel=2, epochs=epochs), out)
    man = r2["manifest"]
    o = {"label": "ours: spacetravlr --training-mode full --parallel 2, fresh process", "median_s": r2["wall_s"],
         "n": 1, "timing": "wall time of the whole CLI process (imports, loading, received ligands, niche inputs, "
                           "all genes, writing)",
         "peak_rss_mib": round(r2["tree_rss_peak_mib"], 1),
         "memory_method": f"sampled sum of RSS over the CLI process and its 2 workers (high-water marks: main "
                          f"{r2['self_peak_mib']:.0f} MiB, largest worker {r2['children_peak_mib']:.0f} MiB)",
         "manifest_timings": {k: v for k, v in man["timings"].items() if k != "per_gene_s"}, "counts": man["counts"]}
    passes = cell_passes(out)
    size = {"genes": ng, "cells": nc, "epochs": epochs, "spatial_dim": DIM,
            "cell_passes": int(sum(p[0] * p[1] for p in passes)), "cnn_fits": len(passes)}
    return [row("full_200", f"full mode, {ng} genes × {nc:,} cells × {epochs} epochs, end to end", ours=o,
                baseline=None, size=size, notes="no baseline: the reference would take hours (see full_vs_reference)")]


# --------------------------------------------------------------------------------------------------
# held-out quality on a real tissue
# --------------------------------------------------------------------------------------------------

HELDOUT_GENES = 60
HELDOUT_FRACTION = 0.2


def starmap_inputs() -> Path:
    """STARmap visual cortex after ``spacetravlr prep`` (labelled cells, cell types from ``cluster_name``)
    and the real mouse network (CellChat + base GRN), cached under ``.bench/``."""
    real = ref.SHARED / "data" / "real" / "starmap_visual_cortex_1020.h5ad"

    def build(d: Path) -> None:
        from spacetravlr_py.cli.main import main

        data = ref.SHARED / "data"
        rc = main(["network", "build", "--grn", str(data / "grn" / "mouse_base_grn.parquet"), "--lr",
                   str(data / "lr" / "cellchat_mouse.csv"), "-o", str(d)])
        rc = rc or main(["prep", str(real), "-o", str(d / "starmap.h5ad"), "--cluster-key", "cluster_name",
                         "--drop-unlabeled", "--network", str(d), "--quiet"])
        if rc:
            raise RuntimeError(f"preparing STARmap failed (exit {rc})")

    return wl.cached("starmap_prepped", build)


def heldout_stats(out: Path) -> dict[str, Any]:
    """:func:`heldout_summary` plus the CNN-vs-lasso comparison on test cells, fit by fit."""
    from spacetravlr_py.training.cnn_report import heldout_summary, read_cnn_rows

    s = heldout_summary(out)
    per_gene = s.pop("per_gene")
    rows = [r for f in sorted((out / "log").glob("*.log")) for r in read_cnn_rows(f)]
    held = [r for r in rows if r["n_test"]]
    d = np.array([r["r2_cnn_heldout"] - r["r2_lasso_heldout"] for r in held])
    s["cnn_beats_lasso_fraction"] = float((d > 0).mean()) if d.size else None
    s["median_cnn_minus_lasso"] = float(np.median(d)) if d.size else None
    s["no_epoch_improved_on_validation"] = int(sum(r["best_epoch"] == 0 for r in held))
    s["fits_insample"] = len(rows) - len(held)
    gl = np.array([v["lasso"] for v in per_gene.values()])
    gf = np.array([v["full"] for v in per_gene.values()])
    s["genes_full_ge_lasso"] = int((gf >= gl).sum())
    return s


def run_heldout(ctx: Ctx) -> list[dict[str, Any]]:
    ng = 6 if ctx.quick else HELDOUT_GENES
    epochs = 2 if ctx.quick else EPOCHS
    d = starmap_inputs()
    seed_out = d / "seed_all"
    if not (seed_out / "spacetravlr_manifest.json").exists():
        run_cli(_starmap_config(d, seed_out, None, mode="seed", n_parallel=2), seed_out)
    man = json.loads((seed_out / "spacetravlr_manifest.json").read_text())
    done = sorted(man["genes"]["done"])
    genes = sorted(str(g) for g in np.random.default_rng(0).choice(done, size=min(ng, len(done)), replace=False))
    out = d / f"full_{ng}"
    ctx.log(f"full-mode held-out R² on STARmap: {len(genes)} genes, holdout_fraction {HELDOUT_FRACTION}")
    r = run_cli(_starmap_config(d, out, genes, mode="full", n_parallel=2, epochs=epochs), out)
    s = heldout_stats(out)
    o = {"label": "ours: spacetravlr --training-mode full --parallel 2 (defaults, holdout_fraction 0.2)",
         "median_s": r["wall_s"], "n": 1, "peak_rss_mib": round(r["tree_rss_peak_mib"], 1),
         "memory_method": "sampled sum of RSS over the CLI process and its workers",
         "timing": "wall time of the whole CLI process"}
    nan = float("nan")
    notes = (f"{s['fits_heldout']} (gene, cluster) CNNs judged on test cells ({s['fits_insample']} more in clusters "
             f"too small to hold out cells); CNN vs lasso (refitted on the training cells) on the test cells: mean "
             f"R² {s.get('mean_r2_cnn_heldout', nan):.4f} vs {s.get('mean_r2_lasso_heldout', nan):.4f}, the CNN "
             f"better in {100 * (s['cnn_beats_lasso_fraction'] or 0):.0f} % of fits; after the keep-lasso rule "
             f"{s.get('mean_r2_full_heldout', nan):.4f} (never below the lasso: min gain "
             f"{s.get('min_gain_full_minus_lasso', nan):.3g}; the choice is made on these test cells)")
    return [row("full_heldout_starmap", f"full mode held-out R², STARmap (1,207 cells, 16 types), {len(genes)} genes",
                ours=o, baseline=None, size={"genes": len(genes), "epochs": epochs,
                                             "holdout_fraction": HELDOUT_FRACTION},
                agreement={"heldout": s}, notes=notes)]


def _starmap_config(d: Path, out: Path, genes: list[str] | None, *, mode: str, n_parallel: int,
                    epochs: int = EPOCHS) -> Path:
    lines = ["[data]", f'adata_path = "{d / "starmap.h5ad"}"', "", "[grn]", f'network_data_dir = "{d}"', "",
             "[training]", f'mode = "{mode}"', f"epochs = {epochs}"]
    if genes:
        lines.append("genes = [" + ", ".join(json.dumps(g) for g in genes) + "]")
    lines += ["", "[cnn]", f"holdout_fraction = {HELDOUT_FRACTION}", "", "[execution]",
              f"n_parallel = {n_parallel}", f'output_dir = "{out}"', 'device = "cpu"', ""]
    p = out.parent / f"{out.name}.toml"
    p.write_text("\n".join(lines))
    return p

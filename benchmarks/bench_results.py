"""Results people look at, at scale: the interaction table of 3,000 genes × 100k cells (seed and full-mode
betadata) and the knockout screen of every regulator of a trained 3,000-gene run at 10k cells.

Each is one run in a fresh process (``benchmarks.worker``): its wall time and its peak RSS (``ru_maxrss``);
the screen's worker processes are measured through ``RUSAGE_CHILDREN``.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from spacetravlr_py import _keys

from .common import Ctx, machine_load, row
from .workloads import DENSITY, cached

N_CLUSTERS = 10
SEED_MODULATORS = (20, 30, 10)
"""TFs, L$R and L#TF columns of each seed-mode gene (60 in all)."""
FULL_MODULATORS = 30
FULL_DISTINCT = 24
"""Distinct per-cell betadata files of the full-mode run; the 3,000 genes' files are hard links to them (the
disk holds 24 × 100k × 31 float32 columns instead of 3,000 ×): reads come from the page cache."""


def _repro(run: Path, h5ad: Path) -> None:
    """The run's repro TOML, naming the paths the cache folder will have once complete (``cached`` builds in
    ``<key>.tmp`` and renames it)."""
    from spacetravlr_py.config import SpaceshipConfig

    final = run.parent.with_name(run.parent.name.removesuffix(".tmp"))
    cfg = SpaceshipConfig().with_overrides({"data.adata_path": str(final / h5ad.name),
                                            "execution.output_dir": str(final / run.name)})
    (run / _keys.REPRO_TOML).write_text(cfg.to_toml())


def _tissue(d: Path, genes: list[str], n_cells: int, rng: np.random.Generator) -> tuple[Path, list[str]]:
    """An .h5ad of ``n_cells`` cells (10 clusters ``ct0..``) whose X holds one non-zero per cell: the
    interaction table reads the cells, never the expression."""
    import anndata as ad
    import scipy.sparse as sp

    side = float(np.sqrt(n_cells / DENSITY))
    obs_names = [f"cell{i:06d}" for i in range(n_cells)]
    obs = pd.DataFrame({"cell_type": pd.Categorical([f"ct{k}" for k in rng.integers(0, N_CLUSTERS, n_cells)])},
                       index=obs_names)
    X = sp.csr_matrix((np.ones(n_cells), (np.arange(n_cells), rng.integers(0, len(genes), n_cells))),
                      shape=(n_cells, len(genes)))
    a = ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=genes))
    a.layers["imputed_count"] = X
    a.obsm["spatial"] = rng.uniform(0, side, (n_cells, 2))
    p = d / "tissue.h5ad"
    a.write_h5ad(p)
    return p, obs_names


def _modulators(rng: np.random.Generator, genes: list[str], n_tf: int, n_lr: int, n_tfl: int) -> list[str]:
    pick = lambda k: rng.choice(genes, size=k, replace=False).tolist()  # noqa: E731
    out = pick(n_tf) + [f"{a}${b}" for a, b in zip(pick(n_lr), pick(n_lr))]
    out += [f"{a}#{b}" for a, b in zip(pick(n_tfl), pick(n_tfl))]
    return list(dict.fromkeys(out))


def interactions_inputs(n_genes: int, n_cells: int, mode: str, seed: int = 0) -> Path:
    """A run folder (``run/``: repro TOML + betadata of every gene) and its tissue, cached."""

    def build(d: Path) -> None:
        import pyarrow as pa
        import pyarrow.feather as feather

        from spacetravlr_py.betadata.frame import BetaFrame, betadata_path, write_betadata

        rng = np.random.default_rng(seed)
        genes = [f"G{i:05d}" for i in range(n_genes)]
        h5ad, obs_names = _tissue(d, genes, n_cells, rng)
        run = d / "run"
        run.mkdir()
        _repro(run, h5ad)
        labels = [f"ct{k}" for k in range(N_CLUSTERS)]
        if mode == "seed":
            for g in genes:
                mods = _modulators(rng, genes, *SEED_MODULATORS)
                coefs = rng.normal(size=(N_CLUSTERS, len(mods)))
                coefs[rng.random(coefs.shape) < 0.3] = 0.0
                frame = BetaFrame(g, _keys.CLUSTER_COL, labels, rng.normal(size=N_CLUSTERS), mods, coefs)
                write_betadata(betadata_path(run, g), frame)
            return
        store = d / "distinct"
        store.mkdir()
        files = []
        for k in range(FULL_DISTINCT):  # per-cell float32 betas, as full mode writes them
            mods = _modulators(rng, genes, 10, 14, 6)[:FULL_MODULATORS]
            cols: dict[str, Any] = {_keys.CELLID_COL: obs_names,
                                    _keys.INTERCEPT: rng.normal(size=n_cells).astype(np.float32)}
            for m in mods:
                vals = rng.normal(size=n_cells) * (rng.random(n_cells) > 0.2)
                cols[f"{_keys.BETA_PREFIX}{m}"] = vals.astype(np.float32)
            p = store / f"frame{k}_betadata.feather"
            feather.write_feather(pa.table(cols), p, compression="lz4")
            files.append(p)
        for i, g in enumerate(genes):
            os.link(files[i % FULL_DISTINCT], betadata_path(run, g))

    return cached(f"interactions_g{n_genes}_n{n_cells}_{mode}_s{seed}", build)


def interactions_factory(run: str, out: str, stats: str) -> Any:
    """One ``collect-interactions`` of ``run`` (all genes, mean), written to ``out``."""

    def go() -> None:
        from spacetravlr_py.betadata.interactions_run import collect_run_interactions, write_interactions

        df = collect_run_interactions(run, aggregate="mean")
        write_interactions(df, out)
        Path(stats).write_text(json.dumps({"rows": len(df), "targets": int(df["target"].nunique()),
                                           "cell_types": int(df["cell_type"].nunique())}))

    return go


def _agreement(run: Path, out: Path, n_check: int = 5) -> dict[str, Any]:
    """The written table against a per-cell NumPy mean of ``n_check`` genes' betadata."""
    from spacetravlr_py.betadata.frame import list_betadata, read_betadata
    from spacetravlr_py.betadata.interactions_run import read_interactions
    from spacetravlr_py.config import SpaceshipConfig
    from spacetravlr_py.io.cells import load_cells

    cfg = SpaceshipConfig.from_toml(run / _keys.REPRO_TOML)
    cells = load_cells(cfg.data.adata_path)
    labels = np.asarray(cells.cluster_labels)[cells.clusters]
    table = read_interactions(out)
    files = list_betadata(run)
    worst = 0.0
    for g in sorted(files)[:n_check]:
        f = read_betadata(files[g], g)
        where = {r: i for i, r in enumerate(f.row_ids)}
        keys = cells.obs_names if f.row_kind == _keys.CELLID_COL else labels
        B = f.coefs[[where[k] for k in keys]]
        sub = table[table["target"] == g].set_index(["modulator", "cell_type"])["value"]
        for lab in np.unique(labels):
            mean = B[labels == lab].mean(axis=0)
            for j, m in enumerate(f.modulators):
                if mean[j] != 0:
                    worst = max(worst, abs(float(sub[(m, lab)]) - float(mean[j])))
    return {"max_abs_diff": worst, "genes_checked": n_check,
            "method": "per-cell betas of the first genes materialised, NumPy mean per cell type"}


def run_interactions(ctx: Ctx) -> list[dict[str, Any]]:
    from .timing import worker

    ng, nc = (300, 10_000) if ctx.quick else (3000, 100_000)
    rows = []
    for mode in ("seed", "full"):
        d = interactions_inputs(ng, nc, mode)
        ctx.log(f"collect-interactions: {ng} genes × {nc} cells, {mode} betadata")
        out, stats = d / "table.feather", d / "stats.json"
        w = worker("benchmarks.bench_results:interactions_factory", {"run": str(d / "run"), "out": str(out),
                   "stats": str(stats)}, calls=1, timeout=4 * 3600)
        info = json.loads(stats.read_text())
        m = FULL_MODULATORS if mode == "full" else sum(SEED_MODULATORS)
        dense_gib = ng * nc * m * 8 / 2**30
        o = {"label": "ours: collect_run_interactions + write_interactions (streams one gene at a time)",
             "median_s": float(w["t_calls_s"][0]), "n": 1, "peak_rss_mib": round(w["maxrss_kb"] / 1024, 1),
             "timing": "one call in a fresh process (reading the cells, every betadata file, the table written)",
             "memory_method": "ru_maxrss of that process (interpreter and imports included)", **info}
        notes = (f"{mode} betadata: " + (f"{N_CLUSTERS} Cluster rows × {m} modulators per gene" if mode == "seed"
                 else f"per-cell (CellID) float32 rows, {m} modulators per gene; the 3,000 files are hard links to "
                 f"{FULL_DISTINCT} distinct ones (disk), so reads come from the page cache")
                 + f"; all per-cell betas at once would take {dense_gib:.0f} GiB (float64). {machine_load()}.")
        rows.append(row(f"interactions_{mode}", f"collect-interactions, {ng:,} genes × {nc:,} cells, {mode} mode",
                        ours=o, baseline=None, agreement=_agreement(d / "run", out), size={"genes": ng, "cells": nc,
                        "modulators_per_gene": m, "cell_types": N_CLUSTERS}, notes=notes,
                        goal="no per-cell matrix of all genes; peak ≤ 4 GiB" if not ctx.quick else ""))
        if not ctx.quick:
            rows[-1]["goal_met"] = bool(w["maxrss_kb"] / 1024 / 1024 <= 4.0)
    return rows


# --------------------------------------------------------------------------------------------------
# the screen of every regulator of a trained run
# --------------------------------------------------------------------------------------------------


def screen_factory(run: str, out: str, workers: int, stats: str) -> Any:
    """The whole knockout screen of ``run`` into ``out`` with ``workers`` local processes."""

    def go() -> None:
        from spacetravlr_py.perturbation.screen_files import ScreenRequest
        from spacetravlr_py.perturbation.screen_run import ProcessScreen, SerialScreen, SessionRecipe, run_screen

        if Path(out).exists():
            shutil.rmtree(out)
        recipe = SessionRecipe(str(Path(run) / _keys.REPRO_TOML))
        ex: Any = ProcessScreen(recipe, workers) if workers > 1 else SerialScreen(recipe.open())
        res = run_screen(out, ScreenRequest(run_toml=recipe.run_toml), recipe=recipe, executor=ex)
        secs = [json.loads(p.read_text())["seconds"] for p in (Path(out) / _keys.SCREEN_GENES_DIR).glob("*.json")]
        Path(stats).write_text(json.dumps({
            "genes": len(res.spec.genes), "skipped": len(res.spec.skipped), "per_gene_median_s": float(np.median(secs)),
            "children_maxrss_kb":
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))

    return go


def _trained_run(ctx: Ctx, ng: int, nc: int) -> tuple[Path, dict[str, Any]]:
    """The seed training run of ``bench_train.run_large``'s inputs (reused when complete)."""
    from . import workloads as wl
    from .bench_train import write_config
    from .timing import worker

    d = wl.training_inputs(ng, nc, full_network=True)
    out = d / "ours_out"
    man = out / _keys.MANIFEST_JSON
    if not (man.exists() and json.loads(man.read_text()).get("status") in ("complete", "complete_with_failures")):
        ctx.log(f"screen: training the {ng}-gene × {nc}-cell run first")
        cfg = write_config(d, out, compat=False)
        worker("benchmarks.bench_train:cli_factory", {"d": str(d), "cfg": str(cfg), "out_dir": str(out)}, calls=1,
               timeout=4 * 3600)
    return out, json.loads(man.read_text())["counts"]


def run_screen(ctx: Ctx) -> list[dict[str, Any]]:
    from .timing import worker

    ng, nc = (100, 1000) if ctx.quick else (3000, 10_000)
    run, counts = _trained_run(ctx, ng, nc)
    workers = int(ctx.extras.get("screen_workers", 2))
    out, stats = run.parent / "screen_all", run.parent / "screen_stats.json"
    ctx.log(f"screen: every regulator of the {ng}-gene run, {workers} worker processes")
    w = worker("benchmarks.bench_results:screen_factory", {"run": str(run), "out": str(out), "workers": workers,
               "stats": str(stats)}, calls=1, timeout=6 * 3600)
    info = json.loads(stats.read_text())
    t = float(w["t_calls_s"][0])
    o = {"label": f"ours: run_screen, {workers} local worker processes (knockout, 4 propagation steps, all cells)",
         "median_s": t, "n": 1, "peak_rss_mib": round(w["maxrss_kb"] / 1024, 1),
         "workers_peak_rss_mib": round(info.pop("children_maxrss_kb") / 1024, 1),
         "timing": "one screen in a fresh process: opening the run, planning, every gene, ranking, figures",
         "memory_method": "ru_maxrss of the parent (each worker process peaks at workers_peak_rss_mib)", **info}
    notes = (f"real network (base GRN + CellChat), the run of the seed-training row: {counts['done']} trained "
             f"genes, {counts['orphaned']} orphans; every TF, ligand and receptor with betas screened "
             f"({info['genes']} genes, {info['skipped']} skipped as modulating nothing); "
             f"{info['genes'] / t * 60:.0f} genes per minute; median "
             f"{info['per_gene_median_s']:.2f} s per gene inside a worker. {machine_load()}.")
    r = row("screen_all", f"knockout screen of every regulator, {ng:,}-gene run × {nc:,} cells", ours=o,
            baseline=None, size={"genes": ng, "cells": nc, "regulators": info["genes"], "workers": workers},
            notes=notes)
    return [r]

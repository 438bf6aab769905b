"""Wide panels and large tissues: peak memory and time of each stage, in a fresh process each (issue 20).

Workloads (inputs cached under ``.bench/``):

* ``wide_parity`` — 20,000 cells × 3,001 genes (the synthetic tissue's 61 genes + 2,940 sparse padding
  genes, CSR float32): load / train (the 61 modelled genes) / one knockout (4 steps) + export of every
  gene / transition field, this implementation against the implementation before the memory work
  (``BEFORE_SRC``), side by side, with their outputs compared (betadata bytes, feather frame, JSON).
* ``wide_200k`` — 200,000 × 3,001, the same stages (goal: each ≤ 3 GiB, knockout ≤ 30 s); the
  earlier implementation's load and training where they fit in memory, not its knockout (it needs more
  than this machine's 24 GiB: killed, issue 20).
* ``wide_1m`` — 1,000,000 × 5,000 with 500 modelled genes (a 100,000-cell synthetic tissue tiled 10×
  side by side, padded to 5,000 genes): train and one knockout (goal: 16 GiB, knockout ≤ 3 min).
* ``fullmode_50k`` — a full-mode run of 300 genes × 50,000 cells: per-cell betas (cluster betas × a
  smooth spatial field, 50 modulators per gene) stored float32: one knockout (goal ≤ 8 GiB).
* ``moonshot_10m`` — 10,000,000 cells × 61 genes (a 1M-cell synthetic tissue tiled 10×, dense float32
  layer): training and one knockout (goal: within 24 GiB).
* ``ab_61`` — the earlier 61-gene workloads A/B interleaved against ``BEFORE_SRC`` (no slower).

``BEFORE_SRC`` (env ``SPACETRAVLR_BEFORE_SRC``, default ``/tmp/mem_before/src``) is the ``src`` of a
checkout of the commit before this work (``git worktree add /tmp/mem_before 0648900``). A stage of it
runs only when the machine has the memory for it (MemAvailable checked first); otherwise the row says
why it was not run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import workloads as wl
from .common import Ctx, machine_load, row
from .timing import now_iso

BEFORE_SRC = Path(os.environ.get("SPACETRAVLR_BEFORE_SRC", "/tmp/mem_before/src"))
BEFORE_COMMIT = "0648900"
AFTER_SRC = Path(__file__).resolve().parents[1] / "src"
TARGET = "Prdm1"
GIB = 1024.0


# ------------------------------------------------------------------------------------------------
# inputs
# ------------------------------------------------------------------------------------------------

PANELS: dict[str, dict[str, int]] = {
    "61": {},  # the synthetic tissue's defaults: 20 TFs, 16 LR pairs, 12 targets (49 modelled genes)
    "500": {"n_tfs": 60, "n_lr_pairs": 70, "n_targets": 339},  # 24 + 69 + 68 + 339 = 500 modelled genes
}


def _tiled(syn: Any, tiles: int) -> tuple[pd.DataFrame, dict[str, np.ndarray], Any]:
    """obs, obsm and a row reader of ``tiles`` copies of a synthetic tissue placed side by side."""
    a = syn.adata
    n0 = a.n_obs
    side = float(syn.params["side"])
    obs = pd.concat([a.obs.set_axis([f"t{k}_{c}" for c in a.obs_names]) for k in range(tiles)]) if tiles > 1 else a.obs
    xy = np.asarray(a.obsm["spatial"])
    um = np.asarray(a.obsm["X_umap"])
    jitter = np.random.default_rng(7).normal(scale=1e-3 * float(um.std()), size=um.shape)
    obsm = {"spatial": np.vstack([xy + [k * side * 1.05, 0.0] for k in range(tiles)]),
            "X_umap": np.vstack([um + (k > 0) * jitter for k in range(tiles)])}
    X = np.asarray(a.layers["imputed_count"], dtype=np.float32)

    def rows(r0: int, r1: int) -> np.ndarray:
        return X[np.arange(r0, r1) % n0]

    rows.shape = (n0 * tiles, X.shape[1])  # type: ignore[attr-defined]
    return obs, obsm, rows


def wide_inputs(n_cells: int, n_genes: int, *, panel: str = "61", tiles: int = 1, dense: bool = False,
                n_highly_variable: int = 2000, seed: int = 0) -> Path:
    """``tissue.h5ad`` (``imputed_count`` = X, float32, CSR or dense), ``mouse_network.parquet``,
    ``genes.txt`` (the modelled genes) and ``panel.json``."""

    def build(d: Path) -> None:
        from spacetravlr_py import _keys
        from spacetravlr_py.datasets import PAD_PREFIX, padding_blocks, synthetic_tissue
        from spacetravlr_py.io.h5ad_stream import write_streamed_h5ad

        n0 = n_cells // tiles
        syn = synthetic_tissue(n0, seed=seed, **PANELS[panel])
        core = list(syn.adata.var_names)
        n_pad = n_genes - len(core)
        genes = core + [f"{PAD_PREFIX}{i + 1:05d}" for i in range(n_pad)]
        obs, obsm, rows = _tiled(syn, tiles)
        var = pd.DataFrame({_keys.HVG_COLUMN: np.arange(n_genes) < n_highly_variable}, index=genes)
        blocks = padding_blocks(rows, n_pad, density=0.05, seed=seed + 1, rows_per_block=50_000)(n_cells)
        write_streamed_h5ad(d / "tissue.h5ad", obs, var, obsm, _keys.DEFAULT_LAYER, blocks, sparse=not dense)
        syn.network.to_parquet(d / _keys.NETWORK_FILE.format(species="mouse"), index=False)
        (d / "genes.txt").write_text("\n".join(syn.betas) + "\n")
        (d / "panel.json").write_text(json.dumps({"cells": n_cells, "genes": n_genes, "core_genes": len(core),
                                                  "modelled": len(syn.betas), "tiles": tiles, "dense": dense,
                                                  "padding_density": 0.05, "highly_variable": n_highly_variable}))

    tag = f"wide_n{n_cells}_g{n_genes}_p{panel}_t{tiles}_{'dense' if dense else 'csr'}_s{seed}"
    return wl.cached(tag, build)


def fullmode_inputs(n_cells: int = 50_000, n_trained: int = 300, n_mods: int = 50, seed: int = 0) -> Path:
    """A full-mode run folder: ``tissue.h5ad``, the network and ``run/`` with one per-cell (``CellID``)
    float32 betadata file per trained gene: the planted cluster betas plus random network modulators up
    to ``n_mods`` columns, each multiplied per cell by a smooth spatial field of that gene."""

    def build(d: Path) -> None:
        from spacetravlr_py import _keys
        from spacetravlr_py.betadata.frame import BetaFrame, betadata_path, write_betadata
        from spacetravlr_py.datasets import synthetic_tissue, write_padded_tissue
        from spacetravlr_py.naming import lr_name, tfl_name

        syn = synthetic_tissue(n_cells, seed=seed, n_tfs=60, n_lr_pairs=70, n_targets=n_trained - 161)
        assert len(syn.betas) == n_trained, len(syn.betas)
        a = syn.adata
        write_padded_tissue(syn, d / "tissue.h5ad", a.n_vars, n_highly_variable=a.n_vars)
        syn.network.to_parquet(d / _keys.NETWORK_FILE.format(species="mouse"), index=False)
        run = d / "run"
        run.mkdir()
        rng = np.random.default_rng(seed)
        roles = syn.roles
        pairs = [(l, r) for l, r in zip(roles["ligands"], roles["receptors"])]
        xy = np.asarray(a.obsm["spatial"])
        clusters = a.obs["cell_type"].cat.codes.to_numpy()
        ids = list(a.obs_names)
        side = float(syn.params["side"])
        for gene, f in syn.betas.items():
            extra: list[str] = []
            while len(f.modulators) + len(extra) < n_mods:
                kind = rng.integers(3)
                tf = str(rng.choice(roles["tfs"]))
                l, r = pairs[int(rng.integers(len(pairs)))]
                name = tf if kind == 0 else (lr_name(l, r) if kind == 1 else tfl_name(l, tf))
                if gene not in (tf, l, r) and name not in f.modulators and name not in extra:
                    extra.append(name)
            B = np.hstack([f.coefs, 0.2 * rng.normal(size=(f.coefs.shape[0], len(extra)))])
            k = rng.normal(size=2) * 2 * np.pi / side
            fld = 1.0 + 0.4 * np.sin(xy @ k + rng.uniform(0, 2 * np.pi))
            coefs = (B[clusters] * fld[:, None]).astype(np.float32)
            write_betadata(betadata_path(run, gene), BetaFrame(
                gene=gene, row_kind=_keys.CELLID_COL, row_ids=ids, intercept=f.intercept[clusters],
                modulators=[*f.modulators, *extra], coefs=coefs, disk_float32=True))
        final = d.parent / d.name.removesuffix(".tmp")  # where wl.cached moves the folder when complete
        (run / _keys.REPRO_TOML).write_text(f'[data]\nadata_path = "{final / "tissue.h5ad"}"\n[grn]\n'
                                            f'network_data_dir = "{final}"\n[execution]\noutput_dir = '
                                            f'"{final / "run"}"\n')

    return wl.cached(f"fullmode_n{n_cells}_g{n_trained}_m{n_mods}_s{seed}", build)


# ------------------------------------------------------------------------------------------------
# one stage in a fresh process
# ------------------------------------------------------------------------------------------------

LOAD = """
import sys, time
from spacetravlr_py.io.anndata import load_tissue
h5ad, genes_file, lean = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
t0 = time.perf_counter()
if lean:
    genes = [g for g in open(genes_file).read().split() if g]
    t = load_tissue(h5ad, genes=genes, keep_float32=True)
else:
    t = load_tissue(h5ad)
print("TIME", time.perf_counter() - t0, t.expression.shape, t.expression.dtype)
"""
TRAIN = """
import sys
from spacetravlr_py.cli.main import main
sys.exit(main(sys.argv[1:]))
"""
PERTURB = """
import sys
from spacetravlr_py.cli.perturb import main
sys.exit(main(sys.argv[1:]))
"""
FIELD = """
import json, sys, time
import numpy as np
from spacetravlr_py.perturbation.session import RunSession
from spacetravlr_py.transitions import cell_vectors, grid_field, transition_probabilities
toml, gene, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = RunSession.open(toml)
res = s.run(gene, 0.0)
t = s.tissue
t0 = time.perf_counter()
if hasattr(res, "field_inputs"):
    X, D, cols = res.field_inputs()
    g = transition_probabilities(X, D, t.umap, n_neighbors=k, delta_genes=cols)
    n_genes = X.shape[1]
else:  # the implementation before: every gene of the layer, full-width X and Δ
    g = transition_probabilities(t.expression, res.delta, t.umap, n_neighbors=k)
    n_genes = t.expression.shape[1]
V = cell_vectors(g, t.umap)
grid_field(t.umap, V)
print("FIELD", json.dumps({"field_s": time.perf_counter() - t0, "genes": n_genes}))
"""


def mem_available_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024 / 1024
    return 0.0


def wait_for_memory(need_gib: float, log: Any, timeout: float = 1800.0) -> bool:
    """Wait (up to ``timeout``) until the machine has ``need_gib`` available; False if it never does."""
    t0 = time.perf_counter()
    while mem_available_gib() < need_gib:
        if time.perf_counter() - t0 > timeout:
            return False
        log(f"    waiting: {mem_available_gib():.1f} GiB available, {need_gib:.0f} GiB wanted")
        time.sleep(30)
    return True


PEAK = """
import atexit, resource, sys
atexit.register(lambda: print("PEAK_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr))
"""


def measured(code: str, args: list[Any], src: Path, *, timeout: float = 4 * 3600) -> dict[str, Any]:
    """Run ``python -c code args`` with ``src`` on PYTHONPATH; wall seconds, peak RSS (MiB) and output.

    The process is started by a small ``sh`` (see :func:`reference.clean_rss_command`), so its own
    ``ru_maxrss`` (printed at exit) is its peak, not the benchmark process's.
    """
    from .reference import clean_rss_command

    env = {**os.environ, "PYTHONPATH": str(src)}
    cmd = clean_rss_command([sys.executable, "-c", PEAK + code, *map(str, args)])
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timeout after {timeout:.0f} s", "wall_s": time.perf_counter() - t0}
    wall = time.perf_counter() - t0
    peak = [int(x.split()[1]) for x in p.stderr.splitlines() if x.startswith("PEAK_KB ")]
    return {"ok": p.returncode == 0, "returncode": p.returncode, "wall_s": wall,
            "peak_rss_mib": round(peak[-1] / 1024, 1) if peak else None, "stdout": p.stdout[-4000:],
            "stderr": p.stderr[-4000:]}


def stage_load(d: Path, src: Path, lean: bool) -> dict[str, Any]:
    """``load_tissue``: the modelled genes' columns (``lean``, this implementation) or the whole layer."""
    return measured(LOAD, [d / "tissue.h5ad", d / "genes.txt", int(lean)], src)


def stage_train(d: Path, out: Path, src: Path, genes: list[str] | None) -> dict[str, Any]:
    """``spacetravlr`` CLI into an emptied ``out`` (``genes``: the queue; None: every gene of the panel)."""
    if out.exists():
        shutil.rmtree(out)
    args: list[Any] = ["--h5ad", d / "tissue.h5ad", "--network-dir", d, "--output-dir", out, "--plain", "--quiet"]
    if genes is not None:
        args += ["--genes", ",".join(genes)]
    res = measured(TRAIN, args, src)
    man = out / "spacetravlr_manifest.json"
    if res["ok"] and man.exists():
        m = json.loads(man.read_text())
        res["counts"] = m.get("counts")
        res["manifest_timings"] = {k: v for k, v in m.get("timings", {}).items() if k != "per_gene_s"}
    return res


def stage_knockout(run: Path, out: Path, src: Path, gene: str = TARGET) -> dict[str, Any]:
    """``spacetravlr-perturb --gene G --out out`` (4 steps, every gene exported; wall time includes opening
    the run, reading the betadata and writing the feather + JSON)."""
    for p in (out, out.with_suffix(".json")):
        p.unlink(missing_ok=True)
    res = measured(PERTURB, ["--run-toml", run, "--gene", gene, "--out", out, "--verbose"], src)
    if res["ok"] and out.with_suffix(".json").exists():
        res["summary_timings"] = json.loads(out.with_suffix(".json").read_text()).get("timings_s")
        res["feather_mib"] = round(out.stat().st_size / 2**20, 1)
    return res


def stage_field(run: Path, src: Path, k: int = 150) -> dict[str, Any]:
    """The transition field of a knockout on the UMAP (session open and knockout included in the peak)."""
    res = measured(FIELD, [run / "spacetravlr_run_repro.toml", TARGET, k], src)
    for line in res.get("stdout", "").splitlines():
        if line.startswith("FIELD "):
            res.update(json.loads(line[6:]))
    return res


def _side(label: str, r: dict[str, Any] | None, time_key: str = "wall_s") -> dict[str, Any] | None:
    if r is None:
        return None
    if not r.get("ok"):
        return {"label": label, "failed": r.get("error") or f"exit {r.get('returncode')}: "
                + (r.get("stderr") or "")[-300:]}
    out = {"label": label, "median_s": r.get(time_key, r["wall_s"]), "n": 1, "peak_rss_mib": r.get("peak_rss_mib"),
           "memory_method": "ru_maxrss of a fresh process running only this stage (interpreter and imports "
                            "included)",
           "timing": "wall time of that process (imports, reading inputs, the stage, writing outputs)"}
    for k in ("counts", "manifest_timings", "summary_timings", "feather_mib", "genes", "wall_s"):
        if k in r:
            out[k] = r[k]
    return out


def _goal_mem(r: dict[str, Any] | None, gib: float, seconds: float | None = None) -> bool | None:
    if not r or not r.get("ok") or r.get("peak_rss_mib") is None:
        return None
    ok = r["peak_rss_mib"] <= gib * GIB
    if seconds is not None:
        ok = ok and r["wall_s"] <= seconds
    return ok


def _compare_runs(before: Path, after: Path, ko_before: Path, ko_after: Path) -> dict[str, Any]:
    """Bit-identity of the two implementations' outputs: betadata files, the feather frame, the summary."""
    fb = sorted(p.name for p in before.glob("*_betadata.feather"))
    fa = sorted(p.name for p in after.glob("*_betadata.feather"))
    same_bytes = fb == fa and all((before / f).read_bytes() == (after / f).read_bytes() for f in fb)
    out: dict[str, Any] = {"betadata_files": len(fa), "betadata_bytes_identical": same_bytes}
    if ko_before.exists() and ko_after.exists():
        a, b = pd.read_feather(ko_before), pd.read_feather(ko_after)
        out["export_columns"] = int(a.shape[1])
        out["export_frame_identical"] = bool(a.equals(b))
        ja, jb = (json.loads(p.with_suffix(".json").read_text()) for p in (ko_before, ko_after))
        ja.pop("timings_s", None)
        jb.pop("timings_s", None)
        out["summary_json_identical"] = ja == jb
    return out


def run_parity(ctx: Ctx) -> list[dict[str, Any]]:
    """20,000 × 3,001 (61 modelled): every stage, this implementation and the one before, outputs compared."""
    n = 5_000 if ctx.quick else 20_000
    d = wide_inputs(n, 3001)
    genes = [g for g in (d / "genes.txt").read_text().split() if g]
    have_before = BEFORE_SRC.is_dir()
    rows = []
    res: dict[str, dict[str, Any]] = {}
    for side, src in (("after", AFTER_SRC), ("before", BEFORE_SRC)):
        if side == "before" and not have_before:
            continue
        ctx.log(f"wide parity {n:,} × 3,001: {side}")
        wait_for_memory(8, ctx.log)
        res[f"load_{side}"] = stage_load(d, src, lean=side == "after")
        res[f"train_{side}"] = stage_train(d, d / f"run_{side}", src, genes)
        res[f"ko_{side}"] = stage_knockout(d / f"run_{side}", d / f"ko_{side}.feather", src)
        res[f"field_{side}"] = stage_field(d / f"run_{side}", src)
    agree = (_compare_runs(d / "run_before", d / "run_after", d / "ko_before.feather", d / "ko_after.feather")
             if have_before else {})
    size = {"cells": n, "genes": 3001, "modelled": len(genes)}
    before = f"before (commit {BEFORE_COMMIT}: the whole layer dense float64, full-width perturbation state)"
    for stage, what in (("load", "load_tissue"), ("train", f"training of the {len(genes)} modelled genes (CLI)"),
                        ("ko", f"one knockout of {TARGET} (4 steps) + export of every gene (CLI)"),
                        ("field", "transition field on the UMAP, k = 150 (knockout and session in the peak)")):
        a, b = res.get(f"{stage}_after"), res.get(f"{stage}_before")
        key = "field_s" if stage == "field" else "wall_s"
        r = row(f"wide_parity_{stage}", f"wide panel {n:,} cells × 3,001 genes: {what}",
                ours=_side("after: genes read as needed, float32 kept, state over the model's genes", a, key),
                baseline=_side(before, b, key), size=size,
                agreement=agree if stage in ("train", "ko") else {},
                notes=(f"same inputs, each stage in its own fresh process; {machine_load()}. "
                       + ("The field: after = changed + highly variable genes (2,000 marked), before = all 3,001 "
                          "genes (the gene set differs by design)." if stage == "field" else "")))
        if a and b and a.get("peak_rss_mib") and b.get("peak_rss_mib"):
            r["memory_ratio"] = round(b["peak_rss_mib"] / a["peak_rss_mib"], 2)
        rows.append(r)
    return rows


def run_200k(ctx: Ctx) -> list[dict[str, Any]]:
    """200,000 × 3,001 (61 modelled): each stage ≤ 3 GiB, knockout ≤ 30 s; the earlier load and training."""
    n = 50_000 if ctx.quick else 200_000
    d = wide_inputs(n, 3001)
    genes = [g for g in (d / "genes.txt").read_text().split() if g]
    size = {"cells": n, "genes": 3001, "modelled": len(genes)}
    ctx.log(f"wide {n:,} × 3,001")
    wait_for_memory(6, ctx.log)
    a = {"load": stage_load(d, AFTER_SRC, True),
         "train": stage_train(d, d / "run_after", AFTER_SRC, genes)}
    a["ko"] = stage_knockout(d / "run_after", d / "ko_after.feather", AFTER_SRC)
    a["field"] = stage_field(d / "run_after", AFTER_SRC)
    b: dict[str, Any] = {}
    why = ""
    if BEFORE_SRC.is_dir() and not ctx.quick and wait_for_memory(14, ctx.log, timeout=600):
        b["load"] = stage_load(d, BEFORE_SRC, False)
        b["train"] = stage_train(d, d / "run_before", BEFORE_SRC, genes)
    else:
        why = "the earlier implementation not run (less than 14 GiB available or no checkout). "
    rows = []
    for stage, what, goal, ok in (
            ("load", "load_tissue", "≤ 3 GiB", _goal_mem(a["load"], 3)),
            ("train", f"training of the {len(genes)} modelled genes (CLI)", "≤ 3 GiB", _goal_mem(a["train"], 3)),
            ("ko", f"one knockout of {TARGET} (4 steps) + export of every gene (CLI)", "≤ 3 GiB, ≤ 30 s",
             _goal_mem(a["ko"], 3, 30)),
            ("field", "transition field on the UMAP, k = 150", "—", None)):
        key = "field_s" if stage == "field" else "wall_s"
        note = why
        if stage == "ko":
            note += ("The earlier implementation's knockout needs more than this machine's 24 GiB (the whole "
                     "layer as six cells × 3,001 float64 arrays; killed by the kernel, issue 20): not run.")
        r = row(f"wide_200k_{stage}", f"wide panel {n:,} cells × 3,001 genes: {what}",
                ours=_side("after", a[stage], key), baseline=_side("before (commit " + BEFORE_COMMIT + ")",
                                                                    b.get(stage), key),
                size=size, goal=goal if not ctx.quick else "", goal_met=ok if not ctx.quick else None,
                notes=note.strip() + f" {machine_load()}; one run per stage.")
        if b.get(stage, {}).get("peak_rss_mib") and a[stage].get("peak_rss_mib"):
            r["memory_ratio"] = round(b[stage]["peak_rss_mib"] / a[stage]["peak_rss_mib"], 2)
        rows.append(r)
    return rows


def run_1m(ctx: Ctx) -> list[dict[str, Any]]:
    """1,000,000 × 5,000 with 500 modelled genes: training and one knockout within 16 GiB; knockout ≤ 3 min."""
    n, tiles = (100_000, 1) if ctx.quick else (1_000_000, 10)
    d = wide_inputs(n, 5000, panel="500", tiles=tiles)
    genes = [g for g in (d / "genes.txt").read_text().split() if g]
    size = {"cells": n, "genes": 5000, "modelled": len(genes), "tiles": tiles}
    ctx.log(f"wide {n:,} × 5,000, {len(genes)} modelled genes")
    wait_for_memory(17, ctx.log)
    tr = stage_train(d, d / "run_after", AFTER_SRC, genes)
    ko = stage_knockout(d / "run_after", d / "ko_after.feather", AFTER_SRC) if tr["ok"] else None
    tiles_note = (f"a {n // tiles:,}-cell synthetic tissue (500 modelled genes) tiled {tiles}× side by side, "
                  "padded with sparse genes to 5,000. " if tiles > 1 else "")
    base_note = ("The earlier implementation is not run: its load alone is the whole layer dense float64 "
                 f"({n * 5000 * 8 / 2**30:.0f} GiB).")
    return [
        row("wide_1m_train", f"wide panel {n:,} cells × 5,000 genes: training of the {len(genes)} modelled genes",
            ours=_side("after", tr), baseline=None, size=size, goal="within 16 GiB" if not ctx.quick else "",
            goal_met=_goal_mem(tr, 16) if not ctx.quick else None, notes=tiles_note + base_note),
        row("wide_1m_ko", f"wide panel {n:,} cells × 5,000 genes: one knockout (4 steps) + export of every gene",
            ours=_side("after", ko), baseline=None, size=size,
            goal="within 16 GiB, ≤ 3 min" if not ctx.quick else "",
            goal_met=_goal_mem(ko, 16, 180) if not ctx.quick else None, notes=tiles_note + base_note),
    ]


def run_1m_ko(ctx: Ctx) -> list[dict[str, Any]]:
    """The ``wide_1m_ko`` row alone: the knockout of :func:`run_1m` on its trained run (trained first, without
    a row, when the cached run is missing or incomplete)."""
    n, tiles = (100_000, 1) if ctx.quick else (1_000_000, 10)
    d = wide_inputs(n, 5000, panel="500", tiles=tiles)
    genes = [g for g in (d / "genes.txt").read_text().split() if g]
    man = d / "run_after" / "spacetravlr_manifest.json"
    counts = json.loads(man.read_text()).get("counts", {}) if man.exists() else {}
    wait_for_memory(17, ctx.log)
    if counts.get("done", 0) + counts.get("skipped", 0) < len(genes):
        ctx.log(f"wide {n:,} × 5,000: training the {len(genes)} modelled genes first (no row)")
        if not stage_train(d, d / "run_after", AFTER_SRC, genes)["ok"]:
            raise RuntimeError("training of the 1M-cell run failed")
    ko = stage_knockout(d / "run_after", d / "ko_after.feather", AFTER_SRC)
    size = {"cells": n, "genes": 5000, "modelled": len(genes), "tiles": tiles}
    return [row("wide_1m_ko", f"wide panel {n:,} cells × 5,000 genes: one knockout (4 steps) + export of every gene",
                ours=_side("after", ko), baseline=None, size=size,
                goal="within 16 GiB, ≤ 3 min" if not ctx.quick else "",
                goal_met=_goal_mem(ko, 16, 180) if not ctx.quick else None,
                notes=(f"a {n // tiles:,}-cell synthetic tissue (500 modelled genes) tiled {tiles}× side by side, "
                       "padded with sparse genes to 5,000; the knockout on the cached trained run of wide_1m "
                       "(measured alone, after the perturbation learnt to skip models whose modulators did not "
                       "move). The earlier implementation is not run: its load alone is the whole layer dense "
                       f"float64 ({n * 5000 * 8 / 2**30:.0f} GiB)."))]


def run_fullmode(ctx: Ctx) -> list[dict[str, Any]]:
    """A full-mode run of 300 genes × 50,000 cells (per-cell float32 betas): one knockout within 8 GiB."""
    n = 10_000 if ctx.quick else 50_000
    d = fullmode_inputs(n)
    ctx.log(f"full-mode run: 300 genes × {n:,} cells, per-cell float32 betas")
    wait_for_memory(9, ctx.log)
    ko = stage_knockout(d / "run", d / "ko_after.feather", AFTER_SRC)
    size_gib = 300 * n * 50 * 4 / 2**30
    return [row("fullmode_ko", f"full-mode run, 300 genes × {n:,} cells (per-cell betas, 50 modulators each): "
                               "one knockout (4 steps) + export", ours=_side("after", ko), baseline=None,
                size={"cells": n, "genes": 300, "modulators_per_gene": 50},
                goal="≤ 8 GiB" if not ctx.quick else "", goal_met=_goal_mem(ko, 8) if not ctx.quick else None,
                notes=(f"per-cell betas float32 on disk and in memory ({size_gib:.1f} GiB, held once: the Betabase's "
                       "flat array, every model a view of it). The earlier implementation held each frame as "
                       f"float64 and copied it into the flat array ({4 * size_gib:.1f} GiB for the betas alone): "
                       "not run. Betas = planted cluster betas (plus random network modulators to 50 columns) × a "
                       "smooth spatial field per gene."))]


def run_moonshot(ctx: Ctx) -> list[dict[str, Any]]:
    """10,000,000 cells × 61 genes: training and one knockout within 24 GiB."""
    n, tiles = (1_000_000, 1) if ctx.quick else (10_000_000, 10)
    d = wide_inputs(n, 61, tiles=tiles, dense=True, n_highly_variable=61)
    genes = [g for g in (d / "genes.txt").read_text().split() if g]
    size = {"cells": n, "genes": 61, "modelled": len(genes), "tiles": tiles}
    ctx.log(f"moonshot {n:,} × 61")
    wait_for_memory(20, ctx.log, timeout=3600)
    tr = stage_train(d, d / "run_after", AFTER_SRC, genes)
    ko = stage_knockout(d / "run_after", d / "ko_after.feather", AFTER_SRC) if tr["ok"] else None
    note = (f"a {n // tiles:,}-cell synthetic tissue tiled {tiles}× side by side, dense float32 layer. "
            "Memory at this size: the layer's 61 columns float32, received ligands and LR features float64, "
            "the perturbation's two cells × 61 float64 state buffers.")
    return [
        row("moonshot_train", f"moonshot: {n:,} cells × 61 genes, training", ours=_side("after", tr), baseline=None,
            size=size, goal="within 24 GiB" if not ctx.quick else "",
            goal_met=_goal_mem(tr, 24) if not ctx.quick else None, notes=note),
        row("moonshot_ko", f"moonshot: {n:,} cells × 61 genes, one knockout (4 steps) + export",
            ours=_side("after", ko), baseline=None, size=size, goal="within 24 GiB" if not ctx.quick else "",
            goal_met=_goal_mem(ko, 24) if not ctx.quick else None, notes=note),
    ]


AB_PERTURB = """
import sys, time, json
sys.path.insert(0, sys.argv[2])
from benchmarks.bench_perturb import seed_factory
run = seed_factory(int(sys.argv[1]))
run()
ts = []
for _ in range(3):
    t0 = time.perf_counter(); run(); ts.append(time.perf_counter() - t0)
print("AB", json.dumps(ts))
"""


def run_ab61(ctx: Ctx) -> list[dict[str, Any]]:
    """The 61-gene perturbation rows, this implementation against the one before, A B A B in fresh processes."""
    if not BEFORE_SRC.is_dir():
        return []
    root = str(Path(__file__).resolve().parents[1])
    rows = []
    for n in ((20_000,) if ctx.quick else (100_000, 1_000_000)):
        wl.perturb_inputs(n, reference_files=False)
        t: dict[str, list[float]] = {"after": [], "before": []}
        peaks: dict[str, list[float]] = {"after": [], "before": []}
        for rep in range(1 if n >= 1_000_000 else max(2, ctx.repeats // 2)):
            for side, src in (("after", AFTER_SRC), ("before", BEFORE_SRC)):
                wait_for_memory(8 if n >= 1_000_000 else 4, ctx.log)
                r = measured(AB_PERTURB, [n, root], src)
                if not r["ok"]:
                    raise RuntimeError(f"A/B perturbation ({side}) failed: {r['stderr'][-1500:]}")
                line = next(x for x in r["stdout"].splitlines() if x.startswith("AB "))
                t[side] += json.loads(line[3:])
                peaks[side].append(r["peak_rss_mib"])
                ctx.log(f"    A/B {n:,} {side} rep {rep}: {np.median(json.loads(line[3:])):.3f} s, "
                        f"{r['peak_rss_mib']} MiB")
        med = {s: float(np.median(v)) for s, v in t.items()}
        rows.append(row(f"ab61_perturb_{n}", f"61-gene perturbation (50 trained genes, 4 steps, approximate kernel), "
                        f"{n:,} cells: after vs before",
                        ours={"label": "after", "median_s": med["after"], "n": len(t["after"]),
                              "peak_rss_mib": max(peaks["after"]),
                              "timing": "Perturber + run in-process after a warm-up, fresh processes alternated"},
                        baseline={"label": f"before (commit {BEFORE_COMMIT})", "median_s": med["before"],
                                  "n": len(t["before"]), "peak_rss_mib": max(peaks["before"]),
                                  "timing": "same"},
                        size={"cells": n, "trained": 50}, goal="no slower than before",
                        goal_met=med["after"] <= 1.05 * med["before"],
                        notes=f"{machine_load()}; peak = ru_maxrss of each process (tissue loaded whole on "
                              "both sides: the benchmark's own loader)"))
    return rows


def run_all(ctx: Ctx) -> list[dict[str, Any]]:
    """Every wide workload (``python -m benchmarks.run --only wide``)."""
    out = []
    for fn in (run_parity, run_200k, run_fullmode, run_1m, run_moonshot, run_ab61):
        t0 = time.perf_counter()
        try:
            out += fn(ctx)
        except Exception as e:  # one workload failing must not lose the others' rows
            ctx.log(f"!! {fn.__name__} failed: {e}")
            out.append(row(f"wide_failed_{fn.__name__}", f"{fn.__name__} failed", ours={}, baseline=None,
                           notes=str(e)[-500:]))
        ctx.log(f"    {fn.__name__}: {time.perf_counter() - t0:.0f} s ({now_iso()})")
    return out

"""Run the benchmark suite: ``python -m benchmarks.run [--quick] [--only NAME[,NAME]] [--repeats N]``.

Writes ``docs/benchmarks.md`` (table), ``docs/benchmarks.json`` (everything measured) and
``docs/benchmark_scaling.png``. ``--quick`` runs small sizes (a smoke run of a few minutes) and writes
to ``.bench/results-quick/`` unless ``--out-dir`` is given, so it never overwrites the full results.
``--only`` runs some workloads and keeps the other rows of the existing JSON (newest results win).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import (
    bench_cli,
    bench_dask,
    bench_full,
    bench_mcp,
    bench_perturb,
    bench_received,
    bench_results,
    bench_scaling,
    bench_splash,
    bench_train,
    bench_transition,
    bench_viewer,
    bench_viewer_paint,
    bench_wide,
)
from .common import Ctx
from .timing import machine_info, now_iso

ROOT = Path(__file__).resolve().parents[1]

#: workload name -> (function, one-line description); run in this order
CASES: dict[str, tuple[Callable[[Ctx], Any], str]] = {
    "received_exact": (bench_received.run_exact, "received ligands, exact, 10k × 100 (vs NumPy and the reference)"),
    "received_approx": (bench_received.run_approx, "received ligands, approximate, 100k × 100 (vs exact NumPy)"),
    "splash": (bench_splash.run, "splash, 50 genes × 200 modulators, 100k cells (vs the reference)"),
    "perturb_exact": (bench_perturb.run_exact, "perturbation, 50 genes, 4 steps, 10k cells (vs the reference)"),
    "perturb_approx": (bench_perturb.run_approx, "perturbation, 100k cells, approximate kernel"),
    "train": (bench_train.run_vs_reference, "seed training, 200 genes × 2,000 cells (vs the reference)"),
    "train_large": (bench_train.run_large, "seed training, 3,000 genes × 10,000 cells, real network"),
    "full": (bench_full.run_vs_reference, "full mode per gene, 2,000 cells, 10 epochs (vs the reference's CNN fit)"),
    "full_ceiling": (bench_full.run_ceiling, "full mode vs a bare PyTorch loop over the same cell-passes"),
    "full_200": (bench_full.run_200, "full mode, 200 genes × 2,000 cells × 10 epochs, end to end"),
    "full_heldout": (bench_full.run_heldout, "full mode held-out R² of lasso and CNN, STARmap, 60 genes"),
    "transition": (bench_transition.run_vs_reference, "transition probabilities, 10k × 2,000 (vs the reference)"),
    "transition_numpy": (bench_transition.run_vs_numpy, "transition probabilities, 10k × 2,000 (vs NumPy)"),
    "transition_100k": (bench_transition.run_100k, "transition field, 100k × 2,000, k = 150"),
    "viewer": (bench_viewer.run, "spatial_viewer under load: preview, umap-field, expression at 100k cells"),
    "viewer_first_paint": (bench_viewer_paint.run, "viewer first paint, 100k cells, headless Chromium"),
    "dask": (bench_dask.run, "seed training on Dask local:1 / local:2 vs processes ×2 and serial, 500 genes"),
    "dask_memory": (bench_dask.run_memory, "Dask worker memory vs cells × genes (sizing)"),
    "interactions": (bench_results.run_interactions, "collect-interactions, 3,000 genes × 100k cells, seed and full"),
    "screen_all": (bench_results.run_screen, "knockout screen of every regulator, 3,000-gene run × 10k cells"),
    "cli_help": (bench_cli.run, "`spacetravlr --help` start-up"),
    "mcp": (bench_mcp.run, "`spacetravlr mcp`: start-up over stdio, responsiveness during a perturbation"),
    "scaling": (bench_scaling.run, "scaling sweep (cells 1k → 100k, targets 50 → 200) and its plot"),
    "wide_parity": (bench_wide.run_parity, "wide panel 20k × 3,001: every stage, after vs before, outputs compared"),
    "wide_200k": (bench_wide.run_200k, "wide panel 200k × 3,001: load / train / knockout + export / field"),
    "fullmode_50k": (bench_wide.run_fullmode, "full-mode run 300 genes × 50k cells: knockout (per-cell float32)"),
    "wide_1m": (bench_wide.run_1m, "wide panel 1M × 5,000 (500 modelled): training and one knockout"),
    "wide_1m_ko": (bench_wide.run_1m_ko, "wide panel 1M × 5,000: the knockout alone, on wide_1m's trained run"),
    "moonshot_10m": (bench_wide.run_moonshot, "moonshot: 10M cells × 61 genes, training and one knockout"),
    "ab_61": (bench_wide.run_ab61, "61-gene perturbation rows, after vs before (A/B, fresh processes)"),
}


def _fmt_s(x: float | None) -> str:
    if x is None:
        return "—"
    if x >= 7200:
        return f"{x / 3600:.1f} h"
    if x >= 120:
        return f"{x / 60:.1f} min"
    if x >= 10:
        return f"{x:.1f} s"
    if x >= 0.1:
        return f"{x:.2f} s"
    return f"{x * 1000:.1f} ms"


def _fmt_mem(m: float | None) -> str:
    if m is None:
        return "—"
    return f"{m / 1024:.2f} GiB" if m >= 1024 else f"{m:.0f} MiB"


def _fmt_num(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{x:.1e}" if (x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e4)) else f"{x:.3g}"


def _agreement_cell(a: dict[str, Any]) -> str:
    if not a:
        return "—"
    if "max_abs_delta_r2" in a:
        return (f"\\|ΔR²\\| ≤ {a['max_abs_delta_r2']:.2g} (median {a['median_delta_r2_ours_minus_ref']:+.2g}); "
                f"mean R² {a['mean_r2_ours']:.3f} vs {a['mean_r2_reference']:.3f}")
    if "heldout" in a:
        h = a["heldout"]
        return (f"held-out R² CNN {h.get('mean_r2_cnn_heldout', float('nan')):.4f} vs lasso "
                f"{h.get('mean_r2_lasso_heldout', float('nan')):.4f} ({h['fits_heldout']} fits)")
    if "max_rel_err_per_ligand" in a:
        return f"max abs {_fmt_num(a['max_abs_diff'])}; rel. error {_fmt_num(a['max_rel_err_per_ligand'])}·max"
    if a.get("max_abs_diff") is not None:
        s = f"max abs {_fmt_num(a['max_abs_diff'])}"
        if a.get("max_rel_diff") is not None:
            s += f" (rel {_fmt_num(a['max_rel_diff'])})"
        return s
    return "—"


def _ratio_cell(r: dict[str, Any]) -> str:
    if r.get("ratio") is None:
        return "—"
    s = f"**{r['ratio']:.1f}×**" if r["ratio"] >= 1 else f"{r['ratio']:.2f}×"
    if r.get("ratio_label"):
        s += f" ({r['ratio_label']})"
    return s


def _machine_short(m: dict[str, Any]) -> str:
    return f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores"


def write_markdown(path: Path, data: dict[str, Any]) -> None:
    m = data["machine"]
    v = m.get("versions", {})
    rv = m.get("reference_versions", {})
    lines = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`python -m benchmarks.run`); the machine-readable results, with every "
        "individual time, are in [`benchmarks.json`](benchmarks.json). Ratio = baseline time / our time "
        "(higher is better for us), each side the median of its runs, run interleaved A B A B after a "
        "warm-up. Agreement is the maximum difference between our output and the baseline's on the same "
        "inputs. How each side was timed and measured is listed under the table.",
        "",
        f"- Machine: {m.get('cpu')}, {m.get('cores')} cores, {m.get('mem_gib')} GiB, {m.get('os')}",
        f"- Ours: spacetravlr {v.get('spacetravlr')}, Python {m.get('python')}, numpy {v.get('numpy')}, "
        f"scipy {v.get('scipy')}, numba {v.get('numba')}, pandas {v.get('pandas')}",
        f"- Reference: SpaceTravLR {rv.get('SpaceTravLR', '—')} (PyPI), Python {rv.get('python', '—')}, "
        f"numpy {rv.get('numpy', '—')}, numba {rv.get('numba', '—')}, pandas {rv.get('pandas', '—')}, "
        "run through `../shared/tools/reference/harness.py` in its own venv",
        f"- Updated: {data.get('generated')}" + (" (quick sizes)" if data.get("quick") else ""),
    ]
    if data.get("note"):
        lines.append(f"- Note: {data['note']}")
    lines += ["", "| Workload | Ours | Baseline | Ratio | Agreement | Peak memory (ours / baseline) | Goal | Date |",
              "|---|---|---|---|---|---|---|---|"]
    for r in data["rows"]:
        o, b = r.get("ours") or {}, r.get("baseline") or {}
        base = "—"
        if b:
            base = f"{_fmt_s(b.get('median_s'))} ({b.get('label', '')}"
            base += f"; n={b.get('n')})" if b.get("n") else ")"
        goal = r.get("goal") or ""
        if goal and r.get("goal_met") is not None:
            goal += " ✅" if r["goal_met"] else " ❌"
        lines.append(
            f"| {r['workload']} | {_fmt_s(o.get('median_s'))} (n={o.get('n', '?')}) | {base} | {_ratio_cell(r)} | "
            f"{_agreement_cell(r.get('agreement') or {})} | {_fmt_mem(o.get('peak_rss_mib'))} / "
            f"{_fmt_mem(b.get('peak_rss_mib')) if b else '—'} | {goal or '—'} | {str(r.get('date', ''))[:10]} |")
    lines += ["", "## Details", ""]
    for r in data["rows"]:
        o, b = r.get("ours") or {}, r.get("baseline") or {}
        lines.append(f"### {r['workload']} (`{r['name']}`)")
        lines.append("")
        lines.append(f"- Ours: {o.get('label', '')}; median {_fmt_s(o.get('median_s'))} of {o.get('n')} "
                     f"(min {_fmt_s(o.get('min_s'))}, max {_fmt_s(o.get('max_s'))})"
                     + (f"; {o['timing']}" if o.get("timing") else "; in-process wall time of the call"))
        if o.get("compile_s") is not None:
            lines.append(f"- Ours, numba compile time (separate): {_fmt_s(o['compile_s'])} ({o.get('compile_method')})")
        if o.get("peak_rss_mib") is not None:
            lines.append(f"- Ours, peak memory {_fmt_mem(o['peak_rss_mib'])}: {o.get('memory_method')}"
                         + (f"; after imports and loading: {_fmt_mem(o['setup_rss_mib'])}" if o.get("setup_rss_mib")
                            else ""))
        if b:
            lines.append(f"- Baseline: {b.get('label', '')}; median {_fmt_s(b.get('median_s'))} of {b.get('n')}"
                         + (f"; {b['timing']}" if b.get("timing") else ""))
            if b.get("wall_median_s") is not None:
                lines.append(f"- Baseline wall time: median {_fmt_s(b['wall_median_s'])} ({b.get('wall_note')})")
            if b.get("t_jit_warmup_s") is not None:
                lines.append(f"- Baseline JIT warm-up (excluded, first call): {_fmt_s(b['t_jit_warmup_s'])}")
            if b.get("peak_rss_mib") is not None:
                lines.append(f"- Baseline peak memory {_fmt_mem(b['peak_rss_mib'])}: {b.get('memory_method')}")
        if r.get("agreement"):
            lines.append(f"- Agreement: `{json.dumps(r['agreement'], default=str)}`")
        if r.get("size"):
            lines.append(f"- Size: `{json.dumps(r['size'])}`")
        if r.get("notes"):
            lines.append(f"- Notes: {r['notes']}")
        lines.append("")
    if data.get("scaling"):
        lines += ["## Scaling", "", "![scaling](benchmark_scaling.png)", "",
                  data["scaling"].get("method", ""), ""]
        for key, xkey in (("received", "cells"), ("perturb", "cells"), ("train", "targets")):
            pts = data["scaling"].get(key) or []
            cols = sorted({k for p in pts for k in p if k.endswith("_s")})
            if not pts:
                continue
            head = " | ".join(bench_scaling.LABELS.get(c, c) for c in cols)
            lines += [f"**{key}**", "", f"| {xkey} | {head} |",
                      "|---" * (len(cols) + 1) + "|"]
            for p in pts:
                lines.append(f"| {p[xkey]:,} | " + " | ".join(_fmt_s(p.get(c)) for c in cols) + " |")
            lines.append("")
    missing = list(data.get("missing", [])) + STATIC_GAPS
    lines += ["## Not measured / limits", ""] + [f"- {x}" for x in missing] + [""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


STATIC_GAPS = [
    "The Rust port's published figures (PERFORMANCE.md, baseline 3) are not re-run: different hardware; compare "
    "ratios only.",
    "At 100k cells the reference is not run (its received-ligand and transition code keep N×N dense arrays); the "
    "rows say so and compare with NumPy or with our exact path instead, and the large training row estimates the "
    "reference from a few targets.",
    "Training betas are not compared coefficient by coefficient: neither side converges in 100 iterations "
    "(reference quirk 20); predictions and R² on the reference's own design matrices are compared instead.",
    "No numba compile time for the large training row (it is run once); see the 200-gene training row.",
]


def render(json_path: Path) -> Path:
    """Rewrite ``benchmarks.md`` next to ``json_path`` from the JSON (no measurement)."""
    data = json.loads(json_path.read_text())
    md = json_path.with_suffix(".md")
    write_markdown(md, data)
    return md


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    p.add_argument("--only", help="comma list of workloads: " + ", ".join(CASES))
    p.add_argument("--skip", help="comma list of workloads to leave out")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed runs per side after the warm-up (default 5; 2 with --quick)")
    p.add_argument("--max-ref-repeats", type=int, default=None,
                   help="cap the reference's runs on the slow training/transition rows")
    p.add_argument("--train-parallel", type=int, default=1, help="[execution].n_parallel of the large training row")
    p.add_argument("--no-reference", action="store_true", help="do not run the Python reference")
    p.add_argument("--no-memory", action="store_true", help="skip the fresh-process memory/compile measurements")
    p.add_argument("--memory", action="store_true", help="measure memory/compile time with --quick too")
    p.add_argument("--threads", type=int, default=None, help="threads of the reference process (default: all cores)")
    p.add_argument("--out-dir", help="where benchmarks.md/json and the plot go (default docs/; with --quick "
                   ".bench/results-quick)")
    p.add_argument("--note", default="", help="a line for the header of benchmarks.md (e.g. 'shared machine')")
    p.add_argument("--render", action="store_true", help="only rewrite benchmarks.md from benchmarks.json")
    a = p.parse_args(argv)
    if a.render:
        base = Path(a.out_dir) if a.out_dir else (ROOT / ".bench" / "results-quick" if a.quick else ROOT / "docs")
        print(render(base / "benchmarks.json"))
        return 0
    names = list(CASES)
    if a.only:
        want = [x.strip() for x in a.only.split(",") if x.strip()]
        bad = [x for x in want if x not in CASES]
        if bad:
            p.error(f"unknown workload(s) {bad}; choose from {', '.join(CASES)}")
        names = [n for n in CASES if n in want]
    if a.skip:
        names = [n for n in names if n not in {x.strip() for x in a.skip.split(",")}]
    out_dir = Path(a.out_dir) if a.out_dir else (ROOT / ".bench" / "results-quick" if a.quick else ROOT / "docs")
    json_path, md_path = out_dir / "benchmarks.json", out_dir / "benchmarks.md"
    png_path = out_dir / "benchmark_scaling.png"
    logging.basicConfig(level=logging.WARNING)
    t_start = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t_start:7.1f}s] {msg}", flush=True)

    old: dict[str, Any] = {}
    if json_path.exists():
        try:
            old = json.loads(json_path.read_text())
        except ValueError:
            old = {}
    if old.get("quick", a.quick) != a.quick:
        old = {}  # never mix quick and full results
    threads = a.threads or (os.cpu_count() or 2)
    repeats = a.repeats or (2 if a.quick else 5)
    ctx = Ctx(quick=a.quick, repeats=repeats, measure_memory=(a.memory or not a.quick) and not a.no_memory,
              use_reference=not a.no_reference, threads=threads, log=log, share_session=a.quick)
    if a.max_ref_repeats:
        ctx.extras["max_ref_repeats"] = a.max_ref_repeats
    ctx.extras["train_parallel"] = a.train_parallel
    for r in old.get("rows", []):  # earlier reference points for the extrapolations / the sweep
        if r.get("name") == "perturb_exact_vs_reference" and r.get("baseline"):
            ctx.extras["perturb_reference_points"] = [{"cells": r["size"]["cells"],
                                                       "t_core_s": r["baseline"]["median_s"]}]
        if r.get("name") == "train_vs_reference" and r.get("baseline"):
            ctx.extras["train_reference_point"] = {"targets": r["size"]["targets"],
                                                   "t_core_s": r["baseline"]["median_s"]}
    log(f"machine: {ctx.reference_reason}")
    machine = machine_info(with_reference=ctx.reference_ok)
    rows: list[dict[str, Any]] = []
    scaling = old.get("scaling")
    failures: list[str] = []
    try:
        for name in names:
            fn, desc = CASES[name]
            log(f"== {name}: {desc}")
            try:
                res = fn(ctx)
            except Exception:
                tb = traceback.format_exc()
                log(f"!! {name} failed:\n{tb}")
                failures.append(f"{name}: {tb.strip().splitlines()[-1]}")
                continue
            if name == "scaling":
                scaling = res
                bench_scaling.plot(scaling, png_path, title=f"{machine['cpu']}, {machine['cores']} cores"
                                   + (" (quick sizes)" if a.quick else ""))
            else:
                for r in res:
                    r["machine"] = _machine_short(machine)
                rows.extend(res)
    finally:
        ctx.close()
    new_names = {r["name"] for r in rows}
    kept = [r for r in old.get("rows", []) if r["name"] not in new_names]
    all_rows = sorted(kept + rows, key=lambda r: _row_rank(r["name"]))
    missing = []
    if not ctx.reference_ok:
        missing.append(f"reference comparisons: {ctx.reference_reason}")
    missing += [f"failed: {f}" for f in failures]
    data = {"generated": now_iso(), "quick": a.quick, "machine": machine, "rows": all_rows, "scaling": scaling,
            "note": a.note, "missing": missing, "repeats": repeats,
            "command": "python -m benchmarks.run " + " ".join(sys.argv[1:] if argv is None else argv)}
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(data, indent=1, default=str))
    write_markdown(md_path, data)
    log(f"wrote {md_path} and {json_path}" + (f" and {png_path}" if scaling else ""))
    return 1 if failures else 0


_ROW_ORDER = ["received_exact_gaussian_vs_numpy", "received_exact_truncated_vs_numpy",
              "received_exact_truncated_vs_reference", "received_approx_vs_numpy", "splash_vs_reference",
              "perturb_exact_vs_reference", "perturb_approx", "train_vs_reference", "train_large",
              "dask_train", "dask_worker_memory", "full_vs_reference", "full_ceiling", "full_200",
              "full_heldout_starmap",
              "transition_vs_reference", "transition_vs_numpy", "transition_field", "viewer_preview",
              "viewer_umap_field", "viewer_gene_expression", "cli_help_spacetravlr",
              "cli_help_spacetravlr_perturb"]


def _row_rank(name: str) -> int:
    return _ROW_ORDER.index(name) if name in _ROW_ORDER else len(_ROW_ORDER)


if __name__ == "__main__":
    sys.exit(main())

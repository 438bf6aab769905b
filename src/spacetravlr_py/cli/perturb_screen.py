"""``spacetravlr-perturb screen``: knock out (or overexpress) regulators one at a time and rank them by impact;
resumable in an output folder, with parallel worker processes (:mod:`spacetravlr_py.perturbation.screen_run`)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from ._common import EXIT_OK, new_parser
from .perturb import PROG, _add_common, _open, _overrides, _perturb_toml

EPILOG = """\
examples:
  spacetravlr-perturb screen --run-toml run/spacetravlr_run_repro.toml --out-dir screen/ --workers 4
  spacetravlr-perturb screen --run-toml run/ --roles ligand --out-dir screen_ligands/ --top 10
  spacetravlr-perturb screen --run-toml run/ --genes-file regulators.txt --mode overexpress --out-dir oe/
  spacetravlr-perturb screen --run-toml run/ --out-dir screen/ --scheduler tcp://head:8786

--out-dir makes the screen resumable: each finished gene is one file (genes/<gene>.json); rerunning the
same command skips finished genes, and a finished screen is not recomputed. Outputs: screen.csv/.json
(ranked), screen_cell_types.csv (mean |Δ| per gene × cell type), screen_top.png, screen_heatmap.png.
Genes that modulate no trained gene are listed and skipped.
"""


def build_parser() -> argparse.ArgumentParser:
    p = new_parser(f"{PROG} screen", "Knock out (or overexpress) every TF, ligand and receptor that has betas (or "
                   "the genes you choose), one at a time; rank them by impact and score each cell type.", EPILOG)
    _add_common(p)
    p.add_argument("--mode", choices=["knockout", "overexpress"], default="knockout")
    p.add_argument("--genes", metavar="A,B", help="screen these genes")
    p.add_argument("--genes-file", metavar="PATH", help="screen the genes listed in a file (one per line or "
                   "comma-separated; # comments)")
    p.add_argument("--roles", metavar="R,R", help="screen every gene with these roles in the models: tf, ligand, "
                   "receptor (default all three; with --genes, keeps the listed genes with these roles)")
    p.add_argument("--workers", type=int, default=1, metavar="N", help="local worker processes (default 1)")
    p.add_argument("--out-dir", metavar="DIR", help="the screen folder: resumable results, ranked table, figures")
    p.add_argument("--no-figures", action="store_true", help="do not draw screen_top.png / screen_heatmap.png")
    p.add_argument("--top", type=int, default=20, help="rows to print (default 20)")
    return p


def _split(text: str | None) -> list[str]:
    return [g.strip() for g in text.split(",") if g.strip()] if text else []


def _request(a: argparse.Namespace) -> Any:
    from ..errors import InputError
    from ..perturbation.screen import check_roles, read_gene_file
    from ..perturbation.screen_files import ScreenRequest

    ptoml = _perturb_toml(a)
    run_toml = a.run_toml or (ptoml.run_toml if ptoml else None)
    if not run_toml:
        raise InputError("--run-toml is required (the spacetravlr_run_repro.toml written by the training run)")
    p = Path(run_toml).expanduser()
    if p.is_dir():
        from .. import _keys

        p = p / _keys.REPRO_TOML
    genes = _split(a.genes) + (read_gene_file(a.genes_file) if a.genes_file else [])
    roles = list(check_roles(_split(a.roles))) if a.roles else None
    if a.workers < 1:
        raise InputError(f"--workers must be >= 1, got {a.workers}")
    settings = {**(ptoml.overlay if ptoml else {}), **{k: v for k, v in _overrides(a).items() if v is not None}}
    return ScreenRequest(run_toml=str(p.resolve()), mode=a.mode, genes=list(dict.fromkeys(genes)) or None,
                         roles=roles, n_propagation=a.n_propagation, settings=settings)


def _print_ranked(ranked: Any, top: int) -> None:
    for r in ranked.head(top).itertuples(index=False):
        print(f"  {r.rank:>3}. {r.gene:<14} {r.roles:<22} impact {r.impact:.4g}  cell types {r.top_cell_types}"
              f"  → {r.top_affected}")


def main(a: argparse.Namespace) -> int:
    from ..perturbation.screen import rank_scores, skipped_line
    from ..perturbation.screen_files import load_screen
    from ..perturbation.screen_run import (
        ProcessScreen,
        SerialScreen,
        SessionRecipe,
        is_finished,
        plan_screen,
        prior_screen,
        run_screen,
    )

    request = _request(a)
    prior = prior_screen(a.out_dir, request) if a.out_dir else None
    if prior is not None and is_finished(a.out_dir, prior):
        s = load_screen(a.out_dir)
        print(f"{a.out_dir}: this {request.mode} screen of {len(prior.genes)} genes is finished; nothing recomputed")
        _print_ranked(s.ranked, a.top)
        return EXIT_OK
    ptoml = _perturb_toml(a)
    recipe = SessionRecipe(request.run_toml, {k: v for k, v in _overrides(a).items() if v is not None},
                           ptoml.apply if ptoml else None, a.threads)
    executor: Any
    if a.scheduler:  # a Dask cluster: this process opens the run and ships it once per worker
        from ..perturbation.dask_jobs import DaskScreen
        from .perturb import _check_scheduler

        _check_scheduler(a.scheduler)
        session = _open(a)
        executor = DaskScreen(a.scheduler, session)
    elif a.workers > 1:  # the workers open the run; this process only to plan a new screen
        session = None if prior is not None else _open(a)
        executor = ProcessScreen(recipe, a.workers)
    else:
        session = _open(a)
        executor = SerialScreen(session)
    t0 = time.perf_counter()

    def plan(spec: Any, n_left: int) -> None:
        if spec.skipped:
            print(skipped_line(spec.skipped), file=sys.stderr)
        done = len(spec.genes) - n_left
        print(f"{request.mode} screen of {len(spec.genes)} genes" + (f" ({done} already finished)" if done else "")
              + (f", {a.workers} worker processes" if a.workers > 1 else ""), file=sys.stderr)

    def tick(score: Any, i: int, n: int) -> None:
        if a.verbose:
            print(f"  [{i}/{n}] {score.gene}: impact {score.impact:.4g} ({score.seconds:.2f}s)", file=sys.stderr)

    if a.out_dir:
        out = run_screen(a.out_dir, request, recipe=recipe, session=session, executor=executor,
                         figures=not a.no_figures, on_plan=plan, on_done=tick)
        ranked = load_screen(a.out_dir).ranked
        n_new = len(out.computed)
    else:
        assert session is not None
        spec = plan_screen(session, request)
        plan(spec, len(spec.tasks))
        scores = []
        for i, score in enumerate(executor.map(spec.tasks), 1):
            scores.append(score)
            tick(score, i, len(spec.tasks))
        ranked = rank_scores(scores)
        n_new = len(ranked)
    n = len(ranked)
    print(f"{request.mode} screen of {n} genes ({n_new} computed now) in {time.perf_counter() - t0:.1f}s; "
          f"top {min(a.top, n)}:")
    _print_ranked(ranked, a.top)
    if a.out_dir:
        print("wrote " + ", ".join(str(p) for p in out.files.values()))
    return EXIT_OK

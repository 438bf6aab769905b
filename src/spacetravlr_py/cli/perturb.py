"""``spacetravlr-perturb``: simulate knockouts / overexpression with a trained run.

Modes: single export (``--gene`` + ``--out``), batch (``--batch-toml``), ``compare`` (one perturbation in two
conditions of a run trained with ``--condition``), ``screen`` (knock out every TF, ligand and receptor with
betas and rank by impact: :mod:`.perturb_screen`), ``neighbours`` (how the cells outside a scoped
perturbation respond: :mod:`.perturb_neighbours`), and, when none is given on a terminal, the workbench
(:mod:`spacetravlr_py.tui.workbench`; a line prompt without Textual).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Any

from ._common import EXIT_OK, guarded, new_parser, run_console

PROG = "spacetravlr-perturb"
SUBCOMMANDS = {"screen": "perturb_screen", "neighbours": "perturb_neighbours"}
"""Subcommand -> module under spacetravlr_py.cli (``build_parser()`` and ``main(args)``)."""

EPILOG = """\
examples:
  spacetravlr-perturb --run-toml run/spacetravlr_run_repro.toml --gene Foxo1 --out foxo1_ko.feather
  spacetravlr-perturb --run-toml run/spacetravlr_run_repro.toml --gene Foxo1 --out ko/foxo1.feather --field
  spacetravlr-perturb --run-toml run/spacetravlr_run_repro.toml --gene Tgfb1 --desired-expr 4 \\
      --cells-csv cells.csv --cells-csv-column tumour --n-propagation 3 --out tgfb1_oe.feather --verbose
  spacetravlr-perturb --run-toml run/spacetravlr_run_repro.toml --batch-toml jobs.toml --batch-parallelism 2
  spacetravlr-perturb screen --run-toml run/spacetravlr_run_repro.toml --out-dir screen/ --workers 2
  spacetravlr-perturb neighbours --run-toml run/spacetravlr_run_repro.toml --gene Il6 --cell-types ct2 --out-dir nb/
  spacetravlr-perturb --config perturb.toml --gene Foxo1 --out foxo1_ko.feather
  spacetravlr-perturb perturb.toml                # a perturbation TOML holding jobs runs them as a batch
  spacetravlr-perturb --run-toml run/spacetravlr_run_repro.toml --make-cells-csv cells.csv
  spacetravlr-perturb --run-toml by_sample/spacetravlr_run_repro.toml --condition ctrl --gene Foxo1 --out ko.feather
  spacetravlr-perturb compare --run-toml by_sample/spacetravlr_run_repro.toml --conditions ctrl,treated \
      --gene Foxo1 --out foxo1_ctrl_vs_treated       # genes whose response differs (CSV + JSON)

perturbation TOML (--config / --perturb-toml / first argument): run_toml = "run/spacetravlr_run_repro.toml",
[data] / [perturbation] / [spatial] sections merged key by key onto the run's repro TOML, top-level
beta_scale_factor / beta_cap read as [perturbation] keys, any other top-level key a batch-job field.
batch files: parallelism = 2, and radius / ligand_grid_factor / contact_distance to perturb with
another received-ligand kernel (recomputed once for the jobs that use it).

outputs: <out>.feather (CellID + every gene, simulated expression; --changed-only: the genes that moved) and
<out>.json (top affected genes, per-cluster mean |Δ|, timings).
"""


def _floats(s: str) -> list[float]:
    try:
        return [float(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or comma-separated numbers, got {s!r}") from None


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run-toml", metavar="TOML", help="spacetravlr_run_repro.toml of a training run (its folder "
                   "holds the betadata); wins over run_toml of --config")
    p.add_argument("--config", "--perturb-toml", dest="config", metavar="TOML",
                   help="perturbation TOML: run_toml, [data]/[perturbation]/[spatial] overlays onto the run's "
                   "repro TOML, batch-job fields (e.g. --config perturb.toml)")
    p.add_argument("--condition", metavar="GROUP", help="a run trained with --condition: the group whose models "
                   "and cells to use (its label or folder under conditions/), e.g. --condition ctrl")
    p.add_argument("--n-propagation", type=int, metavar="N", help="propagation steps (default from the TOML)")
    p.add_argument("--beta-scale-factor", type=float, help="[perturbation].beta_scale_factor")
    p.add_argument("--beta-cap", type=float, help="[perturbation].beta_cap")
    p.add_argument("--clip", choices=["zero_to_max", "observed_range"], help="[perturbation].clip")
    p.add_argument("--threads", type=int, help="numba/BLAS threads (default: all cores)")
    p.add_argument("--scheduler", metavar="ADDR", help="run batch jobs / screened genes on a Dask cluster: "
                   "tcp://HOST:PORT of a running `dask scheduler`, or local:N (needs spacetravlr-py[dask])")
    p.add_argument("--verbose", action="store_true", help="per-step timings")


def build_parser() -> argparse.ArgumentParser:
    p = new_parser(PROG, "Simulate gene knockouts and overexpression that propagate through the trained regulatory "
                   "models and across the tissue.", EPILOG)
    _add_common(p)
    p.add_argument("--gene", metavar="G[,G2]", help="gene(s) to perturb (several = one simultaneous perturbation)")
    p.add_argument("--desired-expr", type=_floats, default=[0.0], metavar="V[,V2]",
                   help="target value(s), one per gene (default 0 = knockout)")
    p.add_argument("--out", "--export", dest="out", metavar="PATH", help="write the simulated expression here")
    p.add_argument("--changed-only", action="store_true",
                   help="write only the genes that moved (default: CellID + every gene of the dataset)")
    p.add_argument("--cells-csv", metavar="CSV", help="CSV whose columns list obs names")
    p.add_argument("--cells-csv-column", metavar="COL", help="column of --cells-csv selecting the perturbed cells")
    p.add_argument("--cell-types", metavar="A,B", help="perturb only cells of these types")
    p.add_argument("--clusters", metavar="0,3", help="perturb only cells of these cluster ids")
    p.add_argument("--field", action="store_true",
                   help="also write the transition field (.npz) and figures (UMAP/spatial field, Δ, summary PNGs) "
                   "next to --out")
    p.add_argument("--field-neighbors", type=int, default=150, metavar="K", help="kNN of the field (default 150)")
    p.add_argument("--field-kind", choices=["quiver", "stream"], default="quiver", help="arrows or streamlines")
    p.add_argument("--batch-toml", metavar="TOML", help="run the jobs of a batch file")
    p.add_argument("--batch-parallelism", type=int, metavar="N",
                   help="batch jobs run at once (default: the batch file's parallelism, else 1)")
    p.add_argument("--make-cells-csv", metavar="OUT", help="write a cells CSV with one column per cell type "
                   "(cluster label) listing its cells, to start a scope from, and exit "
                   "(e.g. --make-cells-csv cells.csv, then --cells-csv cells.csv --cells-csv-column ct1)")
    p.add_argument("config_file", nargs="?", metavar="PERTURB_TOML", help="same as --config")
    return p


def build_compare_parser() -> argparse.ArgumentParser:
    p = new_parser(f"{PROG} compare", "Run one perturbation in two conditions of a run trained with --condition and "
                   "rank the genes whose response (mean Δ over the condition's cells) differs most.",
                   "example:\n  spacetravlr-perturb compare --run-toml by_sample/spacetravlr_run_repro.toml "
                   "--conditions ctrl,treated --gene Foxo1 --out foxo1_compare --top 15\n\n"
                   "outputs: <out>.csv (gene, mean_delta_a, mean_delta_b, difference = a − b, abs_difference; "
                   "every gene that changes) and <out>.json (summary + top rows)")
    p.add_argument("--run-toml", metavar="TOML", required=True, help="the run trained with --condition")
    p.add_argument("--conditions", metavar="A,B", required=True, help="the two conditions (labels or folders)")
    p.add_argument("--gene", metavar="G[,G2]", required=True, help="gene(s) to perturb")
    p.add_argument("--desired-expr", type=_floats, default=[0.0], metavar="V[,V2]",
                   help="target value(s), one per gene (default 0 = knockout)")
    p.add_argument("--n-propagation", type=int, metavar="N", help="propagation steps (default from the TOML)")
    p.add_argument("--cell-types", metavar="A,B", help="perturb only cells of these types (in both conditions)")
    p.add_argument("--out", metavar="PATH", help="write <PATH>.csv and <PATH>.json")
    p.add_argument("--top", type=int, default=20, help="rows to print and to keep in the JSON (default 20)")
    p.add_argument("--threads", type=int, help="numba/BLAS threads (default: all cores)")
    return p


def _compare(a: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..perturbation.compare import compare_conditions, write_comparison

    conds = [c.strip() for c in a.conditions.split(",") if c.strip()]
    if len(conds) != 2:
        raise InputError(f"--conditions {a.conditions!r}: give exactly two conditions, e.g. --conditions ctrl,treated")
    if a.n_propagation is not None and a.n_propagation < 1:
        raise InputError(f"--n-propagation must be >= 1, got {a.n_propagation}")
    genes = [g.strip() for g in a.gene.split(",") if g.strip()]
    desired = a.desired_expr if len(a.desired_expr) > 1 else a.desired_expr * len(genes)
    cmp = compare_conditions(a.run_toml, conds, genes, desired, n_propagation=a.n_propagation,
                             cell_types=a.cell_types.split(",") if a.cell_types else None, n_threads=a.threads)
    ca, cb = cmp.conditions
    print(f"{','.join(cmp.genes)} → {','.join(f'{v:g}' for v in cmp.desired)}, {cmp.n_propagation} steps: "
          f"A = '{ca}' ({cmp.n_cells[0]} cells; perturbed {cmp.scopes[0]}), "
          f"B = '{cb}' ({cmp.n_cells[1]} cells; perturbed {cmp.scopes[1]})")
    top = cmp.top(a.top)
    if top.empty:
        print("  no gene responds in either condition")
    for r in top.itertuples():
        print(f"  {r.gene:<14} mean Δ A {r.mean_delta_a:+.4g}  B {r.mean_delta_b:+.4g}  A−B {r.difference:+.4g}")
    if a.out:
        paths = write_comparison(cmp, a.out, n_top=a.top)
        print("  wrote " + ", ".join(str(p) for p in paths.values()))
    return EXIT_OK


def _overrides(a: argparse.Namespace) -> dict[str, Any]:
    return {"perturbation.beta_scale_factor": a.beta_scale_factor, "perturbation.beta_cap": a.beta_cap,
            "perturbation.clip": a.clip}


def _open(a: argparse.Namespace) -> Any:
    from ..errors import InputError
    from ..perturbation.session import RunSession

    ptoml = _perturb_toml(a)
    run_toml = a.run_toml or (ptoml.run_toml if ptoml else None)
    if not run_toml:
        raise InputError("--run-toml is required (the spacetravlr_run_repro.toml written by the training run), "
                         "or run_toml = \"...\" in the --config file")
    if a.n_propagation is not None and a.n_propagation < 1:
        raise InputError(f"--n-propagation must be >= 1, got {a.n_propagation}")
    t0 = time.perf_counter()
    s = RunSession.open(run_toml, n_threads=a.threads, overrides=_overrides(a),
                        overlay=ptoml.apply if ptoml else None, condition=a.condition)
    print(f"loaded {s.tissue.n_cells} cells × {s.tissue.n_panel_genes} genes, {len(s.betabase)} trained genes "
          f"from {s.run_dir} in {time.perf_counter() - t0:.2f}s", file=sys.stderr)
    if a.verbose:
        for line in s.perturber.received_info:
            print(f"  {line}", file=sys.stderr)
    return s


def _perturb_toml(a: argparse.Namespace) -> Any:
    """The perturbation TOML of --config / --perturb-toml / the first argument, read once (or None)."""
    if not hasattr(a, "_ptoml"):
        from ..perturbation.overlay import perturb_toml_arg

        a._ptoml = perturb_toml_arg(a.config, getattr(a, "config_file", None))
    return a._ptoml


def _print_result(res: Any, paths: dict[str, Any] | None, verbose: bool, n_top: int = 10) -> None:
    t = res.timings
    head = ", ".join(f"{g}→{v:g}" for g, v in zip(res.targets, res.desired))
    print(f"{head} in {res.scope_label} ({int(res.scope.sum())} cells), {res.n_propagation} steps: "
          f"{t['total_s']:.3f}s")
    if verbose:
        for i, st in enumerate(res.steps, 1):
            print(f"  step {i}: received ligands {st['received_s'] * 1e3:.1f} ms, "
                  f"splash+propagate {st['propagate_s'] * 1e3:.1f} ms")
    top = res.top_genes(n_top)
    if top:
        print("  most affected genes (mean |Δ|): " + ", ".join(f"{g} {v:.4g}" for g, v in top))
    else:
        print("  no other gene changed")
    if paths:
        print("  wrote " + ", ".join(str(p) for p in paths.values()))


def _main(argv: Sequence[str] | None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in SUBCOMMANDS:
        import importlib

        mod = importlib.import_module(f"{__package__}.{SUBCOMMANDS[args[0]]}")
        return int(mod.main(mod.build_parser().parse_args(args[1:])))
    if args and args[0] == "compare":
        return _compare(build_compare_parser().parse_args(args[1:]))
    a = build_parser().parse_args(args)
    from ..errors import InputError

    ptoml = _perturb_toml(a)
    jobs_in_config = bool(ptoml and ptoml.batch)
    if (a.batch_toml or jobs_in_config) and a.gene:
        raise InputError("give either --gene (single export) or batch jobs (--batch-toml or job fields in "
                         "--config), not both")
    if a.batch_toml and jobs_in_config:
        raise InputError(f"--batch-toml and job fields in {ptoml.path} both give batch jobs; keep one")
    if a.batch_parallelism is not None and a.batch_parallelism < 1:
        raise InputError(f"--batch-parallelism must be >= 1, got {a.batch_parallelism}")
    if a.scheduler:
        if not (a.batch_toml or jobs_in_config):
            raise InputError("--scheduler runs batch jobs (--batch-toml, or job fields in --config) or a screen "
                             "(spacetravlr-perturb screen); a single --gene runs here")
        _check_scheduler(a.scheduler)
    if a.make_cells_csv:
        from ..perturbation.cells_csv import write_run_cells_csv

        out, labels = write_run_cells_csv(a.run_toml or (ptoml.run_toml if ptoml else None), a.make_cells_csv,
                                          overlay=ptoml.apply if ptoml else None, condition=a.condition)
        print(f"wrote {out}: {len(labels)} columns, one per cell type ({', '.join(labels[:8])}"
              f"{', …' if len(labels) > 8 else ''})")
        return EXIT_OK
    if a.clusters:
        _cluster_ids(a.clusters)  # fail before loading the run
    if getattr(a, "field", False) and a.gene and not a.out:
        raise InputError("--field needs --out (the figures are written next to it)")
    if not (a.gene or a.out or a.batch_toml or jobs_in_config) and _on_terminal():
        from ..tui import textual_missing

        if (missing := textual_missing()) is None:
            from ..tui.workbench import run_workbench

            if a.run_toml or (ptoml and ptoml.run_toml):
                return run_workbench(_open(a))
            return run_workbench(opener=lambda path: _open(argparse.Namespace(**{**vars(a), "run_toml": path})))
        print(f"note: no workbench: {missing}; using the line prompt", file=sys.stderr)
    s = _open(a)
    if a.batch_toml or jobs_in_config:
        from ..perturbation.batch import batch_from_table, read_batch, run_batch

        default_n = a.n_propagation or s.perturber.s.n_propagation
        spec = (read_batch(a.batch_toml, default_n) if a.batch_toml
                else batch_from_table(ptoml.batch, str(ptoml.path), ptoml.path.parent, default_n))
        print(f"{len(spec.jobs)} jobs from {a.batch_toml or ptoml.path}", file=sys.stderr)
        if a.scheduler:
            from ..perturbation.dask_jobs import run_batch_on

            run_batch_on(a.scheduler, s, spec.jobs, on_done=lambda job, res, paths: _print_result(res, paths,
                                                                                                 a.verbose, 5))
        else:
            run_batch(s, spec.jobs, n_workers=a.batch_parallelism or spec.n_workers or 1,
                      on_done=lambda job, res, paths: _print_result(res, paths, a.verbose, 5))
        return EXIT_OK
    if not a.gene:
        return _interactive(s, a)
    genes = [g.strip() for g in a.gene.split(",") if g.strip()]
    desired = a.desired_expr if len(a.desired_expr) > 1 else a.desired_expr * len(genes)
    cells_csv = a.cells_csv or s.cfg.perturbation.cells_csv
    column = a.cells_csv_column or (s.cfg.perturbation.cells_csv_column if not a.cells_csv else None)
    if a.cells_csv_column and not cells_csv:
        raise InputError("--cells-csv-column needs --cells-csv")
    mask, label = s.scope(cells_csv=cells_csv, cells_csv_column=column,
                          cell_types=a.cell_types.split(",") if a.cell_types else None,
                          clusters=_cluster_ids(a.clusters) if a.clusters else None)
    res = s.run(genes, desired, scope=mask, scope_label=label, n_propagation=a.n_propagation)
    paths = None
    if a.out:
        from ..perturbation.session import write_result

        paths = write_result(res, a.out, changed_only=a.changed_only)
        if a.field:
            from ..report import write_field_outputs

            t0 = time.perf_counter()
            prefix = paths["expression"].with_suffix("")
            paths.update(write_field_outputs(res, prefix, n_neighbors=a.field_neighbors, kind=a.field_kind,
                                             reference_compat=s.cfg.reference_compat))
            res.timings["field_s"] = time.perf_counter() - t0
    elif a.field:
        raise InputError("--field needs --out (the figures are written next to it)")
    _print_result(res, paths, a.verbose)
    return EXIT_OK


def _check_scheduler(spec: str) -> None:
    """A malformed address or a missing Dask is one line, before the run is loaded."""
    from ..scaleout import check_scheduler

    check_scheduler(spec, "--scheduler")


def _on_terminal() -> bool:
    """Keys come from and the screen goes to a terminal (the workbench's condition)."""
    import os

    return sys.stdin.isatty() and sys.stdout.isatty() and os.environ.get("TERM", "") != "dumb"


def _cluster_ids(text: str) -> list[int]:
    from ..errors import InputError

    try:
        return [int(c) for c in text.split(",") if c.strip()]
    except ValueError:
        raise InputError(f"--clusters {text!r}: expected comma-separated cluster ids such as 0,3 "
                         "(use --cell-types for labels)") from None


def _interactive(s: Any, a: argparse.Namespace) -> int:
    """A small prompt: ``GENE [VALUE [N_PROPAGATION]]``; ``quit`` to leave."""
    from ..errors import SpaceTravLRError

    if not sys.stdin.isatty():
        from ..errors import InputError

        raise InputError("nothing to do: give --gene and --out, --batch-toml, or use the `screen` subcommand")
    print("interactive perturbation: type 'GENE [VALUE [N_PROPAGATION]]', 'quit' to leave")
    while True:
        try:
            line = input("perturb> ").strip()
        except EOFError:
            return EXIT_OK
        if line in ("quit", "exit", "q"):
            return EXIT_OK
        if not line:
            continue
        parts = line.split()
        try:
            val = float(parts[1]) if len(parts) > 1 else 0.0
            n = int(parts[2]) if len(parts) > 2 else a.n_propagation
            res = s.run(parts[0].split(","), val, n_propagation=n)
            _print_result(res, None, a.verbose)
        except (SpaceTravLRError, ValueError) as e:
            print(f"error: {e}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point, testable in-process; returns the exit code."""
    return guarded(_main, argv, PROG)


def run() -> None:
    """Console-script wrapper (``spacetravlr-perturb``)."""
    run_console(main)


if __name__ == "__main__":  # python -m spacetravlr_py.cli.perturb
    run()

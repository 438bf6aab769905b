"""``spacetravlr``: train spatial GRN models; subcommands for the other stages.

Heavy libraries (numpy, anndata, numba) are imported only after the arguments are parsed, so
``spacetravlr --help`` answers immediately.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from ._common import EXIT_OK, guarded, new_parser, run_console

PROG = "spacetravlr"

#: subcommand -> (module under spacetravlr_py.cli, one-line description)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "network": ("network", "build or inspect the {species}_network.parquet prior network"),
    "demo": ("demo", "run the whole pipeline on the built-in synthetic tissue"),
    "run-summary": ("summary", "write the HTML report of a training run (figures inlined, opens offline)"),
    "collect-interactions": ("interactions", "one table of every β aggregated per cell type (feather / CSV)"),
    "prep": ("prep", "turn a raw-count .h5ad into a trainable one (normalise, impute, cluster, UMAP)"),
    "config": ("configcmd", "print the configuration schema or a resolved configuration"),
    "serve": ("serve", "open a tissue, a run's betas and live perturbations in the browser (spatial_viewer)"),
    "mcp": ("mcp", "MCP server: let an AI assistant drive the viewer and the perturbation engine"),
}

EPILOG = """\
subcommands (spacetravlr SUBCOMMAND --help for their flags):
{subs}

examples:
  spacetravlr demo --out demo_output                   # synthetic tissue, whole pipeline
  spacetravlr -c spaceship_config.toml --plain         # train with a config file
  spacetravlr --h5ad tissue.h5ad --genes Foxo1,Pax5 --parallel 2 --output-dir runs/a
  spacetravlr --join-output-dir runs/a                 # a second process/host joins the run
  spacetravlr -c spaceship_config.toml --scheduler local:4           # a local Dask cluster
  spacetravlr -c spaceship_config.toml --scheduler tcp://head:8786   # an existing Dask scheduler
  spacetravlr --h5ad tissue.h5ad --condition sample --output-dir runs/by_sample   # one model set per sample
  spacetravlr --h5ad tissue.h5ad --tf-prior tf_priors.csv --output-dir runs/prior # TFs allowed per cell type
  spacetravlr --h5ad tissue.h5ad --write-minimal-repro-h5ad --output-dir runs/a   # run folder movable alone
  spacetravlr network build --grn mouse_base_grn.parquet --lr cellchat_mouse.csv -o data/
"""


def build_parser() -> argparse.ArgumentParser:
    subs = "\n".join(f"  {name:<21} {desc}" for name, (_, desc) in SUBCOMMANDS.items())
    p = new_parser(PROG, "Train per-gene, per-cell-type spatial regulatory models (TFs + ligands received from "
                   "neighbouring cells) and write betadata files.", EPILOG.format(subs=subs))
    p.add_argument("-c", "--config", metavar="TOML", help="spaceship_config.toml (CLI flags override it)")
    p.add_argument("--h5ad", metavar="PATH", help="dataset ([data].adata_path)")
    p.add_argument("--layer", help="expression layer ([data].layer, default imputed_count; '' = X)")
    p.add_argument("--cluster-annot", help="obs column with cell types ([data].cluster_annot)")
    p.add_argument("--network-dir", metavar="DIR", help="folder with {species}_network.parquet")
    p.add_argument("--condition", metavar="OBS_COL",
                   help="train one model set per group of this obs column into <output-dir>/conditions/<group>/ "
                   "([data].condition), e.g. --condition sample")
    p.add_argument("--tf-prior", metavar="PATH",
                   help="table source,target,cell_type (CSV/TSV/parquet/feather): a target's TFs are used only in "
                   "the cell types listed for them ([grn].tf_priors), e.g. --tf-prior tf_priors.csv")
    p.add_argument("--write-minimal-repro-h5ad", action="store_true", default=None,
                   help="write spacetravlr_minimal_repro.h5ad (layer, coordinates, clusters, UMAP) into the run "
                   "folder; perturbation reads it when [data].adata_path is gone "
                   "([execution].write_minimal_repro_h5ad)")
    p.add_argument("--training-mode", choices=["seed", "full"], help="seed (cluster lasso) or full (CNN)")
    p.add_argument("--epochs", type=int, help="CNN epochs (full mode)")
    p.add_argument("--lr", dest="learning_rate", type=float, help="CNN learning rate (full mode)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"],
                   help="CNN device ([execution].device; auto = CUDA when present, else CPU)")
    p.add_argument("--parallel", type=int, metavar="N", help="worker processes ([execution].n_parallel)")
    p.add_argument("--scheduler", metavar="ADDR",
                   help="train on a Dask cluster: tcp://HOST:PORT of a running `dask scheduler`, or local:N "
                   "([execution].scheduler; needs spacetravlr-py[dask])")
    p.add_argument("--genes", metavar="A,B,...", help="train only these target genes")
    p.add_argument("--max-genes", type=int, metavar="N", help="train at most N genes")
    p.add_argument("--max-ligands", type=int, metavar="K", help="keep LR pairs of the K most expressed ligands")
    p.add_argument("--extra-modulators", metavar="A,B,...", help="extra modulator genes (group 3)")
    p.add_argument("--extra-lr", metavar="L$R,...", help="extra ligand-receptor pairs: L1$R1,L2$R2 or L1,R1;L2,R2")
    p.add_argument("--radius", type=float, help="received-ligand kernel radius ([spatial].radius)")
    p.add_argument("--weighted-ligand-scale-factor", type=float, metavar="S",
                   help="scale s of received ligands ([spatial].weighted_ligand_scale_factor)")
    p.add_argument("--l1-reg", type=float, help="L1 penalty ([lasso].l1_reg)")
    p.add_argument("--group-reg", type=float, help="group penalty ([lasso].group_reg)")
    p.add_argument("--n-iter", type=int, help="FISTA iterations ([lasso].n_iter)")
    p.add_argument("--tol", type=float, help="FISTA tolerance ([lasso].tol)")
    p.add_argument("--output-dir", metavar="DIR", help="where betadata go ([execution].output_dir)")
    p.add_argument("--join-output-dir", metavar="DIR",
                   help="join an existing run: read DIR/spacetravlr_run_repro.toml and train its remaining genes")
    p.add_argument("--stale-lock-secs", type=float, help="reclaim .lock files older than this")
    p.add_argument("--save-cnn-weights", action="store_true", default=None, help="export CNN weights (full mode)")
    p.add_argument("--compat", choices=["seed", "python-reference"], help="[compat].mode")
    p.add_argument("--plain", action="store_true", help="plain line-oriented progress (default when not a terminal)")
    p.add_argument("--quiet", action="store_true", help="only errors and the final summary")
    p.add_argument("--dashboard", action="store_true", help="full-screen dashboard (default on a terminal; "
                   "needs the tui extra)")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    return p


def _split_lr(value: str) -> list[str]:
    """``L1$R1,L2$R2``, ``L1,R1;L2,R2`` or ``L1,R1,L2,R2`` -> ``["L1$R1", "L2$R2"]``.

    A malformed item is passed through unchanged so that the pair parser names it in its error.
    """
    if ";" in value:
        parts = [p.strip() for p in value.split(";") if p.strip()]
        return [p.replace(",", "$") if "$" not in p else p for p in parts]
    tokens = [p.strip() for p in value.split(",") if p.strip()]
    if "$" not in value and len(tokens) % 2 == 0:
        return [f"{tokens[i]}${tokens[i + 1]}" for i in range(0, len(tokens), 2)]
    return tokens


def overrides_from_args(a: argparse.Namespace) -> dict[str, Any]:
    """CLI flags -> ``{"section.key": value}`` (None = not given)."""
    return {
        "data.adata_path": a.h5ad,
        "data.layer": a.layer,
        "data.cluster_annot": a.cluster_annot,
        "grn.network_data_dir": a.network_dir,
        "data.condition": a.condition,
        "grn.tf_priors": a.tf_prior,
        "execution.write_minimal_repro_h5ad": a.write_minimal_repro_h5ad,
        "training.mode": a.training_mode,
        "training.epochs": a.epochs,
        "training.learning_rate": a.learning_rate,
        "execution.n_parallel": a.parallel,
        "execution.scheduler": a.scheduler,
        "execution.device": a.device,
        "training.genes": [g.strip() for g in a.genes.split(",") if g.strip()] if a.genes else None,
        "training.max_genes": a.max_genes,
        "grn.max_ligands": a.max_ligands,
        "grn.extra_modulators": ([g.strip() for g in a.extra_modulators.split(",") if g.strip()]
                                 if a.extra_modulators else None),
        "grn.extra_lr": _split_lr(a.extra_lr) if a.extra_lr else None,
        "spatial.radius": a.radius,
        "spatial.weighted_ligand_scale_factor": a.weighted_ligand_scale_factor,
        "lasso.l1_reg": a.l1_reg,
        "lasso.group_reg": a.group_reg,
        "lasso.n_iter": a.n_iter,
        "lasso.tol": a.tol,
        "execution.output_dir": a.output_dir,
        "execution.stale_lock_secs": a.stale_lock_secs,
        "model_export.save_cnn_weights": a.save_cnn_weights,
        "compat.mode": a.compat,
    }


def _train_main(argv: Sequence[str] | None) -> int:
    a = build_parser().parse_args(argv)
    if a.version:
        from .. import __version__

        print(f"{PROG} {__version__}")
        return EXIT_OK
    from .train import train_main

    return train_main(a, overrides_from_args(a))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point, testable in-process: ``main(["--help"])``; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in SUBCOMMANDS:
        import importlib

        mod = importlib.import_module(f"{__package__}.{SUBCOMMANDS[args[0]][0]}")
        return guarded(mod.main, args[1:], f"{PROG} {args[0]}")
    return guarded(_train_main, args, PROG)


def run() -> None:
    """Console-script wrapper (``spacetravlr``)."""
    run_console(main)


if __name__ == "__main__":  # python -m spacetravlr_py.cli.main
    run()

"""``spacetravlr collect-interactions``: every (modulator, target, cell type) β of a run aggregated over
each cell type's cells, as one Feather or CSV table
(:func:`spacetravlr_py.betadata.interactions_run.collect_run_interactions`)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from ._common import EXIT_OK, new_parser

EPILOG = """\
examples:
  spacetravlr collect-interactions --run-toml runs/a/spacetravlr_run_repro.toml --out interactions.feather
  spacetravlr collect-interactions --run-toml runs/a --annot cell_type --aggregate positive --out pos.csv
  spacetravlr collect-interactions --run-toml runs/a --cell-types "B cell,T cell" --genes Cd19,Pax5 --top 5

columns: modulator, target, cell_type, value, family (tf / lr / tfl), ligand, receptor, tf, n_cells
(docs/formats.md). Zero and undefined values are left out unless --keep-zero.
"""


def build_parser() -> argparse.ArgumentParser:
    p = new_parser("spacetravlr collect-interactions", "One table of every (modulator, target, cell type) "
                   "coefficient of a run, aggregated over the cells of each type, with the modulator's family and "
                   "its ligand / receptor / TF parts. Betadata are read one gene at a time.", EPILOG)
    p.add_argument("--run-toml", required=True, metavar="TOML", help="the run's spacetravlr_run_repro.toml (or "
                   "its folder)")
    p.add_argument("--annot", metavar="COL", help="obs column whose labels are the cell types (default: the run's "
                   "[data].cluster_annot)")
    p.add_argument("--cluster-col", metavar="COL", help="obs column naming the Cluster rows of seed betadata "
                   "(default: [data].cluster_annot)")
    p.add_argument("--aggregate", default="mean", metavar="HOW",
                   help="mean | min | max | sum | positive | negative (mean of the positive / negative values "
                   "only); default mean")
    p.add_argument("--cell-types", metavar="A,B", help="report only these cell types")
    p.add_argument("--genes", metavar="A,B", help="only these target genes")
    p.add_argument("--out", metavar="PATH", help="write the table: .feather (Arrow IPC, LZ4) or .csv")
    p.add_argument("--keep-zero", action="store_true", help="keep zero values too")
    p.add_argument("--top", type=int, default=3, metavar="N", help="rows per cell type to print (default 3)")
    return p


def _split(text: str | None) -> list[str] | None:
    return [x.strip() for x in text.split(",") if x.strip()] if text else None


def main(argv: Sequence[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    from ..betadata.interactions_run import (
        check_aggregate,
        check_table_path,
        collect_run_interactions,
        summary_line,
        top_per_cell_type,
        write_interactions,
    )

    check_aggregate(a.aggregate)
    if a.out:
        check_table_path(a.out)  # before the work, not after it
    t0 = time.perf_counter()

    def tick(i: int, n: int, gene: str) -> None:
        if sys.stderr.isatty():
            print(f"\r  gene {i + 1}/{n}: {gene:<20}", end="", file=sys.stderr, flush=True)

    df = collect_run_interactions(a.run_toml, annot=a.annot, cluster_col=a.cluster_col, aggregate=a.aggregate,
                                  cell_types=_split(a.cell_types), genes=_split(a.genes), drop_zero=not a.keep_zero,
                                  on_gene=tick)
    if sys.stderr.isatty():
        print("", file=sys.stderr)
    print(summary_line(df, time.perf_counter() - t0))
    top = top_per_cell_type(df, a.top)
    for ct, rows in top.groupby("cell_type", sort=True):
        print(f"  {ct}:")
        for r in rows.itertuples(index=False):
            print(f"    {r.modulator:>24} → {r.target:<14} {a.aggregate} β {r.value:+.4g}  ({r.family})")
    if a.out:
        print(f"wrote {write_interactions(df, a.out)}")
    return EXIT_OK

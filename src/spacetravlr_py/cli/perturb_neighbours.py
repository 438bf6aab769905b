"""``spacetravlr-perturb neighbours``: perturb genes in some cells and report how the *other* cells respond,
by distance to the perturbed cells, by cell type and through which ligands
(:func:`spacetravlr_py.perturbation.neighbours.neighbour_effects`)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ._common import EXIT_OK, new_parser
from .perturb import PROG, _add_common, _cluster_ids, _floats, _open

EPILOG = """\
examples:
  spacetravlr-perturb neighbours --run-toml run/spacetravlr_run_repro.toml --gene Il6 --cell-types ct2 \\
      --out-dir il6_ko_ct2/
  spacetravlr-perturb neighbours --run-toml run/ --gene Tgfb1 --desired-expr 4 --cells-csv cells.csv \\
      --cells-csv-column tumour --bins 0,25,50,100,200,400

outputs (--out-dir): neighbours_by_type.csv (cell types ranked by mean |Δ| outside the perturbed cells, with
their strongest ligands), neighbours_by_distance.csv (per cell type and distance bin), neighbours_ligands.csv
(per cell type and ligand: first-order effect through the ligand), neighbours.json, and
neighbours_delta_vs_distance.png.
"""


def build_parser() -> argparse.ArgumentParser:
    p = new_parser(f"{PROG} neighbours", "Perturb genes in some cells and compare how the other cells respond: by "
                   "distance to the perturbed cells, by cell type, and through which ligands.", EPILOG)
    _add_common(p)
    p.add_argument("--gene", required=True, metavar="G[,G2]", help="gene(s) to perturb")
    p.add_argument("--desired-expr", type=_floats, default=[0.0], metavar="V[,V2]",
                   help="target value(s), one per gene (default 0 = knockout)")
    p.add_argument("--cell-types", metavar="A,B", help="perturb the cells of these types")
    p.add_argument("--clusters", metavar="0,3", help="perturb the cells of these cluster ids")
    p.add_argument("--cells-csv", metavar="CSV", help="CSV whose columns list obs names")
    p.add_argument("--cells-csv-column", metavar="COL", help="column of --cells-csv selecting the perturbed cells")
    p.add_argument("--bins", type=_floats, metavar="D1,D2", help="distance bin edges (default: 0, r/8, r/4, r/2, r, "
                   "2r of the run's radius r; a last bin to infinity is added)")
    p.add_argument("--out-dir", metavar="DIR", help="write the tables, summary and figure here")
    p.add_argument("--top", type=int, default=10, help="cell types to print (default 10)")
    return p


def main(a: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..perturbation.neighbours import check_edges, neighbour_effects, write_neighbour_effects

    if not (a.cell_types or a.clusters or a.cells_csv):
        raise InputError("neighbours needs a scope: the cells to perturb (--cell-types, --clusters or --cells-csv "
                         "with --cells-csv-column); the other cells are compared")
    if a.bins:
        check_edges(a.bins)
    clusters = _cluster_ids(a.clusters) if a.clusters else None
    s = _open(a)
    genes = [g.strip() for g in a.gene.split(",") if g.strip()]
    desired = a.desired_expr if len(a.desired_expr) > 1 else a.desired_expr * len(genes)
    mask, label = s.scope(cells_csv=a.cells_csv, cells_csv_column=a.cells_csv_column,
                          cell_types=a.cell_types.split(",") if a.cell_types else None, clusters=clusters)
    res = s.run(genes, desired, scope=mask, scope_label=label, n_propagation=a.n_propagation)
    eff = neighbour_effects(res, s.perturber, edges=a.bins)
    _print(eff, a.top)
    if a.out_dir:
        files = write_neighbour_effects(eff, a.out_dir)
        print("wrote " + ", ".join(str(p) for p in files.values()))
    return EXIT_OK


def _print(eff: Any, top: int) -> None:
    head = ", ".join(f"{g}→{v:g}" for g, v in zip(eff.targets, eff.desired))
    print(f"{head} in {eff.scope_label} ({eff.n_scope} cells; mean |Δ| there {eff.inside_mean_abs_delta:.4g}); "
          f"{eff.n_outside} other cells, by mean |Δ|:")
    for r in eff.by_type.head(top).itertuples(index=False):
        print(f"  {r.rank:>3}. {r.cell_type:<16} {r.n_cells:>7} cells  mean |Δ| {r.mean_abs_delta:.4g}  "
              f"(nearest bin {r.nearest_bin_mean_abs_delta:.4g})  ligands {r.top_ligands or '—'}")
    if not len(eff.by_type):
        print("  (none)", file=sys.stderr)

"""``spacetravlr network``: build or inspect the ``{species}_network.parquet`` prior network.

pandas and pyarrow are imported only after the arguments are parsed, so ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .. import _keys
from ._common import EXIT_OK, new_parser

if TYPE_CHECKING:
    import pandas as pd

    from ..io.network import NetworkCounts

PROG = "spacetravlr network"

DESCRIPTION = """\
Build the prior network (base GRN + ligand–receptor pairs + optional NicheNet ligand→TF links) from
real database files into one {species}_network.parquet, or print what an existing one holds.
Nothing is downloaded: pass the files you have."""

EPILOG = """\
examples:
  # mouse network from the CellOracle promoter base GRN and the CellChat LR table
  spacetravlr network build --grn mouse_base_grn.parquet --lr cellchat_mouse.csv -o data/

  # human, with a NicheNet ligand-target matrix (only edges into base-GRN TFs are kept)
  spacetravlr network build --grn human_base_grn.parquet --lr cellchat_human.csv \\
      --nichenet ligand_target_human.parquet --species human -o data/

  # LIANA / OmniPath table holding several resources: choose one
  spacetravlr network build --grn base_grn.parquet --lr liana_omni_resource.csv \\
      --lr-resource mouseconsensus -o data/

  spacetravlr network info data/                       # counts of data/*_network.parquet
  spacetravlr network info --species mouse             # the file training would use
"""

BUILD_EPILOG = """\
inputs:
  --grn   CellOracle TF_info_matrix parquet (peak_id, gene_short_name, one 0/1 column per TF),
          or a long parquet/csv/tsv table with columns source (TF), target
  --lr    CellChat csv (ligand, receptor, pathway, signaling; complexes joined by '_' expand to
          every subunit pair), LIANA (source_genesymbol, target_genesymbol[, resource]) or
          CellPhoneDB v4 as shipped by commot (columns 0..3)
  --nichenet  ligand-target matrix, parquet or csv: index = target genes, columns = ligands

examples:
  spacetravlr network build --grn mouse_base_grn.parquet --lr cellchat_mouse.csv -o data/
  spacetravlr network build --grn grn_edges.csv --lr cellchat_human.csv --species human -o data/
"""

INFO_EPILOG = """\
examples:
  spacetravlr network info data/mouse_network.parquet
  spacetravlr network info data/ --species human
  spacetravlr network info                # resolve like training does ([grn].network_data_dir,
                                          # $SPACETRAVLR_DATA_DIR, package data, ./data upwards)
"""


def build_parser() -> argparse.ArgumentParser:
    p = new_parser(PROG, DESCRIPTION, EPILOG)
    sub = p.add_subparsers(dest="command", metavar="{build,info}")
    sub.required = True

    b = sub.add_parser("build", help="assemble {species}_network.parquet from database files",
                       description="Assemble {species}_network.parquet from a base GRN, an LR table and "
                       "optionally a NicheNet ligand-target matrix.",
                       epilog=BUILD_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    b.add_argument("--grn", required=True, metavar="PATH",
                   help="base GRN (wide TF_info_matrix or long table)")
    b.add_argument("--lr", required=True, metavar="PATH", help="ligand-receptor table (CellChat-style csv)")
    b.add_argument("--lr-resource", metavar="NAME",
                   help="for LIANA tables with a 'resource' column: which resource to use")
    b.add_argument("--nichenet", metavar="PATH", help="NicheNet ligand-target matrix (parquet or csv)")
    b.add_argument("--nichenet-min-weight", type=float, default=0.0, metavar="W",
                   help="keep NicheNet entries with weight > W (default 0)")
    b.add_argument("--nichenet-all-targets", action="store_true",
                   help="keep NicheNet edges into every gene, not only into base-GRN TFs")
    b.add_argument("--species", choices=_keys.SPECIES,
                   help="default: inferred from the LR table's gene symbols (Abc1 mouse, ABC1 human)")
    b.add_argument("-o", "--out-dir", required=True, metavar="DIR",
                   help="folder to write {species}_network.parquet into (created if needed)")

    i = sub.add_parser("info", help="print the counts of an existing network file",
                       description="Print the number of edges and genes of a {species}_network.parquet.",
                       epilog=INFO_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    i.add_argument("path", nargs="?", metavar="DIR_OR_FILE",
                   help="network parquet or folder (default: the resolution order used by training)")
    i.add_argument("--species", choices=_keys.SPECIES, help="which species' file to show")
    return p


def _print_counts(counts: NetworkCounts, out: list[str]) -> None:
    rows = counts.rows()
    if not counts.nichenet_edges:
        rows = [r for r in rows if not r[0].startswith("NicheNet")]
    width = max(len(label) for label, _ in rows)
    out.extend(f"  {label:<{width}}  {value:>12,}" for label, value in rows)


def _size(path: Path) -> str:
    n = path.stat().st_size
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def _build(a: argparse.Namespace) -> int:
    from ..io import network as net
    from ..io.network_build import build_network, read_lr_table
    from ..io.species import infer_species

    t0 = time.perf_counter()
    if a.species:
        species, how = a.species, "given"
    else:
        lr = read_lr_table(a.lr, resource=a.lr_resource)
        species = infer_species(list(lr["ligand"]) + list(lr["receptor"]), what=f"the LR table {a.lr}",
                                hint="pass --species mouse or --species human")
        how = "inferred from the LR table's gene symbols"
    df = build_network(a.grn, a.lr, a.nichenet, species=species, lr_resource=a.lr_resource,
                       nichenet_min_weight=a.nichenet_min_weight,
                       nichenet_tfs_only=not a.nichenet_all_targets)
    path = net.write_network(df, a.out_dir, species)
    counts = net.network_counts(df)
    lines = [f"species: {species} ({how})"]
    _print_counts(counts, lines)
    lines.append(f"wrote {path} ({_size(path)}, {len(df):,} edges) in {time.perf_counter() - t0:.1f} s")
    print("\n".join(lines))
    return EXIT_OK


def _describe(path: Path, df: pd.DataFrame) -> list[str]:
    from ..io import network as net

    lines = [f"{path} ({_size(path)}, {len(df):,} edges)"]
    _print_counts(net.network_counts(df), lines)
    lr = df.loc[df[net.EDGE_TYPE].to_numpy() == _keys.EDGE_LR].drop_duplicates([net.SOURCE, net.TARGET])
    if len(lr):
        first = lr.drop_duplicates(net.SOURCE)
        sig_pairs = lr[net.SIGNALING].fillna("(none)").value_counts()
        sig_ligs = first[net.SIGNALING].fillna("(none)").value_counts()
        lines.append("  LR signaling (pairs / ligands by their first row):")
        lines.extend(f"    {name:<20} {int(n):>6,} / {int(sig_ligs.get(name, 0)):,}"
                     for name, n in sig_pairs.items())
    return lines


def _info(a: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..io import network as net

    paths: list[Path] = []
    if a.path is None and a.species is None:
        errors: list[str] = []
        for sp in _keys.SPECIES:
            try:
                paths.append(net.find_network_file(None, sp))
            except InputError as e:
                errors.append(str(e))
        if not paths:
            names = [net.network_filename(sp) for sp in _keys.SPECIES]
            raise InputError(errors[0].replace(f"no {names[0]} found", f"no {' or '.join(names)} found", 1))
    elif a.path is not None and a.species is None and Path(a.path).is_dir():
        paths = sorted(Path(a.path).glob(_keys.NETWORK_FILE.format(species="*")))
        if not paths:
            paths = [net.find_network_file(a.path)]  # raises the usual message
    else:
        paths = [net.find_network_file(a.path, a.species)]
    lines: list[str] = []
    for p in paths:
        lines.extend(_describe(p, net.load_network(p)))
    print("\n".join(lines))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """``spacetravlr network ...`` (``argv`` excludes the word ``network``); returns the exit code."""
    a = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if a.command == "build":
        return _build(a)
    return _info(a)

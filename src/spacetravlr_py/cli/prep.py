"""``spacetravlr prep``: turn a raw-count .h5ad into a trainable one.

scanpy, anndata and numpy are imported only after the arguments are parsed, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from .. import _keys
from ._common import EXIT_OK, new_parser

PROG = "spacetravlr prep"

DESCRIPTION = """\
Turn a raw-count .h5ad (counts in X, coordinates in obsm['spatial']) into one the training program
reads: layers raw_count, normalized_count (log1p of counts per 10,000) and imputed_count (per-cell-type
diffusion smoothing in the spirit of MAGIC: imputed = M^t · normalized, M a row-stochastic kNN
Markov matrix on PCA within each cell type), cell types in obs['cell_type'] (Leiden when no column is
named), obsm['X_umap'] when absent, and coordinates rescaled so that the median nearest-neighbour
distance is 15 (original kept in obsm['spatial_unscaled']). Needs the prep extra:
pip install "spacetravlr-py[prep]"."""

EPILOG = """\
examples:
  # raw counts, no labels: Leiden cell types, UMAP, 3000 HVGs + every network TF/ligand/receptor
  spacetravlr prep slideseq.h5ad -o slideseq_prepped.h5ad --network data/

  # existing labels; cells without one are dropped
  spacetravlr prep starmap.h5ad -o starmap_prepped.h5ad --cluster-key cluster_name --drop-unlabeled

  # 8 sections in one file: neighbours measured per section, sections laid out side by side
  spacetravlr prep st_8sections.h5ad -o st_prepped.h5ad --section-key section --resolution 0.5

  # counts in a layer; keep every gene; no rescaling
  spacetravlr prep data.h5ad -o out.h5ad --layer counts --all-genes --no-rescale

  # then train
  spacetravlr --h5ad slideseq_prepped.h5ad --network-dir data/ --max-genes 30 --plain
"""


def build_parser() -> argparse.ArgumentParser:
    p = new_parser(PROG, DESCRIPTION, EPILOG)
    p.add_argument("input", metavar="IN.h5ad", help="raw-count AnnData")
    p.add_argument("-o", "--out", required=True, metavar="OUT.h5ad", help="prepared AnnData to write (atomically)")

    g = p.add_argument_group("counts and normalisation")
    g.add_argument("--layer", metavar="NAME", help="layer holding the raw counts (default: X)")
    g.add_argument("--skip-normalize", action="store_true",
                   help="the matrix is already log-normalised: use it as normalized_count (no raw_count)")
    g.add_argument("--allow-non-integer", action="store_true",
                   help="accept non-integer counts (e.g. ambient-corrected CellBender/SoupX output)")
    g.add_argument("--target-sum", type=float, default=1e4, metavar="S",
                   help="counts per cell after library-size normalisation (default 1e4)")

    g = p.add_argument_group("cell types")
    g.add_argument("--cluster-key", metavar="COL",
                   help="obs column with cell types, copied to obs['cell_type'] (default: obs['cell_type'] if "
                   "present, else Leiden clusters)")
    g.add_argument("--leiden", action="store_true", help="compute Leiden clusters even if obs['cell_type'] exists")
    g.add_argument("--resolution", type=float, default=1.0, help="Leiden resolution (default 1.0)")
    g.add_argument("--min-cluster-cells", type=int, default=10, metavar="N",
                   help="merge Leiden clusters of fewer cells into their most connected neighbour (default 10; "
                   "1 = keep all)")
    g.add_argument("--key-added", default=_keys.DEFAULT_CLUSTER_ANNOT, metavar="COL",
                   help="obs column to write the cell types to (default cell_type)")
    g.add_argument("--drop-unlabeled", action="store_true",
                   help="drop cells with a missing label (default: they form the type 'unlabeled')")

    g = p.add_argument_group("genes")
    g.add_argument("--network", metavar="PATH_OR_DIR",
                   help="{species}_network.parquet or its folder: keep its TFs, ligands and receptors, and check "
                   "species and gene overlap")
    g.add_argument("--species", choices=_keys.SPECIES, help="default: inferred from the gene symbols")
    g.add_argument("--n-top-genes", type=int, default=3000, metavar="N",
                   help="highly variable genes to keep (default 3000; every gene when the data have fewer)")
    g.add_argument("--all-genes", action="store_true", help="keep every gene (imputed_count is dense: mind memory)")
    g.add_argument("--keep-genes", metavar="A,B,...", help="further genes to keep")

    g = p.add_argument_group("embedding and imputation")
    g.add_argument("--n-pcs", type=int, default=50, help="PCA components (default 50)")
    g.add_argument("--n-neighbors", type=int, default=15, help="kNN graph size for Leiden and UMAP (default 15)")
    g.add_argument("--umap", choices=["auto", "always", "never"], default="auto",
                   help="compute obsm['X_umap']: auto = only when absent (default)")
    g.add_argument("--impute-knn", type=int, default=5, metavar="K",
                   help="k: bandwidth = distance to the k-th neighbour within the cell type (default 5)")
    g.add_argument("--impute-knn-max", type=int, metavar="K", help="neighbours per cell (default 3k)")
    g.add_argument("--impute-decay", type=float, default=1.0, metavar="A",
                   help="α of the kernel exp(-(d/σ)^α) (default 1)")
    g.add_argument("--impute-t", type=int, default=3, metavar="T",
                   help="diffusion steps t in imputed = M^t · normalized (default 3; 0 = no smoothing)")

    g = p.add_argument_group("coordinates")
    g.add_argument("--spatial-key", metavar="KEY", help="obsm key (default: spatial, X_spatial or spatial_loc)")
    g.add_argument("--no-rescale", action="store_true", help="keep the coordinates' units")
    g.add_argument("--cell-size", type=float, default=15.0, metavar="D",
                   help="median nearest-neighbour distance after rescaling (default 15)")
    g.add_argument("--section-key", metavar="COL",
                   help="obs column naming sections: laid out side by side, neighbours measured per section")
    g.add_argument("--section-gap", type=float, metavar="G",
                   help="minimum distance between sections (default 133 median NN distances = 2000 at 15)")

    g = p.add_argument_group("run")
    g.add_argument("--seed", type=int, default=0, help="random seed of PCA, Leiden and UMAP (default 0)")
    g.add_argument("--compression", choices=["none", "gzip", "lzf"], default="none",
                   help="h5ad compression (default none)")
    g.add_argument("--quiet", action="store_true", help="print only the summary")
    return p


def _peak_memory_gb() -> float:
    import resource

    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / (1024.0 ** 3) if sys.platform == "darwin" else kb / (1024.0 ** 2)


def main(argv: Sequence[str] | None = None) -> int:
    """``spacetravlr prep IN -o OUT ...`` (``argv`` excludes ``prep``); returns the exit code."""
    a = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    from pathlib import Path

    from ..errors import InputError
    from ..prep import prepare_file

    t0 = time.perf_counter()
    out = Path(a.out).expanduser()
    if out.resolve() == Path(a.input).expanduser().resolve():
        raise InputError(f"{out}: the output would overwrite the input; choose another -o")
    keep = [g.strip() for g in a.keep_genes.split(",") if g.strip()] if a.keep_genes else []
    rep = prepare_file(
        a.input, out, verbose=not a.quiet, compression=a.compression,
        layer=a.layer, skip_normalize=a.skip_normalize, allow_non_integer=a.allow_non_integer,
        target_sum=a.target_sum, cluster_key=a.cluster_key, leiden=a.leiden, resolution=a.resolution,
        min_cluster_cells=a.min_cluster_cells,
        key_added=a.key_added, drop_unlabeled=a.drop_unlabeled, network=a.network, species=a.species,
        n_top_genes=None if a.all_genes else a.n_top_genes, keep_genes=keep, n_pcs=a.n_pcs,
        n_neighbors=a.n_neighbors, compute_umap={"auto": None, "always": True, "never": False}[a.umap],
        impute_knn=a.impute_knn, impute_knn_max=a.impute_knn_max, impute_decay=a.impute_decay,
        impute_t=a.impute_t, spatial_key=a.spatial_key, rescale=not a.no_rescale, cell_size=a.cell_size,
        section_key=a.section_key, section_gap=a.section_gap, random_state=a.seed,
    )
    size = out.stat().st_size
    lines = [f"{PROG}: {a.input} → {out}", *(f"  {s}" for s in rep.lines())]
    lines.append(f"  wrote {out} ({size / 1e6:.1f} MB) in {time.perf_counter() - t0:.1f} s; "
                 f"peak memory {_peak_memory_gb():.2f} GB")
    lines.append(f"  train with: spacetravlr --h5ad {out} --layer {_keys.DEFAULT_LAYER} "
                 f"--cluster-annot {a.key_added}" + (f" --network-dir {a.network}" if a.network else ""))
    print("\n".join(lines), flush=True)
    return EXIT_OK

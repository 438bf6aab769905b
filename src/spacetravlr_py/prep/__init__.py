"""Data preparation: raw counts → a trainable AnnData (``spacetravlr prep``).

Normalise (``normalized_count``), select genes (highly variable + network TFs/ligands/receptors),
cluster (Leiden), embed (UMAP), impute per cell type (``imputed_count``, a MAGIC-style diffusion) and
put coordinates on a common scale (median nearest-neighbour distance 15), with multi-section data laid
out side by side. scanpy does the single-cell steps; it is imported only when these functions run
(install the ``prep`` extra).
"""

from __future__ import annotations

from .coords import (
    DEFAULT_CELL_SIZE,
    SectionLayout,
    bounding_boxes,
    layout_sections,
    median_nn_distance,
    nn_distances,
    rescale_factor,
)
from .counts import CountSummary, check_counts, drop_empty
from .genes import GeneSelection, select_genes
from .impute import diffuse, diffusion_operator, impute_by_cluster
from .normalize import DEFAULT_TARGET_SUM, normalize
from .pipeline import UNS_KEY, PrepReport, prepare, prepare_file, read_input, write_output

__all__ = [
    "DEFAULT_CELL_SIZE",
    "DEFAULT_TARGET_SUM",
    "UNS_KEY",
    "CountSummary",
    "GeneSelection",
    "PrepReport",
    "SectionLayout",
    "bounding_boxes",
    "check_counts",
    "diffuse",
    "diffusion_operator",
    "drop_empty",
    "impute_by_cluster",
    "layout_sections",
    "median_nn_distance",
    "nn_distances",
    "normalize",
    "prepare",
    "prepare_file",
    "read_input",
    "rescale_factor",
    "select_genes",
    "write_output",
]

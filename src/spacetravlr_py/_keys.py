"""One source of truth for AnnData keys, file names and column conventions.

Every module that needs one of these strings imports it from here; no other module spells
``"imputed_count"`` or ``"_betadata.feather"`` itself.
"""

from __future__ import annotations

# --- AnnData --------------------------------------------------------------------------------
SPATIAL_KEYS: tuple[str, ...] = ("spatial", "X_spatial", "spatial_loc")
"""``obsm`` keys searched, in order, for spatial coordinates."""
UMAP_KEYS: tuple[str, ...] = ("X_umap", "umap")
"""``obsm`` keys searched, in order, for the 2-D embedding used by transitions."""
DEFAULT_LAYER = "imputed_count"
NORMALIZED_LAYER = "normalized_count"
RAW_LAYER = "raw_count"
DEFAULT_CLUSTER_ANNOT = "cell_type"
SPATIAL_UNSCALED_KEY = "spatial_unscaled"
HVG_COLUMN = "highly_variable"
"""Boolean ``var`` column of highly variable genes (scanpy, ``spacetravlr prep``)."""
MIN_EXPRESSION = 1e-9
"""Expression values ``<= MIN_EXPRESSION`` are treated as exactly 0 (SPEC §2.1)."""

# --- Network --------------------------------------------------------------------------------
NETWORK_FILE = "{species}_network.parquet"
NETWORK_COLUMNS: tuple[str, ...] = ("source", "target", "edge_type", "weight", "signaling")
EDGE_GRN = "grn"
EDGE_LR = "lr"
EDGE_NICHENET = "nichenet"
EDGE_TYPES: tuple[str, ...] = (EDGE_GRN, EDGE_LR, EDGE_NICHENET)
SECRETED = "Secreted Signaling"
SPECIES: tuple[str, ...] = ("mouse", "human")
DATA_DIR_ENV = "SPACETRAVLR_DATA_DIR"

# --- Modulator names and betadata columns ---------------------------------------------------
LR_SEP = "$"
"""``L$R``: ligand–receptor pair (group 1)."""
TFL_SEP = "#"
"""``L#TF``: ligand–TF pair (group 2), ligand first."""
BETA_PREFIX = "beta_"
INTERCEPT = "beta0"
INTERCEPT_ALIASES: tuple[str, ...] = ("beta0", "beta_0")
CLUSTER_COL = "Cluster"
CELLID_COL = "CellID"

# --- Run directory files ---------------------------------------------------------------------
BETADATA_SUFFIX = "_betadata"
BETADATA_FEATHER = "{gene}_betadata.feather"
BETADATA_EXTS: tuple[str, ...] = (".feather", ".parquet", ".csv")
ORPHAN_FILE = "{gene}.orphan"
LOCK_FILE = "{gene}.lock"
LOG_DIR = "log"
GENE_LOG = "{gene}.log"
CNN_WEIGHTS_FILE = "{gene}_cnn_weights.npz"
"""Full mode's exported CNN weights, under ``[model_export].output_subdir``."""
REPRO_TOML = "spacetravlr_run_repro.toml"
MANIFEST_JSON = "spacetravlr_manifest.json"
CONFIG_TOML = "spaceship_config.toml"
SCRATCH_PREFIX = ".spacetravlr-ctx-"
"""Private folder of a live multi-process run: ``{SCRATCH_PREFIX}{host}-{pid}-{random}``."""
MINIMAL_H5AD = "spacetravlr_minimal_repro.h5ad"
"""The run folder's own small copy of what perturbation and the viewer read (``--write-minimal-repro-h5ad``)."""
CONDITIONS_DIR = "conditions"
"""``{run}/conditions/{folder}/``: one ordinary run folder per group of ``[data].condition``."""
CONDITION_LABEL_FILE = "condition_label.txt"
"""The group's label, one line, in each condition folder (as the seed writes it)."""
CNN_WEIGHTS_DIR = "CNN_weights"
CNN_WEIGHTS_FILE = "{gene}_cnn_weights.npz"

# --- Viewer ------------------------------------------------------------------------------------
PERTURB_EXPORT_DIR = "perturbations"
"""Folder of a run where the viewer exports perturbation results."""
VIEWER_CORS_ENV = "SPATIAL_VIEWER_ALLOW_CORS"
MCP_API_BASE_ENV = "SPATIAL_VIEWER_API_BASE"
"""URL of a running viewer the MCP server connects to (``spacetravlr mcp --api-base``)."""
VIEWER_STATIC_DIR = "static"
"""Folder (inside ``spacetravlr_py/viewer``) of the built front end."""
INDEX_HTML = "index.html"

RUN_SUMMARY_HTML = "spacetravlr_run_summary.html"
REPORT_FIGURE = "report_{name}.png"
"""A report figure kept as a file beside the HTML (``figures_dir``); the HTML inlines the same PNG."""

# --- Interaction tables ------------------------------------------------------------------------
INTERACTIONS_FILE = "interactions.feather"
"""Default ``--out`` of ``spacetravlr collect-interactions`` (``.csv`` writes CSV)."""

# --- Screen outputs ---------------------------------------------------------------------------
SCREEN_CSV = "screen.csv"
SCREEN_JSON = "screen.json"
SCREEN_SPEC_JSON = "screen_spec.json"
"""What a screen folder holds: the request and the resolved genes (written before the first gene)."""
SCREEN_GENES_DIR = "genes"
SCREEN_GENE_JSON = "{gene}.json"
"""One finished gene of a screen (``genes/{gene}.json``, written atomically)."""
SCREEN_CELL_TYPES_CSV = "screen_cell_types.csv"
SCREEN_TOP_PNG = "screen_top.png"
SCREEN_HEATMAP_PNG = "screen_heatmap.png"

# --- Neighbour-effect outputs -----------------------------------------------------------------
NEIGHBOURS_BY_TYPE_CSV = "neighbours_by_type.csv"
NEIGHBOURS_BY_DISTANCE_CSV = "neighbours_by_distance.csv"
NEIGHBOURS_LIGANDS_CSV = "neighbours_ligands.csv"
NEIGHBOURS_JSON = "neighbours.json"
NEIGHBOURS_PNG = "neighbours_delta_vs_distance.png"

# --- Demo output folder ----------------------------------------------------------------------
DEMO_SUMMARY_JSON = "demo_summary.json"
DEMO_DATA_DIR = "data"
DEMO_RUN_DIR = "run"
DEMO_KO_DIR = "perturbations"
DEMO_FULL_DIR = "full_mode"
"""The demo's full-mode stage: its tissue (``data/``) and the seed and full runs on it."""

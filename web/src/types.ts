// Payloads of the spatial_viewer API (docs/viewer.md). Optional fields are ones a server may omit
// (no UMAP, no cell-type column, no run loaded); the UI degrades instead of failing.

export interface Bounds {
  min_x: number;
  max_x: number;
  min_y: number;
  max_y: number;
}

export interface LoadState {
  state: "empty" | "loading" | "ready" | "error" | "cancelled";
  stage: "tissue" | "run" | "done" | string;
  percent: number | null;
  label: string | null;
  error: string | null;
  seconds: number | null;
}

export interface JobInfo {
  id: number;
  kind: string;
  gene: string | null;
  state: string;
  step: number | null;
  n_steps: number | null;
  percent: number | null;
  message: string | null;
  elapsed_s: number | null;
}

/** One group of a run per condition, as the parent run's manifest records it. */
export interface ConditionInfo {
  label: string;
  folder: string;
  n_cells: number | null;
  status: string | null;
}

export interface Meta {
  status: "empty" | "loading" | "ready" | "error" | "cancelled";
  dataset_ready: boolean;
  perturb_ready: boolean;
  perturb_loading: boolean;
  perturb_error: string | null;
  load: LoadState;
  n_obs: number;
  n_vars: number;
  layer: string;
  cluster_annot: string;
  bounds: Bounds;
  umap_obsm_key: string | null;
  umap_bounds: Bounds | null;
  n_clusters: number;
  cluster_labels: string[];
  cell_type_column: string | null;
  cell_type_categories: string[];
  network_loaded: boolean;
  network_species: string | null;
  betadata_row_id: string | null;
  n_trained_genes?: number | null;
  n_propagation_default: number | null;
  adata_path: string | null;
  betadata_dir: string | null;
  network_dir: string | null;
  run_toml: string | null;
  /** a run trained with --condition: its groups, the one open, its obs column, the parent run's TOML */
  conditions?: ConditionInfo[];
  condition?: string | null;
  condition_column?: string | null;
  condition_parent_toml?: string | null;
  condition_note?: string | null;
  data_roots?: string[];
  job: JobInfo | null;
  view?: SharedView;
}

/** GET /api/view: what an assistant asked the page to show (version 0 = never set). */
export interface SharedView {
  layout: "spatial" | "umap" | null;
  colour: "celltype" | "gene" | "beta" | "delta" | null;
  gene: string | null;
  beta_gene: string | null;
  beta_column: string | null;
  delta_gene: string | null;
  message: string | null;
  source: string | null;
  perturbation: {
    gene: string;
    genes: string[];
    desired_expr: number;
    scope: string;
    n_scope_cells: number;
    n_propagation: number;
    job_id: number;
  } | null;
  version: number;
  updated_unix_s: number | null;
}

export type Scope =
  | { type: "all" }
  | { type: "indices"; indices: number[] }
  | { type: "cell_types"; names: string[] }
  | { type: "clusters"; cluster_ids: number[] };

export interface PerturbRequest {
  gene: string;
  desired_expr: number;
  desired_of_max: number | null;
  scope: Scope;
  n_propagation: number;
}

export interface GeneEffect {
  gene: string;
  mean_delta: number;
  mean_abs_delta: number;
  max_abs_delta: number;
}

export interface ClusterEffect {
  cluster_id: number;
  label: string;
  n_cells: number;
  mean_abs_delta: number;
}

export interface PerturbSummary {
  job_id: number;
  cached: boolean;
  gene: string;
  desired_expr: number;
  scope: string;
  n_scope_cells: number;
  n_obs: number;
  n_propagation: number;
  mean_delta: number;
  max_abs_delta: number;
  n_positive: number;
  n_negative: number;
  n_zero: number;
  top_affected_genes: GeneEffect[];
  cluster_mean_abs_delta: ClusterEffect[];
  n_genes_changed?: number;
  timings_s?: Record<string, number>;
}

export interface UmapField {
  nx: number;
  ny: number;
  grid_x: number[];
  grid_y: number[];
  u: number[];
  v: number[];
  mask: boolean[];
  seconds?: number;
}

export interface LrEdge {
  ligand: string;
  receptor: string;
  ligand_expr: number;
  receptor_expr: number;
  support_score: number;
  beta: number | null;
  linked_tf: string | null;
}

export interface NeighborContext {
  index: number;
  obs_name?: string;
  distance: number;
  cluster_id: number;
  max_support_score: number | null;
  edges: LrEdge[];
}

export interface CellContext {
  cell_index: number;
  obs_name: string | null;
  cluster_id: number;
  cluster_label: string;
  cell_type: string | null;
  focus_gene: string;
  focus_expr: number;
  modulator_source: "betadata" | "network" | "none";
  modulators: { tfs: string[]; lr_pairs: [string, string][]; tfl_pairs: [string, string][]; ligands: string[]; receptors: string[] };
  intercept: number | null;
  betas: { modulator: string; family: string; beta: number }[];
  tf_exprs: { gene: string; expr: number }[];
  ligand_exprs: { gene: string; expr: number }[];
  neighbors_in_query: number;
  neighbors: NeighborContext[];
}

export interface Progress {
  active: boolean;
  queued: number;
  job: JobInfo | null;
  last: JobInfo | null;
  load: LoadState;
}

export interface ExportResult {
  ok: boolean;
  job_id: number;
  files: { expression: string; summary: string };
}

// Per-dataset arrays fetched once (layouts, clusters, cell-type codes) and small caches of
// per-gene vectors. Everything per cell is a typed array indexed by cell (obs order).
import { getF32, getJSON, getU16, getU32, q } from "./api";
import type { Meta } from "./types";
import type { Layout } from "./urlstate";

export const NO_CATEGORY = 0xffff;

/** The grouping shown by the cell-type legend: cell-type codes, else clusters mapped to 0..k-1. */
export interface Groups {
  title: string;
  codes: Uint16Array;
  names: string[];
  counts: number[];
}

class Lru<V> {
  private readonly map = new Map<string, V>();
  constructor(private readonly cap: number) {}
  get(k: string): V | undefined {
    const v = this.map.get(k);
    if (v !== undefined) {
      this.map.delete(k);
      this.map.set(k, v);
    }
    return v;
  }
  set(k: string, v: V): void {
    this.map.delete(k);
    this.map.set(k, v);
    while (this.map.size > this.cap) this.map.delete(this.map.keys().next().value as string);
  }
}

export class Data {
  readonly n: number;
  spatial = new Float32Array(0);
  umap: Float32Array | null = null;
  clusters = new Uint32Array(0);
  groups!: Groups;
  /** cluster id → the label shown for it (cell type when clusters are cell types) */
  clusterLabel = new Map<number, string>();
  betaGenes: string[] = [];
  private readonly expr = new Lru<Float32Array>(12);
  private readonly max = new Map<string, number>();

  constructor(readonly meta: Meta) {
    this.n = meta.n_obs;
  }

  async load(onStep: (msg: string) => void): Promise<void> {
    const n = this.n;
    onStep(`Loading ${n.toLocaleString()} cells…`);
    const hasUmap = Boolean(this.meta.umap_obsm_key);
    const hasTypes = Boolean(this.meta.cell_type_column) && this.meta.cell_type_categories.length > 0;
    const [spatial, umap, clusters, codes] = await Promise.all([
      getF32("spatial", 2 * n),
      hasUmap ? getF32("umap", 2 * n) : Promise.resolve(null),
      getU32("clusters", n),
      hasTypes ? getU16("cell_type/codes", n) : Promise.resolve(null),
    ]);
    this.spatial = spatial;
    this.umap = umap;
    this.clusters = clusters;
    this.groups = codes ? this.typeGroups(codes) : this.clusterGroups();
    this.meta.cluster_labels.forEach((label, id) => this.clusterLabel.set(id, label));
  }

  /** Trained genes; call once meta.perturb_ready (the run stage answers 503 until then). */
  async loadBetaGenes(): Promise<void> {
    this.betaGenes = await getJSON<string[]>("betadata/genes");
  }

  positions(layout: Layout): Float32Array {
    return layout === "umap" && this.umap ? this.umap : this.spatial;
  }

  async expression(gene: string): Promise<Float32Array> {
    const hit = this.expr.get(gene);
    if (hit) return hit;
    const v = await getF32(`gene/expression?${q({ gene })}`, this.n);
    this.expr.set(gene, v);
    let m = 0;
    for (let i = 0; i < v.length; i++) if (v[i] > m) m = v[i];
    this.max.set(gene, m);
    return v;
  }

  async observedMax(gene: string): Promise<number> {
    if (!this.max.has(gene)) await this.expression(gene);
    return this.max.get(gene) ?? 0;
  }

  genes(prefix: string, limit = 20): Promise<string[]> {
    return getJSON<string[]>(`genes?${q({ prefix, limit })}`);
  }

  private typeGroups(codes: Uint16Array): Groups {
    const names = this.meta.cell_type_categories;
    return { title: this.meta.cell_type_column ?? "cell type", codes, names, counts: countCodes(codes, names.length) };
  }

  /** No cell-type column: the legend shows clusters (ids are 0..n_clusters-1). */
  private clusterGroups(): Groups {
    const k = this.meta.n_clusters;
    const codes = new Uint16Array(this.n);
    for (let i = 0; i < this.n; i++) codes[i] = this.clusters[i] < k ? this.clusters[i] : NO_CATEGORY;
    const names = Array.from({ length: k }, (_, id) => this.meta.cluster_labels[id] ?? `cluster ${id}`);
    return { title: this.meta.cluster_annot || "cluster", codes, names, counts: countCodes(codes, k) };
  }
}

function countCodes(codes: Uint16Array, k: number): number[] {
  const counts = new Array<number>(k).fill(0);
  for (let i = 0; i < codes.length; i++) if (codes[i] < k) counts[codes[i]]++;
  return counts;
}

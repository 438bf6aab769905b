// The viewer's state and its one rendering path: layout → positions, colouring → RGBA + legend,
// cell-type toggles → GPU visibility filter, all mirrored into the URL.
import { getF32, getJSON, postJSON, q } from "./api";
import { DIVERGING, VIRIDIS, colorByCodes, colorByValues } from "./colormaps";
import { Data, NO_CATEGORY } from "./data";
import { byId, clear, h } from "./dom";
import { categoryLegend, clusterRanges, rampLegend } from "./legend";
import type { Scene } from "./scene";
import { finiteRange, fmt, groupStats, quantile } from "./stats";
import { reportError } from "./ui";
import { writeUrl, type ColourMode, type Layout, type UrlState } from "./urlstate";

/** The last perturbation the server holds: Δ vectors per gene, fetched on demand. */
export interface PerturbResult {
  gene: string;
  desired: number;
  scopeLabel: string;
  nScoped: number;
  genes: string[];
  delta: Map<string, Float32Array>;
  fetchDelta: (gene: string) => Promise<Float32Array>;
}

export class App {
  data: Data | null = null;
  state: UrlState;
  hidden = new Set<number>();
  selection = new Uint32Array(0);
  perturb: PerturbResult | null = null;
  /** values behind the current colouring (null for cell types), for the hover tooltip */
  values: Float32Array | null = null;
  valueLabel = "";
  private colours = new Uint8Array(0);
  private visible = new Float32Array(0);
  private ticket = 0;
  /** notified after every colouring change (the inspector follows the focus gene) */
  onColourChange: (() => void) | null = null;
  /** notified after a layout switch (overlays follow the positions) */
  onLayoutChange: (() => void) | null = null;

  constructor(
    readonly scene: Scene,
    initial: UrlState,
  ) {
    this.state = { ...initial };
  }

  get n(): number {
    return this.data?.n ?? 0;
  }

  /** Gene the inspector and perturbation panel follow: the one being looked at. */
  get focusGene(): string | null {
    const s = this.state;
    if (s.colour === "beta" && s.betaGene) return s.betaGene;
    if (s.colour === "delta" && s.deltaGene) return s.deltaGene;
    return s.gene ?? s.betaGene ?? this.data?.betaGenes[0] ?? null;
  }

  attach(data: Data): void {
    this.data = data;
    this.colours = new Uint8Array(4 * data.n);
    this.visible = new Float32Array(data.n).fill(1);
    this.hidden.clear();
    this.selection = new Uint32Array(0);
    this.perturb = null;
    if (this.state.layout === "umap" && !data.umap) this.state.layout = "spatial";
    this.scene.setPositions(data.positions(this.state.layout));
    this.scene.setVisible(this.visible);
    this.scene.setSelection(this.selection);
    this.scene.setQuiver(null);
    this.scene.setPointScale(this.state.size);
  }

  setLayout(layout: Layout): void {
    if (!this.data) return;
    if (layout === "umap" && !this.data.umap) {
      reportError("UMAP", new Error("this dataset has no obsm['X_umap']"));
      return;
    }
    this.state.layout = layout;
    this.scene.setPositions(this.data.positions(layout));
    this.scene.setSelection(this.selection);
    this.syncControls();
    this.onLayoutChange?.();
  }

  async setColour(mode: ColourMode, patch: Partial<UrlState> = {}): Promise<void> {
    Object.assign(this.state, patch, { colour: mode });
    await this.recolour();
  }

  /** Recompute colours and legend for the current state; stale answers of slow fetches are dropped. */
  async recolour(): Promise<void> {
    const data = this.data;
    if (!data) return;
    const mine = ++this.ticket;
    const legend = byId("legend");
    legend.classList.add("busy");
    try {
      const s = this.state;
      if (s.colour === "gene" && s.gene) await this.colourGene(data, s.gene, mine);
      else if (s.colour === "beta" && s.betaGene && s.betaColumn) await this.colourBeta(data, s.betaGene, s.betaColumn, mine);
      else if (s.colour === "delta" && this.perturb && s.deltaGene) await this.colourDelta(s.deltaGene, mine);
      else {
        s.colour = "celltype";
        this.colourTypes(data);
      }
    } catch (e) {
      if (mine === this.ticket) {
        reportError("Colouring", e);
        this.state.colour = "celltype";
        this.colourTypes(data);
      }
    } finally {
      legend.classList.remove("busy");
    }
    if (mine !== this.ticket) return;
    this.syncControls();
    this.onColourChange?.();
  }

  private commit(mine: number): boolean {
    if (mine !== this.ticket) return false;
    this.scene.setColors(this.colours);
    return true;
  }

  private colourTypes(data: Data): void {
    const g = data.groups;
    this.values = null;
    colorByCodes(g.codes, NO_CATEGORY, this.colours);
    this.scene.setColors(this.colours);
    categoryLegend(byId("legend"), {
      title: g.title,
      names: g.names,
      counts: g.counts,
      hidden: this.hidden,
      onToggle: (code) => this.toggleCategory(code),
      onOnly: (code) => this.onlyCategory(code),
      onAll: () => this.showAllCategories(),
    });
  }

  private async colourGene(data: Data, gene: string, mine: number): Promise<void> {
    const v = await data.expression(gene);
    const { min, max } = finiteRange(v);
    // the top 0.5 % saturate so a few outlier cells do not wash out the map
    const hi = Math.max(quantile(v, 0.995), min + 1e-9);
    colorByValues(v, Math.min(min, 0), hi, VIRIDIS, this.colours);
    if (!this.commit(mine)) return;
    this.values = v;
    this.valueLabel = gene;
    rampLegend(byId("legend"), {
      title: gene,
      unit: data.meta.layer || "expression",
      lo: Math.min(min, 0),
      hi,
      table: VIRIDIS,
      note: hi < max ? `max ${fmt(max)}; values above ${fmt(hi)} saturate` : undefined,
    }, this.hiddenNote());
  }

  private async colourBeta(data: Data, gene: string, column: string, mine: number): Promise<void> {
    const v = await getF32(`betadata/values?${q({ gene, column })}`, data.n);
    const { min, max } = finiteRange(v);
    const limit = Math.max(Math.abs(min), Math.abs(max), 1e-9);
    colorByValues(v, -limit, limit, DIVERGING, this.colours);
    if (!this.commit(mine)) return;
    this.values = v;
    this.valueLabel = `β ${column}`;
    const ranges = clusterRanges(groupStats(v, data.clusters), (c) => data.clusterLabel.get(c) ?? `cluster ${c}`, limit, DIVERGING);
    const box = h("div", {}, ranges, this.hiddenNote());
    rampLegend(byId("legend"), {
      title: `β of ${gene}: ${betaLabel(column)}`,
      unit: "coefficient",
      lo: -limit,
      hi: limit,
      table: DIVERGING,
      centred: true,
    }, box);
  }

  private async colourDelta(gene: string, mine: number): Promise<void> {
    const p = this.perturb;
    if (!p) return;
    const v = await p.fetchDelta(gene);
    const { min, max } = finiteRange(v);
    const limit = Math.max(Math.abs(min), Math.abs(max), 1e-9);
    colorByValues(v, -limit, limit, DIVERGING, this.colours);
    if (!this.commit(mine)) return;
    this.values = v;
    this.valueLabel = `Δ ${gene}`;
    const unit = this.data?.meta.layer || "expression";
    rampLegend(byId("legend"), {
      title: `Δ ${gene}`,
      unit,
      lo: -limit,
      hi: limit,
      table: DIVERGING,
      centred: true,
      note: `${p.gene} → ${fmt(p.desired)} in ${p.scopeLabel}; blue = down, red = up`,
    }, this.hiddenNote());
  }

  private hiddenNote(): HTMLElement | null {
    if (this.hidden.size === 0) return null;
    const btn = h("button", { text: "show all" });
    btn.addEventListener("click", () => this.showAllCategories());
    return h("p", { class: "hint" }, `${this.hidden.size} cell group(s) hidden · `, btn);
  }

  toggleCategory(code: number): void {
    if (this.hidden.has(code)) this.hidden.delete(code);
    else this.hidden.add(code);
    this.applyVisibility();
  }

  onlyCategory(code: number): void {
    this.hidden = new Set(this.data?.groups.names.map((_, k) => k).filter((k) => k !== code));
    this.applyVisibility();
  }

  showAllCategories(): void {
    this.hidden.clear();
    this.applyVisibility();
  }

  private applyVisibility(): void {
    const data = this.data;
    if (!data) return;
    const codes = data.groups.codes;
    for (let i = 0; i < data.n; i++) this.visible[i] = this.hidden.has(codes[i]) ? 0 : 1;
    this.scene.setVisible(this.visible);
    void this.recolour();
  }

  get visibility(): Float32Array {
    return this.visible;
  }

  setSelection(indices: Uint32Array): void {
    this.selection = indices;
    this.scene.setSelection(indices);
  }

  /** Reflect state into the segmented controls and the URL. */
  syncControls(): void {
    for (const b of document.querySelectorAll<HTMLButtonElement>("#layout-seg button")) {
      b.classList.toggle("on", b.dataset.layout === this.state.layout);
      if (b.dataset.layout === "umap") b.disabled = !this.data?.umap;
    }
    for (const b of document.querySelectorAll<HTMLButtonElement>("#colour-seg button")) {
      b.classList.toggle("on", b.dataset.mode === this.state.colour);
      if (b.dataset.mode === "delta") b.disabled = !this.perturb;
      if (b.dataset.mode === "beta") b.disabled = (this.data?.betaGenes.length ?? 0) === 0;
    }
    byId("colour-gene").hidden = this.state.colour !== "gene" && this.state.colour !== "celltype";
    byId("colour-beta").hidden = this.state.colour !== "beta";
    byId("colour-delta").hidden = this.state.colour !== "delta";
    writeUrl(this.state);
  }

  /** Fill the β target-gene and coefficient selects (columns follow the target). */
  async fillBetaSelects(): Promise<void> {
    const data = this.data;
    const geneSel = byId<HTMLSelectElement>("beta-gene");
    const hint = byId("beta-hint");
    if (!data || data.betaGenes.length === 0) {
      clear(geneSel);
      hint.textContent = "No trained run loaded: open a run TOML in Dataset to see β.";
      return;
    }
    clear(geneSel, ...data.betaGenes.map((g) => h("option", { value: g, text: g })));
    const gene = this.state.betaGene && data.betaGenes.includes(this.state.betaGene) ? this.state.betaGene : data.betaGenes[0];
    geneSel.value = gene;
    this.state.betaGene = gene;
    await this.fillBetaColumns(gene);
    const perCell = data.meta.betadata_row_id === "CellID";
    hint.textContent = perCell ? "Per-cell coefficients (full mode)." : "Per-cluster coefficients mapped to each cell (seed mode).";
  }

  async fillBetaColumns(gene: string): Promise<void> {
    const colSel = byId<HTMLSelectElement>("beta-column");
    const cols = await getJSON<string[]>(`betadata/columns?${q({ gene })}`);
    clear(colSel, ...cols.map((c) => h("option", { value: c, text: betaLabel(c) })));
    let col = this.state.betaColumn && cols.includes(this.state.betaColumn) ? this.state.betaColumn : null;
    if (!col) {
      // default: the modulator with the largest mean |β| over all cells (the intercept is rarely the question)
      const top = await postJSON<{ column: string }[]>("betadata/top", { gene, top_k: 1 });
      col = top[0]?.column ?? cols[0] ?? null;
    }
    colSel.value = col ?? "";
    this.state.betaColumn = col;
  }
}

/** "beta_Il6$Il6st" → "Il6 → Il6st (ligand–receptor)"; "beta0" → "intercept". */
export function betaLabel(column: string): string {
  if (column === "beta0" || column === "beta_0") return "intercept";
  const m = column.replace(/^beta_/, "");
  if (m.includes("$")) return `${m.replace("$", " → ")} (L–R)`;
  if (m.includes("#")) return `${m.replace("#", " → ")} (ligand–TF)`;
  return `${m} (TF)`;
}

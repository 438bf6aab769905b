// The perturbation panel: gene, desired value, scope (cell types, clusters, a drawn selection),
// propagation steps → preview (Δ colouring) → summary card → optional UMAP transition field;
// progress polled while the job runs; cancel; export of the last result.
import { ApiError, getF32, getJSON, postF32, postJSON, q } from "./api";
import type { App } from "./app";
import { categoryColor } from "./colormaps";
import { byId, clear, h } from "./dom";
import { drawPolygon, pointsInPolygon, type DrawTool } from "./lasso";
import type { Quiver } from "./scene";
import { geneSearch } from "./search";
import { fmt } from "./stats";
import { renderSummary } from "./summary";
import type { ExportResult, Progress, PerturbRequest, PerturbSummary, Scope, UmapField } from "./types";
import { reportError, setProgress, setStatus, sleep, toast } from "./ui";

type ValueMode = "ko" | "max" | "custom";

export class PerturbPanel {
  private valueMode: ValueMode = "ko";
  /** the gene box follows the viewed gene until the user types in it */
  private geneTyped = false;
  private running = false;
  private lastRequest: PerturbRequest | null = null;
  quiver: Quiver | null = null;
  private readonly gene = byId<HTMLInputElement>("perturb-gene");
  private readonly valueInput = byId<HTMLInputElement>("value-input");
  private readonly scopeKind = byId<HTMLSelectElement>("scope-kind");
  private readonly nProp = byId<HTMLInputElement>("n-prop");
  private readonly runBtn = byId<HTMLButtonElement>("run");
  private readonly cancelBtn = byId<HTMLButtonElement>("cancel");
  private readonly exportBtn = byId<HTMLButtonElement>("export");
  private readonly progress = byId("perturb-progress");

  constructor(private readonly app: App) {
    geneSearch({
      input: this.gene,
      list: byId<HTMLUListElement>("perturb-completions"),
      complete: (prefix) => this.app.data?.genes(prefix, 20) ?? Promise.resolve([]),
      onPick: () => void this.updateValueHint(),
    });
    for (const b of document.querySelectorAll<HTMLButtonElement>("#value-seg button")) {
      b.addEventListener("click", () => this.setValueMode(b.dataset.value as ValueMode));
    }
    this.gene.addEventListener("input", () => (this.geneTyped = this.gene.value.trim() !== ""));
    this.valueInput.addEventListener("input", () => void this.updateValueHint());
    this.scopeKind.addEventListener("change", () => this.renderScope());
    byId("tool-lasso").addEventListener("click", () => void this.draw("lasso"));
    byId("tool-box").addEventListener("click", () => void this.draw("box"));
    byId("tool-clear").addEventListener("click", () => this.setSelection(new Uint32Array(0)));
    this.runBtn.addEventListener("click", () => void this.run());
    this.cancelBtn.addEventListener("click", () => void this.cancel());
    this.exportBtn.addEventListener("click", () => void this.export());
  }

  /** New dataset: reset the panel to its defaults. */
  reset(): void {
    const meta = this.app.data?.meta;
    this.nProp.value = String(meta?.n_propagation_default ?? 4);
    this.lastRequest = null;
    this.quiver = null;
    this.exportBtn.disabled = true;
    this.progress.hidden = true;
    this.setSelection(new Uint32Array(0));
    const opt = this.scopeKind.querySelector<HTMLOptionElement>('option[value="celltype"]');
    if (opt) opt.disabled = !meta?.cell_type_column;
    this.renderScope();
    this.refreshReadiness();
  }

  /** Enable Run only when the server's run stage is ready; say why otherwise. */
  refreshReadiness(): void {
    const meta = this.app.data?.meta;
    const note = byId("perturb-note");
    let why = "";
    if (!meta) why = "Open a dataset first.";
    else if (meta.perturb_error) why = `The run could not be loaded: ${meta.perturb_error}`;
    else if (!meta.run_toml) why = "No trained run: open a run TOML (Dataset) to perturb.";
    else if (!meta.perturb_ready) why = `Loading the run… ${meta.load.percent ?? 0}%`;
    note.textContent = why;
    note.classList.toggle("error", Boolean(meta?.perturb_error));
    this.runBtn.disabled = this.running || why !== "";
  }

  /** The viewed gene changed: propose it as the gene to perturb unless the user chose one. */
  followGene(gene: string | null): void {
    if (this.geneTyped || !gene || this.running) return;
    this.gene.value = gene;
    void this.updateValueHint();
  }

  private setValueMode(mode: ValueMode): void {
    this.valueMode = mode;
    for (const b of document.querySelectorAll<HTMLButtonElement>("#value-seg button")) b.classList.toggle("on", b.dataset.value === mode);
    this.valueInput.hidden = mode === "ko";
    if (mode === "max" && !(Number(this.valueInput.value) > 0)) this.valueInput.value = "2";
    void this.updateValueHint();
  }

  private async updateValueHint(): Promise<void> {
    const hint = byId("value-hint");
    const gene = this.gene.value.trim();
    const x = Number(this.valueInput.value);
    if (this.valueMode === "ko") {
      hint.textContent = "Expression set to 0 in the scoped cells.";
      return;
    }
    if (this.valueMode === "custom") {
      hint.textContent = `Expression set to ${fmt(x)} (${this.app.data?.meta.layer ?? "layer"} units).`;
      return;
    }
    hint.textContent = `${fmt(x)} × the observed maximum of ${gene || "the gene"}.`;
    if (!gene || !this.app.data) return;
    try {
      const max = await this.app.data.observedMax(gene);
      hint.textContent = `${fmt(x)} × observed max ${fmt(max)} = ${fmt(x * max)} (${this.app.data.meta.layer} units).`;
    } catch {
      // unknown gene: the Run click reports it
    }
  }

  private renderScope(): void {
    const kind = this.scopeKind.value;
    const list = byId("scope-list");
    byId("scope-draw").hidden = kind !== "selection";
    list.hidden = kind !== "celltype" && kind !== "cluster";
    const data = this.app.data;
    if (!data || list.hidden) return;
    const names = kind === "celltype" ? data.meta.cell_type_categories : data.meta.cluster_labels;
    clear(
      list,
      ...names.map((name, code) => {
        const [r, g, b] = categoryColor(code);
        const swatch = kind === "celltype" || !data.meta.cell_type_column ? h("span", { class: "swatch", style: `background:rgb(${r},${g},${b})` }) : null;
        return h("label", {}, h("input", { type: "checkbox", value: String(code), "data-name": name }), swatch, kind === "cluster" ? `${code} · ${name}` : name);
      }),
    );
  }

  private async draw(tool: DrawTool): Promise<void> {
    const host = byId("stage");
    byId(`tool-${tool}`).classList.add("on");
    this.app.scene.setInteractive(false);
    try {
      const poly = await drawPolygon(host, tool);
      if (!poly) return;
      const world: number[] = [];
      for (let k = 0; k < poly.length; k += 2) world.push(...this.app.scene.unproject(poly[k], poly[k + 1]));
      const pos = this.app.scene.cellPositions;
      this.setSelection(pointsInPolygon(pos, world, this.app.visibility));
    } finally {
      this.app.scene.setInteractive(true);
      byId(`tool-${tool}`).classList.remove("on");
    }
  }

  private setSelection(indices: Uint32Array): void {
    this.app.setSelection(indices);
    byId("selection-count").textContent = indices.length ? `${indices.length.toLocaleString()} cells selected` : "no cells selected";
  }

  /** The request described by the panel, or an Error naming what to fix. */
  private request(): PerturbRequest {
    const data = this.app.data;
    if (!data) throw new Error("no dataset loaded");
    const gene = this.gene.value.trim();
    if (!gene) throw new Error("choose a gene to perturb");
    const x = Number(this.valueInput.value);
    if (this.valueMode !== "ko" && !(x >= 0)) throw new Error("the value must be a number ≥ 0");
    const n = Math.round(Number(this.nProp.value));
    if (!(n >= 1 && n <= 32)) throw new Error("propagation steps must be between 1 and 32");
    return {
      gene,
      desired_expr: this.valueMode === "custom" ? x : 0,
      desired_of_max: this.valueMode === "max" ? x : null,
      scope: this.scope(),
      n_propagation: n,
    };
  }

  private scope(): Scope {
    const kind = this.scopeKind.value;
    if (kind === "selection") {
      if (this.app.selection.length === 0) throw new Error("draw a lasso or box on the canvas first");
      return { type: "indices", indices: Array.from(this.app.selection) };
    }
    if (kind === "all") return { type: "all" };
    const ticked = [...byId("scope-list").querySelectorAll<HTMLInputElement>("input:checked")];
    if (ticked.length === 0) throw new Error(`tick at least one ${kind === "celltype" ? "cell type" : "cluster"}`);
    if (kind === "celltype") return { type: "cell_types", names: ticked.map((t) => t.dataset.name ?? "") };
    return { type: "clusters", cluster_ids: ticked.map((t) => Number(t.value)) };
  }

  async run(): Promise<void> {
    if (this.running || !this.app.data) return;
    let req: PerturbRequest;
    try {
      req = this.request();
    } catch (e) {
      reportError("Perturbation", e);
      return;
    }
    this.setRunning(true);
    const poll = this.pollProgress();
    const t0 = performance.now();
    try {
      const n = this.app.data.n;
      const delta = await postF32("perturb/preview", { ...req, return_gene: req.gene }, n);
      setProgress(this.progress, 100, "summarising…");
      const summary = await postJSON<PerturbSummary>("perturb/summary", { ...req, top_n: 30 });
      this.lastRequest = req;
      this.adoptResult(req, delta, summary);
      if (byId<HTMLInputElement>("want-field").checked) await this.field(req);
      const secs = ((performance.now() - t0) / 1000).toFixed(1);
      setProgress(this.progress, 100, `done in ${secs} s`);
      this.exportBtn.disabled = false;
    } catch (e) {
      this.progress.hidden = true;
      if (e instanceof ApiError && e.status === 409 && /cancel/i.test(e.message)) toast("Perturbation cancelled.");
      else reportError("Perturbation", e);
    } finally {
      this.setRunning(false);
      await poll.stop();
    }
  }

  /** Make the result the current Δ colouring and summary (the top affected gene shows the spread). */
  private adoptResult(req: PerturbRequest, delta: Float32Array, s: PerturbSummary): void {
    const n = this.app.n;
    const cache = new Map<string, Float32Array>([[req.gene, delta]]);
    const genes = [req.gene, ...s.top_affected_genes.map((g) => g.gene).filter((g) => g !== req.gene)];
    this.app.perturb = {
      gene: req.gene,
      desired: s.desired_expr,
      scopeLabel: s.scope,
      nScoped: s.n_scope_cells,
      genes,
      delta: cache,
      fetchDelta: async (gene: string) => {
        const hit = cache.get(gene);
        if (hit) return hit;
        const v = await getF32(`perturb/delta?${q({ gene })}`, n);
        cache.set(gene, v);
        return v;
      },
    };
    const sel = byId<HTMLSelectElement>("delta-gene");
    clear(sel, ...genes.map((g) => h("option", { value: g, text: g === req.gene ? `${g} (perturbed)` : g })));
    const show = s.top_affected_genes.find((g) => g.gene !== req.gene && g.mean_abs_delta > 0)?.gene ?? req.gene;
    sel.value = show;
    renderSummary(this.app, s, (gene) => void this.showDelta(gene));
    void this.app.setColour("delta", { deltaGene: show });
  }

  async showDelta(gene: string): Promise<void> {
    const sel = byId<HTMLSelectElement>("delta-gene");
    if (![...sel.options].some((o) => o.value === gene)) sel.append(h("option", { value: gene, text: gene }));
    sel.value = gene;
    await this.app.setColour("delta", { deltaGene: gene });
  }

  private async field(req: PerturbRequest): Promise<void> {
    if (!this.app.data?.umap) {
      toast("This dataset has no UMAP: no transition field.");
      return;
    }
    setProgress(this.progress, null, "transition field…");
    const f = await postJSON<UmapField>("perturb/umap-field", req);
    this.quiver = quiverOf(f);
    if (this.app.state.layout !== "umap") this.app.setLayout("umap");
    this.app.scene.setQuiver(this.quiver);
  }

  private setRunning(on: boolean): void {
    this.running = on;
    this.cancelBtn.disabled = !on;
    this.refreshReadiness();
    setStatus(on ? "perturbation running…" : "ready", on);
    if (on) setProgress(this.progress, 0, "starting…");
  }

  /** Poll GET perturb/progress until stopped; shows the running job's step and message. */
  private pollProgress(): { stop: () => Promise<void> } {
    let live = true;
    const loop = (async () => {
      while (live) {
        await sleep(250);
        if (!live) break;
        try {
          const p = await getJSON<Progress>("perturb/progress");
          if (live && p.job) setProgress(this.progress, p.job.percent, `${p.job.kind}: ${p.job.message ?? p.job.state}`);
        } catch {
          // progress is informative only; the job's own request reports failures
        }
      }
    })();
    return {
      stop: async () => {
        live = false;
        await loop;
      },
    };
  }

  async cancel(): Promise<void> {
    try {
      await postJSON("cancel", {});
      setProgress(this.progress, null, "cancelling…");
    } catch (e) {
      reportError("Cancel", e);
    }
  }

  async export(overwrite = false): Promise<void> {
    if (!this.lastRequest) return;
    this.exportBtn.disabled = true;
    try {
      const r = await postJSON<ExportResult>("perturb/export", { overwrite });
      toast(`Exported ${r.files.expression} and ${r.files.summary}`, "ok", 12000);
      byId("summary").dataset.exported = r.files.expression;
      const out = byId("summary").querySelector<HTMLElement>(".exported");
      if (out) out.textContent = `Exported to ${r.files.expression}`;
    } catch (e) {
      if (e instanceof ApiError && e.status === 409 && !overwrite && window.confirm(`${e.message}\n\nOverwrite?`)) {
        await this.export(true);
        return;
      }
      reportError("Export", e);
    } finally {
      this.exportBtn.disabled = false;
    }
  }
}

/** Arrows (shaft + two head strokes) of the non-masked, non-zero bins, in UMAP units. */
export function quiverOf(f: UmapField): Quiver {
  const segs: number[] = [];
  for (let iy = 0; iy < f.ny; iy++) {
    for (let ix = 0; ix < f.nx; ix++) {
      const k = iy * f.nx + ix;
      const u = f.u[k];
      const v = f.v[k];
      const len = Math.hypot(u, v);
      if (!f.mask[k] || !(len > 0)) continue;
      const x0 = f.grid_x[ix];
      const y0 = f.grid_y[iy];
      const x1 = x0 + u;
      const y1 = y0 + v;
      segs.push(x0, y0, x1, y1);
      const head = 0.3 * len;
      const a = Math.atan2(v, u);
      for (const turn of [Math.PI - 0.45, Math.PI + 0.45]) {
        segs.push(x1, y1, x1 + head * Math.cos(a + turn), y1 + head * Math.sin(a + turn));
      }
    }
  }
  return { segments: Float32Array.from(segs) };
}

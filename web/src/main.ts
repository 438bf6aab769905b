// Entry point: builds the canvas and panels, follows the server's loading state (GET meta), loads
// the dataset's arrays once the tissue stage is ready and the run's once the run stage is.
import "./style.css";
import { getJSON, postJSON } from "./api";
import { App } from "./app";
import { Data } from "./data";
import { conditionRequest, showConditions } from "./conditions";
import { byId } from "./dom";
import { ViewFollower } from "./follow";
import { Inspector } from "./inspector";
import { PerturbPanel } from "./perturb";
import { Scene } from "./scene";
import { geneSearch } from "./search";
import { fmt } from "./stats";
import type { Meta } from "./types";
import { describe, reportError, setLoading, setProgress, setStatus, sleep, toast } from "./ui";
import { readUrl, type ColourMode, type Layout } from "./urlstate";

const t0 = performance.now();
const scene = new Scene(byId<HTMLDivElement>("canvas-host"));
const app = new App(scene, readUrl());
const perturb = new PerturbPanel(app);
const inspector = new Inspector(app);
const follower = new ViewFollower(app, perturb);

/** Test and benchmark hook: read-only facts about the page (no control surface). */
const hook = {
  ready: false,
  runReady: false,
  /** completed dataset loads (tissue + run stage), so a test can wait for the next one */
  loads: 0,
  /** ms from navigation start to the first frame that draws the cells (and when the bundle started) */
  firstPaintMs: null as number | null,
  scriptStartMs: null as number | null,
  get n(): number {
    return app.n;
  },
  get state() {
    return { ...app.state };
  },
  /** version of the shared view (GET /api/view) the page applied last */
  get viewVersion(): number {
    return follower.applied;
  },
  get overlays() {
    return scene.overlayCounts;
  },
  /** client (page) pixel of cell i in the current view */
  cellClientXY(i: number): [number, number] {
    const r = byId("canvas-host").getBoundingClientRect();
    const [x, y] = scene.project(i);
    return [r.left + x, r.top + y];
  },
};
(window as unknown as { spatialViewer: typeof hook }).spatialViewer = hook;

scene.onFirstPaint = () => {
  // performance.now() counts from the navigation start: HTML, bundle, data fetches and the first frame
  hook.firstPaintMs = performance.now();
  hook.scriptStartMs = t0;
};
scene.onCellClick = (i) => {
  if (i !== null) void inspector.show(i);
};
scene.onHover = (i, x, y) => tooltip(i, x, y);
app.onColourChange = () => {
  inspector.refresh();
  if (app.state.colour === "gene" || app.state.colour === "beta") perturb.followGene(app.focusGene);
};
app.onLayoutChange = () => {
  scene.setQuiver(app.state.layout === "umap" ? perturb.quiver : null);
  inspector.drawLinks();
};

/** bumped by every (re)load so a superseded follow() loop stops */
let generation = 0;
wireControls();
void follow();

function wireControls(): void {
  for (const b of document.querySelectorAll<HTMLButtonElement>("#layout-seg button")) {
    b.addEventListener("click", () => app.setLayout(b.dataset.layout as Layout));
  }
  for (const b of document.querySelectorAll<HTMLButtonElement>("#colour-seg button")) {
    b.addEventListener("click", () => void chooseMode(b.dataset.mode as ColourMode));
  }
  const search = geneSearch({
    input: byId<HTMLInputElement>("gene-search"),
    list: byId<HTMLUListElement>("gene-completions"),
    complete: (prefix) => app.data?.genes(prefix, 20) ?? Promise.resolve([]),
    onPick: (gene) => void app.setColour("gene", { gene }),
  });
  if (app.state.gene) search.set(app.state.gene);
  byId<HTMLSelectElement>("beta-gene").addEventListener("change", async (e) => {
    const gene = (e.target as HTMLSelectElement).value;
    try {
      app.state.betaColumn = null;
      await app.fillBetaColumns(gene);
      await app.setColour("beta", { betaGene: gene });
    } catch (err) {
      reportError("β", err);
    }
  });
  byId<HTMLSelectElement>("beta-column").addEventListener("change", (e) => {
    void app.setColour("beta", { betaColumn: (e.target as HTMLSelectElement).value });
  });
  byId<HTMLSelectElement>("delta-gene").addEventListener("change", (e) => void perturb.showDelta((e.target as HTMLSelectElement).value));
  const size = byId<HTMLInputElement>("point-size");
  size.value = String(app.state.size);
  size.addEventListener("input", () => {
    app.state.size = Number(size.value);
    scene.setPointScale(app.state.size);
    app.syncControls();
  });
  const opacity = byId<HTMLInputElement>("opacity");
  opacity.addEventListener("input", () => scene.setOpacity(Number(opacity.value)));
  byId("zoom-in").addEventListener("click", () => scene.zoomBy(0.5));
  byId("zoom-out").addEventListener("click", () => scene.zoomBy(-0.5));
  byId("zoom-fit").addEventListener("click", () => scene.fit());
  byId<HTMLFormElement>("dataset-form").addEventListener("submit", (e) => {
    e.preventDefault();
    void configure(e.target as HTMLFormElement);
  });
  byId<HTMLSelectElement>("condition-select").addEventListener("change", (e) => {
    const meta = app.data?.meta;
    const select = e.target as HTMLSelectElement;
    if (!meta) return;
    void reload(conditionRequest(meta, select.value)).then((ok) => {
      if (!ok) select.value = meta.condition ?? ""; // refused: the open condition stays
    });
  });
}

async function chooseMode(mode: ColourMode): Promise<void> {
  try {
    if (mode === "gene" && !app.state.gene) {
      app.state.colour = "gene";
      app.syncControls();
      byId<HTMLInputElement>("gene-search").focus();
      return;
    }
    if (mode === "beta") await app.fillBetaSelects();
    if (mode === "delta" && !app.state.deltaGene) app.state.deltaGene = app.perturb?.genes[0] ?? null;
    await app.setColour(mode);
  } catch (e) {
    reportError("Colouring", e);
  }
}

function tooltip(i: number | null, x: number, y: number): void {
  const el = byId("tooltip");
  const data = app.data;
  if (i === null || !data) {
    el.hidden = true;
    return;
  }
  const g = data.groups;
  const code = g.codes[i];
  const parts = [`cell ${i}`, g.names[code] ?? "unlabelled"];
  if (app.values) parts.push(`${app.valueLabel} = ${fmt(app.values[i])}`);
  el.textContent = parts.join(" · ");
  el.hidden = false;
  // keep it inside the canvas: flip to the left of the pointer near the right edge
  const w = byId("stage").clientWidth;
  const left = x + 14 + el.offsetWidth > w ? x - 14 - el.offsetWidth : x + 14;
  el.style.left = `${Math.max(4, left)}px`;
  el.style.top = `${y + 10}px`;
}

/** Follow GET meta: load the tissue when ready, then the run; show progress and errors in the page. */
async function follow(): Promise<void> {
  const mine = ++generation;
  let tissueDone = false;
  for (;;) {
    let meta: Meta;
    try {
      meta = await getJSON<Meta>("meta");
    } catch (e) {
      setLoading(`Cannot reach the viewer server: ${describe(e)}`);
      await sleep(2000);
      if (mine !== generation) return;
      continue;
    }
    if (mine !== generation) return;
    showLoad(meta);
    showConditions(meta);
    if (meta.status === "empty") {
      setLoading(null);
      setStatus("no dataset");
      byId<HTMLDetailsElement>("dataset-details").open = true;
      toast("No dataset loaded yet: open an .h5ad or a run TOML in the Dataset panel.");
      return;
    }
    if (meta.dataset_ready && !tissueDone) {
      tissueDone = true;
      await loadTissue(meta);
      if (mine !== generation) return;
    }
    if (tissueDone && app.data) {
      app.data.meta.perturb_ready = meta.perturb_ready;
      app.data.meta.perturb_error = meta.perturb_error;
      app.data.meta.load = meta.load;
    }
    // settled = every stage done (tissue, run, the inspector's network index) or the load stopped
    const runSettled = meta.status !== "loading";
    if (tissueDone && runSettled) {
      await runStage(meta);
      return;
    }
    if (meta.status === "error" && !meta.dataset_ready) {
      setLoading(null);
      setStatus("load failed");
      return;
    }
    perturb.refreshReadiness();
    await sleep(250);
    if (mine !== generation) return;
  }
}

function showLoad(meta: Meta): void {
  const err = byId("dataset-error");
  const bar = byId("dataset-progress");
  const l = meta.load;
  if (meta.status === "error" && l.error) {
    err.hidden = false;
    err.textContent = l.error;
    bar.hidden = true;
    toast(`Loading failed: ${l.error}`, "error");
  } else if (meta.status === "loading") {
    err.hidden = true;
    setProgress(bar, l.percent, `${l.stage}: ${l.label ?? "loading"}`);
    setStatus(`loading ${l.stage} · ${l.percent ?? 0}%`, true);
    if (!meta.dataset_ready) setLoading(`Loading ${l.label ?? "dataset"}… ${l.percent ?? 0}%`);
  } else {
    bar.hidden = true;
  }
}

async function loadTissue(meta: Meta): Promise<void> {
  try {
    const data = new Data(meta);
    await data.load((msg) => setLoading(msg));
    app.attach(data);
    inspector.close();
    byId("summary").hidden = true;
    const name = (meta.run_toml ?? meta.adata_path ?? "").split("/").slice(-3).join("/");
    const cond = meta.condition ? ` · condition ${meta.condition}` : "";
    byId("dataset-chip").textContent = `${name}${cond} · ${meta.n_obs.toLocaleString()} cells × ${meta.n_vars.toLocaleString()} genes`;
    if (meta.condition_note) toast(meta.condition_note);
    byId("dataset-chip").title = [meta.adata_path, meta.run_toml].filter(Boolean).join("\n");
    fillForm(meta);
    perturb.reset();
    await app.recolour();
    setLoading(null);
    hook.ready = true;
  } catch (e) {
    setLoading(null);
    reportError("Loading the dataset", e);
  }
}

async function runStage(meta: Meta): Promise<void> {
  const data = app.data;
  if (!data) return;
  try {
    if (meta.perturb_ready) {
      await data.loadBetaGenes();
      if (app.state.colour === "beta") await app.fillBetaSelects();
    }
  } catch (e) {
    reportError("Loading the run", e);
  }
  perturb.refreshReadiness();
  app.syncControls();
  // the run's report (GET run/report) needs a loaded run
  byId("report-link").hidden = !meta.perturb_ready;
  if (app.state.colour === "beta") await app.recolour();
  setStatus(meta.perturb_ready ? `ready · ${data.betaGenes.length} trained genes` : "ready (no run: β and perturbation off)");
  void follower.start();
  hook.runReady = true;
  hook.loads++;
}

function fillForm(meta: Meta): void {
  const form = byId<HTMLFormElement>("dataset-form");
  const set = (name: string, v: string | null | undefined): void => {
    const el = form.elements.namedItem(name) as HTMLInputElement | null;
    if (el && v) el.value = v;
  };
  set("run_toml", meta.run_toml);
  set("adata_path", meta.adata_path);
  set("layer", meta.layer);
  set("cluster_annot", meta.cluster_annot);
  set("network_dir", meta.network_dir);
}

async function configure(form: HTMLFormElement): Promise<void> {
  const f = new FormData(form);
  const text = (k: string): string => String(f.get(k) ?? "").trim();
  const err = byId("dataset-error");
  err.hidden = true;
  if (!text("run_toml") && !text("adata_path")) {
    err.hidden = false;
    err.textContent = "Give a run TOML or an .h5ad path.";
    return;
  }
  await reload({
    adata_path: text("adata_path"),
    run_toml: text("run_toml"),
    layer: text("layer") || null,
    cluster_annot: text("cluster_annot") || null,
    network_dir: text("network_dir"),
  });
}

/** POST session/configure, then follow the new load; false when refused (the reason is shown under the
 * Dataset form, or as a toast while the form is folded). */
async function reload(body: Record<string, unknown>): Promise<boolean> {
  const err = byId("dataset-error");
  err.hidden = true;
  try {
    await postJSON("session/configure", body);
  } catch (e) {
    err.hidden = false;
    err.textContent = describe(e) ?? "";
    if (byId<HTMLDetailsElement>("dataset-details").open) err.scrollIntoView({ block: "nearest" });
    else reportError("Opening", e);
    return false;
  }
  hook.ready = false;
  hook.runReady = false;
  byId("report-link").hidden = true;
  setLoading("Loading…");
  void follow();
  return true;
}

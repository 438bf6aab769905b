// The cell inspector: click a cell → its cluster, the focus gene's expression (and Δ), its
// modulators with their β, and the neighbours sending it ligands (network/cell-context), drawn as
// lines from each sender to the cell, brighter and wider for stronger ligand–receptor support.
import { postJSON } from "./api";
import type { App } from "./app";
import { byId, clear, h } from "./dom";
import type { Links } from "./scene";
import { fmt } from "./stats";
import type { CellContext, NeighborContext } from "./types";
import { reportError } from "./ui";

const FAMILY: Record<string, string> = { tf: "TF", lr: "ligand–receptor", tfl: "ligand–TF" };

export class Inspector {
  cell: number | null = null;
  private ticket = 0;
  private context: CellContext | null = null;
  private readonly card = byId("inspector");

  constructor(private readonly app: App) {}

  async show(index: number): Promise<void> {
    this.cell = index;
    const gene = this.app.focusGene;
    const mine = ++this.ticket;
    if (!gene) {
      this.renderBare(index);
      return;
    }
    this.card.hidden = false;
    this.card.classList.add("loading-card");
    try {
      const ctx = await postJSON<CellContext>("network/cell-context", { cell_index: index, focus_gene: gene, neighbor_k: 24 });
      if (mine !== this.ticket) return;
      this.context = ctx;
      await this.render(ctx);
      this.drawLinks();
    } catch (e) {
      if (mine === this.ticket) reportError("Cell inspector", e);
    } finally {
      if (mine === this.ticket) this.card.classList.remove("loading-card");
    }
  }

  /** The focus gene changed (new colouring): refresh the open cell. */
  refresh(): void {
    if (this.cell !== null && !this.card.hidden && this.context?.focus_gene !== this.app.focusGene) void this.show(this.cell);
    else if (this.cell !== null) this.drawLinks();
  }

  close(): void {
    this.ticket++;
    this.cell = null;
    this.context = null;
    this.card.hidden = true;
    this.app.scene.setFocus(null, null);
  }

  /** Lines follow the current layout (senders are spatial neighbours wherever they sit). */
  drawLinks(): void {
    const ctx = this.context;
    if (!ctx || this.cell === null) return;
    const senders = ctx.neighbors.filter((nb) => nb.edges.length > 0);
    const pos = this.app.scene.cellPositions;
    const best = Math.max(...senders.map((nb) => nb.max_support_score ?? 0), 1e-12);
    const links: Links = {
      segments: new Float32Array(4 * senders.length),
      colors: new Uint8Array(4 * senders.length),
      widths: new Float32Array(senders.length),
    };
    senders.forEach((nb, k) => {
      const t = (nb.max_support_score ?? 0) / best;
      links.segments.set([pos[2 * nb.index], pos[2 * nb.index + 1], pos[2 * ctx.cell_index], pos[2 * ctx.cell_index + 1]], 4 * k);
      links.colors.set([255, Math.round(190 - 90 * t), 40, Math.round(120 + 135 * t)], 4 * k);
      links.widths[k] = 1 + 3 * t;
    });
    this.app.scene.setFocus(ctx.cell_index, links);
  }

  private renderBare(index: number): void {
    const data = this.app.data;
    this.card.hidden = false;
    clear(
      this.card,
      this.header(index, null),
      h("p", { class: "hint", text: "Pick a gene (search, β or Δ) to see its modulators and the neighbours sending this cell ligands." }),
      data ? h("p", { class: "hint", text: `cluster ${data.clusterLabel.get(data.clusters[index]) ?? data.clusters[index]}` }) : null,
    );
    this.app.scene.setFocus(index, null);
  }

  private header(index: number, name: string | null): HTMLElement {
    const close = h("button", { class: "close", title: "Close", text: "✕" });
    close.addEventListener("click", () => this.close());
    return h("h3", {}, h("span", { text: `Cell ${index}${name ? ` · ${name}` : ""}` }), close);
  }

  private async render(ctx: CellContext): Promise<void> {
    const unit = this.app.data?.meta.layer ?? "expression";
    let deltaRow: HTMLElement[] = [];
    const p = this.app.perturb;
    if (p && p.delta.has(ctx.focus_gene)) {
      const d = p.delta.get(ctx.focus_gene)![ctx.cell_index];
      deltaRow = [h("dt", { text: `Δ ${ctx.focus_gene}` }), h("dd", { text: `${d > 0 ? "+" : ""}${fmt(d)} ${unit}` })];
    }
    const senders = ctx.neighbors
      .filter((nb) => nb.edges.length > 0)
      .sort((a, b) => (b.max_support_score ?? 0) - (a.max_support_score ?? 0));
    clear(
      this.card,
      this.header(ctx.cell_index, ctx.obs_name),
      h(
        "dl",
        { class: "kv" },
        h("dt", { text: "cluster" }), h("dd", { text: `${ctx.cluster_id} · ${ctx.cluster_label}` }),
        ctx.cell_type ? h("dt", { text: "cell type" }) : null,
        ctx.cell_type ? h("dd", { text: ctx.cell_type }) : null,
        h("dt", { text: ctx.focus_gene }), h("dd", { class: "focus-expr", text: `${fmt(ctx.focus_expr)} ${unit}` }),
        ...deltaRow,
      ),
      this.modulators(ctx),
      h("h4", { text: `Neighbours sending ligands · ${senders.length} of ${ctx.neighbors_in_query}` }),
      senders.length ? h("p", { class: "hint", text: "support = √(ligand in sender × receptor here); lines on the canvas, brighter = stronger" }) : null,
      senders.length
        ? h(
            "table",
            { class: "senders" },
            h("thead", {}, h("tr", {}, h("th", { text: "cell" }), h("th", { text: "cluster" }), h("th", { text: "strongest ligand → receptor" }), h("th", { class: "num", text: "support" }))),
            h("tbody", {}, ...senders.slice(0, 8).map((nb) => this.senderRow(nb))),
          )
        : h("p", { class: "hint", text: `No neighbour expresses a ligand of ${ctx.focus_gene}'s ligand–receptor modulators whose receptor this cell expresses.` }),
    );
  }

  private modulators(ctx: CellContext): HTMLElement {
    const src = ctx.modulator_source === "betadata" ? "β of this cell" : ctx.modulator_source === "network" ? "prior network (untrained gene)" : "none";
    if (ctx.betas.length > 0) {
      const rows = ctx.betas.slice(0, 10).map((b) =>
        h(
          "tr",
          {},
          h("td", { class: "mono", text: b.modulator.replace("$", " → ").replace("#", " → ") }),
          h("td", { class: "hint", text: FAMILY[b.family] ?? b.family }),
          h("td", { class: "num", text: fmt(b.beta) }),
        ),
      );
      return h("div", {}, h("h4", { text: `Modulators · ${src}` }), h("table", { class: "betas" }, h("tbody", {}, ...rows)));
    }
    const m = ctx.modulators;
    const tags = (xs: string[]) => h("div", { class: "tags" }, ...xs.slice(0, 24).map((x) => h("span", { class: "tag", text: x })));
    return h(
      "div",
      {},
      h("h4", { text: `Modulators · ${src}` }),
      m.tfs.length ? h("div", {}, h("p", { class: "hint", text: "transcription factors" }), tags(m.tfs)) : null,
      m.lr_pairs.length ? h("div", {}, h("p", { class: "hint", text: "ligand → receptor" }), tags(m.lr_pairs.map(([l, r]) => `${l}→${r}`))) : null,
      !m.tfs.length && !m.lr_pairs.length ? h("p", { class: "hint", text: "none" }) : null,
    );
  }

  private senderRow(nb: NeighborContext): HTMLElement {
    const label = this.app.data?.clusterLabel.get(nb.cluster_id) ?? String(nb.cluster_id);
    // the strongest pair, and how many more (all of them in the row's tooltip)
    const top = nb.edges[0];
    const edges = `${top.ligand}→${top.receptor}${nb.edges.length > 1 ? ` +${nb.edges.length - 1}` : ""}`;
    return h(
      "tr",
      { title: nb.edges.map((e) => `${e.ligand}→${e.receptor}: support ${fmt(e.support_score)}`).join("\n") },
      h("td", { text: `${nb.index}` }),
      h("td", { class: "hint", text: label }),
      h("td", { class: "mono", text: edges }),
      h("td", { class: "num", text: fmt(nb.max_support_score ?? 0) }),
    );
  }
}

// The perturbation summary card: what was done, the most affected genes (click → colour by their
// Δ) and the mean |Δ| of each cluster.
import type { App } from "./app";
import { DIVERGING, lutCss } from "./colormaps";
import { byId, clear, h } from "./dom";
import { fmt } from "./stats";
import type { PerturbSummary } from "./types";

export function renderSummary(app: App, s: PerturbSummary, onGene: (gene: string) => void): void {
  const card = byId("summary");
  const unit = app.data?.meta.layer ?? "expression";
  const close = h("button", { class: "close", title: "Close", text: "✕" });
  close.addEventListener("click", () => (card.hidden = true));
  const top = s.top_affected_genes.slice(0, 12);
  const topMax = Math.max(...top.map((g) => g.mean_abs_delta), 1e-12);
  const clusters = [...s.cluster_mean_abs_delta].sort((a, b) => b.mean_abs_delta - a.mean_abs_delta);
  const clMax = Math.max(...clusters.map((c) => c.mean_abs_delta), 1e-12);
  const limit = Math.max(...top.map((g) => Math.abs(g.mean_delta)), 1e-12);
  const secs = s.timings_s?.total_s;

  const geneRows = top.map((g) => {
    const name = h("span", { class: "tag link", text: g.gene, title: `colour by Δ ${g.gene}` });
    name.addEventListener("click", () => onGene(g.gene));
    const colour = lutCss(DIVERGING, 0.5 + g.mean_delta / (2 * limit));
    return h(
      "tr",
      {},
      h("td", {}, name),
      h("td", { class: "num", style: `color:${colour}`, text: signed(g.mean_delta) }),
      h("td", { class: "bar-cell" }, h("i", { style: `width:${(100 * g.mean_abs_delta) / topMax}%` })),
    );
  });
  const clusterRows = clusters.map((c) =>
    h(
      "tr",
      {},
      h("td", { text: c.label }),
      h("td", { class: "num", text: c.n_cells.toLocaleString() }),
      h("td", { class: "num", text: fmt(c.mean_abs_delta) }),
      h("td", { class: "bar-cell" }, h("i", { style: `width:${(100 * c.mean_abs_delta) / clMax}%` })),
    ),
  );

  clear(
    card,
    h("h3", {}, h("span", { text: `Perturbation of ${s.gene}` }), close),
    h(
      "dl",
      { class: "kv" },
      h("dt", { text: "set to" }), h("dd", { text: `${fmt(s.desired_expr)} ${unit}${s.desired_expr === 0 ? " (knockout)" : ""}` }),
      h("dt", { text: "scope" }), h("dd", { text: `${s.scope} · ${s.n_scope_cells.toLocaleString()} of ${s.n_obs.toLocaleString()} cells` }),
      h("dt", { text: "propagation" }), h("dd", { text: `${s.n_propagation} steps${secs !== undefined ? ` · ${fmt(secs)} s` : ""}` }),
      h("dt", { text: `Δ ${s.gene}` }), h("dd", { text: `mean ${signed(s.mean_delta)} · ${s.n_negative.toLocaleString()} cells down, ${s.n_positive.toLocaleString()} up` }),
      s.n_genes_changed !== undefined ? h("dt", { text: "genes changed" }) : null,
      s.n_genes_changed !== undefined ? h("dd", { text: String(s.n_genes_changed) }) : null,
    ),
    h("h4", { text: "Top affected genes" }),
    h("p", { class: "hint", text: `mean Δ over all cells (${unit}); bar = mean |Δ|; click a gene to colour by its Δ` }),
    top.length ? h("table", { class: "top-genes" }, h("tbody", {}, ...geneRows)) : h("p", { class: "hint", text: "No other gene changed." }),
    h("h4", { text: "Mean |Δ| per cluster" }),
    h("p", { class: "hint", text: "over the cluster's cells and every gene but the perturbed one" }),
    h(
      "table",
      { class: "cluster-effects" },
      h("thead", {}, h("tr", {}, h("th", { text: "cluster" }), h("th", { class: "num", text: "cells" }), h("th", { class: "num", text: "mean |Δ|" }), h("th", {}))),
      h("tbody", {}, ...clusterRows),
    ),
    h("p", { class: "hint exported" }),
  );
  const wasClosed = card.hidden && byId("inspector").hidden;
  card.hidden = false;
  // the side column just opened and narrowed the canvas: refit once the layout has settled
  if (wasClosed) requestAnimationFrame(() => requestAnimationFrame(() => app.scene.fit()));
}

function signed(x: number): string {
  return x > 0 ? `+${fmt(x)}` : fmt(x);
}

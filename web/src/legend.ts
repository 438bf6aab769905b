// Legends drawn in the canvas corner: colour ramps with units, categorical toggles, and the
// per-cluster range table of a β coefficient.
import { categoryColor, lutCss, lutGradient } from "./colormaps";
import { clear, h } from "./dom";
import { fmt, type GroupStat } from "./stats";

export interface RampLegend {
  title: string;
  unit: string;
  lo: number;
  hi: number;
  table: Uint8Array;
  /** ticks at lo, 0 and hi instead of lo, middle and hi */
  centred?: boolean;
  note?: string;
}

export function rampLegend(el: HTMLElement, o: RampLegend, extra?: Node | null): void {
  const mid = o.centred ? 0 : (o.lo + o.hi) / 2;
  clear(
    el,
    h("div", { class: "title" }, o.title, " ", h("span", { class: "unit", text: o.unit ? `(${o.unit})` : "" })),
    h("div", { class: "ramp", style: `background:${lutGradient(o.table)}` }),
    h(
      "div",
      { class: "ticks" },
      h("span", { text: fmt(o.lo) }),
      h("span", { text: fmt(mid) }),
      h("span", { text: `${fmt(o.hi)}` }),
    ),
    o.note ? h("p", { class: "hint", text: o.note }) : null,
    extra ?? null,
  );
  el.dataset.kind = o.centred ? "diverging" : "sequential";
}

export interface CategoryLegend {
  title: string;
  names: string[];
  counts: number[];
  hidden: Set<number>;
  onToggle: (code: number) => void;
  onOnly: (code: number) => void;
  onAll: () => void;
}

export function categoryLegend(el: HTMLElement, o: CategoryLegend): void {
  const rows = o.names.map((name, code) => {
    const [r, g, b] = categoryColor(code);
    const row = h(
      "div",
      {
        class: `cat${o.hidden.has(code) ? " off" : ""}`,
        role: "checkbox",
        "aria-checked": String(!o.hidden.has(code)),
        "data-code": code,
        title: "click: show/hide · double-click: show only this",
      },
      h("span", { class: "swatch", style: `background:rgb(${r},${g},${b})` }),
      h("span", { text: name }),
      h("span", { class: "n", text: o.counts[code]?.toLocaleString() ?? "" }),
    );
    row.addEventListener("click", () => o.onToggle(code));
    row.addEventListener("dblclick", () => o.onOnly(code));
    return row;
  });
  clear(
    el,
    h("div", { class: "title" }, o.title, " ", h("span", { class: "unit", text: "(cells)" })),
    h("div", { class: "cats" }, ...rows),
    o.hidden.size > 0 ? h("div", { class: "actions" }, h("button", { onclick: () => o.onAll(), text: "Show all" })) : null,
  );
  el.dataset.kind = "categorical";
}

/** Per-cluster [min, max] of a β coefficient on a shared axis centred on 0. */
export function clusterRanges(stats: GroupStat[], labelOf: (g: number) => string, limit: number, table: Uint8Array): HTMLElement {
  const pos = (x: number): number => 50 + (50 * x) / (limit || 1);
  const rows = stats.map((s) => {
    const left = Math.max(0, Math.min(100, pos(s.min)));
    const right = Math.max(0, Math.min(100, pos(s.max)));
    const colour = lutCss(table, (s.min + s.max) / 2 / (2 * (limit || 1)) + 0.5);
    return h(
      "tr",
      {},
      h("td", { text: labelOf(s.group) }),
      h(
        "td",
        {},
        h(
          "div",
          { class: "rangebar" },
          h("b", { style: "left:50%" }),
          h("i", { style: `left:${left}%;width:${Math.max(right - left, 1.5)}%;background:${colour}` }),
        ),
      ),
      h("td", { class: "num", text: s.min === s.max ? fmt(s.min) : `${fmt(s.min)} … ${fmt(s.max)}` }),
    );
  });
  return h("div", {}, h("h4", { text: "Range per cluster" }), h("table", {}, h("tbody", {}, ...rows)));
}

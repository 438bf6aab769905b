// The condition picker of a run trained with `spacetravlr --condition OBS_COL` (one model set per group):
// a select in the Dataset panel, filled from GET meta (`conditions`, `condition`); picking a group
// reloads the viewer on that group's run (POST session/configure with `condition`).
import { byId, h } from "./dom";
import type { Meta } from "./types";

let shown = "";

/** Show the picker when meta lists conditions (rebuilt only when the list or the open one changes). */
export function showConditions(meta: Meta): void {
  const row = byId("condition-row");
  const select = byId<HTMLSelectElement>("condition-select");
  const groups = meta.conditions ?? [];
  const key = JSON.stringify([groups, meta.condition ?? null, meta.condition_column ?? null]);
  if (key === shown) return;
  shown = key;
  row.hidden = groups.length === 0 || !meta.condition_parent_toml;
  byId("condition-column").textContent = meta.condition_column ? `obs['${meta.condition_column}']` : "";
  select.replaceChildren(
    ...groups.map((g) => {
      const cells = g.n_cells === null || g.n_cells === undefined ? "" : ` (${g.n_cells.toLocaleString()} cells)`;
      return h("option", { value: g.label, text: `${g.label}${cells}`, selected: g.label === meta.condition });
    }),
  );
  select.value = meta.condition ?? "";
}

/** The body of POST session/configure that opens condition `label` of the run shown in `meta`. */
export function conditionRequest(meta: Meta, label: string): Record<string, unknown> {
  return { run_toml: meta.condition_parent_toml, condition: label, network_dir: meta.network_dir ?? "" };
}

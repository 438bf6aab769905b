"""Pure functions from viewer payloads and arrays to what an assistant reads: groups of cells, dominant
directions of a transition field, per-group effects of a perturbation, and short text renderings.

No HTTP and no MCP here: arrays and dicts in, JSON-ready dicts and strings out (unit-testable).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

NO_CELL_TYPE = 65535
TOWARDS_MIN_COHERENCE = 0.3
"""The text names the group a field points towards only when the cells agree at least this much."""
_COMPASS = ("east (+x)", "north-east (+x +y)", "north (+y)", "north-west (−x +y)", "west (−x)",
            "south-west (−x −y)", "south (−y)", "south-east (+x −y)")


def cluster_cell_types(clusters: np.ndarray, codes: np.ndarray | None, categories: Sequence[str],
                       n_clusters: int) -> list[str | None]:
    """The majority cell-type label of each cluster (None without a cell-type column or labelled cell)."""
    out: list[str | None] = []
    for k in range(n_clusters):
        if codes is None:
            out.append(None)
            continue
        c = codes[(clusters == k) & (codes != NO_CELL_TYPE)]
        out.append(str(categories[int(np.bincount(c).argmax())]) if c.size else None)
    return out


def group_masks(clusters: np.ndarray, codes: np.ndarray | None, categories: Sequence[str],
                labels: Sequence[str]) -> dict[str, np.ndarray]:
    """Boolean cell masks of named groups: cell types when there is a cell-type column, else cluster labels."""
    if codes is not None and len(categories):
        return {str(c): codes == k for k, c in enumerate(categories) if (codes == k).any()}
    return {str(lab): clusters == k for k, lab in enumerate(labels) if (clusters == k).any()}


def compass(dx: float, dy: float) -> str:
    """Eight-way direction name of a vector in plot orientation (+x right, +y up)."""
    a = math.degrees(math.atan2(dy, dx)) % 360.0
    return _COMPASS[int(((a + 22.5) % 360.0) // 45.0)]


def field_directions(E: np.ndarray, V: np.ndarray, groups: dict[str, np.ndarray],
                     towards_min_cos: float = 0.5) -> list[dict[str, Any]]:
    """Dominant direction of the cell vectors ``V`` (N, 2) of each group on the embedding ``E`` (N, 2).

    Per group: the mean vector ``(u, v)``, its length (net shift), the mean vector length (speed),
    ``coherence = |mean| / mean |v|`` (1 = all cells point the same way, 0 = no common direction), the
    compass direction, and ``towards``: the other group whose centroid lies most along the mean vector
    (cosine ≥ ``towards_min_cos``) — the state these cells are pushed towards. Sorted by net shift.
    """
    cent = {g: E[m].mean(axis=0) for g, m in groups.items()}
    rows: list[dict[str, Any]] = []
    for g, m in groups.items():
        vm = V[m]
        mean = vm.mean(axis=0)
        net = float(np.hypot(*mean))
        speed = float(np.hypot(vm[:, 0], vm[:, 1]).mean())
        best, best_cos = None, towards_min_cos
        for h, c in cent.items():
            d = c - cent[g]
            nd = float(np.hypot(*d))
            if h == g or nd == 0 or net == 0:
                continue
            cos = float(mean @ d) / (net * nd)
            if cos >= best_cos:
                best, best_cos = h, cos
        rows.append({"group": g, "n_cells": int(m.sum()), "mean_u": float(mean[0]), "mean_v": float(mean[1]),
                     "net_shift": net, "mean_speed": speed, "coherence": net / speed if speed > 0 else 0.0,
                     "direction": compass(float(mean[0]), float(mean[1])) if net > 0 else "none",
                     "towards": best, "towards_cos": best_cos if best is not None else None})
    rows.sort(key=lambda r: (-float(r["net_shift"]), str(r["group"])))
    return rows


def strongest_bins(field: dict[str, Any], n: int = 5) -> list[dict[str, Any]]:
    """The ``n`` longest arrows of a grid field payload (``perturb/umap-field``): centre, vector, cells."""
    nx = int(field["nx"])
    u, v = np.asarray(field["u"], float), np.asarray(field["v"], float)
    mask = np.asarray(field["mask"], bool)
    length = np.where(mask, np.hypot(u, v), 0.0)
    order = [int(i) for i in np.argsort(-length, kind="stable")[:n] if length[i] > 0]
    gx, gy, counts = field["grid_x"], field["grid_y"], field["counts"]
    return [{"x": float(gx[i % nx]), "y": float(gy[i // nx]), "u": float(u[i]), "v": float(v[i]),
             "length": float(length[i]), "direction": compass(float(u[i]), float(v[i])), "n_cells": int(counts[i])}
            for i in order]


def group_effects(deltas: dict[str, np.ndarray], groups: dict[str, np.ndarray], n_top: int
                  ) -> dict[str, list[dict[str, Any]]]:
    """Per group: the genes of ``deltas`` (gene → Δ per cell) ranked by |mean Δ| over the group's cells."""
    out = {}
    for g, m in groups.items():
        rows = [(gene, float(d[m].mean()), float(np.abs(d[m]).mean())) for gene, d in deltas.items()]
        rows = [r for r in rows if r[2] > 0]
        rows.sort(key=lambda r: (-abs(r[1]), -r[2], r[0]))
        out[g] = [{"gene": r[0], "mean_delta": r[1], "mean_abs_delta": r[2]} for r in rows[:n_top]]
    return out


def fmt(x: float | None) -> str:
    """A number in 4 significant digits (``-`` for None)."""
    return "-" if x is None else f"{x:.4g}"


def perturbation_text(s: dict[str, Any], n: int = 8) -> str:
    """A few lines describing a ``run_perturbation`` result."""
    genes = ", ".join(s["genes"])
    lines = [f"{genes} → {fmt(s['desired_expr'])} in {s['scope']} ({s['n_scope_cells']} of {s['n_obs']} cells), "
             f"{s['n_propagation']} propagation steps; {s['n_genes_changed']} genes changed."]
    top = s["top_affected_genes"][:n]
    if top:
        lines.append("Most affected genes (mean Δ over all cells, mean |Δ| in brackets): " + ", ".join(
            f"{g['gene']} {g['mean_delta']:+.3g} ({g['mean_abs_delta']:.3g})" for g in top))
    by = sorted(s["cluster_mean_abs_delta"], key=lambda c: -c["mean_abs_delta"])
    lines.append("Mean |Δ| per cluster: " + ", ".join(f"{c['label']}{_ct(c)} {fmt(c['mean_abs_delta'])}" for c in by))
    for g, rows in (s.get("focus") or {}).items():
        lines.append(f"In {g}: " + (", ".join(f"{r['gene']} {r['mean_delta']:+.3g}" for r in rows[:n]) or
                                    "no gene changed"))
    if s.get("files"):
        lines.append(f"Exported: {s['files']['expression']}")
    return "\n".join(lines)


def _ct(c: dict[str, Any]) -> str:
    ct = c.get("cell_type")
    return f" ({ct})" if ct and ct != c["label"] else ""


def field_text(rows: list[dict[str, Any]], basis: str, n: int = 6) -> str:
    """Lines describing the dominant directions of a field per group."""
    where = "UMAP" if basis == "umap" else "tissue (spatial coordinates)"
    lines = [f"Transition field on the {where} (cell vectors averaged per group; coherence 1 = all cells "
             "agree):"]
    for r in rows[:n]:
        shown = r["towards"] and r["coherence"] >= TOWARDS_MIN_COHERENCE
        to = f", towards {r['towards']} (cos {r['towards_cos']:.2f})" if shown else ""
        lines.append(f"  {r['group']} ({r['n_cells']} cells): {r['direction']}, net shift {fmt(r['net_shift'])}, "
                     f"coherence {r['coherence']:.2f}{to}")
    return "\n".join(lines)


def table_text(head: Sequence[str], rows: Sequence[Sequence[Any]], limit: int = 20) -> str:
    """A plain aligned text table (the first ``limit`` rows)."""
    cells = [[str(h) for h in head]] + [[fmt(v) if isinstance(v, float) else str(v) for v in r] for r in rows[:limit]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(head))]
    out = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    if len(rows) > limit:
        out.append(f"… {len(rows) - limit} more")
    return "\n".join(out)


def screen_row(gene: str, s: dict[str, Any]) -> dict[str, Any]:
    """One screened gene from its ``perturb/summary``: impact = mean |Δ| over all cells and all other genes.

    The summary's per-cluster mean |Δ| (over the cluster's cells and the non-target genes) weighted by
    cluster size is exactly that mean (the impact of :func:`spacetravlr_py.perturbation.screen.screen`);
    genes changed exclude the perturbed gene, as there.
    """
    clusters = s["cluster_mean_abs_delta"]
    n = sum(c["n_cells"] for c in clusters)
    impact = sum(c["n_cells"] * c["mean_abs_delta"] for c in clusters) / n if n else 0.0
    changed = int(s["n_genes_changed"]) - (1 if s["max_abs_delta"] > 0 else 0)
    top = [{"gene": g["gene"], "mean_abs_delta": g["mean_abs_delta"], "mean_delta": g["mean_delta"]}
           for g in s["top_affected_genes"][:5]]
    return {"gene": gene, "desired_expr": float(s["desired_expr"]), "impact": float(impact),
            "n_genes_changed": changed, "top_affected": top}


def rank_screen(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows sorted by impact descending, then gene; ``rank`` from 1 (the order of the library's screen)."""
    out = sorted(rows, key=lambda r: (-float(r["impact"]), str(r["gene"])))
    return [{"rank": i, **r} for i, r in enumerate(out, 1)]

"""The cell inspector (``network/cell-context``): one cell, a focus gene, its modulators and the
neighbouring cells that exchange ligands with it. Pure functions of arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..betadata.interactions import FAMILY_LR, FAMILY_TFL, modulator_parts

MAX_RADIUS_NEIGHBORS = 500


@dataclass(frozen=True)
class ModulatorSet:
    """A focus gene's modulators: TFs, ``(ligand, receptor)`` and ``(ligand, tf)`` pairs."""

    source: str = "none"  # "betadata", "network" or "none"
    tfs: tuple[str, ...] = ()
    lr_pairs: tuple[tuple[str, str], ...] = ()
    tfl_pairs: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_names(cls, names: Sequence[str], source: str) -> ModulatorSet:
        """From betadata modulator names (``TF``, ``L$R``, ``L#TF``)."""
        tfs, lr, tfl = [], [], []
        for m in names:
            fam, lig, rec, tf = modulator_parts(m)
            if fam == FAMILY_LR:
                lr.append((str(lig), str(rec)))
            elif fam == FAMILY_TFL:
                tfl.append((str(lig), str(tf)))
            else:
                tfs.append(m)
        return cls(source, tuple(tfs), tuple(lr), tuple(tfl))

    def to_json(self) -> dict[str, Any]:
        ligs = list(dict.fromkeys([l for l, _ in self.lr_pairs] + [l for l, _ in self.tfl_pairs]))
        return {"tfs": list(self.tfs), "lr_pairs": [list(p) for p in self.lr_pairs],
                "tfl_pairs": [list(p) for p in self.tfl_pairs], "ligands": ligs,
                "receptors": list(dict.fromkeys(r for _, r in self.lr_pairs))}


@dataclass
class CellBetas:
    """Beta rows of the focus gene: ``rows[cell]`` (−1 = none), ``intercept`` (R,), ``coefs`` (R, M)."""

    modulators: list[str]
    rows: np.ndarray
    intercept: np.ndarray
    coefs: np.ndarray
    lr_index: dict[tuple[str, str], int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for j, m in enumerate(self.modulators):
            fam, lig, rec, _ = modulator_parts(m)
            if fam == FAMILY_LR:
                self.lr_index[(str(lig), str(rec))] = j

    def row(self, cell: int) -> tuple[float, np.ndarray] | None:
        r = int(self.rows[cell])
        if r < 0:
            return None
        return float(self.intercept[r]), self.coefs[r]


def spatial_neighbors(tree: Any, coords: np.ndarray, cell: int, *, k: int | None = None,
                      radius: float | None = None) -> list[tuple[int, float]]:
    """``(index, distance²)`` of the nearest cells (itself excluded): ``k`` nearest, or all within ``radius``
    (at most ``MAX_RADIUS_NEIGHBORS``), nearest first, ties by index."""
    n = coords.shape[0]
    p = coords[cell]
    if radius is not None:
        idx = np.asarray(tree.query_ball_point(p, r=radius), dtype=np.int64)
    else:
        kk = min(int(k or 1) + 1, n)
        _, idx = tree.query(p, k=kk)
        idx = np.atleast_1d(np.asarray(idx, dtype=np.int64))
        idx = idx[idx < n]
    idx = idx[idx != cell]
    d2 = ((coords[idx] - p) ** 2).sum(axis=1)
    order = np.lexsort((idx, d2))
    limit = MAX_RADIUS_NEIGHBORS if radius is not None else int(k or 1)
    order = order[:limit]
    return [(int(idx[o]), float(d2[o])) for o in order]


def _exprs(genes: Sequence[str], row: np.ndarray, gi: dict[str, int], thr: float) -> list[dict[str, Any]]:
    vals = [(g, float(row[gi[g]])) for g in dict.fromkeys(genes) if g in gi]
    return [{"gene": g, "expr": v} for g, v in vals if v > thr]


def _edges(mods: ModulatorSet, sender: np.ndarray, receiver: np.ndarray, gi: dict[str, int], thr: float,
           recv_row: tuple[float, np.ndarray] | None, betas: CellBetas | None, max_edges: int) -> list[dict[str, Any]]:
    """Ligand–receptor edges from ``sender`` to ``receiver`` (expression rows), strongest first."""
    tf_of: dict[str, list[str]] = {}
    for lig, tf in mods.tfl_pairs:
        tf_of.setdefault(lig, []).append(tf)
    edges: list[dict[str, Any]] = []
    for lig, rec in mods.lr_pairs:
        if lig not in gi or rec not in gi:
            continue
        le, re_ = float(sender[gi[lig]]), float(receiver[gi[rec]])
        if le <= thr or re_ <= thr:
            continue
        beta = None
        if recv_row is not None and betas is not None and (lig, rec) in betas.lr_index:
            beta = float(recv_row[1][betas.lr_index[(lig, rec)]])
        linked = [(tf, float(receiver[gi[tf]])) for tf in tf_of.get(lig, []) if tf in gi]
        linked = [x for x in linked if x[1] > thr]
        best = max(linked, key=lambda x: (x[1], x[0])) if linked else None
        edges.append({"ligand": lig, "receptor": rec, "ligand_expr": le, "receptor_expr": re_,
                      "support_score": float(np.sqrt(max(le * re_, 0.0))), "beta": beta,
                      "linked_tf": best[0] if best else None, "linked_tf_expr": best[1] if best else None})
    edges.sort(key=lambda e: (-e["support_score"], e["ligand"], e["receptor"]))
    return edges[:max_edges]


def cell_context(*, cell: int, focus_gene: str, X: np.ndarray, gi: dict[str, int], obs_names: np.ndarray,
                 coords: np.ndarray, clusters: np.ndarray, cluster_labels: Sequence[str], cell_type: str | None,
                 neighbors: list[tuple[int, float]], mods: ModulatorSet, betas: CellBetas | None,
                 direction: str = "incoming", threshold: float = 1e-6, max_edges: int = 48,
                 neighbor_query: str = "knn", radius: float | None = None) -> dict[str, Any]:
    """The ``network/cell-context`` payload (see docs/viewer.md)."""
    me = X[cell]
    own = betas.row(cell) if betas is not None else None
    beta_list: list[dict[str, Any]] = []
    if own is not None and betas is not None:
        nz = [(m, float(b)) for m, b in zip(betas.modulators, own[1]) if b != 0]
        nz.sort(key=lambda x: (-abs(x[1]), x[0]))
        beta_list = [{"modulator": m, "family": modulator_parts(m)[0], "beta": b} for m, b in nz]
    out_nb = []
    for j, d2 in neighbors:
        other = X[j]
        if direction == "incoming":  # the neighbour sends, this cell receives (its own betas apply)
            edges = _edges(mods, other, me, gi, threshold, own, betas, max_edges)
        else:  # this cell sends, the neighbour receives (the neighbour's betas apply)
            recv = betas.row(j) if betas is not None else None
            edges = _edges(mods, me, other, gi, threshold, recv, betas, max_edges)
        best = max((float(e["support_score"]) for e in edges), default=0.0)
        out_nb.append({"index": j, "obs_name": str(obs_names[j]), "distance": float(np.sqrt(d2)),
                       "distance_sq": d2, "cluster_id": int(clusters[j]),
                       "max_support_score": best if best > 0 else None, "edges": edges})
    k = int(clusters[cell])
    return {
        "cell_index": cell, "obs_name": str(obs_names[cell]), "x": float(coords[cell, 0]),
        "y": float(coords[cell, 1]), "cluster_id": k, "cluster_label": str(cluster_labels[k]),
        "cell_type": cell_type, "focus_gene": focus_gene, "focus_expr": float(me[gi[focus_gene]]),
        "modulator_source": mods.source, "modulators": mods.to_json(),
        "intercept": own[0] if own is not None else None, "betas": beta_list,
        "tf_exprs": _exprs(mods.tfs, me, gi, threshold),
        "ligand_exprs": _exprs([l for l, _ in mods.lr_pairs] + [l for l, _ in mods.tfl_pairs], me, gi, threshold),
        "direction": direction, "neighbor_query": neighbor_query, "radius_used": radius,
        "neighbors_in_query": len(out_nb), "neighbors": out_nb,
    }

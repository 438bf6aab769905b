"""Pure functions from arrays to the viewer's response payloads (bytes or JSON-ready dicts).

No HTTP, no state: every function takes arrays and returns bytes / plain Python values, so each route's
payload is unit-testable without a server. Binary arrays are little-endian (``<f4``, ``<u4``, ``<u2``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import _keys
from ..betadata.interactions import modulator_parts

if TYPE_CHECKING:
    from ..perturb.propagate import PerturbResult
    from ..transitions.field import GridField

F32 = np.dtype("<f4")
U32 = np.dtype("<u4")
U16 = np.dtype("<u2")
DTYPE_NAMES = {F32: "float32", U32: "uint32", U16: "uint16"}
NO_CELL_TYPE = 65535
"""``cell_type/codes`` value of a cell without a label."""
CELL_TYPE_COLUMNS: tuple[str, ...] = ("cell_type", "cell_types", "celltype", "major_cell_type")
"""obs columns tried, in order, for the cell-type colouring (else the cluster column)."""
ANNOTATED_COLUMN = "annotated_type"
"""Cell-type column name after ``meta/label_clusters``."""
ZERO_DELTA = 1e-12

# binary response headers
H_DTYPE, H_LENGTH, H_SHAPE = "X-Dtype", "X-Length", "X-Shape"
H_JOB, H_DELTA_GENE, H_SECONDS, H_CACHED = "X-Job-Id", "X-Delta-Gene", "X-Perturb-Seconds", "X-Cached"
EXPOSED_HEADERS: tuple[str, ...] = (H_DTYPE, H_LENGTH, H_SHAPE, H_JOB, H_DELTA_GENE, H_SECONDS, H_CACHED)


def to_bytes(values: np.ndarray, dtype: np.dtype) -> tuple[bytes, dict[str, str]]:
    """``values`` cast to the little-endian ``dtype``, packed, and the ``X-Dtype/X-Length/X-Shape`` headers."""
    a = np.ascontiguousarray(values, dtype=dtype)
    shape = ",".join(str(s) for s in a.shape)
    return a.tobytes(), {H_DTYPE: DTYPE_NAMES[np.dtype(dtype)], H_LENGTH: str(a.size), H_SHAPE: shape}


def bounds(xy: np.ndarray) -> dict[str, float]:
    """``{min_x, max_x, min_y, max_y}`` of (N, 2) coordinates (0..1 when empty)."""
    if xy.shape[0] == 0:
        return {"min_x": 0.0, "max_x": 1.0, "min_y": 0.0, "max_y": 1.0}
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    return {"min_x": float(lo[0]), "max_x": float(hi[0]), "min_y": float(lo[1]), "max_y": float(hi[1])}


def cell_type_encoding(values: Sequence[Any] | np.ndarray) -> tuple[list[str], np.ndarray]:
    """Sorted distinct labels and a ``uint16`` code per cell (``NO_CELL_TYPE`` for missing/empty labels).

    Labels are compared as stripped strings; None, NaN, ``""`` and ``"nan"``/``"null"`` are missing.
    """
    import pandas as pd

    s = pd.Series(np.asarray(values, dtype=object))
    missing = s.isna().to_numpy()
    text = np.array([str(v).strip() for v in s.tolist()], dtype=object)
    missing |= np.isin(np.char.lower(text.astype(str)), ["", "nan", "null", "none"])
    cats = sorted(set(text[~missing].tolist()))
    if len(cats) >= NO_CELL_TYPE:
        raise ValueError(f"{len(cats)} distinct cell-type labels; at most {NO_CELL_TYPE - 1} can be coloured")
    index = {c: i for i, c in enumerate(cats)}
    codes = np.full(len(text), NO_CELL_TYPE, dtype=np.uint16)
    for i in np.flatnonzero(~missing):
        codes[i] = index[text[i]]
    return cats, codes


def relabel_clusters(cluster_labels: Sequence[str], clusters: np.ndarray,
                     labels: dict[int, str]) -> tuple[list[str], np.ndarray]:
    """Cell-type categories and codes after naming clusters: ``labels[k]`` replaces cluster k's label."""
    names = [labels.get(k, str(lab)) for k, lab in enumerate(cluster_labels)]
    cats = sorted(set(names))
    index = {c: i for i, c in enumerate(cats)}
    lut = np.array([index[n] for n in names], dtype=np.uint16)
    return cats, lut[clusters]


def genes_with_prefix(var_names: Sequence[str], prefix: str, limit: int) -> list[str]:
    """Genes starting with ``prefix``: case-sensitive matches, then case-insensitive ones, in var order."""
    if not prefix:
        return list(var_names[:limit])
    exact = [g for g in var_names if g.startswith(prefix)]
    if len(exact) >= limit:
        return exact[:limit]
    low = prefix.lower()
    seen = set(exact)
    more = [g for g in var_names if g not in seen and g.lower().startswith(low)]
    return (exact + more)[:limit]


def cluster_means(columns: np.ndarray, clusters: np.ndarray, n_clusters: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-cluster mean of each column of ``columns`` (N, g) → ((g, K) means, (K,) cell counts)."""
    counts = np.bincount(clusters, minlength=n_clusters)
    sums = np.stack([np.bincount(clusters, weights=columns[:, j], minlength=n_clusters)
                     for j in range(columns.shape[1])]) if columns.shape[1] else np.zeros((0, n_clusters))
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)
    return means, counts


def column_name(modulator: str) -> str:
    """Betadata column of a modulator: ``beta_<modulator>``."""
    return _keys.BETA_PREFIX + modulator


def betadata_columns(modulators: Sequence[str]) -> list[str]:
    """``beta0`` then ``beta_<modulator>`` in file order."""
    return [_keys.INTERCEPT] + [column_name(m) for m in modulators]


def resolve_column(column: str, modulators: Sequence[str]) -> int | None:
    """Index of ``column`` among the modulators (−1 = intercept), accepting ``beta_`` or not; None if absent."""
    c = column.strip()
    if c in _keys.INTERCEPT_ALIASES:
        return -1
    name = c[len(_keys.BETA_PREFIX):] if c.startswith(_keys.BETA_PREFIX) else c
    try:
        return list(modulators).index(name)
    except ValueError:
        return None


def top_coefficients(coefs: np.ndarray, modulators: Sequence[str], rows: np.ndarray, top_k: int
                     ) -> list[dict[str, Any]]:
    """Mean and mean |β| of each modulator over cells given by their beta ``rows`` (−1 = zero row).

    Ranked by mean |β| descending, ties by column name; the intercept is excluded.
    """
    if rows.size == 0 or not len(modulators):
        return []
    R = coefs.shape[0]
    counts = np.bincount(np.where(rows < 0, R, rows), minlength=R + 1)[:R].astype(np.float64)
    n = float(rows.size)
    mean = counts @ coefs / n
    mean_abs = counts @ np.abs(coefs) / n
    names = [column_name(m) for m in modulators]
    order = sorted(range(len(names)), key=lambda j: (-mean_abs[j], names[j]))[:top_k]
    return [{"column": names[j], "modulator": modulators[j], "family": modulator_parts(modulators[j])[0],
             "mean": float(mean[j]), "mean_abs": float(mean_abs[j])} for j in order]


def mask_digest(mask: np.ndarray) -> str:
    """A short digest identifying a boolean cell mask (cache key of a perturbation)."""
    return hashlib.sha1(np.packbits(mask.astype(bool)).tobytes()).hexdigest()[:16]


_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def export_stem(gene: str, desired: float, scope_label: str, n_propagation: int) -> str:
    """Default export file stem ``<gene>_<value>_<scope>_<n>steps`` with unsafe characters replaced."""
    value = "ko" if desired == 0 else f"{desired:g}"
    scope = "all" if scope_label == "all cells" else scope_label
    stem = _SAFE.sub("-", f"{gene}_{value}_{scope}_{n_propagation}steps").strip("-.")
    return stem[:120] or "perturbation"


def perturb_summary(result: PerturbResult, top_n: int = 50) -> dict[str, Any]:
    """The ``perturb/summary`` payload: the perturbed gene's Δ, top affected genes, per-cluster impact."""
    t = result.tissue
    gene = result.targets[0]
    d = result.delta
    col = d[:, t.gene_index[gene]]
    n = d.shape[0]
    mean_d = d.mean(axis=0)
    mean_abs = np.abs(d).mean(axis=0)
    max_abs = np.abs(d).max(axis=0)
    targets = set(result.targets)
    order = [j for j in np.argsort(-mean_abs, kind="stable") if mean_abs[j] > 0 and t.var_names[j] not in targets]
    impact = result.cluster_impact()
    sizes = t.cluster_sizes()
    return {
        "gene": gene, "desired_expr": float(result.desired[0]), "scope": result.scope_label,
        "n_scope_cells": int(result.scope.sum()), "n_obs": int(n), "n_propagation": int(result.n_propagation),
        "mean_delta": float(col.mean()), "max_abs_delta": float(np.abs(col).max()),
        "n_positive": int((col > ZERO_DELTA).sum()), "n_negative": int((col < -ZERO_DELTA).sum()),
        "n_zero": int((np.abs(col) <= ZERO_DELTA).sum()),
        "top_affected_genes": [{"gene": t.var_names[j], "mean_delta": float(mean_d[j]),
                                "mean_abs_delta": float(mean_abs[j]), "max_abs_delta": float(max_abs[j])}
                               for j in order[:top_n]],
        "cluster_mean_abs_delta": [{"cluster_id": k, "label": lab, "n_cells": int(sizes[k]),
                                    "mean_abs_delta": float(impact[lab])} for k, lab in enumerate(t.cluster_labels)],
        "n_genes_changed": int(np.count_nonzero(max_abs > 0)),
        "timings_s": {k: round(float(v), 6) for k, v in result.timings.items()},
    }


def field_payload(grid: GridField, vectors: np.ndarray | None, params: dict[str, Any]) -> dict[str, Any]:
    """The ``perturb/umap-field`` payload: grid centres, row-major u/v (masked bins 0), mask, counts."""
    ny, nx = grid.u.shape
    u = np.where(grid.mask, np.nan_to_num(grid.u), 0.0)
    v = np.where(grid.mask, np.nan_to_num(grid.v), 0.0)
    return {
        "nx": int(nx), "ny": int(ny), "grid_x": grid.x.tolist(), "grid_y": grid.y.tolist(),
        "u": u.ravel().tolist(), "v": v.ravel().tolist(), "mask": grid.mask.ravel().tolist(),
        "counts": grid.counts.ravel().astype(int).tolist(),
        "cell_u": None if vectors is None else np.nan_to_num(vectors[:, 0]).astype(np.float32).tolist(),
        "cell_v": None if vectors is None else np.nan_to_num(vectors[:, 1]).astype(np.float32).tolist(),
        "params": params,
    }

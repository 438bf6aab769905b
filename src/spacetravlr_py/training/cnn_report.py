"""What full mode decided, read back from a run folder's logs: held-out R² of lasso and CNN per cluster.

>>> s = heldout_summary("runs/a")                          # doctest: +SKIP
>>> s["fits_heldout"], s["cnn_chosen"], s["mean_r2_lasso_heldout"], s["mean_r2_full_heldout"]  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from .. import _keys

_CNN_FIELDS = ("cluster", "label", "n_train", "n_val", "n_test", "epochs_run", "best_epoch", "r2_lasso_in", "r2_cnn_in",
               "r2_lasso_heldout", "r2_cnn_heldout", "choice", "seconds")


def read_cnn_rows(log: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The ``cnn`` rows of one ``log/{gene}.log`` as dicts (numbers parsed; empty for seed-mode logs)."""
    rows = []
    for line in Path(log).read_text(encoding="utf-8").splitlines():
        f = line.split("\t")
        if f[0] != "cnn" or not f[1].isdigit():
            continue
        d: dict[str, Any] = dict(zip(_CNN_FIELDS, f[1:]))
        for k in ("cluster", "n_train", "n_val", "n_test", "epochs_run", "best_epoch"):
            d[k] = int(d[k])
        for k in ("r2_lasso_in", "r2_cnn_in", "r2_lasso_heldout", "r2_cnn_heldout", "seconds"):
            d[k] = float(d[k])
        rows.append(d)
    return rows


def heldout_summary(out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Held-out (test-cell) R² over every (gene, cluster) CNN of a full-mode run that had held-out cells.

    ``r2_full_heldout`` of a fit is the held-out R² of what the run kept: the CNN's when it was chosen,
    else the lasso's (the lasso refitted on the training cells, which is what the CNN had to beat), so
    ``r2_full_heldout >= r2_lasso_heldout`` for every fit by construction of the keep-lasso rule.

    Returns
    -------
    dict
        ``genes``, ``fits`` (trained clusters), ``fits_heldout``, ``cnn_chosen`` (among fits with held-out
        cells), ``mean/median_r2_{lasso,cnn,full}_heldout``, ``min_gain_full_minus_lasso`` (≥ 0),
        ``mean_gain_full_minus_lasso``, ``per_gene`` (gene → mean held-out R² of lasso and full mode).
    """
    logs = sorted((Path(out_dir) / _keys.LOG_DIR).glob("*.log"))
    per_gene: dict[str, dict[str, float]] = {}
    lasso, cnn, full, n_fits = [], [], [], 0
    chosen = 0
    for log in logs:
        rows = read_cnn_rows(log)
        n_fits += len(rows)
        g_l, g_f = [], []
        for r in rows:
            if r["n_test"] == 0 or not math.isfinite(r["r2_lasso_heldout"]):
                continue
            lasso.append(r["r2_lasso_heldout"])
            cnn.append(r["r2_cnn_heldout"])
            f = r["r2_cnn_heldout"] if r["choice"] == "cnn" else r["r2_lasso_heldout"]
            full.append(f)
            chosen += r["choice"] == "cnn"
            g_l.append(r["r2_lasso_heldout"])
            g_f.append(f)
        if g_l:
            per_gene[log.stem] = {"lasso": float(np.mean(g_l)), "full": float(np.mean(g_f))}
    out: dict[str, Any] = {"genes": len(per_gene), "fits": n_fits, "fits_heldout": len(lasso), "cnn_chosen": chosen}
    if lasso:
        L, C, F = np.array(lasso), np.array(cnn), np.array(full)
        for name, v in (("lasso", L), ("cnn", C), ("full", F)):
            out[f"mean_r2_{name}_heldout"] = float(v.mean())
            out[f"median_r2_{name}_heldout"] = float(np.median(v))
        out["min_gain_full_minus_lasso"] = float((F - L).min())
        out["mean_gain_full_minus_lasso"] = float((F - L).mean())
    out["per_gene"] = per_gene
    return out


def cell_matrix(frame: Any, names: list[str], obs_names: list[str], cell_labels: list[str]) -> np.ndarray:
    """``(N, len(names))`` betas of every cell from a ``CellID`` or ``Cluster`` frame (absent columns = 0).

    ``cell_labels[i]`` is the cluster label of cell ``obs_names[i]`` (used for ``Cluster`` rows).
    """
    rows = {r: i for i, r in enumerate(frame.row_ids)}
    keys = obs_names if frame.row_kind == _keys.CELLID_COL else cell_labels
    idx = np.array([rows.get(k, -1) for k in keys])
    cols = {m: j for j, m in enumerate(frame.modulators)}
    out = np.zeros((len(obs_names), len(names)))
    for j, m in enumerate(names):
        if m in cols:
            v = frame.coefs[:, cols[m]]
            out[:, j] = np.where(idx >= 0, v[np.maximum(idx, 0)], 0.0)
    return out


def per_cell_recovery(truth: Any, fitted: Any, obs_names: list[str], cell_labels: list[str]) -> dict[str, float]:
    """How well fitted betas follow true betas that vary from cell to cell within clusters.

    For every gene of ``truth`` (a mapping gene → ``CellID`` :class:`~spacetravlr_py.betadata.frame.BetaFrame`
    of true per-cell betas) found in ``fitted`` (gene → fitted frame, ``Cluster`` or ``CellID`` rows), and
    every true modulator:

    * ``within_cluster_corr``: Pearson correlation of fitted and true betas across the cells of each
      cluster, averaged over (gene, modulator, cluster); a beta constant within a cluster (seed mode)
      counts 0 — it carries no within-cluster information;
    * ``corr``: Pearson correlation of fitted and true betas across all cells (between-cluster differences
      included, which seed mode captures too), averaged over (gene, modulator);
    * ``relative_mse``: Σ (β̂ − β)² / Σ (β − β̄_cluster)² over cells: 1 = as good as the best single value
      per cluster, 0 = exact per-cell recovery.
    """
    labels = np.asarray(cell_labels)
    corrs: list[float] = []
    overall: list[float] = []
    num = den = 0.0
    for g, tf in truth.items():
        if g not in fitted:
            continue
        names = list(tf.modulators)
        T = cell_matrix(tf, names, obs_names, cell_labels)
        F = cell_matrix(fitted[g], names, obs_names, cell_labels)
        for j in range(len(names)):
            if np.ptp(T[:, j]) > 0:
                overall.append(float(np.corrcoef(F[:, j], T[:, j])[0, 1]) if np.ptp(F[:, j]) > 0 else 0.0)
        for lab in np.unique(labels):
            m = labels == lab
            t, f = T[m], F[m]
            tc = t - t.mean(axis=0)
            num += float(((f - t) ** 2).sum())
            den += float((tc**2).sum())
            for j in range(len(names)):
                if np.ptp(t[:, j]) == 0:
                    continue
                corrs.append(float(np.corrcoef(f[:, j], t[:, j])[0, 1]) if np.ptp(f[:, j]) > 0 else 0.0)
    return {"within_cluster_corr": float(np.mean(corrs)) if corrs else math.nan,
            "corr": float(np.mean(overall)) if overall else math.nan,
            "relative_mse": num / den if den > 0 else math.nan, "n_terms": len(corrs)}

"""Deterministic benchmark inputs, cached under ``.bench/`` (gitignored).

Every generator takes explicit sizes and a seed and writes into a directory keyed by them, with a
``.done`` stamp written last, so a rerun reuses complete inputs and regenerates interrupted ones.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import reference as ref

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = Path(os.environ.get("SPACETRAVLR_BENCH_DIR") or ROOT / ".bench")
DENSITY = 1e-3
"""Cells per unit² (median nearest-neighbour distance ≈ 15, as in the reference's synthetic data)."""


def cached(key: str, build: Callable[[Path], None]) -> Path:
    """``.bench/<key>/`` built by ``build(dir)`` unless a complete copy exists."""
    d = BENCH_DIR / key
    if (d / ".done").exists():
        return d
    if d.exists():
        shutil.rmtree(d)
    tmp = BENCH_DIR / (key + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    build(tmp)
    (tmp / ".done").write_text("ok\n")
    tmp.rename(d)
    return d


# --------------------------------------------------------------------------------------------------
# received ligands: coordinates and ligand expression
# --------------------------------------------------------------------------------------------------


def layout(n_cells: int, seed: int = 0) -> np.ndarray:
    """Uniform cells on a square at density 1e-3 (side 31.6·√N)."""
    side = float(np.sqrt(n_cells / DENSITY))
    return np.random.default_rng(seed).uniform(0.0, side, size=(n_cells, 2))


def ligand_matrix(n_cells: int, n_ligands: int, seed: int = 0, zero_fraction: float = 0.3) -> np.ndarray:
    """Non-negative ligand expression (log-normal) with ``zero_fraction`` exact zeros."""
    rng = np.random.default_rng(seed + 1)
    L = rng.lognormal(mean=0.0, sigma=0.8, size=(n_cells, n_ligands))
    L[rng.random((n_cells, n_ligands)) < zero_fraction] = 0.0
    return L


def received_inputs(n_cells: int, n_ligands: int, seed: int = 0) -> Path:
    """``xy.npy``, ``lig.npy`` and ``lig.parquet`` (named ligands ``Lig1..``, cells ``c0..``)."""

    def build(d: Path) -> None:
        xy = layout(n_cells, seed)
        L = ligand_matrix(n_cells, n_ligands, seed)
        np.save(d / "xy.npy", xy)
        np.save(d / "lig.npy", L)
        ref.write_frame(d / "lig.parquet", L, [f"c{i}" for i in range(n_cells)],
                        [f"Lig{j + 1}" for j in range(n_ligands)])

    return cached(f"received_n{n_cells}_l{n_ligands}_s{seed}", build)


# --------------------------------------------------------------------------------------------------
# splash: a wide gene panel and many-modulator betadata
# --------------------------------------------------------------------------------------------------


def splash_panel(n_tfs: int, n_pairs: int, n_targets: int) -> dict[str, list[str]]:
    """Gene names (no ``_``, reference quirk 8): TFs ``Tfa1..``, ligands ``Lga1..``, receptors ``Rca1..``,
    targets ``Tga1..``."""
    return {"tfs": [f"Tfa{i + 1}" for i in range(n_tfs)], "ligands": [f"Lga{i + 1}" for i in range(n_pairs)],
            "receptors": [f"Rca{i + 1}" for i in range(n_pairs)], "targets": [f"Tga{i + 1}" for i in range(n_targets)]}


def random_modulators(rng: np.random.Generator, roles: dict[str, list[str]], n_tf: int, n_lr: int, n_tfl: int,
                      exclude: str = "") -> list[str]:
    """Modulator names mixing TFs, ``L$R`` and ``L#TF`` (genes recur across families, so that splash
    has to sum contributions)."""
    tfs = [t for t in roles["tfs"] if t != exclude]
    ligs, recs = roles["ligands"], roles["receptors"]
    chosen_tfs = list(rng.choice(tfs, size=min(n_tf, len(tfs)), replace=False))
    lr: list[str] = []
    while len(lr) < n_lr:
        name = f"{ligs[rng.integers(len(ligs))]}${recs[rng.integers(len(recs))]}"
        if name not in lr:
            lr.append(name)
    tfl: list[str] = []
    while len(tfl) < n_tfl:
        # half of the TF–ligand TFs are also direct TFs of the gene
        pool = chosen_tfs if (rng.random() < 0.5 and chosen_tfs) else tfs
        name = f"{ligs[rng.integers(len(ligs))]}#{pool[rng.integers(len(pool))]}"
        if name not in tfl:
            tfl.append(name)
    return chosen_tfs + lr + tfl


def cluster_betas(rng: np.random.Generator, n_clusters: int,
                  modulators: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(intercept (K,), coefs (K, M)) with interaction betas of the size trained models have."""
    m = len(modulators)
    B = rng.normal(0.0, 0.5, size=(n_clusters, m))
    inter = np.array([("$" in x) or ("#" in x) for x in modulators])
    B[:, inter] *= 20.0
    B[rng.random((n_clusters, m)) < 0.1] = 0.0
    return rng.normal(1.0, 0.3, size=n_clusters), B


def splash_inputs(n_cells: int, n_genes_trained: int = 50, n_mods: int = 200, seed: int = 0,
                  n_clusters: int = 5) -> Path:
    """Inputs of the splash benchmark.

    * ``betadata/<gene>_betadata.parquet``: reference format (per cell, float32; betas are constant
      within a cluster, as the harness's seed betadata are), ``n_mods`` modulators per gene
      (45% TF, 35% ``L$R``, 20% ``L#TF``);
    * ``gex.parquet`` (cells × genes), ``rw.parquet`` and ``rw_tfl.parquet`` (cells × ligands);
    * ``meta.json``: panel, clusters.
    """
    n_tf, n_lr = int(round(0.45 * n_mods)), int(round(0.35 * n_mods))
    n_tfl = n_mods - n_tf - n_lr

    def build(d: Path) -> None:
        rng = np.random.default_rng(seed)
        roles = splash_panel(n_tfs=max(150, n_tf + 20), n_pairs=max(60, n_lr // 2 + 10), n_targets=n_genes_trained)
        genes = roles["tfs"] + roles["ligands"] + roles["receptors"] + roles["targets"]
        obs = [f"c{i}" for i in range(n_cells)]
        clusters = rng.integers(0, n_clusters, size=n_cells)
        G = rng.lognormal(0.0, 0.7, size=(n_cells, len(genes)))
        G[rng.random(G.shape) < 0.25] = 0.0
        ref.write_frame(d / "gex.parquet", G, obs, genes)
        nl = len(roles["ligands"])
        rw = rng.lognormal(-3.0, 0.5, size=(n_cells, nl))
        ref.write_frame(d / "rw.parquet", rw, obs, roles["ligands"])
        ref.write_frame(d / "rw_tfl.parquet", rw * rng.uniform(0.5, 1.5, size=nl), obs, roles["ligands"])
        bdir = d / "betadata"
        for g in roles["targets"]:
            mods = random_modulators(rng, roles, n_tf, n_lr, n_tfl, exclude=g)
            b0, B = cluster_betas(rng, n_clusters, mods)
            ref.write_reference_betadata(bdir, g, B[clusters], b0[clusters], mods, obs)
        (d / "meta.json").write_text(json.dumps({"genes": genes, "roles": roles, "clusters": clusters.tolist()}))

    return cached(f"splash_n{n_cells}_g{n_genes_trained}_m{n_mods}_s{seed}", build)


def load_splash_inputs(d: Path) -> dict[str, Any]:
    meta = json.loads((d / "meta.json").read_text())
    gex = pd.read_parquet(d / "gex.parquet")
    return {"genes": meta["genes"], "roles": meta["roles"], "clusters": np.asarray(meta["clusters"]),
            "obs": list(gex.index), "G": gex.to_numpy(dtype=np.float64),
            "rw": pd.read_parquet(d / "rw.parquet"), "rw_tfl": pd.read_parquet(d / "rw_tfl.parquet"),
            "betadata": d / "betadata"}


def panel_tissue(obs: Sequence[str], genes: Sequence[str], G: np.ndarray, clusters: np.ndarray,
                 coords: np.ndarray | None = None) -> Any:
    """A :class:`~spacetravlr_py.io.anndata.Tissue` over given arrays (for Betabase / splash)."""
    from spacetravlr_py.io.anndata import Tissue

    n = len(obs)
    xy = coords if coords is not None else np.zeros((n, 2))
    labels = sorted({int(c) for c in clusters})
    return Tissue(obs_names=np.asarray(obs, dtype=object), var_names=list(genes), coords=xy,
                  expression=np.ascontiguousarray(G), clusters=np.asarray(clusters, dtype=np.int64),
                  cluster_labels=[str(c) for c in labels])


# --------------------------------------------------------------------------------------------------
# perturbation: synthetic tissue (planted betas) in both formats
# --------------------------------------------------------------------------------------------------

PERTURB_RADIUS = 200.0
PERTURB_CONTACT = 30.0


def perturb_inputs(n_cells: int, seed: int = 0, n_targets: int = 13, *, reference_files: bool = True) -> Path:
    """A synthetic tissue with 50 modelled genes (8 level-1 TFs + 15 ligands + 14 receptors + 13 targets).

    * ``tissue.h5ad``: written for the reference (layers, ``cell_type_int``, all-ones thresholds) and
      read by ours;
    * ``betadata/`` (reference per-cell float32 parquet + ``run_params.json``) when ``reference_files``;
    * ``seed_betadata/`` our cluster-row feather (the same betas) — used at sizes where per-cell files
      would be wasteful;
    * ``planted.json``.
    """

    def build(d: Path) -> None:
        from spacetravlr_py.datasets import synthetic_tissue
        from spacetravlr_py.io.betadata import betadata_path, write_betadata

        syn = synthetic_tissue(n_cells=n_cells, seed=seed, n_targets=n_targets, kernel="truncated",
                               per_ligand_radius=True, radius=PERTURB_RADIUS, contact_distance=PERTURB_CONTACT)
        ref.write_reference_h5ad(d / "tissue.h5ad", syn.adata)
        labels = syn.adata.obs["cell_type"].astype(str).to_numpy()
        if reference_files:
            ref.write_betaframes_for_reference(d / "betadata", syn.betas, list(syn.adata.obs_names), labels)
            ref.write_run_params(d / "betadata", radius=PERTURB_RADIUS, contact_distance=PERTURB_CONTACT)
        for g, f in syn.betas.items():
            write_betadata(betadata_path(d / "seed_betadata", g), f)
        (d / "planted.json").write_text(json.dumps({"roles": syn.roles, "planted": syn.planted}))

    tag = "ref" if reference_files else "seed"
    return cached(f"perturb_n{n_cells}_t{n_targets}_s{seed}_{tag}", build)


# --------------------------------------------------------------------------------------------------
# training: a real-symbol mouse panel with a GRN-driven log-normal expression
# --------------------------------------------------------------------------------------------------

_SYMBOL = r"^[A-Z][a-z][a-z0-9]*$"


def _base_grn_edges() -> pd.DataFrame:
    """The real mouse base GRN as (source, target) edges (cached as a parquet: the wide file is large)."""

    def build(d: Path) -> None:
        from spacetravlr_py.io.network_build import read_base_grn

        read_base_grn(ref.SHARED / "data" / "grn" / "mouse_base_grn.parquet").to_parquet(d / "edges.parquet")

    return pd.read_parquet(cached("mouse_base_grn_edges", build) / "edges.parquet")


def training_panel(n_genes: int, seed: int = 0, *, tf_frac: float = 0.3, lr_frac: float = 0.4
                   ) -> tuple[list[str], dict[str, list[str]], dict[str, str]]:
    """(genes, parents, role) of a panel of real mouse symbols.

    TFs are base-GRN TFs, ligands/receptors come in CellChat pairs, the rest are base-GRN targets; every
    gene has at least one TF of the panel among its base-GRN regulators (so that the Python reference,
    which skips genes without TF regulators, trains all of them).
    """
    from spacetravlr_py.io.network_build import read_lr_table

    rng = np.random.default_rng(seed)
    edges = _base_grn_edges()
    edges = edges[edges["source"].str.match(_SYMBOL) & edges["target"].str.match(_SYMBOL)]
    by_target = edges.groupby("target")["source"].apply(lambda s: sorted(set(s)))
    all_tfs = sorted(set(edges["source"]) & set(by_target.index))
    n_tf = max(5, int(tf_frac * n_genes))
    tfs = list(rng.choice(all_tfs, size=min(len(all_tfs), n_tf), replace=False))
    tfset = set(tfs)
    tfs = [t for t in tfs if set(by_target.get(t, [])) & (tfset - {t})]
    tfset = set(tfs)

    def has_parent(g: str) -> bool:
        return bool(set(by_target.get(g, [])) & (tfset - {g}))

    lr = read_lr_table(ref.cellchat_csv("mouse"))
    lr = lr[lr["ligand"].map(has_parent) & lr["receptor"].map(has_parent)]
    lr = lr[~lr["ligand"].isin(tfset) & ~lr["receptor"].isin(tfset)]
    n_lr = int(lr_frac * n_genes)
    lr_genes: list[str] = []
    for i in rng.permutation(len(lr)):
        for g in (lr.iloc[i]["ligand"], lr.iloc[i]["receptor"]):
            if g not in lr_genes:
                lr_genes.append(g)
        if len(lr_genes) >= n_lr:
            break
    taken = tfset | set(lr_genes)
    pool = [g for g in by_target.index if g not in taken and has_parent(g)]
    others = list(rng.choice(pool, size=max(0, n_genes - len(tfs) - len(lr_genes)), replace=False))
    genes = tfs + lr_genes + others
    parents = {g: [t for t in by_target.get(g, []) if t in tfset and t != g] for g in genes}
    role = {**dict.fromkeys(others, "target"), **dict.fromkeys(lr_genes, "lr"), **dict.fromkeys(tfs, "tf")}
    return genes, parents, role


def _training_expression(genes: list[str], parents: dict[str, list[str]], n_cells: int, clusters: np.ndarray,
                         rng: np.random.Generator, n_clusters: int) -> np.ndarray:
    gi = {g: i for i, g in enumerate(genes)}
    logx = np.zeros((n_cells, len(genes)))
    done: set[str] = set()
    # TFs first (parents among earlier TFs), then everything else
    for g in genes:
        mu = rng.normal(0.3, 0.5, size=n_clusters)
        lin = mu[clusters].copy()
        ps = [p for p in parents[g] if p in done][:8]
        for p in ps:
            z = logx[:, gi[p]]
            lin += rng.normal(0.0, 0.5 / np.sqrt(len(ps))) * (z - z.mean()) / (z.std() + 1e-12)
        logx[:, gi[g]] = lin + 0.3 * rng.normal(size=n_cells)
        done.add(g)
    X = np.expm1(np.clip(logx, 0.0, None))  # log-normal-like, with exact zeros
    return X


def training_inputs(n_genes: int, n_cells: int, seed: int = 0, *, n_clusters: int = 5,
                    full_network: bool = False) -> Path:
    """Inputs of a training benchmark.

    * ``tissue.h5ad`` (``imputed_count`` = ``normalized_count``; ``cell_type`` strings ``0..4`` and
      ``cell_type_int``; all-ones ``cell_thresholds``; cells on a jittered grid at density 1e-3, five
      spatial clusters);
    * ``mouse_network.parquet``: ``grn`` edges of the real base GRN (restricted to the panel unless
      ``full_network``) + every expanded real CellChat pair (``lr``, with ``signaling``); no NicheNet;
    * ``regulators.json`` (the TFs each gene gets, for the reference's ``--regulators-json``) and
      ``targets.txt``.
    """
    import anndata as ad

    def build(d: Path) -> None:
        from spacetravlr_py import _keys
        from spacetravlr_py.io.network_build import read_lr_table

        rng = np.random.default_rng(seed)
        # small panels: the seed README's mix (many TFs and ligands/receptors); large panels: roughly the
        # genome's shares (about 5% TFs of the base GRN and 5% CellChat ligands/receptors)
        tf_frac, lr_frac = (0.3, 0.4) if n_genes <= 500 else (0.05, 0.05)
        genes, parents, role = training_panel(n_genes, seed, tf_frac=tf_frac, lr_frac=lr_frac)
        side = int(np.ceil(np.sqrt(n_cells)))
        step = float(np.sqrt(1.0 / DENSITY))
        ij = np.array([(i, j) for i in range(side) for j in range(side)][:n_cells], dtype=float)
        xy = ij * step + rng.uniform(-0.3, 0.3, size=ij.shape) * step
        centres = xy[rng.choice(n_cells, size=n_clusters, replace=False)]
        clusters = np.argmin(((xy[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
        X = _training_expression(genes, parents, n_cells, clusters, rng, n_clusters)
        obs = pd.DataFrame({"cell_type": [str(c) for c in clusters]}, index=[f"cell{i:06d}" for i in range(n_cells)])
        a = ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=genes))
        a.layers["imputed_count"] = X
        a.layers["normalized_count"] = X
        a.obsm["spatial"] = xy
        ref.write_reference_h5ad(d / "tissue.h5ad", a)
        edges = _base_grn_edges()
        if not full_network:
            gs = set(genes)
            edges = edges[edges["source"].isin(gs) & edges["target"].isin(gs)]
        lr = read_lr_table(ref.cellchat_csv("mouse"))
        net = pd.concat([
            pd.DataFrame({"source": edges["source"].to_numpy(), "target": edges["target"].to_numpy(),
                          "edge_type": _keys.EDGE_GRN, "weight": 1.0, "signaling": None}),
            pd.DataFrame({"source": lr["ligand"], "target": lr["receptor"], "edge_type": _keys.EDGE_LR,
                          "weight": 1.0, "signaling": lr["signaling"]}),
        ], ignore_index=True)
        net.to_parquet(d / "mouse_network.parquet", index=False)
        # the TFs each gene gets from this network (what our modulator selection picks: grn sources
        # into the gene among the genes, itself excluded) — handed to the reference as its regulators
        gs = set(genes)
        inner = edges[edges["source"].isin(gs) & edges["target"].isin(gs)]
        by_t = inner.groupby("target")["source"].apply(lambda s: sorted(set(s)))
        regs = {g: [t for t in by_t.get(g, []) if t != g] for g in genes}
        (d / "regulators.json").write_text(json.dumps(regs))
        (d / "targets.txt").write_text("\n".join(g for g in genes if regs[g]) + "\n")
        (d / "panel.json").write_text(json.dumps({"genes": genes, "role": role}))

    tag = "full" if full_network else "panel"
    return cached(f"train_g{n_genes}_n{n_cells}_s{seed}_{tag}", build)


# --------------------------------------------------------------------------------------------------
# transition field: expression, a perturbation and an embedding
# --------------------------------------------------------------------------------------------------


def transition_inputs(n_cells: int, n_genes: int, seed: int = 0, n_clusters: int = 8) -> Path:
    """``X.npy`` (cells × genes, log-normal with cluster structure), ``D.npy`` (a perturbation: a few
    hundred genes shifted, cluster-dependent, plus small noise; rounded to 3 decimals as the reference's
    field does) and ``E.npy`` (a 2-D embedding: cluster blobs)."""

    def build(d: Path) -> None:
        rng = np.random.default_rng(seed)
        cl = rng.integers(0, n_clusters, size=n_cells)
        mu = rng.normal(0.0, 1.0, size=(n_clusters, n_genes)).astype(np.float32)
        X = np.empty((n_cells, n_genes))
        D = np.zeros((n_cells, n_genes))
        moved = rng.choice(n_genes, size=max(1, n_genes // 10), replace=False)
        eff = rng.normal(0.0, 0.5, size=(n_clusters, moved.size))
        for s in range(0, n_cells, 20_000):
            e = min(n_cells, s + 20_000)
            X[s:e] = np.expm1(np.clip(mu[cl[s:e]] + 0.5 * rng.normal(size=(e - s, n_genes)), 0.0, None))
            D[s:e, moved] = eff[cl[s:e]] * (X[s:e][:, moved] + 0.1) + 0.01 * rng.normal(size=(e - s, moved.size))
        D = np.round(D, 3)
        centres = rng.normal(0.0, 6.0, size=(n_clusters, 2))
        E = centres[cl] + rng.normal(0.0, 1.0, size=(n_cells, 2))
        np.save(d / "X.npy", X)
        np.save(d / "D.npy", D)
        np.save(d / "E.npy", E)

    return cached(f"transition_n{n_cells}_g{n_genes}_s{seed}", build)

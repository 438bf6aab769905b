"""Builders of the objects tests need: small tissues, networks, betadata frames, betabases, trained runs.

One importable module (``from builders import ...``; ``tests/`` is on ``sys.path`` under pytest) instead
of each test file building these by hand. The planted-truth generator stays
:func:`spacetravlr_py.datasets.synthetic_tissue`; the builders here wrap it (written to disk, trained)
or build tiny hand-checkable objects whose every value a test can compute by hand.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from spacetravlr_py import _keys
from spacetravlr_py.betadata.frame import BetaFrame
from spacetravlr_py.config import SpaceshipConfig
from spacetravlr_py.datasets import SyntheticTissue, synthetic_tissue
from spacetravlr_py.io.anndata import Tissue

if TYPE_CHECKING:
    import anndata as ad

# --------------------------------------------------------------------------------------------------
# hand-built tissues (every value known)
# --------------------------------------------------------------------------------------------------


def make_tissue(X: np.ndarray, var_names: Sequence[str], *, obs_names: Sequence[str] | np.ndarray | None = None,
           clusters: np.ndarray | Sequence[int] | None = None, labels: list[str] | None = None,
           coords: np.ndarray | None = None, umap: np.ndarray | None = None) -> Tissue:
    """A :class:`Tissue` from its arrays.

    Defaults: cells ``c0, c1, ...``, one cluster (id 0), labels ``k0, k1, ...``, cells on a line
    (``x = i``, ``y = 0``), no UMAP.
    """
    n = X.shape[0]
    obs = np.array(obs_names if obs_names is not None else [f"c{i}" for i in range(n)], dtype=object)
    cl = np.zeros(n, np.int64) if clusters is None else np.asarray(clusters, np.int64)
    labs = labels if labels is not None else [f"k{k}" for k in range(int(cl.max()) + 1)]
    xy = coords if coords is not None else np.column_stack([np.arange(n, dtype=float), np.zeros(n)])
    return Tissue(obs_names=obs, var_names=list(var_names), coords=np.ascontiguousarray(xy, dtype=np.float64),
                  expression=np.ascontiguousarray(X, dtype=np.float64), clusters=cl, cluster_labels=labs, umap=umap)


def with_expression(t: Tissue, X: np.ndarray) -> Tissue:
    """The same cells, genes, coordinates and clusters with another expression matrix."""
    return make_tissue(X, t.var_names, obs_names=t.obs_names, clusters=t.clusters, labels=t.cluster_labels,
                  coords=t.coords, umap=t.umap)


def clustered_tissue(n: int = 240, g: int = 12, seed: int = 0) -> Tissue:
    """Three cell types (``T cell``, ``B cell``, ``Myeloid``, n/3 cells each) with distinct mean expression
    ``G0..``, a UMAP of three separated blobs and uniform coordinates on a 500 × 500 square."""
    rng = np.random.default_rng(seed)
    clusters = np.repeat(np.arange(3), n // 3)
    centres = rng.normal(size=(3, g)) * 2
    X = np.maximum(centres[clusters] + 0.5 * rng.normal(size=(n, g)), 0.0)
    umap = np.array([[0.0, 0.0], [8.0, 0.0], [4.0, 6.0]])[clusters] + rng.normal(size=(n, 2))
    coords = rng.uniform(0, 500, size=(n, 2))
    return make_tissue(X, [f"G{j}" for j in range(g)], obs_names=[f"cell{i}" for i in range(n)], clusters=clusters,
                  labels=["T cell", "B cell", "Myeloid"], coords=coords, umap=umap)


# --------------------------------------------------------------------------------------------------
# AnnData objects
# --------------------------------------------------------------------------------------------------


def small_adata(n: int = 6, g: int = 4, *, spatial_key: str | None = "spatial", coord_dim: int = 2,
                clusters: object = None, X: object = None, obs_names: list[str] | None = None) -> ad.AnnData:
    """A small AnnData: X = 1..n·g, coordinates (i, 10·i) (a third column of 7 when ``coord_dim=3``), cell
    types 'b'/'a' alternating in ``obs['cell_type']``, genes ``G0..``."""
    import anndata as ad

    X = np.arange(1.0, n * g + 1).reshape(n, g) if X is None else X
    labels = clusters if clusters is not None else ["b", "a"] * (n // 2) + ["b"] * (n % 2)
    obs = pd.DataFrame({"cell_type": pd.Categorical(labels)},
                       index=obs_names if obs_names is not None else [f"cell{i}" for i in range(n)])
    var = pd.DataFrame(index=[f"G{j}" for j in range(g)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # duplicate obs names on purpose in some tests
        a = ad.AnnData(X=X, obs=obs, var=var)
    if spatial_key:
        xy = np.column_stack([np.arange(n, dtype=float), 10.0 * np.arange(n)])
        if coord_dim == 3:
            xy = np.column_stack([xy, np.full(n, 7.0)])
        a.obsm[spatial_key] = xy
    return a


COUNT_TFS = ["Tfa", "Tfb", "Tfc"]
COUNT_LIGANDS = ["Liga", "Ligb"]
COUNT_RECEPTORS = ["Reca", "Recb"]


def counts_adata(n: int = 240, g: int = 40, *, seed: int = 0, sections: int = 0) -> ad.AnnData:
    """Poisson counts of two cell types ('A' left half, 'B' right half, ``obs['truth']``) on a jittered grid
    of spacing 10.

    Genes: the network genes (:data:`COUNT_TFS`, :data:`COUNT_LIGANDS`, :data:`COUNT_RECEPTORS`) then
    ``Gene0..``; gene ``Gene0`` is expressed only in type B, ``Gene1`` only in type A. Integer counts
    stored as float32 CSR; ``sections > 0`` adds ``obs['section']`` (``s0..``, round robin).
    """
    import anndata as ad

    rng = np.random.default_rng(seed)
    names = [*COUNT_TFS, *COUNT_LIGANDS, *COUNT_RECEPTORS]
    names += [f"Gene{i}" for i in range(g - len(names))]
    side = int(np.ceil(np.sqrt(n)))
    gx, gy = np.meshgrid(np.arange(side), np.arange(side))
    xy = np.column_stack([gx.ravel(), gy.ravel()])[:n] * 10.0 + rng.uniform(-1, 1, (n, 2))
    is_b = xy[:, 0] > xy[:, 0].mean()
    mu = rng.gamma(2.0, 1.0, (2, g))
    j0, j1 = names.index("Gene0"), names.index("Gene1")
    mu[0, j0] = 0.0  # Gene0 absent from type A
    mu[1, j1] = 0.0  # Gene1 absent from type B
    mu[1, :10] *= 4.0  # type B differs in the first genes
    lam = mu[is_b.astype(int)] * rng.uniform(0.5, 2.0, (n, 1))
    X = rng.poisson(lam).astype(np.float32)
    X[X.sum(1) == 0, 5] = 1.0  # no empty cell by accident
    obs = pd.DataFrame({"truth": pd.Categorical(np.where(is_b, "B", "A"))}, index=[f"cell{i}" for i in range(n)])
    if sections:
        obs["section"] = [f"s{i % sections}" for i in range(n)]
    a = ad.AnnData(X=sp.csr_matrix(X), obs=obs, var=pd.DataFrame(index=names))
    a.obsm["spatial"] = xy
    return a


# --------------------------------------------------------------------------------------------------
# networks
# --------------------------------------------------------------------------------------------------


def network_frame(grn: Iterable[tuple[str, str]] = (), lr: Iterable[tuple[str, str]] = (),
                  nichenet: Iterable[tuple[str, str, float]] = (), *,
                  signaling: str = _keys.SECRETED) -> pd.DataFrame:
    """Long network table (SPEC §2.2) from ``(tf, target)``, ``(ligand, receptor)`` and
    ``(ligand, tf, weight)`` tuples, in that order; every ``lr`` row gets ``signaling``."""
    rows = ([(s, t, _keys.EDGE_GRN, 1.0, None) for s, t in grn]
            + [(s, t, _keys.EDGE_LR, 1.0, signaling) for s, t in lr]
            + [(s, t, _keys.EDGE_NICHENET, w, None) for s, t, w in nichenet])
    return pd.DataFrame(rows, columns=list(_keys.NETWORK_COLUMNS))


def counts_network(tfs: Sequence[str] = COUNT_TFS, ligands: Sequence[str] = COUNT_LIGANDS,
                   receptors: Sequence[str] = COUNT_RECEPTORS, targets: Sequence[str] | None = None) -> pd.DataFrame:
    """Every TF → every target (default ``Gene2..Gene4``) and ``ligands[i]$receptors[i]`` pairs."""
    targets = targets or ["Gene2", "Gene3", "Gene4"]
    return network_frame(grn=[(tf, t) for tf in tfs for t in targets], lr=list(zip(ligands, receptors)))


# --------------------------------------------------------------------------------------------------
# betadata frames
# --------------------------------------------------------------------------------------------------


def beta_frame(gene: str, row_ids: Sequence[str], modulators: Sequence[str], coefs: np.ndarray | Sequence[Any], *,
               row_kind: str = _keys.CLUSTER_COL, intercept: np.ndarray | Sequence[float] | None = None) -> BetaFrame:
    """Betas of ``gene``: one row per cluster label (or cell id with ``row_kind="CellID"``), intercept 0
    unless given."""
    b0 = np.zeros(len(row_ids)) if intercept is None else np.asarray(intercept, dtype=np.float64)
    return BetaFrame(gene, row_kind, list(row_ids), b0, list(modulators), np.asarray(coefs, dtype=np.float64))


RANDOM_FRAME_MODULATORS = ["FOXO3", "CCL5$CCR5", "CXCL12#FOXO3", "EXTRA1", "ZERO$COL"]
"""Modulators of :func:`random_beta_frame`: a TF, an LR pair, a TF–ligand pair, an extra gene and an
all-zero LR column."""


def random_beta_frame(row_kind: str = _keys.CLUSTER_COL, n_rows: int = 3, seed: int = 0) -> BetaFrame:
    """Betas of ``PAX5`` spanning 15 orders of magnitude (``ZERO$COL`` all zero); rows ``cluster k`` or
    cell ids ``AAAC-k``."""
    mods = RANDOM_FRAME_MODULATORS
    rng = np.random.default_rng(seed)
    coefs = rng.standard_normal((n_rows, len(mods))) * 10.0 ** rng.integers(-12, 3, (n_rows, len(mods)))
    coefs[:, mods.index("ZERO$COL")] = 0.0
    ids = [f"cluster {k}" for k in range(n_rows)] if row_kind == _keys.CLUSTER_COL else [
        f"AAAC-{k}" for k in range(n_rows)]
    return BetaFrame(gene="PAX5", row_kind=row_kind, row_ids=ids, intercept=rng.standard_normal(n_rows),
                     modulators=list(mods), coefs=coefs)


# --------------------------------------------------------------------------------------------------
# arrays for transition fields and the lasso
# --------------------------------------------------------------------------------------------------


def field_inputs(n: int, g: int, seed: int = 0, *, nonneg: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(X (n, g), Δ (n, g) rounded to 3 decimals, E (n, 2))``: random expression, change and embedding."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, g))
    if nonneg:
        X = np.maximum(X, 0.0)
    D = np.round(rng.normal(size=(n, g)) * 0.3, 3)
    E = rng.normal(size=(n, 2)) * 4.0
    return X, D, E


def two_cluster_field(seed: int = 12, n: int = 150, g: int = 30) -> tuple[np.ndarray, ...]:
    """``(X, E, labels, a, b)``: ``n`` cells around mean ``a`` (label 0) and ``n`` around ``b`` (label 1),
    with an embedding whose first axis follows the position along a → b (the second is noise)."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=g) * 2
    b = rng.normal(size=g) * 2
    lab = np.repeat([0, 1], n)
    X = np.where(lab[:, None] == 0, a, b) + 0.5 * rng.normal(size=(2 * n, g))
    t = (X - a) @ (b - a) / ((b - a) @ (b - a))
    E = np.column_stack([10 * t + 0.3 * rng.normal(size=2 * n), rng.normal(size=2 * n)])
    return X, E, lab, a, b


def field_adata(n: int = 80, g: int = 10, seed: int = 14) -> tuple[ad.AnnData, np.ndarray]:
    """:func:`field_inputs` as an AnnData (``X`` = ``layers['imputed_count']``, ``obsm['X_umap']``, cells
    ``c0..``) and the change Δ."""
    import anndata as ad

    X, D, E = field_inputs(n, g, seed=seed)
    a = ad.AnnData(X=X.copy())
    a.layers[_keys.DEFAULT_LAYER] = X
    a.obsm["X_umap"] = E
    a.obs_names = [f"c{i}" for i in range(n)]
    return a, D


def clustered_regression(seed: int = 40) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(X, y, clusters, groups)`` for the per-cluster lasso: clusters 0–2 with a planted sparse signal,
    3 pure noise (low R²), 4 constant y, 5 a single cell (6 empty); 24 features in groups of 10, 8, 4, 2;
    rows interleaved."""
    rng = np.random.default_rng(seed)
    p = 24
    groups = np.repeat([0, 1, 2, 3], [10, 8, 4, 2])
    sizes = [120, 90, 150, 400, 40, 1]
    X_parts, y_parts, cl = [], [], []
    for k, m in enumerate(sizes):
        Xk = rng.standard_normal((m, p)) + rng.uniform(-1, 1, p)
        if k <= 2:
            beta = np.zeros(p)
            beta[rng.choice(p, 4, replace=False)] = rng.uniform(1, 2, 4)
            yk = Xk @ beta + 0.3 * rng.standard_normal(m) + k
        elif k == 3:
            yk = rng.standard_normal(m)
        else:
            yk = np.full(m, 0.1)
        X_parts.append(Xk)
        y_parts.append(yk)
        cl.append(np.full(m, k))
    X = np.vstack(X_parts)
    y = np.concatenate(y_parts)
    clusters = np.concatenate(cl)
    perm = rng.permutation(len(y))  # interleave the clusters
    return X[perm], y[perm], clusters[perm], groups

# --------------------------------------------------------------------------------------------------
# synthetic tissues on disk and trained runs
# --------------------------------------------------------------------------------------------------


@dataclass
class WrittenTissue:
    """A synthetic tissue written to a folder: ``tissue.h5ad`` and ``mouse_network.parquet``."""

    syn: SyntheticTissue
    h5ad: Path
    net_dir: Path

    @property
    def genes(self) -> list[str]:
        return list(self.syn.adata.var_names)

    def cli_args(self, out: Path, *extra: str) -> list[str]:
        """``spacetravlr`` flags that train this tissue into ``out`` with plain progress."""
        return ["--h5ad", str(self.h5ad), "--network-dir", str(self.net_dir), "--output-dir", str(out), "--plain",
                *extra]

    def variant(self, folder: Path, edit: Callable[[Any], None]) -> Path:
        """A copy of the tissue with ``edit(adata)`` applied, written to ``folder``; returns its h5ad path."""
        a = self.syn.adata.copy()
        edit(a)
        folder.mkdir(parents=True, exist_ok=True)
        p = folder / "tissue.h5ad"
        a.write_h5ad(p)
        return p


def write_tissue(folder: Path, **synthetic_kw: Any) -> WrittenTissue:
    """:func:`synthetic_tissue` (``synthetic_kw``) written to ``folder``."""
    syn = synthetic_tissue(**synthetic_kw)
    paths = syn.write(folder)
    return WrittenTissue(syn, paths["h5ad"], paths["network"].parent)


SLOW_GENES = Path(__file__).resolve().parent / "slow_genes"
"""A folder whose ``sitecustomize.py`` slows a subprocess down (see :func:`slow_genes_env`)."""


def slow_genes_env(delay: float, *paths: str, step_delay: float = 0.0) -> dict[str, str]:
    """Variables that make every process of a subprocess (the CLI and each worker it spawns) wait
    ``delay`` seconds after each gene's fit or screen score, and ``step_delay`` seconds after each
    perturbation step, so that a signal, key or cancel sent after the first genes or steps lands mid-run;
    the files and results are unchanged (``tests/slow_genes/sitecustomize.py``). ``paths`` come next on
    ``PYTHONPATH``, then this process's ``PYTHONPATH``."""
    path = os.pathsep.join(p for p in (str(SLOW_GENES), *paths, os.environ.get("PYTHONPATH")) if p)
    return {"PYTHONPATH": path, "SPACETRAVLR_TEST_GENE_DELAY": str(delay),
            "SPACETRAVLR_TEST_STEP_DELAY": str(step_delay)}


def run_config(data: WrittenTissue, out: Path, **overrides: Any) -> SpaceshipConfig:
    """The configuration that trains ``data`` into ``out``; ``section__key=value`` overrides more keys."""
    o: dict[str, Any] = {"data.adata_path": str(data.h5ad), "grn.network_data_dir": str(data.net_dir),
                         "execution.output_dir": str(out)}
    o.update({k.replace("__", "."): v for k, v in overrides.items()})
    return SpaceshipConfig().with_overrides(o)


@dataclass
class TrainedRun:
    """A synthetic tissue and the seed-mode training run made from it."""

    data: WrittenTissue
    run_dir: Path

    @property
    def syn(self) -> SyntheticTissue:
        return self.data.syn

    @property
    def toml(self) -> Path:
        """The run's ``spacetravlr_run_repro.toml``."""
        return self.run_dir / _keys.REPRO_TOML


def train_run(base: Path, *, config: dict[str, Any] | None = None, **synthetic_kw: Any) -> TrainedRun:
    """Write a synthetic tissue to ``base/data`` and train it (seed mode, silently) into ``base/run``.

    ``config`` holds further ``{"section.key": value}`` overrides. Fails the test when a gene failed.
    """
    from spacetravlr_py.training import train

    data = write_tissue(base / "data", **synthetic_kw)
    out = base / "run"
    cfg = run_config(data, out)
    if config:
        cfg = cfg.with_overrides(config)
    res = train(cfg)
    assert res.counts["done"] > 0 and res.counts["failed"] == 0, res.counts
    return TrainedRun(data, out)


# --------------------------------------------------------------------------------------------------
# run folders with what the report must show: full mode (per-cell betas, held-out R²), failures, orphans
# --------------------------------------------------------------------------------------------------


@dataclass
class PerCellTrainer:
    """Writes a full-mode run folder through the same files as full mode, without the CNN: the seed fit,
    then ``CellID`` betadata (each cell's cluster betas × a smooth spatial factor 1 ± 0.2) and per-cluster
    held-out R² in the log (lasso: in-sample R² − 0.05·(k+1)/K, CNN: in-sample R² − 0.02, choice by the
    larger). For tests of what reads full-mode runs (reports, interactions) when the CNN trainer is not at
    hand; the numbers are inputs of those tests, not results of a CNN.
    """

    obs_names: list[str]
    mode: str = "full"

    def prepare(self, ctx: Any) -> None:
        """Nothing run-wide."""

    def fit(self, ctx: Any, gene: str) -> Any:
        import dataclasses

        from spacetravlr_py.training import SeedTrainer

        fit = SeedTrainer().fit(ctx, gene)
        if fit.frame is None:
            return fit
        f = fit.frame
        k = np.asarray(ctx.clusters)
        xy = np.asarray(ctx.coords)
        factor = 1.0 + 0.2 * np.sin(xy[:, 0] / 97.0) * np.cos(xy[:, 1] / 131.0)
        fit.frame = BetaFrame(gene, _keys.CELLID_COL, list(self.obs_names), f.intercept[k], list(f.modulators),
                              f.coefs[k] * factor[:, None], groups=f.groups)
        n = len(fit.clusters)
        out = []
        for i, c in enumerate(fit.clusters):
            lasso, cnn = c.r2 - 0.05 * (i + 1) / n, c.r2 - 0.02
            out.append(dataclasses.replace(c, heldout_r2={"lasso": lasso, "cnn": cnn},
                                           choice="cnn" if cnn > lasso else "lasso"))
        fit.clusters = out
        return fit


def full_mode_run(base: Path, **synthetic_kw: Any) -> TrainedRun:
    """A synthetic tissue trained into ``base/run`` as a full-mode run folder (:class:`PerCellTrainer`)."""
    from spacetravlr_py.training import train

    data = write_tissue(base / "data", **synthetic_kw)
    out = base / "run"
    cfg = run_config(data, out, training__mode="full")
    res = train(cfg, trainer=PerCellTrainer([str(x) for x in data.syn.adata.obs_names]))
    assert res.counts["done"] > 0 and res.counts["failed"] == 0, res.counts
    return TrainedRun(data, out)


@dataclass
class FailingTrainer:
    """The seed trainer, except that the genes in ``fail`` raise (the run records them as failed)."""

    fail: tuple[str, ...]
    mode: str = "seed"

    def prepare(self, ctx: Any) -> None:
        """Nothing run-wide."""

    def fit(self, ctx: Any, gene: str) -> Any:
        from spacetravlr_py.training import SeedTrainer

        if gene in self.fail:
            raise FloatingPointError(f"planted failure of {gene}")
        return SeedTrainer().fit(ctx, gene)


def problem_run(base: Path, *, fail: Sequence[str] = ("Pax5",), constant: Sequence[str] = ("Stat3", "Nfkb1"),
                **synthetic_kw: Any) -> TrainedRun:
    """A run with failed genes (``fail`` raise in the trainer) and orphans (``constant`` genes have the same
    value in every cell, so there is nothing to fit)."""
    from spacetravlr_py.training import train

    data = write_tissue(base / "data", **synthetic_kw)

    def flatten(a: Any) -> None:
        for g in constant:
            j = list(a.var_names).index(g)
            for m in [a.X, *a.layers.values()]:
                m[:, j] = 1.5

    h5ad = data.variant(base / "flat", flatten)
    data = WrittenTissue(data.syn, h5ad, data.net_dir)
    out = base / "run"
    res = train(run_config(data, out), trainer=FailingTrainer(tuple(fail)))
    assert res.counts["failed"] == len(fail) and res.counts["orphan"] >= len(constant), res.counts
    return TrainedRun(data, out)


# --------------------------------------------------------------------------------------------------
# a planted paracrine circuit for neighbour effects
# --------------------------------------------------------------------------------------------------

PLANTED_BETA = 1.0
"""β of ``Lig$Rec`` in the target ``Tgt`` of the planted neighbour tissue."""


def planted_neighbour_tissue(n_x: int = 36, n_y: int = 18, spacing: float = 15.0,
                             seed: int = 0) -> tuple[Tissue, list[BetaFrame]]:
    """Senders (type ``S``, the left strip x < 75) express the ligand ``Lig``; the rest of the tissue mixes
    receivers (``R``, expressing the receptor ``Rec``) and bystanders (``B``, no receptor) at random.

    Planted models (``Cluster`` rows S, R, B): ``Tgt = 0.5·Tf + PLANTED_BETA·RL[Lig]·Rec`` in every type
    (so only cells with the receptor can respond to the ligand; β small enough that no cell is clipped at
    0), ``Down = 0.3·Tgt`` (a gene downstream of the target inside the cell), ``Lig = 0.2·Tf`` (the
    ligand's own model, so it is a trained modulator). Knocking ``Lig`` out in ``S`` reaches ``R`` cells
    only, through ``Lig``, more strongly near the strip.
    """
    rng = np.random.default_rng(seed)
    gx, gy = np.meshgrid(np.arange(n_x), np.arange(n_y))
    xy = np.column_stack([gx.ravel(), gy.ravel()]).astype(float) * spacing + rng.uniform(-2, 2, (n_x * n_y, 2))
    labels = ["B", "R", "S"]
    kind = np.where(xy[:, 0] < 75.0, 2, rng.integers(0, 2, len(xy)))  # 2 = S; else 0 = B / 1 = R
    genes = ["Tf", "Lig", "Rec", "Tgt", "Down"]
    X = np.zeros((len(xy), len(genes)))
    X[:, 0] = 1.0 + 0.1 * rng.random(len(xy))
    X[kind == 2, 1] = 5.0
    X[kind == 1, 2] = 2.0
    X[:, 3] = 1.0 + 0.1 * rng.random(len(xy))
    X[:, 4] = 0.5 + 0.1 * rng.random(len(xy))
    t = make_tissue(X, genes, clusters=kind, labels=labels, coords=xy)
    frames = [beta_frame("Tgt", labels, ["Tf", "Lig$Rec"], [[0.5, PLANTED_BETA]] * 3),
              beta_frame("Down", labels, ["Tgt"], [[0.3]] * 3),
              beta_frame("Lig", labels, ["Tf"], [[0.2]] * 3)]
    return t, frames

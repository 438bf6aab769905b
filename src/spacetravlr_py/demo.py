"""The whole pipeline on the built-in synthetic tissue, callable from Python (``spacetravlr demo`` prints it).

synthetic tissue (planted network) → received ligands → seed training → knockouts of the planted TF and
ligand that reach the most genes → transition fields → (with PyTorch) full mode on a second tissue whose
betas vary within cell types, seed vs full per-cell recovery, with files in one output folder::

    >>> from spacetravlr_py.demo import run_demo
    >>> summary = run_demo("demo_output", n_cells=600)            # doctest: +SKIP
    >>> summary.beta_pearson_r, [k.gene for k in summary.knockouts]  # doctest: +SKIP
    (0.96..., ['Prdm1', 'Il6'])
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _keys
from .naming import TF, parse_modulator

if TYPE_CHECKING:
    from .datasets import SyntheticTissue
    from .perturbation.session import RunSession
    from .training.reporters import Reporter

@dataclass(frozen=True)
class Knockout:
    """One knockout of the demo: the gene, its planted role, the most affected genes and the files."""

    gene: str
    role: str
    """``"TF"`` or ``"ligand"``."""
    top_affected: list[tuple[str, float]]
    """``(gene, mean |Δ|)`` of the 5 most affected genes."""
    files: dict[str, Path]
    seconds: float


@dataclass(frozen=True)
class FullModeStage:
    """The demo's full-mode stage: seed and full mode on a tissue whose true betas vary within cell types."""

    out_dir: Path
    spatial_betas: float
    epochs: int
    seconds_seed: float
    seconds_full: float
    recovery: dict[str, dict[str, float]]
    """``{"seed": ..., "full": ...}`` of :func:`~spacetravlr_py.training.cnn_report.per_cell_recovery`."""
    heldout: dict[str, Any]
    """:func:`~spacetravlr_py.training.cnn_report.heldout_summary` of the full run (``per_gene`` left out)."""


@dataclass
class DemoSummary:
    """What :func:`run_demo` did and where its files are."""

    out_dir: Path
    tissue: Path
    network: Path
    true_betadata: Path
    run_dir: Path
    n_cells: int
    n_genes: int
    network_edges: dict[str, int]
    """Edges per ``edge_type`` of the generated network."""
    trained: dict[str, int]
    """``done``, ``orphan``, ``failed`` gene counts of the training run."""
    beta_pearson_r: float | None = None
    """Pearson r of planted vs fitted betas of the target genes (None when nothing to compare)."""
    n_beta_values: int = 0
    knockouts: list[Knockout] = field(default_factory=list)
    full_mode: FullModeStage | None = None
    """None when skipped (``full=False`` or PyTorch not installed)."""
    seconds: float = 0.0

    @property
    def ko_dir(self) -> Path:
        return self.out_dir / _keys.DEMO_KO_DIR

    def as_json(self) -> dict[str, Any]:
        """The content of ``demo_summary.json``."""
        out: dict[str, Any] = {
            "tissue": str(self.tissue), "run": str(self.run_dir),
            "knockouts": {k.gene: {"role": k.role, "top_affected": k.top_affected,
                                   "files": [str(p) for p in k.files.values()]} for k in self.knockouts}}
        if self.full_mode is not None:
            f = self.full_mode
            out["full_mode"] = {"dir": str(f.out_dir), "spatial_betas": f.spatial_betas, "epochs": f.epochs,
                                "recovery": f.recovery, "heldout": f.heldout}
        return out


def beta_recovery(syn: SyntheticTissue, run_dir: str | os.PathLike[str]) -> tuple[float | None, int]:
    """Pearson r between planted and fitted betas of the target genes, over the modulators both have.

    Returns
    -------
    (r, n)
        r is None when no value can be compared; n is the number of (cluster, modulator) values.
    """
    from .betadata.frame import betadata_path, read_betadata

    true_vals: list[float] = []
    fit_vals: list[float] = []
    for g in syn.roles["targets"]:
        p = betadata_path(run_dir, g)
        if not p.exists():
            continue
        fit = read_betadata(p)
        tru = syn.betas[g]
        for j, m in enumerate(tru.modulators):
            if m in fit.modulators:
                k = fit.modulators.index(m)
                true_vals.extend(tru.coefs[:, j])
                fit_vals.extend(fit.coefs[:, k])
    if not true_vals:
        return None, 0
    return float(np.corrcoef(true_vals, fit_vals)[0, 1]), len(true_vals)


def most_used_modulators(planted: dict[str, list[str]] | Iterable[list[str]]) -> tuple[str, str]:
    """The TF and the ligand that modulate the most genes (ties: alphabetical first).

    ``planted`` maps genes to modulator names (``TF``, ``L$R``, ``L#TF``); a ligand counts once per
    term it appears in.
    """
    tf_uses: Counter[str] = Counter()
    lig_uses: Counter[str] = Counter()
    for mods in (planted.values() if isinstance(planted, dict) else planted):
        for m in mods:
            term = parse_modulator(m)
            (tf_uses if term.kind == TF else lig_uses)[term.first] += 1
    tf = max(sorted(tf_uses), key=lambda g: tf_uses[g])
    lig = max(sorted(lig_uses), key=lambda g: lig_uses[g])
    return tf, lig


def knockout(session: RunSession, gene: str, role: str, ko_dir: Path) -> Knockout:
    """Knock ``gene`` out in all cells, write the expression, summary, field and figures under ``ko_dir``."""
    from .perturbation.session import write_result
    from .report import write_field_outputs

    res = session.run(gene, 0.0)
    files = write_result(res, ko_dir / f"{gene}_ko.feather")
    files.update(write_field_outputs(res, ko_dir / f"{gene}_ko"))
    return Knockout(gene=gene, role=role, top_affected=res.top_genes(5), files=files,
                    seconds=float(res.timings["total_s"]))


def _have_torch() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def _say(emit: Callable[[str], None] | None, line: str) -> None:
    if emit is not None:
        emit(line)


def _edge_counts(syn: SyntheticTissue) -> dict[str, int]:
    return {str(k): int(v) for k, v in syn.network.edge_type.value_counts().items()}


def _make_tissue(out: Path, n_cells: int, seed: int, emit: Callable[[str], None] | None,
                 n_steps: int = 5) -> tuple[SyntheticTissue, dict[str, Path]]:
    from .datasets import synthetic_tissue

    _say(emit, f"[1/{n_steps}] synthetic tissue: {n_cells} cells, seed {seed}")
    syn = synthetic_tissue(n_cells=n_cells, seed=seed)
    paths = syn.write(out / _keys.DEMO_DATA_DIR)
    _say(emit, f"      {syn.adata.n_obs} cells × {syn.adata.n_vars} genes, 5 clusters; network edges "
               f"{_edge_counts(syn)}")
    _say(emit, f"      wrote {paths['h5ad']}, {paths['network']}, planted betas in {paths['true_betadata']}")
    return syn, paths


def _train(paths: dict[str, Path], run_dir: Path, n_parallel: int, emit: Callable[[str], None] | None,
           reporter: Reporter | None, n_steps: int = 5) -> dict[str, int]:
    from .config import SpaceshipConfig
    from .training import train

    _say(emit, f"[2/{n_steps}] training (seed mode: received ligands + per-cluster sparse group lasso)")
    cfg = SpaceshipConfig().with_overrides({
        "data.adata_path": str(paths["h5ad"]),
        "grn.network_data_dir": str(paths["network"].parent),
        "execution.output_dir": str(run_dir),
        "execution.n_parallel": n_parallel,
    }, source="demo")
    run = train(cfg, reporter=reporter)
    counts = {k: int(run.counts[k]) for k in ("done", "orphan", "failed")}
    _say(emit, f"      {counts['done']} genes trained, {counts['orphan']} orphans, "
               f"{counts['failed']} failed → {run_dir}")
    return counts


FULL_EPOCHS = 10
FULL_SPATIAL_BETAS = 0.5
FULL_SPATIAL_DIM = 16
FULL_BATCH_SIZE = 32
FULL_LEARNING_RATE = 3e-3


def full_mode_stage(out: Path, n_cells: int, seed: int, n_parallel: int, emit: Callable[[str], None] | None,
                    reporter: Reporter | None) -> FullModeStage:
    """Seed and full mode on the target genes of a tissue whose betas vary smoothly within cell types.

    The tissue is :func:`~spacetravlr_py.datasets.synthetic_tissue` with ``spatial_betas =``
    :data:`FULL_SPATIAL_BETAS`; full mode runs :data:`FULL_EPOCHS` epochs on
    :data:`FULL_SPATIAL_DIM`² maps (fast enough for a demo). Writes ``data/``, ``seed/`` and ``full/``
    under ``out``.
    """
    from .betadata.frame import betadata_path, read_betadata
    from .config import SpaceshipConfig
    from .datasets import synthetic_tissue
    from .training import train
    from .training.cnn_report import heldout_summary, per_cell_recovery

    syn = synthetic_tissue(n_cells=n_cells, seed=seed, spatial_betas=FULL_SPATIAL_BETAS)
    paths = syn.write(out / _keys.DEMO_DATA_DIR)
    targets = syn.roles["targets"]
    obs, labels = list(syn.adata.obs_names), [str(c) for c in syn.adata.obs[_keys.DEFAULT_CLUSTER_ANNOT]]
    recovery: dict[str, dict[str, float]] = {}
    seconds: dict[str, float] = {}
    for mode in ("seed", "full"):
        cfg = SpaceshipConfig().with_overrides({
            "data.adata_path": str(paths["h5ad"]), "grn.network_data_dir": str(paths["network"].parent),
            "execution.output_dir": str(out / mode), "execution.n_parallel": n_parallel, "training.mode": mode,
            "training.genes": targets, "training.epochs": FULL_EPOCHS, "spatial.spatial_dim": FULL_SPATIAL_DIM,
            "training.learning_rate": FULL_LEARNING_RATE, "cnn.batch_size": FULL_BATCH_SIZE,
        }, source="demo")
        t0 = time.perf_counter()
        train(cfg, reporter=reporter)
        seconds[mode] = time.perf_counter() - t0
        fitted = {g: read_betadata(betadata_path(out / mode, g)) for g in targets
                  if betadata_path(out / mode, g).exists()}
        recovery[mode] = per_cell_recovery(syn.cell_betas, fitted, obs, labels)
    held = heldout_summary(out / "full")
    held.pop("per_gene")
    return FullModeStage(out_dir=out, spatial_betas=FULL_SPATIAL_BETAS, epochs=FULL_EPOCHS,
                         seconds_seed=seconds["seed"], seconds_full=seconds["full"], recovery=recovery, heldout=held)


def _report_full(stage: FullModeStage, emit: Callable[[str], None] | None) -> None:
    r, h = stage.recovery, stage.heldout
    _say(emit, f"      seed {stage.seconds_seed:.1f}s, full {stage.seconds_full:.1f}s → {stage.out_dir}")
    for mode in ("seed", "full"):
        m = r[mode]
        _say(emit, f"      {mode:<4} per-cell betas vs truth: within-cell-type r = {m['within_cluster_corr']:.3f}, "
                   f"r = {m['corr']:.3f}, relative MSE {m['relative_mse']:.3g}")
    if h.get("fits_heldout"):
        _say(emit, f"      held-out (test-cell) R² of {h['fits_heldout']} cluster fits: lasso "
                   f"{h['mean_r2_lasso_heldout']:.3f}, CNN {h['mean_r2_cnn_heldout']:.3f}; CNN kept in "
                   f"{h['cnn_chosen']}, lasso in the others")


def run_demo(out_dir: str | os.PathLike[str] = "demo_output", *, n_cells: int = 3000, seed: int = 0,
             n_parallel: int = 1, emit: Callable[[str], None] | None = None,
             reporter: Reporter | None = None, full: bool = True) -> DemoSummary:
    """Generate a synthetic tissue with a planted network and run the whole pipeline on it.

    Writes ``data/`` (tissue, network, planted betas), ``run/`` (betadata), ``perturbations/``
    (knockout expression, fields, figures) and ``demo_summary.json`` under ``out_dir``.

    Parameters
    ----------
    out_dir
        Output folder (created).
    n_cells, seed
        Size and random seed of the tissue.
    n_parallel
        Training worker processes.
    emit
        Receives one progress line at a time (e.g. ``print``); None is silent.
    reporter
        Hears the training run's events (default: Python logging; ``spacetravlr demo`` passes a quiet
        console reporter).
    full
        Run the full-mode stage (:func:`full_mode_stage`, under ``out_dir/full_mode``) when PyTorch is
        installed.

    Returns
    -------
    DemoSummary
    """
    from .io.atomic import atomic_write_text
    from .perturbation.session import RunSession

    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    n_steps = 6 if full and _have_torch() else 5
    syn, paths = _make_tissue(out, n_cells, seed, emit, n_steps)
    run_dir = out / _keys.DEMO_RUN_DIR
    summary = DemoSummary(out_dir=out, tissue=paths["h5ad"], network=paths["network"],
                          true_betadata=paths["true_betadata"], run_dir=run_dir, n_cells=syn.adata.n_obs,
                          n_genes=syn.adata.n_vars, network_edges=_edge_counts(syn),
                          trained=_train(paths, run_dir, n_parallel, emit, reporter, n_steps))
    summary.beta_pearson_r, summary.n_beta_values = beta_recovery(syn, run_dir)
    if summary.beta_pearson_r is not None:
        _say(emit, f"      planted vs fitted betas of the target genes: Pearson r = {summary.beta_pearson_r:.3f} "
                   f"({summary.n_beta_values} values)")
    tf, lig = most_used_modulators(syn.planted)
    session = RunSession.open(run_dir / _keys.REPRO_TOML)
    for step, gene, role in ((3, tf, "TF"), (4, lig, "ligand")):
        _say(emit, f"[{step}/{n_steps}] knockout of the planted {role} {gene} (all cells, 4 propagation steps)")
        ko = knockout(session, gene, role, summary.ko_dir)
        summary.knockouts.append(ko)
        _say(emit, "      most affected genes (mean |Δ|): " + ", ".join(f"{g} {v:.3g}" for g, v in ko.top_affected))
        _say(emit, f"      {ko.seconds:.2f}s; wrote {len(ko.files)} files to {summary.ko_dir}")
    _say(emit, f"[5/{n_steps}] transition fields: "
               + ", ".join(str(summary.ko_dir / f"{g}_ko_umap_field.png") for g in (tf, lig)))
    if n_steps == 6:
        _say(emit, f"[6/6] full mode (per-cell CNN betas, {FULL_EPOCHS} epochs) on a tissue whose betas vary "
                   f"within cell types (spatial_betas {FULL_SPATIAL_BETAS})")
        summary.full_mode = full_mode_stage(out / _keys.DEMO_FULL_DIR, n_cells, seed, n_parallel, emit, reporter)
        _report_full(summary.full_mode, emit)
    atomic_write_text(out / _keys.DEMO_SUMMARY_JSON, json.dumps(summary.as_json(), indent=1, default=str))
    summary.seconds = time.perf_counter() - t0
    _say(emit, f"done in {summary.seconds:.1f}s; outputs in {out} (summary: {out / _keys.DEMO_SUMMARY_JSON})")
    return summary

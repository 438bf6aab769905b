"""Train one target gene: modulators → design matrix → per-cluster sparse group lasso → files.

Outputs in the run folder (all written atomically):
``{gene}_betadata.feather`` (or ``{gene}.orphan`` when there is nothing to fit or every beta is 0) and
``log/{gene}.log``.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import _keys
from ..io.atomic import atomic_write_text
from ..io.betadata import BetaFrame, betadata_path, write_betadata
from ..modulators import Modulators
from . import locks
from .context import TrainingContext

DONE, ORPHAN, FAILED, SKIPPED, BUSY = "done", "orphan", "failed", "skipped", "busy"


@dataclass
class GeneOutcome:
    """What happened to one gene (sent back to the parent for progress and the manifest)."""

    gene: str
    status: str
    seconds: float = 0.0
    mean_r2: float | None = None
    n_modulators: int = 0
    n_clusters_kept: int = 0
    reason: str = ""
    worker: int = 0
    extra: dict[str, float] = field(default_factory=dict)


def orphan_path(out_dir: Path, gene: str) -> Path:
    return out_dir / _keys.ORPHAN_FILE.format(gene=gene)


def log_path(out_dir: Path, gene: str) -> Path:
    return out_dir / _keys.LOG_DIR / _keys.GENE_LOG.format(gene=gene)


def is_finished(out_dir: Path, gene: str) -> bool:
    """A gene is finished when its betadata or orphan file exists (incremental restarts skip it)."""
    return betadata_path(out_dir, gene).exists() or orphan_path(out_dir, gene).exists()


def _write_orphan(out_dir: Path, gene: str, reason: str) -> None:
    atomic_write_text(log_path(out_dir, gene), f"gene\t{gene}\nstatus\torphan\nreason\t{reason}\n")
    atomic_write_text(orphan_path(out_dir, gene), "")


def split_design(ctx: TrainingContext, mods: Modulators) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The target's own columns (TF, ``L#TF``, extra) as ``XS`` and, for every feature in
    :attr:`Modulators.names` order, where it lives: ``(kind, col)`` with kind 0 = ``XS``, 1 = the run's
    shared ligand–receptor columns. Equivalent to :func:`~spacetravlr_py.modulators.design_matrix`."""
    own: list[np.ndarray] = [ctx.gene(t) for t in mods.tfs]
    kind = [0] * len(mods.tfs)
    col = list(range(len(mods.tfs)))
    kind += [1] * len(mods.lr_pairs)
    col += [ctx.lr_column(p) for p in mods.lr_pairs]
    for l, t in mods.tfl_pairs:
        kind.append(0)
        col.append(len(own))
        own.append(ctx.received_of([l])[:, 0] * ctx.gene(t))
    for e in mods.extras:
        kind.append(0)
        col.append(len(own))
        own.append(ctx.gene(e))
    n = ctx.expression.shape[0]
    XS = np.empty((n, len(own)))
    for j, v in enumerate(own):
        XS[:, j] = v
    return XS, np.array(kind, dtype=np.int64), np.array(col, dtype=np.int64)


def _remove_temporaries(out_dir: Path, gene: str) -> None:
    """Temporary files of ``gene`` left by a dead process whose lock this process took over."""
    import contextlib
    import glob

    g = glob.escape(gene)
    for folder, pattern in ((out_dir, f".{g}{_keys.BETADATA_SUFFIX}.feather.*.tmp"), (out_dir, f".{g}.orphan.*.tmp"),
                            (out_dir / _keys.LOG_DIR, f".{g}.log.*.tmp")):
        for f in folder.glob(pattern):
            with contextlib.suppress(FileNotFoundError):
                f.unlink()


def fit_gene(ctx: TrainingContext, gene: str) -> tuple[BetaFrame | None, str, list[str]]:
    """Fit ``gene``; return (frame or None for an orphan, orphan reason, log lines)."""
    from ..models.fista import fit_clusters_split

    mods = ctx.modulators(gene)
    if mods.is_orphan:
        return None, "no modulators in the network", []
    y = np.ascontiguousarray(ctx.gene(gene), dtype=np.float64)
    if np.ptp(y) == 0.0:
        return None, f"constant expression ({y[0]:g} in every cell)", []
    XS, kind, col = split_design(ctx, mods)
    f = ctx.fit
    res = fit_clusters_split(XS, ctx.shared, kind, col, y, ctx.clusters, mods.groups, l1_reg=f.l1_reg,
                             group_reg=f.group_reg, group_reg_scaling=f.group_reg_scaling, n_iter=f.n_iter,
                             tol=f.tol, score_threshold=f.score_threshold, n_clusters=len(ctx.cluster_labels))
    frame = BetaFrame(gene=gene, row_kind=_keys.CLUSTER_COL, row_ids=list(ctx.cluster_labels),
                      intercept=res.intercept, modulators=mods.names, coefs=res.coef, groups=mods.groups)
    lines = ["cluster\tlabel\tn_cells\tn_modulators\tr2\tmse\titerations\tconverged\tkept"]
    for k, lab in enumerate(ctx.cluster_labels):
        lines.append(f"{k}\t{lab}\t{res.n_cells[k]}\t{mods.n}\t{res.r2[k]:.6g}\t{res.mse[k]:.6g}\t"
                     f"{res.n_iter[k]}\t{bool(res.converged[k])}\t{not bool(res.gated[k])}")
    if frame.is_all_zero():
        return None, "every cluster failed the R² gate (all betas zero)", lines
    return frame, "", lines


def train_gene(ctx: TrainingContext, gene: str, worker: int = 0) -> GeneOutcome:
    """Lock, fit and write one gene; never leaves a partial file or a lock behind on error."""
    out = ctx.out_dir
    if is_finished(out, gene):
        return GeneOutcome(gene, SKIPPED, worker=worker)
    t0 = time.perf_counter()
    try:
        # locked inside the try: an interrupt right after taking the lock still releases it (release
        # only removes a lock this process owns)
        got = locks.acquire(out, gene, ctx.stale_lock_secs)
        if got is None:
            return GeneOutcome(gene, BUSY, worker=worker)
        if got == "reclaimed":
            _remove_temporaries(out, gene)
        if is_finished(out, gene):  # finished by another process between the check and the lock
            return GeneOutcome(gene, SKIPPED, worker=worker)
        try:
            frame, reason, lines = fit_gene(ctx, gene)
        except Exception as e:
            atomic_write_text(log_path(out, gene), f"gene\t{gene}\nstatus\tfailed\n"
                              f"error\t{e.__class__.__name__}: {e}\n\n{traceback.format_exc()}")
            return GeneOutcome(gene, FAILED, time.perf_counter() - t0,
                               reason=f"{e.__class__.__name__}: {e}", worker=worker)
        n_mods = ctx.modulators(gene).n
        if frame is None:
            if lines:
                atomic_write_text(log_path(out, gene), "\n".join(lines) + f"\nstatus\torphan\nreason\t{reason}\n")
                atomic_write_text(orphan_path(out, gene), "")
            else:
                _write_orphan(out, gene, reason)
            return GeneOutcome(gene, ORPHAN, time.perf_counter() - t0, n_modulators=n_mods, reason=reason,
                               worker=worker)
        r2 = [float(line.split("\t")[4]) for line in lines[1:]]
        kept = [line.split("\t")[8] == "True" for line in lines[1:]]
        atomic_write_text(log_path(out, gene), "\n".join(lines) + "\nstatus\tdone\n")
        write_betadata(betadata_path(out, gene), frame)
        r2_kept = [r for r, k in zip(r2, kept) if k]
        return GeneOutcome(gene, DONE, time.perf_counter() - t0,
                           mean_r2=float(np.mean(r2_kept)) if r2_kept else None, n_modulators=n_mods,
                           n_clusters_kept=int(sum(kept)), worker=worker)
    finally:
        locks.release(out, gene)

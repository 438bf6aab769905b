"""One gene in a run folder: lock it, fit it with a trainer, write its files.

Outputs (all written atomically, the betadata or orphan marker last, so a gene with either is complete):
``{gene}_betadata.feather`` (or ``{gene}.orphan`` when there is nothing to fit or every beta is 0),
``log/{gene}.log`` and any artifacts of the trainer (e.g. CNN weights).

:func:`train_gene` does all three steps in the calling process (serial and process executors). A
distributed executor splits them: :func:`claim` and :func:`commit` / :func:`record_failure` on the
client, ``trainer.fit`` on a worker that needs no access to the folder.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

from ..io.atomic import atomic_write_bytes, atomic_write_text
from ..io.betadata import write_betadata
from ..rundir import RunDir, locks
from .context import TrainingContext
from .results import BUSY, DONE, FAILED, ORPHAN, SKIPPED, GeneFit, GeneOutcome
from .trainer import Trainer


@dataclass
class GeneJob:
    """What every gene of a run shares: the inputs, the trainer and the folder it writes to."""

    ctx: TrainingContext
    trainer: Trainer
    run_dir: RunDir
    stale_lock_secs: float = 0.0


def claim(rd: RunDir, gene: str, stale_lock_secs: float = 0.0) -> str:
    """Take ``gene``'s lock: :data:`DONE` when this process may train it, :data:`SKIPPED` when it is
    finished already, :data:`BUSY` when another process holds it. Release with :func:`locks.release`."""
    if rd.is_finished(gene):
        return SKIPPED
    got = locks.acquire(rd.root, gene, stale_lock_secs)
    if got is None:
        return BUSY
    if got == "reclaimed":  # its dead owner may have left temporary files
        rd.remove_temporaries(gene)
    if rd.is_finished(gene):  # finished by another process between the check and the lock
        locks.release(rd.root, gene)
        return SKIPPED
    return DONE


def commit(rd: RunDir, fit: GeneFit, seconds: float, worker: int = 0) -> GeneOutcome:
    """Write a fitted gene's log, artifacts and betadata (or orphan marker), in that order."""
    gene = fit.gene
    status = DONE if fit.frame is not None else ORPHAN
    atomic_write_text(rd.log(gene), fit.log_text(status))
    for rel, data in fit.artifacts.items():
        atomic_write_bytes(rd.artifact(rel), data)
    if fit.frame is None:
        atomic_write_text(rd.orphan(gene), "")
        return GeneOutcome(gene, ORPHAN, seconds, n_modulators=fit.n_modulators, reason=fit.reason,
                           worker=worker, clusters=fit.clusters, families=fit.families)
    write_betadata(rd.betadata(gene), fit.frame)
    return GeneOutcome(gene, DONE, seconds, mean_r2=fit.mean_r2, n_modulators=fit.n_modulators,
                       n_clusters_kept=fit.n_clusters_kept, worker=worker, clusters=fit.clusters,
                       families=fit.families)


def record_failure(rd: RunDir, gene: str, error: str, details: str, seconds: float, worker: int = 0) -> GeneOutcome:
    """Write the log of a gene whose fit raised (``error``: one line; ``details``: the traceback)."""
    atomic_write_text(rd.log(gene), f"gene\t{gene}\nstatus\tfailed\nerror\t{error}\n\n{details}")
    return GeneOutcome(gene, FAILED, seconds, reason=error, worker=worker)


def fit_or_error(trainer: Trainer, ctx: TrainingContext, gene: str) -> GeneFit | tuple[str, str]:
    """``trainer.fit`` or, when it raises, ``(one-line error, traceback)`` (interrupts propagate)."""
    try:
        return trainer.fit(ctx, gene)
    except Exception as e:
        return f"{e.__class__.__name__}: {e}", traceback.format_exc()


def train_gene(job: GeneJob, gene: str, worker: int = 0,
               on_start: Callable[[str, int], None] | None = None) -> GeneOutcome:
    """Lock, fit and write one gene; never leaves a partial file or a lock behind, whatever happens."""
    rd = job.run_dir
    if rd.is_finished(gene):
        return GeneOutcome(gene, SKIPPED, worker=worker)
    t0 = time.perf_counter()
    try:
        # locked inside the try: an interrupt right after taking the lock still releases it (release
        # only removes a lock this process owns)
        state = claim(rd, gene, job.stale_lock_secs)
        if state != DONE:
            return GeneOutcome(gene, state, worker=worker)
        if on_start is not None:
            on_start(gene, worker)
        res = fit_or_error(job.trainer, job.ctx, gene)
        if isinstance(res, tuple):
            return record_failure(rd, gene, res[0], res[1], time.perf_counter() - t0, worker)
        return commit(rd, res, time.perf_counter() - t0, worker)
    finally:
        locks.release(rd.root, gene)

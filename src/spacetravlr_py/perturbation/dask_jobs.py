"""Batch perturbations and screens on a Dask cluster (``spacetravlr-perturb --batch-toml ... --scheduler
ADDR``, ``spacetravlr-perturb screen --scheduler ADDR``).

A screen ships the opened run once per worker; each task perturbs one gene and returns its row of the
table (a few hundred bytes), which is ranked here as in a local screen.

The opened run — tissue, Betabase and the prepared perturbation engine of every spatial setting of the
batch — travels once to each worker (:class:`~spacetravlr_py.scaleout.Shipment`). The client resolves
each job's cells (it reads the cells files), sends the genes, values and cell mask, and writes the
outputs: a task returns only the simulated expression (``delta = expression − x0`` is recomputed here,
bit for bit), so workers need neither the run folder nor the output folder. Each task runs with one
BLAS / numba thread; the files equal a local run's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import scaleout
from .batch import BatchJob, job_scope, prepare_perturbers, spatial_key, with_beta_scale
from .propagate import Perturber, PerturbResult
from .result import HeldColumns
from .screen import GeneScore, GeneTask, score_gene
from .session import RunSession, write_result

Slim = tuple[list[HeldColumns], list[str], list[float], np.ndarray, int, str, dict[str, float],
             list[dict[str, float]]]
"""What a task returns: the genes that moved (values and Δ), targets, desired, scope, n_propagation,
scope label, timings, steps."""


def job_task(perturbers: dict[Any, Perturber], key: Any, genes: list[str], desired: list[float],
             mask: np.ndarray | None, label: str, n_propagation: int | None,
             beta_scale_factor: float | None) -> Slim:
    """On a worker: one batch job on the shipped engines (``mask`` None = every cell)."""
    p = with_beta_scale(perturbers[key], beta_scale_factor)
    res = p.run(genes, desired, scope=mask, scope_label=label, n_propagation=n_propagation)
    held = [HeldColumns(h.genes, h.values, delta=h.delta_block(slice(None))) for h in res.held]
    return (held, res.targets, res.desired, res.scope, res.n_propagation, res.scope_label,
            res.timings, res.steps)


def _result(session: RunSession, slim: Slim) -> PerturbResult:
    held, targets, desired, scope, n_prop, label, timings, steps = slim
    return PerturbResult(tissue=session.tissue, held=held, targets=targets, desired=desired, scope=scope,
                         n_propagation=n_prop, scope_label=label,
                         timings=timings, steps=steps)


def run_batch_on(scheduler: str, session: RunSession, jobs: Sequence[BatchJob], *,
                 on_done: Callable[[BatchJob, PerturbResult, dict[str, Path]], Any] | None = None,
                 say: Callable[[str], None] | None = None, where: str = "--scheduler"
                 ) -> list[tuple[BatchJob, PerturbResult, dict[str, Path]]]:
    """Run ``jobs`` on the Dask cluster ``scheduler`` (``tcp://HOST:PORT`` or ``local:N``).

    Returns the jobs with their results and written paths, in job order; ``on_done`` is called (in this
    thread) as each job's files are written.
    """
    prepared = prepare_perturbers(session, jobs)
    calls = []
    for job in jobs:  # cells files are read here: workers need no filesystem
        mask, label = job_scope(session, job)
        calls.append((spatial_key(job), job.genes, job.desired, None if mask.all() else mask, label,
                      job.n_propagation, job.beta_scale_factor))
    out: list[tuple[BatchJob, PerturbResult, dict[str, Path]] | None] = [None] * len(jobs)
    with scaleout.connect(scheduler, where=where, say=say) as client:
        shipment = scaleout.Shipment(client, prepared)
        try:
            for i, slim in scaleout.map_shipped(client, shipment, job_task, calls, label="spacetravlr-perturb"):
                res = _result(session, slim)
                paths = write_result(res, jobs[i].out)
                out[i] = (jobs[i], res, paths)
                if on_done is not None:
                    on_done(jobs[i], res, paths)
        finally:
            shipment.close()
    return [r for r in out if r is not None]


def screen_task(session: RunSession, task: GeneTask) -> GeneScore:
    """On a worker: one gene of a screen (its score, a few hundred bytes)."""
    return score_gene(session.perturber, task)


def screen_scores_on(scheduler: str, session: RunSession, tasks: Sequence[GeneTask], *,
                     where: str = "--scheduler") -> Iterator[GeneScore]:
    """Scores of a screen computed on the Dask cluster ``scheduler``, as they finish. The run is shipped
    without its folder path: workers need no filesystem."""
    calls = [(task,) for task in tasks]
    with scaleout.connect(scheduler, where=where) as client:
        shipment = scaleout.Shipment(client, dataclasses.replace(session, run_dir=Path()))
        try:
            for _, score in scaleout.map_shipped(client, shipment, screen_task, calls, label="spacetravlr-screen"):
                yield score
        finally:
            shipment.close()


@dataclass
class DaskScreen:
    """A screen executor (:class:`~.screen_run.ScreenExecutor`) on the Dask cluster ``scheduler``: the run
    is shipped once per worker, each task scores one gene."""

    scheduler: str
    session: RunSession
    n_workers: int = 1

    def map(self, tasks: Sequence[GeneTask]) -> Iterator[GeneScore]:
        yield from screen_scores_on(self.scheduler, self.session, tasks)

"""Training on a Dask distributed cluster (``--scheduler tcp://HOST:PORT`` or ``local:N``; SPEC §5.3).

This process — the *client* — owns the run folder; the cluster's workers only compute:

1. the training context and the trainer travel once to each worker (:class:`~spacetravlr_py.scaleout.Shipment`),
   so a task carries only gene names and the shipment's key;
2. before a gene is sent, the client takes its ``{gene}.lock`` (:func:`~.gene.claim`), exactly as a local
   worker would, so a Dask run can share a folder with ``--join-output-dir`` processes;
3. a task fits its genes with :func:`~.gene.fit_or_error` and returns the :class:`~.results.GeneFit`;
4. the client writes the log, artifacts and betadata atomically (:func:`~.gene.commit` /
   :func:`~.gene.record_failure`) and releases the lock.

Workers therefore need no access to the output folder (nor the dataset: the context carries the arrays).
At most ``in_flight`` tasks per worker thread are outstanding, so pause and stop act within a gene or two;
on stop the outstanding tasks are cancelled and their locks released. A worker that dies mid-task is
replaced by the scheduler, which reruns the task elsewhere. When Dask gives up on a task (``KilledWorker``:
several workers died running it), every gene of it — and of any task that shared those workers — becomes a
*suspect*: new work waits, and each suspect is tried alone on the otherwise idle cluster; one that still
kills its workers is recorded as failed, the others are fitted. Each task's result is committed once, so
nothing is written twice. Every fit runs with one BLAS / numba thread, as in the process executor, so the
files are bit-identical to a serial run whatever the number of workers or the order in which tasks finish.
"""

from __future__ import annotations

import contextlib
import queue
import time
import traceback
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .. import scaleout
from ..rundir import RunDir, locks
from .control import RunControl
from .gene import GeneJob, claim, commit, fit_or_error, record_failure
from .reporters import Reporter
from .results import DONE, SKIPPED, GeneFit, GeneOutcome

MAX_RESUBMITS = 3
MAX_PARKS = 6
"""Times a gene's task may wait for a lost context to be sent again (workers dying over and over, e.g. the
gene itself kills them) before the gene is recorded as failed; batches parked twice are split first."""
"""Times a task that raised on the cluster is sent again before its genes are recorded as failed (fits
return their own errors, so what raises is the cluster's: a lost connection, a worker shutting down)."""
TARGET_TASK_S = 0.5
"""With ``genes_per_task=0`` (automatic), tasks hold about this many seconds of fitting: tiny genes are
batched so that Dask's per-task round trips do not dominate, while pause / stop still act quickly."""
MAX_GENES_PER_TASK = 32
WRITER_THREADS = 4
"""Threads writing finished genes' files on the client (each write ends with an fsync: overlapping them keeps
one client ahead of many workers)."""

TaskResult = tuple[str, list[tuple[str, "GeneFit | tuple[str, str]", float]]]
"""``(worker address, [(gene, fit or (error, traceback), seconds), ...])``."""


def fit_genes(name: str, token: str, genes: tuple[str, ...], topic: str) -> TaskResult:
    """A task: fit ``genes`` with one BLAS / numba thread, announcing each start on ``topic``.

    ``name`` / ``token`` identify the shipped ``(context, trainer)`` (fetched once per worker).
    """
    from distributed import get_worker

    from .._threads import numba_threads

    worker = get_worker()
    scaleout.pin_threads()
    ctx, trainer = scaleout.received(name, token)
    out: list[tuple[str, GeneFit | tuple[str, str], float]] = []
    with numba_threads(1):
        for g in genes:
            worker.log_event(topic, (g, worker.address))
            t0 = time.perf_counter()
            out.append((g, fit_or_error(trainer, ctx, g), time.perf_counter() - t0))
    return worker.address, out


@dataclass
class DaskExecutor:
    """Train on the Dask cluster at ``scheduler`` (``tcp://HOST:PORT``, or ``local:N`` for a local one).

    Parameters
    ----------
    scheduler : str
        The scheduler's address, or ``local:N``.
    genes_per_task : int
        Genes fitted by one task; 0 (default) sizes tasks from the fits seen so far to about
        :data:`TARGET_TASK_S` seconds (batching tiny genes amortises Dask's per-task round trips). The
        files do not depend on it.
    in_flight : int
        Tasks outstanding per worker thread (pause and stop wait for at most these).

    After :meth:`run`, :attr:`stats` holds what was shipped: ``context_bytes`` (the context and trainer,
    serialised), ``context_loads`` (per worker: times it was deserialised there), ``context_ships``,
    ``task_bytes`` (one task, serialised), ``n_tasks``, ``n_workers`` (workers that trained genes),
    ``dispatch_s`` (first task sent → last result written) and ``fit_s`` (the fits' own seconds, summed).
    """

    scheduler: str
    genes_per_task: int = 0
    in_flight: int = 2
    n_workers: int = 0
    stats: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _, n_local = scaleout.parse_scheduler(self.scheduler)
        self.n_workers = n_local or self.n_workers

    def describe(self, n_genes: int) -> str:
        return f"training {n_genes} genes on {scaleout.describe_scheduler(self.scheduler)}"

    def run(self, job: GeneJob, genes: list[str], events: Reporter, control: RunControl) -> None:
        with scaleout.connect(self.scheduler, check_stop=control.may_dispatch, say=events.message) as client:
            d = _Dispatch(client, job, events, control, max(0, self.genes_per_task), max(1, self.in_flight))
            ok = False
            try:
                d.run(genes)
                ok = True
            finally:
                self.n_workers = len(d.workers) or self.n_workers
                self.stats = d.close(count_loads=ok)
            st = self.stats
            events.message(f"Dask: the context ({st['context_bytes'] / 1e6:.1f} MB) went once to each of "
                           f"{len(st['context_loads'])} workers; {st['n_tasks']} tasks of {st['task_bytes']} bytes")


class _Dispatch:
    """One run's loop on the client: claim → submit → commit → release, at most ``limit`` tasks in flight.

    Task completions, start announcements and finished writes arrive on one queue, read by this thread
    only; reporters are therefore called from the thread that called :func:`~.run.train`. Files are written
    by a few writer threads (:data:`WRITER_THREADS`), each gene's lock released once its files are complete.
    """

    def __init__(self, client: Any, job: GeneJob, events: Reporter, control: RunControl, per_task: int,
                 per_thread: int) -> None:
        self.client, self.job, self.events, self.control = client, job, events, control
        self.per_task, self.per_thread = per_task, per_thread
        self.q: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self.pending: deque[str] = deque()
        self.inflight: dict[str, tuple[Any, list[str], int, int, int]] = {}
        """task key → (future, genes, attempt, shipments sent before it was submitted, times parked)"""
        self.held: set[str] = set()
        self.started: set[str] = set()
        self.workers: dict[str, int] = {}
        self.shipment: scaleout.Shipment | None = None
        self.topic = ""
        self.n_tasks = 0
        self.task_bytes = 0
        self.t_first: float | None = None
        self.t_last = 0.0
        self.fit_seconds = 0.0
        self.n_fits = 0
        self.writer = ThreadPoolExecutor(WRITER_THREADS, thread_name_prefix="spacetravlr-write")
        self.writing = 0
        self.parked: list[tuple[list[str], int, bool]] = []
        """(genes, times parked, a trial?) of tasks that failed because the context was lost: sent again after it"""
        self.suspects: deque[str] = deque()
        """genes of tasks Dask gave up on (KilledWorker): each is tried alone on an idle cluster"""
        self.trial: str | None = None
        """the task key of the suspect being tried (nothing else is in flight meanwhile)"""
        self._said_lost = False
        self._threads, self._threads_at = 1, -1.0

    def run(self, genes: list[str]) -> None:
        self.pending.extend(genes)
        finished = False
        try:
            self.shipment = scaleout.Shipment(self.client, (self.job.ctx.for_remote_workers(), self.job.trainer))
            self.topic = f"spacetravlr-started-{self.shipment.token}"
            self.client.subscribe_topic(self.topic, lambda ev: self.q.put(("started", *ev[1])))
            while self.pending or self.inflight or self.writing or self.parked or self.suspects:
                self._resend()
                self._fill()
                try:
                    items = [self.q.get(timeout=scaleout.POLL_S)]
                except queue.Empty:
                    continue
                while not self.q.empty():  # whatever else arrived meanwhile: one gather for all results
                    items.append(self.q.get())
                for item in items:
                    if item[0] == "started":
                        self._started(item[1], item[2])
                    elif item[0] == "written":
                        self._written(item[1], item[2])
                self._done([item[1] for item in items if item[0] == "done"])
            finished = True
        finally:
            if not finished:
                self._abandon()
            self.writer.shutdown(wait=True)

    def _resend(self) -> None:
        """Every worker holding the context died: send it again once a worker is there, then the parked
        batches."""
        assert self.shipment is not None
        if self.shipment.lost and not self._said_lost:
            self.events.message("the Dask cluster lost the training context with its workers; sending it again")
            self._said_lost = True
        if self.shipment.resend():
            self._said_lost = False
            for batch, parks, trial in self.parked:
                for part in ([[g] for g in batch] if parks > 1 else [batch]):  # isolate a culprit
                    self._submit(part, 0, parks, trial)
            self.parked.clear()

    def _limit(self) -> int:
        now = time.monotonic()
        if now - self._threads_at > 2.0:  # workers come and go: ask the scheduler now and then
            self._threads = max(1, sum(self.client.nthreads().values()))
            self._threads_at = now
        return self._threads * self.per_thread

    def _per_task(self) -> int:
        """Genes of the next task: as set, or about :data:`TARGET_TASK_S` of fitting, never so many that a
        worker thread would be left without a task."""
        if self.per_task:
            return self.per_task
        if not self.n_fits:
            return 1
        n = round(TARGET_TASK_S / max(self.fit_seconds / self.n_fits, 1e-3))
        share = -(-len(self.pending) // self._limit())  # ceil: the rest spread over every slot
        return max(1, min(n, MAX_GENES_PER_TASK, share))

    def _fill(self) -> None:
        """Claim and submit genes while fewer than the limit are in flight (and the run is not paused); while
        there are suspects, try them one at a time on the idle cluster instead."""
        if self.suspects or self.trial is not None:
            if self.control.may_dispatch() and self.trial is None and not self.inflight and not self.parked:
                self._submit([self.suspects.popleft()], 0, 0, trial=True)
            return
        rd, stale = self.job.run_dir, self.job.stale_lock_secs
        while self.pending and len(self.inflight) < self._limit() and self.control.may_dispatch():
            batch: list[str] = []
            size = self._per_task()
            while self.pending and len(batch) < size:
                g = self.pending.popleft()
                self.held.add(g)  # before the lock: an interrupt in between still releases it
                state = claim(rd, g, stale)
                if state == DONE:
                    batch.append(g)
                    continue
                self.held.discard(g)
                if state == SKIPPED:  # finished by another process meanwhile; busy genes are not reported
                    self.events.gene_finished(GeneOutcome(g, SKIPPED))
            if batch:
                self._submit(batch, 0)

    def _submit(self, batch: list[str], attempt: int, parks: int = 0, trial: bool = False) -> None:
        assert self.shipment is not None
        # unique per submission: Dask hands back the old (failed) future for a key it still knows
        key = f"spacetravlr-fit-{batch[0]}-{self.shipment.token[:8]}-{self.n_tasks}"
        args = (self.shipment.name, self.shipment.token, tuple(batch), self.topic)
        fut = self.client.submit(fit_genes, *args, key=key, pure=False)
        self.inflight[key] = (fut, batch, attempt, self.shipment.ships, parks)
        if trial:
            self.trial = key
        fut.add_done_callback(lambda f: self.q.put(("done", f.key)))
        if not self.task_bytes:
            self.task_bytes = scaleout.task_nbytes(key, fit_genes, *args)
            self.t_first = time.perf_counter()
        self.n_tasks += 1

    def _worker(self, address: str) -> int:
        return self.workers.setdefault(address, len(self.workers))

    def _started(self, gene: str, address: str) -> None:
        if gene in self.held and gene not in self.started:
            self.started.add(gene)
            self.events.gene_started(gene, self._worker(address))

    def _done(self, keys: list[str]) -> None:
        """Commit the finished tasks (their results gathered in one call); resend or record the others."""
        assert self.shipment is not None
        popped = [(self.inflight.pop(k), k == self.trial) for k in keys if k in self.inflight]
        if any(trial for _, trial in popped):
            self.trial = None
        for address, results in self._gather([t[0] for t, _ in popped if t[0].status == "finished"]):
            for gene, res, seconds in results:
                self._commit(gene, res, seconds, address)
                if not isinstance(res, tuple):
                    self.fit_seconds += seconds
                    self.n_fits += 1
            self.t_last = time.perf_counter()
        for (fut, batch, attempt, ships, parks), trial in popped:
            if fut.status == "finished":
                continue
            exc = fut.exception() if fut.status == "error" else None
            if _killed_worker(exc) and not trial:
                self.suspects.extend(batch)  # the gene that kills workers, or one that shared a worker with it
            elif not _killed_worker(exc) and (self.shipment.lost or self.shipment.ships > ships) \
                    and parks < MAX_PARKS:
                self.parked.append((batch, parks + 1, trial))  # it could not fetch the context: sent after it
            elif not _killed_worker(exc) and attempt < MAX_RESUBMITS:
                self._submit(batch, attempt + 1, parks, trial)  # fits return their errors: the cluster raised
            else:
                tb = "".join(traceback.format_exception(type(exc), exc, fut.traceback())) if exc else ""
                reason = _task_error(exc) if exc else f"CancelledError: the Dask scheduler cancelled the task " \
                                                          f"({fut.status})"
                for gene in batch:
                    self._commit(gene, (reason, tb), 0.0, "")

    def _gather(self, futures: list[Any]) -> list[TaskResult]:
        """Results of finished tasks, in one call. A result can vanish with its worker before it is fetched:
        Dask then recomputes it, and that may fail (the context gone too); such tasks are left out here,
        their futures now in error, for the caller's error handling."""
        if not futures:
            return []
        try:
            return list(self.client.gather(futures))
        except Exception:
            out = []
            for f in futures:
                with contextlib.suppress(Exception):
                    out.append(f.result())
            return out

    def _commit(self, gene: str, res: GeneFit | tuple[str, str], seconds: float, address: str) -> None:
        """Hand the gene's files to a writer thread (this process is the only one touching the folder)."""
        w = self._worker(address) if address else 0
        if gene not in self.started:
            self.started.add(gene)
            self.events.gene_started(gene, w)
        self.writing += 1
        fut = self.writer.submit(_write, self.job.run_dir, gene, res, seconds, w)
        fut.add_done_callback(lambda f: self.q.put(("written", gene, f)))

    def _written(self, gene: str, fut: Future[GeneOutcome]) -> None:
        self.writing -= 1
        self.held.discard(gene)
        self.events.gene_finished(fut.result())  # a failed write (disk full...) ends the run, as locally

    def _abandon(self) -> None:
        """Stopped or failed: cancel what is in flight, let writes under way finish (no partial file), and
        release every lock this client holds."""
        futures = [v[0] for v in self.inflight.values()]
        with contextlib.suppress(Exception):
            if futures:
                self.client.cancel(futures)
        self.writer.shutdown(wait=True, cancel_futures=True)
        for g in list(self.held):
            locks.release(self.job.run_dir.root, g)
        self.held.clear()
        self.inflight.clear()

    def close(self, count_loads: bool = True) -> dict[str, Any]:
        """Unsubscribe, drop the workers' copies of the context; return what was shipped (asking every
        worker how often it loaded the context only when ``count_loads``: not while stopping)."""
        with contextlib.suppress(Exception):
            if self.topic:
                self.client.unsubscribe_topic(self.topic)
        s = self.shipment
        loads: dict[str, int] = {}
        if s is not None:
            if count_loads:
                with contextlib.suppress(Exception):
                    loads = s.loads()
            s.close()
        dispatch = self.t_last - self.t_first if self.t_first is not None and self.t_last else 0.0
        return {"context_bytes": s.nbytes if s else 0, "context_loads": loads, "context_ships": s.ships if s else 0,
                "task_bytes": self.task_bytes, "n_tasks": self.n_tasks, "n_workers": len(self.workers),
                "dispatch_s": dispatch, "fit_s": self.fit_seconds}


def _write(rd: RunDir, gene: str, res: GeneFit | tuple[str, str], seconds: float, worker: int) -> GeneOutcome:
    """In a writer thread: the gene's log, artifacts and betadata (or its failure log), then its lock."""
    try:
        if isinstance(res, tuple):
            return record_failure(rd, gene, res[0], res[1], seconds, worker)
        return commit(rd, res, seconds, worker)
    finally:
        locks.release(rd.root, gene)


def _killed_worker(exc: BaseException | None) -> bool:
    from distributed import KilledWorker

    return isinstance(exc, KilledWorker)


def _task_error(exc: BaseException) -> str:
    """The one-line reason of a task that raised on the cluster (a killed worker says why)."""
    if _killed_worker(exc):
        return (f"KilledWorker: every worker that ran this gene died ({exc}); out of memory? see "
                "docs/dask.md on sizing workers")
    return f"{exc.__class__.__name__}: {exc}"

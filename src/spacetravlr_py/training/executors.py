"""Executors: who trains the pending genes of a run, behind one contract.

Contract: whichever executor and however many workers, every gene's files are bit-identical (each gene's
fit depends only on the shared context, which every worker reads unchanged), every outcome is reported
once, and interrupts leave no partial file or lock. An executor hands genes out one at a time, honours
:class:`~.control.RunControl` (pause / stop) between genes, and reports through ``events``.

* :class:`SerialExecutor` — this process.
* :class:`ProcessExecutor` — N spawned worker processes memory-mapping one saved context; genes are
  dispatched to whichever worker is free.
* a distributed executor (Dask) plugs in here with the same contract.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .control import RunControl, interrupt_once
from .gene import GeneJob, train_gene
from .reporters import Reporter
from .results import BUSY, GeneOutcome


class Executor(Protocol):
    """Runs the per-gene queue of a run."""

    n_workers: int

    def describe(self, n_genes: int) -> str:
        """The line announcing the work ("training 10 genes with 2 worker processes")."""
        ...

    def run(self, job: GeneJob, genes: list[str], events: Reporter, control: RunControl) -> None:
        """Train ``genes``, reporting each outcome through ``events.gene_finished`` as it arrives (busy
        genes — held by another process — are not reported). Raises :class:`KeyboardInterrupt` when
        interrupted or stopped."""
        ...


def _report(o: GeneOutcome, events: Reporter) -> None:
    if o.status != BUSY:
        events.gene_finished(o)


@dataclass
class SerialExecutor:
    """Train the genes one after another in this process."""

    n_workers: int = 1

    def describe(self, n_genes: int) -> str:
        return f"training {n_genes} genes"

    def run(self, job: GeneJob, genes: list[str], events: Reporter, control: RunControl) -> None:
        for g in genes:
            control.checkpoint()
            _report(train_gene(job, g, 0, events.gene_started), events)


def _worker_main(ctx_dir: str, worker: int, conn: Any) -> None:
    """Worker process: memory-map the context, then train the genes the parent sends until ``None``.

    For each gene it sends ``("start", gene)`` then the :class:`GeneOutcome`; ``None`` when it ends.
    Each worker has its own pipe, so a worker killed mid-message cannot block the others.
    """
    import pickle

    signal.signal(signal.SIGINT, interrupt_once)
    signal.signal(signal.SIGTERM, interrupt_once)
    try:
        from .._threads import thread_limit
        from .context import TrainingContext

        with open(Path(ctx_dir) / "job.pkl", "rb") as fh:
            job_meta = pickle.load(fh)
        ctx = TrainingContext.load(Path(ctx_dir))
        job = GeneJob(ctx=ctx, **job_meta)
        with thread_limit(1):
            while True:
                gene = conn.recv()
                if gene is None:
                    break
                conn.send(train_gene(job, gene, worker, lambda g, w: conn.send(("start", g))))
    except (KeyboardInterrupt, BrokenPipeError, EOFError):  # EOF: the parent is gone
        pass
    finally:
        with contextlib.suppress(OSError, ValueError):
            conn.send(None)
        conn.close()


@dataclass
class ProcessExecutor:
    """Train with ``n_workers`` spawned processes sharing one memory-mapped context.

    Genes go to whichever worker is free. A worker that dies (killed, out of memory) is reported; the
    gene it was training is handed to another worker (its lock is reclaimed: the owner is dead), and
    if every worker died the rest is trained in this process.
    """

    n_workers: int = 2

    def describe(self, n_genes: int) -> str:
        return f"training {n_genes} genes with {self.n_workers} worker processes"

    def run(self, job: GeneJob, genes: list[str], events: Reporter, control: RunControl) -> None:
        scratch = job.run_dir.make_scratch()
        try:
            self._save(job, scratch)
            left = self._pool(scratch, genes, events, control)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        # every worker died: train what is left here, skipping genes live processes hold
        SerialExecutor().run(job, [g for g in left if not job.run_dir.is_finished(g)], events, control)

    @staticmethod
    def _save(job: GeneJob, folder: Path) -> None:
        import pickle

        job.ctx.save(folder)
        with open(folder / "job.pkl", "wb") as fh:
            pickle.dump({"trainer": job.trainer, "run_dir": job.run_dir, "stale_lock_secs": job.stale_lock_secs},
                        fh, protocol=pickle.HIGHEST_PROTOCOL)

    def _pool(self, scratch: Path, genes: list[str], events: Reporter, control: RunControl) -> list[str]:
        """Dispatch ``genes`` to the workers; return the genes never handed out or lost with a worker."""
        import multiprocessing as mp
        from multiprocessing.connection import wait

        mpctx = mp.get_context("spawn")
        queue = list(genes)
        procs: list[Any] = []
        conns: dict[Any, int] = {}
        busy: dict[int, str | None] = {}
        clean_exit = False
        try:
            for w in range(min(self.n_workers, len(queue))):
                parent, child = mpctx.Pipe(duplex=True)
                p = mpctx.Process(target=_worker_main, args=(str(scratch), w, child), daemon=True)
                p.start()
                child.close()  # the worker holds the only other end: its exit shows as end-of-file here
                procs.append(p)
                conns[parent] = w
                busy[w] = None
            while conns:
                for conn, w in list(conns.items()):
                    if busy[w] is not None:
                        continue
                    # a send to a worker that just died fails; its end-of-file is handled below
                    with contextlib.suppress(OSError):
                        if queue and control.may_dispatch():
                            busy[w] = queue.pop(0)
                            conn.send(busy[w])
                        elif not queue:
                            busy[w] = ""  # told to stop
                            conn.send(None)
                ready: list[Any] = wait(list(conns), timeout=0.2)
                for conn in ready:
                    w = conns[conn]
                    try:
                        item = conn.recv()
                    except (EOFError, OSError):  # the worker ended without saying so: it died
                        procs[w].join(timeout=5)
                        lost = busy[w]
                        events.message(f"worker {w} died (exit code {procs[w].exitcode}); the genes it "
                                       "did not finish are trained by the others")
                        if lost:
                            queue.insert(0, lost)
                        item = None
                    if item is None:
                        del conns[conn]
                        conn.close()
                    elif isinstance(item, tuple):
                        events.gene_started(item[1], w)
                    else:
                        busy[w] = None
                        _report(item, events)
            clean_exit = True
        finally:
            for c in conns:
                c.close()  # a worker still sending gets a broken pipe instead of blocking
            _stop_workers(procs, terminate_first=not clean_exit)
        return queue


def _stop_workers(procs: list[Any], *, terminate_first: bool) -> None:
    """Join the workers; when interrupted or failed, SIGTERM them first (each finishes like Ctrl-C:
    its temporary file and lock removed)."""
    if terminate_first:
        for p in procs:
            if p.is_alive():
                p.terminate()
    for p in procs:
        p.join(timeout=30)
        if p.is_alive():
            p.terminate()
            p.join(timeout=5)
        if p.is_alive():
            p.kill()
            p.join(timeout=5)


def executor_for(n_workers: int, n_genes: int) -> SerialExecutor | ProcessExecutor:
    """Processes when more than one worker has work, else this process."""
    n = min(int(n_workers), n_genes)
    return ProcessExecutor(n) if n > 1 else SerialExecutor()

"""Perturbation jobs: run on one worker thread, off the event loop, with progress and cancellation.

A job is a function of its :class:`Job`; it calls :meth:`Job.tick` between steps (propagation steps,
genes), which raises :class:`JobCancelled` once the job was cancelled. Jobs run one at a time in arrival
order (the numerical kernels use every core already); at most ``max_waiting`` may wait.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ._errors import ApiError

T = TypeVar("T")

MAX_WAITING = 8


class JobCancelled(Exception):
    """Raised inside a job at its next step after :meth:`JobManager.cancel`."""


@dataclass
class Job:
    """One unit of work and its progress (``state``: queued, running, done, cancelled, error)."""

    id: int
    kind: str
    gene: str | None = None
    state: str = "queued"
    step: int = 0
    n_steps: int = 0
    message: str = "waiting"
    t_start: float | None = None
    t_end: float | None = None
    error: str | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event)

    def tick(self, step: int, n_steps: int, message: str | None = None) -> None:
        """Record progress; raise :class:`JobCancelled` when cancelled."""
        if self.cancel_event.is_set():
            raise JobCancelled(f"job {self.id} cancelled")
        self.step, self.n_steps = step, n_steps
        if message is not None:
            self.message = message

    def check(self) -> None:
        """Raise :class:`JobCancelled` when cancelled (between phases without a step count)."""
        if self.cancel_event.is_set():
            raise JobCancelled(f"job {self.id} cancelled")

    def to_json(self) -> dict[str, Any]:
        t0 = self.t_start
        elapsed = 0.0 if t0 is None else (self.t_end or time.perf_counter()) - t0
        pct = 100 if self.state == "done" else (int(round(100 * self.step / self.n_steps)) if self.n_steps else 0)
        return {"id": self.id, "kind": self.kind, "gene": self.gene, "state": self.state, "step": self.step,
                "n_steps": self.n_steps, "percent": min(pct, 100), "message": self.message,
                "elapsed_s": round(elapsed, 4)}


class JobManager:
    """Runs jobs on a single worker thread; tracks the running, waiting and last finished job."""

    def __init__(self, max_waiting: int = MAX_WAITING) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="viewer-job")
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._waiting: list[Job] = []
        self._running: Job | None = None
        self._last: Job | None = None
        self.max_waiting = max_waiting

    def submit(self, kind: str, fn: Callable[[Job], T], *, gene: str | None = None) -> tuple[Job, Future[T]]:
        """Queue ``fn(job)``; raises :class:`ApiError` 429 when too many jobs wait."""
        with self._lock:
            if len(self._waiting) >= self.max_waiting:
                raise ApiError(429, f"{len(self._waiting)} perturbation jobs are already waiting; "
                                    "wait for them or POST /api/cancel")
            job = Job(id=next(self._ids), kind=kind, gene=gene)
            self._waiting.append(job)
        return job, self._pool.submit(self._run, job, fn)

    def _run(self, job: Job, fn: Callable[[Job], T]) -> T:
        with self._lock:
            if job in self._waiting:
                self._waiting.remove(job)
            self._running = job
        job.t_start = time.perf_counter()
        job.state, job.message = "running", "running"
        try:
            job.check()
            out = fn(job)
            job.state, job.message = "done", "done"
            return out
        except JobCancelled:
            job.state, job.message = "cancelled", "cancelled"
            raise
        except Exception as e:
            job.state, job.error, job.message = "error", str(e), "failed"
            raise
        finally:
            job.t_end = time.perf_counter()
            with self._lock:
                self._running = None
                self._last = job

    def cancel(self, job_id: int | None = None) -> list[int]:
        """Cancel the running and waiting jobs (or only ``job_id``); returns the ids cancelled."""
        with self._lock:
            jobs = [j for j in [self._running, *self._waiting] if j is not None]
        if job_id is not None:
            jobs = [j for j in jobs if j.id == job_id]
        for j in jobs:
            j.cancel_event.set()
        return [j.id for j in jobs]

    def progress(self) -> dict[str, Any]:
        with self._lock:
            running, last, waiting = self._running, self._last, len(self._waiting)
        return {"active": running is not None, "queued": waiting,
                "job": running.to_json() if running else None, "last": last.to_json() if last else None}

    def running(self) -> Job | None:
        return self._running

    def shutdown(self) -> None:
        self.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)


async def run_job(state: Any, kind: str, fn: Callable[[Job], T], *, gene: str | None = None) -> tuple[T, Job]:
    """Queue ``fn`` on ``state.jobs`` and await it without blocking the event loop.

    A cancelled job becomes ApiError 409; other exceptions propagate (InputError → 400 by the app).
    """
    import asyncio

    job, fut = state.jobs.submit(kind, fn, gene=gene)
    try:
        return await asyncio.wrap_future(fut), job
    except JobCancelled:
        raise ApiError(409, f"perturbation cancelled (job {job.id})") from None

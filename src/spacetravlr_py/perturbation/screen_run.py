"""A screen at scale: resumable (one result file per gene), with parallel workers.

:func:`run_screen` hands the genes not yet finished in the folder to an executor and writes each
:class:`~.screen.GeneScore` as it arrives; when every gene is finished it ranks them and writes the
table and figures (:mod:`.screen_files`). Executors map :func:`~.screen.score_gene` over tasks:

* :class:`SerialScreen` — this process, on an opened run;
* :class:`ProcessScreen` — N local worker processes, each opening the run once (:class:`SessionRecipe`);
* a distributed executor (Dask) plugs in with the same ``map(tasks)`` (any order of results).

Only the calling process writes files, so workers can run anywhere and a killed screen leaves finished
genes and nothing else.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import InputError
from .screen import GeneScore, GeneTask, score_gene, select_genes, tasks_for
from .screen_files import ScreenDir, ScreenRequest, ScreenSpec, write_outputs

if TYPE_CHECKING:
    from ..config import SpaceshipConfig
    from .session import RunSession


@dataclass(frozen=True)
class SessionRecipe:
    """How a worker opens the run (picklable): :meth:`RunSession.open` arguments."""

    run_toml: str
    overrides: Mapping[str, Any] = field(default_factory=dict)
    overlay: Callable[[SpaceshipConfig], SpaceshipConfig] | None = None
    n_threads: int | None = None

    def open(self) -> RunSession:
        from .session import RunSession

        return RunSession.open(self.run_toml, n_threads=self.n_threads, overrides=dict(self.overrides) or None,
                               overlay=self.overlay)


class ScreenExecutor(Protocol):
    """Runs :func:`~.screen.score_gene` over tasks; yields the scores in any order."""

    n_workers: int

    def map(self, tasks: Sequence[GeneTask]) -> Iterator[GeneScore]: ...


@dataclass
class SerialScreen:
    """Score the genes one after another in this process."""

    session: RunSession
    n_workers: int = 1

    def map(self, tasks: Sequence[GeneTask]) -> Iterator[GeneScore]:
        for t in tasks:
            yield score_gene(self.session.perturber, t)


_WORKER_SESSION: Any = None


def _worker_init(recipe: SessionRecipe) -> None:
    """Worker process: ignore Ctrl-C (the parent stops the pool), open the run once."""
    global _WORKER_SESSION
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _WORKER_SESSION = recipe.open()


def _worker_score(task: GeneTask) -> GeneScore:
    return score_gene(_WORKER_SESSION.perturber, task)


@dataclass
class ProcessScreen:
    """Score the genes in ``n_workers`` spawned local processes; each opens the run once and gets
    ``threads // n_workers`` numba/BLAS threads. At most ``2 × n_workers`` tasks are in flight."""

    recipe: SessionRecipe
    n_workers: int = 2

    def map(self, tasks: Sequence[GeneTask]) -> Iterator[GeneScore]:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        from .._threads import default_threads

        threads = max(1, (self.recipe.n_threads or default_threads()) // self.n_workers)
        recipe = SessionRecipe(self.recipe.run_toml, self.recipe.overrides, self.recipe.overlay, threads)
        queue = list(tasks)
        ex = ProcessPoolExecutor(max_workers=self.n_workers, mp_context=mp.get_context("spawn"),
                                 initializer=_worker_init, initargs=(recipe,))
        running: set[Future[GeneScore]] = set()
        try:
            while queue or running:
                while queue and len(running) < 2 * self.n_workers:
                    running.add(ex.submit(_worker_score, queue.pop(0)))
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    yield fut.result()
        finally:
            for fut in running:
                fut.cancel()
            procs = list(getattr(ex, "_processes", {}).values())
            ex.shutdown(wait=False, cancel_futures=True)
            for p in procs:  # interrupted: stop genes in flight now (their results would be dropped anyway)
                if p.is_alive() and (queue or running):
                    p.terminate()
            for p in procs:
                p.join(timeout=30)


def executor_for(session: RunSession | None, recipe: SessionRecipe, n_workers: int) -> ScreenExecutor:
    """Local processes for ``n_workers > 1``, else this process (opening the run if needed)."""
    if n_workers < 1:
        raise InputError(f"--workers must be >= 1, got {n_workers}")
    if n_workers > 1:
        return ProcessScreen(recipe, n_workers)
    return SerialScreen(session if session is not None else recipe.open())


@dataclass
class ScreenOutcome:
    """What :func:`run_screen` did."""

    folder: Path
    spec: ScreenSpec
    computed: list[str]
    """Genes scored by this call (the others were finished before)."""
    already_finished: bool
    """True when the folder held a finished screen of the same request: nothing was computed."""
    files: dict[str, Path] = field(default_factory=dict)


def prior_screen(out_dir: str | os.PathLike[str], request: ScreenRequest) -> ScreenSpec | None:
    """The spec of a screen of the same request in ``out_dir`` (None: no screen there); one line when
    the folder holds a different screen."""
    sd = ScreenDir(out_dir)
    spec = sd.read_spec()
    if spec is None:
        return None
    diff = spec.request.differs(request)
    if diff:
        raise InputError(f"{sd.root} holds another screen ({diff}); choose a new --out-dir, or repeat the same "
                         "request to resume it")
    return spec


def is_finished(out_dir: str | os.PathLike[str], spec: ScreenSpec) -> bool:
    """Every gene of ``spec`` has its result and the ranked outputs exist."""
    sd = ScreenDir(out_dir)
    return sd.outputs_exist() and len(sd.finished(spec.genes)) == len(spec.genes)


def plan_screen(session: RunSession, request: ScreenRequest) -> ScreenSpec:
    """Resolve the request's genes and values on the opened run (one line when none is left to screen)."""
    from ..errors import short_list
    from .screen import check_roles

    check_roles(request.roles)
    todo, skipped = select_genes(session.perturber, genes=request.genes, roles=request.roles)
    if not todo:
        raise InputError(f"screen: none of the requested genes modulates a trained gene ({short_list(skipped)}); "
                         "nothing to screen")
    tasks = tasks_for(session.perturber, todo, mode=request.mode, n_propagation=request.n_propagation)
    return ScreenSpec(request, tasks, skipped, [str(c) for c in session.tissue.cluster_labels])


def run_screen(out_dir: str | os.PathLike[str], request: ScreenRequest, *, recipe: SessionRecipe | None = None,
               session: RunSession | None = None, executor: ScreenExecutor | None = None, figures: bool = True,
               on_plan: Callable[[ScreenSpec, int], None] | None = None,
               on_done: Callable[[GeneScore, int, int], None] | None = None) -> ScreenOutcome:
    """Run (or resume) the screen ``request`` in ``out_dir``.

    Parameters
    ----------
    out_dir
        The screen folder (created). A folder holding another request is refused; one holding the same
        request is resumed (finished genes are not recomputed); a finished one is left as it is.
    request
        What to screen (:class:`~.screen_files.ScreenRequest`).
    recipe
        How to open the run when needed (default: ``request.run_toml`` with ``request.settings`` as
        overrides).
    session
        The opened run, if the caller has it.
    executor
        Who scores the genes (default: this process).
    figures
        Write ``screen_top.png`` and ``screen_heatmap.png``.
    on_plan
        ``on_plan(spec, n_left)`` once the genes are known.
    on_done
        ``on_done(score, i, n)`` after each gene's file is written (raise to stop: finished genes stay).
    """
    sd = ScreenDir(out_dir)
    spec = prior_screen(out_dir, request)
    if spec is not None and is_finished(out_dir, spec):
        return ScreenOutcome(sd.root, spec, [], True)
    recipe = recipe or SessionRecipe(request.run_toml, request.settings)
    if spec is None:
        opened = session or recipe.open()
        spec = plan_screen(opened, request)
        sd.write_spec(spec)
        if executor is None:
            session = opened  # kept for the serial executor; else dropped (the workers open their own)
        del opened
    sd.remove_temporaries()
    done = sd.finished(spec.genes)
    left = [t for t in spec.tasks if t.gene not in done]
    if on_plan is not None:
        on_plan(spec, len(left))
    computed: list[str] = []
    if left:
        executor = executor or SerialScreen(session or recipe.open())
        for i, score in enumerate(executor.map(left), 1):
            sd.write_score(score)
            computed.append(score.gene)
            if on_done is not None:
                on_done(score, i, len(left))
    files = write_outputs(sd, spec, figures=figures)
    return ScreenOutcome(sd.root, spec, computed, False, files)

"""What the training dashboard shows, as plain Python: a reporter that queues the run's events (from
any thread) and a state that applies them in order.

The training thread (and its worker processes, through the executor) only ever appends to a queue, so a
slow terminal can never slow training down, and the queue outlives the screen. The dashboard drains the
queue a few times a second in its own thread and redraws from :class:`DashboardState`.
"""

from __future__ import annotations

import heapq
import logging
import queue
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..training.reporters import Reporter, RunEnd, RunStart, Tally
from ..training.results import DONE, FAILED, ORPHAN, SKIPPED, GeneOutcome

#: event kinds (the Reporter methods, plus log records and the end of the training thread)
RUN_STARTED, MESSAGE, WARNING, GENE_STARTED, GENE_FINISHED = "run_started", "message", "warning", "gene_started", \
    "gene_finished"
RUN_FINISHED, ABORTED, LOG, THREAD_DONE = "run_finished", "aborted", "log", "thread_done"

#: phases of a run as the dashboard names them
LOADING, TRAINING, FINISHED, FAILED_PHASE = "loading inputs", "training", "finished", "failed"

N_RECENT = 12
N_WORST = 8
N_LOG = 400


@dataclass
class Event:
    """One thing that happened, stamped when it happened (not when it is drawn)."""

    kind: str
    t: float
    data: Any = None


class DashboardReporter(Reporter):
    """A :class:`Reporter` that queues every event with its time; safe to call from any thread."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self.clock = clock

    def put(self, kind: str, data: Any = None) -> None:
        self.events.put(Event(kind, self.clock(), data))

    def run_started(self, start: RunStart) -> None:
        self.put(RUN_STARTED, start)

    def message(self, text: str) -> None:
        self.put(MESSAGE, text)

    def warning(self, text: str) -> None:
        self.put(WARNING, text)

    def gene_started(self, gene: str, worker: int) -> None:
        self.put(GENE_STARTED, (gene, worker))

    def gene_finished(self, outcome: GeneOutcome) -> None:
        self.put(GENE_FINISHED, outcome)

    def run_finished(self, end: RunEnd) -> None:
        self.put(RUN_FINISHED, end)

    def aborted(self, error: BaseException) -> None:
        self.put(ABORTED, error)

    def drain(self) -> Iterator[Event]:
        """The queued events, oldest first, without blocking."""
        while True:
            try:
                yield self.events.get_nowait()
            except queue.Empty:
                return


class QueueLogHandler(logging.Handler):
    """Sends ``spacetravlr_py`` log records to the dashboard's queue (level name, message)."""

    def __init__(self, reporter: DashboardReporter, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.reporter = reporter

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.reporter.put(LOG, (record.levelno, record.getMessage()))
        except Exception:  # a log call must never break training
            self.handleError(record)


class ClockTally(Tally):
    """:class:`Tally` (the console's counts, rate and ETA) on an injectable clock."""

    def __init__(self, total: int, clock: Callable[[], float], t0: float | None = None) -> None:
        super().__init__(total)
        self.clock = clock
        self.t0 = clock() if t0 is None else t0
        self.t_end: float | None = None

    def elapsed(self) -> float:
        return (self.clock() if self.t_end is None else self.t_end) - self.t0


def heldout_text(o: GeneOutcome) -> str:
    """Mean held-out R² per model over the gene's clusters (full mode), e.g. ``cnn 0.61 lasso 0.44``."""
    per: dict[str, list[float]] = {}
    for c in o.clusters:
        for model, r2 in c.heldout_r2.items():
            per.setdefault(model, []).append(r2)
    return " ".join(f"{m} {sum(v) / len(v):.3f}" for m, v in sorted(per.items()))


@dataclass
class LogLine:
    level: int
    text: str


@dataclass
class DashboardState:
    """Everything the dashboard draws, updated by :meth:`apply` one event at a time."""

    clock: Callable[[], float] = time.perf_counter
    start: RunStart | None = None
    end: RunEnd | None = None
    error: BaseException | None = None
    tally: ClockTally | None = None
    in_flight: dict[int, tuple[str, float]] = field(default_factory=dict)
    recent: deque[GeneOutcome] = field(default_factory=lambda: deque(maxlen=N_RECENT))
    r2: dict[str, float] = field(default_factory=dict)
    log: deque[LogLine] = field(default_factory=lambda: deque(maxlen=N_LOG))
    warnings: list[str] = field(default_factory=list)
    log_seq: int = 0
    """Log lines appended so far (the log view draws the lines it has not drawn yet)."""
    thread_done: bool = False
    version: int = 0
    """Bumped by every event: a view redraws only what changed since the version it drew."""

    @property
    def phase(self) -> str:
        if self.error is not None:
            return FAILED_PHASE
        if self.end is not None:
            return FINISHED
        return TRAINING if self.start is not None else LOADING

    def apply(self, ev: Event) -> None:
        self.version += 1
        handler = getattr(self, f"_on_{ev.kind}")
        handler(ev)

    def _on_run_started(self, ev: Event) -> None:
        self.start = ev.data
        self.tally = ClockTally(ev.data.n_queued, self.clock, t0=ev.t)
        for w in ev.data.warnings:
            self._warn(w)

    def _add_log(self, level: int, text: str) -> bool:
        """Append a log line unless one of the last few says the same (a message reaches the dashboard
        both as a reporter event and as a log record); True when appended."""
        if any(line.text == text for line in list(self.log)[-6:]):
            return False
        self.log.append(LogLine(level, text))
        self.log_seq += 1
        return True

    def _on_message(self, ev: Event) -> None:
        self._add_log(logging.INFO, ev.data)

    def _warn(self, text: str) -> None:
        if self._add_log(logging.WARNING, text):
            self.warnings.append(text)

    def _on_warning(self, ev: Event) -> None:
        self._warn(ev.data)

    def _on_log(self, ev: Event) -> None:
        level, text = ev.data
        if level >= logging.WARNING:
            self._warn(text)
        else:
            self._add_log(level, text)

    def _on_gene_started(self, ev: Event) -> None:
        gene, worker = ev.data
        self.in_flight[worker] = (gene, ev.t)

    def _on_gene_finished(self, ev: Event) -> None:
        o: GeneOutcome = ev.data
        if self.tally is not None:
            self.tally.add(o)
        for w in [w for w, (g, _) in self.in_flight.items() if g == o.gene]:
            del self.in_flight[w]  # by gene: a gene lost with a dead worker finishes on another one
        if o.status == SKIPPED:
            return
        self.recent.appendleft(o)
        if o.status == DONE and o.mean_r2 is not None:
            self.r2[o.gene] = o.mean_r2
        if o.status == FAILED:  # in the log panel; the plain output lists failed genes on stdout too
            self._add_log(logging.WARNING, f"{o.gene} FAILED: {o.reason}")

    def _on_run_finished(self, ev: Event) -> None:
        self.end = ev.data
        self.in_flight.clear()
        if self.tally is not None:
            self.tally.t_end = ev.t

    def _on_aborted(self, ev: Event) -> None:
        self.error = ev.data
        self._add_log(logging.ERROR, f"error: {ev.data}")
        self.in_flight.clear()
        if self.tally is not None:
            self.tally.t_end = ev.t

    def _on_thread_done(self, ev: Event) -> None:
        self.thread_done = True
        if ev.data is not None and self.error is None:
            self.error = ev.data
            self._add_log(logging.ERROR, f"error: {ev.data}")

    # -- what the panels show -----------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """done / orphan / failed / already (finished before this run) / remaining / total."""
        if self.tally is None:
            return {DONE: 0, ORPHAN: 0, FAILED: 0, "already": 0, "remaining": 0, "total": 0}
        c = self.tally.counts
        return {DONE: c[DONE], ORPHAN: c[ORPHAN], FAILED: c[FAILED], "already": c[SKIPPED],
                "remaining": self.tally.total - self.tally.finished, "total": self.tally.total}

    def worst(self, n: int = N_WORST) -> list[tuple[str, float]]:
        """The ``n`` finished genes with the lowest mean R² (ties by name)."""
        return [(g, r) for r, g in heapq.nsmallest(n, ((r, g) for g, r in self.r2.items()))]

    def running(self) -> list[tuple[int, str, float]]:
        """Genes in flight: (worker, gene, seconds since it started), by worker."""
        now = self.clock()
        return [(w, g, now - t0) for w, (g, t0) in sorted(self.in_flight.items())]


def _g(cfg: dict[str, dict[str, Any]], section: str, key: str, default: Any = None) -> Any:
    return cfg.get(section, {}).get(key, default)


#: rows of :func:`config_rows` holding a path (cut from the left when too long: the file name stays)
PATH_ROWS = frozenset({"dataset", "network", "output"})


def config_rows(start: RunStart) -> list[tuple[str, str]]:
    """The run-configuration panel: the effective settings that decide the results (label, value)."""
    c = start.config
    mode = start.mode
    rows = [("dataset", f"{start.dataset} ({start.n_cells:,} cells × {start.n_genes:,} genes)"),
            ("layer", start.layer or "X"),
            ("clusters", f"{start.n_clusters} from obs['{start.cluster_annot}']"),
            ("network", f"{start.network} ({start.species})" if start.network else "given in memory"),
            ("mode", mode + (f" · {_g(c, 'training', 'epochs')} epochs · lr {_g(c, 'training', 'learning_rate'):g}"
                             if mode == "full" else "")),
            ("lasso", f"l1 {_g(c, 'lasso', 'l1_reg'):g} · group {_g(c, 'lasso', 'group_reg'):g} · "
                      f"{_g(c, 'lasso', 'n_iter')} iter · tol {_g(c, 'lasso', 'tol'):g}"
                      + (f" · {scaling}" if (scaling := _g(c, "lasso", "group_reg_scaling")) != "sqrt_group_size"
                         else "")),
            ("R² gate", f"{_g(c, 'training', 'score_threshold'):g}"),
            ("spatial", f"radius {_g(c, 'spatial', 'radius'):g} · {_g(c, 'spatial', 'kernel')} · scale "
                        f"{_g(c, 'spatial', 'weighted_ligand_scale_factor'):g}"
                        + (" · per-ligand radius" if _g(c, "spatial", "per_ligand_radius") else "")),
            ("modulators", " ".join(f for f, on in (("tf", _g(c, "grn", "use_tf_modulators")),
                                                     ("lr", _g(c, "grn", "use_lr_modulators")),
                                                     ("tfl", _g(c, "grn", "use_tfl_modulators"))) if on)
             + f" · tf–ligand cutoff {_g(c, 'grn', 'tf_ligand_cutoff'):g}"
             + (f" · {len(_g(c, 'grn', 'extra_modulators', []))} extra" if _g(c, "grn", "extra_modulators") else "")),
            ("genes", f"{start.n_queued:,} queued"
                      + (f" (max_genes {_g(c, 'training', 'max_genes')})" if _g(c, "training", "max_genes") else "")),
            ("workers", f"{max(1, start.n_workers)} process{'es' if max(1, start.n_workers) > 1 else ''}"),
            ("compat", str(_g(c, "compat", "mode", "seed"))),
            ("output", start.output_dir)]
    return rows

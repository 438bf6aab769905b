"""Reporters: who hears what a training run does.

The run sends events — :meth:`Reporter.run_started` (with the effective configuration),
:meth:`~Reporter.gene_started`, :meth:`~Reporter.gene_finished` (with per-cluster fits),
:meth:`~Reporter.message` / :meth:`~Reporter.warning`, :meth:`~Reporter.run_finished` — to one reporter.

* :class:`ConsoleReporter` — plain lines (``--plain``, pipes, logs) or a live Rich bar on a terminal;
  ``quiet`` prints only warnings and the final summary.
* :class:`LogReporter` — the library default: Python ``logging`` (silent unless logging is configured).
* :class:`Reporters` — several at once. A terminal dashboard or a web view is another reporter.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from typing import IO, Any

from .results import BUSY, DONE, FAILED, ORPHAN, SKIPPED, GeneOutcome

log = logging.getLogger("spacetravlr_py.training")


@dataclass
class RunStart:
    """What a run is about to do (sent once, before any gene)."""

    config: dict[str, dict[str, Any]]
    """The effective configuration (what the repro TOML holds)."""
    output_dir: str
    dataset: str
    n_cells: int
    n_genes: int
    n_clusters: int
    cluster_annot: str
    layer: str
    network: str | None
    species: str
    mode: str
    n_queued: int
    n_workers: int
    warnings: list[str] = field(default_factory=list)
    """Problems of the inputs that do not stop the run (one line each)."""


@dataclass
class RunEnd:
    """How a run ended (sent once)."""

    counts: dict[str, int]
    interrupted: bool
    summary: str
    """The one-line summary every console front end leaves on the terminal."""
    manifest: dict[str, Any] = field(default_factory=dict)


def fmt_secs(s: float) -> str:
    s = max(0, int(round(s)))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


class Tally:
    """Counts of gene outcomes, rate and ETA."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.counts = {DONE: 0, ORPHAN: 0, FAILED: 0, SKIPPED: 0, BUSY: 0}
        self.t0 = time.perf_counter()

    def add(self, o: GeneOutcome) -> None:
        self.counts[o.status] = self.counts.get(o.status, 0) + 1

    @property
    def finished(self) -> int:
        c = self.counts
        return c[DONE] + c[ORPHAN] + c[FAILED] + c[SKIPPED]

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def rate(self) -> float:
        worked = self.counts[DONE] + self.counts[ORPHAN] + self.counts[FAILED]
        dt = self.elapsed()
        return worked / dt if dt > 0 else 0.0

    def eta(self) -> float | None:
        r = self.rate()
        return (self.total - self.finished) / r if r > 0 else None

    def status(self) -> str:
        c = self.counts
        s = f"done {c[DONE]} · orphan {c[ORPHAN]} · failed {c[FAILED]}"
        if c[SKIPPED]:
            s += f" · already {c[SKIPPED]}"
        return s

    def bar_line(self, width: int = 30) -> str:
        frac = self.finished / self.total if self.total else 1.0
        fill = int(round(width * frac))
        eta = self.eta()
        return (f"[{'#' * fill}{'.' * (width - fill)}] {self.finished}/{self.total} | {self.status()} | "
                f"{self.rate():.2f} genes/s | elapsed {fmt_secs(self.elapsed())} | "
                f"ETA {'?' if eta is None else fmt_secs(eta)}")

    def summary(self) -> str:
        return f"{self.finished}/{self.total} genes finished ({self.status()}) in {fmt_secs(self.elapsed())}"


def gene_line(o: GeneOutcome) -> str | None:
    """The per-gene line of the console output (None for skipped/busy genes)."""
    if o.status == DONE:
        r2 = "n/a" if o.mean_r2 is None else f"{o.mean_r2:.3f}"
        return (f"{o.gene:<16} done    mean R² {r2}  ({o.n_clusters_kept} clusters, "
                f"{o.n_modulators} modulators)  {o.seconds:.2f}s")
    if o.status == ORPHAN:
        return f"{o.gene:<16} orphan  {o.reason}"
    if o.status == FAILED:
        return f"{o.gene:<16} FAILED  {o.reason}"
    return None


class Reporter:
    """Receives the events of a run; every method is a no-op here."""

    def run_started(self, start: RunStart) -> None:
        """Once, before any gene."""

    def message(self, text: str) -> None:
        """Information (strategy chosen, workers started...)."""

    def warning(self, text: str) -> None:
        """A problem that does not stop the run."""

    def gene_started(self, gene: str, worker: int) -> None:
        """A worker began fitting ``gene``."""

    def gene_finished(self, outcome: GeneOutcome) -> None:
        """A gene finished (done / orphan / failed) or was already finished (skipped)."""

    def run_finished(self, end: RunEnd) -> None:
        """Once, at the end (also after an interrupt)."""

    def aborted(self, error: BaseException) -> None:
        """The run stopped on an error after :meth:`run_started` (no :meth:`run_finished` follows)."""


class Reporters(Reporter):
    """Forward every event to several reporters."""

    def __init__(self, *reporters: Reporter) -> None:
        self.reporters = list(reporters)

    def run_started(self, start: RunStart) -> None:
        for r in self.reporters:
            r.run_started(start)

    def message(self, text: str) -> None:
        for r in self.reporters:
            r.message(text)

    def warning(self, text: str) -> None:
        for r in self.reporters:
            r.warning(text)

    def gene_started(self, gene: str, worker: int) -> None:
        for r in self.reporters:
            r.gene_started(gene, worker)

    def gene_finished(self, outcome: GeneOutcome) -> None:
        for r in self.reporters:
            r.gene_finished(outcome)

    def run_finished(self, end: RunEnd) -> None:
        for r in self.reporters:
            r.run_finished(end)

    def aborted(self, error: BaseException) -> None:
        for r in self.reporters:
            r.aborted(error)


class LogReporter(Reporter):
    """Python ``logging`` on ``spacetravlr_py.training`` (the default of :func:`~.run.train`)."""

    def message(self, text: str) -> None:
        log.info(text)

    def warning(self, text: str) -> None:
        log.warning(text)

    def run_started(self, start: RunStart) -> None:
        log.info("training %d genes of %s into %s", start.n_queued, start.dataset, start.output_dir)
        for w in start.warnings:
            log.warning(w)

    def gene_finished(self, outcome: GeneOutcome) -> None:
        line = gene_line(outcome)
        if line is not None:
            log.info(line)

    def run_finished(self, end: RunEnd) -> None:
        log.info(end.summary)


class ConsoleReporter(Reporter):
    """Progress a person can follow: start-up lines, one line per gene, a bar, the final summary.

    Parameters
    ----------
    stream : text stream, optional
        Default ``sys.stdout``. Warnings go to ``sys.stderr``.
    plain : bool
        Line-oriented output (forced when ``stream`` is not a terminal); otherwise a live Rich bar is
        shown above the per-gene lines.
    quiet : bool
        Only warnings and the final summary.
    bar_every : float
        Seconds between bar lines in plain mode.
    """

    def __init__(self, stream: IO[str] | None = None, *, plain: bool = False, quiet: bool = False,
                 bar_every: float = 2.0) -> None:
        self.stream = stream or sys.stdout
        self.plain = plain or not getattr(self.stream, "isatty", lambda: False)()
        self.quiet = quiet
        self.bar_every = bar_every
        self.tally = Tally(0)
        self._last_bar = 0.0
        self._rich: Any = None
        self._task: Any = None

    def _print(self, line: str) -> None:
        if self._rich is not None:
            self._rich.console.print(line, highlight=False, markup=False)
        else:
            print(line, file=self.stream, flush=True)

    def run_started(self, start: RunStart) -> None:
        self.tally = Tally(start.n_queued)
        if not self.plain and not self.quiet:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            self._rich = RichProgress(TextColumn("[bold]training"), BarColumn(), MofNCompleteColumn(),
                                      TextColumn("{task.fields[status]}"), TimeRemainingColumn(),
                                      console=Console(file=self.stream), transient=False)
            self._rich.__enter__()
            self._task = self._rich.add_task("train", total=start.n_queued, status="")
        self.message(f"dataset: {start.dataset} ({start.n_cells} cells × {start.n_genes} genes, "
                     f"{start.n_clusters} clusters from obs['{start.cluster_annot}'], layer '{start.layer or 'X'}')")
        if start.network is not None:
            self.message(f"network: {start.network} ({start.species})")
        for w in start.warnings:
            self.warning(w)
        self.message(f"output:  {start.output_dir}")

    def message(self, text: str) -> None:
        if not self.quiet:
            self._print(text)

    def warning(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def gene_finished(self, outcome: GeneOutcome) -> None:
        self.tally.add(outcome)
        if self.quiet:
            return
        line = gene_line(outcome)
        if line is not None:
            self._print(line)
        if self._rich is not None:
            self._rich.update(self._task, completed=self.tally.finished, status=self.tally.status())
        else:
            now = time.perf_counter()
            if now - self._last_bar >= self.bar_every or self.tally.finished == self.tally.total:
                self._last_bar = now
                self._print(self.tally.bar_line())

    def _close(self) -> None:
        if self._rich is not None:
            self._rich.__exit__(None, None, None)
            self._rich = None

    def run_finished(self, end: RunEnd) -> None:
        self._close()
        print(end.summary, file=self.stream, flush=True)

    def aborted(self, error: BaseException) -> None:
        self._close()

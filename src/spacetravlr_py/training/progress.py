"""Progress a person can follow: genes done / orphaned / failed, rate, ETA, one line per gene.

``plain`` mode writes lines (for logs, pipes and ``--plain``); on a terminal a live Rich progress bar
is shown above the per-gene lines.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any

from .gene import BUSY, DONE, FAILED, ORPHAN, SKIPPED, GeneOutcome


def _fmt_secs(s: float) -> str:
    s = max(0, int(round(s)))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


class Progress:
    """Counts outcomes and reports them.

    Parameters
    ----------
    total : int
        Genes in the queue (including ones already finished, which are counted as skipped).
    plain : bool
        Line-oriented output (forced when ``stream`` is not a TTY).
    quiet : bool
        Only the final summary.
    """

    def __init__(self, total: int, *, plain: bool = False, quiet: bool = False,
                 stream: IO[str] | None = None, bar_every: float = 2.0) -> None:
        self.total = total
        self.stream = stream or sys.stdout
        self.plain = plain or not getattr(self.stream, "isatty", lambda: False)()
        self.quiet = quiet
        self.counts = {DONE: 0, ORPHAN: 0, FAILED: 0, SKIPPED: 0, BUSY: 0}
        self.t0 = time.perf_counter()
        self._last_bar = 0.0
        self._bar_every = bar_every
        self._rich: Any = None
        self._task: Any = None

    def __enter__(self) -> Progress:
        if not self.plain and not self.quiet:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            self._rich = RichProgress(TextColumn("[bold]training"), BarColumn(), MofNCompleteColumn(),
                                      TextColumn("{task.fields[status]}"), TimeRemainingColumn(),
                                      console=Console(file=self.stream), transient=False)
            self._rich.__enter__()
            self._task = self._rich.add_task("train", total=self.total, status="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._rich is not None:
            self._rich.__exit__(None, None, None)

    @property
    def finished(self) -> int:
        return self.counts[DONE] + self.counts[ORPHAN] + self.counts[FAILED] + self.counts[SKIPPED]

    def rate(self) -> float:
        worked = self.counts[DONE] + self.counts[ORPHAN] + self.counts[FAILED]
        dt = time.perf_counter() - self.t0
        return worked / dt if dt > 0 else 0.0

    def status(self) -> str:
        c = self.counts
        s = f"done {c[DONE]} · orphan {c[ORPHAN]} · failed {c[FAILED]}"
        if c[SKIPPED]:
            s += f" · already {c[SKIPPED]}"
        return s

    def bar_line(self) -> str:
        width = 30
        frac = self.finished / self.total if self.total else 1.0
        fill = int(round(width * frac))
        r = self.rate()
        left = self.total - self.finished
        eta = _fmt_secs(left / r) if r > 0 else "?"
        return (f"[{'#' * fill}{'.' * (width - fill)}] {self.finished}/{self.total} | {self.status()} | "
                f"{r:.2f} genes/s | elapsed {_fmt_secs(time.perf_counter() - self.t0)} | ETA {eta}")

    def _print(self, line: str) -> None:
        if self._rich is not None:
            self._rich.console.print(line, highlight=False, markup=False)
        else:
            print(line, file=self.stream, flush=True)

    def message(self, line: str) -> None:
        """A free-form line (start-up information, warnings)."""
        if not self.quiet:
            self._print(line)

    def update(self, o: GeneOutcome) -> None:
        self.counts[o.status] = self.counts.get(o.status, 0) + 1
        if self.quiet:
            return
        if o.status == DONE:
            r2 = "n/a" if o.mean_r2 is None else f"{o.mean_r2:.3f}"
            self._print(f"{o.gene:<16} done    mean R² {r2}  ({o.n_clusters_kept} clusters, "
                        f"{o.n_modulators} modulators)  {o.seconds:.2f}s")
        elif o.status == ORPHAN:
            self._print(f"{o.gene:<16} orphan  {o.reason}")
        elif o.status == FAILED:
            self._print(f"{o.gene:<16} FAILED  {o.reason}")
        if self._rich is not None:
            self._rich.update(self._task, completed=self.finished, status=self.status())
        else:
            now = time.perf_counter()
            if now - self._last_bar >= self._bar_every or self.finished == self.total:
                self._last_bar = now
                self._print(self.bar_line())

    def summary(self) -> str:
        return (f"{self.finished}/{self.total} genes finished ({self.status()}) in "
                f"{_fmt_secs(time.perf_counter() - self.t0)}")

"""The live training dashboard (Textual): run configuration, progress, fit quality, the run's processes
and a log tail, with ``q`` (stop cleanly), ``p`` (pause / resume) and ``?`` (help).

:func:`train_with_dashboard` runs :func:`~spacetravlr_py.training.train` in a thread with a
:class:`~.state.DashboardReporter` while :class:`TrainingDashboard` owns the terminal (and the signals)
in the main thread. Genes are trained by worker processes (:class:`ProcessExecutor`, at least one), so a
stop abandons the genes in flight exactly like Ctrl-C: no partial file, locks released.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any, ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Footer, Header, ProgressBar, RichLog, Static

from ..training.reporters import fmt_secs
from ..training.results import DONE, FAILED, ORPHAN
from . import plots
from .procs import ProcessSampler, fmt_bytes
from .state import (
    PATH_ROWS,
    THREAD_DONE,
    DashboardReporter,
    DashboardState,
    QueueLogHandler,
    config_rows,
    heldout_text,
)
from .terminal import logging_to, screen_on_stdout, stderr_captured
from .widgets import HelpScreen

HELP = """\
[b]Training dashboard[/b]

[b]q[/b]       stop cleanly: finished genes are kept, genes being trained are abandoned
        without partial files, locks are released; run the same command again to continue
[b]p[/b]       pause / resume handing out genes (genes in flight finish)
[b]?[/b]       this help (Esc closes it)
[b]ctrl+c[/b]  stop like q, and exit with code 130 as an interrupted run does

Panels: the effective configuration (what the run's repro TOML holds); progress (genes done,
orphaned, failed, finished before this run, remaining; rate, elapsed time and ETA; the gene each
worker is training); quality (the last finished genes, a histogram of mean R² over finished genes,
the worst genes so far); CPU and memory of this process and its workers; the log (warnings in
yellow). The dashboard closes when the run ends and leaves the run's summary line on the terminal.
"""

RECENT_COLUMNS = ("gene", "status", "mean R²", "clusters", "modulators", "held-out R²", "seconds")
STATUS_STYLE = {DONE: "green", ORPHAN: "yellow", FAILED: "bold red"}


class TrainingDashboard(App[None]):
    """The dashboard. ``work`` (optional) is started in a thread once the screen is up; without it the
    dashboard only draws the events given to :attr:`reporter` (as the tests do)."""

    TITLE = "spacetravlr · training"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "stop", "stop cleanly"),
        Binding("p", "pause", "pause/resume"),
        Binding("question_mark", "help", "help"),
        Binding("ctrl+c", "interrupt", "interrupt", show=False, priority=True),
        Binding("ctrl+q", "stop", "stop", show=False, priority=True),
    ]
    CSS = """
    #top { height: 16; }
    #middle, #bottom { height: 1fr; }
    .panel { height: 1fr; border: round $primary-darken-1; border-title-color: $accent; padding: 0 1; }
    #config { width: 2fr; }
    #progress-box { width: 3fr; }
    #counts { height: 2; }
    #bar { height: 1; margin: 0 0 1 0; }
    #inflight { height: 1fr; }
    #recent { width: 1fr; }
    #quality-side { width: 48; }
    #hist { height: 7; }
    #procs { width: 2fr; }
    #log { width: 3fr; }
    """

    def __init__(self, reporter: DashboardReporter | None = None, control: Any = None,
                 work: Callable[[], None] | None = None, clock: Callable[[], float] | None = None,
                 stderr_capture: IO[bytes] | None = None, sample_processes: bool = True) -> None:
        super().__init__()
        self.reporter = reporter or DashboardReporter()
        self.state = DashboardState(clock=clock or self.reporter.clock)
        self.control = control
        self.work = work
        self.stop_reason: str | None = None
        """None (ran to the end), ``"q"`` (asked to stop) or ``"interrupt"`` (ctrl+c, SIGINT, SIGTERM)."""
        self._drawn_version = -1
        self._log_seen = 0
        self._stderr = stderr_capture
        self._stderr_pos = 0
        self._sampler = ProcessSampler() if sample_processes else None
        self._thread: threading.Thread | None = None
        if work is not None:
            _start_resource_tracker()

    # -- layout --------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="top"):
            yield Static("loading inputs…", id="config", classes="panel")
            with Vertical(id="progress-box", classes="panel"):
                yield Static("", id="counts")
                yield ProgressBar(total=None, show_eta=False, id="bar")
                yield DataTable(id="inflight", show_cursor=False, zebra_stripes=True)
        with Horizontal(id="middle"):
            yield DataTable(id="recent", classes="panel", show_cursor=False, zebra_stripes=True)
            with Vertical(id="quality-side", classes="panel"):
                yield Static("", id="hist")
                yield Static("", id="worst")
        with Horizontal(id="bottom"):
            yield Static("", id="procs", classes="panel")
            yield RichLog(id="log", classes="panel", max_lines=400, wrap=True, markup=False)
        yield Footer()

    def on_mount(self) -> None:
        titles = {"#config": "run configuration", "#progress-box": "progress", "#recent": "last finished genes",
                  "#quality-side": "quality", "#procs": "processes", "#log": "log"}
        for sel, title in titles.items():
            self.query_one(sel).border_title = title
        self.query_one("#inflight", DataTable).add_columns("worker", "gene", "elapsed")
        self.query_one("#recent", DataTable).add_columns(*RECENT_COLUMNS)
        self.sub_title = "loading inputs…"
        self.set_interval(0.2, self.refresh_from_events)
        if self._sampler is not None:
            self.set_interval(1.0, self.refresh_processes)
            self.refresh_processes()
        if self.work is not None:
            self._thread = threading.Thread(target=self.work, name="spacetravlr-training", daemon=True)
            self._thread.start()

    # -- actions -------------------------------------------------------------------------------

    def action_stop(self) -> None:
        self._stop("q")

    def action_interrupt(self) -> None:
        self._stop("interrupt")

    def _stop(self, reason: str) -> None:
        if self.state.thread_done or self.control is None:
            self.exit()
            return
        if self.stop_reason is None:
            self.stop_reason = reason
            self.control.stop()
            self.notify("stopping: genes in flight are abandoned, finished genes are kept", timeout=5)
        self._draw_status()

    def action_pause(self) -> None:
        if self.control is None or self.stop_reason is not None or self.state.thread_done:
            return
        if self.control.paused:
            self.control.resume()
        else:
            self.control.pause()
        self._draw_status()

    def action_help(self) -> None:
        self.push_screen(HelpScreen(HELP))

    # -- drawing -------------------------------------------------------------------------------

    def refresh_from_events(self) -> None:
        """Apply the queued events, then redraw what changed (and the clocks, which always change)."""
        log = self.query_one("#log", RichLog)
        for ev in self.reporter.drain():
            self.state.apply(ev)
        self._draw_log(log)
        self._tail_stderr(log)
        st = self.state
        if st.version != self._drawn_version:
            self._drawn_version = st.version
            self._draw_config()
            self._draw_recent()
            self._draw_quality()
        self._draw_progress()
        self._draw_status()
        if st.thread_done:
            self.exit()

    def _draw_log(self, log: RichLog) -> None:
        st = self.state
        new = min(st.log_seq - self._log_seen, len(st.log))
        self._log_seen = st.log_seq
        for line in list(st.log)[len(st.log) - new:] if new > 0 else []:
            style = "bold red" if line.level >= logging.ERROR else "bold yellow" if line.level >= logging.WARNING \
                else ""
            log.write(Text(line.text, style=style))

    def _tail_stderr(self, log: RichLog) -> None:
        """Lines written to the standard error of this process or its workers (captured, not drawn over
        the screen)."""
        if self._stderr is None:
            return
        data = os.pread(self._stderr.fileno(), 1 << 16, self._stderr_pos)
        cut = data.rfind(b"\n") + 1  # whole lines only
        if cut:
            self._stderr_pos += cut
            for line in data[:cut].decode("utf-8", "replace").splitlines():
                if line.strip():
                    log.write(Text(line, style="yellow"))

    def _draw_status(self) -> None:
        st = self.state
        if self.stop_reason is not None and not st.thread_done:
            s = "stopping: abandoning genes in flight…"
        elif self.control is not None and self.control.paused:
            s = "paused: no new genes are handed out (p resumes)"
        else:
            s = st.phase
        self.sub_title = s

    def _draw_config(self) -> None:
        st = self.state
        if st.start is None:
            return
        rows = config_rows(st.start)
        panel = self.query_one("#config", Static)
        label_w = max(len(k) for k, _ in rows)
        width = max(panel.content_size.width - label_w - 1, 12) if panel.content_size.width else 1000
        t = Table.grid(padding=(0, 1))
        t.add_column(style="bold", no_wrap=True)
        t.add_column(no_wrap=True, overflow="ellipsis")
        for k, v in rows:
            t.add_row(k, fit_left(v, width) if k in PATH_ROWS else v)
        panel.update(t)
        self.title = f"spacetravlr · training {os.path.basename(st.start.dataset)}"

    def on_resize(self) -> None:
        self.call_after_refresh(self._draw_config)

    def _draw_progress(self) -> None:
        st = self.state
        tally = st.tally
        if tally is None:
            return
        c = st.counts()
        eta = tally.eta()
        done_all = st.end is not None
        text = Text()
        text.append(f"done {c[DONE]:,}", style="green")
        text.append(f" · orphan {c[ORPHAN]:,}", style="yellow")
        text.append(f" · failed {c[FAILED]:,}", style="bold red" if c[FAILED] else "")
        if c["already"]:
            text.append(f" · already finished {c['already']:,}")
        text.append(f" · remaining {c['remaining']:,} of {c['total']:,}\n")
        text.append(f"rate {tally.rate():.2f} genes/s · elapsed {fmt_secs(tally.elapsed())} · ETA "
                    f"{'—' if done_all else ('?' if eta is None else fmt_secs(eta))}")
        self.query_one("#counts", Static).update(text)
        bar = self.query_one("#bar", ProgressBar)
        bar.update(total=max(c["total"], 1), progress=tally.finished)
        table = self.query_one("#inflight", DataTable)
        table.clear()
        for w, g, secs in st.running():
            table.add_row(str(w), g, fmt_secs(secs))

    def _draw_recent(self) -> None:
        table = self.query_one("#recent", DataTable)
        table.clear()
        for o in self.state.recent:
            r2 = "" if o.mean_r2 is None else f"{o.mean_r2:.3f}"
            mods = str(o.n_modulators) if o.status != FAILED else ""
            clusters = str(o.n_clusters_kept) if o.status == DONE else ""
            table.add_row(o.gene, Text(o.status, style=STATUS_STYLE.get(o.status, "")), r2, clusters, mods,
                          heldout_text(o), f"{o.seconds:.2f}")

    def _draw_quality(self) -> None:
        st = self.state
        vals = list(st.r2.values())
        head = Text(f"mean R² of {len(vals):,} fitted genes\n", style="bold")
        head.append("\n".join(plots.column_histogram(vals)))
        self.query_one("#hist", Static).update(head)
        worst = Text("worst genes so far\n", style="bold")
        worst.append("\n".join(f"{g:<18} {r:.3f}" for g, r in st.worst()) or "—")
        self.query_one("#worst", Static).update(worst)

    def refresh_processes(self) -> None:
        if self._sampler is None:
            return
        rows = self._sampler.sample()
        t = Table(box=None, padding=(0, 1), show_edge=False, header_style="bold")
        t.add_column("process")
        for name in ("pid", "CPU", "memory"):
            t.add_column(name, justify="right")
        for r in rows[:12]:
            t.add_row(r.role, str(r.pid), f"{r.cpu_percent:.0f}%", fmt_bytes(r.rss))
        if len(rows) > 12:
            t.add_row("…", f"{len(rows) - 12} more", "", "")
        t.add_row("all", str(len(rows)), f"{sum(r.cpu_percent for r in rows):.0f}%",
                  fmt_bytes(sum(r.rss for r in rows)), style="bold")
        avail, total = self._sampler.system_memory()
        machine = Text(f"machine: {os.cpu_count()} cores, {fmt_bytes(avail)} free of {fmt_bytes(total)}",
                       style="dim")
        self.query_one("#procs", Static).update(Group(t, machine))


def fit_left(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters from the left (paths keep their file name): ``…/b/c.h5ad``."""
    return text if len(text) <= width else "…" + text[len(text) - width + 1:]


# -- running a training under the dashboard ------------------------------------------------------


def _start_resource_tracker() -> None:
    """Start multiprocessing's resource tracker now, while ``sys.stderr`` is a real file: started later
    by the first worker process, it would pass the descriptor of Textual's stand-in for ``sys.stderr``
    (-1) and fail."""
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()


@dataclass
class DashboardRun:
    """How a training under the dashboard ended."""

    result: Any
    """The :class:`~spacetravlr_py.training.RunResult` (None when the run failed to start)."""
    stop_reason: str | None
    """None, ``"q"`` or ``"interrupt"`` (see :attr:`TrainingDashboard.stop_reason`)."""
    warnings: list[str]
    """The run's warnings (shown in the log panel; the console prints them on standard error)."""
    summary: str | None
    """The final summary line (as the plain output's last line)."""


@contextlib.contextmanager
def _signals_stop(app: TrainingDashboard) -> Iterator[None]:
    """SIGINT / SIGTERM from outside stop the run cleanly, as ctrl+c does (the terminal is in raw mode, so
    a typed ctrl+c arrives as a key)."""
    def handler(signum: int, frame: object) -> None:
        app.stop_reason = app.stop_reason or "interrupt"
        if app.control is not None:
            app.control.stop()

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


class TrainingJob:
    """:func:`~spacetravlr_py.training.train` of ``cfg`` as the dashboard's work: reports to a
    :class:`DashboardReporter`, obeys a :class:`RunControl`, trains with worker processes.

    Parameters
    ----------
    cfg : SpaceshipConfig
    n_workers : int, optional
        Worker processes (default ``[execution].n_parallel``, at least 1: with processes a stop abandons
        the genes in flight at once, as Ctrl-C does).
    """

    def __init__(self, cfg: Any, n_workers: int | None = None) -> None:
        from ..training import ProcessExecutor, RunControl

        self.cfg = cfg
        self.reporter = DashboardReporter()
        self.control = RunControl()
        self.executor = ProcessExecutor(max(1, n_workers or cfg.execution.n_parallel))
        self.result: Any = None
        self.error: BaseException | None = None

    def __call__(self) -> None:
        from ..training import train

        try:
            self.result = train(self.cfg, executor=self.executor, reporter=self.reporter, control=self.control)
        except BaseException as e:  # re-raised in the main thread once the terminal is back
            self.error = e
        finally:
            self.reporter.put(THREAD_DONE, self.error)

    def app(self, **kw: Any) -> TrainingDashboard:
        return TrainingDashboard(self.reporter, self.control, self, **kw)

    def logging(self) -> contextlib.AbstractContextManager[None]:
        """Route the package's log records to the dashboard while the run lasts."""
        return logging_to(QueueLogHandler(self.reporter))

    def outcome(self, app: TrainingDashboard) -> DashboardRun:
        """How the run ended (raises the run's error); call after the screen has closed."""
        if app._thread is not None and app._thread.is_alive():  # the screen closed early (it failed)
            self.control.stop()
            app._thread.join()
        if self.error is not None:
            raise self.error
        for ev in self.reporter.drain():  # the screen may close before drawing the last events
            app.state.apply(ev)
        st = app.state
        return DashboardRun(result=self.result, stop_reason=app.stop_reason,
                            warnings=list(dict.fromkeys(st.warnings)), summary=st.end.summary if st.end else None)


def train_with_dashboard(cfg: Any, *, n_workers: int | None = None) -> DashboardRun:
    """Train ``cfg`` under the dashboard; return how it ended once the terminal is restored.

    Parameters
    ----------
    cfg : SpaceshipConfig
    n_workers : int, optional
        Worker processes (default ``[execution].n_parallel``, at least 1).

    Raises
    ------
    Whatever :func:`~spacetravlr_py.training.train` raised (e.g. an input error), after the dashboard
    has closed.
    """
    job = TrainingJob(cfg, n_workers)
    with stderr_captured() as capture:
        app = job.app(stderr_capture=capture)
        with job.logging(), _signals_stop(app), screen_on_stdout(capture):
            app.run()
    return job.outcome(app)

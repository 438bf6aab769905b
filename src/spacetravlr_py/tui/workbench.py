"""The perturbation workbench (Textual): pick a gene, a value, the steps and the cells, run the
perturbation in the background (Esc cancels), read the result (top affected genes, per-cluster impact,
a map of the change on the tissue, timings), export it as the CLI does, and look back at the session's
runs.

Screens: :class:`OpenRunScreen` (which run to open, with path completion), :class:`WorkbenchScreen`
(the workbench), and dialogs for the value, steps, scope, cells CSV, export and history.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import (
    DataTable,
    Footer,
    Header,
    Input,
    ProgressBar,
    Static,
)

from ..errors import SpaceTravLRError
from . import plots
from .dialogs import CellsCsvDialog, ExportDialog, HistoryScreen, OpenRunScreen, ScopeDialog
from .genes import (
    GeneRow,
    HistoryEntry,
    Scope,
    cell_impact,
    export_result,
    filter_rows,
    gene_rows,
    keep_latest_results,
    parse_desired,
    parse_steps,
    slug,
    top_rows,
)
from .widgets import HelpScreen, ValueDialog

HELP = """\
[b]Perturbation workbench[/b]

[b]/[/b]        filter the genes (words of the name; tf / ligand / receptor keep genes with that role);
         Enter or ↓ goes back to the list
[b]↑ ↓[/b]      pick the gene to perturb (its role, how many trained genes it modulates, its range)
[b]e[/b]        desired expression (a value ≥ 0, 'max' = observed maximum, 'ko' = 0)
[b]p[/b]        propagation steps (n_propagation)
[b]s[/b]        scope: all cells, cell types or clusters picked from a list (space toggles, Enter applies)
[b]ctrl+o[/b]   scope from a column of a cells CSV
[b]r[/b]        run the perturbation (in the background; [b]Esc[/b] cancels after the current step)
[b]ctrl+v[/b]   timings per step
[b]x[/b]        export the result shown: feather + JSON (+ transition field and figures), as
         spacetravlr-perturb --out PATH [--field] writes them
[b]h[/b]        history of this session's runs and their exports (Enter shows a run again)
[b]q[/b]        quit        [b]?[/b] this help

Results: the top affected genes by mean |Δ| over all cells (mean Δ and direction), mean |Δ| per
cluster over the genes not perturbed, and the same per cell on the tissue (viridis, brighter = more).
"""


class RunCancelled(Exception):
    """Raised from the perturbation's step callback when the user cancels."""


# -- the workbench ------------------------------------------------------------------------------------


class WorkbenchScreen(Screen[None]):
    """Genes on the left; the perturbation's settings, progress and result on the right."""

    BINDINGS: ClassVar[list[BindingType]] = [
        # priority: focus moves at once, so the characters typed right after "/" reach the filter
        Binding("slash", "filter", "filter", priority=True),
        Binding("e", "desired", "value"),
        Binding("p", "steps", "steps"),
        Binding("s", "scope", "scope"),
        Binding("ctrl+o", "cells_csv", "cells CSV", show=False),
        Binding("r", "run", "run"),
        Binding("escape", "cancel", "cancel", show=False),
        Binding("x", "export", "export"),
        Binding("h", "history", "history"),
        Binding("ctrl+v", "timings", "timings"),
    ]
    AUTO_FOCUS = "#genes"
    DEFAULT_CSS = """
    WorkbenchScreen #left { width: 52; }
    WorkbenchScreen #filter { height: 3; }
    WorkbenchScreen #genes { height: 1fr; }
    WorkbenchScreen .panel { border: round $primary-darken-1; border-title-color: $accent; padding: 0 1; }
    WorkbenchScreen #settings { height: auto; }
    WorkbenchScreen #status-row { height: 2; padding: 0 1; }
    WorkbenchScreen #progress { width: 40; }
    WorkbenchScreen #results { height: 1fr; }
    WorkbenchScreen #top { width: 1fr; height: 1fr; }
    WorkbenchScreen #side { width: 1fr; height: 1fr; }
    WorkbenchScreen #clusters { height: auto; max-height: 45%; }
    WorkbenchScreen #map { height: 1fr; }
    WorkbenchScreen #timings { height: auto; display: none; }
    """

    def __init__(self, session: Any) -> None:
        super().__init__()
        self.session = session
        self.rows = gene_rows(session.betabase, session.tissue)
        self.by_gene = {r.gene: r for r in self.rows}
        self.gene: GeneRow | None = self.rows[0] if self.rows else None
        self.desired = 0.0
        self.n_propagation: int = session.perturber.s.n_propagation
        self.scope = Scope()
        self.scope_cells = session.tissue.n_cells
        self.history: list[HistoryEntry] = []
        self.shown: HistoryEntry | None = None
        self.running = False
        self._cancel = threading.Event()

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            with Vertical(id="left"):
                yield Input(placeholder="/ filter genes (tf, ligand, receptor, or part of a name)", id="filter")
                yield DataTable(id="genes", cursor_type="row", zebra_stripes=True, classes="panel")
            with Vertical(id="right"):
                yield Static("", id="settings", classes="panel")
                with Horizontal(id="status-row"):
                    yield ProgressBar(total=1, show_eta=False, id="progress")
                    yield Static("ready: r runs the perturbation", id="status")
                with Horizontal(id="results"):
                    yield DataTable(id="top", classes="panel", show_cursor=False, zebra_stripes=True)
                    with Vertical(id="side"):
                        yield Static("", id="clusters", classes="panel")
                        yield Static("", id="map", classes="panel")
                        yield Static("", id="timings", classes="panel")
        yield Footer()

    def on_mount(self) -> None:
        s = self.session
        self.app.title = "spacetravlr-perturb · workbench"
        self.app.sub_title = (f"{s.run_dir} · {s.tissue.n_cells:,} cells × {s.tissue.n_genes:,} genes · "
                              f"{len(s.betabase)} trained")
        titles = {"#genes": f"genes ({len(self.rows)})", "#settings": "perturbation", "#top": "top affected genes",
                  "#clusters": "mean |Δ| per cluster", "#map": "mean |Δ| on the tissue", "#timings": "timings"}
        for sel, title in titles.items():
            self.query_one(sel).border_title = title
        self.query_one("#genes", DataTable).add_columns("gene", "role", "targets", "range")
        self.query_one("#top", DataTable).add_columns("gene", "mean Δ", "mean |Δ|", "direction")
        self._fill_genes("")
        self.query_one("#genes", DataTable).focus()

    # -- the gene list ----------------------------------------------------------------------------

    def _fill_genes(self, text: str) -> None:
        table = self.query_one("#genes", DataTable)
        table.clear()
        shown = filter_rows(self.rows, text)
        for r in shown:
            table.add_row(r.gene, r.role_text, str(r.n_targets), f"{r.lo:.3g}–{r.hi:.3g}", key=r.gene)
        table.border_title = f"genes ({len(shown)} of {len(self.rows)})" if text else f"genes ({len(self.rows)})"
        # the gene to perturb is always one of the genes shown (none when the filter matches none)
        if self.gene not in shown:
            self.gene = shown[0] if shown else None
        if self.gene is not None:
            table.move_cursor(row=shown.index(self.gene))
        self._draw_settings()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            self._fill_genes(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            self.query_one("#genes", DataTable).focus()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "genes" and event.row_key.value in self.by_gene:
            self.gene = self.by_gene[str(event.row_key.value)]
            self._draw_settings()

    def action_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    # -- settings ---------------------------------------------------------------------------------

    def _draw_settings(self) -> None:
        g = self.gene
        t = Table.grid(padding=(0, 2))
        t.add_column(style="bold")
        t.add_column()
        if g is None:
            t.add_row("gene", "— (no gene matches the filter)")
        else:
            t.add_row("gene", f"{g.gene}  ({g.role_text} · modulates {g.n_targets} trained genes"
                      f"{' · trained' if g.trained else ''})")
            what = "knockout" if self.desired == 0 else ("overexpression" if self.desired > g.hi else "set")
            t.add_row("desired", f"{self.desired:g} ({what}) · observed {g.lo:.3g}–{g.hi:.3g}   [e]")
        t.add_row("steps", f"n_propagation {self.n_propagation}   [p]")
        t.add_row("scope", f"{self.scope.describe()} ({self.scope_cells:,} cells)   [s, ctrl+o]")
        self.query_one("#settings", Static).update(t)

    def action_desired(self) -> None:
        g = self.gene
        if g is None:
            return

        def done(value: str | None) -> None:
            if value is not None:
                self.desired = parse_desired(value, g)
                self._draw_settings()

        help_text = (f"{g.gene} is observed between {g.lo:.4g} and {g.hi:.4g}. A value >= 0; 'max' = {g.hi:.4g}; "
                     "'ko' or 0 = knockout.")
        self.app.push_screen(ValueDialog(f"desired expression of {g.gene}", help_text, f"{self.desired:g}",
                                         check=lambda v: parse_desired(v, g)), done)

    def action_steps(self) -> None:
        def done(value: str | None) -> None:
            if value is not None:
                self.n_propagation = parse_steps(value)
                self._draw_settings()

        self.app.push_screen(ValueDialog("propagation steps (n_propagation)", "a whole number >= 1 (the run's "
                                         f"default is {self.session.perturber.s.n_propagation})",
                                         str(self.n_propagation), check=parse_steps), done)

    def _set_scope(self, scope: Scope | None) -> None:
        if scope is None:
            return
        try:
            mask, _ = scope.resolve(self.session)
        except SpaceTravLRError as e:
            self.notify(str(e), severity="error", timeout=8)
            return
        self.scope, self.scope_cells = scope, int(mask.sum())
        self._draw_settings()

    def action_scope(self) -> None:
        self.app.push_screen(ScopeDialog(self.session.tissue, self.scope), self._set_scope)

    def action_cells_csv(self) -> None:
        self.app.push_screen(CellsCsvDialog(self.scope), self._set_scope)

    # -- running --------------------------------------------------------------------------------

    def action_run(self) -> None:
        if self.running or self.gene is None:
            if self.running:
                self.notify("a perturbation is running (Esc cancels it)")
            return
        entry = HistoryEntry(len(self.history) + 1, [self.gene.gene], [self.desired], self.scope.describe(),
                             self.scope_cells, self.n_propagation, "running")
        self.history.append(entry)
        self.running = True
        self._cancel.clear()
        bar = self.query_one("#progress", ProgressBar)
        bar.update(total=self.n_propagation, progress=0)
        self._status(f"run {entry.number}: {entry.what} in {entry.scope_label} · step 0/{self.n_propagation} "
                     "· Esc cancels")
        self._perturb(entry, self.scope)

    @work(thread=True, exclusive=True, group="perturb", exit_on_error=False)
    def _perturb(self, entry: HistoryEntry, scope: Scope) -> None:
        t0 = time.perf_counter()

        def on_step(step: int, n: int) -> None:
            if self._cancel.is_set():
                raise RunCancelled
            self.app.call_from_thread(self._step, entry, step, n)

        try:
            mask, label = scope.resolve(self.session)
            res = self.session.run(entry.genes, entry.desired, scope=mask, scope_label=label,
                                   n_propagation=entry.n_propagation, on_step=on_step)
        except RunCancelled:
            entry.status = "cancelled"
        except SpaceTravLRError as e:
            entry.status, entry.message = "failed", str(e)
        else:
            entry.status, entry.result, entry.top = "done", res, top_rows(res)
            entry.scope_label, entry.n_scope_cells = res.scope_label, int(res.scope.sum())
        entry.seconds = time.perf_counter() - t0
        self.app.call_from_thread(self._finished, entry)

    def _step(self, entry: HistoryEntry, step: int, n: int) -> None:
        self.query_one("#progress", ProgressBar).update(total=n, progress=step)
        if not self._cancel.is_set():
            self._status(f"run {entry.number}: {entry.what} in {entry.scope_label} · step {step}/{n} · Esc cancels")

    def _finished(self, entry: HistoryEntry) -> None:
        self.running = False
        if entry.status == "cancelled":
            done = int(self.query_one("#progress", ProgressBar).progress or 0)
            entry.message = f"cancelled after step {done}/{entry.n_propagation}"
            self._status(f"run {entry.number}: {entry.message}", "yellow")
        elif entry.status == "failed":
            self._status(f"run {entry.number} failed: {entry.message}", "bold red")
        else:
            keep_latest_results(self.history)
            self.show(entry)

    def action_cancel(self) -> None:
        if self.running:
            self._cancel.set()
            self._status("cancelling after the current step…", "yellow")
        elif self.focused is self.query_one("#filter", Input):
            self.query_one("#genes", DataTable).focus()

    def _status(self, text: str, style: str = "") -> None:
        self.query_one("#status", Static).update(Text(text, style=style))

    # -- results --------------------------------------------------------------------------------

    def show(self, entry: HistoryEntry) -> None:
        """Draw a finished run: status line, top genes, clusters, map, timings."""
        res = entry.result
        self.shown = entry
        t = res.timings
        self._status(f"run {entry.number}: {entry.what} · {res.scope_label} ({int(res.scope.sum()):,} cells) · "
                     f"{res.n_propagation} steps · {t['total_s']:.2f} s · x exports", "green")
        table = self.query_one("#top", DataTable)
        table.clear()
        for g, d, m, direction in entry.top:
            arrow = {"up": "↑ up", "down": "↓ down"}.get(direction, direction)
            table.add_row(g, f"{d:+.4g}", f"{m:.4g}", Text(arrow, style="green" if direction == "up" else "red"))
        if not entry.top:
            table.add_row("no other gene changed", "", "", "")
        impact = res.cluster_impact()
        lines = plots.bar_lines(list(impact), list(impact.values()), width=24, fmt="{:.3g}")
        self.query_one("#clusters", Static).update("\n".join(lines))
        self._draw_map()
        self._draw_timings()

    def _draw_map(self) -> None:
        if self.shown is None or self.shown.result is None:
            return
        res = self.shown.result
        panel = self.query_one("#map", Static)
        w = max(panel.content_size.width, 20) if panel.content_size.width else 48
        h = max(panel.content_size.height - 1, 4) if panel.content_size.height else 14
        panel.update(plots.spatial_map(res.tissue.coords, cell_impact(res), width=w, height=h))

    def on_resize(self) -> None:
        self.call_after_refresh(self._draw_map)

    def _draw_timings(self) -> None:
        if self.shown is None or self.shown.result is None:
            return
        res = self.shown.result
        t = Table(box=None, padding=(0, 1), show_edge=False, header_style="bold")
        for name in ("step", "received ligands", "splash + propagate"):
            t.add_column(name, justify="right")
        for i, st in enumerate(res.steps, 1):
            t.add_row(str(i), f"{st['received_s'] * 1e3:.1f} ms", f"{st['propagate_s'] * 1e3:.1f} ms")
        tm = res.timings
        total = Text(f"total {tm['total_s']:.3f} s · received {tm['received_s']:.3f} s · propagate "
                     f"{tm['propagate_s']:.3f} s · engine prepared once in {tm['prepare_s']:.2f} s", style="dim")
        self.query_one("#timings", Static).update(Group(t, total))

    def action_timings(self) -> None:
        panel = self.query_one("#timings", Static)
        panel.display = not panel.display
        self.query_one("#map", Static).display = not panel.display

    # -- export and history ----------------------------------------------------------------------

    def action_export(self) -> None:
        entry = self.shown
        if entry is None or entry.result is None:
            self.notify("no result to export yet: r runs a perturbation", severity="warning")
            return

        def done(answer: tuple[str, bool] | None) -> None:
            if answer is not None:
                self._status(f"exporting run {entry.number} to {answer[0]} …")
                self._export(entry, answer[0], answer[1])

        self.app.push_screen(ExportDialog(os.path.join(os.getcwd(), f"{slug(entry.result)}.feather")), done)

    @work(thread=True, group="export", exit_on_error=False)
    def _export(self, entry: HistoryEntry, out: str, figures: bool) -> None:
        try:
            paths = export_result(entry.result, Path(out).expanduser(), figures=figures,
                                  reference_compat=self.session.cfg.reference_compat)
        except (SpaceTravLRError, OSError) as e:
            self.app.call_from_thread(self._status, f"export failed: {e}", "bold red")
            return
        entry.exports.extend(paths.values())
        self.app.call_from_thread(self._exported, entry, list(paths.values()))

    def _exported(self, entry: HistoryEntry, paths: list[Path]) -> None:
        self._status(f"run {entry.number}: wrote {paths[0]} and {len(paths) - 1} more files "
                     f"({', '.join(p.suffix for p in paths[1:])})", "green")

    def action_history(self) -> None:
        def done(number: int | None) -> None:
            if number is None:
                return
            entry = self.history[number - 1]
            if entry.result is not None:
                self.show(entry)
            else:
                self.notify(f"run {number} ({entry.status}) is not held in memory; exports: "
                            f"{', '.join(map(str, entry.exports)) or 'none'}", timeout=8)

        self.app.push_screen(HistoryScreen(self.history), done)


class Workbench(App[int]):
    """The workbench on an opened :class:`RunSession`, or first :class:`OpenRunScreen` with ``opener``."""

    TITLE = "spacetravlr-perturb · workbench"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "quit"),
        Binding("question_mark", "help", "help"),
        Binding("ctrl+c", "interrupt", "interrupt", show=False, priority=True),
    ]

    def __init__(self, session: Any = None, opener: Callable[[str], Any] | None = None) -> None:
        super().__init__()
        if session is None and opener is None:
            raise ValueError("give a session or an opener")
        self.session = session
        self.opener = opener

    def on_mount(self) -> None:
        if self.session is not None:
            self.push_screen(WorkbenchScreen(self.session))
        else:
            assert self.opener is not None
            self.push_screen(OpenRunScreen(self.opener, self.open_session))

    def open_session(self, session: Any) -> None:
        """Replace the open-run screen by the workbench on ``session``."""
        self.session = session
        self.switch_screen(WorkbenchScreen(session))

    def action_help(self) -> None:
        self.push_screen(HelpScreen(HELP))

    def action_quit(self) -> None:  # type: ignore[override]
        self._leave(0)

    def action_interrupt(self) -> None:
        self._leave(130)  # as Ctrl-C ends the other programs

    def _leave(self, code: int) -> None:
        screen = self.screen
        if isinstance(screen, WorkbenchScreen):
            screen._cancel.set()  # a run in flight stops at its next step
        self.exit(code)


class NotifyHandler(logging.Handler):
    """The package's warnings (e.g. a target that modulates nothing) as notifications on the screen."""

    def __init__(self, app: App[Any]) -> None:
        super().__init__(logging.WARNING)
        self.app = app

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        try:
            self.app.call_from_thread(self.app.notify, msg, severity="warning", timeout=8)
        except RuntimeError:  # on the app's own thread
            self.app.notify(msg, severity="warning", timeout=8)


def run_workbench(session: Any = None, opener: Callable[[str], Any] | None = None) -> int:
    """Open the workbench on the terminal; return the exit code (0)."""
    from .terminal import logging_to, screen_on_stdout, stderr_captured

    app = Workbench(session, opener)
    with stderr_captured() as capture, logging_to(NotifyHandler(app), logging.WARNING), \
            screen_on_stdout(capture):
        code = app.run()
    return 0 if code is None else int(code)

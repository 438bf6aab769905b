"""The workbench's dialogs: scope, cells CSV, export, history, and the screen that opens a run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import (
    Checkbox,
    DataTable,
    Footer,
    Header,
    Input,
    Label,
    LoadingIndicator,
    OptionList,
    RadioButton,
    RadioSet,
    SelectionList,
    Static,
)

from ..errors import SpaceTravLRError
from .genes import ALL, CELL_TYPES, CELLS_CSV, CLUSTERS, HistoryEntry, Scope, csv_columns
from .widgets import DIALOG_CSS, PathInput, complete_path

# -- dialogs ------------------------------------------------------------------------------------------


class ScopeDialog(ModalScreen[Scope | None]):
    """All cells, cell types or clusters from a list; ctrl+o picks a cells-CSV column instead."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "cancel"),
        Binding("enter", "apply", "apply", priority=True),
        Binding("a", "mode(0)", "all cells"),
        Binding("t", "mode(1)", "cell types"),
        Binding("c", "mode(2)", "clusters"),
        Binding("ctrl+o", "cells_csv", "cells CSV"),
    ]
    DEFAULT_CSS = DIALOG_CSS.format(name="ScopeDialog") + """
    ScopeDialog RadioSet { width: 100%; layout: horizontal; height: auto; }
    ScopeDialog SelectionList { height: auto; max-height: 20; }
    """
    MODES = (ALL, CELL_TYPES, CLUSTERS)

    def __init__(self, tissue: Any, current: Scope) -> None:
        super().__init__()
        self.tissue = tissue
        self.current = current
        self.sizes = [int(n) for n in tissue.cluster_sizes()]
        self.mode = -1

    def compose(self) -> ComposeResult:
        mode = self.MODES.index(self.current.kind) if self.current.kind in self.MODES else 0
        with Vertical():
            yield Label("scope: which cells are perturbed", classes="title")
            yield Static("a / t / c: all cells, cell types, clusters · space toggles · Enter applies · "
                         "ctrl+o: a column of a cells CSV · Esc cancels", classes="help")
            with RadioSet(id="mode"):
                for k, m in enumerate(self.MODES):
                    yield RadioButton(m, value=k == mode)
            yield SelectionList[str](id="items")
            yield Static("", id="error", classes="error")

    def on_mount(self) -> None:
        self._fill(self.MODES.index(self.current.kind) if self.current.kind in self.MODES else 0,
                   set(self.current.values))

    def _fill(self, mode: int, chosen: set[str] | None = None) -> None:
        self.mode = mode
        items = self.query_one("#items", SelectionList)
        items.clear_options()
        labels = [str(lab) for lab in self.tissue.cluster_labels]
        chosen = chosen or set()
        if mode == 1:
            items.add_options([(f"{lab} ({n} cells)", lab, lab in chosen) for lab, n in zip(labels, self.sizes)])
        elif mode == 2:
            items.add_options([(f"{k} · {lab} ({n} cells)", str(k), str(k) in chosen)
                               for k, (lab, n) in enumerate(zip(labels, self.sizes))])
        items.disabled = mode == 0
        if mode:
            items.highlighted = 0
            items.focus()

    def on_radio_set_changed(self, event: RadioSet.Changed) -> None:
        if event.index != self.mode:  # (not the initial press of the current mode)
            self._fill(event.index)

    def action_mode(self, mode: int) -> None:
        buttons = list(self.query(RadioButton))
        buttons[mode].value = True

    def action_apply(self) -> None:
        mode = self.query_one("#mode", RadioSet).pressed_index
        if mode <= 0:
            self.dismiss(Scope())
            return
        chosen = tuple(self.query_one("#items", SelectionList).selected)
        if not chosen:
            self.query_one("#error", Static).update("pick at least one (space toggles), or press a for all cells")
            return
        self.dismiss(Scope(self.MODES[mode], chosen))

    def action_cells_csv(self) -> None:
        def done(scope: Scope | None) -> None:
            if scope is not None:
                self.dismiss(scope)

        self.app.push_screen(CellsCsvDialog(self.current), done)

    def action_cancel(self) -> None:
        self.dismiss(None)


class CellsCsvDialog(ModalScreen[Scope | None]):
    """A cells CSV (path with Tab completion), then one of its columns."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "cancel")]
    DEFAULT_CSS = DIALOG_CSS.format(name="CellsCsvDialog") + "CellsCsvDialog OptionList { max-height: 16; }"

    def __init__(self, current: Scope) -> None:
        super().__init__()
        self.csv = current.csv if current.kind == CELLS_CSV else ""

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("scope from a cells CSV (its columns list obs names)", classes="title")
            yield Static("Tab completes the path · Enter reads the columns · pick one with ↑ ↓ Enter",
                         classes="help")
            yield PathInput(self.csv, id="csv", placeholder="cells.csv")
            yield OptionList(id="columns")
            yield Static("", id="error", classes="error")

    def on_mount(self) -> None:
        self.query_one("#csv", PathInput).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        err = self.query_one("#error", Static)
        try:
            cols = csv_columns(event.value)
        except SpaceTravLRError as e:
            err.update(str(e))
            return
        err.update("")
        self.csv = str(Path(event.value).expanduser())
        opts = self.query_one("#columns", OptionList)
        opts.clear_options()
        opts.add_options(cols)
        opts.highlighted = 0
        opts.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(Scope(CELLS_CSV, csv=self.csv, column=str(event.option.prompt)))

    def action_cancel(self) -> None:
        self.dismiss(None)


class ExportDialog(ModalScreen[tuple[str, bool] | None]):
    """Where to export the result, and whether to add the transition field and figures."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "cancel")]
    DEFAULT_CSS = DIALOG_CSS.format(name="ExportDialog")

    def __init__(self, default: str) -> None:
        super().__init__()
        self.default = default

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("export the result", classes="title")
            yield Static("the simulated expression (.feather) and summary (.json), as spacetravlr-perturb --out "
                         "writes them; with figures also the transition field (.npz) and PNGs (--field) · "
                         "Enter exports · Esc cancels", classes="help")
            yield PathInput(self.default, id="path")
            yield Checkbox("transition field and figures (--field)", value=True, id="figures")

    def on_mount(self) -> None:
        inp = self.query_one("#path", PathInput)
        inp.focus()
        inp.cursor_position = len(inp.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.value.strip():
            self.dismiss((event.value.strip(), self.query_one("#figures", Checkbox).value))

    def action_cancel(self) -> None:
        self.dismiss(None)


class HistoryScreen(ModalScreen[int | None]):
    """The session's runs; Enter shows the highlighted run again (while its result is in memory)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,h,q", "cancel", "close")]
    DEFAULT_CSS = DIALOG_CSS.format(name="HistoryScreen").replace("width: 90", "width: 95%")

    def __init__(self, history: list[HistoryEntry]) -> None:
        super().__init__()
        self.history = history

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"history: {len(self.history)} runs in this session", classes="title")
            yield Static("Enter shows a run again · Esc closes", classes="help")
            yield DataTable(id="history", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        t = self.query_one("#history", DataTable)
        t.add_columns("#", "perturbation", "scope", "steps", "status", "seconds", "top gene", "exports")
        for h in self.history:
            top = f"{h.top[0][0]} {h.top[0][2]:.3g}" if h.top else ""
            exports = ", ".join(p.name for p in h.exports) or "—"
            t.add_row(str(h.number), h.what, f"{h.scope_label} ({h.n_scope_cells})", str(h.n_propagation),
                      h.status, f"{h.seconds:.2f}", top, exports, key=str(h.number))
        if self.history:
            t.move_cursor(row=len(self.history) - 1)
        t.focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.dismiss(int(str(event.row_key.value)))

    def action_cancel(self) -> None:
        self.dismiss(None)


# -- opening a run --------------------------------------------------------------------------------------


class OpenRunScreen(Screen[None]):
    """Which run to open: a repro TOML or a run folder, typed with Tab completion."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "app.quit", "quit")]
    DEFAULT_CSS = DIALOG_CSS.format(name="OpenRunScreen") + """
    OpenRunScreen OptionList { height: auto; max-height: 14; }
    OpenRunScreen LoadingIndicator { height: 3; }
    """

    def __init__(self, opener: Callable[[str], Any], on_open: Callable[[Any], None]) -> None:
        super().__init__()
        self.opener = opener
        self.on_open = on_open

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical():
            yield Label("open a training run", classes="title")
            yield Static("the spacetravlr_run_repro.toml of a run, or its folder · Tab completes · Enter opens · "
                         "Esc quits", classes="help")
            yield PathInput("", id="run", placeholder="runs/a/spacetravlr_run_repro.toml")
            yield OptionList(id="completions")
            yield LoadingIndicator(id="loading")
            yield Static("", id="error", classes="error")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#loading").display = False
        self.query_one("#run", PathInput).focus()
        self._complete("")

    def _complete(self, value: str) -> None:
        opts = self.query_one("#completions", OptionList)
        opts.clear_options()
        opts.add_options(complete_path(value, limit=40))

    def on_input_changed(self, event: Input.Changed) -> None:
        self._complete(event.value)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        inp = self.query_one("#run", PathInput)
        inp.value = str(event.option.prompt)
        inp.cursor_position = len(inp.value)
        inp.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.value.strip():
            self.query_one("#loading").display = True
            self.query_one("#error", Static).update(f"loading {event.value.strip()} …")
            self._load(event.value.strip())

    @work(thread=True, exclusive=True, exit_on_error=False)
    def _load(self, path: str) -> None:
        try:
            session = self.opener(path)
        except SpaceTravLRError as e:
            self.app.call_from_thread(self._failed, str(e))
            return
        self.app.call_from_thread(self._opened, session)

    def _failed(self, msg: str) -> None:
        self.query_one("#loading").display = False
        self.query_one("#error", Static).update(f"error: {msg}")
        self.query_one("#run", PathInput).focus()

    def _opened(self, session: Any) -> None:
        self.on_open(session)

"""Small Textual pieces shared by the dashboard and the workbench: a help screen, a one-value dialog,
and a path input that completes file names."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.suggester import Suggester
from textual.widgets import Input, Label, Static

from ..errors import SpaceTravLRError

DIALOG_CSS = """
{name} {{ align: center middle; }}
{name} > Vertical {{ width: 90; height: auto; max-height: 90%; border: round $accent; padding: 1 2;
    background: $panel; }}
{name} .title {{ text-style: bold; margin-bottom: 1; }}
{name} .help {{ color: $text-muted; margin-bottom: 1; }}
{name} .error {{ color: $error; height: auto; }}
"""


class HelpScreen(ModalScreen[None]):
    """Keys and panels of a screen (``?``); Esc, ``?`` or ``q`` close it."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,question_mark,q", "dismiss", "close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Static { width: 100; height: auto; max-height: 95%; border: round $accent; padding: 1 2;
        background: $panel; }
    """

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def compose(self) -> ComposeResult:
        yield Static(self.text, id="help")


def complete_path(value: str, limit: int = 200) -> list[str]:
    """Completions of a partly typed path: the entries of its folder that start with its last part
    (folders end with ``/``), folders and ``.toml`` files first; ``~`` is expanded."""
    if not value:
        value = "./"
    expanded = os.path.expanduser(value)
    folder, stem = os.path.split(expanded)
    try:
        names = sorted(os.listdir(folder or "."))
    except OSError:
        return []
    out: list[tuple[int, str]] = []
    for n in names:
        if not n.startswith(stem) or (n.startswith(".") and not stem.startswith(".")):
            continue
        full = os.path.join(folder, n)
        is_dir = os.path.isdir(full)
        rank = 0 if is_dir else 1 if n.endswith((".toml", ".csv")) else 2
        typed = value[: len(value) - len(stem)] + n + ("/" if is_dir else "")
        out.append((rank, typed))
        if len(out) >= limit:
            break
    return [t for _, t in sorted(out, key=lambda x: x[0])]


def common_prefix(items: list[str]) -> str:
    # character by character on purpose: Tab completes a partly typed name, not whole path components
    return os.path.commonprefix(items) if items else ""  # noqa: RUF071


class PathSuggester(Suggester):
    """Suggests the first completion of the typed path (accepted with → or Tab)."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        found = complete_path(value, limit=50)
        return found[0] if found else None


class PathInput(Input):
    """An input for a path: Tab completes (the common part of the completions, else the suggestion)."""

    # not a priority binding: those run before the keys already queued to the input, so a Tab typed right
    # after a burst of characters would complete a half-typed path
    BINDINGS: ClassVar[list[BindingType]] = [Binding("tab", "complete", "complete", show=False)]

    def __init__(self, value: str = "", **kw: Any) -> None:
        super().__init__(value=value, suggester=PathSuggester(), **kw)

    def action_complete(self) -> None:
        found = complete_path(self.value)
        if not found:
            return
        prefix = common_prefix(found)
        self.value = prefix if len(prefix) > len(self.value) else found[0]
        self.cursor_position = len(self.value)


class ValueDialog(ModalScreen[str | None]):
    """Ask for one value; ``check`` (optional) validates it and its error stays on screen until fixed.

    Dismisses with the typed text (Enter) or None (Esc).
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "cancel")]
    DEFAULT_CSS = DIALOG_CSS.format(name="ValueDialog")

    def __init__(self, title: str, help_text: str, value: str = "", *, check: Callable[[str], Any] | None = None,
                 path: bool = False) -> None:
        super().__init__()
        self.title_text, self.help_text, self.value, self.check, self.path = title, help_text, value, check, path

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, classes="title")
            yield Static(self.help_text, classes="help")
            yield (PathInput(self.value, id="value") if self.path else Input(self.value, id="value"))
            yield Static("", id="error", classes="error")

    def on_mount(self) -> None:
        inp = self.query_one("#value", Input)
        inp.focus()
        inp.cursor_position = len(inp.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if self.check is not None:
            try:
                self.check(event.value)
            except SpaceTravLRError as e:
                self.query_one("#error", Static).update(str(e))
                return
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


"""Bad tool input as one line naming the field and the fix (what the assistant reads to correct itself).

Tools raise :class:`ToolInputError`; the server turns it (and the SDK's argument-validation errors) into an
MCP tool error: a result with ``isError: true`` whose text is that line.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class ToolInputError(Exception):
    """A tool call that cannot be served; the message says which field is wrong and how to fix it."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


_FIXES = {
    "missing": "add it",
    "extra_forbidden": "remove it",
    "less_than_equal": "use a smaller value",
    "greater_than_equal": "use a larger value",
    "less_than": "use a smaller value",
    "greater_than": "use a larger value",
    "too_long": "give fewer items / a shorter value",
    "too_short": "give at least one item / a longer value",
    "literal_error": "use one of the allowed values",
    "finite_number": "give a finite number",
}


def validation_line(tool: str, errors: Sequence[dict[str, Any]], known: Sequence[str] = ()) -> str:
    """One line from pydantic errors: ``run_perturbation: n_propagation: Input should be ≤ 32 (got 99) — use a
    smaller value``; at most three errors, then a count."""
    parts = []
    for e in errors[:3]:
        loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "arguments"
        msg = str(e.get("msg", "invalid"))
        got = e.get("input")
        shown = "" if e.get("type") == "missing" or isinstance(got, dict) else f" (got {_short(got)})"
        fix = _FIXES.get(str(e.get("type")), "see the tool's input schema")
        parts.append(f"{loc}: {msg}{shown} — {fix}")
    more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
    hint = f"; fields: {', '.join(known)}" if known else ""
    return f"{tool}: " + "; ".join(parts) + more + hint


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."

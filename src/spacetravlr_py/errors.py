"""Errors a user can act on.

Every error raised because of the user's input derives from :class:`SpaceTravLRError`. Programs catch
it at the top level and print ``error: <message>`` on one line (no traceback), then exit non-zero.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class SpaceTravLRError(Exception):
    """Base class of user-facing errors: the message is one line naming the culprit and the fix."""

    def __str__(self) -> str:
        # one line whatever the user's values hold (a TOML key or a cell id may contain a line break)
        return super().__str__().replace("\r", "\\r").replace("\n", "\\n")


class ConfigError(SpaceTravLRError, ValueError):
    """A configuration key, value or file is invalid."""


class InputError(SpaceTravLRError, ValueError):
    """An input file or its contents are invalid (AnnData, network, betadata, CSV...)."""


def near_matches(name: str, candidates: Iterable[str], n: int = 3) -> str:
    """Return ``" (did you mean A, B?)"`` for close matches of ``name``, or ``""``.

    Case-insensitive matches come first, then :func:`difflib.get_close_matches`.
    """
    cands = list(candidates)
    lower = {c.lower(): c for c in cands}
    found: list[str] = []
    if name.lower() in lower and lower[name.lower()] != name:
        found.append(lower[name.lower()])
    for m in difflib.get_close_matches(name, cands, n=n, cutoff=0.6):
        if m not in found:
            found.append(m)
    if not found:
        return ""
    return " (did you mean " + ", ".join(found[:n]) + "?)"


def short_list(items: Iterable[object], limit: int = 8) -> str:
    """Render up to ``limit`` items for an error message, with a count of the rest."""
    xs = [str(x) for x in items]
    if not xs:
        return "none"
    head = ", ".join(xs[:limit])
    return head + (f", … ({len(xs) - limit} more)" if len(xs) > limit else "")

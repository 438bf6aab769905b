"""Terminal front ends built with Textual (the optional ``tui`` extra).

* :mod:`.dashboard` — the live training dashboard (a :class:`~spacetravlr_py.training.Reporter`).
* :mod:`.workbench` — the interactive perturbation workbench on a
  :class:`~spacetravlr_py.perturbation.session.RunSession`.

Only the modules named above import Textual, and only when a program opens one of them; the models
they draw (:mod:`.state`, :mod:`.genes`, :mod:`.plots`, :mod:`.procs`) are plain Python, so the plain
line-oriented paths never import Textual.
"""

from __future__ import annotations

EXTRA_HINT = "pip install 'spacetravlr-py[tui]'"


def textual_missing() -> str | None:
    """None when Textual can be imported, else one line naming the extra to install."""
    try:
        import textual  # noqa: F401
    except ImportError:
        return f"Textual is not installed ({EXTRA_HINT})"
    return None

"""``spacetravlr serve``: the viewer (same flags as ``spatial_viewer``)."""

from __future__ import annotations

from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from .viewer import serve_main

    return serve_main(argv, "spacetravlr serve")

"""The terminal while a full-screen program runs: where the screen is drawn, where stray output goes,
and where log records go (no Textual import here)."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import IO

#: the logger of the package: its records go to the screen instead of the terminal while one is open
PACKAGE_LOGGER = "spacetravlr_py"


@contextlib.contextmanager
def logging_to(handler: logging.Handler, level: int = logging.INFO) -> Iterator[None]:
    """The package's log records (``level`` and up) go to ``handler`` only, not to the terminal."""
    lg = logging.getLogger(PACKAGE_LOGGER)
    old = (lg.level, lg.propagate)
    lg.addHandler(handler)
    lg.setLevel(level)
    lg.propagate = False
    try:
        yield
    finally:
        lg.removeHandler(handler)
        lg.setLevel(old[0])
        lg.propagate = old[1]


@contextlib.contextmanager
def screen_on_stdout(capture: IO[bytes]) -> Iterator[None]:
    """Draw on the terminal of standard output and send file descriptor 2 — this process's and that of
    any worker process it starts — to ``capture``, so nothing scribbles over the screen.

    Textual draws on ``sys.__stderr__``; it is pointed at a copy of descriptor 1 meanwhile (so the
    screen also appears when only standard error is redirected).
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(2)
    screen = os.fdopen(os.dup(1), "w", encoding="utf-8", errors="replace")
    original = sys.__stderr__
    os.dup2(capture.fileno(), 2)
    setattr(sys, "__stderr__", screen)  # noqa: B010 (a Final name for type checkers)
    try:
        yield
    finally:
        setattr(sys, "__stderr__", original)  # noqa: B010
        with contextlib.suppress(OSError):
            screen.close()
        os.dup2(saved, 2)
        os.close(saved)


@contextlib.contextmanager
def stderr_captured() -> Iterator[IO[bytes]]:
    """A temporary file for :func:`screen_on_stdout`; what landed in it is written to the real standard
    error afterwards (nothing is lost: a worker's traceback, a library's warning)."""
    with tempfile.TemporaryFile() as capture:
        try:
            yield capture
        finally:
            capture.seek(0)
            leftover = capture.read().decode("utf-8", "replace")
            if leftover.strip():
                sys.stderr.write(leftover if leftover.endswith("\n") else leftover + "\n")
                sys.stderr.flush()

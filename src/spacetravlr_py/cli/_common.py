"""Shared plumbing of the programs: one-line errors, exit codes, lazy imports."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

EXIT_OK = 0
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


def new_parser(prog: str, description: str, epilog: str | None = None) -> argparse.ArgumentParser:
    """An argument parser whose description and epilog (examples) keep their line breaks."""
    return argparse.ArgumentParser(prog=prog, description=description, epilog=epilog,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


def guarded(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None, prog: str) -> int:
    """Run ``main(argv)``; print user errors as one ``prog: error: ...`` line and return an exit code.

    Set ``SPACETRAVLR_DEBUG=1`` to see the traceback of user errors too.
    """
    from ..errors import SpaceTravLRError

    try:
        return main(argv)
    except SpaceTravLRError as e:
        if os.environ.get("SPACETRAVLR_DEBUG"):
            raise
        print(f"{prog}: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK


def run_console(main: Callable[[Sequence[str] | None], int]) -> NoReturn:
    """Console-script body: ``sys.exit(main(None))``, argparse's ``--help`` and usage exits mapped to codes."""
    try:
        code = main(None)
    except SystemExit as e:  # argparse --help / usage errors
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else EXIT_ERROR)
    sys.exit(code)

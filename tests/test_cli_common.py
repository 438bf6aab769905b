"""Plumbing shared by the programs: the console-script wrapper and ``python -m`` entry points."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from spacetravlr_py.cli._common import EXIT_ERROR, run_console

SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.mark.parametrize(("behaviour", "code"), [(lambda: 3, 3), (lambda: sys.exit(None), 0),
                                                  (lambda: sys.exit(0), 0), (lambda: sys.exit("usage"), EXIT_ERROR)])
def test_run_console_maps_returns_and_argparse_exits(behaviour, code: int) -> None:
    def main(argv: Sequence[str] | None) -> int:
        assert argv is None  # the console script reads sys.argv itself
        return behaviour()

    with pytest.raises(SystemExit) as e:
        run_console(main)
    assert e.value.code == code


@pytest.mark.parametrize(("module", "args", "first"), [("spacetravlr_py.cli.main", ["--version"], "spacetravlr "),
                                                       ("spacetravlr_py.cli.perturb", ["--help"], "usage: ")])
def test_python_dash_m_runs_the_program(module: str, args: list[str], first: str) -> None:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    p = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(first)

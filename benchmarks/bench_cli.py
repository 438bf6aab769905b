"""Start-up time of the programs: ``spacetravlr --help`` and ``spacetravlr-perturb --help`` (lazy imports)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .common import Ctx, row
from .timing import interleave


def _exe(name: str) -> list[str]:
    exe = Path(sys.executable).with_name(name)
    if exe.exists():
        return [str(exe)]
    mod = {"spacetravlr": "spacetravlr_py.cli.main", "spacetravlr-perturb": "spacetravlr_py.cli.perturb"}[name]
    return [sys.executable, "-c", f"from {mod} import run; run()"]


def _wall(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, capture_output=True, check=True)
    return time.perf_counter() - t0


def run(ctx: Ctx) -> list[dict[str, Any]]:
    ctx.log("CLI start-up: --help")
    sides = {
        "spacetravlr": lambda: _wall([*_exe("spacetravlr"), "--help"]),
        "spacetravlr-perturb": lambda: _wall([*_exe("spacetravlr-perturb"), "--help"]),
        "python": lambda: _wall([sys.executable, "-c", "pass"]),
    }
    res = interleave(sides, repeats=max(ctx.repeats, 5), log=None)
    base = {"label": "bare interpreter start-up (python -c pass), for scale", **res["python"]}
    rows = []
    for name in ("spacetravlr", "spacetravlr-perturb"):
        o = {"label": f"{name} --help (fresh process, wall)", **res[name]}
        r = row(f"cli_help_{name.replace('-', '_')}", f"`{name} --help`", ours=o, baseline=base, goal="≤ 0.5 s",
                goal_met=o["median_s"] <= 0.5)
        r["ratio"] = None
        r["notes"] = "no reference equivalent; the interpreter start-up is the floor"
        rows.append(r)
    return rows

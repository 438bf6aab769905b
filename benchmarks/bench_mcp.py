"""The MCP server (``spacetravlr mcp``) seen by the SDK's real client over stdio.

* **start** — wall time from spawning ``python -m spacetravlr_py.cli.mcp`` to its ``initialize`` answer,
  connected (``--api-base``) and with its own engine (``--run-toml``: the data load after the answer), next
  to the floor: a fresh interpreter importing the MCP SDK (``import mcp.server.mcpserver``), interleaved.
* **responsive** — latency of ``check_progress`` while ``run_perturbation`` (32 propagation steps) runs in
  the own engine, next to the same call when idle: the tools stay answerable during a perturbation.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .common import Ctx, machine_load, row
from .timing import interleave

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _params(args: list[str]) -> Any:
    from mcp.client.stdio import StdioServerParameters

    env = {"PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return StdioServerParameters(command=sys.executable, args=["-m", "spacetravlr_py.cli.mcp", *args], env=env)


async def _init_seconds(args: list[str]) -> float:
    from mcp.client.session import ClientSession
    from mcp.client.stdio import stdio_client

    t0 = time.perf_counter()
    async with stdio_client(_params(args)) as (r, w), ClientSession(r, w) as s:
        await s.initialize()
        return time.perf_counter() - t0


def _floor() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import mcp.server.mcpserver"], check=True)
    return time.perf_counter() - t0


async def _responsive(run_toml: Path, n_probe: int) -> dict[str, Any]:
    from mcp.client.session import ClientSession
    from mcp.client.stdio import stdio_client

    async with stdio_client(_params(["--run-toml", str(run_toml)])) as (r, w), ClientSession(r, w) as s:
        t0 = time.perf_counter()
        await s.initialize()
        await s.call_tool("wait_ready", {"timeout_s": 600})
        ready_s = time.perf_counter() - t0
        genes = (await s.call_tool("list_genes", {"trained_only": True, "limit": 5})).structured_content["genes"]

        async def probe() -> float:
            t = time.perf_counter()
            await s.call_tool("check_progress", {})
            return time.perf_counter() - t

        idle = [await probe() for _ in range(n_probe)]
        busy: list[float] = []
        durations = []
        for gene in genes[:3]:
            t = time.perf_counter()
            task = asyncio.create_task(s.call_tool("run_perturbation", {
                "genes": [gene], "n_propagation": 32, "recompute": True, "export": False}))
            while not task.done():
                busy.append(await probe())
                await asyncio.sleep(0.05)
            res = await task
            assert not res.is_error
            durations.append(time.perf_counter() - t)
        return {"ready_s": ready_s, "idle": idle, "busy": busy, "perturb_s": durations}


def _lat(label: str, xs: list[float]) -> dict[str, Any]:
    return {"label": label, "median_s": statistics.median(xs), "min_s": min(xs), "max_s": max(xs), "n": len(xs),
            "timing": "client wall time of one tools/call over stdio"}


def run(ctx: Ctx) -> list[dict[str, Any]]:
    from spacetravlr_py import _keys

    from .bench_viewer import viewer_inputs

    n_cells = 3000 if ctx.quick else 20_000
    run_toml = viewer_inputs(n_cells) / _keys.DEMO_RUN_DIR / _keys.REPRO_TOML
    ctx.log("MCP server start-up (initialize over stdio)")
    sides = {"connected": lambda: asyncio.run(_init_seconds(["--api-base", "http://127.0.0.1:9"])),
             "own": lambda: asyncio.run(_init_seconds(["--run-toml", str(run_toml)])),
             "floor": _floor}
    load = os.getloadavg()[0]
    res = interleave(sides, repeats=max(ctx.repeats, 5), log=ctx.log)
    base = {"label": "fresh interpreter importing the MCP SDK (import mcp.server.mcpserver)", **res["floor"]}
    rows = []
    for side, what in (("connected", "--api-base"), ("own", f"--run-toml ({n_cells} cells; data load after)")):
        o = {"label": f"spawn → initialize answered, {what}", **res[side]}
        r = row(f"mcp_start_{side}", f"`spacetravlr mcp` start, {side}", ours=o, baseline=base, goal="≤ 1 s",
                goal_met=o["median_s"] <= 1.0,
                notes=f"2-core machine, load average {load:.1f} at the start; the MCP "
                      "SDK's own import is the floor: the server adds nothing measurable before answering")
        r["ratio"] = None
        rows.append(r)
    ctx.log("MCP server responsiveness during a perturbation")
    out = asyncio.run(_responsive(run_toml, 20))
    busy = _lat(f"check_progress while run_perturbation (32 steps, {n_cells} cells) runs", out["busy"])
    idle = _lat("check_progress, idle", out["idle"])
    r = row("mcp_responsive", "check_progress during a perturbation", ours=busy, baseline=idle,
            goal="answers while the perturbation runs", goal_met=len(out["busy"]) > 0,
            notes=f"perturbations took {', '.join(f'{x:.1f}' for x in out['perturb_s'])} s; own engine ready "
                  f"after {out['ready_s']:.1f} s; {machine_load()}",
            size={"n_cells": n_cells})
    r["ratio"] = None
    rows.append(r)
    return rows

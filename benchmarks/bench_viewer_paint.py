"""First paint of the viewer's front end: how long after navigation 100k cells are on screen.

A warm ``spatial_viewer --h5ad`` process serves the planted synthetic tissue (100,000 cells, UMAP); Debian's
Chromium (headless, Playwright, software WebGL through SwiftShader: no GPU) opens the page in a fresh
browser context (empty cache) each time. Time = the page's ``performance.now()`` (which counts from the
navigation start) at the first frame deck.gl draws with the cells: HTML + bundle download and parse,
``meta``, the binary ``spatial`` / ``umap`` / ``clusters`` / ``cell_type/codes`` fetches, colouring and the
first WebGL frame. A 10,000-cell tissue, timed interleaved with it, shows how the time scales.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from . import workloads as wl
from .common import Ctx, row
from .timing import interleave

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync"]
GOAL_S = 2.0


def tissue(n_cells: int) -> Path:
    """``.bench/viewer_paint_n<N>/tissue.h5ad``: the planted synthetic tissue with its UMAP."""

    def build(d: Path) -> None:
        from spacetravlr_py.datasets import synthetic_tissue

        synthetic_tissue(n_cells=n_cells, seed=0).write(d)

    d = wl.cached(f"viewer_paint_n{n_cells}", build)
    return next(d.rglob("*.h5ad"))


class Viewer:
    """``spatial_viewer --h5ad H5AD --port 0`` in a fresh process, waited on until the tissue is loaded."""

    def __init__(self, h5ad: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
        self.proc = subprocess.Popen([sys.executable, "-c", "from spacetravlr_py.cli.viewer import run; run()",
                                      "--h5ad", str(h5ad), "--port", "0"], env=env, text=True,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()
        m = re.search(r"serving (http://\S+/)", line)
        if not m:
            self.close()
            raise RuntimeError(f"spatial_viewer did not start: {line}")
        self.url = m.group(1)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()


def first_paint(browser: Any, url: str, heaps: list[float]) -> float:
    """Seconds from navigation start to the first frame with the cells, in a fresh context (no cache);
    appends the page's JavaScript heap (MiB, Chromium's ``performance.memory``) at that point to ``heaps``."""
    ctx = browser.new_context(viewport={"width": 1440, "height": 900})
    try:
        page = ctx.new_page()
        page.goto(url)
        page.wait_for_function("window.spatialViewer && window.spatialViewer.firstPaintMs !== null", timeout=120_000)
        heaps.append(float(page.evaluate("performance.memory.usedJSHeapSize")) / 2**20)
        return float(page.evaluate("window.spatialViewer.firstPaintMs")) / 1000.0
    finally:
        ctx.close()


def run(ctx: Ctx) -> list[dict[str, Any]]:
    from playwright.sync_api import sync_playwright

    big, small = (20_000, 2_000) if ctx.quick else (100_000, 10_000)
    ctx.log(f"viewer first paint: {big:,} vs {small:,} cells")
    servers = {n: Viewer(tissue(n)) for n in (big, small)}
    heaps: dict[int, list[float]] = {big: [], small: []}
    load = os.getloadavg()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            try:
                # the servers load their tissue in the background: the warm-up page waits for it
                sides = {n: (lambda u=s.url, h=heaps[n]: first_paint(browser, u, h)) for n, s in servers.items()}
                res = interleave(sides, repeats=max(ctx.repeats, 5), warmup=1, log=ctx.log)
            finally:
                browser.close()
    finally:
        for s in servers.values():
            s.close()
    ours = {"label": f"{big:,} cells, headless Chromium with software WebGL (SwiftShader, no GPU)", **res[big],
            "timing": "performance.now() at the first deck.gl frame drawing the cells (from navigation start), "
                      "fresh browser context per run",
            "page_js_heap_mib": round(max(heaps[big]), 1),
            "memory_method": "Chromium performance.memory.usedJSHeapSize at first paint (max over runs); typed-array "
                             "backing stores and GPU buffers are allocated outside that heap"}
    base = {"label": f"{small:,} cells, same page, for scale", **res[small]}
    r = row("viewer_first_paint", f"viewer first paint, {big:,} cells (spatial layout, cell-type colours)", ours=ours,
            baseline=base, goal=f"≤ {GOAL_S:g} s", goal_met=ours["median_s"] <= GOAL_S, size={"cells": big},
            notes=f"2-core machine, load average {load[0]:.1f} at the start; software "
                  f"rendering (no GPU), so a desktop browser is faster; page JS heap at first paint "
                  f"{max(heaps[big]):.0f} MiB ({big:,} cells) vs {max(heaps[small]):.0f} MiB ({small:,})")
    r["ratio"] = None
    return [r]

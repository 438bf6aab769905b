"""Routes of the loaded run as a whole: its HTML report (``GET /api/run/report``).

The page is the one ``spacetravlr run-summary`` writes (:func:`spacetravlr_py.report.build_run_summary`),
built in memory — the server writes nothing into the run folder — once per loaded dataset.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response

from . import payloads as pl
from .state import ViewerState

HTML = "text/html"


class ReportCache:
    """The report pages of the loaded run, one per ``interactions`` choice, kept for one dataset generation.

    Builds run one at a time: pyplot (the report's figures) is not thread-safe, and a request arriving
    during a build then gets the page that build made instead of building it again.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pages: dict[tuple[int, bool], str] = {}

    def page(self, state: ViewerState, interactions: bool) -> tuple[str, bool]:
        """``(html, cached)`` of the run ``state`` holds; ApiError 409/503 without a loaded run.

        Blocking (seconds: reads the logs and the cells, aggregates the betadata, draws the figures):
        call it off the event loop.
        """
        from ..report import build_run_summary

        gen = state.generation  # read first: a configure after this leaves the page uncached
        ds, s = state.require_run()
        key = (gen, interactions)
        with self._lock:
            if key in self._pages:
                return self._pages[key], True
            html = build_run_summary(s.run_dir, config=ds.run_toml, h5ad=ds.adata_path, interactions=interactions)
            if state.generation == gen:
                self._pages = {k: v for k, v in self._pages.items() if k[0] == gen}
                self._pages[key] = html
            return html, False


def build(state: ViewerState, errors: dict[int | str, dict[str, Any]]) -> APIRouter:
    r = APIRouter(prefix="/api", responses=errors)
    cache = ReportCache()

    # response_class=Response (not HTMLResponse): the error bodies stay documented as JSON
    @r.get("/run/report", response_class=Response, summary="the run's HTML report (as `spacetravlr run-summary`)",
           responses={200: {"description": "one self-contained page (figures inlined as PNG); "
                                           "X-Cached: 1 when served from the cache of this dataset",
                            "content": {HTML: {"schema": {"type": "string"}}}}})
    async def run_report(interactions: bool = Query(True, description="include the interactions per cell type "
                                                                      "(aggregates every gene's betadata)")
                         ) -> HTMLResponse:
        html, cached = await asyncio.to_thread(cache.page, state, interactions)
        return HTMLResponse(html, headers={pl.H_CACHED: "1" if cached else "0"})

    return r

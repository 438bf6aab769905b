"""What the tools share: the viewer they talk to (connected or the own engine), the data roots, the last
perturbation summary and field, and the MCP-side jobs (screens).
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .engine import EmbeddedViewer
from .errors import ToolInputError
from .http import ApiFailure, ViewerApi


@dataclass
class Cells:
    """Per-cell arrays of the loaded dataset and its groups (fetched from the viewer when needed)."""

    meta: dict[str, Any]
    clusters: np.ndarray
    codes: np.ndarray | None

    @property
    def categories(self) -> list[str]:
        return [str(c) for c in self.meta.get("cell_type_categories") or []]

    @property
    def labels(self) -> list[str]:
        return [str(c) for c in self.meta.get("cluster_labels") or []]

    def cell_type_mask(self, name: str, what: str = "cell_type") -> np.ndarray:
        """Cells of one cell-type label (or cluster label without a cell-type column)."""
        from ..errors import near_matches

        if self.codes is not None and name in self.categories:
            return self.codes == self.categories.index(name)
        if name in self.labels:
            return self.clusters == self.labels.index(name)
        known = self.categories or self.labels
        raise ToolInputError(f"'{name[:80]}' is not a cell type of this dataset{near_matches(name, known)}; "
                             f"cell types: {', '.join(known[:20])}", what)


@dataclass
class Job:
    """A job the MCP server runs itself (a screen): progress, result, cancellation."""

    id: str
    kind: str
    n_steps: int
    step: int = 0
    state: str = "running"  # running, done, cancelled, error
    message: str = "starting"
    result: dict[str, Any] | None = None
    error: str | None = None
    t0: float = field(default_factory=time.perf_counter)
    t1: float | None = None
    task: asyncio.Task[Any] | None = None

    def to_json(self, with_result: bool = True) -> dict[str, Any]:
        pct = 100 if self.state == "done" else int(round(100 * self.step / self.n_steps)) if self.n_steps else 0
        return {"job_id": self.id, "kind": self.kind, "state": self.state, "step": self.step,
                "n_steps": self.n_steps, "percent": pct, "message": self.message, "error": self.error,
                "elapsed_s": round((self.t1 or time.perf_counter()) - self.t0, 3),
                "result": self.result if with_result else None}


class Backend:
    """The viewer (``api_base``, or the own ``engine``), the data roots and the session's memory."""

    def __init__(self, *, api_base: str | None = None, engine: EmbeddedViewer | None = None,
                 data_roots: list[Path] | None = None) -> None:
        if (api_base is None) == (engine is None):
            raise ValueError("give api_base or engine")
        self.mode = "connected" if api_base else "own engine"
        self.engine = engine
        self._api = ViewerApi(api_base) if api_base else None
        self.data_roots = data_roots or []
        self.last_summary: dict[str, Any] | None = None
        self.last_field: dict[str, Any] | None = None
        self.jobs: dict[str, Job] = {}
        self._job_ids = 0

    async def api(self, timeout: float | None = None) -> ViewerApi:
        """The viewer client; with the own engine, waits (bounded) until it listens."""
        if self._api is not None:
            return self._api
        assert self.engine is not None
        from . import engine as eng

        try:
            base = await asyncio.to_thread(self.engine.wait_started, timeout or eng.START_TIMEOUT_S)
        except RuntimeError as e:
            raise ToolInputError(f"the engine could not start: {e}") from None
        self._api = ViewerApi(base)
        return self._api

    @property
    def base(self) -> str | None:
        """URL of the viewer (None while the own engine is starting)."""
        if self._api is not None:
            return self._api.base
        return self.engine.base if self.engine is not None else None

    async def close(self) -> None:
        for job in self.jobs.values():
            if job.task is not None and not job.task.done():
                job.task.cancel()
        if self._api is not None:
            await self._api.close()
        if self.engine is not None:
            await asyncio.to_thread(self.engine.stop)

    # -- data the tools share ------------------------------------------------------------------

    async def meta(self) -> dict[str, Any]:
        return dict(await (await self.api()).get("meta"))

    async def ready_meta(self, need_run: bool = False) -> dict[str, Any]:
        """The meta of a loaded dataset (and run), or one line saying what to do first."""
        m = await self.meta()
        if m["status"] == "empty":
            raise ToolInputError("no dataset loaded: call load_dataset with a run TOML or an .h5ad first")
        if not m["dataset_ready"] or (need_run and m["status"] == "loading"):
            raise ToolInputError(f"the dataset is still loading ({m['load']['stage']}, {m['load']['percent']}%); "
                                 "call wait_ready first")
        if need_run and not m["perturb_ready"]:
            why = m.get("perturb_error") or "no training run is loaded (load_dataset with run_toml)"
            raise ToolInputError(f"this needs a trained run: {why}")
        return m

    async def cells(self, need_run: bool = False) -> Cells:
        m = await self.ready_meta(need_run)
        api = await self.api()
        clusters = await api.array("clusters")
        codes = None
        if m.get("cell_type_column"):
            try:
                codes = await api.array("cell_type/codes")
            except ApiFailure as e:
                if e.status != 404:
                    raise
        return Cells(m, clusters, codes)

    def check_path(self, raw: str, what: str, roots: list[str] | None = None) -> Path:
        """``raw`` resolved and under a data root (this server's, else the viewer's ``roots``), else an error."""
        from ..viewer._errors import ApiError
        from ..viewer.security import PathGuard

        guard = PathGuard(self.data_roots or roots or [])
        if not guard.roots:
            raise ToolInputError("no data roots: restart the MCP server with --data-root <folder>", what)
        try:
            return guard.check(raw, what=what, kind="any")
        except ApiError as e:
            raise ToolInputError(e.detail.replace("restart the viewer", "restart the MCP server")) from None

    def new_job(self, kind: str, n_steps: int) -> Job:
        self._job_ids += 1
        job = Job(id=f"{kind}-{self._job_ids}", kind=kind, n_steps=n_steps)
        self.jobs[job.id] = job
        return job


def read_local(path: Path, what: str) -> str:
    """Text of a file the viewer reported (a run TOML or manifest) when it exists on this machine."""
    if not path.is_file():
        raise ToolInputError(f"{path} is not a file on this machine (is the viewer on another host?)", what)
    try:
        return path.read_text(encoding="utf-8")
    except OSError as e:
        raise ToolInputError(f"cannot read {path} ({e.strerror or e})", what) from None


def env_api_base() -> str | None:
    from .. import _keys

    return os.environ.get(_keys.MCP_API_BASE_ENV) or None

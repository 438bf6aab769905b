"""Helpers of the viewer tests: a small trained run (built once per test session) and a real uvicorn
server on a free 127.0.0.1 port, started and stopped by the tests."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from spacetravlr_py import _keys

N_CELLS = 600
READY_TIMEOUT = 120.0


def trained_run(base: Path) -> Path:
    """A seed-mode run on a 600-cell synthetic tissue under ``base/viewer_run`` (reused when present)."""
    from spacetravlr_py.config import SpaceshipConfig
    from spacetravlr_py.datasets import synthetic_tissue
    from spacetravlr_py.training import train

    root = base / "viewer_run"
    toml = root / "run" / _keys.REPRO_TOML
    done = root / "ok"
    if done.exists():
        return toml
    if root.exists():
        shutil.rmtree(root)
    syn = synthetic_tissue(n_cells=N_CELLS, seed=3)
    paths = syn.write(root / "data")
    cfg = SpaceshipConfig().with_overrides({"data.adata_path": str(paths["h5ad"]),
                                            "grn.network_data_dir": str(paths["network"].parent),
                                            "execution.output_dir": str(root / "run")})
    train(cfg)
    done.write_text("ok")
    return toml


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class InProcessServer:
    """The viewer app under uvicorn in a thread of the test process (``state`` is reachable)."""

    def __init__(self, *, run_toml: Path | None = None, h5ad: Path | None = None, roots: list[Path] | None = None,
                 static_dir: Path | None = None, allow_cors: bool = False, max_body_bytes: int = 16 << 20) -> None:
        import uvicorn

        from spacetravlr_py.viewer.app import create_app
        from spacetravlr_py.viewer.security import PathGuard, start_roots
        from spacetravlr_py.viewer.state import ViewerState

        given = [p for p in (run_toml, h5ad) if p is not None]
        self.state = ViewerState(PathGuard(roots or start_roots(h5ad, run_toml, None)))
        if given:
            self.state.start(self.state.prepare(adata_path=str(h5ad or ""), run_toml=str(run_toml or "")))
        app = create_app(self.state, static_dir=static_dir or Path("/nonexistent-static"), allow_cors=allow_cors,
                         max_body_bytes=max_body_bytes)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        cfg = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error", lifespan="off")
        self.server = uvicorn.Server(cfg)
        self.thread = threading.Thread(target=self.server.run, name="viewer-test-server", daemon=True)

    def __enter__(self) -> InProcessServer:
        self.thread.start()
        t0 = time.time()
        while not self.server.started:
            if time.time() - t0 > 30 or not self.thread.is_alive():
                raise RuntimeError("viewer server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.state.shutdown()

    def client(self, **kw: Any) -> httpx.Client:
        return httpx.Client(base_url=self.base, timeout=120.0, **kw)

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> dict[str, Any]:
        return wait_ready(self.base, timeout)


def wait_ready(base: str, timeout: float = READY_TIMEOUT) -> dict[str, Any]:
    """Poll ``/api/meta`` until the load is over; returns the meta (ready, error or cancelled)."""
    t0 = time.time()
    while True:
        m = httpx.get(f"{base}/api/meta", timeout=30).json()
        if m["status"] != "loading":
            return m
        if time.time() - t0 > timeout:
            raise TimeoutError(f"viewer still loading after {timeout}s: {m['load']}")
        time.sleep(0.1)


@contextlib.contextmanager
def cli_server(*args: str, env: dict[str, str] | None = None) -> Iterator[tuple[str, subprocess.Popen[str], list[str]]]:
    """``spatial_viewer ARGS --port 0`` in a subprocess; yields (base URL, process, stderr lines so far)."""
    src = str(Path(__file__).resolve().parents[1] / "src")
    e = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""), **(env or {})}
    cmd = [sys.executable, "-c", "from spacetravlr_py.cli.viewer import run; run()", *args]
    if "--port" not in args:
        cmd += ["--port", "0"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=e)
    lines: list[str] = []
    base = None
    try:
        assert proc.stderr is not None
        t0 = time.time()
        while base is None and time.time() - t0 < 60:
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line)
            m = re.search(r"serving (http://\S+?)/? ", line)
            if m:
                base = m.group(1).rstrip("/")
        if base is None:
            proc.kill()
            raise RuntimeError("spatial_viewer did not start: " + "".join(lines))
        yield base, proc, lines
    finally:
        if proc.poll() is None:
            proc.send_signal(2)  # SIGINT, as Ctrl-C
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()

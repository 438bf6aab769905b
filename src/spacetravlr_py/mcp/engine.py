"""The MCP server's own engine: the viewer's server, in this process, on a free 127.0.0.1 port.

Why a viewer and not direct library calls: one code path. Every tool talks HTTP to a viewer, whether the
user started it (``--api-base``) or this module did, so both modes share the path rules (the viewer's
:class:`~spacetravlr_py.viewer.security.PathGuard`), the background loading, the cancellable job queue
that keeps the server responsive during a perturbation, the cache of the last result and the exports into
the run folder. And the human can open the same engine in a browser (``viewer_url``), where
``show_in_viewer`` is seen.

FastAPI, uvicorn and the data are loaded on a background thread after the MCP server answers, so the server
starts before any data is read.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger("spacetravlr_py.mcp")

START_TIMEOUT_S = 120.0


class EmbeddedViewer:
    """A viewer server started on a thread; :attr:`base` is its URL once :meth:`wait_started` returns.

    Parameters
    ----------
    run_toml, h5ad : the dataset to load at start (either, or none: load one later with ``load_dataset``).
    data_roots : folders from which files may be opened (the viewer's ``--data-root``).
    threads : numba/BLAS threads of the perturbation jobs (None = all cores).
    """

    def __init__(self, *, run_toml: str | None, h5ad: str | None, data_roots: Sequence[str],
                 network_dir: str | None = None, threads: int | None = None) -> None:
        self.run_toml, self.h5ad, self.network_dir = run_toml, h5ad, network_dir
        self.data_roots = list(data_roots)
        self.threads = threads
        self.base: str | None = None
        self.error: str | None = None
        self._started = threading.Event()
        self._server: Any = None
        self._state: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Import the viewer and serve it on a thread (returns at once; a second call does nothing)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="mcp-engine", daemon=True)
        self._thread.start()

    def wait_started(self, timeout: float = START_TIMEOUT_S) -> str:
        """The engine's URL; raises RuntimeError with the start error (or a timeout)."""
        if not self._started.wait(timeout):
            raise RuntimeError(f"the engine did not start within {timeout:g} s")
        if self.base is None:
            raise RuntimeError(self.error or "the engine failed to start")
        return self.base

    def _run(self) -> None:
        try:
            server, sock = self._setup()
        except Exception as e:  # reported to every tool call instead of killing the MCP server
            from ..errors import SpaceTravLRError

            self.error = str(e) if isinstance(e, SpaceTravLRError) else f"{type(e).__name__}: {e}"
            if not isinstance(e, SpaceTravLRError):
                log.exception("engine start failed")
            self._started.set()
            return
        host, port = sock.getsockname()[:2]
        self.base = f"http://{host}:{port}"
        self._server = server
        self._started.set()
        try:
            server.run(sockets=[sock])
        finally:
            sock.close()

    def _setup(self) -> tuple[Any, socket.socket]:
        import uvicorn

        from ..viewer._errors import ApiError
        from ..viewer.app import create_app
        from ..viewer.security import PathGuard
        from ..viewer.state import ViewerState
        from ..viewer.static_files import default_static_dir

        state = ViewerState(PathGuard(self.data_roots), threads=self.threads)
        if self.run_toml or self.h5ad:
            from ..errors import InputError

            try:
                inputs = state.prepare(adata_path=self.h5ad or "", run_toml=self.run_toml or "",
                                       network_dir=self.network_dir or "")
            except ApiError as e:
                raise InputError(e.detail) from None
            state.start(inputs)
        self._state = state
        app = create_app(state, static_dir=default_static_dir())
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))  # a free loopback port, bound before serving: no race for it
        sock.listen(64)
        cfg = uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=2)
        return uvicorn.Server(cfg), sock

    def stop(self) -> None:
        """Stop serving, cancel the jobs and wait (bounded) for the thread."""
        if self._server is not None:
            self._server.should_exit = True
        if self._state is not None:
            self._state.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=10)


def engine_roots(run_toml: str | None, h5ad: str | None, network_dir: str | None,
                 data_roots: Sequence[str]) -> list[Path]:
    """Data roots of the engine: the ``--data-root`` folders and the folders of the files given (the run
    folder and its ``[data].adata_path`` folder included) — never the working directory implicitly (an MCP
    client may start the server in ``/``)."""
    from ..viewer.security import resolve, start_roots

    given = start_roots(h5ad, run_toml, network_dir, ["/"])[1:]  # "/" marks "roots given": no cwd added
    return list(dict.fromkeys([resolve(r) for r in data_roots] + given))

"""Helpers of the MCP tests: the SDK's real client (``mcp.client.stdio`` + ``ClientSession``) driving
``python -m spacetravlr_py.cli.mcp`` as a subprocess, from synchronous tests.

The session lives on an event loop in a thread of the test process; :meth:`McpClient.call` blocks (with a
timeout, so a hung call fails the test) and :meth:`McpClient.start_call` returns a future for concurrent
calls.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

CALL_TIMEOUT_S = 300.0
SRC = str(Path(__file__).resolve().parents[1] / "src")


class McpClient:
    """An MCP server subprocess (``args`` after ``-m spacetravlr_py.cli.mcp``) and a session with it."""

    def __init__(self, *args: str, cwd: Path | None = None) -> None:
        self.args = list(args)
        self.cwd = cwd
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="mcp-test-client", daemon=True)
        self._stop: asyncio.Event | None = None
        self._session: Any = None
        self._done: concurrent.futures.Future[None] | None = None
        self.init_seconds: float | None = None
        self.init_result: Any = None

    def __enter__(self) -> McpClient:
        self.thread.start()
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._done = asyncio.run_coroutine_threadsafe(self._serve(ready), self.loop)
        ready.result(timeout=120)
        return self

    async def _serve(self, ready: concurrent.futures.Future[None]) -> None:
        from mcp.client.session import ClientSession
        from mcp.client.stdio import StdioServerParameters, stdio_client

        env = {"PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), "MPLBACKEND": "Agg",
               "NUMBA_CACHE_DIR": os.environ.get("NUMBA_CACHE_DIR", "")}
        env = {k: v for k, v in env.items() if v}
        params = StdioServerParameters(command=sys.executable, args=["-m", "spacetravlr_py.cli.mcp", *self.args],
                                       env=env, cwd=self.cwd)
        self._stop = asyncio.Event()
        try:
            t0 = time.perf_counter()
            async with stdio_client(params) as (r, w), ClientSession(r, w) as session:
                self.init_result = await session.initialize()
                self.init_seconds = time.perf_counter() - t0
                self._session = session
                ready.set_result(None)
                await self._stop.wait()
        except BaseException as e:
            if not ready.done():
                ready.set_exception(e)
            raise

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        if self._done is not None:
            try:
                self._done.result(timeout=30)
            except Exception:
                pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        if not self.thread.is_alive():
            self.loop.close()

    def run(self, coro: Any, timeout: float = CALL_TIMEOUT_S) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=timeout)

    def start_call(self, name: str, args: dict[str, Any] | None = None) -> concurrent.futures.Future[Any]:
        return asyncio.run_coroutine_threadsafe(self._session.call_tool(name, args or {}), self.loop)

    def call(self, name: str, args: dict[str, Any] | None = None, timeout: float = CALL_TIMEOUT_S) -> Any:
        """The CallToolResult of one call (raises on timeout: a hung call fails the test)."""
        return self.start_call(name, args).result(timeout=timeout)

    def ok(self, name: str, args: dict[str, Any] | None = None, timeout: float = CALL_TIMEOUT_S) -> dict[str, Any]:
        """The structured result of a call that must succeed."""
        res = self.call(name, args, timeout)
        assert not res.is_error, f"{name}: {text_of(res)}"
        assert text_of(res).strip(), f"{name} returned no text rendering"
        return dict(res.structured_content)

    def list_tools(self) -> list[Any]:
        return list(self.run(self._session.list_tools()).tools)

    def list_resources(self) -> list[Any]:
        return list(self.run(self._session.list_resources()).resources)

    def read_resource(self, uri: str) -> Any:
        return self.run(self._session.read_resource(uri))


def text_of(res: Any) -> str:
    return "\n".join(c.text for c in res.content if getattr(c, "type", "") == "text")


def image_of(res: Any) -> bytes:
    imgs = [c for c in res.content if getattr(c, "type", "") == "image"]
    assert len(imgs) == 1 and imgs[0].mime_type == "image/png"
    return base64.b64decode(imgs[0].data)

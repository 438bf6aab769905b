"""The FastAPI application: API routers, static front end, errors as one-line JSON, body limit, CORS."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import _keys
from ..errors import SpaceTravLRError
from . import payloads as pl
from . import routes_betadata, routes_data, routes_perturb, routes_run, routes_view
from ._errors import ApiError
from .schemas import ErrorBody
from .state import ViewerState
from .static_files import placeholder_page, static_file

log = logging.getLogger("spacetravlr_py.viewer")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]

ERROR_CODES = (400, 403, 404, 409, 413, 429, 503)
ERRORS: dict[int | str, dict[str, Any]] = {c: {"model": ErrorBody, "description": "error (one-line reason)"}
                                           for c in ERROR_CODES}


def _error(status: int, detail: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse({"detail": detail, **extra}, status_code=status, headers=headers)


def _validation_line(errs: list[dict[str, Any]]) -> str:
    """One line from pydantic errors: ``body.scope.indices.0: Input should be ...``."""
    if errs and list(errs[0].get("loc", ())) == ["body"] and errs[0].get("type") == "model_attributes_type":
        return "invalid request: the body must be a JSON object sent with Content-Type: application/json"
    parts = []
    for e in errs[:3]:
        loc = ".".join(str(x) for x in e.get("loc", ()))
        parts.append(f"{loc}: {e.get('msg', 'invalid')}")
    more = f" (+{len(errs) - 3} more)" if len(errs) > 3 else ""
    return "invalid request: " + "; ".join(parts) + more


class BodyLimit:
    """Refuse request bodies above ``limit`` bytes with 413 (Content-Length or the streamed size)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]],
                       send: Callable[[Message], Awaitable[None]]) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        for k, v in scope.get("headers", []):
            if k == b"content-length" and v.isdigit() and int(v) > self.limit:
                await self._too_large(scope, receive, send)
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            msg = await receive()
            if msg["type"] != "http.request":
                break
            chunks.append(msg.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                await self._too_large(scope, receive, send)
                return
            if not msg.get("more_body", False):
                break
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Callable[[], Awaitable[Message]],
                         send: Callable[[Message], Awaitable[None]]) -> None:
        resp = _error(413, f"request body larger than {self.limit} bytes; raise --max-body-mb if needed")
        await resp(scope, receive, send)


def create_app(state: ViewerState, *, static_dir: Path, allow_cors: bool = False,
               max_body_bytes: int = 16 << 20) -> Any:
    """The ASGI application serving ``state`` (wrapped in the body limit)."""
    from .. import __version__

    app = FastAPI(title="spatial_viewer", version=__version__, openapi_url="/api/openapi.json",
                  docs_url=None, redoc_url=None,
                  description="HTTP API of the SpaceTravLR viewer; see docs/viewer.md. Binary arrays are "
                              "little-endian (X-Dtype, X-Length, X-Shape headers).")
    _handlers(app)
    api_paths: set[str] = set()
    for mod in (routes_data, routes_betadata, routes_perturb, routes_run, routes_view):
        router = mod.build(state, ERRORS)
        api_paths.update(getattr(rt, "path", "") for rt in router.routes)
        app.include_router(router)
    _static(app, static_dir, api_paths)
    if allow_cors:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["GET", "POST", "OPTIONS"],
                           allow_headers=["*"], expose_headers=list(pl.EXPOSED_HEADERS))
    app.state.viewer = state
    return BodyLimit(app, max_body_bytes)


def _handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, e: ApiError) -> JSONResponse:
        return _error(e.status, e.detail, e.headers or None)

    @app.exception_handler(SpaceTravLRError)
    async def user_error(_: Request, e: SpaceTravLRError) -> JSONResponse:
        return _error(400, str(e))

    @app.exception_handler(RequestValidationError)
    async def validation(_: Request, e: RequestValidationError) -> JSONResponse:
        errs = [{"loc": list(x.get("loc", ())), "msg": str(x.get("msg", "")), "type": str(x.get("type", ""))}
                for x in e.errors()]
        return _error(400, _validation_line(errs), errors=errs)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, e: StarletteHTTPException) -> JSONResponse:
        return _error(e.status_code, str(e.detail), getattr(e, "headers", None))

    @app.exception_handler(Exception)
    async def internal(_: Request, e: Exception) -> JSONResponse:
        log.exception("internal error")
        return _error(500, f"internal error ({type(e).__name__}); see the server log")


def _static(app: FastAPI, static_dir: Path, api_paths: set[str]) -> None:
    index = static_dir / _keys.INDEX_HTML

    @app.get("/", include_in_schema=False)
    def root() -> Response:
        if index.is_file():
            return FileResponse(index)
        return HTMLResponse(placeholder_page(static_dir))

    @app.get("/{path:path}", include_in_schema=False)
    def files(path: str) -> Response:
        if path == "api" or path.startswith("api/"):
            if "/" + path in api_paths:
                raise ApiError(405, f"method not allowed for /{path}")
            raise ApiError(404, f"no API route /{path[:200]} (see /api/openapi.json)")
        return FileResponse(static_file(static_dir, path))

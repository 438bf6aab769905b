"""The viewer's HTTP API seen from the MCP server: JSON and little-endian arrays, errors as one line.

Every tool talks to a viewer through :class:`ViewerApi` (``docs/viewer.md`` is the contract), whether it
is a viewer the user started (``--api-base``) or the one the MCP server started itself (:mod:`.engine`).
"""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np

from .errors import ToolInputError

#: seconds a data request may take; perturbation jobs get :data:`JOB_TIMEOUT_S`
REQUEST_TIMEOUT_S = 60.0
JOB_TIMEOUT_S = 3600.0

_DTYPES: dict[str, np.dtype[Any]] = {"float32": np.dtype("<f4"), "uint32": np.dtype("<u4"), "uint16": np.dtype("<u2")}


class ApiFailure(ToolInputError):
    """The viewer refused a request (``status`` 4xx/5xx) or could not be reached (``status`` 0)."""

    def __init__(self, status: int, route: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.route = route
        self.detail = detail


class ViewerApi:
    """An async client of one viewer (``base`` like ``http://127.0.0.1:8080``)."""

    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        # created on first use, inside the server's event loop
        if self._client is None:
            self._client = httpx.AsyncClient(base_url=self.base, timeout=REQUEST_TIMEOUT_S, trust_env=False)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _send(self, method: str, route: str, *, params: dict[str, Any] | None = None,
                    body: Any = None, timeout: float | None = None) -> httpx.Response:
        url = f"/api/{route}"
        try:
            r = await self._http().request(method, url, params=params, json=body,
                                           timeout=timeout or REQUEST_TIMEOUT_S)
        except httpx.TimeoutException:
            raise ApiFailure(0, route, f"the viewer at {self.base} did not answer {route} within "
                                       f"{timeout or REQUEST_TIMEOUT_S:g} s; check_progress shows what it "
                                       "is doing") from None
        except httpx.HTTPError as e:
            raise ApiFailure(0, route, f"cannot reach the viewer at {self.base} ({type(e).__name__}: {e}); "
                                       "start it (spatial_viewer --run-toml ...) or fix --api-base") from None
        if r.status_code >= 400:
            raise ApiFailure(r.status_code, route, _reason(r))
        return r

    async def get(self, route: str, **params: Any) -> Any:
        return (await self._send("GET", route, params=params or None)).json()

    async def post(self, route: str, body: Any = None, *, job: bool = False) -> Any:
        r = await self._send("POST", route, body=body, timeout=JOB_TIMEOUT_S if job else None)
        return r.json()

    async def array(self, route: str, **params: Any) -> np.ndarray:
        """A binary route as a numpy array (dtype from ``X-Dtype``; shape from ``X-Shape``)."""
        r = await self._send("GET", route, params=params or None)
        dtype = _DTYPES.get(r.headers.get("X-Dtype", "float32"), np.dtype("<f4"))
        a = np.frombuffer(r.content, dtype=dtype)
        shape = r.headers.get("X-Shape")
        if shape and "," in shape:
            a = a.reshape(tuple(int(s) for s in shape.split(",")))
        return a


def _reason(r: httpx.Response) -> str:
    """The one-line ``detail`` of an error response (or its status line)."""
    try:
        body = r.json()
    except ValueError:
        return f"HTTP {r.status_code}: {r.text[:200]}"
    detail = body.get("detail") if isinstance(body, dict) else None
    return str(detail) if detail else f"HTTP {r.status_code}"

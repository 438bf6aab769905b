"""The one exception type of the viewer's request handling: an HTTP status and a one-line reason."""

from __future__ import annotations


class ApiError(Exception):
    """A request that cannot be served: ``status`` (4xx/5xx) and ``detail`` (what is wrong, how to fix it).

    ``headers`` are added to the response (e.g. ``Retry-After`` with 503).
    """

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}

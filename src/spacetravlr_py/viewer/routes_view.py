"""Routes of the shared view (``GET``/``POST /api/view``): what the page shows, set by an assistant."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from .schemas import ViewRequest
from .state import ViewerState


def build(state: ViewerState, errors: dict[int | str, dict[str, Any]]) -> APIRouter:
    r = APIRouter(prefix="/api", responses=errors)

    @r.get("/view", summary="the shared view and its version")
    def get_view() -> dict[str, Any]:
        return state.view.to_json()

    @r.post("/view", summary="change the shared view (the page follows)")
    def set_view(body: ViewRequest) -> dict[str, Any]:
        return state.view.apply(state, body)

    return r

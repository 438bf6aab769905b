"""The MCP server: the tools and resources over a viewer (connected or the own engine), served over stdio or
streamable HTTP on 127.0.0.1.

>>> from spacetravlr_py.mcp.server import build_server            # doctest: +SKIP
>>> from spacetravlr_py.mcp.backend import Backend                 # doctest: +SKIP
>>> server = build_server(Backend(api_base="http://127.0.0.1:8080"))   # doctest: +SKIP
>>> server.run("stdio")                                             # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, InputRequiredResult
from pydantic import ValidationError

from . import resources, tools_data, tools_network, tools_perturb, tools_view
from .backend import Backend
from .errors import ToolInputError, validation_line

INSTRUCTIONS = """\
SpaceTravLR: spatial gene regulatory models trained per cell type, and in-silico perturbations that \
propagate through them and across the tissue. Start with get_meta (wait_ready while loading). Name clusters \
with label_clusters after cluster_expression. run_perturbation answers 'what happens if gene X is knocked out \
in cell type A' (focus_cell_types=['B'] reports what happens to B); perturbation_field shows where cells are \
pushed; top_betas, collect_interactions and cell_context explain why (modulators, ligands received from \
neighbours). show_in_viewer makes the human's browser show the same thing; render returns a picture."""


class SpaceTravLRServer(MCPServer[Any]):
    """MCPServer whose argument-validation errors are one line naming the field and the fix."""

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
                        ) -> CallToolResult | InputRequiredResult:
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as e:
            cause = e.__cause__
            if isinstance(cause, ValidationError):
                tool = self._tool_manager.get_tool(name)
                known = list((tool.parameters.get("properties") or {}) if tool else [])
                errs = [dict(x) for x in cause.errors(include_url=False)]
                raise ToolError(validation_line(name, errs, known)) from None
            if isinstance(cause, ToolInputError):
                raise ToolError(f"{name}: {cause}") from None
            raise


def build_server(backend: Backend, *, own_lifecycle: bool = True) -> SpaceTravLRServer:
    """The server with every tool and resource registered over ``backend``.

    With ``own_lifecycle`` (stdio: one session per process) the server starts the own engine when it
    starts serving and closes the backend when the session ends. Streamable HTTP runs a session per
    client, so there the caller starts and closes the backend around ``run``.
    """
    from .. import __version__

    @asynccontextmanager
    async def lifespan(_: MCPServer[Any]) -> AsyncIterator[dict[str, Any]]:
        if backend.engine is not None and backend.engine.base is None and backend.engine.error is None:
            backend.engine.start()  # FastAPI, uvicorn and the data load on a thread, after the handshake
        try:
            yield {}
        finally:
            await backend.close()

    server = SpaceTravLRServer("spacetravlr", version=__version__, instructions=INSTRUCTIONS,
                               lifespan=lifespan if own_lifecycle else None, log_level="WARNING")
    for mod in (tools_data, tools_perturb, tools_network, tools_view, resources):
        mod.register(server, backend)
    return server

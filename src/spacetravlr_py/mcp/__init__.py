"""``spacetravlr mcp``: an MCP server (official ``mcp`` SDK) exposing the viewer and the engine as tools.

* :mod:`.server` — the server (``build_server``), argument errors as one line (:mod:`.errors`);
* :mod:`.tools_data`, :mod:`.tools_perturb`, :mod:`.tools_network`, :mod:`.tools_view` — the tools;
  :mod:`.resources` — the resources; :mod:`.params` — argument types shared by the tools;
* :mod:`.backend` — what the tools share (the viewer, data roots, last results, MCP-side jobs);
  :mod:`.http` — the viewer's HTTP API as an async client; :mod:`.engine` — the own engine (the viewer's
  server in this process on a free 127.0.0.1 port);
* :mod:`.summaries` — pure functions from payloads to what the assistant reads.

Every tool talks HTTP to a viewer (docs/viewer.md), connected or the own engine: one code path. The
program is :mod:`spacetravlr_py.cli.mcp`; docs/mcp.md shows how to register it in an MCP client.
"""

from __future__ import annotations

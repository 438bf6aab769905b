"""The worked session of docs/mcp.md, run with the MCP SDK's client against ``spacetravlr mcp`` on the demo run.

    spacetravlr demo --out demo_output
    python docs/mcp_session.py demo_output/run/spacetravlr_run_repro.toml

Prints each tool call and the text the assistant reads; writes the two rendered PNGs next to this file.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
from pathlib import Path

from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

HERE = Path(__file__).resolve().parent


async def main(run_toml: str) -> None:
    # the SDK passes only a few safe variables to the server; keep PYTHONPATH for a source checkout
    env = {k: os.environ[k] for k in ("PYTHONPATH",) if k in os.environ}
    server = StdioServerParameters(command=sys.executable, args=["-m", "spacetravlr_py.cli.mcp", "--run-toml", run_toml],
                                   env=env)
    async with stdio_client(server) as (read, write), ClientSession(read, write) as s:
        await s.initialize()

        async def call(name: str, args: dict, png: str | None = None) -> dict:
            res = await s.call_tool(name, args)
            print(f"\n>>> {name}({json.dumps(args)})")
            for c in res.content:
                if c.type == "text":
                    print(c.text)
                elif png:
                    (HERE / png).write_bytes(base64.b64decode(c.data))
                    print(f"[image/png written to docs/{png}]")
            return res.structured_content or {}

        await call("wait_ready", {"timeout_s": 300})
        await call("cluster_expression", {"genes": ["Col1a1", "Fn1", "Il6", "Il6st", "Cd3e", "Cd8a"]})
        await call("label_clusters", {"labels": {"1": "fibroblasts", "4": "T cells"}})
        ko = {"genes": ["Il6"], "scope": "cell_types", "cell_types": ["fibroblasts"]}
        s1 = await call("run_perturbation", {**ko, "focus_cell_types": ["T cells"], "top_n": 8})
        await call("perturbation_field", {**ko, "basis": "umap"})
        top_t = s1["focus"]["T cells"][0]["gene"]
        await call("top_betas", {"target_gene": top_t, "cell_type": "T cells", "top_k": 6})
        await call("cell_context", {"focus_gene": top_t, "cell_type": "T cells", "near_cell_type": "fibroblasts"})
        await call("show_in_viewer", {"layout": "spatial", "colour": "delta", "delta_gene": top_t,
                                      "message": f"Il6 knocked out in fibroblasts: change of {top_t}"})
        await call("render", {}, png="mcp_render_delta.png")
        await call("render", {"layout": "umap", "field": True}, png="mcp_render_field.png")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))

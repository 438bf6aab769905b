"""MCP resources with stable URIs: the run's configuration and manifest, its trained genes, the last
perturbation summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from mcp.server.mcpserver.exceptions import ResourceError

from .. import _keys
from .backend import read_local
from .errors import ToolInputError

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from .backend import Backend

RUN_CONFIG = "spacetravlr://run/config"
RUN_MANIFEST = "spacetravlr://run/manifest"
TRAINED_GENES = "spacetravlr://run/trained-genes"
LAST_PERTURBATION = "spacetravlr://perturbation/last"
URIS: tuple[str, ...] = (RUN_CONFIG, RUN_MANIFEST, TRAINED_GENES, LAST_PERTURBATION)


def register(server: MCPServer, b: Backend) -> None:
    async def run_file(name: str | None) -> str:
        try:
            m = await b.ready_meta()
            if not m.get("run_toml"):
                raise ToolInputError("no training run is loaded (load_dataset with run_toml)")
            toml = b.check_path(m["run_toml"], "run_toml", m.get("data_roots"))
            path = toml if name is None else b.check_path(str(Path(m["betadata_dir"] or toml.parent) / name),
                                                          name, m.get("data_roots"))
            return read_local(path, name or "run_toml")
        except ToolInputError as e:
            raise ResourceError(str(e)) from None

    @server.resource(RUN_CONFIG, name="run configuration", mime_type="application/toml", description=(
        "The loaded run's spacetravlr_run_repro.toml: every setting of the training run (data, GRN, spatial "
        "kernel, lasso, perturbation defaults)."))
    async def run_config() -> str:
        return await run_file(None)

    @server.resource(RUN_MANIFEST, name="run manifest", mime_type="application/json", description=(
        "The loaded run's spacetravlr_manifest.json: the dataset fingerprint and, per ligand, its signaling "
        "class and radius as training resolved them."))
    async def run_manifest() -> str:
        return await run_file(_keys.MANIFEST_JSON)

    @server.resource(TRAINED_GENES, name="trained genes", mime_type="application/json", description=(
        "JSON list of the genes with a trained model (betadata) in the loaded run."))
    async def trained_genes() -> str:
        try:
            await b.ready_meta(need_run=True)
            return json.dumps(await (await b.api()).get("betadata/genes"))
        except ToolInputError as e:
            raise ResourceError(str(e)) from None

    @server.resource(LAST_PERTURBATION, name="last perturbation summary", mime_type="application/json",
                     description="The summary returned by the last run_perturbation of this session (JSON).")
    async def last_perturbation() -> str:
        if b.last_summary is None:
            raise ResourceError("no perturbation yet in this session: call run_perturbation first")
        return json.dumps(b.last_summary)

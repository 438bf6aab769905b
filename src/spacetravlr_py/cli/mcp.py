"""``spacetravlr mcp`` (also ``spacetravlr-mcp``): an MCP server that lets an AI assistant drive the viewer and
the perturbation engine through tools (docs/mcp.md).

The MCP SDK, FastAPI and the data are imported after the arguments are parsed, so ``--help`` is fast and a
missing ``mcp`` extra is one line naming the install command.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from ._common import EXIT_OK, guarded, new_parser, run_console

PROG = "spacetravlr mcp"

EPILOG = """\
examples:
  spacetravlr mcp --run-toml demo_output/run/spacetravlr_run_repro.toml     # own engine, stdio
  spacetravlr mcp --api-base http://127.0.0.1:8080                          # drive a running spatial_viewer
  SPATIAL_VIEWER_API_BASE=http://127.0.0.1:8080 spacetravlr-mcp
  spacetravlr mcp --run-toml runs/a/spacetravlr_run_repro.toml --http-port 8765   # streamable HTTP on 127.0.0.1

Modes: with --api-base (or SPATIAL_VIEWER_API_BASE) every tool talks to that viewer, and show_in_viewer
changes what its page shows. Otherwise the server starts its own engine: the viewer's server on a free
127.0.0.1 port in this process (its URL is in get_meta, for a browser). Files open only under the data
roots: --data-root folders and the folders of the files given (connected: the viewer's roots).
Register it in an MCP client (Claude Desktop, an IDE agent): docs/mcp.md.
"""


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    p = new_parser(prog, "MCP server: tools for an AI assistant over the SpaceTravLR viewer and perturbation "
                   "engine (stdio by default).", EPILOG)
    p.add_argument("--api-base", metavar="URL", help="URL of a running spatial_viewer (env SPATIAL_VIEWER_API_BASE)")
    p.add_argument("--run-toml", metavar="TOML", help="own engine: spacetravlr_run_repro.toml of a training run "
                   "(or its folder) to load at start")
    p.add_argument("--h5ad", metavar="PATH", help="own engine: a dataset without a run (no betas, no perturbation)")
    p.add_argument("--network-dir", metavar="DIR", help="own engine: folder of {species}_network.parquet")
    p.add_argument("--data-root", action="append", metavar="DIR", default=[],
                   help="folder from which load_dataset may open files (repeatable)")
    p.add_argument("--threads", type=int, help="own engine: numba/BLAS threads (default: all cores)")
    p.add_argument("--http-port", type=int, metavar="N",
                   help="serve streamable HTTP on 127.0.0.1:N (path /mcp) instead of stdio")
    return p


def mcp_main(argv: Sequence[str] | None, prog: str = PROG) -> int:
    """Parse the flags and serve until the client disconnects (no error guard: see :func:`main`)."""
    a = build_parser(prog).parse_args(argv)
    from ..errors import InputError

    try:
        import mcp.server.mcpserver  # noqa: F401
    except ImportError:
        raise InputError("the MCP server needs the MCP SDK: pip install 'spacetravlr-py[mcp]'") from None
    if a.http_port is not None and not 1 <= a.http_port <= 65535:
        raise InputError(f"--http-port must be 1..65535, got {a.http_port}")
    http = a.http_port is not None
    server, backend = make_server(a, own_lifecycle=not http)
    if not http:
        server.run("stdio")
        return EXIT_OK
    if backend.engine is not None:
        backend.engine.start()
    print(f"{prog}: streamable HTTP on http://127.0.0.1:{a.http_port}/mcp; Ctrl-C to stop", file=sys.stderr,
          flush=True)
    try:
        server.run("streamable-http", host="127.0.0.1", port=a.http_port)
    except KeyboardInterrupt:
        pass
    finally:
        if backend.engine is not None:  # the HTTP clients and jobs ended with the server's event loop
            backend.engine.stop()
    return EXIT_OK


def make_server(a: argparse.Namespace, *, own_lifecycle: bool = True) -> tuple[Any, Any]:
    """The MCP server of the parsed flags (a connected backend, or the own engine) and its backend."""
    from ..errors import InputError
    from ..mcp.backend import Backend, env_api_base
    from ..mcp.engine import EmbeddedViewer, engine_roots
    from ..mcp.server import build_server
    from ..viewer.security import resolve

    api_base = a.api_base or env_api_base()
    roots = [resolve(r) for r in a.data_root]
    if api_base:
        if a.run_toml or a.h5ad or a.network_dir or a.threads:
            raise InputError("--run-toml/--h5ad/--network-dir/--threads start an own engine; drop them with "
                             "--api-base (use the load_dataset tool to open a dataset in that viewer)")
        if not api_base.startswith(("http://", "https://")):
            raise InputError(f"--api-base {api_base!r}: expected a URL such as http://127.0.0.1:8080")
        backend = Backend(api_base=api_base, data_roots=roots)
        return build_server(backend, own_lifecycle=own_lifecycle), backend
    if a.threads is not None and a.threads < 1:
        raise InputError(f"--threads must be >= 1, got {a.threads}")
    for flag, path in (("--run-toml", a.run_toml), ("--h5ad", a.h5ad)):
        if path and not resolve(path).exists():
            raise InputError(f"{flag} {path}: not found")
    if not (a.run_toml or a.h5ad or a.data_root):
        raise InputError("give --run-toml (or --h5ad) to start an own engine, --data-root to open datasets later "
                         "with load_dataset, or --api-base to drive a running viewer")
    roots = engine_roots(a.run_toml, a.h5ad, a.network_dir, a.data_root)
    engine = EmbeddedViewer(run_toml=a.run_toml, h5ad=a.h5ad, network_dir=a.network_dir,
                            data_roots=[str(r) for r in roots], threads=a.threads)
    backend = Backend(engine=engine, data_roots=roots)
    return build_server(backend, own_lifecycle=own_lifecycle), backend


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    """Entry point, testable in-process; returns the exit code."""
    return guarded(lambda args: mcp_main(args, prog), argv, prog)


def run() -> None:
    """Console-script wrapper (``spacetravlr-mcp``)."""
    run_console(lambda argv: main(argv, "spacetravlr-mcp"))


if __name__ == "__main__":  # python -m spacetravlr_py.cli.mcp
    run()

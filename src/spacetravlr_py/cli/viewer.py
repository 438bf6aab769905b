"""``spatial_viewer`` (also ``spatial-viewer`` and ``spacetravlr serve``): serve the viewer.

FastAPI and uvicorn are imported after the arguments are parsed, so ``--help`` is fast and a missing
``viewer`` extra is one line naming the install command.
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
import sys
from collections.abc import Sequence
from typing import Any

from ._common import EXIT_OK, guarded

PROG = "spatial_viewer"

EPILOG = """\
examples:
  spatial_viewer --run-toml demo_output/run/spacetravlr_run_repro.toml --open
  spatial_viewer --h5ad tissue.h5ad --layer imputed_count --cluster-annot cell_type
  spatial_viewer --data-root /data/atlas --port 9000          # start empty, open datasets from the UI
  spatial_viewer --run-toml runs/a --bind 0.0.0.0             # reachable from the network (no authentication!)
  spatial_viewer --run-toml by_sample/spacetravlr_run_repro.toml --condition ctrl   # a run trained with --condition

Files can be opened only under the data roots: every --data-root, or by default the folders of the files
given here and the current directory. The HTTP API is documented in docs/viewer.md and served as OpenAPI
at /api/openapi.json.
"""


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Explore a tissue, its betas and live perturbations in the "
                                "browser (deck.gl front end + HTTP API).", epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--h5ad", metavar="PATH", help="dataset to show (without a run: no betas, no perturbation)")
    p.add_argument("--layer", help="expression layer (default imputed_count; '' = X); a run uses its TOML's")
    p.add_argument("--cluster-annot", metavar="COL", help="obs column of the clusters (default cell_type)")
    p.add_argument("--network-dir", metavar="DIR", help="folder of {species}_network.parquet")
    p.add_argument("--run-toml", metavar="TOML", help="spacetravlr_run_repro.toml of a training run (or its folder): "
                   "enables betadata and perturbation; its [data].adata_path wins over --h5ad")
    p.add_argument("--condition", metavar="GROUP", help="a run trained with --condition: the group to show (its "
                   "label or folder under conditions/; default: the first, switchable in the Dataset panel)")
    p.add_argument("--static-dir", metavar="DIR", help="built front end (default: the package's viewer/static)")
    p.add_argument("--bind", default="127.0.0.1", metavar="ADDR", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="listen port (default 8080; 0 = any free port)")
    p.add_argument("--allow-cors", action="store_true",
                   help="permissive CORS headers (also env SPATIAL_VIEWER_ALLOW_CORS=1)")
    p.add_argument("--open", action="store_true", help="open the viewer in a browser once it listens")
    p.add_argument("--data-root", action="append", metavar="DIR", default=[],
                   help="folder from which files may be opened (repeatable)")
    p.add_argument("--max-body-mb", type=float, default=16.0, help="largest request body in MiB (default 16)")
    p.add_argument("--threads", type=int, help="threads of the perturbation kernels (default: all cores)")
    p.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"],
                   help="server log level (default warning)")
    return p


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket (so that ``--port 0`` can print the port it got before serving)."""
    from ..errors import InputError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((host.strip("[]"), port))
    except OSError as e:
        s.close()
        raise InputError(f"cannot listen on {host}:{port} ({e.strerror or e}); "
                         "choose another --port or --bind") from None
    s.listen(128)
    s.set_inheritable(True)
    return s


def serve_main(argv: Sequence[str] | None, prog: str = PROG) -> int:
    """Parse the flags and serve until Ctrl-C (no error guard: see :func:`main`)."""
    a = build_parser(prog).parse_args(argv)
    from .. import _keys
    from ..errors import InputError
    from ..viewer.state import env_flag

    if a.max_body_mb <= 0:
        raise InputError(f"--max-body-mb must be > 0, got {a.max_body_mb}")
    if not 0 <= a.port <= 65535:
        raise InputError(f"--port must be 0..65535, got {a.port}")
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise InputError("the viewer needs FastAPI and uvicorn: pip install 'spacetravlr-py[viewer]'") from None
    server, state, sock = setup(a, allow_cors=a.allow_cors or env_flag(_keys.VIEWER_CORS_ENV))
    host, port = sock.getsockname()[:2]
    url = f"http://{host if ':' not in host else f'[{host}]'}:{port}/"
    if not is_loopback(a.bind):
        print(f"{prog}: warning: listening on {a.bind}:{port} — the viewer API has no authentication; anyone who "
              "can reach it can read the data under the data roots", file=sys.stderr)
    print(f"{prog}: serving {url} (data roots: {', '.join(map(str, state.guard.roots))}); Ctrl-C to stop",
          file=sys.stderr, flush=True)
    if a.open:
        import threading
        import webbrowser

        threading.Timer(0.5, webbrowser.open, args=(url,)).start()
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled: a clean stop
        pass
    finally:
        state.shutdown()
        sock.close()
    return EXIT_OK


def setup(a: argparse.Namespace, *, allow_cors: bool) -> tuple[Any, Any, socket.socket]:
    """State (with the start dataset loading), the uvicorn server and its bound socket."""
    import uvicorn

    from ..viewer.app import create_app
    from ..viewer.security import PathGuard, resolve, start_roots
    from ..viewer.state import ViewerState
    from ..viewer.static_files import default_static_dir

    roots = start_roots(a.h5ad, a.run_toml, a.network_dir, a.data_root)
    state = ViewerState(PathGuard(roots), threads=a.threads)
    if a.h5ad or a.run_toml:
        from ..errors import InputError
        from ..viewer._errors import ApiError

        try:
            inputs = state.prepare(adata_path=a.h5ad or "", run_toml=a.run_toml or "", layer=a.layer,
                                   cluster_annot=a.cluster_annot, network_dir=a.network_dir or "",
                                   condition=a.condition)
        except ApiError as e:
            raise InputError(e.detail) from None
        if inputs.condition.note:
            print(f"{PROG}: note: {inputs.condition.note}", file=sys.stderr)
        if a.run_toml and (a.layer is not None or a.cluster_annot is not None):
            print(f"{PROG}: note: --layer/--cluster-annot are ignored with --run-toml (its [data] is used)",
                  file=sys.stderr)
        state.start(inputs)
    static_dir = resolve(a.static_dir) if a.static_dir else default_static_dir()
    app = create_app(state, static_dir=static_dir, allow_cors=allow_cors,
                     max_body_bytes=int(a.max_body_mb * (1 << 20)))
    sock = _bind_socket(a.bind, a.port)
    config = uvicorn.Config(app, log_level=a.log_level, lifespan="off", timeout_graceful_shutdown=2)
    return uvicorn.Server(config), state, sock


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    """Entry point, testable in-process; returns the exit code."""
    return guarded(lambda args: serve_main(args, prog), argv, prog)


def run() -> None:
    """Console-script wrapper."""
    try:
        code = main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    sys.exit(code)

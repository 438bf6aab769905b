"""Security of the viewer against real servers: loopback by default (a warning otherwise), data roots for
every path (``..`` and symlink escapes → 403, NUL → 400), static files only from the static folder, CORS
off unless asked, request bodies size-limited."""

from __future__ import annotations

import http.client
import os
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from spacetravlr_py import _keys
from viewer_support import InProcessServer, cli_server, trained_run, wait_ready

pytestmark = pytest.mark.slow

SECRET = "top secret outside the roots"


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A data root holding a copy of the run, a secret file outside it, symlinks escaping the root, and a
    static folder with an index and a symlink to the secret."""
    toml = trained_run(tmp_path_factory.getbasetemp())
    base = tmp_path_factory.mktemp("viewer_security")
    root = base / "root"
    shutil.copytree(toml.parents[1], root / "viewer_run")
    run_toml = root / "viewer_run" / "run" / _keys.REPRO_TOML
    text = run_toml.read_text()
    run_toml.write_text(text.replace(str(toml.parents[1]), str(root / "viewer_run")))
    outside = base / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET)
    shutil.copy(root / "viewer_run" / "data" / "tissue.h5ad", outside / "tissue.h5ad")
    (root / "link_to_outside.h5ad").symlink_to(outside / "tissue.h5ad")
    (root / "link_dir").symlink_to(outside, target_is_directory=True)
    static = base / "static"
    static.mkdir()
    (static / "index.html").write_text("<html>viewer index</html>")
    (static / "app.js").write_text("console.log('viewer')")
    (static / "leak.txt").symlink_to(outside / "secret.txt")
    return {"root": root, "run_toml": run_toml, "outside": outside, "static": static, "base": base}


@pytest.fixture(scope="module")
def server(layout):
    with InProcessServer(run_toml=layout["run_toml"], roots=[layout["root"]], static_dir=layout["static"]) as srv:
        assert srv.wait_ready()["status"] == "ready"
        yield srv


def raw_get(base: str, path: str) -> tuple[int, bytes]:
    """GET with the path sent exactly as written (no client-side normalisation of ``..``)."""
    u = urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------
# data roots
# ---------------------------------------------------------------------------------------------


def configure(srv: InProcessServer, **body: object) -> httpx.Response:
    with srv.client() as c:
        return c.post("/api/session/configure", json=body)


@pytest.mark.parametrize("field", ["adata_path", "run_toml", "network_dir"])
def test_configure_outside_the_roots_is_403(server, layout, field) -> None:
    target = layout["outside"] / ("tissue.h5ad" if field == "adata_path" else "")
    r = configure(server, **{field: str(target)})
    assert r.status_code == 403, r.text
    assert "outside the data roots" in r.json()["detail"] and "--data-root" in r.json()["detail"]


def test_dotdot_and_symlink_escapes_are_403(server, layout) -> None:
    root = layout["root"]
    tricks = [
        str(root / ".." / "outside" / "tissue.h5ad"),
        str(root / "viewer_run" / ".." / ".." / "outside" / "tissue.h5ad"),
        str(root / "link_to_outside.h5ad"),
        str(root / "link_dir" / "tissue.h5ad"),
        "/etc/passwd",
        "~/../../etc/passwd",
    ]
    for p in tricks:
        r = configure(server, adata_path=p)
        assert r.status_code == 403, (p, r.text)
    r = configure(server, run_toml=str(root / "link_dir"))
    assert r.status_code == 403


def test_bad_paths_inside_the_roots(server, layout) -> None:
    root = layout["root"]
    assert configure(server, adata_path=str(root / "nope.h5ad")).status_code == 404
    assert configure(server, adata_path=str(root / "x\x00.h5ad")).status_code == 400
    assert configure(server, adata_path=str(root)).status_code == 400  # a folder, not a file
    r = configure(server, adata_path=str(root / "viewer_run" / "run" / _keys.REPRO_TOML), wait=True)
    assert r.status_code == 400 and "load failed" in r.json()["detail"]  # a TOML is not an .h5ad
    # the server keeps answering; reload the run for the following tests
    r = configure(server, run_toml=str(layout["run_toml"]), wait=True)
    assert r.status_code == 200 and r.json()["meta"]["status"] == "ready"


def test_run_toml_pointing_outside_the_roots_is_403(server, layout) -> None:
    evil = layout["root"] / "evil_repro.toml"
    text = layout["run_toml"].read_text()
    evil.write_text(text.replace(str(layout["root"] / "viewer_run" / "data" / "tissue.h5ad"),
                                 str(layout["outside"] / "tissue.h5ad")))
    assert str(layout["outside"]) in evil.read_text()
    r = configure(server, run_toml=str(evil))
    assert r.status_code == 403 and "adata_path" in r.json()["detail"]


# ---------------------------------------------------------------------------------------------
# static files
# ---------------------------------------------------------------------------------------------


def test_static_files_only_from_the_static_folder(server) -> None:
    assert raw_get(server.base, "/") == (200, b"<html>viewer index</html>")
    assert raw_get(server.base, "/app.js") == (200, b"console.log('viewer')")
    attempts = ["/../outside/secret.txt", "/%2e%2e/outside/secret.txt", "/..%2foutside%2fsecret.txt",
                "/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/leak.txt", "/static/../../outside/secret.txt",
                "//etc/passwd", "/..\\outside\\secret.txt", "/%00index.html"]
    for path in attempts:
        status, body = raw_get(server.base, path)
        assert status in (400, 403, 404), (path, status)
        assert SECRET.encode() not in body and b"root:" not in body
    status, _ = raw_get(server.base, "/leak.txt")  # symlink out of the static folder
    assert status == 403


def test_placeholder_page_without_a_build(layout) -> None:
    with InProcessServer(roots=[layout["root"]], static_dir=layout["base"] / "no_build") as srv:
        r = httpx.get(srv.base + "/")
        assert r.status_code == 200 and "npm run build" in r.text
        assert httpx.get(srv.base + "/index.html").status_code == 404
        m = httpx.get(srv.base + "/api/meta").json()
        assert m["status"] == "empty" and not m["dataset_ready"]
        r = httpx.get(srv.base + "/api/spatial")
        assert r.status_code == 409 and "no dataset loaded" in r.json()["detail"]


# ---------------------------------------------------------------------------------------------
# CORS and body size
# ---------------------------------------------------------------------------------------------


def test_cors_headers_absent_by_default(server) -> None:
    h = {"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}
    r = httpx.get(server.base + "/api/meta", headers={"Origin": "http://evil.example"})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
    pre = httpx.options(server.base + "/api/perturb/preview", headers=h)
    assert "access-control-allow-origin" not in pre.headers


def test_cors_when_enabled(layout) -> None:
    with InProcessServer(roots=[layout["root"]], allow_cors=True) as srv:
        r = httpx.get(srv.base + "/api/meta", headers={"Origin": "http://other.example"})
        assert r.headers["access-control-allow-origin"] == "*"
        pre = httpx.options(srv.base + "/api/perturb/preview",
                            headers={"Origin": "http://other.example", "Access-Control-Request-Method": "POST"})
        assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == "*"


def test_request_bodies_are_size_limited(layout) -> None:
    with InProcessServer(roots=[layout["root"]], max_body_bytes=1000) as srv:
        big = {"genes": ["G" * 100] * 50}
        r = httpx.post(srv.base + "/api/cluster/mean_expression", json=big)
        assert r.status_code == 413 and "larger than 1000 bytes" in r.json()["detail"]

        def chunks():  # no Content-Length: the streamed size is counted
            for _ in range(20):
                yield b"x" * 100

        r = httpx.post(srv.base + "/api/cluster/mean_expression", content=chunks(),
                       headers={"content-type": "application/json"})
        assert r.status_code == 413


# ---------------------------------------------------------------------------------------------
# the program: loopback by default, a warning otherwise, CORS by environment
# ---------------------------------------------------------------------------------------------


def test_cli_binds_loopback_by_default(layout) -> None:
    with cli_server("--run-toml", str(layout["run_toml"])) as (base, proc, lines):
        assert urlsplit(base).hostname == "127.0.0.1"
        assert not any("no authentication" in ln for ln in lines)
        meta = wait_ready(base)
        assert meta["status"] == "ready" and meta["n_obs"] > 0
        roots = meta["data_roots"]
        assert str(layout["run_toml"].parent) in roots and os.getcwd() in roots
        assert "access-control-allow-origin" not in httpx.get(base + "/api/meta", headers={"Origin": "http://x"}).headers
    assert proc.returncode == 0


def test_cli_warns_on_a_non_loopback_bind_and_honours_the_cors_env(layout) -> None:
    with cli_server("--bind", "0.0.0.0", "--data-root", str(layout["root"]),
                    env={_keys.VIEWER_CORS_ENV: "1"}) as (base, _, lines):
        assert any("no authentication" in ln for ln in lines), lines
        port = urlsplit(base).port
        r = httpx.get(f"http://127.0.0.1:{port}/api/meta", headers={"Origin": "http://x"})
        assert r.headers["access-control-allow-origin"] == "*"
        assert r.json()["data_roots"] == [str(layout["root"])]


def test_cli_user_errors_are_one_line(layout, capsys) -> None:
    from spacetravlr_py.cli.viewer import main

    assert main(["--run-toml", str(layout["base"] / "missing.toml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("spatial_viewer: error: ") and err.count("\n") == 1 and "not found" in err
    assert main(["--port", "70000"]) == 2
    assert "--port" in capsys.readouterr().err


def test_spacetravlr_serve_subcommand_help(capsys) -> None:
    from spacetravlr_py.cli.main import main

    with pytest.raises(SystemExit) as e:
        main(["serve", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "spacetravlr serve" in out and "--data-root" in out and "--allow-cors" in out

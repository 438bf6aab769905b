"""Schema-driven fuzz of the viewer's OpenAPI document (schemathesis) against a real server on a trained
run: whatever the generated request, the server answers without a 5xx, with the documented content type.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import content_type_conformance, not_a_server_error

from viewer_support import InProcessServer, trained_run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory):
    toml = trained_run(tmp_path_factory.getbasetemp())
    with InProcessServer(run_toml=toml, roots=[toml.parents[1]]) as srv:
        assert srv.wait_ready()["status"] == "ready"
        with srv.client() as c:  # a result exists, so export / delta are reachable too
            gene = srv.state.dataset.tissue.var_names[0]
            assert c.post("/api/perturb/preview", json={"gene": gene}).status_code == 200
        yield srv


def openapi_document() -> dict:
    """The document the server serves at /api/openapi.json (it does not depend on the loaded data)."""
    from spacetravlr_py.viewer.app import create_app
    from spacetravlr_py.viewer.security import PathGuard
    from spacetravlr_py.viewer.state import ViewerState

    state = ViewerState(PathGuard([Path.cwd()]))
    try:
        return create_app(state, static_dir=Path("/nonexistent")).app.openapi()
    finally:
        state.shutdown()


schema = schemathesis.openapi.from_dict(openapi_document())


def test_served_document_is_the_fuzzed_one(fuzz_server: InProcessServer) -> None:
    import httpx

    assert httpx.get(f"{fuzz_server.base}/api/openapi.json").json() == openapi_document()


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_server_error(case, fuzz_server: InProcessServer) -> None:
    if case.operation.path == "/api/session/configure" and isinstance(case.body, dict):
        case.body["wait"] = False  # a load that somehow started must not hold the fuzz run
    resp = case.call(base_url=fuzz_server.base, timeout=60)
    case.validate_response(resp, checks=[not_a_server_error, content_type_conformance])
    assert fuzz_server.state.dataset is not None and Path(fuzz_server.state.dataset.adata_path).is_file()

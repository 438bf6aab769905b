"""The viewer's additions for the MCP server, against a real uvicorn server on a small trained run: the shared
view (``GET``/``POST /api/view``, ``meta.view``), ``with_genes`` (several genes perturbed together) and the
transition field on the spatial coordinates (``embedding: "spatial"``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from spacetravlr_py.perturbation.session import RunSession
from viewer_support import InProcessServer, trained_run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run_toml(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return trained_run(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def session(run_toml: Any) -> RunSession:
    return RunSession.open(run_toml)


@pytest.fixture(scope="module")
def client(run_toml: Any):
    with InProcessServer(run_toml=run_toml) as srv:
        assert srv.wait_ready()["status"] == "ready"
        with srv.client() as c:
            yield c


def test_view_starts_unset_and_follows_posts(client: Any, session: RunSession) -> None:
    v0 = client.get("/api/view").json()
    assert v0["version"] == 0 and v0["colour"] is None and v0["perturbation"] is None
    gene = session.tissue.var_names[3]
    r = client.post("/api/view", json={"layout": "umap", "colour": "gene", "gene": gene, "message": "look"})
    assert r.status_code == 200, r.text
    v1 = client.get("/api/view").json()
    assert v1 == r.json() and v1["version"] == 1 and (v1["layout"], v1["gene"], v1["message"]) == ("umap", gene, "look")
    assert client.get("/api/meta").json()["view"] == v1
    # fields not sent are kept
    v2 = client.post("/api/view", json={"layout": "spatial"}).json()
    assert (v2["version"], v2["layout"], v2["colour"], v2["gene"]) == (2, "spatial", "gene", gene)
    assert v2["message"] is None  # a message belongs to one post


def test_beta_view_defaults_to_the_strongest_column(client: Any, session: RunSession) -> None:
    gene = session.betabase.genes[0]
    v = client.post("/api/view", json={"colour": "beta", "beta_gene": gene}).json()
    top = client.post("/api/betadata/top", json={"gene": gene, "top_k": 1}).json()
    assert v["beta_column"] == top[0]["column"]


def test_delta_view_carries_the_last_perturbation(client: Any, session: RunSession) -> None:
    gene = session.betabase.genes[1]
    s = client.post("/api/perturb/summary", json={"gene": gene, "recompute": True}).json()
    v = client.post("/api/view", json={"colour": "delta", "delta_gene": None}).json()
    p = v["perturbation"]
    assert (p["gene"], p["job_id"], p["n_scope_cells"]) == (gene, s["job_id"], session.tissue.n_cells)
    assert v["delta_gene"] == s["top_affected_genes"][0]["gene"]


@pytest.mark.parametrize("body,status,needle", [
    ({"colour": "gene", "gene": "NoSuchGene"}, 400, "gene 'NoSuchGene'"),
    ({"colour": "rainbow"}, 400, "colour"),
    ({"layout": "3d"}, 400, "layout"),
    ({"colour": "gene", "gene": None}, 400, "needs gene"),
    ({"colour": "beta", "beta_gene": "G_none", "beta_column": None}, 400, "beta_gene"),
    ({"unknown": 1}, 400, "unknown"),
    ({"message": "x" * 501}, 400, "message"),
])
def test_bad_views_are_4xx_with_a_reason(client: Any, body: dict[str, Any], status: int, needle: str) -> None:
    before = client.get("/api/view").json()["version"]
    r = client.post("/api/view", json=body)
    assert r.status_code == status and needle in r.json()["detail"], r.text
    assert client.get("/api/view").json()["version"] == before  # nothing changed


def test_with_genes_perturbs_genes_together(client: Any, session: RunSession) -> None:
    g1, g2 = session.betabase.genes[:2]
    s = client.post("/api/perturb/summary", json={"gene": g1, "with_genes": [g2], "desired_of_max": 1.0,
                                                   "n_propagation": 2, "top_n": 10}).json()
    t = session.tissue
    hi = [float(t.expression[:, t.gene_index[g]].max()) for g in (g1, g2)]
    res = session.run([g1, g2], hi, n_propagation=2)
    assert [g["gene"] for g in s["top_affected_genes"]] == [g for g, _ in res.top_genes(10)]
    assert g2 not in [g["gene"] for g in s["top_affected_genes"]]  # both are targets
    r = client.post("/api/perturb/summary", json={"gene": g1, "with_genes": ["NoSuchGene"]})
    assert r.status_code == 400 and "with_genes" in r.json()["detail"]


def test_spatial_field_equals_transition_field_on_coordinates(client: Any, session: RunSession) -> None:
    from spacetravlr_py.transitions import transition_field

    t = session.tissue
    gene = session.betabase.genes[2]
    js = client.post("/api/perturb/umap-field", json={"gene": gene, "embedding": "spatial", "n_neighbors": 30,
                                                       "nx": 10, "include_cell_vectors": True}).json()
    res = session.run(gene, 0.0)
    tf = transition_field(t.expression, res.delta, t.coords, n_neighbors=30, nx=10,
                          reference_compat=session.cfg.reference_compat)
    g = tf.grid
    assert js["params"]["embedding"] == "spatial"
    np.testing.assert_allclose(js["grid_x"], g.x, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(js["u"]).reshape(g.u.shape), np.where(g.mask, g.u, 0.0), rtol=1e-9,
                               atol=1e-12)
    np.testing.assert_allclose(js["cell_u"], tf.vectors[:, 0], rtol=1e-5, atol=1e-7)

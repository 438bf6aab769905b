"""The viewer's HTTP API against a real uvicorn server on a loopback port, on a small trained run:
every route, binary lengths and dtypes, agreement with the engine and with ``spacetravlr-perturb``,
the transition field, export, progress, cancellation, and a 4xx JSON reason for each kind of bad input."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.feather as feather
import pytest

from spacetravlr_py import _keys
from spacetravlr_py.perturbation.session import RunSession
from viewer_support import InProcessServer, trained_run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run_toml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return trained_run(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def session(run_toml: Path) -> RunSession:
    return RunSession.open(run_toml)


@pytest.fixture(scope="module")
def server(run_toml: Path):
    with InProcessServer(run_toml=run_toml) as srv:
        meta = srv.wait_ready()
        assert meta["status"] == "ready", meta
        yield srv


@pytest.fixture
def client(server: InProcessServer):
    with server.client() as c:
        yield c


def f32(resp: Any) -> np.ndarray:
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/octet-stream"
    assert resp.headers["x-dtype"] == "float32"
    a = np.frombuffer(resp.content, dtype="<f4")
    assert int(resp.headers["x-length"]) == a.size
    return a


def post(client: Any, path: str, body: Any) -> Any:
    return client.post(path, json=body)


# ---------------------------------------------------------------------------------------------
# meta and the dataset routes
# ---------------------------------------------------------------------------------------------


def test_meta_describes_the_run(client, session) -> None:
    m = client.get("/api/meta").json()
    t = session.tissue
    assert m["status"] == "ready" and m["dataset_ready"] and m["perturb_ready"] and not m["perturb_loading"]
    assert m["n_obs"] == t.n_cells and m["n_vars"] == t.n_genes
    assert m["cluster_labels"] == list(t.cluster_labels) and m["n_clusters"] == t.n_clusters
    assert m["cell_type_column"] == "cell_type" and m["cell_type_categories"] == sorted(t.cluster_labels)
    assert m["betadata_row_id"] == "Cluster" and m["n_trained_genes"] == len(session.betabase)
    assert m["n_propagation_default"] == 4 and m["umap_obsm_key"] == "X_umap"
    assert m["bounds"] == {"min_x": t.coords[:, 0].min(), "max_x": t.coords[:, 0].max(),
                           "min_y": t.coords[:, 1].min(), "max_y": t.coords[:, 1].max()}
    assert m["network_loaded"] and m["network_species"] == "mouse"
    assert m["run_toml"].endswith(_keys.REPRO_TOML) and Path(m["betadata_dir"]) == session.run_dir
    assert m["load"]["state"] == "ready" and m["load"]["percent"] == 100 and m["job"] is None


def test_binary_coordinates_clusters_and_cell_types(client, session) -> None:
    t = session.tissue
    sp = f32(client.get("/api/spatial"))
    assert sp.size == 2 * t.n_cells and client.get("/api/spatial").headers["x-shape"] == f"{t.n_cells},2"
    np.testing.assert_array_equal(sp.reshape(-1, 2), t.coords.astype(np.float32))
    um = f32(client.get("/api/umap"))
    np.testing.assert_array_equal(um.reshape(-1, 2), t.umap.astype(np.float32))
    r = client.get("/api/clusters")
    assert r.headers["x-dtype"] == "uint32" and len(r.content) == 4 * t.n_cells
    np.testing.assert_array_equal(np.frombuffer(r.content, "<u4"), t.clusters)
    r = client.get("/api/cell_type/codes")
    assert r.headers["x-dtype"] == "uint16" and len(r.content) == 2 * t.n_cells
    codes = np.frombuffer(r.content, "<u2")
    cats = client.get("/api/meta").json()["cell_type_categories"]
    np.testing.assert_array_equal(np.asarray(cats)[codes], np.asarray(t.cluster_labels)[t.clusters])


def test_genes_prefix_limit_full_and_expression(client, session) -> None:
    t = session.tissue
    names = client.get("/api/genes", params={"prefix": "", "limit": 5}).json()
    assert names == t.var_names[:5]
    pre = t.var_names[0][:2]
    got = client.get("/api/genes", params={"prefix": pre}).json()
    assert got and all(g.lower().startswith(pre.lower()) for g in got)
    low = client.get("/api/genes", params={"prefix": pre.lower()}).json()
    assert set(low) == set(got)  # case-insensitive matches are included
    assert client.get("/api/genes/full").json() == list(t.var_names)
    for g in (t.var_names[0], t.var_names[-1]):
        np.testing.assert_array_equal(f32(client.get("/api/gene/expression", params={"gene": g})),
                                      t.gene(g).astype(np.float32))


def test_cluster_mean_expression_and_label_clusters(client, session) -> None:
    t = session.tissue
    genes = t.var_names[:3]
    js = post(client, "/api/cluster/mean_expression", {"genes": genes}).json()
    assert js["cluster_ids"] == list(range(t.n_clusters)) and js["cluster_labels"] == list(t.cluster_labels)
    assert js["n_cells_per_cluster"] == t.cluster_sizes().tolist()
    for g in genes:
        expect = [t.gene(g)[t.clusters == k].mean() for k in range(t.n_clusters)]
        np.testing.assert_allclose(js["genes"][g], expect, rtol=1e-12)
    r = post(client, "/api/meta/label_clusters", {"labels": {"0": "B cells", "1": "B cells", "2": "T cells"}})
    assert r.status_code == 200, r.text
    js = r.json()
    assert js["cell_type_column"] == "annotated_type"
    expect_names = ["B cells", "B cells", "T cells", *t.cluster_labels[3:]]
    assert js["categories"] == sorted(set(expect_names))
    codes = np.frombuffer(client.get("/api/cell_type/codes").content, "<u2")
    np.testing.assert_array_equal(np.asarray(js["categories"])[codes], np.asarray(expect_names)[t.clusters])
    # a scope by the new label selects the union of both clusters
    m = client.get("/api/meta").json()
    assert m["cell_type_column"] == "annotated_type" and m["cell_type_categories"] == js["categories"]
    # restore the original labels for the other tests
    post(client, "/api/meta/label_clusters", {"labels": {str(k): lab for k, lab in enumerate(t.cluster_labels)}})


# ---------------------------------------------------------------------------------------------
# betadata
# ---------------------------------------------------------------------------------------------


def test_betadata_genes_columns_values(client, session) -> None:
    bb = session.betabase
    assert client.get("/api/betadata/genes").json() == bb.genes
    gene = bb.genes[0]
    gm = bb[gene]
    cols = client.get("/api/betadata/columns", params={"gene": gene}).json()
    assert cols == ["beta0"] + [f"beta_{m}" for m in gm.frame.modulators]
    rows = bb.mappings[gm.mapping]
    for col in (cols[0], cols[1], cols[-1]):
        vals = f32(client.get("/api/betadata/values", params={"gene": gene, "column": col}))
        j = cols.index(col) - 1
        expect = gm.frame.intercept[rows] if j < 0 else gm.frame.coefs[rows, j]
        np.testing.assert_array_equal(vals, expect.astype(np.float32))
    # the beta_ prefix is optional
    a = client.get("/api/betadata/values", params={"gene": gene, "column": cols[1][5:]}).content
    assert a == client.get("/api/betadata/values", params={"gene": gene, "column": cols[1]}).content


def test_betadata_top_over_selected_cells(client, session) -> None:
    gene = session.betabase.genes[1]
    gm = session.betabase[gene]
    idx = [0, 5, 17, 200, 599]
    top = post(client, "/api/betadata/top", {"gene": gene, "indices": idx, "top_k": 4}).json()
    per_cell = gm.frame.coefs[session.betabase.mappings[gm.mapping][idx]]
    mean_abs = np.abs(per_cell).mean(axis=0)
    order = sorted(range(len(mean_abs)), key=lambda j: (-mean_abs[j], "beta_" + gm.frame.modulators[j]))[:4]
    assert [t["modulator"] for t in top] == [gm.frame.modulators[j] for j in order]
    np.testing.assert_allclose([t["mean_abs"] for t in top], mean_abs[order], rtol=1e-12)
    np.testing.assert_allclose([t["mean"] for t in top], per_cell.mean(axis=0)[order], rtol=1e-12, atol=1e-15)
    assert post(client, "/api/betadata/top", {"gene": gene, "indices": []}).json() == []
    assert len(post(client, "/api/betadata/top", {"gene": gene}).json()) == min(25, len(gm.frame.modulators))


def test_collect_interactions_route_matches_library(client, session) -> None:
    from spacetravlr_py.betadata import collect_interactions

    lab = session.tissue.cluster_labels[1]
    js = post(client, "/api/betadata/collect_interactions", {"aggregate": "max", "cell_type": lab}).json()
    labels = np.asarray(session.tissue.cluster_labels, dtype=object)[session.tissue.clusters]
    df = collect_interactions(session.betabase, session.tissue, labels, aggregate="max", cell_types=[lab])
    assert js["n_total"] == len(df) and not js["capped"] and js["aggregate"] == "max"
    assert js["n_cells"] == int((session.tissue.clusters == 1).sum())
    got = [(r["modulator"], r["target"], r["value"]) for r in js["interactions"]]
    assert got == list(zip(df["modulator"], df["target"], df["value"]))
    by_cluster = post(client, "/api/betadata/collect_interactions",
                      {"filter": "cluster", "cluster_id": 1, "aggregate": "max", "limit": 3}).json()
    assert by_cluster["interactions"] == js["interactions"][:3] and by_cluster["capped"]


def test_cell_context_incoming_edges(client, session) -> None:
    t = session.tissue
    gene = next(g for g in session.betabase.genes if any("$" in m for m in session.betabase[g].frame.modulators))
    js = post(client, "/api/network/cell-context", {"cell_index": 7, "focus_gene": gene, "neighbor_k": 6}).json()
    assert js["modulator_source"] == "betadata" and js["cluster_id"] == int(t.clusters[7])
    assert js["focus_expr"] == t.gene(gene)[7] and js["neighbors_in_query"] == 6
    d2 = ((t.coords - t.coords[7]) ** 2).sum(axis=1)
    d2[7] = np.inf
    assert [n["index"] for n in js["neighbors"]] == np.argsort(d2, kind="stable")[:6].tolist()
    gm = session.betabase[gene]
    own_row = gm.frame.coefs[session.betabase.mappings[gm.mapping][7]]

    def row_beta(lig: str, rec: str) -> float:
        return float(own_row[gm.frame.modulators.index(f"{lig}${rec}")])

    lr = [tuple(p) for p in js["modulators"]["lr_pairs"]]
    assert lr and all("$".join(p) in session.betabase[gene].frame.modulators for p in lr)
    assert sum(len(nb["edges"]) for nb in js["neighbors"]) > 0
    for nb in js["neighbors"]:
        for e in nb["edges"]:  # ligand from the neighbour, receptor of the clicked cell
            assert e["ligand_expr"] == t.gene(e["ligand"])[nb["index"]] > 1e-6
            assert e["receptor_expr"] == t.gene(e["receptor"])[7] > 1e-6
            assert e["support_score"] == pytest.approx(np.sqrt(e["ligand_expr"] * e["receptor_expr"]))
            assert e["beta"] == row_beta(e["ligand"], e["receptor"])
    # the cell's own betas, by |beta|
    assert [b["beta"] for b in js["betas"]] == sorted(own_row[own_row != 0].tolist(), key=lambda v: -abs(v))
    # outgoing: the cell sends the ligand, the neighbour's receptor and betas apply
    out = post(client, "/api/network/cell-context",
               {"cell_index": 7, "focus_gene": gene, "neighbor_k": 6, "direction": "outgoing"}).json()
    for nb in out["neighbors"]:
        for e in nb["edges"]:
            assert e["ligand_expr"] == t.gene(e["ligand"])[7]
            assert e["receptor_expr"] == t.gene(e["receptor"])[nb["index"]]
    untrained = next((g for g in t.var_names if g not in session.betabase), None)
    if untrained is not None:
        js = post(client, "/api/network/cell-context", {"cell_index": 7, "focus_gene": untrained}).json()
        assert js["modulator_source"] == "network" and js["betas"] == [] and js["intercept"] is None
    r = post(client, "/api/network/cell-context",
             {"cell_index": 7, "focus_gene": gene, "neighbor_mode": "radius", "radius": 60.0})
    assert r.status_code == 200
    assert all(n["distance"] <= 60.0 for n in r.json()["neighbors"]) and r.json()["radius_used"] == 60.0


# ---------------------------------------------------------------------------------------------
# perturbation
# ---------------------------------------------------------------------------------------------


def test_preview_equals_spacetravlr_perturb(client, session, run_toml, tmp_path, capsys) -> None:
    from spacetravlr_py.cli.perturb import main as perturb_main

    t = session.tissue
    gene, lab = "Foxo1" if "Foxo1" in t.gene_index else t.var_names[0], t.cluster_labels[2]
    out = tmp_path / "cli.feather"
    rc = perturb_main(["--run-toml", str(run_toml), "--gene", gene, "--desired-expr", "0.5", "--cell-types", lab,
                       "--n-propagation", "3", "--out", str(out)])
    capsys.readouterr()
    assert rc == 0
    cli = feather.read_feather(out)
    body = {"gene": gene, "desired_expr": 0.5, "scope": {"type": "cell_type_name", "name": lab},
            "n_propagation": 3, "recompute": True}
    r = post(client, "/api/perturb/preview", body)
    d = f32(r)
    assert r.headers["x-delta-gene"] == gene and r.headers["x-cached"] == "0"
    expect = cli[gene].to_numpy() - t.gene(gene)
    np.testing.assert_allclose(d, expect, rtol=1e-6, atol=1e-6)
    moved = [g for g in t.var_names if np.abs(cli[g].to_numpy() - t.gene(g)).max() > 1e-3 and g != gene]
    assert moved, "the perturbation should move other genes"
    for g in moved[:5]:
        dg = f32(client.get("/api/perturb/delta", params={"gene": g}))
        np.testing.assert_allclose(dg, cli[g].to_numpy() - t.gene(g), rtol=1e-6, atol=1e-6)
    other = post(client, "/api/perturb/preview", {**body, "recompute": False, "return_gene": moved[0]})
    assert other.headers["x-cached"] == "1" and other.headers["x-delta-gene"] == moved[0]
    np.testing.assert_allclose(f32(other), cli[moved[0]].to_numpy() - t.gene(moved[0]), rtol=1e-6, atol=1e-6)


def test_summary_reuses_the_last_result(client, session) -> None:
    t = session.tissue
    gene = session.betabase.genes[0]
    body = {"gene": gene, "desired_expr": 0.0, "scope": {"type": "clusters", "cluster_ids": [0, 1]}}
    f32(post(client, "/api/perturb/preview", {**body, "recompute": True}))
    js = post(client, "/api/perturb/summary", {**body, "top_n": 5}).json()
    assert js["cached"] is True and js["gene"] == gene and js["n_propagation"] == 4
    mask = np.isin(t.clusters, [0, 1])
    expect = session.run(gene, 0.0, scope=mask)
    col = expect.delta[:, t.gene_index[gene]]
    assert js["n_scope_cells"] == int(mask.sum()) and js["n_obs"] == t.n_cells
    assert js["mean_delta"] == pytest.approx(col.mean(), rel=1e-12)
    assert js["n_negative"] + js["n_positive"] + js["n_zero"] == t.n_cells
    top = [g for g, _ in expect.top_genes(5)]
    assert [x["gene"] for x in js["top_affected_genes"]] == top
    assert [c["label"] for c in js["cluster_mean_abs_delta"]] == list(t.cluster_labels)
    impact = expect.cluster_impact()
    np.testing.assert_allclose([c["mean_abs_delta"] for c in js["cluster_mean_abs_delta"]],
                               [impact[lab] for lab in t.cluster_labels], rtol=1e-12)


def test_umap_field_equals_transition_field(client, session) -> None:
    from spacetravlr_py.transitions import transition_field

    t = session.tissue
    gene = session.betabase.genes[2]
    body = {"gene": gene, "desired_expr": 0.0, "n_neighbors": 40, "include_cell_vectors": True, "nx": 12,
            "recompute": True}
    js = post(client, "/api/perturb/umap-field", body).json()
    res = session.run(gene, 0.0)
    tf = transition_field(t.expression, res.delta, t.umap, n_neighbors=40, nx=12,
                          reference_compat=session.cfg.reference_compat)
    g = tf.grid
    assert (js["nx"], js["ny"]) == (g.u.shape[1], g.u.shape[0])
    np.testing.assert_allclose(js["grid_x"], g.x, rtol=1e-12)
    np.testing.assert_allclose(js["grid_y"], g.y, rtol=1e-12)
    np.testing.assert_array_equal(np.asarray(js["mask"]).reshape(g.mask.shape), g.mask)
    np.testing.assert_allclose(np.asarray(js["u"]).reshape(g.u.shape), np.where(g.mask, g.u, 0.0), rtol=1e-9,
                               atol=1e-12)
    np.testing.assert_allclose(np.asarray(js["v"]).reshape(g.v.shape), np.where(g.mask, g.v, 0.0), rtol=1e-9,
                               atol=1e-12)
    np.testing.assert_allclose(js["cell_u"], tf.vectors[:, 0], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(js["cell_v"], tf.vectors[:, 1], rtol=1e-5, atol=1e-7)
    assert np.abs(tf.vectors).max() > 0
    # quick mode: only the perturbed gene moves
    q = post(client, "/api/perturb/umap-field", {**body, "quick_ko_sanity": True}).json()
    d = np.zeros_like(t.expression)
    d[:, t.gene_index[gene]] = -t.gene(gene)
    tq = transition_field(t.expression, d, t.umap, n_neighbors=40, nx=12,
                          reference_compat=session.cfg.reference_compat)
    np.testing.assert_allclose(np.asarray(q["u"]).reshape(tq.grid.u.shape), np.where(tq.grid.mask, tq.grid.u, 0.0),
                               rtol=1e-9, atol=1e-12)


def test_export_writes_feather_and_summary_atomically(client, session) -> None:
    gene = session.betabase.genes[0]
    f32(post(client, "/api/perturb/preview", {"gene": gene, "desired_expr": 0.0, "recompute": True}))
    r = post(client, "/api/perturb/export", {"name": "viewer_test_export"})
    assert r.status_code == 200, r.text
    files = r.json()["files"]
    fe, js = Path(files["expression"]), Path(files["summary"])
    assert fe.parent == session.run_dir / _keys.PERTURB_EXPORT_DIR and fe.name == "viewer_test_export.feather"
    df = feather.read_feather(fe)
    expect = session.run(gene, 0.0)
    np.testing.assert_array_equal(df[session.tissue.var_names].to_numpy(), expect.expression)
    assert json.loads(js.read_text())["genes"] == [gene]
    inode = fe.stat().st_ino
    again = post(client, "/api/perturb/export", {"name": "viewer_test_export"})
    assert again.status_code == 409 and "overwrite" in again.json()["detail"]
    r = post(client, "/api/perturb/export", {"name": "viewer_test_export", "overwrite": True})
    assert r.status_code == 200
    # replaced by rename (a new inode), never rewritten in place; no temporary file left behind
    assert fe.stat().st_ino != inode
    assert not [p for p in fe.parent.iterdir() if p.name.endswith(".tmp")]
    default = post(client, "/api/perturb/export", None)
    assert default.status_code == 200 and Path(default.json()["files"]["expression"]).name.startswith(gene)


def test_progress_reports_the_last_job(client, session) -> None:
    gene = session.betabase.genes[0]
    f32(post(client, "/api/perturb/preview", {"gene": gene, "recompute": True, "n_propagation": 2}))
    p = client.get("/api/perturb/progress").json()
    assert p["active"] is False and p["queued"] == 0 and p["job"] is None
    assert p["last"]["kind"] == "preview" and p["last"]["state"] == "done" and p["last"]["percent"] == 100
    assert p["last"]["n_steps"] == 2 and p["last"]["step"] == 2 and p["load"]["state"] == "ready"


def test_cancel_stops_queued_and_running_jobs_and_data_routes_stay_free(server, client, session) -> None:
    """A job occupies the worker; previews queue behind it; data routes answer meanwhile; cancel → 409."""
    from spacetravlr_py.viewer.jobs import Job

    release = threading.Event()
    started = threading.Event()

    def blocker(job: Job) -> None:  # a real job in the real queue, stepping until cancelled
        started.set()
        for i in range(6000):
            job.tick(i, 6000, "busy")
            if release.wait(0.01):
                return

    _, fut = server.state.jobs.submit("preview", blocker, gene="x")
    assert started.wait(10)
    gene = session.betabase.genes[0]
    results: list[Any] = []

    def fire() -> None:
        with server.client() as c:
            results.append(c.post("/api/perturb/preview", json={"gene": gene, "recompute": True}))

    threads = [threading.Thread(target=fire) for _ in range(2)]
    for th in threads:
        th.start()
    t0 = time.time()
    while client.get("/api/perturb/progress").json()["queued"] < 2:
        assert time.time() - t0 < 20
        time.sleep(0.02)
    p = client.get("/api/perturb/progress").json()
    assert p["active"] and p["job"]["message"] == "busy"
    m = client.get("/api/meta").json()
    assert m["perturb_loading"] and m["perturb_progress_label"] == "busy" and m["job"]["state"] == "running"
    t1 = time.perf_counter()
    expr = client.get("/api/gene/expression", params={"gene": gene})
    assert expr.status_code == 200 and time.perf_counter() - t1 < 5  # not queued behind the job
    r = client.post("/api/cancel")
    assert r.status_code == 200 and len(r.json()["cancelled"]) == 3
    for th in threads:
        th.join(30)
    assert [x.status_code for x in results] == [409, 409]
    assert all("cancelled" in x.json()["detail"] for x in results)
    with pytest.raises(Exception, match="cancelled"):
        fut.result(10)
    assert client.get("/api/perturb/progress").json()["last"]["state"] == "cancelled"
    # the engine stops between propagation steps when the job is cancelled
    steps: list[int] = []

    def stop_after_one(s: int, n: int) -> None:
        steps.append(s)
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        session.run(gene, 0.0, n_propagation=4, on_step=stop_after_one)
    assert steps == [1]
    # and the worker is free again
    assert post(client, "/api/perturb/preview", {"gene": gene, "recompute": True}).status_code == 200


# ---------------------------------------------------------------------------------------------
# bad input: a 4xx with a JSON reason, never a 500
# ---------------------------------------------------------------------------------------------

BAD = [
    ("get", "/api/gene/expression", {"gene": "NoSuchGene"}, None, 400, "not a gene"),
    ("get", "/api/gene/expression", {}, None, 400, "gene"),
    ("get", "/api/genes", {"limit": 0}, None, 400, "limit"),
    ("get", "/api/genes", {"limit": "many"}, None, 400, "limit"),
    ("get", "/api/betadata/columns", {"gene": "NoSuchGene"}, None, 400, "not a gene"),
    ("get", "/api/betadata/values", {"gene": "@first", "column": "beta_nope"}, None, 400, "no betadata column"),
    ("get", "/api/perturb/delta", {"gene": "NoSuchGene"}, None, 400, "not a gene"),
    ("post", "/api/perturb/preview", None, {"gene": "NoSuchGene"}, 400, "not a gene"),
    ("post", "/api/perturb/preview", None, {"gene": "@first", "desired_expr": -1}, 400, "desired_expr"),
    ("post", "/api/perturb/preview", None, {"gene": "@first", "n_propagation": 0}, 400, "n_propagation"),
    ("post", "/api/perturb/preview", None, {"gene": "@first", "n_propagation": 33}, 400, "n_propagation"),
    ("post", "/api/perturb/preview", None, {"gene": "@first", "scope": {"type": "indices", "indices": [10 ** 9]}},
     400, "out of range"),
    ("post", "/api/perturb/preview", None, {"gene": "@first", "scope": {"type": "indices", "indices": [-1]}},
     400, "indices"),
    ("post", "/api/perturb/preview", None, {"gene": "@first", "scope": {"type": "cell_type_name", "name": "zz"}},
     400, "not a label"),
    ("post", "/api/perturb/preview", None, {"gene": "@first", "scope": {"type": "cluster", "cluster_id": 99}},
     400, "out of range"),
    ("post", "/api/perturb/preview", None, {"gene": "@first", "scope": {"type": "moon"}}, 400, "scope"),
    ("post", "/api/perturb/preview", None, {"gene": "@first", "typo": 1}, 400, "typo"),
    ("post", "/api/perturb/preview", None, "not json", 400, "JSON"),
    ("post", "/api/perturb/preview", None, [1, 2], 400, "body"),
    ("post", "/api/perturb/umap-field", None, {"gene": "@first", "temperature": 0}, 400, "temperature"),
    ("post", "/api/perturb/umap-field", None, {"gene": "@first", "limit_clusters": True}, 400,
     "highlight_cell_types"),
    ("post", "/api/perturb/export", None, {"name": "../escape"}, 400, "name"),
    ("post", "/api/network/cell-context", None, {"cell_index": 10 ** 6, "focus_gene": "@first"}, 400, "out of range"),
    ("post", "/api/network/cell-context", None, {"cell_index": 0, "focus_gene": "@first", "neighbor_mode": "radius"},
     400, "radius"),
    ("post", "/api/cluster/mean_expression", None, {"genes": []}, 400, "genes"),
    ("post", "/api/cluster/mean_expression", None, {"genes": ["NoSuchGene"]}, 400, "not a gene"),
    ("post", "/api/meta/label_clusters", None, {"labels": {"99": "x"}}, 400, "cluster id"),
    ("post", "/api/meta/label_clusters", None, {"labels": {"zero": "x"}}, 400, "cluster id"),
    ("post", "/api/betadata/top", None, {"gene": "@first", "indices": [10 ** 7]}, 400, "out of range"),
    ("post", "/api/betadata/collect_interactions", None, {"aggregate": "median"}, 400, "aggregate"),
    ("post", "/api/betadata/collect_interactions", None, {"filter": "cell_type"}, 400, "cell_type"),
    ("post", "/api/betadata/collect_interactions", None, {"filter": "cluster", "cluster_id": 99}, 400, "range"),
    ("post", "/api/session/configure", None, {}, 400, "adata_path"),
    ("post", "/api/session/configure", None, {"adata_path": "nope\u0000.h5ad"}, 400, "NUL"),
    ("post", "/api/cancel", None, {"job_id": "x"}, 400, "job_id"),
    ("get", "/api/cancel", None, None, 405, "method"),
    ("get", "/api/no/such/route", None, None, 404, "no API route"),
    ("post", "/api/meta", None, {}, 405, "Method"),
]


@pytest.mark.parametrize("method,path,params,body,status,words", BAD, ids=[f"{b[1]}-{i}" for i, b in enumerate(BAD)])
def test_bad_request_is_a_4xx_with_a_reason(client, session, method, path, params, body, status, words) -> None:
    first = session.betabase.genes[0]

    def fill(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: fill(v) for k, v in x.items()}
        return first if x == "@first" else x

    kw: dict[str, Any] = {}
    if params is not None:
        kw["params"] = fill(params)
    if body is not None:
        if isinstance(body, str):
            kw["content"] = body
            kw["headers"] = {"content-type": "application/json"}
        else:
            kw["json"] = fill(body)
    r = getattr(client, method)(path, **kw)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    detail = r.json()["detail"]
    assert isinstance(detail, str) and words.lower() in detail.lower() and "Traceback" not in detail


def test_export_before_any_perturbation_is_404(run_toml) -> None:
    with InProcessServer(run_toml=run_toml) as srv, srv.client() as c:
        srv.wait_ready()
        r = c.post("/api/perturb/export", json={})
        assert r.status_code == 404 and "no perturbation" in r.json()["detail"]
        r = c.get("/api/perturb/delta", params={"gene": srv.state.dataset.tissue.var_names[0]})
        assert r.status_code == 404


def test_full_mode_run_per_cell_betas(run_toml, session, tmp_path) -> None:
    """A run whose betadata have one row per cell (CellID, shuffled, one cell missing) opened through
    session/configure: per-cell values follow the cell ids, the missing cell reads 0."""
    import shutil

    from spacetravlr_py.betadata.frame import BetaFrame, betadata_path, write_betadata

    t = session.tissue
    run_dir = tmp_path / "full_run"
    run_dir.mkdir()
    shutil.copy(run_toml, run_dir / _keys.REPRO_TOML)
    rng = np.random.default_rng(5)
    genes = session.betabase.genes[:4]
    frames = {}
    for g in genes:
        f = session.betabase[g].frame
        order = rng.permutation(t.n_cells)[1:]  # one cell without a row
        coefs = f.coefs[session.betabase.mappings[session.betabase[g].mapping][order]]
        coefs = coefs * rng.uniform(0.5, 1.5, coefs.shape)  # genuinely per-cell values
        frames[g] = BetaFrame(gene=g, row_kind="CellID", row_ids=[str(x) for x in t.obs_names[order]],
                              intercept=rng.normal(size=len(order)), modulators=list(f.modulators), coefs=coefs)
        write_betadata(betadata_path(run_dir, g), frames[g])
    missing = int(np.setdiff1d(np.arange(t.n_cells), [list(t.obs_names).index(c) for c in frames[genes[0]].row_ids])[0])
    with InProcessServer(roots=[run_dir, Path(session.cfg.data.adata_path).parent]) as srv, srv.client() as c:
        r = c.post("/api/session/configure", json={"run_toml": str(run_dir), "wait": True})
        assert r.status_code == 200, r.text
        m = r.json()["meta"]
        assert m["betadata_row_id"] == "CellID" and m["n_trained_genes"] == 4 and m["perturb_ready"]
        g = genes[0]
        f = frames[g]
        col = f"beta_{f.modulators[0]}"
        vals = f32(c.get("/api/betadata/values", params={"gene": g, "column": col}))
        pos = {cid: i for i, cid in enumerate(f.row_ids)}
        expect = np.array([f.coefs[pos[o], 0] if o in pos else 0.0 for o in t.obs_names])
        np.testing.assert_array_equal(vals, expect.astype(np.float32))
        assert vals[missing] == 0.0
        top = c.post("/api/betadata/top", json={"gene": g, "indices": [0, 1, 2]}).json()
        assert top and all(x["mean_abs"] >= 0 for x in top)
        d = f32(c.post("/api/perturb/preview", json={"gene": genes[1], "desired_expr": 0.0}))
        assert d.size == t.n_cells and np.isfinite(d).all()


def test_configure_in_the_background_and_cancel_the_load(run_toml) -> None:
    with InProcessServer(roots=[run_toml.parents[1]]) as srv, srv.client() as c:
        assert c.get("/api/meta").json()["status"] == "empty"
        r = c.post("/api/session/configure", json={"run_toml": str(run_toml)})
        assert r.status_code == 202 and r.json()["ok"]
        m = r.json()["meta"]
        assert m["status"] == "loading" and m["load"]["stage"] == "tissue" and m["run_toml"] == str(run_toml)
        early = c.get("/api/perturb/summary")  # wrong method is still 405 while loading
        assert early.status_code == 405
        seen = {c.post("/api/perturb/preview", json={"gene": "x"}).status_code}
        m = srv.wait_ready()
        assert m["status"] == "ready" and m["perturb_ready"]
        assert seen <= {503, 400}  # 503 while loading (Retry-After), 400 (unknown gene) once ready
        # a second load, abandoned at once
        r = c.post("/api/session/configure", json={"run_toml": str(run_toml)})
        assert r.status_code == 202
        busy = c.get("/api/spatial")
        assert busy.status_code in (200, 503)
        if busy.status_code == 503:
            assert busy.headers["retry-after"] == "1" and "loading" in busy.json()["detail"]
        cancel = c.post("/api/cancel", json={"include_load": True}).json()
        m = c.get("/api/meta").json()
        if cancel["load_cancelled"]:
            assert m["status"] == "cancelled"
            if not m["perturb_ready"]:
                r = c.post("/api/perturb/preview", json={"gene": "x"})
                assert r.status_code in (409, 503) and r.json()["detail"]
        else:
            assert m["status"] in ("ready", "loading")


# ---------------------------------------------------------------------------------------------
# the run's report
# ---------------------------------------------------------------------------------------------


def _files(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def test_run_report_is_the_library_page_built_once(client, run_toml) -> None:
    """GET run/report: the page `spacetravlr run-summary` writes, built in memory (the run folder is left
    as it was), built once per loaded dataset (X-Cached: 1 and the same bytes the second time)."""
    from spacetravlr_py.report import build_run_summary

    run_dir = run_toml.parent
    before = _files(run_dir)
    first = client.get("/api/run/report")
    assert first.status_code == 200, first.text
    assert first.headers["content-type"].startswith("text/html") and first.headers["x-cached"] == "0"
    page = first.text
    assert "<title>SpaceTravLR run report</title>" in page and page.count("data:image/png;base64,") >= 4
    assert "<section id='interactions'>" in page and "No interaction table" not in page
    again = client.get("/api/run/report")
    assert again.status_code == 200 and again.headers["x-cached"] == "1" and again.content == first.content
    assert page == build_run_summary(run_dir)  # the library's page, byte for byte
    # without the interaction table: another page, built once too
    lean = client.get("/api/run/report", params={"interactions": "false"})
    assert lean.status_code == 200 and lean.headers["x-cached"] == "0"
    assert "No interaction table" in lean.text and lean.text == build_run_summary(run_dir, interactions=False)
    assert client.get("/api/run/report", params={"interactions": "false"}).headers["x-cached"] == "1"
    assert client.get("/api/run/report").headers["x-cached"] == "1"
    assert _files(run_dir) == before


def test_run_report_needs_a_run_and_follows_the_loaded_dataset(run_toml, session) -> None:
    h5ad = Path(session.cfg.data.adata_path)
    with InProcessServer(roots=[run_toml.parents[1]]) as srv, srv.client() as c:
        r = c.get("/api/run/report")
        assert r.status_code == 409 and r.headers["content-type"].startswith("application/json")
        assert "no dataset loaded" in r.json()["detail"]
        assert c.post("/api/session/configure", json={"adata_path": str(h5ad), "wait": True}).status_code == 200
        r = c.get("/api/run/report", params={"interactions": "false"})
        assert r.status_code == 409 and "training run" in r.json()["detail"]
        for _ in range(2):  # each load of the run builds its page anew, then serves it from the cache
            assert c.post("/api/session/configure", json={"run_toml": str(run_toml), "wait": True}).status_code == 200
            seen = [c.get("/api/run/report", params={"interactions": "false"}) for _ in range(2)]
            assert [x.status_code for x in seen] == [200, 200], seen[0].text
            assert [x.headers["x-cached"] for x in seen] == ["0", "1"]
        r = c.get("/api/run/report", params={"interactions": "maybe"})
        assert r.status_code == 400 and "interactions" in r.json()["detail"]

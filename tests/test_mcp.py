"""The MCP server driven by the SDK's real client over stdio (``python -m spacetravlr_py.cli.mcp`` as a
subprocess) on the demo run (``spacetravlr demo``): every tool and resource, checked against the library
and ``spacetravlr-perturb``; show_in_viewer seen by a real viewer; each bad input an MCP tool error; the
server answers check_progress while a perturbation runs, and cancel stops it."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from mcp_support import McpClient, image_of, text_of
from spacetravlr_py import _keys
from spacetravlr_py.perturbation.session import RunSession
from viewer_support import InProcessServer

pytestmark = pytest.mark.slow

TOOLS = {"get_meta", "load_dataset", "wait_ready", "list_genes", "cluster_expression", "label_clusters",
         "run_perturbation", "perturbation_field", "top_betas", "cell_context", "collect_interactions", "screen",
         "check_progress", "cancel", "render", "show_in_viewer"}
RESOURCES = {"spacetravlr://run/config", "spacetravlr://run/manifest", "spacetravlr://run/trained-genes",
             "spacetravlr://perturbation/last"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``spacetravlr demo --out <tmp>``: the run folder is ``<tmp>/run``."""
    from spacetravlr_py.cli.main import main

    out = tmp_path_factory.mktemp("mcp_demo")
    assert main(["demo", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def run_toml(demo: Path) -> Path:
    return demo / _keys.DEMO_RUN_DIR / _keys.REPRO_TOML


@pytest.fixture(scope="module")
def session(run_toml: Path) -> RunSession:
    return RunSession.open(run_toml)


@pytest.fixture(scope="module")
def viewer(run_toml: Path):
    with InProcessServer(run_toml=run_toml) as srv:
        assert srv.wait_ready()["status"] == "ready"
        yield srv


@pytest.fixture(scope="module")
def mcp(viewer: InProcessServer):
    """The MCP server connected to the test's viewer."""
    with McpClient("--api-base", viewer.base) as c:
        yield c


def _ct(session: RunSession, label: str) -> np.ndarray:
    t = session.tissue
    return t.clusters == list(t.cluster_labels).index(label)


def test_lists_tools_with_schemas_and_resources(mcp: McpClient) -> None:
    tools = {t.name: t for t in mcp.list_tools()}
    assert set(tools) == TOOLS
    for t in tools.values():
        assert t.input_schema["type"] == "object"
        assert len(t.description) > 120, t.name  # a paragraph an assistant can act on
    props = tools["run_perturbation"].input_schema["properties"]
    assert {"genes", "value", "scope", "cell_types", "clusters", "cell_indices", "n_propagation"} <= set(props)
    assert "32" in json.dumps(props["n_propagation"])  # the bound is in the schema
    assert {str(r.uri) for r in mcp.list_resources()} == RESOURCES
    assert mcp.init_result.server_info.name == "spacetravlr"


def test_meta_genes_and_cluster_expression(mcp: McpClient, viewer: InProcessServer, session: RunSession) -> None:
    m = mcp.ok("wait_ready", {"timeout_s": 60})
    assert m["ready"] and m["mode"] == "connected" and m["viewer_url"] == viewer.base
    t = session.tissue
    assert (m["n_obs"], m["n_vars"], m["n_trained_genes"]) == (t.n_cells, t.n_genes, len(session.betabase))
    assert [c["label"] for c in m["clusters"]] == [str(x) for x in t.cluster_labels]
    g = mcp.ok("list_genes", {"prefix": "Cd", "limit": 500})
    assert g["genes"] and set(g["genes"]) == {x for x in t.var_names if x.lower().startswith("cd")}
    tr = mcp.ok("list_genes", {"prefix": "", "limit": 5000, "trained_only": True})
    assert tr["genes"] == list(session.betabase.genes)
    genes = ["Il6", "Cd3e", "Col1a1"]
    ce = mcp.ok("cluster_expression", {"genes": genes})
    for row in ce["clusters"]:
        cells = t.clusters == row["cluster_id"]
        assert row["n_cells"] == int(cells.sum())
        for gname in genes:
            want = t.expression[cells, t.gene_index[gname]].mean()
            assert row["mean"][gname] == pytest.approx(want, rel=1e-12)


def test_run_perturbation_equals_cli_json_and_library(mcp: McpClient, session: RunSession, run_toml: Path,
                                                      tmp_path: Path) -> None:
    from spacetravlr_py.cli.perturb import main as perturb_main

    cli_out = tmp_path / "il6_ct1.feather"
    assert perturb_main(["--run-toml", str(run_toml), "--gene", "Il6", "--cell-types", "ct1",
                         "--out", str(cli_out)]) == 0
    s = mcp.ok("run_perturbation", {"genes": ["Il6"], "scope": "cell_types", "cell_types": ["ct1"],
                                    "focus_cell_types": ["ct3"], "top_n": 10})
    # the exported summary is spacetravlr-perturb's JSON for the same inputs (timings aside)
    files = s["files"]
    exported = Path(files["summary"])
    assert exported.parent == run_toml.parent / _keys.PERTURB_EXPORT_DIR
    ours, theirs = json.loads(exported.read_text()), json.loads(cli_out.with_suffix(".json").read_text())
    ours.pop("timings_s"), theirs.pop("timings_s")
    assert ours == theirs
    # the structured summary agrees with the library
    res = session.run("Il6", 0.0, scope=_ct(session, "ct1"))
    t = session.tissue
    top = [g for g, _ in res.top_genes(10)]
    assert [g["gene"] for g in s["top_affected_genes"]] == top
    for g in s["top_affected_genes"]:
        assert g["mean_delta"] == pytest.approx(res.delta[:, t.gene_index[g["gene"]]].mean(), rel=1e-9, abs=1e-12)
    impact = res.cluster_impact()
    for c in s["cluster_mean_abs_delta"]:
        assert c["mean_abs_delta"] == pytest.approx(impact[c["label"]], rel=1e-9, abs=1e-12)
        assert c["cell_type"] == c["label"]
    ct3 = _ct(session, "ct3")
    focus = s["focus"]["ct3"]
    assert focus[0]["mean_delta"] == pytest.approx(res.delta[ct3, t.gene_index[focus[0]["gene"]]].mean(), rel=1e-6)
    means = {g: abs(res.delta[ct3, j].mean()) for g, j in t.gene_index.items() if g != "Il6"}
    assert focus[0]["gene"] == max(means, key=lambda g: means[g])
    assert s["n_scope_cells"] == int(_ct(session, "ct1").sum()) and s["perturbed_gene"]["gene"] == "Il6"
    # the resource holds the same summary
    last = json.loads(mcp.read_resource("spacetravlr://perturbation/last").contents[0].text)
    assert last == s


def test_two_genes_and_overexpression_agree_with_library(mcp: McpClient, session: RunSession) -> None:
    s = mcp.ok("run_perturbation", {"genes": ["Il6", "Prdm1"], "value_of_max": 1.0, "scope": "clusters",
                                    "clusters": [0, 3], "n_propagation": 2, "export": False, "top_n": 5})
    t = session.tissue
    hi = [float(t.expression[:, t.gene_index[g]].max()) for g in ("Il6", "Prdm1")]
    res = session.run(["Il6", "Prdm1"], hi, scope=np.isin(t.clusters, [0, 3]), n_propagation=2)
    assert [g["gene"] for g in s["top_affected_genes"]] == [g for g, _ in res.top_genes(5)]
    assert s["files"] is None and s["desired_expr"] == pytest.approx(hi[0])


def test_perturbation_field_summarises_the_viewer_field(mcp: McpClient, viewer: InProcessServer,
                                                         session: RunSession) -> None:
    from spacetravlr_py.mcp.summaries import field_directions, group_masks

    t = session.tissue
    for basis in ("umap", "spatial"):
        f = mcp.ok("perturbation_field", {"genes": ["Il6"], "scope": "cell_types", "cell_types": ["ct1"],
                                          "basis": basis, "n_neighbors": 60})
        body = {"gene": "Il6", "scope": {"type": "cell_types", "names": ["ct1"]}, "embedding": basis,
                "n_neighbors": 60, "include_cell_vectors": True}
        with viewer.client() as c:
            raw = c.post("/api/perturb/umap-field", json=body).json()
        V = np.column_stack([raw["cell_u"], raw["cell_v"]]).astype(float)
        E = (t.umap if basis == "umap" else t.coords).astype(np.float32).astype(float)
        labels = [str(x) for x in t.cluster_labels]
        want = field_directions(E, V, group_masks(t.clusters, None, [], labels))
        assert [r["group"] for r in f["groups"]] == [r["group"] for r in want]
        for got, exp in zip(f["groups"], want):
            assert got["mean_u"] == pytest.approx(exp["mean_u"], rel=1e-6, abs=1e-12)
            assert got["coherence"] == pytest.approx(exp["coherence"], rel=1e-6)
        assert f["basis"] == basis and f["n_bins_shown"] > 0 and f["strongest_bins"]


def test_top_betas_cell_context_and_interactions_agree_with_betadata(mcp: McpClient, session: RunSession) -> None:
    from spacetravlr_py.betadata.interactions import collect_interactions

    t = session.tissue
    gm = session.betabase["Cd3e"]
    k = list(t.cluster_labels).index("ct3")
    rows = session.betabase.mappings[gm.mapping][t.clusters == k]
    assert (rows == rows[0]).all()  # seed run: one row of betas per cluster
    beta = dict(zip(gm.frame.modulators, gm.frame.coefs[rows[0]]))
    tb = mcp.ok("top_betas", {"target_gene": "Cd3e", "cell_type": "ct3", "top_k": 5})
    want = sorted(beta, key=lambda m: (-abs(beta[m]), "beta_" + m))[:5]
    assert [r["modulator"] for r in tb["modulators"]] == want
    for r in tb["modulators"]:
        assert r["mean"] == pytest.approx(beta[r["modulator"]], rel=1e-12)
    cc = mcp.ok("cell_context", {"focus_gene": "Cd3e", "cell_type": "ct3", "near_cell_type": "ct1"})
    i = cc["cell_index"]
    assert t.clusters[i] == k
    X, gi = t.expression, t.gene_index
    for p in cc["pairs"]:
        for partner in p["partners"]:
            want_s = np.sqrt(X[partner["index"], gi[p["ligand"]]] * X[i, gi[p["receptor"]]])
            assert partner["support"] == pytest.approx(want_s, rel=1e-9)
    assert cc["pairs"] and {"ct1"} & {ct for p in cc["pairs"] for ct in p["partner_types"]}
    ci = mcp.ok("collect_interactions", {"cell_type": "ct3", "limit": 20})
    labels = np.asarray(t.cluster_labels, dtype=object)[t.clusters]
    df = collect_interactions(session.betabase, t, labels, cell_types=["ct3"])
    assert ci["n_total"] == len(df)
    for got, (_, exp) in zip(ci["interactions"], df.head(20).iterrows()):
        assert (got["modulator"], got["target"]) == (exp["modulator"], exp["target"])
        assert got["value"] == pytest.approx(exp["value"], rel=1e-12)
    lr = mcp.ok("collect_interactions", {"cell_type": "ct3", "family": "lr", "limit": 5})
    assert lr["interactions"] and all(r["family"] == "lr" for r in lr["interactions"])


def test_screen_ranks_like_the_library(mcp: McpClient, session: RunSession) -> None:
    from spacetravlr_py.perturbation.screen import screen

    genes = ["Il6", "Prdm1", "Tgfb1", "Cxcl12"]
    out = mcp.ok("screen", {"genes": genes, "n_propagation": 2, "wait_s": 0})
    job = out["job_id"]
    t0 = time.time()
    while out["state"] == "running":
        assert time.time() - t0 < 300
        time.sleep(0.3)
        out = mcp.ok("check_progress", {"job_id": job})
    assert out["state"] == "done" and out["step"] == len(genes)
    want = screen(session, genes=genes, n_propagation=2)
    got = out["result"]["ranking"]
    assert [r["gene"] for r in got] == list(want["gene"])
    for r, (_, w) in zip(got, want.iterrows()):
        assert r["impact"] == pytest.approx(w["impact"], rel=1e-9)
        assert r["n_genes_changed"] == w["n_genes_changed"] and r["rank"] == w["rank"]


def test_render_returns_real_pngs(mcp: McpClient) -> None:
    import matplotlib.image as mpimg

    mcp.ok("run_perturbation", {"genes": ["Il6"], "export": False})
    mcp.ok("perturbation_field", {"genes": ["Il6"], "basis": "umap", "n_neighbors": 60})
    for args in ({"layout": "spatial", "colour": "celltype"}, {"layout": "umap", "colour": "gene", "gene": "Cd3e"},
                 {"colour": "beta", "beta_gene": "Cd3e"}, {"colour": "delta", "delta_gene": "Cd3e"},
                 {"layout": "umap", "field": True}):
        res = mcp.call("render", {**args, "dpi": 60})
        assert not res.is_error, text_of(res)
        png = image_of(res)
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        img = mpimg.imread(io.BytesIO(png), format="png")
        assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
        assert np.unique(img.reshape(-1, img.shape[2]), axis=0).shape[0] > 20  # drawn, not blank


def test_show_in_viewer_changes_the_viewers_view(mcp: McpClient, viewer: InProcessServer) -> None:
    before = httpx.get(f"{viewer.base}/api/view").json()["version"]
    out = mcp.ok("show_in_viewer", {"layout": "umap", "colour": "gene", "gene": "Cd3e", "message": "T-cell marker"})
    view = httpx.get(f"{viewer.base}/api/view").json()
    assert view["version"] == before + 1 == out["view"]["version"]
    assert (view["layout"], view["colour"], view["gene"], view["message"]) == ("umap", "gene", "Cd3e", "T-cell marker")
    assert view["source"] == "assistant"
    meta = httpx.get(f"{viewer.base}/api/meta").json()
    assert meta["view"] == view
    mcp.ok("run_perturbation", {"genes": ["Il6"], "export": False})
    out = mcp.ok("show_in_viewer", {"colour": "delta", "delta_gene": "Cd19"})
    view = httpx.get(f"{viewer.base}/api/view").json()
    assert view["colour"] == "delta" and view["delta_gene"] == "Cd19" and view["perturbation"]["gene"] == "Il6"
    # render follows the shared view when no argument is given
    res = mcp.call("render", {"dpi": 50})
    assert "Δ Cd19 (umap)" in text_of(res)


def test_resources_are_the_run_files(mcp: McpClient, run_toml: Path, session: RunSession) -> None:
    cfg = mcp.read_resource("spacetravlr://run/config").contents[0]
    assert cfg.text == run_toml.read_text()
    man = mcp.read_resource("spacetravlr://run/manifest").contents[0]
    assert json.loads(man.text) == json.loads((run_toml.parent / _keys.MANIFEST_JSON).read_text())
    genes = json.loads(mcp.read_resource("spacetravlr://run/trained-genes").contents[0].text)
    assert genes == list(session.betabase.genes)


BAD: list[tuple[str, dict[str, Any], str]] = [
    ("run_perturbation", {"genes": ["NoSuchGene"]}, "not a gene"),
    ("run_perturbation", {"genes": []}, "genes"),
    ("run_perturbation", {"genes": ["Il6"], "n_propagation": 99}, "n_propagation"),
    ("run_perturbation", {"genes": ["Il6"], "value": -1}, "value"),
    ("run_perturbation", {"genes": ["Il6"], "scope": "cell_types"}, "cell_types"),
    ("run_perturbation", {"genes": ["Il6"], "scope": "all", "clusters": [1]}, "clusters"),
    ("run_perturbation", {"genes": ["Il6"], "scope": "cell_types", "cell_types": ["Tcells"]}, "cell_types"),
    ("run_perturbation", {"genes": ["Il6"], "scope": "clusters", "clusters": [99]}, "cluster"),
    ("run_perturbation", {"genes": ["Il6"], "scope": "cells", "cell_indices": [10 ** 7]}, "out of range"),
    ("run_perturbation", {"genes": ["Il6"], "export_name": "../escape"}, "export_name"),
    ("run_perturbation", {"genes": ["Il6"], "focus_cell_types": ["nope"]}, "focus_cell_types"),
    ("run_perturbation", {"genes": "Il6", "scope": "everywhere"}, "scope"),
    ("perturbation_field", {"genes": ["Il6"], "n_neighbors": 1}, "n_neighbors"),
    ("list_genes", {"limit": 0}, "limit"),
    ("cluster_expression", {"genes": [f"g{i}" for i in range(201)]}, "genes"),
    ("cluster_expression", {"genes": ["Cd3e", "Nope"]}, "Nope"),
    ("label_clusters", {"labels": {"x": "B cells"}}, "labels"),
    ("label_clusters", {"labels": {}}, "labels"),
    ("top_betas", {"target_gene": "Cd3e", "cell_type": "ct3", "cluster": 3}, "cluster"),
    ("top_betas", {"target_gene": "Zzz"}, "Zzz"),
    ("cell_context", {"focus_gene": "Cd3e"}, "cell_index"),
    ("cell_context", {"focus_gene": "Cd3e", "cell_index": 10 ** 6}, "cell_index"),
    ("collect_interactions", {"cell_type": "ct3", "aggregate": "median"}, "aggregate"),
    ("collect_interactions", {}, "cell_type"),
    ("screen", {"genes": ["Il6", "Nope"]}, "genes"),
    ("check_progress", {"job_id": "screen-999"}, "job_id"),
    ("render", {"colour": "delta", "delta_gene": "Nope"}, "Nope"),
    ("render", {"layout": "3d"}, "layout"),
    ("render", {"dpi": 5000}, "dpi"),
    ("show_in_viewer", {}, "layout"),
    ("show_in_viewer", {"colour": "gene", "gene": "Nope"}, "gene"),
    ("load_dataset", {"run_toml": "/etc/passwd"}, "outside the data roots"),
    ("load_dataset", {}, "run_toml"),
    ("wait_ready", {"timeout_s": -1}, "timeout_s"),
]


@pytest.mark.parametrize("tool,args,needle", BAD, ids=[f"{t}-{i}" for i, (t, _, _) in enumerate(BAD)])
def test_bad_input_is_an_mcp_error_naming_the_field(mcp: McpClient, tool: str, args: dict[str, Any],
                                                    needle: str) -> None:
    res = mcp.call(tool, args, timeout=120)  # a hung call fails here
    text = text_of(res)
    assert res.is_error, text
    assert needle in text, text
    assert "\n" not in text.strip() and "Traceback" not in text  # one line, no traceback
    assert text.startswith(f"{tool}:") or text.startswith(f"Error executing tool {tool}:"), text


def test_server_survives_bad_input_and_unknown_tool(mcp: McpClient) -> None:
    res = mcp.call("no_such_tool", {})
    assert res.is_error and "no_such_tool" in text_of(res)
    assert mcp.ok("get_meta")["status"] == "ready"


def test_check_progress_answers_while_a_perturbation_runs_and_cancel_stops_it(mcp: McpClient) -> None:
    long_run = {"genes": ["Prdm1"], "n_propagation": 32, "recompute": True, "export": False}
    fut = mcp.start_call("run_perturbation", long_run)
    seen = None
    t0 = time.time()
    while time.time() - t0 < 120 and not fut.done():
        p = mcp.ok("check_progress", timeout=30)
        if p["viewer"]["job"] is not None:
            seen = p
            break
        time.sleep(0.05)
    assert seen is not None, "check_progress never saw the running perturbation"
    assert not fut.done()  # answered while the perturbation was still running
    assert seen["viewer"]["job"]["n_steps"] in (0, 32)
    fut.result(timeout=300)
    # cancel: the running perturbation returns an error saying it was cancelled
    fut = mcp.start_call("run_perturbation", long_run)
    t0 = time.time()
    while mcp.ok("check_progress")["viewer"]["job"] is None:
        assert time.time() - t0 < 120 and not fut.done()
        time.sleep(0.05)
    c = mcp.ok("cancel")
    assert c["cancelled"]
    res = fut.result(timeout=120)
    assert res.is_error and "cancelled" in text_of(res)


def test_own_engine_loads_labels_perturbs_and_serves_the_page(run_toml: Path, tmp_path: Path) -> None:
    with McpClient("--run-toml", str(run_toml), cwd=tmp_path) as mcp:
        assert mcp.init_seconds is not None
        m = mcp.ok("wait_ready", {"timeout_s": 300})
        assert m["ready"] and m["mode"] == "own engine" and m["viewer_url"].startswith("http://127.0.0.1:")
        assert httpx.get(f"{m['viewer_url']}/api/meta").json()["status"] == "ready"
        out = mcp.ok("label_clusters", {"labels": {"1": "fibroblasts", "3": "T cells"}})
        assert {"fibroblasts", "T cells"} <= set(out["categories"])
        s = mcp.ok("run_perturbation", {"genes": ["Il6"], "scope": "cell_types", "cell_types": ["fibroblasts"],
                                        "focus_cell_types": ["T cells"], "export_name": "il6_fibro"})
        assert Path(s["files"]["expression"]) == run_toml.parent / _keys.PERTURB_EXPORT_DIR / "il6_fibro.feather"
        assert s["focus"]["T cells"] and s["cluster_mean_abs_delta"][3]["cell_type"] == "T cells"
        # a named export is never overwritten silently
        again = mcp.call("run_perturbation", {"genes": ["Il6"], "scope": "cell_types", "cell_types": ["fibroblasts"],
                                              "export_name": "il6_fibro"})
        assert again.is_error and "already exists" in text_of(again)
        # the engine's roots are the run's folders, never the working directory
        (tmp_path / "x.h5ad").write_text("not an h5ad")
        res = mcp.call("load_dataset", {"h5ad": str(tmp_path / "x.h5ad")})
        assert res.is_error and "outside the data roots" in text_of(res)


def test_streamable_http_on_loopback_serves_several_sessions(viewer: InProcessServer) -> None:
    import asyncio
    import subprocess
    import sys

    from mcp.client.session import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    from mcp_support import SRC
    from viewer_support import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "spacetravlr_py.cli.mcp", "--api-base", viewer.base,
                             "--http-port", str(port)], env={"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    async def session() -> dict[str, Any]:
        async with streamable_http_client(f"http://127.0.0.1:{port}/mcp") as (r, w), ClientSession(r, w) as s:
            await s.initialize()
            res = await s.call_tool("get_meta", {})
            return dict(res.structured_content)

    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert f"http://127.0.0.1:{port}/mcp" in line, line
        for _ in range(60):  # the line is printed just before uvicorn binds
            try:
                httpx.get(f"http://127.0.0.1:{port}/mcp", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.25)
        first, second = asyncio.run(session()), asyncio.run(session())
        assert first["status"] == second["status"] == "ready" and second["viewer_url"] == viewer.base
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stderr is not None:
            proc.stderr.close()

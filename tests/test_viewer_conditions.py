"""The viewer on a run per condition (issue 18 item 2): ``spatial_viewer --condition GROUP``, the
``condition`` field of ``POST /api/session/configure`` and the condition keys of ``GET /api/meta``, on a
real uvicorn server (the ``spatial_viewer`` program, or the app in a thread) over a run trained with
``--condition sample`` on the synthetic tissue.

The condition is resolved as ``spacetravlr-perturb --condition`` resolves it (label or folder; labels win),
the viewer then holds that group's cells only, and a preview equals ``spacetravlr-perturb --run-toml PARENT
--condition GROUP``. A parent opened without a condition opens its first condition with a note.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import pyarrow.feather as feather
import pytest

from spacetravlr_py import _keys
from spacetravlr_py.config import SpaceshipConfig
from spacetravlr_py.datasets import synthetic_tissue
from spacetravlr_py.perturbation.session import RunSession
from spacetravlr_py.training import train
from viewer_support import InProcessServer, cli_server, wait_ready

pytestmark = pytest.mark.slow

GENES = ["Cd19", "Ms4a1", "Foxo1"]
LEFT, RIGHT = "a/b", "a_b"  # RIGHT's label is LEFT's folder name: labels win, as in spacetravlr-perturb
FOLDERS = {LEFT: "a_b", RIGHT: "a_b_2"}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A run per obs['sample'] (the left and right halves of the tissue; three cells without a value)."""
    base = tmp_path_factory.mktemp("viewer_cond")
    syn = synthetic_tissue(n_cells=600, seed=2)
    a = syn.adata
    x = a.obsm["spatial"][:, 0]
    sample = np.where(x < np.median(x), LEFT, RIGHT).astype(object)
    sample[:3] = None
    a.obs["sample"] = pd.Categorical(sample)
    paths = syn.write(base / "data")
    out = base / "run"
    train(SpaceshipConfig().with_overrides({
        "data.adata_path": str(paths["h5ad"]), "grn.network_data_dir": str(paths["network"].parent),
        "execution.output_dir": str(out), "training.genes": GENES, "data.condition": "sample"}))
    cells = {lab: np.flatnonzero(sample == lab) for lab in (LEFT, RIGHT)}
    return {"base": base, "out": out, "toml": out / _keys.REPRO_TOML, "h5ad": paths["h5ad"], "cells": cells,
            "data": paths["h5ad"].parent}


def _meta(base: str) -> dict[str, Any]:
    import httpx

    return dict(httpx.get(f"{base}/api/meta", timeout=30).json())


def _f32(resp: Any) -> np.ndarray:
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-dtype"] == "float32"
    return np.frombuffer(resp.content, dtype="<f4")


def _check_condition(base: str, run: dict[str, Any], label: str) -> dict[str, Any]:
    """Meta, coordinates and the cell count of the open condition are those of group ``label``."""
    import httpx

    m = wait_ready(base)
    assert m["status"] == "ready" and m["perturb_ready"], m
    idx = run["cells"][label]
    assert m["n_obs"] == idx.size and m["condition"] == label and m["condition_column"] == "sample"
    assert m["betadata_dir"] == str(run["out"] / _keys.CONDITIONS_DIR / FOLDERS[label])
    assert m["condition_parent_toml"] == str(run["toml"])
    manifest = json.loads((run["out"] / _keys.MANIFEST_JSON).read_text())
    want = [{"label": g["label"], "folder": g["folder"], "n_cells": g["n_cells"], "status": g["status"]}
            for g in manifest["conditions"]["groups"]]
    assert m["conditions"] == want and [g["label"] for g in want] == [LEFT, RIGHT]
    assert {g["label"]: g["n_cells"] for g in want} == {lab: c.size for lab, c in run["cells"].items()}
    xy = _f32(httpx.get(f"{base}/api/spatial", timeout=30)).reshape(-1, 2)
    full = ad.read_h5ad(run["h5ad"])
    np.testing.assert_array_equal(xy, full.obsm["spatial"][idx].astype(np.float32))
    # cell types coded as in the whole dataset: a type keeps its colour in every condition
    types = full.obs["cell_type"].astype(str).to_numpy()
    assert m["cell_type_categories"] == sorted(set(types)) and len(set(types[idx])) < len(set(types))
    codes = np.frombuffer(httpx.get(f"{base}/api/cell_type/codes", timeout=30).content, dtype="<u2")
    np.testing.assert_array_equal(np.asarray(m["cell_type_categories"])[codes], types[idx])
    return m


def _preview(base: str, gene: str, value: float) -> np.ndarray:
    import httpx

    body = {"gene": gene, "desired_expr": value, "n_propagation": 3, "recompute": True}
    return _f32(httpx.post(f"{base}/api/perturb/preview", json=body, timeout=120))


def _cli_delta(run: dict[str, Any], label: str, gene: str, value: float, out: Path) -> np.ndarray:
    """Δ of ``gene`` by ``spacetravlr-perturb --run-toml PARENT --condition label`` (the program)."""
    cmd = [sys.executable, "-c", "import sys; from spacetravlr_py.cli.perturb import main; sys.exit(main())",
           "--run-toml", str(run["toml"]), "--condition", label, "--gene", gene, "--desired-expr", str(value),
           "--n-propagation", "3", "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    df = feather.read_feather(out)
    s = RunSession.open(run["toml"], condition=label)
    assert list(df[_keys.CELLID_COL]) == list(s.tissue.obs_names)
    return np.asarray(df[gene].to_numpy() - s.tissue.gene(gene))


def test_condition_flag_opens_the_group_and_configure_switches(run, tmp_path) -> None:
    """``spatial_viewer --run-toml PARENT --condition a/b``: the group's cells, betadata and perturbations (a
    preview equals spacetravlr-perturb's); configure with another condition (by folder name) switches."""
    import httpx

    with cli_server("--run-toml", str(run["toml"]), "--condition", LEFT) as (base, _, lines):
        m = _check_condition(base, run, LEFT)
        assert m["condition_note"] is None and not any("note:" in ln for ln in lines)
        assert m["n_trained_genes"] == len(GENES)
        d = _preview(base, "Foxo1", 0.5)
        np.testing.assert_allclose(d, _cli_delta(run, LEFT, "Foxo1", 0.5, tmp_path / "left.feather"),
                                   rtol=1e-6, atol=1e-6)
        assert np.abs(d).max() > 0.1
        r = httpx.post(f"{base}/api/session/configure", json={"run_toml": str(run["toml"]), "condition": "a_b_2",
                                                              "wait": True}, timeout=300)
        assert r.status_code == 200, r.text
        _check_condition(base, run, RIGHT)
        d = _preview(base, "Cd19", 0.0)
        np.testing.assert_allclose(d, _cli_delta(run, RIGHT, "Cd19", 0.0, tmp_path / "right.feather"),
                                   rtol=1e-6, atol=1e-6)
        # the condition alone switches within the run open now; the label a_b is RIGHT's, not LEFT's folder
        r = httpx.post(f"{base}/api/session/configure", json={"condition": LEFT, "wait": True}, timeout=300)
        assert r.status_code == 200, r.text
        _check_condition(base, run, LEFT)
        r = httpx.post(f"{base}/api/session/configure", json={"condition": RIGHT, "wait": True}, timeout=300)
        assert r.status_code == 200 and _check_condition(base, run, RIGHT)["condition"] == RIGHT


def test_parent_without_condition_opens_the_first_with_a_note(run) -> None:
    with cli_server("--run-toml", str(run["out"])) as (base, _, lines):
        notes = [ln for ln in lines if "note:" in ln]
        assert len(notes) == 1, lines
        assert ("trains one model set per obs['sample'] group; showing condition 'a/b' (conditions: a/b, a_b); "
                "pick another with --condition GROUP") in notes[0]
        m = _check_condition(base, run, LEFT)
        assert m["condition_note"] in notes[0]
    with InProcessServer(roots=[run["base"]]) as srv, srv.client() as c:
        r = c.post("/api/session/configure", json={"run_toml": str(run["toml"]), "wait": True})
        assert r.status_code == 200, r.text
        m = _check_condition(srv.base, run, LEFT)
        assert "showing condition 'a/b'" in m["condition_note"]


def test_a_condition_folder_opens_directly(run) -> None:
    """``--run-toml conditions/a_b_2/spacetravlr_run_repro.toml``: that group, the siblings listed (its parent
    becomes a data root), and the same preview as through the parent."""
    child = run["out"] / _keys.CONDITIONS_DIR / FOLDERS[RIGHT] / _keys.REPRO_TOML
    with InProcessServer(run_toml=child) as srv:
        assert srv.state.guard.allows(run["out"])
        m = _check_condition(srv.base, run, RIGHT)
        assert m["run_toml"] == str(child) and m["condition_note"] is None
        d = _preview(srv.base, "Foxo1", 0.0)
        ref = RunSession.open(run["toml"], condition=RIGHT).run("Foxo1", 0.0, n_propagation=3)
        np.testing.assert_allclose(d, ref.delta_of("Foxo1"), rtol=1e-6, atol=1e-6)
        assert np.abs(d).max() > 0.1
        with srv.client() as c:  # the siblings are reachable from here: the picker switches
            r = c.post("/api/session/configure", json={"condition": LEFT, "wait": True})
            assert r.status_code == 200, r.text
        _check_condition(srv.base, run, LEFT)


@pytest.mark.parametrize(("body", "status", "words"), [
    ({"run_toml": "TOML", "condition": "a_c"}, 400,
     ["condition: ", "no condition 'a_c' (did you mean a_b?)", "(conditions: a/b, a_b)"]),
    ({"run_toml": "TOML", "condition": ""}, 400, ["body.condition"]),
    ({"adata_path": "H5AD", "condition": "a/b"}, 400, ["condition needs run_toml"]),
])
def test_bad_conditions_are_one_line(run, body, status, words) -> None:
    with InProcessServer(roots=[run["base"]]) as srv, srv.client() as c:
        paths = {"H5AD": str(run["h5ad"]), "TOML": str(run["toml"])}
        r = c.post("/api/session/configure", json={k: paths.get(v, v) for k, v in body.items()})
        assert r.status_code == status, r.text
        detail = r.json()["detail"]
        assert "\n" not in detail and all(w in detail for w in words), detail
        assert srv.state.inputs is None  # nothing started


def test_condition_errors_elsewhere(run, tmp_path) -> None:
    """A condition on an ordinary run or with nothing open is a 400; on the command line one line, exit 2."""
    plain = tmp_path / "plain"
    shutil.copytree(run["out"] / _keys.CONDITIONS_DIR / FOLDERS[LEFT], plain)
    (plain / _keys.CONDITION_LABEL_FILE).unlink()  # an ordinary run on the group's cells
    cfg = SpaceshipConfig.from_toml(plain / _keys.REPRO_TOML).with_overrides({"execution.output_dir": str(plain)})
    cfg.dump_toml(plain / _keys.REPRO_TOML)
    text = (plain / _keys.REPRO_TOML).read_text()
    kept = [ln for ln in text.splitlines() if not ln.startswith(("condition = ", "condition_group = "))]
    (plain / _keys.REPRO_TOML).write_text("\n".join(kept) + "\n")
    assert SpaceshipConfig.from_toml(plain / _keys.REPRO_TOML).data.condition is None
    with InProcessServer(roots=[run["base"], tmp_path]) as srv, srv.client() as c:
        r = c.post("/api/session/configure", json={"condition": LEFT})
        assert r.status_code == 400 and "no run per condition is open" in r.json()["detail"], r.text
        r = c.post("/api/session/configure", json={"run_toml": str(plain), "condition": LEFT})
        assert r.status_code == 400 and "was not trained per condition" in r.json()["detail"], r.text
    cmd = [sys.executable, "-c", "from spacetravlr_py.cli.viewer import run; run()", "--run-toml",
           str(run["toml"]), "--condition", "zz", "--port", "0"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    err = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(err) == 1, done.stderr
    assert "no condition 'zz'" in err[0] and "(conditions: a/b, a_b)" in err[0]


def test_a_condition_folder_outside_the_roots_is_refused(run, tmp_path) -> None:
    """conditions/a_b_2 is a symlink to a folder outside the data roots: opening it is a 403, the other
    condition opens."""
    inside, outside = tmp_path / "inside", tmp_path / "outside"
    shutil.copytree(run["out"], inside / "run", symlinks=True)
    outside.mkdir()
    moved = outside / FOLDERS[RIGHT]
    shutil.move(str(inside / "run" / _keys.CONDITIONS_DIR / FOLDERS[RIGHT]), moved)
    (inside / "run" / _keys.CONDITIONS_DIR / FOLDERS[RIGHT]).symlink_to(moved, target_is_directory=True)
    toml = inside / "run" / _keys.REPRO_TOML
    with InProcessServer(roots=[inside, run["data"]]) as srv, srv.client() as c:
        r = c.post("/api/session/configure", json={"run_toml": str(toml), "condition": RIGHT})
        assert r.status_code == 403 and "outside the data roots" in r.json()["detail"], r.text
        assert srv.state.inputs is None
        r = c.post("/api/session/configure", json={"run_toml": str(toml), "condition": LEFT, "wait": True})
        assert r.status_code == 200, r.text
        m = srv.wait_ready()
        assert m["condition"] == LEFT and m["n_obs"] == run["cells"][LEFT].size
        assert m["betadata_dir"] == str(inside / "run" / _keys.CONDITIONS_DIR / FOLDERS[LEFT])


def test_help_and_docs_name_the_flag(capsys) -> None:
    from spacetravlr_py.cli.viewer import main

    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "--condition GROUP" in text and "--condition ctrl" in text
    doc = (Path(__file__).resolve().parents[1] / "docs" / "viewer.md").read_text()
    for s in ("--condition GROUP", "condition_parent_toml", "condition_note", '"condition"'):
        assert s in doc, s


@pytest.mark.browser
def test_the_condition_select_switches_in_the_browser(run, tmp_path) -> None:
    """Headless Chromium on ``spatial_viewer --run-toml PARENT``: the note, the Condition select (a/b open,
    both groups with their cell counts), picking a_b reloads the page on that group's cells."""
    from playwright.sync_api import sync_playwright

    from test_viewer_browser import CHROMIUM, CHROMIUM_ARGS, STATIC, Steps, _artefacts, _open, toasts_seen

    if not (STATIC / _keys.INDEX_HTML).is_file():
        pytest.fail(f"the front end is not built ({STATIC}/index.html missing): cd web && npm ci && npm run build")
    with cli_server("--run-toml", str(run["toml"])) as (base, _, _lines), sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            ctx, page, watch = _open(b, base + "/")
            steps = Steps(page, _artefacts(tmp_path, "conditions"), watch)
            n = {lab: int(c.size) for lab, c in run["cells"].items()}
            assert page.is_visible("#condition-row") and page.input_value("#condition-select") == LEFT
            options = page.eval_on_selector_all("#condition-select option", "els => els.map(e => e.textContent)")
            assert options == [f"{LEFT} ({n[LEFT]} cells)", f"{RIGHT} ({n[RIGHT]} cells)"]
            assert page.evaluate("window.spatialViewer.n") == n[LEFT]
            assert "showing condition 'a/b'" in toasts_seen(page)
            assert f"condition {LEFT}" in page.inner_text("#dataset-chip")
            steps.done("condition_first")
            loads = page.evaluate("window.spatialViewer.loads")
            page.select_option("#condition-select", RIGHT)
            page.wait_for_function(f"window.spatialViewer.loads > {loads} && window.spatialViewer.runReady")
            assert page.evaluate("window.spatialViewer.n") == n[RIGHT]
            assert page.input_value("#condition-select") == RIGHT
            assert f"condition {RIGHT}" in page.inner_text("#dataset-chip")
            assert _meta(base)["condition"] == RIGHT
            steps.done("condition_switched")
            ctx.close()
        finally:
            b.close()


def test_mcp_lists_and_switches_conditions(run: dict[str, Any]) -> None:
    """The MCP server's own engine on the parent run: get_meta lists the groups, load_dataset's condition
    switches to another one (its cells only), an unknown condition is an error naming the field."""
    from mcp_support import McpClient, text_of

    with McpClient("--run-toml", str(run["toml"]), "--data-root", str(run["base"])) as mcp:
        d = mcp.ok("wait_ready", {"timeout_s": 300})
        assert d["ready"]
        m = mcp.ok("get_meta")
        assert {c["label"] for c in m["conditions"]} == {LEFT, RIGHT}
        first = m["condition"]
        other = RIGHT if first == LEFT else LEFT
        assert m["n_obs"] == run["cells"][first].size
        mcp.ok("load_dataset", {"condition": FOLDERS[other], "wait": True})
        m = mcp.ok("get_meta")
        assert m["condition"] == other and m["n_obs"] == run["cells"][other].size
        bad = mcp.call("load_dataset", {"condition": "no_such_group", "wait": True})
        assert bad.is_error and "condition" in text_of(bad)

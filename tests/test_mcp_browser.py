"""show_in_viewer seen by a human: the MCP server's own engine serves the built page to Debian's Chromium
(headless, Playwright); each show_in_viewer call (SDK client over stdio) changes what the open page shows
within the page's polling interval, with no error in the page. Screenshots under the test's tmp dir (or
``$SPACETRAVLR_SCREENSHOT_DIR``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mcp_support import McpClient
from spacetravlr_py import _keys
from test_viewer_browser import CHROMIUM, STATIC, Watch, _artefacts, _open, browser, legend_title  # noqa: F401

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def mcp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[McpClient]:
    from spacetravlr_py.cli.main import main

    if not (STATIC / "index.html").is_file():
        pytest.fail(f"the front end is not built ({STATIC}/index.html missing): run `make setup`")
    out = tmp_path_factory.mktemp("mcp_browser_demo")
    assert main(["demo", "--out", str(out), "--cells", "1200"]) == 0
    with McpClient("--run-toml", str(out / _keys.DEMO_RUN_DIR / _keys.REPRO_TOML)) as c:
        assert c.ok("wait_ready", {"timeout_s": 300})["ready"]
        yield c


def _follows(page: Any, version: int, js_condition: str, legend: str) -> None:
    """Wait until the page applied view ``version``, its state matches and the legend shows ``legend``."""
    page.wait_for_function(f"() => {{ const v = window.spatialViewer; const t = document.querySelector("
                           f"'#legend .title'); return v.viewVersion >= {version} && ({js_condition}) && t !== "
                           f"null && t.textContent.includes({legend!r}); }}", timeout=30_000)


def test_page_follows_show_in_viewer(mcp: McpClient, browser: Any, tmp_path: Path) -> None:  # noqa: F811
    url = mcp.ok("get_meta")["viewer_url"]
    ctx, page, watch = _open(browser, url + "/")
    shots = _artefacts(tmp_path, "mcp")
    shots.mkdir(parents=True, exist_ok=True)
    try:
        v = mcp.ok("show_in_viewer", {"layout": "umap", "colour": "gene", "gene": "Cd3e",
                                      "message": "Cd3e marks T cells"})["view"]["version"]
        _follows(page, v, "v.state.layout === 'umap' && v.state.colour === 'gene' && v.state.gene === 'Cd3e'", "Cd3e")
        assert legend_title(page).startswith("Cd3e")
        assert "Cd3e marks T cells" in page.inner_text("#toasts")
        page.screenshot(path=str(shots / "mcp_1_gene.png"))
        mcp.ok("label_clusters", {"labels": {"1": "fibroblasts"}})
        mcp.ok("run_perturbation", {"genes": ["Il6"], "scope": "cell_types", "cell_types": ["fibroblasts"],
                                    "export": False})
        v = mcp.ok("show_in_viewer", {"layout": "spatial", "colour": "delta", "delta_gene": "Cd19"})["view"]["version"]
        _follows(page, v, "v.state.layout === 'spatial' && v.state.colour === 'delta' && v.state.deltaGene === 'Cd19'",
                 "Δ Cd19")
        assert "colour=delta" in page.url
        assert page.inner_text("#toasts").count("Cd3e marks T cells") <= 1  # a message is shown once
        page.screenshot(path=str(shots / "mcp_2_delta.png"))
        v = mcp.ok("show_in_viewer", {"colour": "beta", "beta_gene": "Cd3e"})["view"]
        _follows(page, v["version"], f"v.state.colour === 'beta' && v.state.betaColumn === {v['beta_column']!r}",
                 "β of Cd3e")
        watch.check("show_in_viewer")
    finally:
        ctx.close()
    if os.environ.get("SPACETRAVLR_SCREENSHOT_DIR"):
        assert (shots / "mcp_2_delta.png").is_file()

"""The viewer in a real browser: Debian's Chromium (headless, driven by Playwright) against the real
``spatial_viewer`` program on a free 127.0.0.1 port, serving a run made by ``spacetravlr demo``.

Every step keeps a screenshot (under the test's tmp dir, or ``$SPACETRAVLR_SCREENSHOT_DIR`` when set);
any console error, uncaught page error, failed request or HTTP error fails the test unless the step
expects that exact error.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from builders import slow_genes_env

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "src" / "spacetravlr_py" / "viewer" / "static"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync"]
VIEWPORT = {"width": 1440, "height": 900}
STEP_TIMEOUT_MS = 60_000
# a program of this package, run with the interpreter and import path of the tests
PROGRAM = "import sys; from {module} import main; sys.exit(main(sys.argv[1:]))"


def _program(module: str, *args: str) -> list[str]:
    return [sys.executable, "-c", PROGRAM.format(module=module), *args]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``spacetravlr demo --out <tmp>``; returns the run TOML of ``<tmp>/run``."""
    out = tmp_path_factory.mktemp("viewer_demo")
    done = subprocess.run(_program("spacetravlr_py.cli.main", "demo", "--out", str(out)), capture_output=True,
                          text=True, timeout=600, env=os.environ.copy())
    assert done.returncode == 0, done.stdout + done.stderr
    toml = out / "run" / "spacetravlr_run_repro.toml"
    assert toml.is_file(), f"the demo wrote no {toml}"
    return toml


@pytest.fixture(scope="module")
def server(demo_run: Path) -> Iterator[str]:
    """``spatial_viewer --run-toml <demo run> --port 0`` (a free port, printed at start); stopped after."""
    if not (STATIC / "index.html").is_file():
        pytest.fail(f"the front end is not built ({STATIC}/index.html missing): run `make setup` "
                    "(or `cd web && npm ci && npm run build`)")
    # each propagation step waits 0.05 s (same results), so that a 32-step job is cancelled while it runs
    proc = subprocess.Popen(_program("spacetravlr_py.cli.viewer", "--run-toml", str(demo_run), "--port", "0"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **slow_genes_env(0.0, step_delay=0.05)})
    try:
        url = _wait_for_url(proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()


def _wait_for_url(proc: subprocess.Popen[str]) -> str:
    assert proc.stderr is not None
    seen = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line and proc.poll() is not None:
            break
        seen.append(line)
        m = re.search(r"serving (http://127\.0\.0\.1:\d+/)", line)
        if m:
            return m.group(1)
    raise AssertionError("spatial_viewer did not start:\n" + "".join(seen))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} missing: `make setup` installs Debian's chromium (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@dataclass
class Watch:
    """Everything that went wrong in the page: console errors, page errors, failed/HTTP-error requests."""

    problems: list[str] = field(default_factory=list)
    allowed: list[str] = field(default_factory=list)

    def attach(self, page: Any) -> None:
        page.on("console", lambda m: m.type == "error" and self._add(f"console error: {m.text}"))
        page.on("pageerror", lambda e: self._add(f"page error: {e}"))
        page.on("requestfailed", lambda r: self._add(f"request failed: {r.method} {r.url} ({r.failure})"))
        page.on("response", lambda r: r.status >= 400 and self._add(f"HTTP {r.status}: {r.request.method} {r.url}"))

    def _add(self, what: str) -> None:
        if not any(a in what for a in self.allowed):
            self.problems.append(what)

    def check(self, step: str) -> None:
        assert not self.problems, f"after step '{step}':\n" + "\n".join(self.problems)


class Steps:
    """Screenshots numbered in order under the artefact folder."""

    def __init__(self, page: Any, folder: Path, watch: Watch) -> None:
        self.page, self.folder, self.watch, self.n = page, folder, watch, 0
        folder.mkdir(parents=True, exist_ok=True)

    def done(self, name: str) -> Path:
        self.n += 1
        self.page.wait_for_timeout(400)  # let deck.gl draw the frame of this state
        path = self.folder / f"viewer_{self.n}_{name}.png"
        self.page.screenshot(path=str(path))
        self.watch.check(name)
        return path


    def failed(self) -> None:
        """Screenshot of the page as it was when a step failed."""
        self.page.screenshot(path=str(self.folder / f"viewer_{self.n + 1}_FAILED.png"))


def _artefacts(tmp_path: Path, name: str) -> Path:
    base = os.environ.get("SPACETRAVLR_SCREENSHOT_DIR")
    return Path(base) / name if base else tmp_path / "screenshots"


TOAST_LOG = """window.__toastLog = [];
document.addEventListener('DOMContentLoaded', () => new MutationObserver(records => {
  for (const r of records) for (const n of r.addedNodes)
    if (n.classList && n.classList.contains('toast')) window.__toastLog.push(n.textContent);
}).observe(document.body, { childList: true, subtree: true }));"""
"""Every toast the page shows, kept in ``window.__toastLog`` (a toast removes itself after 7 s)."""


def toasts_seen(page: Any) -> str:
    """The text of every toast shown since the page loaded, one per line."""
    return "\n".join(page.evaluate("window.__toastLog"))


def _open(browser: Any, url: str) -> tuple[Any, Any, Watch]:
    ctx = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
    ctx.add_init_script(TOAST_LOG)
    page = ctx.new_page()
    page.set_default_timeout(STEP_TIMEOUT_MS)
    watch = Watch()
    watch.attach(page)
    page.goto(url)
    page.wait_for_function("window.spatialViewer && window.spatialViewer.runReady")
    return ctx, page, watch


def legend_title(page: Any) -> str:
    return str(page.inner_text("#legend .title"))


def _visible_cell(page: Any) -> tuple[float, float]:
    """Page pixel of a cell drawn on the canvas (not under a panel)."""
    xy = page.evaluate("""() => { const v = window.spatialViewer;
        for (let i = 0; i < v.n; i += 11) { const [x, y] = v.cellClientXY(i);
          const el = document.elementFromPoint(x, y); if (el && el.tagName === 'CANVAS') return [x, y]; }
        return null; }""")
    assert xy is not None, "no cell is visible on the canvas"
    return float(xy[0]), float(xy[1])


def test_explore_perturb_inspect_export(server: str, browser: Any, demo_run: Path, tmp_path: Path) -> None:
    ctx, page, watch = _open(browser, server)
    steps = Steps(page, _artefacts(tmp_path, "flow"), watch)
    try:
        # 1. the demo tissue, coloured by cell type with a legend of every type
        assert page.evaluate("window.spatialViewer.n") == 3000
        legend = page.locator("#legend")
        assert legend.get_attribute("data-kind") == "categorical"
        assert legend.locator(".cat").count() == 5
        assert "3,000 cells" in page.inner_text("#dataset-chip")
        assert page.evaluate("window.spatialViewer.firstPaintMs") is not None
        # the run's report (GET /api/run/report), linked in the top bar, opens in a new tab
        link = page.locator("#report-link")
        assert link.is_visible() and link.inner_text() == "Run report"
        assert link.evaluate("a => a.href") == f"{server}api/run/report"
        assert link.get_attribute("target") == "_blank" and link.get_attribute("rel") == "noopener"
        with ctx.expect_page(timeout=STEP_TIMEOUT_MS) as opened:
            link.click()
        report = opened.value
        report.wait_for_load_state(timeout=STEP_TIMEOUT_MS)
        assert report.title() == "SpaceTravLR run report" and report.url == f"{server}api/run/report"
        report.close()
        steps.done("load")
        # the legend toggles a cell type off and on
        row = legend.locator(".cat[data-code='0']")
        row.click()
        page.wait_for_selector("#legend .cat[data-code='0'].off")
        assert row.get_attribute("aria-checked") == "false"
        page.click("#legend .actions button")  # show all
        page.wait_for_selector("#legend .cat[data-code='0']:not(.off)")

        # 2. gene search with prefix completion → colour by expression
        page.fill("#gene-search", "Cd")
        page.wait_for_selector("#gene-completions li[data-gene]")
        offered = page.eval_on_selector_all("#gene-completions li[data-gene]", "els => els.map(e => e.dataset.gene)")
        assert "Cd3e" in offered and all(g.lower().startswith("cd") for g in offered), offered
        steps.done("search")
        page.click("#gene-completions li[data-gene='Cd3e']")
        page.wait_for_selector("#legend[data-kind=sequential]")
        assert "Cd3e" in legend.inner_text() and "imputed_count" in legend.inner_text()
        assert "colour=gene" in page.url and "gene=Cd3e" in page.url
        steps.done("gene")

        # 3. UMAP layout: the cells move, the URL says so
        before = page.evaluate("window.spatialViewer.cellClientXY(0)")
        page.click("#layout-seg button[data-layout=umap]")
        page.wait_for_function("window.spatialViewer.state.layout === 'umap'")
        assert page.evaluate("window.spatialViewer.cellClientXY(0)") != before
        assert "layout=umap" in page.url
        steps.done("umap")

        # 4. knockout of the planted TF in one cell type, with the UMAP transition field
        page.fill("#perturb-gene", "Prdm1")
        page.select_option("#scope-kind", "celltype")
        first = page.locator("#scope-list input").first
        cell_type = first.get_attribute("data-name")
        first.check()
        page.check("#want-field")
        page.click("#run")
        page.wait_for_selector("#summary:not([hidden]) .top-genes")
        page.wait_for_selector("#legend[data-kind=diverging]")
        summary = page.inner_text("#summary")
        assert "Prdm1" in summary and "knockout" in summary and str(cell_type) in summary
        assert page.locator("#summary .top-genes tr").count() >= 1
        assert page.locator("#summary .cluster-effects tbody tr").count() == 5
        assert legend.inner_text().startswith("Δ ")
        assert "colour=delta" in page.url
        page.wait_for_function("window.spatialViewer.overlays.quiver > 0")  # the field follows the summary
        # Δ of any other gene: click one in the summary
        other = page.locator("#summary .top-genes .tag").nth(1)
        other_gene = other.inner_text()
        other.click()
        page.wait_for_function(f"window.spatialViewer.state.deltaGene === {json.dumps(other_gene)}")
        page.wait_for_function(f"document.querySelector('#legend .title').textContent.startsWith('Δ {other_gene}')")
        assert f"delta={other_gene}" in page.url
        steps.done("knockout")

        # 5. cell inspector: cluster, focus-gene expression, modulators, ligand senders drawn as lines
        x, y = _visible_cell(page)
        page.mouse.click(x, y)
        page.wait_for_selector("#inspector:not([hidden]) .focus-expr")
        inspector = page.inner_text("#inspector")
        assert re.search(r"Cell \d+", inspector) and "cluster" in inspector and "Modulators" in inspector
        senders = page.locator("#inspector table.senders tbody tr").count()
        assert page.evaluate("window.spatialViewer.overlays.links") >= senders
        steps.done("inspector")

        # back to the tissue: the Δ colouring and the sender lines follow the layout
        links = page.evaluate("window.spatialViewer.overlays.links")
        page.click("#layout-seg button[data-layout=spatial]")
        page.wait_for_function("window.spatialViewer.state.layout === 'spatial'")
        assert page.evaluate("window.spatialViewer.overlays.links") == links
        assert page.evaluate("window.spatialViewer.overlays.quiver") == 0  # the field is drawn on the UMAP only
        steps.done("spatial_delta")

        # 6. export of the last result into the run folder
        page.click("#export")
        page.wait_for_selector(".toast.ok")
        written = re.findall(r"(/\S+\.(?:feather|json))", page.inner_text("#toasts"))
        assert len(written) == 2, page.inner_text("#toasts")
        for f in written:
            assert Path(f).is_file() and Path(f).parent == demo_run.parent / "perturbations", f
        summary_json = json.loads(Path(next(f for f in written if f.endswith(".json"))).read_text())
        assert summary_json["genes"] == ["Prdm1"] and summary_json["scope"] == f"cell types {cell_type}"
        steps.done("export")

        # 7. the URL reproduces the view on reload
        page.goto(f"{server}?layout=umap&colour=gene&gene=Cd3e")
        page.wait_for_function("window.spatialViewer && window.spatialViewer.runReady")
        page.wait_for_selector("#legend[data-kind=sequential]")
        assert page.evaluate("window.spatialViewer.state.layout") == "umap"
        assert "Cd3e" in legend.inner_text()
        steps.done("reload")
    except Exception:
        steps.failed()
        raise
    finally:
        ctx.close()


def test_box_scope_and_dataset_errors(server: str, browser: Any, demo_run: Path, tmp_path: Path) -> None:
    ctx, page, watch = _open(browser, server)
    steps = Steps(page, _artefacts(tmp_path, "scope"), watch)
    try:
        # β of a target gene: per-cell values, a range per cluster on a shared axis; the strongest coefficient first
        page.click("#colour-seg button[data-mode=beta]")
        page.wait_for_selector("#legend .rangebar")
        assert legend_title(page).startswith("β of ")
        assert page.locator("#legend .rangebar").count() == 5
        options = page.eval_on_selector_all("#beta-column option", "els => els.map(e => e.value)")
        assert "beta0" in options and len(options) > 2
        chosen = page.input_value("#beta-column")
        other = next(o for o in options if o not in (chosen, "beta0"))
        page.select_option("#beta-column", other)
        page.wait_for_function(f"new URLSearchParams(location.search).get('coef') === {json.dumps(other)}")
        assert "colour=beta" in page.url
        steps.done("beta")

        # a box drawn on the canvas selects cells; a perturbation scoped to them runs
        page.select_option("#scope-kind", "selection")
        page.click("#tool-box")
        box = page.locator("#canvas-host").bounding_box()
        assert box is not None
        cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.mouse.move(cx - 120, cy - 120)
        page.mouse.down()
        page.mouse.move(cx, cy, steps=5)
        page.mouse.move(cx + 120, cy + 120, steps=5)
        page.mouse.up()
        page.wait_for_function("window.spatialViewer.overlays.selected > 0")
        selected = page.evaluate("window.spatialViewer.overlays.selected")
        assert f"{selected:,} cells selected" in page.inner_text("#selection-count")
        assert 0 < selected < 3000
        page.fill("#perturb-gene", "Il6")
        page.press("#perturb-gene", "Enter")  # picks the exact match and closes the completion list
        page.click("#value-seg button[data-value=max]")
        page.fill("#value-input", "2")
        page.click("#run")
        page.wait_for_selector("#summary:not([hidden]) .top-genes")
        assert f"{selected:,} of 3,000 cells" in page.inner_text("#summary")
        steps.done("box_scope")

        # a long job (32 propagation steps) cancelled while it runs: its request answers 409, the page says so
        watch.allowed += ["/api/perturb/", "status of 409"]
        page.fill("#n-prop", "32")
        page.click("#run")
        page.wait_for_function("document.querySelector('#perturb-progress .msg').textContent.includes('step')")
        page.click("#cancel")
        page.wait_for_selector(".toast:has-text('cancelled')")
        page.wait_for_selector("#run:not([disabled])")
        steps.done("cancelled")
        watch.allowed.clear()

        # opening a file outside the data roots: the server's reason is shown in the page
        watch.allowed += ["/api/session/configure", "status of 403"]
        page.click("#dataset-details summary")
        page.fill("#dataset-form input[name=run_toml]", "/etc/spacetravlr_run_repro.toml")
        page.click("#dataset-form button[type=submit]")
        err = page.locator("#dataset-error")
        err.wait_for(state="visible")
        assert "outside the data roots" in err.inner_text()
        steps.done("dataset_error")
        watch.allowed.clear()

        # re-opening the demo run: progress, then the same tissue again
        loads = page.evaluate("window.spatialViewer.loads")
        page.fill("#dataset-form input[name=run_toml]", str(demo_run))
        page.click("#dataset-form button[type=submit]")
        page.wait_for_function(f"window.spatialViewer.loads > {loads}")
        assert page.locator("#dataset-error").is_hidden()
        assert page.evaluate("window.spatialViewer.n") == 3000
        steps.done("dataset_reopened")
    except Exception:
        steps.failed()
        raise
    finally:
        ctx.close()

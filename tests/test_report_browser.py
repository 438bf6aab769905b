"""The run report in a real browser: Debian's Chromium (headless, Playwright) opens the page written by
``spacetravlr run-summary`` for the demo run (with a screen), a full-mode run and a run with failed and
orphaned genes. Every figure must load with a natural size, the page must log no console error and must not
request anything (it is one offline file). Screenshots and the figures are kept as artefacts (under the
test's tmp dir, or ``$SPACETRAVLR_SCREENSHOT_DIR`` when set)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from spacetravlr_py import _keys
from test_viewer_browser import browser  # noqa: F401  (the module-scoped Chromium fixture)

pytestmark = pytest.mark.browser

PROGRAM = "import sys; from {module} import main; sys.exit(main(sys.argv[1:]))"


def _run(module: str, *args: str, timeout: int = 900) -> str:
    """A program of this package in a fresh interpreter (the tests' import path); its stdout."""
    done = subprocess.run([sys.executable, "-c", PROGRAM.format(module=module), *args], capture_output=True,
                          text=True, timeout=timeout, env=os.environ.copy())
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _artefacts(tmp_path: Path) -> Path:
    base = os.environ.get("SPACETRAVLR_SCREENSHOT_DIR")
    d = Path(base) / "report" if base else tmp_path / "artefacts"
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``spacetravlr demo --out <tmp> --cells 600`` and a knockout screen of four of its regulators in
    ``run/screen``; returns the run folder."""
    out = tmp_path_factory.mktemp("report_demo")
    _run("spacetravlr_py.cli.main", "demo", "--out", str(out), "--cells", "600")
    run = out / _keys.DEMO_RUN_DIR
    _run("spacetravlr_py.cli.perturb", "screen", "--run-toml", str(run), "--genes", "Prdm1,Il6,Foxo1,Tgfb1",
         "--out-dir", str(run / "screen"))
    return run


def _check_in_browser(browser: Any, page_path: Path, shot: Path) -> dict[str, Any]:  # noqa: F811
    """Open the page from disk; assert every <img> loaded with a natural size, no console error, no page
    error and no request but the page itself; full-page screenshot to ``shot``."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, device_scale_factor=1)
    page = ctx.new_page()
    problems: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: m.type in ("error", "warning") and problems.append(f"console {m.type}: {m.text}"))
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("request", lambda r: requests.append(r.url))
    url = page_path.resolve().as_uri()
    try:
        page.goto(url, wait_until="load")
        imgs = page.evaluate("""() => Array.from(document.images).map(i => ({alt: i.alt, complete: i.complete,
            w: i.naturalWidth, h: i.naturalHeight, inline: i.src.startsWith('data:image/png;base64,')}))""")
        page.screenshot(path=str(shot), full_page=True)
        sections = page.evaluate("() => Array.from(document.querySelectorAll('section h2')).map(h => h.textContent)")
    finally:
        ctx.close()
    assert not problems, "\n".join(problems)
    assert [u for u in requests if u != url and not u.startswith("data:")] == []
    assert imgs, "the page has no figure"
    for im in imgs:
        assert im["complete"] and im["w"] > 0 and im["h"] > 0, im
        assert im["inline"], im
    return {"images": imgs, "sections": sections}


def _report(run: Path, out: Path, *extra: str) -> Path:
    _run("spacetravlr_py.cli.main", "run-summary", "--output-dir", str(run), "--out", str(out), *extra)
    return out


def test_demo_run_report_with_screen(demo_run: Path, browser: Any, tmp_path: Path) -> None:  # noqa: F811
    art = _artefacts(tmp_path)
    page = _report(demo_run, art / "demo_report.html", "--screen", str(demo_run / "screen"), "--figures-dir",
                   str(art / "demo_figures"))
    seen = _check_in_browser(browser, page, art / "demo_report.png")
    assert len(seen["images"]) == 9  # tissue, UMAP, R² ×2, modulators, interactions, time, screen ×2
    assert seen["sections"] == ["Dataset and clusters", "Model fit (R²)", "Modulators per gene",
                                "Strongest interactions per cell type", "Timings and throughput",
                                "Warnings and failed genes", "Screen: screen", "Configuration"]
    assert len(list((art / "demo_figures").glob("*.png"))) == 9


def test_full_mode_report(full_run, browser: Any, tmp_path: Path) -> None:  # noqa: F811
    art = _artefacts(tmp_path)
    page = _report(full_run.run_dir, art / "full_mode_report.html", "--figures-dir", str(art / "full_mode_figures"))
    seen = _check_in_browser(browser, page, art / "full_mode_report.png")
    assert len(seen["images"]) == 7
    assert "held-out" in page.read_text()


def test_failed_and_orphan_report(problem_run, browser: Any, tmp_path: Path) -> None:  # noqa: F811
    art = _artefacts(tmp_path)
    page = _report(problem_run.run_dir, art / "problem_report.html", "--figures-dir", str(art / "problem_figures"))
    seen = _check_in_browser(browser, page, art / "problem_report.png")
    assert len(seen["images"]) == 7
    text = page.read_text()
    assert "Failed genes: 1" in text and "Orphaned genes (no model): 2" in text

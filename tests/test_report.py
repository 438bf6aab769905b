"""The run summary page, written from Python (``write_run_summary``) and by ``spacetravlr run-summary``."""

from __future__ import annotations

import html
import json
import shutil
from pathlib import Path

import pytest

from spacetravlr_py import _keys
from spacetravlr_py.cli.main import main as cli_main
from spacetravlr_py.config import SpaceshipConfig
from spacetravlr_py.errors import InputError
from spacetravlr_py.io.anndata import tissue_from_config
from spacetravlr_py.report import run_summary_html, write_run_summary


def test_run_summary_from_python(small_run, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(small_run.run_dir, run)
    dest = write_run_summary(run)
    assert dest == run / _keys.RUN_SUMMARY_HTML
    page = dest.read_text(encoding="utf-8")
    man = json.loads((run / _keys.MANIFEST_JSON).read_text())
    cfg = SpaceshipConfig.from_toml(run / _keys.REPRO_TOML)
    tissue = tissue_from_config(cfg)
    assert page.startswith("<!doctype html>") and page.endswith("</html>")
    assert f"<td>cells</td><td>{tissue.n_cells}</td>" in page
    for k, (lab, n) in enumerate(zip(tissue.cluster_labels, tissue.cluster_sizes())):
        assert f"<tr><td>{k}</td><td>{lab}</td><td>{int(n)}</td></tr>" in page
    assert f"<td>genes done</td><td>{man['counts']['done']}</td>" in page
    assert html.escape(cfg.to_toml()) in page
    # the page is a function of its inputs: building it again gives the same text
    assert run_summary_html(run, cfg, tissue, man, h5ad=cfg.data.adata_path) == page


def test_run_summary_without_manifest_and_errors(small_run, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(small_run.toml, run / _keys.REPRO_TOML)
    assert cli_main(["run-summary", "--output-dir", str(run)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {run / _keys.RUN_SUMMARY_HTML}"
    page = (run / _keys.RUN_SUMMARY_HTML).read_text()
    assert "<h2>Training</h2>" not in page and "<h2>Clusters</h2>" in page
    with pytest.raises(InputError, match="not found; pass -c CONFIG"):
        write_run_summary(tmp_path / "empty")

"""The run report (``write_run_summary`` / ``spacetravlr run-summary``): one self-contained page whose numbers
agree with the run folder read independently here, on a seed run, a full-mode run and a run with failed and
orphaned genes. (Rendering in Chromium: ``test_report_browser.py``.)"""

from __future__ import annotations

import base64
import html
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import spacetravlr_py as st
from spacetravlr_py import _keys
from spacetravlr_py.betadata import collect_interactions
from spacetravlr_py.cli.main import main as cli_main
from spacetravlr_py.config import SpaceshipConfig
from spacetravlr_py.errors import InputError
from spacetravlr_py.report import gather_run_facts, parse_gene_log, write_run_summary

SEED_FIGURES = {"tissue", "umap", "r2_clusters", "r2_genes", "modulators", "interactions", "seconds"}

SEED_LOG = """cluster\tlabel\tn_cells\tn_modulators\tr2\tmse\titerations\tconverged\tkept
0\tct0\t114\t26\t0.5\t0.01\t500\tFalse\tTrue
1\tct1\t26\t26\t0.1\t0.003\t500\tFalse\tFalse
status\tdone
"""
FULL_HEAD = "\t".join(["cluster", "label", "n_cells", "n_modulators", "r2", "mse", "iterations", "converged", "kept",
                       "heldout_r2_cnn", "heldout_r2_lasso", "choice"])
FULL_LOG = FULL_HEAD + """
0\tct0\t16\t27\t0.9\t4e-05\t500\tFalse\tTrue\t0.8\t0.7\tcnn
1\tct1\t89\t27\t0.6\t0.001\t500\tFalse\tTrue\t\t\t
full_mode\tepochs 10
cnn\tcluster\tlabel\tn_train
cnn\t0\tct0\t10
loss\t0\tct0\t0\t\t0.5
status\tdone
"""


def test_gene_logs_parsed_by_hand() -> None:
    rows, keys = parse_gene_log(SEED_LOG)
    assert [(r["label"], r["r2"], r["kept"]) for r in rows] == [("ct0", "0.5", "True"), ("ct1", "0.1", "False")]
    assert keys == {"status": "done"}
    rows, keys = parse_gene_log(FULL_LOG)  # the cnn / loss lines are not cluster rows
    assert [(r["cluster"], r["heldout_r2_cnn"], r["heldout_r2_lasso"], r["choice"]) for r in rows] == [
        ("0", "0.8", "0.7", "cnn"), ("1", "", "", "")]
    _, keys = parse_gene_log("gene\tX\nstatus\torphan\nreason\tno modulators in the network\n")
    assert keys == {"gene": "X", "status": "orphan", "reason": "no modulators in the network"}


def _images(page: str) -> dict[str, bytes]:
    """``figure id -> PNG bytes`` of every inlined figure; fails on any other image source."""
    from PIL import Image

    srcs = re.findall(r"<img [^>]*src='([^']*)'", page)
    ids = re.findall(r"<figure id='fig-([^']+)'>", page)
    assert len(srcs) == len(ids)
    out = {}
    for name, src in zip(ids, srcs):
        assert src.startswith("data:image/png;base64,"), src[:60]
        data = base64.b64decode(src.split(",", 1)[1])
        w, h = Image.open(io.BytesIO(data)).size
        assert w > 100 and h > 100
        out[name] = data
    return out


def _self_contained(page: str) -> None:
    assert page.startswith("<!doctype html>") and page.endswith("</html>")
    assert "<script" not in page and "<link" not in page
    # nothing fetched: the only URLs are in-page anchors and data: images
    assert not re.search(r"(src|href)='(?!#|data:)", page)
    assert "http://" not in page and "https://" not in page


def _log_means(run: Path, genes: list[str]) -> dict[str, float]:
    """Mean in-sample R² of the kept clusters of each gene, from its log read with pandas."""
    out = {}
    for g in genes:
        lines = (run / _keys.LOG_DIR / f"{g}.log").read_text().splitlines()
        table = [ln for ln in lines if ln.split("\t")[0] == "cluster" or ln.split("\t")[0].isdigit()]
        df = pd.read_csv(io.StringIO("\n".join(table)), sep="\t")
        out[g] = float(df.loc[df["kept"], "r2"].mean())
    return out


def test_seed_run_report(small_run, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(small_run.run_dir, run)
    figs = tmp_path / "figures"
    dest = st.report.write_run_summary(run, figures_dir=figs)
    assert dest == run / _keys.RUN_SUMMARY_HTML
    page = dest.read_text(encoding="utf-8")
    _self_contained(page)
    imgs = _images(page)
    assert set(imgs) == SEED_FIGURES == {p.stem.removeprefix("report_") for p in figs.glob("*.png")}
    for name, data in imgs.items():  # the files kept beside the page are the inlined images
        assert (figs / _keys.REPORT_FIGURE.format(name=name)).read_bytes() == data
    man = json.loads((run / _keys.MANIFEST_JSON).read_text())
    cfg = SpaceshipConfig.from_toml(run / _keys.REPRO_TOML)
    assert html.escape(cfg.to_toml()) in page
    assert f"{man['counts']['done']:,} done, 0 orphan, 0 failed, 0 unfinished" in page
    # genes by R²: the worst gene, with its mean over kept clusters, as computed from the logs here
    means = _log_means(run, man["genes"]["done"])
    worst = min(means, key=lambda g: means[g])
    m = re.search(r"lowest mean R²</h3><table>.*?</tr><tr><td>([^<]+)</td><td class='num'>([^<]+)</td>", page)
    assert m and m.group(1) == worst and float(m.group(2)) == pytest.approx(means[worst], abs=5e-4)
    overall = np.mean(list(means.values()))
    assert f"<td>mean R² of trained genes</td><td class='num'>{overall:.4g}</td>" in page
    # the strongest interaction of each cell type is the top row of collect_interactions for that type
    facts = gather_run_facts(run)
    table = collect_interactions(run, facts.tissue)
    for ct in facts.tissue.cluster_labels:
        top = table[table["cell_type"] == ct].iloc[0]
        block = page.split(f"<h3>{ct} (")[1]
        assert block.split("<td>", 2)[1].startswith(html.escape(top["modulator"]))
    # timings: throughput = genes finished / training seconds
    rate = man["counts"]["done"] / man["timings"]["train_s"]
    assert f"<td>genes per second (training)</td><td class='num'>{rate:.4g}</td>" in page


def test_full_mode_report_shows_heldout_r2(full_run, tmp_path: Path) -> None:
    out = tmp_path / "full.html"
    write_run_summary(full_run.run_dir, out=out, interactions=False)
    page = out.read_text()
    _self_contained(page)
    assert set(_images(page)) == SEED_FIGURES - {"interactions"}
    assert "held-out" in page and "% CNN chosen" in page and "<td>training mode</td><td>full</td>" in page
    facts = gather_run_facts(full_run.run_dir)
    assert facts.full_mode and len(facts.fits) == 61 * 5
    # per cluster: the median held-out R² of the kept models, from the logs read with pandas here
    frames = []
    for log in sorted((full_run.run_dir / _keys.LOG_DIR).glob("*.log")):
        lines = [ln for ln in log.read_text().splitlines() if ln.startswith("cluster\t") or ln[:1].isdigit()]
        frames.append(pd.read_csv(io.StringIO("\n".join(lines)), sep="\t"))
    logs = pd.concat(frames)
    for lab, g in logs[logs["kept"]].groupby("label"):
        row = (f"<tr><td>{lab}</td><td class='num'>{len(g)}</td><td class='num'>{g['r2'].median():.3g}</td>"
               f"<td class='num'>{g['heldout_r2_lasso'].median():.3g}</td>"
               f"<td class='num'>{g['heldout_r2_cnn'].median():.3g}</td>"
               f"<td class='num'>{100 * (g['choice'] == 'cnn').mean():.3g}</td></tr>")
        assert row in page


def test_failed_and_orphan_genes_with_reasons(problem_run, tmp_path: Path) -> None:
    out = tmp_path / "p.html"
    write_run_summary(problem_run.run_dir, out=out)
    page = out.read_text()
    _self_contained(page)
    assert set(_images(page)) == SEED_FIGURES
    assert "<h3>Failed genes: 1</h3>" in page
    assert "<td>Pax5</td><td>FloatingPointError: planted failure of Pax5</td>" in page
    assert "<h3>Orphaned genes (no model): 2</h3>" in page
    for g in ("Stat3", "Nfkb1"):
        assert f"<td>{g}</td><td>constant expression (1.5 in every cell)</td>" in page
    assert "1 genes failed (reasons below)" in page  # also a warning at the top
    assert "58 done, 2 orphan, 1 failed, 0 unfinished" in page


def test_cli_screen_folder_interaction_table_and_errors(small_run, tmp_path: Path, capsys) -> None:
    from spacetravlr_py.betadata.interactions_run import write_interactions
    from spacetravlr_py.perturbation.screen_files import ScreenRequest
    from spacetravlr_py.perturbation.screen_run import run_screen

    run = tmp_path / "run"
    shutil.copytree(small_run.run_dir, run)
    scr = run / "screen"
    req = ScreenRequest(run_toml=str((run / _keys.REPRO_TOML).resolve()), genes=["Foxo1", "Il6", "Spi1"])
    run_screen(scr, req)
    facts = gather_run_facts(run)
    table = collect_interactions(run, facts.tissue, aggregate="max").head(40)
    write_interactions(table, tmp_path / "max.csv")
    # a screen folder as --output-dir: its run, its ranking, the page written into the screen folder
    assert cli_main(["run-summary", "--output-dir", str(scr), "--interactions", str(tmp_path / "max.csv")]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {scr / _keys.RUN_SUMMARY_HTML}"
    page = (scr / _keys.RUN_SUMMARY_HTML).read_text()
    assert {"screen0_top", "screen0_heatmap"} <= set(_images(page))
    ranked = pd.read_csv(scr / _keys.SCREEN_CSV)
    first = ranked.iloc[0]
    assert f"<tr><td class='num'>1</td><td>{first['gene']}</td>" in page
    assert f"{len(table):,} non-zero (modulator, target, cell type)" in page  # the table given, not a new one
    # bad input: one line each
    with pytest.raises(InputError, match="not found; pass -c CONFIG"):
        write_run_summary(tmp_path / "empty")
    assert cli_main(["run-summary", "--output-dir", str(run), "--interactions", str(tmp_path / "nope.csv")]) == 2
    assert "interaction table" in capsys.readouterr().err
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(run / _keys.REPRO_TOML, bare / _keys.REPRO_TOML)
    assert cli_main(["run-summary", "--output-dir", str(bare), "--no-interactions"]) == 0
    page = (bare / _keys.RUN_SUMMARY_HTML).read_text()
    assert "holds no betadata files" in page and f"no {_keys.MANIFEST_JSON}" in page

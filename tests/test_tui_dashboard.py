"""The training dashboard (Textual, headless pilot): a recorded stream of reporter events gives the right
counts, tables and ETA; ``q`` mid-run on a real training leaves only complete files and no lock, and a
restart finishes identically to an uninterrupted run; the program's choice of front end."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.feather as feather
import pytest
from rich.console import Console

pytest.importorskip("textual")

from textual.widgets import DataTable, ProgressBar, RichLog, Static

from builders import slow_genes_env
from spacetravlr_py.config import SpaceshipConfig
from spacetravlr_py.datasets import synthetic_tissue
from spacetravlr_py.training import ClusterFit, GeneOutcome, RunControl, RunEnd, RunStart, train
from spacetravlr_py.tui.dashboard import TrainingDashboard, TrainingJob, fit_left
from spacetravlr_py.tui.state import THREAD_DONE, DashboardReporter

SIZE = (160, 48)


def text_of(renderable, width: int = 200) -> str:
    """What a Rich renderable (a Static's content) shows, as plain text."""
    c = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    c.print(renderable)
    return c.export_text()


def static(app, sel: str) -> str:
    return text_of(app.query_one(sel, Static).content)


def rows(table: DataTable) -> list[list[str]]:
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def run_start(n: int) -> RunStart:
    cfg = SpaceshipConfig().with_overrides({"data.adata_path": "/data/tissue.h5ad", "spatial.radius": 150.0,
                                            "execution.n_parallel": 2, "execution.output_dir": "/runs/a"})
    return RunStart(config=cfg.to_dict(), output_dir="/runs/a", dataset="/data/tissue.h5ad", n_cells=600,
                    n_genes=61, n_clusters=5, cluster_annot="cell_type", layer="imputed_count",
                    network="/data/mouse_network.parquet", species="mouse", mode="seed", n_queued=n, n_workers=2,
                    warnings=["warning: obs['cell_type']: cluster 'x' has 1 cell"])


def done(gene: str, r2: float, worker: int, secs: float = 0.5, heldout: dict | None = None) -> GeneOutcome:
    clusters = [ClusterFit("a", 100, 8, r2, 0.1, 30, True, True, heldout or {}, "cnn" if heldout else "")]
    return GeneOutcome(gene, "done", secs, mean_r2=r2, n_modulators=8, n_clusters_kept=1, worker=worker,
                       clusters=clusters)


def test_a_recorded_stream_gives_the_right_counts_tables_and_eta():
    async def scenario() -> None:
        clock = Clock()
        rep = DashboardReporter(clock=clock)
        control = RunControl()
        app = TrainingDashboard(rep, control, clock=clock)
        async with app.run_test(size=SIZE) as pilot:
            rep.run_started(run_start(10))  # t = 100
            rep.gene_finished(GeneOutcome("Old1", "skipped"))
            rep.gene_finished(GeneOutcome("Old2", "skipped"))
            clock.t = 101
            rep.gene_started("Foxo1", 0)
            rep.gene_started("Pax5", 1)
            clock.t = 103
            rep.gene_finished(done("Foxo1", 0.91, 0))
            rep.gene_started("Cd19", 0)
            clock.t = 104
            rep.gene_finished(GeneOutcome("Pax5", "orphan", 0.2, reason="no modulators", worker=1))
            rep.gene_started("Il6", 1)
            rep.warning("warning: something to look at")
            clock.t = 105
            rep.gene_finished(GeneOutcome("Il6", "failed", 0.3, reason="ArithmeticError: no luck", worker=1))
            rep.gene_started("Tgfb1", 1)
            clock.t = 106
            rep.gene_finished(done("Tgfb1", 0.42, 1, heldout={"cnn": 0.5, "lasso": 0.3}))
            clock.t = 110
            app.refresh_from_events()
            await pilot.pause()

            counts = static(app, "#counts")
            # 4 worked genes (done, orphan, failed, done) in 10 s: 0.40 genes/s; 4 left: ETA 10 s
            assert "done 2 · orphan 1 · failed 1 · already finished 2 · remaining 4 of 10" in counts
            assert "rate 0.40 genes/s · elapsed 0:10 · ETA 0:10" in counts
            assert app.query_one("#bar", ProgressBar).progress == 6
            assert rows(app.query_one("#inflight", DataTable)) == [["0", "Cd19", "0:07"]]
            recent = rows(app.query_one("#recent", DataTable))
            assert [r[0] for r in recent] == ["Tgfb1", "Il6", "Pax5", "Foxo1"]  # newest first
            assert recent[0] == ["Tgfb1", "done", "0.420", "1", "8", "cnn 0.500 lasso 0.300", "0.50"]
            assert recent[1][:3] == ["Il6", "failed", ""] and recent[3][2] == "0.910"
            hist = static(app, "#hist").splitlines()
            assert hist[0] == "mean R² of 2 fitted genes"
            assert hist[-1].split() == ["0", "0", "0", "0", "0", "1", "0", "0", "0", "0", "1"]  # .4 and .9 bins
            assert static(app, "#worst").split()[4:] == ["Tgfb1", "0.420", "Foxo1", "0.910"]
            config = static(app, "#config")
            for expected in ("radius 150 · gaussian", "2 processes", "/runs/a", "5 from obs['cell_type']",
                             "l1 1e-05"):
                assert expected in config
            log = app.query_one("#log", RichLog)
            lines = [strip.text for strip in log.lines]
            styles = {strip.text.strip(): {str(seg.style) for seg in strip} for strip in log.lines}
            assert any("something to look at" in ln for ln in lines)
            assert any("Il6 FAILED: ArithmeticError" in ln for ln in lines)
            assert any("yellow" in st for st in styles["warning: something to look at"])
            assert any("cluster 'x' has 1 cell" in ln for ln in lines)
            assert app.sub_title == "training"
            await pilot.press("p")
            assert control.paused and app.sub_title.startswith("paused")
            await pilot.press("p")
            assert not control.paused and app.sub_title == "training"

            clock.t = 112
            rep.gene_finished(done("Cd19", 0.8, 0))
            rep.run_finished(RunEnd(counts={}, interrupted=False, summary="7/10 genes finished"))
            clock.t = 130  # the clock stops at the end of the run
            app.refresh_from_events()
            await pilot.pause()
            assert "elapsed 0:12 · ETA —" in static(app, "#counts")
            assert app.sub_title == "finished" and rows(app.query_one("#inflight", DataTable)) == []
            await pilot.press("question_mark")
            await pilot.pause()
            assert "stop cleanly" in text_of(app.screen.query_one("#help", Static).content)
            await pilot.press("escape")
            await pilot.press("ctrl+c")  # a stop (the run thread would now unwind like Ctrl-C)
            assert control.stopping and app.stop_reason == "interrupt" and app.is_running
            rep.put(THREAD_DONE, None)
            app.refresh_from_events()
            await pilot.pause()
        assert app.return_code in (0, None)

    asyncio.run(scenario())


def test_fit_left_keeps_the_file_name():
    assert fit_left("/a/b/c/tissue.h5ad", 12) == "…tissue.h5ad"
    assert fit_left("short", 12) == "short"
    assert len(fit_left("x" * 50, 10)) == 10


# -- a real training --------------------------------------------------------------------------------

GENES_FIELD = "training.genes"


@pytest.fixture(scope="module")
def tissue_files(tmp_path_factory) -> tuple[Path, Path]:
    # ~200 genes: enough work that a stop lands mid-run
    syn = synthetic_tissue(n_cells=500, n_targets=140, seed=5)
    paths = syn.write(tmp_path_factory.mktemp("tissue"))
    return paths["h5ad"], paths["network"].parent


def cfg_for(data: tuple[Path, Path], out: Path) -> SpaceshipConfig:
    h5, net = data
    return SpaceshipConfig().with_overrides({"data.adata_path": str(h5), "grn.network_data_dir": str(net),
                                             "execution.output_dir": str(out)})


def betadata_bits(out: Path) -> dict[str, bytes]:
    """Every betadata array and orphan marker of a run folder, bit for bit."""
    res: dict[str, bytes] = {}
    for f in sorted(out.glob("*_betadata.feather")):
        t = feather.read_table(f)  # a partial file would not read
        res[f.name] = b"".join(np.ascontiguousarray(t.column(c).to_numpy(zero_copy_only=False)).tobytes()
                               for c in t.column_names if c != "Cluster") + str(t.column_names).encode()
    res.update({f.name: b"" for f in out.glob("*.orphan")})
    return res


async def _drive(job: TrainingJob, stop_after: int | None, timeout: float = 600) -> TrainingDashboard:
    """Run the job under the dashboard; press q once ``stop_after`` genes are finished."""
    app = job.app()
    with job.logging():
        async with app.run_test(size=SIZE) as pilot:
            loop = asyncio.get_running_loop()
            t_end = loop.time() + timeout
            pressed = False
            while not app.state.thread_done and loop.time() < t_end:
                app.refresh_from_events()
                c = app.state.counts()
                if stop_after is not None and not pressed and c["done"] + c["orphan"] >= stop_after:
                    await pilot.press("q")
                    pressed = True
                await pilot.pause(0.05)
            assert app.state.thread_done, "training did not end in time"
            if stop_after is not None:
                assert pressed
                assert "stopping" in app.sub_title or app.state.thread_done
    return app


def test_q_mid_run_keeps_complete_files_and_a_restart_finishes_identically(tissue_files, tmp_path, monkeypatch):
    out = tmp_path / "run"
    job = TrainingJob(cfg_for(tissue_files, out), n_workers=1)
    with monkeypatch.context() as m:  # the worker process's genes wait 0.05 s each: q lands mid-run
        for k, v in slow_genes_env(0.05).items():
            m.setenv(k, v)
        app = asyncio.run(_drive(job, stop_after=3))
    res = job.outcome(app)
    assert res.stop_reason == "q" and res.result.interrupted
    n_queued = app.state.start.n_queued
    finished = res.result.counts["done"] + res.result.counts["orphan"]
    assert 3 <= finished < n_queued, (finished, n_queued)
    assert res.result.manifest["status"] == "interrupted" and "genes finished" in res.summary
    # only complete files: every betadata file reads, no lock, no temporary file, no scratch folder
    assert len(betadata_bits(out)) == finished
    assert not list(out.glob("*.lock")) and not list(out.rglob("*.tmp*"))
    assert not list(out.glob(".spacetravlr-ctx-*"))
    # the log panel got the package's log records and the reporter's messages
    texts = [ln.text for ln in app.state.log]
    assert any(t.startswith("training ") and "worker process" in t for t in texts)
    assert any("received ligands" in t for t in texts)

    # restart under the dashboard: the rest is trained; the whole equals an uninterrupted run
    job2 = TrainingJob(cfg_for(tissue_files, out), n_workers=2)
    app2 = asyncio.run(_drive(job2, stop_after=None))
    res2 = job2.outcome(app2)
    assert not res2.result.interrupted and res2.stop_reason is None
    assert app2.state.counts()["already"] == finished
    whole = tmp_path / "whole"
    train(cfg_for(tissue_files, whole))
    assert betadata_bits(out) == betadata_bits(whole) and len(betadata_bits(whole)) == n_queued


def test_an_input_error_is_raised_after_the_screen_closes(tmp_path):
    cfg = SpaceshipConfig().with_overrides({"data.adata_path": str(tmp_path / "missing.h5ad"),
                                            "execution.output_dir": str(tmp_path / "out")})
    job = TrainingJob(cfg)
    app = asyncio.run(_drive(job, stop_after=None, timeout=60))
    from spacetravlr_py.errors import SpaceTravLRError

    with pytest.raises(SpaceTravLRError, match=r"missing\.h5ad"):
        job.outcome(app)
    assert any("missing.h5ad" in ln.text for ln in app.state.log)


# -- the program's choice of front end -------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]


def _py(code: str, **env: str) -> subprocess.CompletedProcess:
    e = {**os.environ, "PYTHONPATH": str(ROOT / "src"), **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=e, timeout=600)


def test_plain_paths_never_import_textual(tissue_files, tmp_path):
    h5, net = tissue_files
    code = ("import sys\nfrom spacetravlr_py.cli.main import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            f"rc = main(['--h5ad', {str(h5)!r}, '--network-dir', {str(net)!r}, '--output-dir', "
            f"{str(tmp_path / 'o')!r}, '--genes', 'Foxo1,Pax5'])\n"
            "print('RC', rc, any(m == 'textual' or m.startswith(('textual.', 'spacetravlr_py.tui')) "
            "for m in sys.modules))")
    p = _py(code)
    assert p.returncode == 0, p.stderr
    assert "RC 0 False" in p.stdout  # a pipe: plain lines, neither Textual nor the tui package imported
    assert "2/2 genes finished" in p.stdout and "Foxo1" in p.stdout


def test_dashboard_flag_without_textual_falls_back_with_one_note(tissue_files, tmp_path, capsys, monkeypatch):
    from spacetravlr_py.cli.main import main

    monkeypatch.setitem(sys.modules, "textual", None)  # import textual -> ImportError
    h5, net = tissue_files
    rc = main(["--h5ad", str(h5), "--network-dir", str(net), "--output-dir", str(tmp_path / "o"), "--genes",
               "Foxo1,Pax5", "--dashboard"])
    cap = capsys.readouterr()
    assert rc == 0
    notes = [ln for ln in cap.err.splitlines() if "dashboard" in ln]
    assert notes == ["note: no dashboard: Textual is not installed (pip install 'spacetravlr-py[tui]'); showing "
                     "plain progress"]
    assert "2/2 genes finished" in cap.out


def test_dashboard_and_plain_conflict(capsys):
    from spacetravlr_py.cli.main import main

    assert main(["--h5ad", "x.h5ad", "--dashboard", "--plain"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["spacetravlr: error: --dashboard cannot be combined with --plain or --quiet; keep one"]

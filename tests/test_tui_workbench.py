"""The perturbation workbench (Textual, headless pilot): filter, set values, knock a gene out in one cell
type and get the top genes of ``spacetravlr-perturb --out`` for the same inputs, export the same files,
cancel a long run, open a run by typing its path; plus the gene table and the text plots."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import numpy as np
import pyarrow.feather as feather
import pytest
from rich.console import Console

pytest.importorskip("textual")

from textual.widgets import DataTable, Input, Static

from spacetravlr_py import _keys
from spacetravlr_py.betadata.frame import read_betadata
from spacetravlr_py.config import SpaceshipConfig
from spacetravlr_py.datasets import synthetic_tissue
from spacetravlr_py.perturbation.session import RunSession
from spacetravlr_py.training import train
from spacetravlr_py.tui import plots
from spacetravlr_py.tui.genes import filter_rows, gene_rows, parse_desired
from spacetravlr_py.tui.workbench import Workbench, WorkbenchScreen

SIZE = (160, 48)
GENE, CELL_TYPE = "Foxo1", "ct1"


@pytest.fixture(scope="module")
def run_toml(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("wb")
    paths = synthetic_tissue(n_cells=500, seed=7).write(base / "data")
    cfg = SpaceshipConfig().with_overrides({"data.adata_path": str(paths["h5ad"]),
                                            "grn.network_data_dir": str(paths["network"].parent),
                                            "execution.output_dir": str(base / "run")})
    train(cfg)
    return base / "run" / _keys.REPRO_TOML


@pytest.fixture(scope="module")
def session(run_toml) -> RunSession:
    return RunSession.open(run_toml)


def text_of(renderable, width: int = 200) -> str:
    c = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    c.print(renderable)
    return c.export_text()


def rows(table: DataTable) -> list[list[str]]:
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


async def until(pilot, cond, timeout: float = 300.0, what: str = "") -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        assert loop.time() < end, f"timed out waiting for {what}"
        await pilot.pause(0.05)


async def type_into(pilot, text: str) -> None:
    """Replace the text of the focused input (as typing it would: the input posts Changed)."""
    inp = pilot.app.focused
    assert isinstance(inp, Input)
    inp.value = text
    inp.cursor_position = len(text)
    await pilot.pause()


def settings(screen) -> str:
    return text_of(screen.query_one("#settings", Static).content)


def test_filter_values_cell_type_knockout_matches_the_cli_and_exports_the_same_files(session, run_toml, tmp_path,
                                                                                     capsys):
    from spacetravlr_py.cli.perturb import main as perturb_main

    cli_out = tmp_path / "cli" / "ko.feather"
    assert perturb_main(["--run-toml", str(run_toml), "--gene", GENE, "--cell-types", CELL_TYPE,
                         "--n-propagation", "3", "--out", str(cli_out), "--field"]) == 0
    capsys.readouterr()
    cli_summary = json.loads(cli_out.with_suffix(".json").read_text())
    wb_out = tmp_path / "wb" / "ko.feather"

    async def scenario() -> Workbench:
        app = Workbench(session)
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            assert isinstance(screen, WorkbenchScreen)
            genes = screen.query_one("#genes", DataTable)
            n_all = genes.row_count
            await pilot.press("slash")
            assert isinstance(app.focused, Input)
            await pilot.press("f", "o", "x")
            await pilot.pause()
            assert [r[0] for r in rows(genes)] == [GENE] and rows(genes)[0][1] == "TF" and n_all > 20
            await pilot.press("enter")
            assert app.focused is genes
            # a wrong value stays in the dialog with its error; 'max' is the observed maximum
            await pilot.press("e")
            await type_into(pilot, "abc")
            await pilot.press("enter")
            assert "not a number" in text_of(app.screen.query_one("#error", Static).content)
            await type_into(pilot, "max")
            await pilot.press("enter")
            hi = float(session.tissue.expression[:, session.tissue.gene_index[GENE]].max())
            assert screen.desired == hi and f"{hi:g}" in settings(screen)
            await pilot.press("e")
            await type_into(pilot, "0")
            await pilot.press("enter")
            await pilot.press("p")
            await type_into(pilot, "3")
            await pilot.press("enter")
            # scope: cell types, the second one
            await pilot.press("s")
            await pilot.press("t")
            await pilot.pause()
            await pilot.press("down", "space", "enter")
            await pilot.pause()
            n_ct = int((session.tissue.clusters == session.tissue.cluster_labels.index(CELL_TYPE)).sum())
            text = settings(screen)
            assert "0 (knockout)" in text and "n_propagation 3" in text
            assert f"cell types {CELL_TYPE} ({n_ct:,} cells)" in text
            await pilot.press("r")
            await until(pilot, lambda: screen.history and screen.history[-1].status != "running", what="the run")
            entry = screen.history[-1]
            assert entry.status == "done" and entry.n_scope_cells == n_ct
            top = rows(screen.query_one("#top", DataTable))
            expected = cli_summary["top_affected_genes"]
            assert [r[0] for r in top] == [g["gene"] for g in expected]
            assert [r[2] for r in top] == [f"{g['mean_abs_delta']:.4g}" for g in expected]
            assert all(r[3].split()[-1] in ("up", "down") for r in top)
            clusters = text_of(screen.query_one("#clusters", Static).content)
            for lab, v in cli_summary["cluster_mean_abs_delta"].items():
                assert f"{lab} " in clusters and f"{v:.3g}" in clusters
            assert "▀" in text_of(screen.query_one("#map", Static).content)
            await pilot.press("ctrl+v")
            timings = screen.query_one("#timings", Static)
            assert timings.display and len(text_of(timings.content).strip().splitlines()) == 3 + 2
            # export with figures, as --out ... --field
            await pilot.press("x")
            app.screen.query_one("#path", Input).value = str(wb_out)
            app.screen.query_one("#path", Input).focus()
            await pilot.press("enter")
            await until(pilot, lambda: entry.exports, what="the export")
            await pilot.press("h")
            hist = rows(app.screen.query_one("#history", DataTable))
            assert len(hist) == 1 and hist[0][1] == f"{GENE}→0" and hist[0][4] == "done"
            assert "ko.feather" in hist[0][7] and "ko_summary.png" in hist[0][7]
            await pilot.press("escape")
            await pilot.press("q")
        return app

    app = asyncio.run(scenario())
    assert app.return_code == 0
    # the same files as the CLI: expression bit for bit, summary equal but for the timings, same figures
    assert feather.read_table(wb_out).equals(feather.read_table(cli_out))
    a, b = (json.loads(p.with_suffix(".json").read_text()) for p in (wb_out, cli_out))
    a.pop("timings_s"), b.pop("timings_s")
    assert a == b
    names = lambda d: sorted(p.name for p in d.iterdir())  # noqa: E731
    assert names(wb_out.parent) == names(cli_out.parent)
    for npz in wb_out.parent.glob("*.npz"):
        x, y = np.load(npz), np.load(cli_out.parent / npz.name)
        assert sorted(x.files) == sorted(y.files)
        for k in x.files:
            if x[k].dtype.kind in "US":  # settings as JSON, with the seconds it took
                sx, sy = json.loads(str(x[k])), json.loads(str(y[k]))
                for d in (sx, sy):
                    d.pop("seconds", None), d.pop("timings", None)
                assert sx == sy
            else:
                assert np.array_equal(x[k], y[k], equal_nan=x[k].dtype.kind == "f"), k


def test_esc_cancels_a_long_run(session):
    async def scenario() -> None:
        app = Workbench(session)
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            await pilot.press("p")
            await type_into(pilot, "1000000")
            await pilot.press("enter")
            await pilot.press("r")
            entry = screen.history[-1]
            bar = screen.query_one("#progress")
            await until(pilot, lambda: (bar.progress or 0) >= 2, what="two steps")
            await pilot.press("escape")
            await until(pilot, lambda: entry.status != "running", timeout=60, what="the cancellation")
            assert entry.status == "cancelled" and entry.result is None
            step = int(entry.message.split("step ")[1].split("/")[0])
            assert entry.message == f"cancelled after step {step}/1000000" and 2 <= step < 1000000
            assert "cancelled after step" in text_of(screen.query_one("#status", Static).content)
            assert screen.query_one("#top", DataTable).row_count == 0 and not screen.running
            # the next run works
            await pilot.press("p")
            await type_into(pilot, "1")
            await pilot.press("enter", "r")
            await until(pilot, lambda: screen.history[-1].status == "done", what="the second run")
            await pilot.press("q")

    asyncio.run(scenario())


def test_cells_csv_scope_with_ctrl_o(session, tmp_path):
    t = session.tissue
    cells = list(t.obs_names[:40])
    csv = tmp_path / "cells.csv"
    csv.write_text("A,B\n" + "\n".join(f"{t.obs_names[100 + i]},{c}" for i, c in enumerate(cells)) + "\n")

    async def scenario() -> None:
        app = Workbench(session)
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            await pilot.press("ctrl+o")
            await pilot.pause()
            await type_into(pilot, str(tmp_path / "cel"))
            await pilot.press("tab")
            assert app.focused.value == str(csv)  # completed
            await pilot.press("enter")
            await pilot.pause()
            await pilot.press("down", "enter")  # column B
            await pilot.pause()
            assert "cells.csv:B (40 cells)" in settings(screen)
            await pilot.press("ctrl+o")
            await type_into(pilot, str(tmp_path / "missing.csv"))
            await pilot.press("enter")
            assert "not found" in text_of(app.screen.query_one("#error", Static).content)
            await pilot.press("escape")
            assert "cells.csv:B" in settings(screen)
            await pilot.press("q")

    asyncio.run(scenario())


def test_open_a_run_by_typing_its_path(run_toml, tmp_path):
    opened: list[str] = []

    def opener(path: str) -> RunSession:
        opened.append(path)
        return RunSession.open(path)

    async def scenario() -> None:
        app = Workbench(opener=opener)
        async with app.run_test(size=SIZE) as pilot:
            await type_into(pilot, str(tmp_path / "nothing.toml"))
            await pilot.press("enter")
            await until(pilot, lambda: "error" in text_of(app.screen.query_one("#error", Static).content),
                        what="the error")
            folder = str(run_toml.parent)
            await type_into(pilot, folder[:-2])
            await pilot.press("tab")  # completes the folder name
            assert app.focused.value == folder + "/"
            await pilot.press("s", "p", "a", "c", "e", "t", "r", "a", "v", "l", "r", "underscore", "r", "u", "n",
                              "underscore", "r", "tab")
            assert app.focused.value == str(run_toml)
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, WorkbenchScreen), what="the workbench")
            assert app.screen.query_one("#genes", DataTable).row_count > 20
            await pilot.press("q")

    asyncio.run(scenario())
    assert opened[-1] == str(run_toml) and len(opened) == 2


# -- the models under the screens -------------------------------------------------------------------


def test_gene_rows_roles_and_targets_from_the_betadata_files(session, run_toml):
    """Roles and target counts re-derived from the betadata column names (L$R, L#TF, TF)."""
    roles: dict[str, set[str]] = {}
    targets: dict[str, int] = {}
    for f in sorted(run_toml.parent.glob("*_betadata.feather")):
        frame = read_betadata(f, f.name.split("_betadata")[0])
        mods: set[str] = set()
        for name in frame.modulators:
            if _keys.LR_SEP in name:
                lig, rec = name.split(_keys.LR_SEP)
                roles.setdefault(lig, set()).add("ligand")
                roles.setdefault(rec, set()).add("receptor")
                mods |= {lig, rec}
            elif _keys.TFL_SEP in name:
                lig, tf = name.split(_keys.TFL_SEP)
                roles.setdefault(lig, set()).add("ligand")
                roles.setdefault(tf, set()).add("TF")
                mods |= {lig, tf}
            else:
                roles.setdefault(name, set()).add("TF")
                mods.add(name)
        for g in mods:
            targets[g] = targets.get(g, 0) + 1
    got = {r.gene: r for r in gene_rows(session.betabase, session.tissue)}
    assert set(got) == set(roles) | set(session.betabase.genes)
    for g, r in got.items():
        assert set(r.roles) == roles.get(g, set()) and r.n_targets == targets.get(g, 0)
        col = session.tissue.expression[:, session.tissue.gene_index[g]]
        assert (r.lo, r.hi) == (col.min(), col.max())
    ordered = gene_rows(session.betabase, session.tissue)
    assert [(-r.n_targets, r.gene) for r in ordered] == sorted((-r.n_targets, r.gene) for r in ordered)
    assert {r.gene for r in filter_rows(ordered, "tf")} == {g for g, rs in roles.items() if "TF" in rs}
    assert [r.gene for r in filter_rows(ordered, "FOX")] == ["Foxo1"]
    assert parse_desired("ko", ordered[0]) == 0 and parse_desired("max", ordered[0]) == ordered[0].hi


def test_bar_and_histograms_by_hand():
    assert plots.bar(1, 2, 4) == "██  "  # half of 4 characters
    assert plots.bar(1, 8, 1) == "▏"  # one eighth
    assert plots.bar(3, 2, 3) == "███" and plots.bar(-1, 2, 3) == "   " and plots.bar(1, 0, 2) == "  "
    labels, counts = plots.r2_histogram([-0.5, 0.0, 0.05, 0.1, 0.95, 1.0, float("nan")])
    assert labels[0].strip() == "< 0" and counts == [1, 2, 1, 0, 0, 0, 0, 0, 0, 0, 2]
    lines = plots.column_histogram([0.95, 0.95, 0.5], height=2, col=2)
    # .9 has 2 (full, 2 lines), .5 has 1 (1 line of 2)
    assert lines[0] == " " * 20 + "█"
    assert lines[1] == " " * 12 + "█" + " " * 7 + "█"
    assert lines[-1].split() == ["0"] * 6 + ["1"] + ["0"] * 3 + ["2"]
    assert plots.bar_lines(["a", "bb"], [1.0, 2.0], width=2) == ["a   █   1", "bb  ██  2"]


def test_pixel_grid_and_halfblock_by_hand():
    coords = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.9, 0.9]])
    vals = np.array([1.0, 2.0, 3.0, 4.0, 6.0])
    g = plots.pixel_grid(coords, vals, 2, 2)
    # top row = larger y: (0,1) -> 3; (1,1) and (0.9,0.9) -> mean(4, 6) = 5
    np.testing.assert_array_equal(g, [[3.0, 5.0], [1.0, 2.0]])
    g2 = plots.pixel_grid(np.array([[0.0, 0.0], [3.0, 1.0]]), np.array([1.0, 2.0]), 4, 4)
    assert g2.shape == (2, 4)  # aspect kept: 3 × 1 data units, square pixels of side 0.75
    assert g2[1, 0] == 1 and g2[0, 3] == 2 and np.isnan(g2).sum() == 6
    t = plots.halfblock(np.array([[1.0, np.nan], [np.nan, np.nan], [0.5, 1.0], [1.0, np.nan]]))
    assert t.plain == "▀ \n▀▀"
    assert plots.colour(0) == "#440154" and plots.colour(1) == "#fde725"
    m = plots.spatial_map(np.random.default_rng(0).uniform(size=(400, 2)), np.ones(400), width=40, height=10)
    body = m.plain.splitlines()
    assert len(body) <= 10 and max(len(ln) for ln in body[:-1]) <= 40 and body[-1].startswith("0 ")


def test_screenshots_of_both_screens(tmp_path):
    from spacetravlr_py.tui.screenshots import take

    dash, wb = (p.read_text() for p in take(tmp_path, n_cells=400, n_done=5))
    assert dash.startswith("<svg") and wb.startswith("<svg")
    for svg, words in ((dash, ("configuration", "progress", "quality", "processes")),
                       (wb, ("perturbation", "Foxo1", "affected", "cluster"))):
        text = svg.replace("&#160;", " ")
        assert all(w in text for w in words)

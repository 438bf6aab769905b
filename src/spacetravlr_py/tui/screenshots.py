"""Screenshots of the dashboard and the workbench (Textual's SVG export) for the documentation, taken
from a real training and a real perturbation of the synthetic tissue in headless mode.

``python -m spacetravlr_py.tui.screenshots docs/`` writes ``tui_dashboard.svg`` and ``tui_workbench.svg``.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

SIZE = (160, 48)
DASHBOARD_SVG, WORKBENCH_SVG = "tui_dashboard.svg", "tui_workbench.svg"


async def _dashboard(cfg: object, out: Path, n_done: int) -> None:
    from .dashboard import TrainingJob

    job = TrainingJob(cfg, n_workers=2)
    app = job.app()
    with job.logging():
        async with app.run_test(size=SIZE) as pilot:
            taken = False
            while not app.state.thread_done:
                app.refresh_from_events()
                c = app.state.counts()
                # mid-run, with both workers busy (or, failing that, at the end)
                if not taken and ((c["done"] + c["orphan"] >= n_done and len(app.state.in_flight) == 2)
                                  or (c["remaining"] <= 2 and c["total"])):
                    app.refresh_processes()
                    await pilot.pause()
                    out.write_text(app.export_screenshot(title="spacetravlr training dashboard"), encoding="utf-8")
                    taken = True
                    await pilot.press("q")
                await pilot.pause(0.05)
    job.outcome(app)


async def _workbench(run_toml: Path, out: Path, gene: str, cell_type: str) -> None:
    from ..perturbation.session import RunSession
    from .genes import CELL_TYPES, Scope
    from .workbench import Workbench, WorkbenchScreen

    app = Workbench(RunSession.open(run_toml))
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, WorkbenchScreen)
        screen.gene = screen.by_gene[gene]
        screen._fill_genes("")
        screen._set_scope(Scope(CELL_TYPES, (cell_type,)))
        await pilot.press("r")
        while not screen.history or screen.history[-1].status == "running":
            await pilot.pause(0.05)
        await pilot.pause(0.3)
        out.write_text(app.export_screenshot(title="spacetravlr-perturb workbench"), encoding="utf-8")
        await pilot.press("q")


def take(out_dir: str | Path, *, n_cells: int = 1500, n_done: int = 40) -> list[Path]:
    """Train the synthetic tissue and perturb it under both screens; write their SVG screenshots."""
    from .. import _keys
    from ..config import SpaceshipConfig
    from ..datasets import synthetic_tissue

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        paths = synthetic_tissue(n_cells=n_cells, n_targets=80, seed=1).write(Path(tmp) / "data")
        cfg = SpaceshipConfig().with_overrides({"data.adata_path": str(paths["h5ad"]),
                                                "grn.network_data_dir": str(paths["network"].parent),
                                                "execution.output_dir": str(Path(tmp) / "run"),
                                                "execution.n_parallel": 2})
        asyncio.run(_dashboard(cfg, out / DASHBOARD_SVG, n_done))
        from ..training import train

        train(cfg)  # the rest of the genes, for the workbench
        asyncio.run(_workbench(Path(tmp) / "run" / _keys.REPRO_TOML, out / WORKBENCH_SVG, "Foxo1", "ct1"))
    return [out / DASHBOARD_SVG, out / WORKBENCH_SVG]


if __name__ == "__main__":
    for p in take(sys.argv[1] if len(sys.argv) > 1 else "docs"):
        print(f"wrote {p}")

"""Smoke test of the full-mode benchmark rows (``benchmarks/bench_full.py``) at quick sizes, without the
reference: the CLI runs, the cell-passes are read back from the logs, the bare-PyTorch ceiling runs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from conftest import shared_path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the benchmarks package beside src/

pytest.importorskip("torch")
pytest.importorskip("psutil")

from benchmarks import bench_full
from benchmarks import workloads as wl
from benchmarks.common import Ctx


@pytest.mark.slow
def test_full_rows_quick(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shared_path("grn", "mouse_base_grn.parquet")
    d = tmp_path / "bench"
    monkeypatch.setattr(wl, "BENCH_DIR", d)
    monkeypatch.setenv("SPACETRAVLR_BENCH_DIR", str(d))
    ctx = Ctx(quick=True, repeats=1, measure_memory=False, use_reference=False, log=lambda s: None)
    (r,) = bench_full.run_vs_reference(ctx)
    assert r["ours"]["median_s"] > 0 and "reference not run" in r["notes"]
    passes = bench_full.cell_passes(Path(ctx.extras["full_p1"]["out"]))
    assert passes and all(n > 0 and e == 2 and m > 0 and k == 5 for n, e, m, k in passes)
    (c,) = bench_full.run_ceiling(ctx)
    assert c["size"]["cell_passes"] == sum(n * e for n, e, _, _ in passes) and 0 < c["ratio"]

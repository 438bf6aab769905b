"""Smoke test of the viewer benchmark (``benchmarks/bench_viewer.py``): on a small tissue its server starts,
every phase runs and the numbers it reports are complete. No timing is asserted."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the benchmarks package beside src/

from benchmarks import bench_viewer
from benchmarks import workloads as wl

pytestmark = pytest.mark.slow


def test_viewer_benchmark_phases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wl, "BENCH_DIR", tmp_path / "bench")
    d = bench_viewer.viewer_inputs(800)
    toml = d / "run" / "spacetravlr_run_repro.toml"
    assert str(d) in toml.read_text()  # the TOML names the final folder, not the temporary one
    res = bench_viewer.measure(toml, n_fg=2, n_expr=8, threads=1, log=lambda s: None)
    assert res["n_obs"] == 800 and res["n_trained"] == 50
    for key, n in (("preview", 2), ("field", 2), ("expression", 8)):
        assert res[key]["n"] == n and 0 < res[key]["median_s"] <= res[key]["p95_s"] <= res[key]["max_s"]
    assert res["preview_engine"]["n"] == 2 and res["preview_engine"]["max_s"] <= res["preview"]["max_s"]
    assert res["expr_during_preview"]["n"] > 0 and res["peak_rss_mib"] >= res["rss_after_mib"] > 0

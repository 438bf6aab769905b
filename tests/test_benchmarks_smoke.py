"""Smoke test of the benchmark suite (``benchmarks/``): its modules import and the smallest workloads run
end to end without the reference, so that the suite cannot rot. No timing is asserted."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import shared_path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the benchmarks package beside src/

from benchmarks import bench_perturb, bench_received, bench_scaling, bench_transition, reference, run, timing
from benchmarks import workloads as wl
from benchmarks.common import Ctx


@pytest.fixture
def bench_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "bench"
    monkeypatch.setattr(wl, "BENCH_DIR", d)
    monkeypatch.setenv("SPACETRAVLR_BENCH_DIR", str(d))  # for worker subprocesses
    return d


def quiet_ctx() -> Ctx:
    return Ctx(quick=True, repeats=1, measure_memory=False, use_reference=False, log=lambda s: None)


def test_numpy_baseline_matches_ours(bench_dir: Path) -> None:
    from spacetravlr_py.spatial.received import received_ligands

    d = wl.received_inputs(300, 4)
    xy, L = np.load(d / "xy.npy"), np.load(d / "lig.npy")
    for kernel in ("gaussian", "truncated"):
        ours = received_ligands(L, xy, 200.0, kernel=kernel, method="exact")
        base = bench_received.numpy_received(L, xy, 200.0, kernel, block=64)
        assert np.allclose(ours, base, rtol=1e-12, atol=1e-15)


def test_received_rows(bench_dir: Path) -> None:
    ctx = quiet_ctx()
    rows = bench_received.run_exact(ctx)
    names = {r["name"] for r in rows}
    assert {"received_exact_gaussian_vs_numpy", "received_exact_truncated_vs_numpy"} <= names
    for r in rows:
        assert r["ours"]["n"] == 1 and r["ours"]["median_s"] > 0
        if r["baseline"] is not None:
            assert r["agreement"]["max_rel_diff"] < 1e-12
        else:
            assert "reference not run" in r["notes"]


def test_transition_numpy_baseline_agrees_with_ours() -> None:
    """The NumPy colΔCor baseline of the benchmark computes the same field as the package."""
    import scipy.sparse as sp

    rng = np.random.default_rng(1)
    n, g = 400, 30
    X, D, E = rng.normal(size=(n, g)), rng.normal(size=(n, g)) * 0.3, rng.normal(size=(n, 2)) * 4
    graph, V = bench_transition.field_runner(X, D, E, compat=False, k=25)()
    nb, P, V_np = bench_transition.numpy_transition(X, D, E, k=25)
    P_np = sp.csr_matrix((P.ravel(), nb.ravel(), np.arange(0, nb.size + 1, nb.shape[1])), shape=(n, n))
    assert abs(graph.to_csr("probabilities") - P_np).max() < 1e-12
    np.testing.assert_allclose(V, V_np, rtol=0, atol=1e-12)


@pytest.mark.realdata
def test_perturb_row(bench_dir: Path) -> None:
    shared_path("lr", "cellchat_mouse.csv")  # per-ligand radii come from the real CellChat table
    ctx = quiet_ctx()
    prow = bench_perturb.run_exact(ctx)[0]
    assert prow["baseline"] is None and prow["size"]["trained_genes"] == 50
    assert np.isfinite(prow["ours"]["median_s"])


def test_markdown_json_and_plot(tmp_path: Path) -> None:
    rows = [{"name": "x", "workload": "w", "ours": {"median_s": 0.5, "n": 5, "label": "o"},
             "baseline": {"median_s": 5.0, "n": 5, "label": "b"}, "ratio": 10.0,
             "agreement": {"max_abs_diff": 1e-15, "max_rel_diff": 1e-16}, "goal": "≥ 1×", "goal_met": True,
             "date": timing.now_iso()}]
    scaling = {"received": [{"cells": 1000, "ours_truncated_exact_s": 0.01},
                            {"cells": 2000, "ours_truncated_exact_s": 0.02}],
               "perturb": [], "train": [{"targets": 20, "ours_cli_s": 1.0}]}
    data = {"generated": timing.now_iso(), "quick": True, "machine": timing.machine_info(with_reference=False),
            "rows": rows, "scaling": scaling, "missing": ["nothing"]}
    md = tmp_path / "benchmarks.md"
    run.write_markdown(md, data)
    text = md.read_text()
    assert "| w |" in text and "**10.0×**" in text and "benchmark_scaling.png" in text
    json.dumps(data, default=str)
    png = bench_scaling.plot(scaling, tmp_path / "scaling.png")
    assert png.stat().st_size > 1000


def test_worker_subprocess(bench_dir: Path) -> None:
    wl.received_inputs(200, 3)
    res: dict[str, Any] = timing.worker("benchmarks.bench_received:ours_factory", {"n": 200, "l": 3}, calls=2)
    assert len(res["t_calls_s"]) == 2 and res["maxrss_kb"] >= res["maxrss_setup_kb"] > 0


def test_reference_format_inputs_are_read_by_ours(tmp_path: Path) -> None:
    from spacetravlr_py.betadata.betabase import Betabase
    from spacetravlr_py.datasets import synthetic_tissue
    from spacetravlr_py.io.anndata import load_tissue

    syn = synthetic_tissue(n_cells=120, seed=1)
    h5ad = reference.write_reference_h5ad(tmp_path / "t.h5ad", syn.adata)
    labels = syn.adata.obs["cell_type"].astype(str).to_numpy()
    reference.write_betaframes_for_reference(tmp_path / "bd", syn.betas, list(syn.adata.obs_names), labels)
    tissue = load_tissue(h5ad, cluster_annot="cell_type")
    bb = Betabase.from_dir(tmp_path / "bd", tissue)
    assert len(bb) == len(syn.betas)
    g = next(iter(syn.betas))
    k = [m.gene for m in bb.models].index(g)
    f = syn.betas[g]
    # per-cell float32 rows equal the cluster rows they came from (to float32 precision)
    row0 = bb.models[k].coefs[bb.mappings[bb.models[k].mapping][0]]
    lab = labels[0]
    assert np.allclose(row0, f.coefs[f.row_ids.index(lab)], rtol=1e-6)
    with pytest.raises(ValueError, match="contains '_'"):
        reference.write_reference_betadata(tmp_path / "bd", "Bad_gene", np.zeros((1, 0)), np.zeros(1), [], ["c0"])

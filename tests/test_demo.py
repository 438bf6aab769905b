"""The demo as a library call (``run_demo``) and its pieces; ``spacetravlr demo`` only prints it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from spacetravlr_py import _keys
from spacetravlr_py.betadata.frame import betadata_path, write_betadata
from spacetravlr_py.datasets import synthetic_tissue
from spacetravlr_py.demo import DemoSummary, beta_recovery, most_used_modulators, run_demo


def test_most_used_modulators_counts_terms_and_breaks_ties_alphabetically() -> None:
    planted = {"G1": ["Tb", "L1$R1", "L2#Tb"], "G2": ["Ta", "Tb", "L2$R2"], "G3": ["Ta", "L1#Ta"]}
    # Ta and Tb: 2 genes each → Ta (first alphabetically); L1: 2 terms, L2: 2 terms → L1
    assert most_used_modulators(planted) == ("Ta", "L1")
    assert most_used_modulators([["X", "Y", "Y"], ["M$N"]]) == ("Y", "M")


def test_beta_recovery_exact_for_the_planted_betas(tmp_path: Path) -> None:
    syn = synthetic_tissue(n_cells=120, seed=1)
    assert beta_recovery(syn, tmp_path) == (None, 0)  # nothing trained yet
    for g in syn.roles["targets"][:3]:
        write_betadata(betadata_path(tmp_path, g), syn.betas[g])
    r, n = beta_recovery(syn, tmp_path)
    assert r == pytest.approx(1.0) and n == sum(syn.betas[g].coefs.size for g in syn.roles["targets"][:3])


def test_run_demo_from_python(tmp_path: Path) -> None:
    lines: list[str] = []
    s = run_demo(tmp_path / "demo", n_cells=500, seed=2, emit=lines.append, full=False)
    assert isinstance(s, DemoSummary) and s.out_dir == (tmp_path / "demo").resolve()
    assert lines[0] == "[1/5] synthetic tissue: 500 cells, seed 2" and lines[-1].startswith("done in ")
    assert s.full_mode is None
    assert s.n_cells == 500 and s.trained["failed"] == 0 and s.trained["done"] + s.trained["orphan"] == s.n_genes
    assert set(s.network_edges) == set(_keys.EDGE_TYPES)
    assert s.beta_pearson_r is not None and s.beta_pearson_r > 0.5 and s.n_beta_values > 0
    syn = synthetic_tissue(n_cells=500, seed=2)  # the same tissue: the knockouts are its most used TF/ligand
    assert [(k.gene, k.role) for k in s.knockouts] == list(zip(most_used_modulators(syn.planted), ("TF", "ligand")))
    for ko in s.knockouts:
        assert ko.files and all(p.is_file() and p.parent == s.ko_dir for p in ko.files.values())
        assert len(ko.top_affected) == 5 and ko.top_affected[0][1] >= ko.top_affected[-1][1] > 0
        expr = pd.read_feather(s.ko_dir / f"{ko.gene}_ko.feather")
        assert np.isfinite(expr.select_dtypes("number").to_numpy()).all()
    written = json.loads((s.out_dir / _keys.DEMO_SUMMARY_JSON).read_text())
    assert written == json.loads(json.dumps(s.as_json()))
    assert sorted(p.name for p in s.run_dir.glob("*_betadata.feather")) != []


def test_full_mode_stage(tmp_path: Path) -> None:
    """Seed and full mode on a tissue whose betas vary within cell types: only the CNN's per-cell betas
    carry within-cell-type signal; the keep-lasso rule never loses to the lasso on test cells."""
    pytest.importorskip("torch")
    from spacetravlr_py.demo import full_mode_stage

    lines: list[str] = []
    st = full_mode_stage(tmp_path / "fm", n_cells=800, seed=0, n_parallel=2, emit=lines.append, reporter=None)
    seed, full = st.recovery["seed"], st.recovery["full"]
    assert seed["within_cluster_corr"] == 0.0 < full["within_cluster_corr"]
    assert seed["n_terms"] == full["n_terms"] > 0 and np.isfinite([seed["relative_mse"], full["relative_mse"]]).all()
    h = st.heldout
    assert h["genes"] == 12 and h["fits_heldout"] > 0 and h["min_gain_full_minus_lasso"] >= 0
    assert (tmp_path / "fm" / "full" / "Cd19_betadata.feather").exists()

"""Full-mode training runs (SPEC §5.2–5.3): outputs, log, weights, determinism, bad input, perturbation."""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.feather as feather
import pytest

from spacetravlr_py import _keys
from spacetravlr_py.betadata.frame import BetaFrame, betadata_path, read_betadata, write_betadata
from spacetravlr_py.config import SpaceshipConfig
from spacetravlr_py.datasets import synthetic_tissue
from spacetravlr_py.errors import ConfigError
from spacetravlr_py.training import train

torch = pytest.importorskip("torch")

GENES = ["Mki67", "Top2a", "Ptprc", "Cd68"]


@dataclass
class Runs:
    data: Path
    net_dir: Path
    full: Path
    seed: Path
    obs_names: list[str]
    clusters: np.ndarray
    coords: np.ndarray


def cfg_for(h5ad: Path, net_dir: Path, out: Path, **over: object) -> SpaceshipConfig:
    o: dict[str, object] = {"data.adata_path": str(h5ad), "grn.network_data_dir": str(net_dir),
                            "execution.output_dir": str(out), "training.mode": "full", "training.epochs": 3,
                            "training.genes": GENES, "spatial.spatial_dim": 16, "model_export.save_cnn_weights": True,
                            "cnn.holdout_fraction": 0.2}  # clusters of ≥ 48 cells are judged on held-out cells
    o.update(over)
    return SpaceshipConfig().with_overrides(o)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Runs:
    base = tmp_path_factory.mktemp("full")
    syn = synthetic_tissue(n_cells=400, seed=1)
    p = syn.write(base / "data")
    net = p["network"].parent
    train(cfg_for(p["h5ad"], net, base / "full"))
    train(cfg_for(p["h5ad"], net, base / "seed", **{"training.mode": "seed"}))
    a = syn.adata
    labels = sorted(a.obs["cell_type"].unique())
    cl = np.array([labels.index(c) for c in a.obs["cell_type"]])
    return Runs(p["h5ad"], net, base / "full", base / "seed", list(a.obs_names), cl, np.asarray(a.obsm["spatial"]))


def _log_rows(path: Path, kind: str) -> list[list[str]]:
    return [line.split("\t")[1:] for line in path.read_text().splitlines() if line.startswith(kind + "\t")][1:]


def test_full_run_outputs(runs: Runs):
    from spacetravlr_py.models.cnn_export import load_cnn_weights

    for g in GENES:
        table = feather.read_table(betadata_path(runs.full, g))
        assert table.column_names[0] == _keys.CELLID_COL
        assert all(str(t) == "float" for t in table.schema.types[1:])  # float32 on disk
        full = read_betadata(betadata_path(runs.full, g))
        seed = read_betadata(betadata_path(runs.seed, g))
        assert full.row_ids == runs.obs_names  # AnnData order
        log = runs.full / _keys.LOG_DIR / _keys.GENE_LOG.format(gene=g)
        cnn = {int(r[0]): r for r in _log_rows(log, "cnn")}
        assert len(cnn) == 5 and {r[11] for r in cnn.values()} <= {"cnn", "lasso"}
        losses = _log_rows(log, "loss")
        assert all(len(r) == 5 for r in losses) and {int(r[2]) for r in losses} == {0, 1, 2, 3}
        w = load_cnn_weights(runs.full / "CNN_weights" / f"{g}_cnn_weights.npz", gene=g, spatial_dim=16)
        maps, feats = w.inputs(runs.coords, runs.clusters)
        smods = {m: j for j, m in enumerate(seed.modulators)}
        for k, choice in cnn.items():
            rows = runs.clusters == k
            got = np.column_stack([full.intercept, _cols(full, w.modulators)])[rows]
            if choice[11] == "cnn":  # the written betas are the exported network's, bit for bit in float32
                want = w.betas(k, maps[rows], feats[rows])
                np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-30)
                assert np.ptp(got, axis=0).max() > 0  # per-cell betas vary within the cluster
            else:  # the seed lasso row, for every cell of the cluster
                srow = np.r_[seed.intercept[k], [seed.coefs[k, smods[m]] if m in smods else 0.0
                                                  for m in w.modulators]]
                np.testing.assert_array_equal(got, np.tile(srow.astype(np.float32), (rows.sum(), 1)))


def _cols(frame: BetaFrame, names: list[str]) -> np.ndarray:
    idx = {m: j for j, m in enumerate(frame.modulators)}
    return np.column_stack([frame.coefs[:, idx[m]] if m in idx else np.zeros(frame.n_rows) for m in names])


def test_full_run_is_bit_identical_to_a_rerun_and_with_two_workers(runs: Runs, tmp_path: Path):
    train(cfg_for(runs.data, runs.net_dir, tmp_path / "again"))
    train(cfg_for(runs.data, runs.net_dir, tmp_path / "par", **{"execution.n_parallel": 2}))
    for g in GENES:
        ref = betadata_path(runs.full, g).read_bytes()
        assert betadata_path(tmp_path / "again", g).read_bytes() == ref
        assert betadata_path(tmp_path / "par", g).read_bytes() == ref
        w = f"CNN_weights/{g}_cnn_weights.npz"
        assert (tmp_path / "par" / w).read_bytes() == (runs.full / w).read_bytes()


def test_full_run_perturbs_like_the_same_betas_per_cluster(runs: Runs, tmp_path: Path):
    """A per-cell (CellID) run folder perturbs through the same kernels: with every cell's row equal to
    its cluster's seed row it gives the seed run's result; the real full-mode betas give another one."""
    from spacetravlr_py.perturbation.session import RunSession

    copy = tmp_path / "cells"
    shutil.copytree(runs.full, copy)
    for g in GENES:
        s = read_betadata(betadata_path(runs.seed, g))
        rows = [s.row_ids.index(lab) for lab in sorted(s.row_ids)]
        per_cell = np.array(rows)[runs.clusters]
        write_betadata(betadata_path(copy, g), BetaFrame(g, _keys.CELLID_COL, runs.obs_names, s.intercept[per_cell],
                                                          s.modulators, s.coefs[per_cell]))
    tf = "Klf4"  # a planted TF of Mki67 and Ptprc
    seed_ko = RunSession.open(runs.seed / _keys.REPRO_TOML).run(tf, 0.0).expression
    cells_ko = RunSession.open(copy / _keys.REPRO_TOML).run(tf, 0.0).expression
    np.testing.assert_allclose(cells_ko, seed_ko, rtol=1e-12, atol=1e-12)
    full = RunSession.open(runs.full / _keys.REPRO_TOML)
    full_ko = full.run(tf, 0.0).expression
    vi = {g: j for j, g in enumerate(full.tissue.var_names)}
    assert np.isfinite(full_ko).all() and (full_ko[:, vi[tf]] == 0).all()
    base = full.tissue.expression
    for g in ("Mki67", "Ptprc"):  # the knockout moves its targets, differently from the cluster betas
        assert np.abs(full_ko[:, vi[g]] - base[:, vi[g]]).max() > 1e-3
        assert not np.array_equal(full_ko[:, vi[g]], seed_ko[:, vi[g]])


def test_bad_full_mode_input_one_line(runs: Runs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def err(**over: object) -> str:
        with pytest.raises(ConfigError) as e:
            train(cfg_for(runs.data, runs.net_dir, tmp_path / "bad", **over))
        assert not (tmp_path / "bad").exists()  # nothing written
        assert "\n" not in str(e.value)
        return str(e.value)

    assert "full mode trains for at least 1 epoch" in err(**{"training.epochs": 0})
    if not torch.cuda.is_available():
        assert "no CUDA device" in err(**{"execution.device": "cuda"})
    monkeypatch.setitem(sys.modules, "torch", None)  # as when the full extra is not installed
    assert "pip install 'spacetravlr-py[full]'" in err()


def test_heldout_summary_reads_the_logs(runs: Runs):
    from spacetravlr_py.training.cnn_report import heldout_summary, read_cnn_rows

    s = heldout_summary(runs.full)
    rows = [r for g in GENES for r in read_cnn_rows(runs.full / _keys.LOG_DIR / _keys.GENE_LOG.format(gene=g))]
    held = [r for r in rows if r["n_test"]]
    assert s["genes"] == len(GENES) and s["fits"] == len(rows) and s["fits_heldout"] == len(held)
    assert s["cnn_chosen"] == sum(r["choice"] == "cnn" for r in held)
    assert s["min_gain_full_minus_lasso"] >= 0  # the keep-lasso rule, per cluster
    assert read_cnn_rows(runs.seed / _keys.LOG_DIR / _keys.GENE_LOG.format(gene=GENES[0])) == []

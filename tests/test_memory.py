"""Memory follows what is modelled (issue 20): layers read in pieces, gene subsets, the fingerprint of the
stored layer, the perturbation over the state genes, the streamed export and the field's gene set.

The ladder: (1) the layer reader against a dense NumPy copy for every storage (dense / CSR / CSC, file
and memory, float32 / float64); (2) the lean perturbation against an independent full-width
implementation of the algorithm as it was before this work (every array cells × all genes, float64,
``_kernels.propagate``): expression, summary, export and field bit-identical; (3) training from the file
(only the genes the models read) against training on the fully loaded tissue: identical bytes; (4)
per-cell float32 betas against the same betas as float64; (5) a 20k × 2,000 case under an address-space
ceiling (``RLIMIT_DATA``) that a dense full-width float64 copy breaks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from spacetravlr_py import _keys
from spacetravlr_py.errors import InputError
from spacetravlr_py.io.anndata import load_tissue

ROOT = Path(__file__).resolve().parents[1]


def _write(a: Any, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a.write_h5ad(path)
    return path


def _adata(X: Any, genes: list[str] | None = None, n_clusters: int = 3) -> Any:
    import anndata as ad

    n, g = X.shape
    rng = np.random.default_rng(1)
    obs = pd.DataFrame({"cell_type": pd.Categorical([f"k{i % n_clusters}" for i in range(n)])},
                       index=[f"c{i}" for i in range(n)])
    var = pd.DataFrame(index=genes or [f"G{j}" for j in range(g)])
    a = ad.AnnData(X=X, obs=obs, var=var)
    a.layers[_keys.DEFAULT_LAYER] = X
    a.obsm["spatial"] = rng.uniform(0, 100, size=(n, 2))
    return a


def _matrix(n: int = 57, g: int = 23, dtype: Any = np.float32, seed: int = 0) -> np.ndarray:
    """Non-negative values with exact zeros and values at or below the 1e-9 cut."""
    rng = np.random.default_rng(seed)
    X = rng.lognormal(0.0, 1.0, size=(n, g))
    X[rng.random((n, g)) < 0.6] = 0.0
    X[0, 1] = 1e-9
    X[1, 2] = 5e-10
    X[2, 3] = 2e-9
    return X.astype(dtype)


def _reference(X: np.ndarray) -> np.ndarray:
    """The layer as every stage used to load it: float64, values <= 1e-9 set to 0."""
    R = np.array(X, dtype=np.float64)
    R[R <= _keys.MIN_EXPRESSION] = 0.0
    return R


STORAGES = ["dense", "csr", "csc"]


@pytest.fixture(params=[(s, src, dt) for s in STORAGES for src in ("file", "memory")
                        for dt in (np.float32, np.float64)],
                ids=lambda p: f"{p[0]}-{p[1]}-{np.dtype(p[2]).name}")
def stored(request, tmp_path):
    """``(source for load_tissue, dense values)`` of one storage, place and dtype."""
    kind, where, dtype = request.param
    X = _matrix(dtype=dtype)
    M = X if kind == "dense" else (sp.csr_matrix(X) if kind == "csr" else sp.csc_matrix(X))
    a = _adata(M)
    return (_write(a, tmp_path / "t.h5ad") if where == "file" else a), X


# ---------------------------------------------------------------------------------------------------
# 1. reading a layer in pieces
# ---------------------------------------------------------------------------------------------------


def test_every_storage_reads_the_same_values(stored) -> None:
    src, X = stored
    R = _reference(X)
    full = load_tissue(src)
    np.testing.assert_array_equal(full.expression, R)
    assert full.expression.dtype == np.float64 and full.expression.flags.c_contiguous
    genes = ["G17", "G3", "G0", "G22"]
    sub = load_tissue(src, genes=genes, keep_float32=True)
    assert sub.var_names == ["G0", "G3", "G17", "G22"]  # panel order
    assert sub.all_genes == full.var_names and sub.is_subset
    want = np.float32 if X.dtype == np.float32 else np.float64
    assert sub.expression.dtype == want
    np.testing.assert_array_equal(sub.expression.astype(np.float64), R[:, [0, 3, 17, 22]])
    # any other column, one by one, a few cells, row blocks
    np.testing.assert_array_equal(sub.column("G5"), R[:, 5])
    np.testing.assert_array_equal(sub.columns(["G9", "G3"]), R[:, [9, 3]])
    np.testing.assert_array_equal(sub.values_at([4, 0, 4], ["G1", "G2", "G3"]), R[[4, 0, 4]][:, [1, 2, 3]])
    blocks = list(sub.row_blocks(10, ["G2", "G11"]))
    assert [b0 for b0, _ in blocks] == list(range(0, X.shape[0], 10))
    np.testing.assert_array_equal(np.vstack([b for _, b in blocks]).astype(np.float64), R[:, [2, 11]])
    more = sub.with_genes(["G11", "G0"])
    assert more.var_names == ["G0", "G3", "G11", "G17", "G22"] and more.expression.dtype == want
    np.testing.assert_array_equal(more.expression.astype(np.float64), R[:, [0, 3, 11, 17, 22]])
    assert sub.with_genes(["G0"]) is sub


def test_csr_file_is_read_in_row_blocks_of_bounded_size(tmp_path, monkeypatch) -> None:
    from spacetravlr_py.io import layer

    X = _matrix(n=300, g=40)
    p = _write(_adata(sp.csr_matrix(X)), tmp_path / "t.h5ad")
    monkeypatch.setattr(layer, "BLOCK_BYTES", 256)  # ~32 stored entries per block
    t = load_tissue(p, genes=["G7", "G1"])
    np.testing.assert_array_equal(t.expression, _reference(X)[:, [1, 7]])
    assert len(list(t.reader.source.row_blocks(10**6, None, np.dtype(np.float64)))) > 50


def test_gene_messages_say_whether_a_gene_is_in_the_dataset(tmp_path) -> None:
    p = _write(_adata(_matrix()), tmp_path / "t.h5ad")
    with pytest.raises(InputError, match=r"gene 'G99' is not in the dataset"):
        load_tissue(p, genes=["G1", "G99"])
    t = load_tissue(p, genes=["G1"])
    assert t.has_gene("G5") and not t.has_gene("G99")
    with pytest.raises(InputError, match=r"gene 'g5' is not in the dataset \(did you mean G5"):
        t.require_gene("g5")


def test_nonfinite_values_outside_the_loaded_columns_are_found_by_the_scan(tmp_path) -> None:
    from spacetravlr_py.rundir import dataset_fingerprint

    X = _matrix(dtype=np.float64)
    X[7, 20] = np.nan
    p = _write(_adata(sp.csr_matrix(X)), tmp_path / "t.h5ad")
    t = load_tissue(p, genes=["G1", "G2"])  # the NaN is in a column that is not read
    with pytest.raises(InputError) as ei:
        dataset_fingerprint(t)
    msg = str(ei.value)
    assert "layer 'imputed_count': 1 non-finite values (1 NaN, 0 inf); first at cell 'c7', gene 'G20'" in msg
    with pytest.raises(InputError, match=r"1 non-finite values \(1 NaN, 0 inf\) in 1 cells; first at cell 'c7', "
                                         r"gene 'G20'"):
        t.column("G20")


def test_fingerprint_of_the_stored_layer_ignores_what_is_loaded(tmp_path) -> None:
    from spacetravlr_py.rundir import dataset_fingerprint
    from spacetravlr_py.rundir.fingerprint import check_same_dataset

    X = _matrix()
    a = _adata(sp.csr_matrix(X))
    p = _write(a, tmp_path / "t.h5ad")
    full, sub, mem = load_tissue(p), load_tissue(p, genes=["G4"], keep_float32=True), load_tissue(a, genes=[])
    f = dataset_fingerprint(full)
    assert f["fingerprint"] == 3 and f["n_vars"] == 23
    assert dataset_fingerprint(sub) == f
    assert {k: v for k, v in dataset_fingerprint(mem).items() if k != "path"} == {k: v for k, v in f.items()
                                                                                   if k != "path"}
    X2 = X.copy()
    X2[3, 3] += 1.0
    other = load_tissue(_write(_adata(sp.csr_matrix(X2)), tmp_path / "u.h5ad"), genes=[])
    with pytest.raises(InputError, match="same shape, different expression or coordinates"):
        check_same_dataset(f, other, where=tmp_path / "m.json", what="x")
    # a version-1 record (no "fingerprint" key, data hashed from the dense layer) compares names only
    v1 = {"n_obs": f["n_obs"], "n_vars": f["n_vars"], "names_sha1": f["names_sha1"], "data_sha1": "0" * 40}
    check_same_dataset(v1, other, where=tmp_path / "m.json", what="x")
    with pytest.raises(InputError, match="cell or gene names"):
        check_same_dataset({**v1, "names_sha1": "1" * 40}, other, where=tmp_path / "m.json", what="x")


# ---------------------------------------------------------------------------------------------------
# 2. the perturbation over the state genes against the full-width algorithm
# ---------------------------------------------------------------------------------------------------


def full_width_run(p: Any, genes: list[str], desired: list[float], mask: np.ndarray, n_prop: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """The perturbation as written before the memory work: every array (cells × every gene) float64.

    ``p`` is a Perturber on a fully loaded float64 tissue (its operators and Betabase are used).
    """
    from spacetravlr_py.perturbation import _kernels
    from spacetravlr_py.perturbation.splash import filtered

    t, s = p.tissue, p.s
    x0 = np.ascontiguousarray(t.expression, dtype=np.float64)
    f = p.bb.flat()
    lig = p.lig_genes
    lig_col = np.full(t.n_genes, -1, dtype=np.int64)
    lig_col[lig] = np.arange(len(lig))
    L0 = filtered(x0[:, lig])
    RW0 = p._received(L0)
    hi = x0.max(axis=0)
    lo = x0.min(axis=0) if s.clip == "observed_range" else np.zeros(t.n_genes)
    tcols = [t.gene_index[g] for g in genes]
    delta_in = np.zeros_like(x0)
    for c, v in zip(tcols, desired):
        delta_in[mask, c] = v - x0[mask, c]
    delta = delta_in.copy()
    cap = 0.0 if s.beta_cap is None else float(s.beta_cap)
    RW = RW0
    pin = delta_in != 0 if s.reference_compat else None
    out = np.empty_like(x0)
    state = x = x0
    for _ in range(n_prop):
        G = state
        RW_splash = RW0 if s.reference_compat else RW
        x1 = x0 + delta
        L1 = filtered(x1[:, lig])
        RW1 = RW0 + p._received(L1 - L0)
        delta[:, lig] += (RW1 - RW0) - (x1[:, lig] - x0[:, lig])
        max_mods = int(np.diff(f["mod_ptr"]).max())
        _kernels.propagate(G, RW_splash, RW0, lig_col, delta, f["target"], f["coefs"], f["coef_ptr"], f["n_cols"],
                           f["mapping_id"], f["mappings"], f["kind_ptr"], f["coef_col"], f["a"], f["b"], f["slot_a"],
                           f["slot_b"], f["mods"], f["mod_ptr"], float(s.beta_scale_factor), cap, max_mods,
                           _keys.MIN_EXPRESSION, out)
        delta, out = out, delta
        if pin is not None:
            delta[pin] = delta_in[pin]
        else:
            for c in tcols:
                delta[mask, c] = delta_in[mask, c]
        x = np.clip(x0 + delta, lo, hi)
        delta = x - x0
        RW = RW1
        state = x1
    result = x
    for c, v in zip(tcols, desired):
        result[mask, c] = v
    return result, result - x0


def full_width_summary(t: Any, delta: np.ndarray, targets: list[str]) -> dict[str, Any]:
    """``top_affected_genes``, ``cluster_mean_abs_delta`` and ``n_genes_changed`` as computed before."""
    m = np.abs(delta).mean(axis=0)
    order = np.argsort(-m, kind="stable")
    top = [{"gene": t.var_names[j], "mean_abs_delta": float(m[j])} for j in order
           if t.var_names[j] not in targets and m[j] != 0][:20]
    keep = np.array([g not in set(targets) for g in t.var_names])
    per_cell = np.abs(delta[:, keep]).mean(axis=1)
    impact = {lab: float(per_cell[t.clusters == k].mean()) for k, lab in enumerate(t.cluster_labels)}
    return {"top_affected_genes": top, "cluster_mean_abs_delta": impact,
            "n_genes_changed": int(np.count_nonzero(np.abs(delta).max(axis=0) > 0))}


@pytest.fixture(scope="module")
def wide_run(tmp_path_factory) -> dict[str, Any]:
    """A 1,200-cell synthetic tissue padded to 400 genes (CSR float32), its true betas as a run folder."""
    from spacetravlr_py.betadata.frame import betadata_path, write_betadata
    from spacetravlr_py.datasets import synthetic_tissue, write_padded_tissue

    d = tmp_path_factory.mktemp("wide")
    syn = synthetic_tissue(1200, seed=5)
    h5ad = write_padded_tissue(syn, d / "tissue.h5ad", 400, density=0.05, seed=2, n_highly_variable=150)
    run = d / "run"
    run.mkdir()
    for gene, frame in syn.betas.items():
        write_betadata(betadata_path(run, gene), frame)
    syn.network.to_parquet(d / _keys.NETWORK_FILE.format(species="mouse"), index=False)
    toml = run / _keys.REPRO_TOML
    toml.write_text(f'[data]\nadata_path = "{h5ad}"\n[execution]\noutput_dir = "{run}"\n'
                    f'[grn]\nnetwork_data_dir = "{d}"\n')
    return {"syn": syn, "h5ad": h5ad, "run": run, "toml": toml, "dir": d}


def _sessions(wide_run: dict[str, Any], overrides: dict[str, Any] | None = None) -> tuple[Any, Any]:
    """The lean session (panel + the genes the betadata name, float32) and a Perturber on the fully loaded
    float64 tissue with the same settings."""
    from spacetravlr_py.betadata.betabase import Betabase, read_frames
    from spacetravlr_py.betadata.frame import list_betadata
    from spacetravlr_py.perturbation.propagate import Perturber, PerturbSettings
    from spacetravlr_py.perturbation.session import RunSession

    s = RunSession.open(wide_run["toml"], overrides=overrides)
    full = load_tissue(wide_run["h5ad"])
    bb = Betabase(read_frames(list_betadata(wide_run["run"])), full)
    return s, Perturber(full, bb, PerturbSettings.from_config(s.cfg))


@pytest.mark.parametrize("overrides", [None, {"compat.mode": "python-reference", "perturbation.clip": "observed_range",
                                              "perturbation.beta_cap": 0.5}], ids=["seed", "compat"])
def test_lean_perturbation_equals_the_full_width_algorithm(wide_run, overrides, tmp_path) -> None:
    s, ref = _sessions(wide_run, overrides)
    t = s.tissue
    assert t.is_subset and t.n_panel_genes == 400 and t.n_genes < 70
    assert t.expression.dtype == np.float32  # the layer is float32 and stays so
    assert s.perturber.x0_state.shape[1] <= t.n_genes
    mask = t.clusters != 1
    genes, desired = ["Prdm1", "Pad00007", "Cd19"], [0.0, 3.0, 1.5]  # a TF, an untrained padding gene, a target
    res = s.run(genes, desired, scope=mask, n_propagation=3)
    expect_x, expect_d = full_width_run(ref, genes, desired, mask, 3)
    full = ref.tissue
    for g in full.var_names:
        j = full.gene_index[g]
        np.testing.assert_array_equal(res.expression_of(g), expect_x[:, j], err_msg=g)
        np.testing.assert_array_equal(res.delta_of(g), expect_d[:, j], err_msg=g)
    summ = res.summary()
    old = full_width_summary(full, expect_d, genes)
    for key in old:
        assert summ[key] == old[key], key
    assert res.changed_genes() == [g for g in full.var_names if np.abs(expect_d[:, full.gene_index[g]]).max() > 0]
    # the export: every gene (streamed in several record batches), or the genes that moved
    from spacetravlr_py.perturbation.export import write_expression
    from spacetravlr_py.perturbation.session import write_result

    paths = write_result(res, tmp_path / "ko.feather")
    write_expression(res, tmp_path / "small_batches.feather", batch_bytes=1)  # 1,024 cells per batch
    old_frame = pd.DataFrame(expect_x, columns=full.var_names)
    old_frame.insert(0, _keys.CELLID_COL, full.obs_names)
    for p in (paths["expression"], tmp_path / "small_batches.feather"):
        got = pd.read_feather(p)
        pd.testing.assert_frame_equal(got, old_frame, check_exact=True)
    js = json.loads(paths["summary"].read_text())
    assert js["top_affected_genes"] == old["top_affected_genes"] and js["n_genes_changed"] == old["n_genes_changed"]
    moved = pd.read_feather(write_result(res, tmp_path / "moved.feather", summary=False,
                                         changed_only=True)["expression"])
    assert list(moved.columns) == [_keys.CELLID_COL, *res.changed_genes()]
    pd.testing.assert_frame_equal(moved, old_frame[list(moved.columns)], check_exact=True)


def test_field_over_its_gene_set_equals_the_full_width_field(wide_run) -> None:
    from spacetravlr_py.perturbation.result import PerturbResult
    from spacetravlr_py.transitions import transition_probabilities

    s, ref = _sessions(wide_run)
    res = s.run("Prdm1", 0.0)
    full = ref.tissue
    expect_x, expect_d = full_width_run(ref, ["Prdm1"], [0.0], np.ones(full.n_cells, bool), 4)
    # the file marks 150 highly variable genes: the default set is those plus the genes that moved
    names = res.field_genes()
    assert set(names) == set(res.changed_genes()) | set(full.all_genes[:150])
    X, D, cols = res.field_inputs()
    assert X.dtype == np.float32 and D.shape[1] == len(cols) == len(res.changed_genes())
    E = full.umap
    sel = [full.gene_index[g] for g in names]
    got = transition_probabilities(X, D, E, n_neighbors=30, delta_genes=cols)
    want = transition_probabilities(full.expression[:, sel], expect_d[:, sel], E, n_neighbors=30)
    np.testing.assert_array_equal(got.probabilities, want.probabilities)
    np.testing.assert_array_equal(got.correlations, want.correlations)
    # without the annotation the set is every gene of the panel: the full-width field itself
    t = s.tissue
    t.highly_variable = None
    X2, D2, cols2 = res.field_inputs()
    assert X2.shape == (full.n_cells, 400)
    every = transition_probabilities(X2, D2, E, n_neighbors=30, delta_genes=cols2)
    np.testing.assert_array_equal(every.probabilities,
                                  transition_probabilities(full.expression, expect_d, E, n_neighbors=30).probabilities)
    # a result given as full matrices (the old constructor) still works
    old = PerturbResult(full, expression=expect_x, delta=expect_d, targets=["Prdm1"], desired=[0.0])
    assert old.top_genes(5) == res.top_genes(5)


def test_cell_subset_tissue_streams_its_own_cells(wide_run, tmp_path) -> None:
    from spacetravlr_py.io.conditions import subset_tissue
    from spacetravlr_py.perturbation.export import write_expression

    s, _ = _sessions(wide_run)
    cells = np.flatnonzero(s.tissue.clusters == 2)
    sub = subset_tissue(s.tissue, cells)
    full = load_tissue(wide_run["h5ad"])
    np.testing.assert_array_equal(sub.column("Pad00123"), full.column("Pad00123")[cells])
    from spacetravlr_py.perturbation.result import HeldColumns, PerturbResult

    base = sub.columns(["Foxo1"])
    res = PerturbResult(sub, targets=["Foxo1"], desired=[0.0], held=[HeldColumns(["Foxo1"], 0 * base, x0=base)])
    got = pd.read_feather(write_expression(res, tmp_path / "sub.feather", batch_bytes=1))
    assert len(got) == len(cells) and list(got[_keys.CELLID_COL]) == list(full.obs_names[cells])
    want = full.expression[cells]
    want[:, full.gene_index["Foxo1"]] = 0.0
    np.testing.assert_array_equal(got.iloc[:, 1:].to_numpy(), want)


# ---------------------------------------------------------------------------------------------------
# 3. training reads only what the models use
# ---------------------------------------------------------------------------------------------------


def test_training_from_the_file_equals_training_on_the_whole_layer(wide_run, tmp_path) -> None:
    from spacetravlr_py.config import SpaceshipConfig
    from spacetravlr_py.training import train

    net = wide_run["dir"] / _keys.NETWORK_FILE.format(species="mouse")
    genes = ["Cd19", "Foxo1", "Cxcl12", "Pad00003", "Cd44"]

    def run(out: Path, tissue: Any) -> Any:
        cfg = SpaceshipConfig().with_overrides({
            "data.adata_path": str(wide_run["h5ad"]), "grn.network_data_dir": str(net.parent),
            "execution.output_dir": str(out), "training.genes": genes, "grn.max_ligands": 8})
        return train(cfg, tissue=tissue)

    lean = run(tmp_path / "lean", None)
    whole = run(tmp_path / "whole", load_tissue(wide_run["h5ad"]))
    assert lean.counts == whole.counts and lean.counts["orphan"] == 1  # the padding gene has no modulators
    files = sorted(p.name for p in (tmp_path / "whole").glob("*_betadata.feather"))
    assert len(files) == 4
    for name in files:
        assert (tmp_path / "lean" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name
    assert lean.manifest["dataset"] == whole.manifest["dataset"]
    assert lean.manifest["dataset"]["fingerprint"] == 3 and lean.manifest["dataset"]["n_vars"] == 400


def test_training_holds_modulator_genes_and_reads_other_targets_in_chunks(wide_run) -> None:
    from spacetravlr_py.modulators import ModulatorSelector
    from spacetravlr_py.training.context import TargetColumns

    syn = wide_run["syn"]
    t = load_tissue(wide_run["h5ad"], genes=[], keep_float32=True)
    sel = ModulatorSelector(network=syn.network, var_names=t.all_genes)
    mods = sel.modulator_genes(["Cd19", "Pad00001"])
    m = sel.select("Cd19")
    assert set(m.tfs) <= set(mods) and {g for p in m.lr_pairs for g in p} <= set(sel.all_ligands) | set(mods)
    assert not any(g.startswith("Pad") for g in mods)  # padding genes modulate nothing
    # every gene gets the database LR pairs as modulators (SPEC §4): a padding gene is fitted, not an orphan
    assert sel.fitted_targets(["Pad00001", "Cd19"]) == ["Pad00001", "Cd19"]
    order = [f"Pad{i:05d}" for i in range(1, 40)]
    cols = TargetColumns(t.reader, order, chunk_bytes=t.n_cells * 4 * 16)  # 16 genes per pass
    full = load_tissue(wide_run["h5ad"])
    for g in order:
        np.testing.assert_array_equal(cols.get(g), full.column(g))
    assert cols.chunk == 16 and cols.n_reads == 3


def test_targets_shipped_to_remote_workers_need_no_dataset_file(wide_run, tmp_path) -> None:
    """A Dask worker may not see the .h5ad: the shipped context holds the targets it would read from it."""
    import pickle
    import shutil

    from spacetravlr_py.training.context import TargetColumns

    h5 = tmp_path / "moved.h5ad"
    shutil.copy(wide_run["h5ad"], h5)
    t = load_tissue(h5, genes=[], keep_float32=True)
    order = [f"Pad{i:05d}" for i in range(1, 30)]
    lazy = TargetColumns(t.reader, order, chunk_bytes=t.n_cells * 4 * 8)
    blob = pickle.dumps(lazy.held())
    h5.unlink()  # the worker's machine has no dataset
    held = pickle.loads(blob)
    full = load_tissue(wide_run["h5ad"])
    for g in order:
        np.testing.assert_array_equal(held.get(g), full.column(g))
    with pytest.raises(OSError):  # the lazy columns would have needed the file
        pickle.loads(pickle.dumps(lazy)).get(order[0])


# ---------------------------------------------------------------------------------------------------
# 4. per-cell betas held as float32
# ---------------------------------------------------------------------------------------------------


def test_per_cell_float32_betas_are_held_once_and_perturb_exactly(wide_run, tmp_path) -> None:
    from spacetravlr_py.betadata.betabase import Betabase, read_frames
    from spacetravlr_py.betadata.frame import BetaFrame, betadata_path, list_betadata, read_betadata, write_betadata
    from spacetravlr_py.perturbation.propagate import Perturber

    syn = wide_run["syn"]
    t = load_tissue(wide_run["h5ad"], genes=[], keep_float32=True)
    rng = np.random.default_rng(3)
    field = 1.0 + 0.5 * np.sin(t.coords[:, 0] / 200.0)  # a smooth spatial multiplier of the cluster betas
    folder = tmp_path / "percell"
    folder.mkdir()
    for gene, f in syn.betas.items():
        rows = f.coefs[t.clusters] * field[:, None] * (1 + 0.01 * rng.normal(size=(t.n_cells, 1)))
        write_betadata(betadata_path(folder, gene), BetaFrame(
            gene=gene, row_kind=_keys.CELLID_COL, row_ids=list(t.obs_names), intercept=f.intercept[t.clusters],
            modulators=f.modulators, coefs=rows.astype(np.float32), disk_float32=True))
    frame = read_betadata(betadata_path(folder, "Cd19"))
    assert frame.coefs.dtype == np.float32 and frame.disk_float32
    frames = read_frames(list_betadata(folder))
    assert len({id(f.row_ids) for f in frames}) == 1  # one list of cell ids for every gene
    bb32 = Betabase(frames, t)
    flat = bb32.flat()
    assert flat["coefs"].dtype == np.float32
    for gm in bb32.models:
        assert np.shares_memory(gm.coefs, flat["coefs"]) and gm.frame.coefs is gm.coefs
    # the same betas as float64 frames: identical perturbation
    f64 = [BetaFrame(gene=f.gene, row_kind=f.row_kind, row_ids=f.row_ids, intercept=f.intercept,
                     modulators=f.modulators, coefs=f.coefs.astype(np.float64))
           for f in read_frames(list_betadata(folder))]
    bb64 = Betabase(f64, t)
    assert bb64.flat()["coefs"].dtype == np.float64
    r32 = Perturber(bb32.tissue, bb32).run("Prdm1", 0.0)
    r64 = Perturber(bb64.tissue, bb64).run("Prdm1", 0.0)
    for g in r64.genes:
        np.testing.assert_array_equal(r32.expression_of(g), r64.expression_of(g))


# ---------------------------------------------------------------------------------------------------
# 5. a memory ceiling that a full-width float64 copy breaks
# ---------------------------------------------------------------------------------------------------

CEILING_WORKLOAD = r"""
import os, resource, sys
import numpy, scipy, anndata, numba, pyarrow  # imported before the ceiling: their footprint counts
phase, d, limit = sys.argv[1], sys.argv[2], int(sys.argv[3]) << 20
if limit:
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
if phase == "train":
    import spacetravlr_py as st
    cfg = st.SpaceshipConfig().with_overrides({
        "data.adata_path": f"{d}/tissue.h5ad", "grn.network_data_dir": d,
        "execution.output_dir": f"{d}/train_{limit}", "training.genes": ["Cd19", "Foxo1"]}, source="test")
    st.train(cfg)
else:
    from spacetravlr_py.perturbation.session import RunSession
    from spacetravlr_py.perturbation.export import write_expression
    s = RunSession.open(f"{d}/run/spacetravlr_run_repro.toml")
    r = s.run("Prdm1", 0.0)
    if phase == "export":
        write_expression(r, f"{d}/ko_{limit}.feather", batch_bytes=8 << 20)
print("OK")
"""
CEILING_MIB = {"train": 650, "perturb": 650, "export": 750}
"""RLIMIT_DATA per phase (MiB, imports included). Measured need of this implementation at 20,000 cells ×
2,000 genes: train ≈ 450, perturb ≈ 450, export ≈ 550 (a full-width float64 copy is 305 MiB, so it does not
fit in the margin). The implementation before this work failed every phase: training needed ≈ 1,300,
perturbation and export more than 2,200."""


@pytest.fixture(scope="module")
def ceiling_data(tmp_path_factory) -> Path:
    from spacetravlr_py.betadata.frame import betadata_path, write_betadata
    from spacetravlr_py.datasets import synthetic_tissue, write_padded_tissue

    d = tmp_path_factory.mktemp("ceiling")
    syn = synthetic_tissue(20_000, seed=0)
    write_padded_tissue(syn, d / "tissue.h5ad", 2000, density=0.05)
    syn.network.to_parquet(d / _keys.NETWORK_FILE.format(species="mouse"), index=False)
    run = d / "run"
    run.mkdir()
    for gene, f in syn.betas.items():
        write_betadata(betadata_path(run, gene), f)
    (run / _keys.REPRO_TOML).write_text(f'[data]\nadata_path = "{d / "tissue.h5ad"}"\n'
                                        f'[execution]\noutput_dir = "{run}"\n')
    return d


def _workload(phase: str, d: Path, limit_mib: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"),
           # allocators and thread pools that do not reserve address space per thread, so the ceiling
           # measures the arrays: glibc malloc for Arrow, two malloc arenas, two numba / BLAS threads
           "ARROW_DEFAULT_MEMORY_POOL": "system", "MALLOC_ARENA_MAX": "2", "NUMBA_NUM_THREADS": "2",
           "OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
    return subprocess.run([sys.executable, "-c", CEILING_WORKLOAD, phase, str(d), str(limit_mib)], env=env,
                          capture_output=True, text=True, timeout=900)


@pytest.mark.slow
@pytest.mark.parametrize("phase", ["train", "perturb", "export"])
def test_20k_cells_by_2k_genes_under_a_memory_ceiling(ceiling_data, phase) -> None:
    warm = _workload(phase, ceiling_data, 0)  # numba's cache filled outside the ceiling (compilation is not measured)
    assert warm.returncode == 0 and "OK" in warm.stdout, warm.stderr[-2000:]
    limited = _workload(phase, ceiling_data, CEILING_MIB[phase])
    assert limited.returncode == 0 and "OK" in limited.stdout, (
        f"{phase} no longer fits in {CEILING_MIB[phase]} MiB of data (a dense full-width copy?):\n"
        + limited.stderr[-3000:])


def test_values_hash_is_the_same_for_every_storage_of_the_same_values() -> None:
    """The fingerprint's data hash depends on the values a reader sees, not on how they are stored."""
    import scipy.sparse as sp

    from spacetravlr_py.io.layer import MemoryLayer, layer_sha1

    rng = np.random.default_rng(3)
    X = rng.random((57, 13)).astype(np.float32)
    X[X < 0.6] = 0
    tiny = X.copy()
    zeros = np.argwhere(X == 0)
    tiny[tuple(zeros[0])], tiny[tuple(zeros[-1])] = 1e-12, -0.5  # at or below the threshold: read as 0
    ref, _ = layer_sha1(MemoryLayer(X), 1e-9)
    unsorted = sp.csr_matrix(X)
    unsorted.indices = unsorted.indices.copy()
    for r in range(unsorted.shape[0]):  # reverse each row's entries: same matrix, unsorted indices
        a, b = unsorted.indptr[r], unsorted.indptr[r + 1]
        unsorted.indices[a:b] = unsorted.indices[a:b][::-1]
        unsorted.data[a:b] = unsorted.data[a:b][::-1]
    for other in (X.astype(np.float64), sp.csr_matrix(X), sp.csc_matrix(X), sp.csr_matrix(X.astype(np.float64)),
                  unsorted, tiny, sp.csr_matrix(tiny)):
        assert layer_sha1(MemoryLayer(other), 1e-9)[0] == ref
    changed = X.copy()
    changed[3, 4] += 0.25
    assert layer_sha1(MemoryLayer(changed), 1e-9)[0] != ref
    moved = np.roll(X, 1, axis=1)  # the same values in other columns
    assert layer_sha1(MemoryLayer(moved), 1e-9)[0] != ref
    assert layer_sha1(MemoryLayer(X), 0.7)[0] != ref  # another threshold sees other values

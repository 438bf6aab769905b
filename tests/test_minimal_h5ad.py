"""The run folder's minimal .h5ad (issue 18 item 5): exactly what perturbation reads, and bit-identical
perturbations when it stands in for a missing original."""

from __future__ import annotations

import json
import logging
import shutil

import anndata as ad
import numpy as np
import pyarrow.feather as feather
import pytest
import scipy.sparse as sp

from spacetravlr_py import _keys
from spacetravlr_py.config import SpaceshipConfig
from spacetravlr_py.datasets import synthetic_tissue
from spacetravlr_py.io.anndata import load_tissue
from spacetravlr_py.io.minimal import write_minimal_h5ad
from spacetravlr_py.perturb.session import RunSession
from spacetravlr_py.rundir import dataset_fingerprint, open_run

PERTURBATIONS = [("Foxo1", 0.0), ("Cxcl12", 0.0), ("Pax5", 2.5)]


def _same_tissue(a, b) -> None:
    assert list(a.obs_names) == list(b.obs_names) and a.var_names == b.var_names
    for name in ("coords", "expression", "clusters", "umap"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.cluster_labels == b.cluster_labels and a.expression.dtype == b.expression.dtype


@pytest.mark.parametrize("form", ["float32_sparse", "float64_dense", "X_layer", "integer_labels"])
def test_minimal_file_loads_the_same_tissue(tmp_path, form):
    syn = synthetic_tissue(n_cells=200, seed=4)
    a = syn.adata
    layer, annot = "imputed_count", "cell_type"
    rng = np.random.default_rng(0)
    M = np.asarray(a.layers[layer], dtype=np.float64)
    M[rng.random(M.shape) < 0.3] = 0.0
    M[0, :3] = [1e-12, -0.5, 5e-10]  # at or below min_expression: dropped, as the loader zeroes them anyway
    if form == "float32_sparse":
        a.layers[layer] = sp.csr_matrix(M.astype(np.float32))
    elif form == "float64_dense":
        a.layers[layer] = M
    elif form == "X_layer":
        a.X, layer = sp.csc_matrix(M), ""
    else:
        labels = sorted(a.obs["cell_type"].astype(str).unique())
        a.obs["cell_type_int"] = [labels.index(v) * 10 for v in a.obs["cell_type"].astype(str)]
        annot = "cell_type_int"
    a.obs["extra_big_column"] = np.arange(a.n_obs)
    src = tmp_path / "src.h5ad"
    a.write_h5ad(src)
    out = write_minimal_h5ad(src, tmp_path / _keys.MINIMAL_H5AD, layer=layer, cluster_annot=annot)
    _same_tissue(load_tissue(src, layer=layer, cluster_annot=annot), load_tissue(out, layer=layer, cluster_annot=annot))
    m = ad.read_h5ad(out)
    assert list(m.obs.columns) == [annot] and sorted(m.obsm) == ["X_umap", "spatial"]
    assert (m.X is None) == (layer != "") and list(m.layers) == ([layer] if layer else [])
    stored = m.X if layer == "" else m.layers[layer]
    assert sp.issparse(stored) and stored.dtype == (np.float32 if form == "float32_sparse" else np.float64)
    assert stored.nnz == int((M > 1e-9).sum())


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from spacetravlr_py.cli.main import main

    base = tmp_path_factory.mktemp("minimal")
    syn = synthetic_tissue(n_cells=500, seed=3)
    a = syn.adata
    for k in ("raw_count", "normalized_count"):  # bulk the original up the way real files are
        a.layers[k] = a.layers["imputed_count"] * 2
    paths = syn.write(base / "data")
    out = base / "run"
    rc = main(["--h5ad", str(paths["h5ad"]), "--network-dir", str(paths["network"].parent),
               "--output-dir", str(out), "--plain", "--quiet", "--write-minimal-repro-h5ad"])
    assert rc == 0
    return {"base": base, "out": out, "h5ad": paths["h5ad"]}


def test_training_writes_it_and_records_it(run):
    out = run["out"]
    assert (out / _keys.MINIMAL_H5AD).is_file()
    m = json.loads((out / _keys.MANIFEST_JSON).read_text())
    assert m["minimal_h5ad"] == _keys.MINIMAL_H5AD
    assert SpaceshipConfig.from_toml(out / _keys.REPRO_TOML).execution.write_minimal_repro_h5ad is True
    assert (out / _keys.MINIMAL_H5AD).stat().st_size < run["h5ad"].stat().st_size / 2


def test_perturbations_from_the_minimal_file_are_bit_identical(run, tmp_path, caplog, capsys):
    """The run folder moved alone (the original .h5ad is not there): open_run reads the minimal file with a
    note, the manifest's dataset fingerprint matches, and every perturbation gives the same bits."""
    from spacetravlr_py.cli.perturb import main

    ref = RunSession.open(run["out"])
    moved = tmp_path / "laptop" / "run"
    shutil.copytree(run["out"], moved)
    cfg = SpaceshipConfig.from_toml(moved / _keys.REPRO_TOML)
    gone = tmp_path / "gone.h5ad"  # the TOML names a dataset that does not exist here
    cfg.with_overrides({"data.adata_path": str(gone)}).dump_toml(moved / _keys.REPRO_TOML)
    with caplog.at_level(logging.WARNING):
        tr = open_run(moved)
    assert tr.cfg.data.adata_path == str((moved / _keys.MINIMAL_H5AD).resolve())
    assert any("does not exist; reading the run's minimal copy" in n for n in tr.cfg.notes)
    assert any("minimal copy" in r.message for r in caplog.records)
    s = RunSession.open(moved)
    assert dataset_fingerprint(s.tissue)["data_sha1"] == dataset_fingerprint(ref.tissue)["data_sha1"]
    for gene, value in PERTURBATIONS:
        a, b = ref.run(gene, value), s.run(gene, value)
        np.testing.assert_array_equal(a.expression, b.expression)
        assert len(a.top_genes(50)) > 3  # the perturbation propagates to other genes
    capsys.readouterr()
    assert main(["--run-toml", str(moved / _keys.REPRO_TOML), "--gene", "Foxo1", "--out", str(tmp_path / "ko")]) == 0
    df = feather.read_feather(tmp_path / "ko.feather")
    np.testing.assert_array_equal(df[ref.tissue.var_names].to_numpy(), ref.run("Foxo1", 0.0).expression)


def test_an_existing_original_is_still_read(run):
    tr = open_run(run["out"])
    assert tr.cfg.data.adata_path == str(run["h5ad"].resolve()) and not tr.cfg.notes


def test_conditions_share_the_parent_runs_minimal_file(tmp_path):
    syn = synthetic_tissue(n_cells=400, seed=5)
    a = syn.adata
    a.obs["sample"] = np.where(a.obsm["spatial"][:, 1] < np.median(a.obsm["spatial"][:, 1]), "s1", "s2")
    paths = syn.write(tmp_path / "data")
    from spacetravlr_py.training import train

    out = tmp_path / "run"
    cfg = SpaceshipConfig().with_overrides({
        "data.adata_path": str(paths["h5ad"]), "grn.network_data_dir": str(paths["network"].parent),
        "execution.output_dir": str(out), "training.genes": ["Cd19", "Foxo1"], "data.condition": "sample",
        "execution.write_minimal_repro_h5ad": True})
    train(cfg)
    assert (out / _keys.MINIMAL_H5AD).is_file()
    assert not list((out / _keys.CONDITIONS_DIR).rglob(_keys.MINIMAL_H5AD))
    assert list(ad.read_h5ad(out / _keys.MINIMAL_H5AD).obs.columns) == ["cell_type", "sample"]
    ref = {g: RunSession.open(out, condition=g).run("Foxo1", 0.0).expression for g in ("s1", "s2")}
    paths["h5ad"].rename(tmp_path / "elsewhere.h5ad")
    for g in ("s1", "s2"):
        s = RunSession.open(out, condition=g)
        assert s.cfg.data.adata_path == str(out / _keys.MINIMAL_H5AD)
        np.testing.assert_array_equal(s.run("Foxo1", 0.0).expression, ref[g])


def test_without_the_flag_nothing_is_written_and_a_missing_dataset_is_one_line(tmp_path):
    from spacetravlr_py.errors import InputError

    syn = synthetic_tissue(n_cells=200, seed=6)
    paths = syn.write(tmp_path / "data")
    from spacetravlr_py.training import train

    out = tmp_path / "run"
    train(SpaceshipConfig().with_overrides({"data.adata_path": str(paths["h5ad"]), "training.genes": ["Cd19"],
                                            "grn.network_data_dir": str(paths["network"].parent),
                                            "execution.output_dir": str(out)}))
    assert not (out / _keys.MINIMAL_H5AD).exists()
    assert json.loads((out / _keys.MANIFEST_JSON).read_text())["minimal_h5ad"] is None
    paths["h5ad"].unlink()
    with pytest.raises(InputError, match="file not found"):
        RunSession.open(out)

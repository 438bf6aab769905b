"""``spacetravlr collect-interactions`` on trained run folders (seed and full mode): the table equals a direct
NumPy aggregation of the per-cell betas, its columns are the documented ones, Feather and CSV round-trip,
``--annot`` / ``--cluster-col`` choose the groups, and bad input is one line each."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from spacetravlr_py import _keys
from spacetravlr_py.betadata.frame import list_betadata, read_betadata
from spacetravlr_py.betadata.interactions import AGGREGATES, COLUMNS
from spacetravlr_py.betadata.interactions_run import (
    collect_run_interactions,
    read_interactions,
    write_interactions,
)
from spacetravlr_py.cli.main import main as cli_main
from spacetravlr_py.io.anndata import load_tissue

DOCS = Path(__file__).resolve().parents[1] / "docs" / "formats.md"
REDUCE = {"mean": np.mean, "sum": np.sum, "min": np.min, "max": np.max, "positive": np.mean, "negative": np.mean}


def per_cell_aggregate(run_dir: Path, h5ad: Path, labels: np.ndarray, how: str) -> dict[tuple[str, str, str], float]:
    """Every gene's betas materialised for every cell (a row per cell: its CellID row, or its cluster's row),
    then reduced over each label's cells with NumPy — the obvious way, written independently."""
    import anndata as ad

    a = ad.read_h5ad(h5ad)
    obs = [str(x) for x in a.obs_names]
    cluster = a.obs["cell_type"].astype(str).to_numpy()
    out = {}
    for gene, path in list_betadata(run_dir).items():
        f = read_betadata(path, gene)
        where = {r: i for i, r in enumerate(f.row_ids)}
        keys = obs if f.row_kind == _keys.CELLID_COL else cluster
        B = np.array([f.coefs[where[k]] for k in keys])  # (N, M)
        for lab in np.unique(labels):
            V = B[labels == lab]
            for j, m in enumerate(f.modulators):
                x = V[:, j]
                x = x[x > 0] if how == "positive" else x[x < 0] if how == "negative" else x
                if x.size and (v := REDUCE[how](x)) != 0:
                    out[(m, gene, str(lab))] = float(v)
    return out


def test_documented_columns() -> None:
    text = DOCS.read_text()
    section = text.split("## Interaction tables")[1].split("\n## ")[0]
    documented = re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.M)
    assert tuple(documented) == COLUMNS


@pytest.mark.parametrize("how", AGGREGATES)
def test_full_mode_run_equals_per_cell_numpy(full_run, how: str) -> None:
    df = collect_run_interactions(full_run.toml, aggregate=how)
    assert tuple(df.columns) == COLUMNS
    labels = load_tissue(full_run.data.h5ad).obs["cell_type"].astype(str).to_numpy()
    want = per_cell_aggregate(full_run.run_dir, full_run.data.h5ad, labels, how)
    got = {(r.modulator, r.target, r.cell_type): r.value for r in df.itertuples()}
    assert got.keys() == want.keys() and len(got) > 1000
    for k, v in want.items():
        assert got[k] == pytest.approx(v, rel=1e-9, abs=1e-12)
    sizes = pd.Series(labels).value_counts()
    assert (df["n_cells"].to_numpy() == sizes[df["cell_type"]].to_numpy()).all()
    lr = df[df["family"] == "lr"].iloc[0]
    lig, rec = lr["modulator"].split("$")
    assert (lr["ligand"], lr["receptor"], lr["tf"]) == (lig, rec, None)


def test_cli_seed_run_feather_csv_annot_and_cluster_col(small_run, tmp_path: Path, capsys) -> None:
    # a copy of the dataset with a second annotation: the left / right half of the tissue
    import anndata as ad

    data = tmp_path / "data"
    data.mkdir()
    a = ad.read_h5ad(small_run.data.h5ad)
    side = np.where(a.obsm["spatial"][:, 0] > np.median(a.obsm["spatial"][:, 0]), "right", "left")
    a.obs["side"] = pd.Categorical(side)
    a.obs["same_types"] = a.obs["cell_type"].astype(str)
    a.write_h5ad(data / "tissue.h5ad")
    run = tmp_path / "run"
    shutil.copytree(small_run.run_dir, run)
    toml = run / _keys.REPRO_TOML
    toml.write_text(toml.read_text().replace(str(small_run.data.h5ad), str(data / "tissue.h5ad")))

    out = tmp_path / "by_side.feather"
    assert cli_main(["collect-interactions", "--run-toml", str(run), "--annot", "side", "--aggregate", "sum",
                     "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    back = read_interactions(out)
    assert set(back["cell_type"]) == {"left", "right"} and "wrote" in printed
    want = per_cell_aggregate(run, data / "tissue.h5ad", side, "sum")
    got = {(r.modulator, r.target, r.cell_type): r.value for r in back.itertuples()}
    assert got.keys() == want.keys()
    assert max(abs(got[k] - v) / max(abs(v), 1e-12) for k, v in want.items()) < 1e-9

    csv = tmp_path / "t.csv"
    assert cli_main(["collect-interactions", "--run-toml", str(toml), "--out", str(csv), "--cell-types", "ct1",
                     "--genes", "Cd19,Foxo1"]) == 0
    a_ = read_interactions(csv)
    b_ = collect_run_interactions(toml, cell_types=["ct1"], genes=["Cd19", "Foxo1"])
    pd.testing.assert_frame_equal(a_, b_, check_dtype=False)
    assert set(a_["target"]) == {"Cd19", "Foxo1"}
    # --cluster-col naming a column with the same labels gives the same table
    same = collect_run_interactions(toml, cluster_col="same_types")
    pd.testing.assert_frame_equal(same, collect_run_interactions(toml))
    # Feather round trip keeps the Nones of absent parts
    write_interactions(b_, tmp_path / "rt.feather")
    pd.testing.assert_frame_equal(read_interactions(tmp_path / "rt.feather"), b_, check_dtype=False)


def test_bad_input_is_one_line(small_run, tmp_path: Path, capsys) -> None:
    empty = tmp_path / "empty_run"  # a run TOML whose folder (its own: output_dir "") holds no betadata
    empty.mkdir()
    text = re.sub(r'(?m)^output_dir = .*$', 'output_dir = ""', small_run.toml.read_text())
    (empty / _keys.REPRO_TOML).write_text(text)
    cases = [
        (["--run-toml", str(empty)], "holds no *_betadata.feather/.parquet/.csv files; train it first"),
        (["--run-toml", str(small_run.toml), "--annot", "celltype"],
         "obs has no annotation column 'celltype' (did you mean cell_type?)"),
        (["--run-toml", str(small_run.toml), "--aggregate", "median"],
         "--aggregate 'median' is not one of mean, min, max, sum, positive, negative"),
        (["--run-toml", str(small_run.toml), "--cluster-col", "nope"], "obs has no cluster column 'nope'"),
        (["--run-toml", str(small_run.toml), "--out", str(tmp_path / "x.parquet")], "unknown table format '.parquet'"),
        (["--run-toml", str(small_run.toml), "--cell-types", "ct9"], "cell type 'ct9' has no cells"),
    ]
    for args, msg in cases:
        assert cli_main(["collect-interactions", *args]) == 2
        err = capsys.readouterr().err
        assert msg in err and err.count("\n") == 1 and "Traceback" not in err, err


def test_load_cells_matches_load_tissue_without_expression(small_run) -> None:
    from spacetravlr_py.io.cells import load_cells

    full = load_tissue(small_run.data.h5ad)
    cells = load_cells(small_run.data.h5ad)
    assert cells.expression.shape == (full.n_cells, 0) and cells.n_genes == full.n_genes
    np.testing.assert_array_equal(cells.obs_names, full.obs_names)
    np.testing.assert_array_equal(cells.clusters, full.clusters)
    np.testing.assert_array_equal(cells.coords, full.coords)
    assert cells.umap is not None and full.umap is not None
    np.testing.assert_array_equal(cells.umap, full.umap)
    assert (cells.cluster_labels, cells.var_names, cells.spatial_key) == (full.cluster_labels, full.var_names,
                                                                          full.spatial_key)

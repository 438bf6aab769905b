"""``load_tissue``: key resolution, layers, clusters, embedding, and one-line errors on bad input."""

from __future__ import annotations

import warnings
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from builders import small_adata
from conftest import shared_path
from spacetravlr_py.errors import InputError
from spacetravlr_py.io.anndata import Tissue, cluster_ids, load_tissue

N, G = 6, 4
"""Cells and genes of :func:`builders.small_adata`'s default AnnData."""


def write(a: ad.AnnData, tmp_path: Path, name: str = "tissue.h5ad") -> Path:
    p = tmp_path / name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        a.write_h5ad(p)
    return p


def load_error(data: object, **kwargs) -> str:
    """Message of the InputError raised by load_tissue; asserts it is one line."""
    with pytest.raises(InputError) as ei:
        load_tissue(data, **kwargs)  # type: ignore[arg-type]
    msg = str(ei.value)
    assert "\n" not in msg, msg
    return msg


@pytest.fixture(params=["file", "memory"])
def source(request, tmp_path):
    """Load through an .h5ad file or from the in-memory AnnData (both paths must agree)."""

    def to_source(a: ad.AnnData) -> object:
        return write(a, tmp_path) if request.param == "file" else a

    to_source.kind = request.param  # type: ignore[attr-defined]
    return to_source


# ---------------------------------------------------------------------------------------------
# what is loaded
# ---------------------------------------------------------------------------------------------


def test_basic_tissue(source):
    a = small_adata()
    t = load_tissue(source(a), layer="")
    assert isinstance(t, Tissue)
    assert t.n_cells == N and t.n_genes == G and t.n_clusters == 2
    assert list(t.obs_names) == [f"cell{i}" for i in range(N)]
    assert t.var_names == ["G0", "G1", "G2", "G3"]
    assert t.coords.dtype == np.float64 and t.coords.shape == (N, 2) and t.coords.flags.c_contiguous
    np.testing.assert_array_equal(t.coords[:, 1], 10.0 * np.arange(N))
    assert t.expression.dtype == np.float64 and t.expression.flags.c_contiguous
    np.testing.assert_array_equal(t.expression, a.X)
    assert t.cluster_labels == ["a", "b"]
    np.testing.assert_array_equal(t.clusters, [1, 0, 1, 0, 1, 0])
    np.testing.assert_array_equal(t.cluster_sizes(), [3, 3])
    np.testing.assert_array_equal(t.gene("G2"), a.X[:, 2])
    assert t.spatial_key == "spatial" and t.layer == "" and t.cluster_annot == "cell_type"
    assert t.umap is None
    assert (t.path is None) == (source.kind == "memory")


@pytest.mark.parametrize(("present", "chosen"), [
    (("spatial", "X_spatial", "spatial_loc"), "spatial"),
    (("X_spatial", "spatial_loc"), "X_spatial"),
    (("spatial_loc",), "spatial_loc"),
])
def test_spatial_key_resolution_order(source, present, chosen):
    a = small_adata(spatial_key=None)
    for k, key in enumerate(present):
        a.obsm[key] = np.full((N, 2), float(k))
    t = load_tissue(source(a), layer="")
    assert t.spatial_key == chosen
    assert np.all(t.coords == float(present.index(chosen)))


def test_explicit_spatial_key(source):
    a = small_adata()
    a.obsm["my_xy"] = np.ones((N, 2))
    t = load_tissue(source(a), layer="", spatial_key="my_xy")
    assert t.spatial_key == "my_xy" and np.all(t.coords == 1.0)


def test_three_dimensional_coordinates_use_two_columns(source):
    t = load_tissue(source(small_adata(coord_dim=3)), layer="")
    assert t.coords.shape == (N, 2) and t.coords.flags.c_contiguous
    np.testing.assert_array_equal(t.coords[:, 0], np.arange(N))


@pytest.mark.parametrize("fmt", ["csr", "csc", "dense"])
def test_layers_sparse_and_dense(source, fmt):
    a = small_adata()
    M = np.zeros((N, G))
    M[1, 2] = 3.5
    M[4, 0] = 1.25
    a.layers["imputed_count"] = {"csr": sp.csr_matrix, "csc": sp.csc_matrix, "dense": np.asarray}[fmt](M)
    a.layers["other"] = np.ones((N, G))
    t = load_tissue(source(a))  # default layer imputed_count
    assert t.layer == "imputed_count"
    assert isinstance(t.expression, np.ndarray)
    np.testing.assert_array_equal(t.expression, M)
    t_x = load_tissue(source(a), layer="")
    np.testing.assert_array_equal(t_x.expression, a.X)


@pytest.mark.parametrize("sparse", [False, True])
def test_min_expression_sets_small_and_negative_values_to_zero(source, sparse):
    M = np.array([[1e-10, 1e-9, 2e-9, -0.5],
                  [5.0, -1e-12, 0.0, 1e-9 + 1e-12]])
    a = small_adata(n=2, X=sp.csr_matrix(M) if sparse else M, clusters=["a", "b"])
    e = load_tissue(source(a), layer="").expression
    np.testing.assert_array_equal(e, [[0.0, 0.0, 2e-9, 0.0], [5.0, 0.0, 0.0, 1e-9 + 1e-12]])
    assert not np.signbit(e).any()  # no -0.0 either
    e2 = load_tissue(source(a), layer="", min_expression=1.0).expression
    np.testing.assert_array_equal(e2, [[0, 0, 0, 0], [5.0, 0, 0, 0]])


def test_integer_expression_is_float64(source):
    a = small_adata(X=np.arange(N * G, dtype=np.int32).reshape(N, G))
    e = load_tissue(source(a), layer="").expression
    assert e.dtype == np.float64
    np.testing.assert_array_equal(e, np.arange(N * G).reshape(N, G))


@pytest.mark.parametrize(("labels", "expected_labels", "expected_ids"), [
    (pd.Categorical(["T", "B", "T", "NK", "B", "T"]), ["B", "NK", "T"], [2, 0, 2, 1, 0, 2]),
    (pd.Categorical(["T", "B", "T", "B", "B", "T"], categories=["T", "unused", "B"]),
     ["B", "T"], [1, 0, 1, 0, 0, 1]),
    (np.array(["x", "y", "x", "y", "z", "z"], dtype=object), ["x", "y", "z"], [0, 1, 0, 1, 2, 2]),
    (np.array([10, 2, 2, 1, 10, 1]), ["1", "2", "10"], [2, 1, 1, 0, 2, 0]),  # numeric, not lexical
    (pd.Categorical([10, 2, 2, 1, 10, 1]), ["1", "2", "10"], [2, 1, 1, 0, 2, 0]),
])
def test_cluster_labels(source, labels, expected_labels, expected_ids):
    a = small_adata()
    a.obs["cell_type"] = labels
    t = load_tissue(source(a), layer="")
    assert t.cluster_labels == expected_labels
    np.testing.assert_array_equal(t.clusters, expected_ids)
    assert t.clusters.dtype == np.int64
    # the label map recovers every cell's label
    assert [t.cluster_labels[k] for k in t.clusters] == [str(x) for x in np.asarray(labels)]


def test_other_cluster_column_and_missing_column_allowed(source):
    a = small_adata()
    a.obs["leiden"] = pd.Categorical(["0", "1", "2", "0", "1", "2"])
    t = load_tissue(source(a), layer="", cluster_annot="leiden")
    assert t.cluster_labels == ["0", "1", "2"] and t.cluster_annot == "leiden"
    t1 = load_tissue(source(a), layer="", cluster_annot="nope", require_clusters=False)
    assert t1.cluster_labels == ["all"] and not t1.clusters.any()


def test_cluster_ids_missing_labels():
    with pytest.raises(InputError, match=r"obs\['cell_type'\]: 1 cells have no label"):
        cluster_ids(pd.Series(["a", None, "b"]), column="cell_type")


@pytest.mark.parametrize(("keys", "chosen"), [(("X_umap", "umap"), "X_umap"), (("umap",), "umap")])
def test_umap_keys(source, keys, chosen):
    a = small_adata()
    for k, key in enumerate(keys):
        a.obsm[key] = np.full((N, 3), float(k))
    t = load_tissue(source(a), layer="")
    assert t.umap is not None and t.umap.shape == (N, 2)
    assert np.all(t.umap == float(keys.index(chosen)))


def test_unneeded_obsm_entries_are_not_loaded(tmp_path):
    a = small_adata()
    a.obsm["X_pca"] = np.ones((N, 50))
    t = load_tissue(write(a, tmp_path), layer="")
    assert t.spatial_key == "spatial"


# ---------------------------------------------------------------------------------------------
# errors: one line naming the file, the key or value, and the fix
# ---------------------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    p = tmp_path / "absent.h5ad"
    assert load_error(p) == f"{p}: file not found; check the --h5ad path or [data].adata_path"


def test_directory(tmp_path):
    assert load_error(tmp_path) == f"{tmp_path}: is a directory, expected an .h5ad file"


def test_not_hdf5(tmp_path):
    p = tmp_path / "text.h5ad"
    p.write_text("cell,gene\n1,2\n")
    assert load_error(p) == f"{p}: not an HDF5/.h5ad file (write it with AnnData.write_h5ad)"


def test_hdf5_that_is_not_anndata(tmp_path):
    p = tmp_path / "plain.h5ad"
    with h5py.File(p, "w") as f:
        f["matrix"] = np.ones((3, 3))
    assert load_error(p) == f"{p}: HDF5 file is not an AnnData .h5ad (no obs, var group)"


def test_hdf5_with_foreign_obs_and_var(tmp_path):
    p = tmp_path / "foreign.h5ad"
    with h5py.File(p, "w") as f:
        f["obs"] = np.arange(3)
        f["var"] = np.arange(2)
        f["X"] = np.ones((3, 2))
    msg = load_error(p, layer="")
    assert msg.startswith(f"{p}: ") and ("not an AnnData" in msg or "cannot read as AnnData" in msg), msg


@pytest.mark.parametrize("kind", ["file", "memory"])
def test_missing_layer_lists_available_layers(tmp_path, kind):
    a = small_adata()
    a.layers["counts"] = a.X.copy()
    a.layers["normalized_count"] = a.X.copy()
    msg = load_error(write(a, tmp_path) if kind == "file" else a)
    assert "layer 'imputed_count' not found (available layers: counts, normalized_count; use '' for X)" in msg


def test_missing_layer_when_no_layers(tmp_path):
    msg = load_error(write(small_adata(), tmp_path))
    assert "available layers: none" in msg


def test_no_x_matrix(tmp_path):
    a = ad.AnnData(obs=pd.DataFrame(index=["a", "b"]), var=pd.DataFrame(index=["g"]))
    a.obsm["spatial"] = np.zeros((2, 2))
    p = write(a, tmp_path)
    assert "has no X matrix; choose a layer with --layer (available: none)" in load_error(p, layer="")
    assert load_error(a, layer="") == "AnnData: has no X matrix; choose a layer (available layers: none)"


def test_missing_spatial_lists_obsm_keys(source):
    a = small_adata(spatial_key=None)
    a.obsm["X_umap"] = np.zeros((N, 2))
    a.obsm["coords"] = np.zeros((N, 2))
    msg = load_error(source(a), layer="")
    assert "no spatial coordinates in obsm (looked for spatial, X_spatial, spatial_loc; " in msg
    assert "obsm has: X_umap, coords" in msg or "obsm has: coords, X_umap" in msg


def test_missing_spatial_with_empty_obsm(source):
    msg = load_error(source(small_adata(spatial_key=None)), layer="")
    assert "obsm has: none" in msg


def test_one_column_coordinates(source):
    a = small_adata(spatial_key=None)
    a.obsm["spatial"] = np.zeros((N, 1))
    assert f"obsm['spatial'] has shape ({N}, 1), expected ({N}, 2) or ({N}, 3)" in load_error(
        source(a), layer="")


def test_nonfinite_coordinates_say_how_many_and_where(source):
    a = small_adata()
    a.obsm["spatial"][2, 0] = np.nan
    a.obsm["spatial"][4, 1] = np.inf
    msg = load_error(source(a), layer="")
    assert ("obsm['spatial']: 2 non-finite values (1 NaN, 1 inf) in 2 cells; first at cell 'cell2'; "
            "remove or fix those cells") in msg


@pytest.mark.parametrize("fmt", ["dense", "csr"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_expression_says_how_many_and_where(source, fmt, bad):
    X = np.ones((N, G))
    X[3, 2] = bad
    a = small_adata(X=sp.csr_matrix(X) if fmt == "csr" else X)
    msg = load_error(source(a), layer="")
    n_nan = int(np.isnan(bad))
    assert (f"X: 1 non-finite values ({n_nan} NaN, {1 - n_nan} inf) in 1 cells; "
            "first at cell 'cell3', gene 'G2'; impute or drop them") in msg


def test_nonfinite_in_a_named_layer(source):
    a = small_adata()
    a.layers["imputed_count"] = np.where(np.eye(N, G) > 0, np.nan, 1.0)
    msg = load_error(source(a))
    assert "layer 'imputed_count': 4 non-finite values (4 NaN, 0 inf) in 4 cells; first at cell 'cell0'" in msg


def test_duplicate_obs_names(source):
    names = ["c0", "c1", "c1", "c3", "c0", "c5"]
    msg = load_error(source(small_adata(obs_names=names)), layer="")
    assert "2 duplicate obs_names (e.g. c1, c0); make them unique with adata.obs_names_make_unique()" in msg


def test_missing_cluster_column_lists_obs_columns(source):
    a = small_adata()
    a.obs["leiden"] = "0"
    msg = load_error(source(a), layer="", cluster_annot="cell_typ")
    assert "obs has no cluster column 'cell_typ' (obs columns: cell_type, leiden)" in msg
    assert "--cluster-annot" in msg


def test_single_cell(source):
    a = small_adata(n=1, clusters=["a"])
    msg = load_error(source(a), layer="")
    assert "has 1 cell(s); at least 2 cells are needed" in msg


def test_error_names_the_file(tmp_path):
    p = write(small_adata(n=1, clusters=["a"]), tmp_path, "one_cell.h5ad")
    assert load_error(p, layer="").startswith(f"{p.resolve()}: ")


# ---------------------------------------------------------------------------------------------
# real data (../shared/data/fixtures)
# ---------------------------------------------------------------------------------------------


@pytest.mark.realdata
def test_small_melanoma():
    p = shared_path("fixtures", "small_melanoma.h5ad")
    t = load_tissue(p, layer="", cluster_annot="cell_type")
    assert (t.n_cells, t.n_genes) == (242, 8)
    assert t.coords.shape == (242, 2) and np.isfinite(t.coords).all()
    assert (t.expression >= 0).all() and t.expression.any()
    assert t.n_clusters >= 2 and t.cluster_labels == sorted(t.cluster_labels)
    a = ad.read_h5ad(p)
    assert [t.cluster_labels[k] for k in t.clusters] == [str(x) for x in a.obs["cell_type"]]
    expected = np.asarray(a.X.toarray() if sp.issparse(a.X) else a.X, dtype=np.float64)
    np.testing.assert_array_equal(t.expression, np.where(expected <= 1e-9, 0.0, expected))
    # the in-memory path gives the same tissue
    t2 = load_tissue(a, layer="")
    np.testing.assert_array_equal(t2.expression, t.expression)
    np.testing.assert_array_equal(t2.coords, t.coords)
    np.testing.assert_array_equal(t2.clusters, t.clusters)
    # it has no imputed_count layer: the default layer fails with the fix in the message
    assert "layer 'imputed_count' not found" in load_error(p)


@pytest.mark.realdata
def test_visium_mouse_brain():
    p = shared_path("fixtures", "visium_mouse_brain_49spots.h5ad")
    t = load_tissue(p, layer="", cluster_annot="leiden")
    assert t.n_cells == 49 and t.n_genes == 1999
    assert t.umap is not None and t.umap.shape == (49, 2)
    a = ad.read_h5ad(p)
    np.testing.assert_array_equal(t.umap, a.obsm["X_umap"])
    np.testing.assert_array_equal(t.coords, np.asarray(a.obsm["spatial"], dtype=np.float64))
    assert [t.cluster_labels[k] for k in t.clusters] == [str(x) for x in a.obs["leiden"]]
    assert "obs has no cluster column 'cell_type' (obs columns: in_tissue, leiden)" in load_error(p, layer="")


# ---------------------------------------------------------------------------------------------
# the loading steps and the typed config entry
# ---------------------------------------------------------------------------------------------


def test_tissue_from_config_reads_the_data_section(tmp_path: Path) -> None:
    from spacetravlr_py.config import SpaceshipConfig
    from spacetravlr_py.io.anndata import tissue_from_config

    a = small_adata(clusters=["x", "y"] * 3)
    a.obs["leiden"] = a.obs["cell_type"]
    p = write(a, tmp_path)
    cfg = SpaceshipConfig().with_overrides({"data.adata_path": str(p), "data.layer": "",
                                            "data.cluster_annot": "leiden"}, source="test")
    t = tissue_from_config(cfg)
    assert t.path == p.resolve() and t.layer == "" and t.cluster_annot == "leiden" and t.cluster_labels == ["x", "y"]
    # an explicit path wins over [data].adata_path; none at all is one line naming the key
    assert tissue_from_config(SpaceshipConfig().with_overrides({"data.layer": ""}, source="test"),
                              adata_path=p).n_cells == N
    with pytest.raises(InputError, match=r"\[data\].adata_path"):
        tissue_from_config(SpaceshipConfig())


def test_loading_steps_coords_and_umap() -> None:
    from spacetravlr_py.io.anndata import _checked_coords, _checked_expression, _find_umap

    names = np.array(["c0", "c1", "c2"])
    xyz = np.array([[0.0, 1.0, 9.0], [2.0, 3.0, 9.0], [4.0, 5.0, 9.0]])
    coords, key = _checked_coords({"X_spatial": xyz, "other": None}, None, names, "t")
    assert key == "X_spatial" and coords.flags.c_contiguous and coords.tolist() == xyz[:, :2].tolist()
    bad = xyz.copy()
    bad[1, 0] = np.nan
    with pytest.raises(InputError, match="cell 'c1'"):
        _checked_coords({"spatial": bad}, None, names, "t")
    # a 1-D or wrong-length embedding is skipped for the next UMAP key
    assert _find_umap({"X_umap": np.zeros(3), "umap": np.ones((3, 4))}, 3).tolist() == [[1.0, 1.0]] * 3
    assert _find_umap({"X_umap": np.zeros((2, 2))}, 3) is None
    e = _checked_expression(sp.csr_matrix(np.array([[0.5, 2.0], [3.0, 0.0], [1.0, 1.0]])), "L", names,
                            ["a", "b"], 1.0, "t")
    assert e.tolist() == [[0.0, 2.0], [3.0, 0.0], [0.0, 0.0]]
    with pytest.raises(InputError, match=r"layer 'L' has shape \(3, 2\), expected \(3, 3\)"):
        _checked_expression(np.ones((3, 2)), "L", names, ["a", "b", "c"], 0.0, "t")

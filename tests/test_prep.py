"""``spacetravlr prep``: normalisation, imputation, coordinates, gene selection and one-line errors.

Small synthetic count fixtures (numpy Poisson counts with planted cell types and signals); one test on
the real STARmap data trains the prepared output end to end.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from builders import COUNT_LIGANDS, COUNT_RECEPTORS, COUNT_TFS, counts_adata, counts_network
from conftest import shared_path
from spacetravlr_py import _keys
from spacetravlr_py.errors import InputError
from spacetravlr_py.prep import (
    bounding_boxes,
    check_counts,
    diffuse,
    diffusion_operator,
    impute_by_cluster,
    layout_sections,
    median_nn_distance,
    nn_distances,
    normalize,
    prepare,
)

pytest.importorskip("scanpy", reason="the prep extra (scanpy) is not installed")

def fast(**kw: object) -> dict[str, object]:
    """prepare() options that skip Leiden and UMAP (labels given, no embedding)."""
    return {"cluster_key": "truth", "compute_umap": False, "verbose": False, **kw}


def one_line_error(fn, *args, **kwargs) -> str:
    with pytest.raises(InputError) as ei:
        fn(*args, **kwargs)
    msg = str(ei.value)
    assert "\n" not in msg, msg
    return msg


# ---------------------------------------------------------------------------------------------------
# normalisation
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("target_sum", [1e4, 500.0])
def test_normalized_count_sums_to_target(target_sum: float) -> None:
    a = counts_adata()
    a.layers[_keys.RAW_LAYER] = a.X.copy()
    norm = normalize(a, target_sum=target_sum)
    assert sp.isspmatrix_csr(norm) and norm.dtype == np.float32
    assert a.layers[_keys.NORMALIZED_LAYER] is norm
    sums = np.asarray(norm.expm1().sum(axis=1)).ravel()
    np.testing.assert_allclose(sums, target_sum, rtol=1e-5)
    # zeros stay zeros and the order within a cell is kept
    raw = a.layers[_keys.RAW_LAYER].toarray()
    np.testing.assert_array_equal(norm.toarray() == 0, raw == 0)


def test_prepare_layers_and_raw_counts_kept() -> None:
    a = counts_adata()
    out = prepare(a, **fast())
    assert set(out.layers) >= {_keys.RAW_LAYER, _keys.NORMALIZED_LAYER, _keys.DEFAULT_LAYER}
    np.testing.assert_array_equal(out.layers[_keys.RAW_LAYER].toarray(), a.X.toarray())
    sums = np.expm1(out.layers[_keys.NORMALIZED_LAYER].toarray().astype(np.float64)).sum(axis=1)
    np.testing.assert_allclose(sums, 1e4, rtol=1e-5)
    assert isinstance(out.layers[_keys.DEFAULT_LAYER], np.ndarray)
    assert out.layers[_keys.DEFAULT_LAYER].dtype == np.float32
    assert list(out.obs["cell_type"].cat.categories) == ["A", "B"]
    np.testing.assert_array_equal(out.obs["cell_type_int"], (out.obs["cell_type"] == "B").astype(int))
    assert "X_umap" not in out.obsm and "X_pca" in out.obsm
    assert a.layers.keys() == set() and "cell_type" not in a.obs  # the input is not modified
    rep = out.uns["spacetravlr_prep"]
    assert rep["n_cells_in"] == a.n_obs and rep["params"]["impute_t"] == 3


# ---------------------------------------------------------------------------------------------------
# imputation
# ---------------------------------------------------------------------------------------------------


def test_diffusion_operator_is_row_stochastic_and_symmetric_in_pattern() -> None:
    rng = np.random.default_rng(1)
    z = rng.normal(size=(200, 6))
    M = diffusion_operator(z, knn=5)
    assert M.shape == (200, 200)
    np.testing.assert_allclose(np.asarray(M.sum(axis=1)).ravel(), 1.0, rtol=1e-12)
    assert M.data.min() > 0 and (M.diagonal() > 0).all()
    P = (M > 0).astype(int)
    assert (P != P.T).nnz == 0
    # a cell's heaviest off-diagonal weight goes to one of its nearest neighbours
    d = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    Md = M.toarray()
    np.fill_diagonal(Md, 0)
    top = Md.argmax(axis=1)
    rank = (d < d[np.arange(200), top][:, None]).sum(axis=1)
    assert np.median(rank) <= 2


@pytest.mark.parametrize("n", [1, 2, 3])
def test_diffusion_operator_tiny_types(n: int) -> None:
    M = diffusion_operator(np.arange(n * 2, dtype=float).reshape(n, 2))
    np.testing.assert_allclose(np.asarray(M.sum(axis=1)).ravel(), 1.0)
    z = np.zeros((4, 3))  # identical cells: finite, uniform
    M = diffusion_operator(z, knn=2).toarray()
    assert np.isfinite(M).all()
    np.testing.assert_allclose(M, 0.25)


def test_diffuse_matches_matrix_power() -> None:
    rng = np.random.default_rng(2)
    M = diffusion_operator(rng.normal(size=(50, 3)))
    B = rng.random((50, 7))
    np.testing.assert_allclose(diffuse(M, B, 3), np.linalg.matrix_power(M.toarray(), 3) @ B, rtol=1e-12)
    assert diffuse(M, B, 0) is B


def test_imputation_preserves_zeros_within_a_type() -> None:
    out = prepare(counts_adata(), **fast())
    imp = out.layers[_keys.DEFAULT_LAYER]
    A = (out.obs["cell_type"] == "A").to_numpy()
    g0, g1 = out.var_names.get_loc("Gene0"), out.var_names.get_loc("Gene1")
    assert (imp[A, g0] == 0).all() and (imp[~A, g0] > 0).mean() > 0.9
    assert (imp[~A, g1] == 0).all() and (imp[A, g1] > 0).mean() > 0.9
    # every gene stays within its type's observed range; t = 0 copies normalized_count
    norm = out.layers[_keys.NORMALIZED_LAYER].toarray()
    for m in (A, ~A):
        assert (imp[m] <= norm[m].max(axis=0) + 1e-5).all() and (imp[m] >= 0).all()
    out0 = prepare(counts_adata(), **fast(impute_t=0))
    np.testing.assert_array_equal(out0.layers[_keys.DEFAULT_LAYER], out0.layers[_keys.NORMALIZED_LAYER].toarray())


def test_imputation_reduces_dropout_on_a_planted_signal() -> None:
    """Smooth profiles along a latent trajectory, half the values dropped: imputed ≈ truth better."""
    rng = np.random.default_rng(3)
    n, g = 600, 60
    s = np.sort(rng.random(n))
    centres = rng.random(g)
    truth = 3.0 * np.exp(-((s[:, None] - centres[None, :]) ** 2) / (2 * 0.12**2))
    keep = rng.random((n, g)) < 0.4
    observed = truth * keep
    from sklearn.decomposition import PCA

    pcs = PCA(n_components=10, random_state=0).fit_transform(observed)
    labels = np.where(s < 0.5, "early", "late")
    imputed = impute_by_cluster(sp.csr_matrix(observed), pcs, labels, knn=5, t=3)

    def mean_corr(X: np.ndarray) -> float:
        return float(np.mean([np.corrcoef(X[:, j], truth[:, j])[0, 1] for j in range(g)
                              if X[:, j].std() > 0 and truth[:, j].std() > 0]))

    c_obs, c_imp = mean_corr(observed), mean_corr(imputed.astype(np.float64))
    assert c_imp > c_obs + 0.2, (c_obs, c_imp)
    # dropped entries are filled in, in proportion to the hidden truth
    dropped = ~keep
    assert np.corrcoef(imputed[dropped], truth[dropped])[0, 1] > 0.8
    strong = (truth > 1.5) & dropped  # observed 0, truth high: filled in at ≈ the kept fraction (0.4) × truth
    ratio = imputed[strong] / truth[strong]
    assert (ratio > 0.05).mean() > 0.95 and 0.2 < np.median(ratio) < 0.5


# ---------------------------------------------------------------------------------------------------
# coordinates
# ---------------------------------------------------------------------------------------------------


def test_rescaling_sets_median_nn_distance_and_keeps_original() -> None:
    a = counts_adata()
    before = median_nn_distance(a.obsm["spatial"])
    assert 7 < before < 11
    out = prepare(a, **fast())
    assert median_nn_distance(out.obsm["spatial"]) == pytest.approx(15.0, rel=1e-9)
    np.testing.assert_array_equal(out.obsm[_keys.SPATIAL_UNSCALED_KEY], a.obsm["spatial"])
    np.testing.assert_allclose(out.obsm["spatial"], a.obsm["spatial"] * 15.0 / before)
    rep = out.uns["spacetravlr_prep"]
    assert rep["median_nn_before"] == pytest.approx(before) and rep["median_nn_after"] == pytest.approx(15.0)
    kept = prepare(a, **fast(rescale=False, cell_size=3.0))
    np.testing.assert_array_equal(kept.obsm["spatial"], a.obsm["spatial"])
    assert _keys.SPATIAL_UNSCALED_KEY not in kept.obsm
    small = prepare(a, **fast(cell_size=1.0))
    assert median_nn_distance(small.obsm["spatial"]) == pytest.approx(1.0)


def test_section_layout_boxes_disjoint_and_shapes_kept() -> None:
    rng = np.random.default_rng(4)
    base = rng.uniform(0, 100, (50, 2))
    xy = np.vstack([base + rng.normal(0, 1, base.shape) for _ in range(5)])  # 5 overlapping copies
    sec = np.repeat([f"s{i}" for i in range(5)], 50)
    new, layout = layout_sections(xy, sec, gap=30.0)
    boxes = list(bounding_boxes(new, sec).values())
    for i in range(5):
        for j in range(i + 1, 5):
            a, b = boxes[i], boxes[j]
            dx = max(b[0] - a[2], a[0] - b[2])
            dy = max(b[1] - a[3], a[1] - b[3])
            assert max(dx, dy) >= 30.0 - 1e-9, (i, j, a, b)
    for s in np.unique(sec):  # rigid translation of every section
        m = sec == s
        d = new[m] - xy[m]
        np.testing.assert_allclose(d, d[0][None, :].repeat(m.sum(), 0))
        assert tuple(d[0]) == pytest.approx(layout.offsets[s])
    np.testing.assert_allclose(nn_distances(new, sec), nn_distances(xy, sec))
    assert layout.n_cols == 3


def test_prepare_sections_never_overlap() -> None:
    a = counts_adata(n=300, sections=3)  # three interleaved sections covering the same area
    out = prepare(a, **fast(section_key="section"))
    sec = out.obs["section"].to_numpy().astype(str)
    boxes = bounding_boxes(out.obsm["spatial"], sec)
    gap = out.uns["spacetravlr_prep"]["sections"]["gap"]
    assert gap == pytest.approx(2000.0)
    names = sorted(boxes)
    for i, s in enumerate(names):
        for t in names[i + 1:]:
            a_, b_ = boxes[s], boxes[t]
            assert max(b_[0] - a_[2], a_[0] - b_[2], b_[1] - a_[3], a_[1] - b_[3]) >= gap - 1e-6
    # the NN spacing is measured within sections (≈ √3 × the grid spacing here), then rescaled to 15
    assert median_nn_distance(out.obsm["spatial"], sec) == pytest.approx(15.0)
    np.testing.assert_array_equal(out.obsm[_keys.SPATIAL_UNSCALED_KEY], a.obsm["spatial"])


# ---------------------------------------------------------------------------------------------------
# genes and network
# ---------------------------------------------------------------------------------------------------


def test_gene_selection_keeps_hvg_and_every_network_gene() -> None:
    a = counts_adata(g=80)
    net = counts_network()
    out = prepare(a, **fast(n_top_genes=10, network=net, keep_genes=["Gene70", "Nope"]))
    kept = set(out.var_names)
    assert set(COUNT_TFS + COUNT_LIGANDS + COUNT_RECEPTORS) <= kept and "Gene70" in kept
    g = out.uns["spacetravlr_prep"]["genes"]
    assert g["n_hvg"] == 10 and (g["n_tfs"], g["n_ligands"], g["n_receptors"]) == (3, 2, 2)
    assert out.n_vars == g["n_kept"] == 10 + g["n_added"]
    assert int(out.var["highly_variable"].sum()) == 10
    assert out.var.loc["Tfa", "network_role"] == "TF" and out.var.loc["Liga", "network_role"] == "ligand"
    assert any("Nope" in n for n in out.uns["spacetravlr_prep"]["notes"])
    everything = prepare(a, **fast(n_top_genes=None, network=net))
    assert everything.n_vars == a.n_vars


def test_output_loads_with_load_tissue(tmp_path: Path) -> None:
    from spacetravlr_py.io.anndata import load_tissue
    from spacetravlr_py.prep import write_output

    out = prepare(counts_adata(), **fast())
    p = write_output(out, tmp_path / "prepped.h5ad")
    t = load_tissue(p, layer="imputed_count", cluster_annot="cell_type")
    assert t.n_cells == out.n_obs and t.cluster_labels == ["A", "B"]
    np.testing.assert_allclose(t.expression, out.layers[_keys.DEFAULT_LAYER], rtol=1e-6)
    assert not list(tmp_path.glob("*.tmp"))


# ---------------------------------------------------------------------------------------------------
# bad input: one line each
# ---------------------------------------------------------------------------------------------------


def test_non_counts_are_refused() -> None:
    a = counts_adata()
    logged = a.copy()
    logged.X = sp.csr_matrix(np.log1p(a.X.toarray()))
    msg = one_line_error(prepare, logged, **fast())
    assert "non-integer" in msg and "--layer" in msg and "--skip-normalize" in msg and "cell" in msg
    ok = prepare(logged, **fast(skip_normalize=True))  # already log-normalised: accepted as such
    assert _keys.RAW_LAYER not in ok.layers
    np.testing.assert_allclose(ok.layers[_keys.NORMALIZED_LAYER].toarray(), logged.X.toarray(), rtol=1e-6)
    assert prepare(logged, **fast(allow_non_integer=True)).n_obs == a.n_obs
    scaled = a.copy()
    dense = a.X.toarray()
    scaled.X = (dense - dense.mean(0)).round()
    msg = one_line_error(prepare, scaled, **fast())
    assert "negative" in msg and "not raw counts" in msg
    bad = a.copy()
    bad.X = a.X.toarray()
    bad.X[3, 4] = np.nan
    msg = one_line_error(prepare, bad, **fast())
    assert "non-finite" in msg and "cell3" in msg
    # counts in a layer; a wrong layer name is named with a suggestion
    a2 = logged.copy()
    a2.layers["counts"] = a.X.copy()
    assert _keys.RAW_LAYER in prepare(a2, **fast(layer="counts")).layers
    msg = one_line_error(prepare, a2, **fast(layer="count"))
    assert "layer 'count' not found" in msg and "counts" in msg
    assert "layers present: counts" in one_line_error(prepare, a2, **fast())


def test_check_counts_summary_and_locations() -> None:
    X = sp.csr_matrix(np.array([[0, 2.0, 0], [1.0, 0, 3.5]]))
    msg = one_line_error(check_counts, X, where="f.h5ad: X", obs_names=["a", "b"], var_names=["x", "y", "z"])
    assert "cell 'b', gene 'z'" in msg and "f.h5ad: X" in msg
    s = check_counts(X, where="X", allow_non_integer=True)
    assert (s.n_nonzero, s.n_non_integer, s.max_value) == (3, 1, 3.5)


def test_empty_cells_and_genes_are_dropped_with_a_note() -> None:
    a = counts_adata()
    X = a.X.toarray()
    X[[0, 7], :] = 0
    X[:, a.var_names.get_loc("Gene9")] = 0
    a.X = sp.csr_matrix(X)
    out = prepare(a, **fast())
    assert out.n_obs == a.n_obs - 2 and "Gene9" not in out.var_names and "cell7" not in out.obs_names
    notes = " ".join(out.uns["spacetravlr_prep"]["notes"])
    assert "dropped 2 cells with 0 counts" in notes and "dropped 1 genes" in notes
    empty = a.copy()
    empty.X = sp.csr_matrix(a.X.shape, dtype=np.float32)
    assert "every value is 0" in one_line_error(prepare, empty, **fast())


def test_network_species_and_overlap_errors() -> None:
    a = counts_adata()
    msg = one_line_error(prepare, a, **fast(network=counts_network(["Xx1"], ["Yy1"], ["Zz1"], ["Ww1"])))
    assert "none of its 40 genes" in msg and "4 genes" in msg
    human = counts_network(["TFA", "TFB"], ["LIGA"], ["RECA"], ["GENE2"])
    msg = one_line_error(prepare, a, **fast(network=human))
    assert "look mouse" in msg and "human network" in msg


def test_missing_coordinates_labels_and_sections() -> None:
    a = counts_adata()
    nospace = a.copy()
    nospace.obsm["coords"] = nospace.obsm.pop("spatial")
    msg = one_line_error(prepare, nospace, **fast())
    assert "no spatial coordinates" in msg and "coords" in msg and "--spatial-key" in msg
    assert prepare(nospace, **fast(spatial_key="coords")).obsm["coords"].shape == (a.n_obs, 2)
    msg = one_line_error(prepare, a, **fast(cluster_key="truht"))
    assert "obs has no column 'truht'" in msg and "truth" in msg
    msg = one_line_error(prepare, a, **fast(section_key="sections"))
    assert "--section-key" in msg


def test_unlabeled_cells_form_a_type_or_are_dropped() -> None:
    a = counts_adata()
    lab = a.obs["truth"].astype(object)
    lab.iloc[:10] = np.nan
    a.obs["truth"] = lab
    out = prepare(a, **fast())
    assert (out.obs["cell_type"] == "unlabeled").sum() == 10
    out = prepare(a, **fast(drop_unlabeled=True))
    assert out.n_obs == a.n_obs - 10 and "unlabeled" not in set(out.obs["cell_type"])
    # float ids with NaN (as pandas reads an integer column with gaps) and R's "NA" strings
    a.obs["ids"] = np.where(a.obs["truth"].isna(), np.nan, (a.obs["truth"] == "B").astype(float) + 1.0)
    a.obs["cell_type"] = np.where(a.obs["truth"].isna(), "NA", a.obs["truth"].astype(str))
    out = prepare(a, **fast(cluster_key="ids"))
    assert sorted(set(out.obs["cell_type"])) == ["1", "2", "unlabeled"]
    assert any("replaced" in n for n in out.uns["spacetravlr_prep"]["notes"])
    out = prepare(a, **fast(cluster_key=None))  # the existing obs['cell_type'] is used
    assert sorted(set(out.obs["cell_type"])) == ["A", "B", "unlabeled"]
    assert "--leiden" in one_line_error(prepare, a, **fast(leiden=True))


# ---------------------------------------------------------------------------------------------------
# the program
# ---------------------------------------------------------------------------------------------------


def test_cli_leiden_umap_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from spacetravlr_py.cli.main import main
    from spacetravlr_py.io.anndata import load_tissue
    from spacetravlr_py.io.network import write_network

    a = counts_adata(n=300)
    src = tmp_path / "raw.h5ad"
    a.write_h5ad(src)
    write_network(counts_network(), tmp_path / "net", "mouse")
    dst = tmp_path / "out" / "prepped.h5ad"
    code = main(["prep", str(src), "-o", str(dst), "--network", str(tmp_path / "net"), "--resolution", "0.3",
                 "--n-top-genes", "20"])
    out = capsys.readouterr().out
    assert code == 0, out
    for step in ("checks", "normalise", "genes", "PCA", "Leiden", "UMAP", "impute", "coordinates"):
        assert f"prep: {step}" in out
    assert "peak memory" in out and "cell types:" in out
    t = load_tissue(dst, layer="imputed_count", cluster_annot="cell_type")
    assert t.umap is not None and 2 <= t.n_clusters <= 10
    p = ad.read_h5ad(dst)
    # Leiden recovers the two planted types (adjusted Rand index)
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(p.obs["truth"], p.obs["cell_type"]) > 0.5
    assert set(COUNT_TFS) <= set(p.var_names)


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from spacetravlr_py.cli.main import main

    assert main(["prep", str(tmp_path / "missing.h5ad"), "-o", str(tmp_path / "o.h5ad")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "file not found" in err and err.startswith("spacetravlr prep: error:")
    a = counts_adata()
    a.X = sp.csr_matrix(a.X.toarray() * 0.5)
    src = tmp_path / "half.h5ad"
    a.write_h5ad(src)
    assert main(["prep", str(src), "-o", str(tmp_path / "o.h5ad"), "--cluster-key", "truth"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "non-integer" in err
    assert not (tmp_path / "o.h5ad").exists()
    assert main(["prep", str(src), "-o", str(src)]) == 2
    assert "overwrite the input" in capsys.readouterr().err


def test_cli_help_is_fast_and_lists_examples(capsys: pytest.CaptureFixture[str]) -> None:
    import subprocess
    import sys

    from spacetravlr_py.cli.prep import main

    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "--section-key" in out and "--network" in out
    code = subprocess.run([sys.executable, "-c", "import sys; from spacetravlr_py.cli.prep import main; "
                           "sys.argv=['x','--help']; main()"], capture_output=True).returncode
    assert code == 0
    r = subprocess.run([sys.executable, "-c", "import spacetravlr_py.cli.prep, spacetravlr_py.prep, sys; "
                        "print(any(m.startswith(('scanpy', 'sklearn', 'numba')) for m in sys.modules))"],
                       capture_output=True, text=True)
    assert r.stdout.strip() == "False"


# ---------------------------------------------------------------------------------------------------
# real data
# ---------------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.realdata
def test_real_starmap_prepares_and_trains(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from spacetravlr_py.cli.main import main
    from spacetravlr_py.io.network import write_network
    from spacetravlr_py.io.network_build import build_network

    src = shared_path("real", "starmap_visual_cortex_1020.h5ad")
    net = build_network(shared_path("grn", "mouse_base_grn.parquet"), shared_path("lr", "cellchat_mouse.csv"),
                        species="mouse")
    write_network(net, tmp_path / "net", "mouse")
    dst = tmp_path / "starmap.h5ad"
    assert main(["prep", str(src), "-o", str(dst), "--cluster-key", "cluster_name", "--drop-unlabeled",
                 "--network", str(tmp_path / "net")]) == 0
    out = capsys.readouterr().out
    assert "16 from obs['cluster_name']" in out and "→ 15" in out
    p = ad.read_h5ad(dst)
    assert p.n_obs == 1207 and p.n_vars == 1020
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(["--h5ad", str(dst), "--network-dir", str(tmp_path / "net"), "--max-genes", "5",
                     "--output-dir", str(tmp_path / "run"), "--plain"])
    log = capsys.readouterr().out
    assert code == 0, log
    assert len(list((tmp_path / "run").glob("*_betadata.feather"))) >= 4, log


def test_missing_scanpy_names_the_prep_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from spacetravlr_py.prep._deps import require_scanpy

    monkeypatch.setitem(sys.modules, "scanpy", None)
    from spacetravlr_py.errors import SpaceTravLRError

    with pytest.raises(SpaceTravLRError) as ei:
        require_scanpy()
    msg = str(ei.value)
    assert "spacetravlr-py[prep]" in msg and "\n" not in msg


# ---------------------------------------------------------------------------------------------
# kNN graph: exact below the switch, pynndescent above
# ---------------------------------------------------------------------------------------------


def test_knn_transformer_choice_and_graph() -> None:
    """The approximate transformer returns a csr_matrix (scanpy 1.11 needs ``getnnz``) holding each
    cell's exact neighbours on well-separated data."""
    from sklearn.neighbors import NearestNeighbors

    from spacetravlr_py.prep import knn

    assert knn.transformer_for(knn.APPROX_ABOVE_CELLS, 15, 0) == "sklearn"
    tr = knn.transformer_for(knn.APPROX_ABOVE_CELLS + 1, 15, 0)
    assert isinstance(tr, knn.NNDescentCSR) and tr.get_params()["n_neighbors"] == 15
    rng = np.random.default_rng(0)
    X = np.repeat(rng.normal(scale=100.0, size=(40, 5)), 10, axis=0) + rng.normal(scale=0.01, size=(400, 5))
    D = knn.NNDescentCSR(n_neighbors=10, random_state=0).fit_transform(X)
    assert isinstance(D, sp.csr_matrix) and D.shape == (400, 400)
    assert np.all(D.getnnz(axis=1) >= 9)
    _, idx = NearestNeighbors(n_neighbors=10).fit(X).kneighbors(X)  # includes each point itself
    for i in range(0, 400, 37):
        assert set(idx[i]) <= set(D.indices[D.indptr[i]:D.indptr[i + 1]]) | {i}


@pytest.mark.slow
def test_prepare_with_the_approximate_knn_graph(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """Above the switch, Leiden on the pynndescent graph recovers the planted types as the exact one does."""
    from sklearn.metrics import adjusted_rand_score

    from spacetravlr_py.prep import knn

    monkeypatch.setattr(knn, "APPROX_ABOVE_CELLS", 100)
    a = counts_adata(n=300)
    out = prepare(a, compute_umap=False, verbose=True, resolution=0.3, n_top_genes=20)
    assert "approximate (pynndescent)" in capsys.readouterr().out
    assert adjusted_rand_score(out.obs["truth"], out.obs["cell_type"]) > 0.5


# ---------------------------------------------------------------------------------------------
# small Leiden clusters
# ---------------------------------------------------------------------------------------------


def _graph(edges: list[tuple[int, int, float]], n: int) -> sp.csr_matrix:
    r, c, w = zip(*edges)
    m = sp.csr_matrix((w, (r, c)), shape=(n, n))
    return (m + m.T).tocsr()


def test_small_clusters_join_their_most_connected_neighbour() -> None:
    from spacetravlr_py.prep.clusters import merge_small_clusters

    # clusters: a = 0..5 (6 cells), b = 6..9 (4 cells), tiny t = 10..11 (2 cells, tied mostly to b),
    # isolated i = 12 (1 cell, no edges)
    labels = np.array(["a"] * 6 + ["b"] * 4 + ["t"] * 2 + ["i"])
    edges = [(i, i + 1, 1.0) for i in range(5)] + [(6, 7, 1.0), (7, 8, 1.0), (8, 9, 1.0)]
    edges += [(10, 6, 0.9), (11, 7, 0.8), (10, 0, 0.3), (10, 11, 1.0)]
    new, n_merged = merge_small_clusters(labels, _graph(edges, 13), min_cells=3)
    assert n_merged == 2
    assert len(set(new[10:12])) == 1 and new[10] == new[6]  # t → b (1.7 vs 0.3)
    assert new[12] == new[0]  # isolated → the largest cluster (a, now 7 cells)
    # renumbered by decreasing size: b + t = 6, a + i = 7
    assert new[0] == "0" and new[6] == "1"
    same, none = merge_small_clusters(labels, _graph(edges, 13), min_cells=1)
    assert none == 0 and len(set(same)) == 4


def test_merging_stops_at_one_cluster() -> None:
    from spacetravlr_py.prep.clusters import merge_small_clusters

    labels = np.array(["x", "x", "y"])
    new, n = merge_small_clusters(labels, _graph([(0, 1, 1.0), (1, 2, 1.0)], 3), min_cells=10)
    assert n == 1 and set(new) == {"0"}


def test_prepare_merges_tiny_leiden_clusters(capsys: pytest.CaptureFixture[str]) -> None:
    a = counts_adata(n=300)
    out = prepare(a, compute_umap=False, verbose=True, resolution=8.0, n_top_genes=20, min_cluster_cells=25)
    sizes = out.obs["cell_type"].value_counts()
    assert sizes.min() >= 25
    assert "cells merged into their most connected neighbour" in capsys.readouterr().out
    assert list(out.obs["cell_type"].cat.categories) == [str(i) for i in range(len(sizes))]
    kept = prepare(a, compute_umap=False, verbose=False, resolution=8.0, n_top_genes=20, min_cluster_cells=1)
    assert kept.obs["cell_type"].nunique() > len(sizes)
    with pytest.raises(InputError, match="--min-cluster-cells 0"):
        prepare(a, verbose=False, min_cluster_cells=0)


# ---------------------------------------------------------------------------------------------------
# the pipeline's steps, one at a time
# ---------------------------------------------------------------------------------------------------


def test_prep_params_check_record_order_and_keep_genes() -> None:
    from spacetravlr_py.prep.pipeline import PrepParams

    p = PrepParams.from_kwargs(keep_genes=(g for g in ["Gene5", 7]), n_top_genes=10)
    assert p.keep_genes == ("Gene5", "7")  # a generator is read once, names as strings
    rec = p.as_record()
    assert list(rec)[-1] == "keep_genes" and rec["keep_genes"] == ["Gene5", "7"]
    assert list(rec)[:3] == ["layer", "skip_normalize", "allow_non_integer"] and rec["n_top_genes"] == 10
    for bad, needle in [({"n_top_genes": 0}, "--n-top-genes 0"), ({"target_sum": float("inf")}, "--target-sum"),
                        ({"resolution": 0.0}, "--resolution"), ({"min_cluster_cells": 0}, "--min-cluster-cells"),
                        ({"n_pcs": 1}, "--n-pcs 1"), ({"species": "rat"}, "unknown species 'rat'")]:
        assert needle in one_line_error(PrepParams(**bad).check)  # type: ignore[arg-type]


def test_prep_steps_labels_roles_and_coordinates() -> None:
    from spacetravlr_py.io.network import Network
    from spacetravlr_py.prep.pipeline import PrepParams, PrepReport, _apply_labels, _coordinates, _network_roles

    a = counts_adata(n=100)
    a.obs["lab"] = pd.Categorical(["x"] * 50 + [None] * 50)
    rep = PrepReport(n_cells_in=a.n_obs, n_genes_in=a.n_vars)
    kept = _apply_labels(a.copy(), "lab", PrepParams(drop_unlabeled=True), "toy", rep)
    assert kept.n_obs == 50 and rep.n_unlabeled == 50 and list(kept.obs[_keys.DEFAULT_CLUSTER_ANNOT].unique()) == ["x"]
    rep = PrepReport(n_cells_in=a.n_obs, n_genes_in=a.n_vars)
    both = _apply_labels(a.copy(), "lab", PrepParams(), "toy", rep)
    assert both.n_obs == 100 and "form the cell type 'unlabeled'" in rep.notes[0]

    net = Network.from_frame(counts_network(tfs=["Tfa", "Liga"]))  # Liga is both a TF and a ligand
    roles = dict(zip(a.var_names, _network_roles(a.var_names, net)))
    assert roles["Tfa"] == "TF" and roles["Liga"] == "TF,ligand" and roles["Reca"] == "receptor"
    assert roles["Gene9"] == "" and set(_network_roles(a.var_names, None)) == {""}

    # grid of spacing 10 → median nearest-neighbour distance 15 after rescaling; the original is kept
    xy = np.asarray(a.obsm["spatial"]).copy()
    rep = PrepReport(n_cells_in=a.n_obs, n_genes_in=a.n_vars)
    detail = _coordinates(a, "spatial", PrepParams(), "toy", rep)
    assert rep.median_nn_after == pytest.approx(15.0) and "→ 15" in detail
    np.testing.assert_array_equal(a.obsm[_keys.SPATIAL_UNSCALED_KEY], xy)
    np.testing.assert_allclose(a.obsm["spatial"], xy * rep.scale_factor)

"""matplotlib figures (scanpy conventions: ``ax=``, ``show=``, ``save=``, returns the Axes / Figure) and the
files :func:`spacetravlr_py.report.write_field_outputs` leaves next to a perturbation."""

from __future__ import annotations

import os

os.environ["MPLBACKEND"] = "Agg"  # before matplotlib is imported anywhere in this module

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from builders import clustered_tissue
from spacetravlr_py import plotting
from spacetravlr_py.io.anndata import Tissue
from spacetravlr_py.perturb.propagate import PerturbResult
from spacetravlr_py.report import save_field, write_field_outputs
from spacetravlr_py.transitions import TransitionField, grid_field, transition_field

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _is_png(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 1000 and path.read_bytes()[:8] == PNG_SIGNATURE


@pytest.fixture(autouse=True)
def _close_figures():
    plt.close("all")
    yield
    plt.close("all")


def _result(t: Tissue, seed: int = 1) -> PerturbResult:
    rng = np.random.default_rng(seed)
    delta = np.zeros_like(t.expression)
    scope = t.clusters == 0
    # move cluster 0 towards cluster 1's mean expression; knock the target gene G0 out
    delta[scope] = (t.expression[t.clusters == 1].mean(0) - t.expression[scope].mean(0)) * 0.2
    delta[scope] += 0.01 * rng.normal(size=(int(scope.sum()), t.n_genes))
    delta[:, 0] = -t.expression[:, 0]
    return PerturbResult(tissue=t, expression=t.expression + delta, delta=delta, targets=["G0"], desired=[0.0],
                         scope=np.ones(t.n_cells, dtype=bool), n_propagation=3)


@pytest.fixture(scope="module")
def field_and_tissue() -> tuple[TransitionField, Tissue, PerturbResult]:
    t = clustered_tissue()
    r = _result(t)
    assert t.umap is not None
    f = transition_field(t.expression, r.delta, t.umap, n_neighbors=30)
    assert isinstance(f, TransitionField)
    return f, t, r


# ------------------------------------------------------------------------------------------------
# transition_field
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["quiver", "stream"])
def test_transition_field_draws_into_given_ax(field_and_tissue, kind: str, tmp_path: Path) -> None:
    f, t, _ = field_and_tissue
    fig, ax = plt.subplots()
    n_before = len(ax.collections)
    out = plotting.transition_field(t.umap, f.grid, clusters=t.clusters, cluster_labels=t.cluster_labels,
                                    kind=kind, ax=ax, title="KO")
    assert out is ax
    assert len(ax.collections) > n_before + 3  # one scatter per cluster + arrows / streamlines
    assert ax.get_title() == "KO" and ax.get_xlabel() == "UMAP1"
    if kind == "quiver":
        from matplotlib.quiver import Quiver

        q = [c for c in ax.collections if isinstance(c, Quiver)]
        assert len(q) == 1 and q[0].N == int(f.grid.mask.sum())
    assert [h.get_text() for h in ax.get_legend().get_texts()] == t.cluster_labels
    assert plt.fignum_exists(fig.number)  # a caller's figure is never closed
    # save= with a caller's ax writes the whole figure and leaves it open
    p = tmp_path / f"given_{kind}.png"
    plotting.transition_field(t.umap, f.grid, kind=kind, ax=ax, save=p)
    assert _is_png(p) and plt.fignum_exists(fig.number)


@pytest.mark.parametrize("kind", ["quiver", "stream"])
def test_transition_field_save_and_show_false(field_and_tissue, kind: str, tmp_path: Path) -> None:
    f, t, _ = field_and_tissue
    p = tmp_path / "sub" / f"field_{kind}.png"
    ax = plotting.transition_field(t.coords, f.grid, clusters=t.clusters, kind=kind, basis="spatial", save=p,
                                   show=False)
    assert _is_png(p)
    assert not plt.fignum_exists(ax.figure.number)  # own figure closed after saving
    assert ax.get_xlabel() == "spatial1"
    ax2 = plotting.transition_field(t.umap, f.grid, kind=kind, show=False)
    assert not plt.fignum_exists(ax2.figure.number)
    ax3 = plotting.transition_field(t.umap, f.grid, kind=kind)  # show=None: left open for the caller
    assert plt.fignum_exists(ax3.figure.number)
    assert list(tmp_path.rglob("*.tmp")) == []


def test_transition_field_string_clusters_and_edge_cases(field_and_tissue) -> None:
    f, t, _ = field_and_tissue
    labels = np.array(t.cluster_labels)[t.clusters]
    ax = plotting.transition_field(t.umap, f.grid, clusters=labels, show=False)
    assert sorted(h.get_text() for h in ax.get_legend().get_texts()) == sorted(t.cluster_labels)
    import pandas as pd

    ax = plotting.transition_field(t.umap, f.grid, clusters=pd.Categorical(labels), show=False, legend=False)
    assert ax.get_legend() is None
    with pytest.raises(ValueError, match="kind"):
        plotting.transition_field(t.umap, f.grid, kind="arrows")
    assert plt.get_fignums() == []  # nothing left open by the refused call
    with pytest.raises(ValueError, match="clusters"):
        plotting.transition_field(t.umap, f.grid, clusters=t.clusters[:5], show=False)
    # an all-zero field (zero Δ) and a fully masked grid still draw
    zero = grid_field(t.umap, np.zeros((t.n_cells, 2)))
    for kind in ("quiver", "stream"):
        plotting.transition_field(t.umap, zero, kind=kind, show=False)
    masked = grid_field(t.umap, np.ones((t.n_cells, 2)), min_cells=10**6)
    for kind in ("quiver", "stream"):
        plotting.transition_field(t.umap, masked, kind=kind, show=False)


# ------------------------------------------------------------------------------------------------
# spatial_delta
# ------------------------------------------------------------------------------------------------


def test_spatial_delta(field_and_tissue, tmp_path: Path) -> None:
    _, t, r = field_and_tissue
    fig, ax = plt.subplots()
    out = plotting.spatial_delta(t.coords, r.delta, var_names=t.var_names, gene="G3", ax=ax, title="G3")
    assert out is ax and ax.get_title() == "G3"
    vals = ax.collections[0].get_array()
    np.testing.assert_allclose(np.asarray(vals), r.delta[:, 3])
    assert plt.fignum_exists(fig.number)
    p = tmp_path / "delta.png"
    ax2 = plotting.spatial_delta(t.coords, r.delta, scope=t.clusters == 0, save=p, show=False)
    assert _is_png(p) and not plt.fignum_exists(ax2.figure.number)
    np.testing.assert_allclose(np.asarray(ax2.collections[0].get_array()), np.abs(r.delta).mean(1))
    assert len(ax2.collections) == 2  # values + outline of the perturbed cells
    with pytest.raises(ValueError, match="var_names"):
        plotting.spatial_delta(t.coords, r.delta, gene="G3")
    with pytest.raises(ValueError, match="not in var_names"):
        plotting.spatial_delta(t.coords, r.delta, var_names=t.var_names, gene="Nope")
    with pytest.raises(ValueError, match="does not match"):
        plotting.spatial_delta(t.coords[:3], r.delta)
    assert plt.get_fignums() == [fig.number]


# ------------------------------------------------------------------------------------------------
# perturbation_summary
# ------------------------------------------------------------------------------------------------


def test_perturbation_summary(field_and_tissue, tmp_path: Path) -> None:
    _, t, r = field_and_tissue
    p = tmp_path / "summary.png"
    fig = plotting.perturbation_summary(r, n_top=5, save=p, show=False)
    assert _is_png(p) and not plt.fignum_exists(fig.number)
    a1, a2 = fig.axes[:2]
    top = [g for g, _ in r.top_genes(5)]
    assert [lab.get_text() for lab in a1.get_yticklabels()] == top[::-1]
    assert "G0" not in top  # the target itself is left out
    assert [lab.get_text() for lab in a2.get_xticklabels()] == t.cluster_labels
    heights = [b.get_height() for b in a2.patches]
    np.testing.assert_allclose(heights, list(r.cluster_impact().values()))
    # into a caller's two axes
    fig2, axs = plt.subplots(1, 2)
    out = plotting.perturbation_summary(r, ax=axs, title="custom")
    assert out is fig2 and plt.fignum_exists(fig2.number)
    assert "custom" in axs[0].get_title()
    with pytest.raises(ValueError, match="two Axes"):
        plotting.perturbation_summary(r, ax=[axs[0]])
    # nothing changed: still a figure
    r0 = PerturbResult(tissue=t, expression=t.expression, delta=np.zeros_like(t.expression), targets=["G0"],
                       desired=[1.0], scope=np.ones(t.n_cells, dtype=bool), n_propagation=1)
    fig3 = plotting.perturbation_summary(r0, show=False)
    assert not plt.fignum_exists(fig3.number)


# ------------------------------------------------------------------------------------------------
# report: files next to the exported expression
# ------------------------------------------------------------------------------------------------


def test_write_field_outputs(tmp_path: Path) -> None:
    t = clustered_tissue(n=150, seed=3)
    r = _result(t, seed=4)
    paths = write_field_outputs(r, tmp_path / "out" / "g0_ko", n_neighbors=20, grid_bins=8)
    expected = {"field": "g0_ko_field.npz", "umap_field_png": "g0_ko_umap_field.png",
                "spatial_field": "g0_ko_spatial_field.npz", "spatial_field_png": "g0_ko_spatial_field.png",
                "spatial_delta_png": "g0_ko_spatial_delta.png", "summary_png": "g0_ko_summary.png"}
    assert {k: Path(v).name for k, v in paths.items()} == expected
    for k, v in paths.items():
        assert Path(v).is_file(), k
        if k.endswith("_png"):
            assert _is_png(Path(v)), k
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(expected.values())
    assert plt.get_fignums() == []
    # the npz holds the field exactly as computed
    z = np.load(paths["field"])
    f = transition_field(t.expression, r.delta, t.umap, n_neighbors=20, nx=8)
    assert isinstance(f, TransitionField)
    np.testing.assert_array_equal(z["vectors"], f.vectors)
    P = f.graph.to_csr()
    np.testing.assert_array_equal(z["P_indptr"], P.indptr)
    np.testing.assert_array_equal(z["P_data"], P.data)
    np.testing.assert_array_equal(z["grid_mask"], f.grid.mask)
    params = json.loads(str(z["params"]))
    assert params["n_neighbors"] == 20 and params["nx"] == 8
    # stream kind, no UMAP: the UMAP outputs are skipped
    t.umap = None
    paths2 = write_field_outputs(r, tmp_path / "nou" / "x", n_neighbors=10, kind="stream", spatial=True)
    assert set(paths2) == {"spatial_field", "spatial_field_png", "spatial_delta_png", "summary_png"}
    assert all(_is_png(Path(v)) for k, v in paths2.items() if k.endswith("_png"))


def test_save_field_roundtrip(field_and_tissue, tmp_path: Path) -> None:
    import scipy.sparse as sp

    f, _, _ = field_and_tissue
    p = save_field(f, tmp_path / "f.npz")
    z = np.load(p)
    n = f.vectors.shape[0]
    P = sp.csr_matrix((z["P_data"], z["P_indices"], z["P_indptr"]), shape=(n, n))
    assert abs(P - f.graph.to_csr()).max() == 0
    np.testing.assert_array_equal(z["embedding"], f.embedding)
    np.testing.assert_array_equal(z["grid_u"], f.grid.u)  # NaN where masked
    assert set(json.loads(str(z["params"]))) >= {"n_neighbors", "temperature", "remove_null", "nx", "ny",
                                                  "vector_scale", "min_cells"}

"""Splash (SPEC §6) and the Betabase that feeds it (SPEC §5.4).

* the worked vector of SPEC §6, cluster rows, cell-id rows, unmatched cells, ``received_tfl`` default,
  ``beta_scale_factor`` on interaction terms only, ``beta_cap``;
* the materialised splash agrees with the fused ``propagate`` kernel to 1e-12 on random betabases;
* Betabase: run folders, the Python reference's parquet files, shared row mappings, modulator indices,
  feather / parquet / csv.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from builders import beta_frame, make_tissue
from conftest import shared_path
from spacetravlr_py._keys import MIN_EXPRESSION
from spacetravlr_py.betadata.betabase import Betabase
from spacetravlr_py.errors import InputError
from spacetravlr_py.io.anndata import Tissue
from spacetravlr_py.io.betadata import betadata_path, write_betadata
from spacetravlr_py.naming import LR, TF, TFL
from spacetravlr_py.perturb import LigandTable, _kernels, splash
from spacetravlr_py.perturb.splash import filtered

LOGGER = "spacetravlr_py.betadata"


# ---------------------------------------------------------------------------------------------
# the worked vector of SPEC §6
# ---------------------------------------------------------------------------------------------

GENES = ["A", "B", "C", "D", "Y"]
G_WORKED = np.array([[1.5, 0.8, 3.0, 2.0, 1.0],
                     [0.0, 1.2, 1.0, 0.0, 1.0]])
MODS = ["A", "B", "C$D", "C#A"]
COEFS = np.array([[0.5, -0.3, 0.2, 0.1],
                  [0.8, 0.1, -0.1, 0.4]])
RL_C = np.array([3.0, 1.0])
RLT_C = np.array([2.0, 0.5])
EXPECTED = np.array([[0.7, -0.3, 0.55, 0.6],
                     [1.0, 0.1, 0.0, 0.0]])


def worked(row_kind: str = "CellID") -> tuple[Betabase, LigandTable, LigandTable]:
    if row_kind == "CellID":
        tissue = make_tissue(G_WORKED, GENES, obs_names=["cell0", "cell1"])
        frame = beta_frame("Y", ["cell0", "cell1"], MODS, COEFS, row_kind="CellID")
    else:  # one cluster per cell, rows listed in the opposite order to check the lookup
        tissue = make_tissue(G_WORKED, GENES, clusters=np.array([0, 1]), labels=["n0", "n1"])
        frame = beta_frame("Y", ["n1", "n0"], MODS, COEFS[::-1])
    bb = Betabase([frame], tissue)
    ci = GENES.index("C")
    rl = LigandTable.from_columns(RL_C[:, None], np.array([ci]), len(GENES))
    rlt = LigandTable.from_columns(RLT_C[:, None], np.array([ci]), len(GENES))
    return bb, rl, rlt


@pytest.mark.parametrize("row_kind", ["CellID", "Cluster"])
def test_worked_vector_of_spec(row_kind: str) -> None:
    bb, rl, rlt = worked(row_kind)
    out = splash(bb, "Y", G_WORKED, rl, rlt)
    assert out.shape == (2, 4)
    np.testing.assert_allclose(out, EXPECTED, rtol=0, atol=1e-15)
    df = splash(bb, "Y", G_WORKED, rl, rlt, as_frame=True)
    assert list(df.columns) == ["A", "B", "C", "D"]
    assert list(df.index) == list(bb.tissue.obs_names)


def test_worked_vector_scale_and_cap() -> None:
    bb, rl, rlt = worked()
    out = splash(bb, "Y", G_WORKED, rl, rlt, beta_scale_factor=2.0, beta_cap=0.5)
    np.testing.assert_allclose(out[:, 0], [0.5, 0.5], atol=0)
    # s = 2 without a cap: TF terms keep their beta, interaction terms double
    raw = splash(bb, "Y", G_WORKED, rl, rlt, beta_scale_factor=2.0)
    np.testing.assert_allclose(raw[:, 1], [-0.3, 0.1], atol=1e-15)  # B: TF only → not scaled
    np.testing.assert_allclose(raw[:, 0], [0.5 + 2 * 0.1 * 2.0, 0.8 + 2 * 0.4 * 0.5], atol=1e-15)
    np.testing.assert_allclose(raw[:, 2:], 2 * EXPECTED[:, 2:], atol=1e-15)
    # the cap clamps both signs
    capped = splash(bb, "Y", G_WORKED, rl, rlt, beta_cap=0.2)
    np.testing.assert_allclose(capped, np.clip(EXPECTED, -0.2, 0.2), atol=1e-15)
    with pytest.raises(ValueError, match="beta_cap"):
        splash(bb, "Y", G_WORKED, rl, rlt, beta_cap=0.0)


def test_received_tfl_defaults_to_received() -> None:
    bb, rl, _ = worked()
    a = splash(bb, "Y", G_WORKED, rl)
    b = splash(bb, "Y", G_WORKED, rl, rl)
    np.testing.assert_array_equal(a, b)
    # with RLt = RL the TF derivative of C#A uses RL: cell 0 A = 0.5 + 0.1·3
    assert a[0, 0] == pytest.approx(0.8, abs=1e-15)


def test_ligand_tables_with_different_columns_are_aligned() -> None:
    bb, _, _ = worked()
    ci = GENES.index("C")
    # RL lists C and D, RLt only C: D must not disturb the lookup of C
    rl = LigandTable.from_columns(np.column_stack([np.array([9.0, 9.0]), RL_C]), np.array([GENES.index("D"), ci]),
                                  len(GENES))
    rlt = LigandTable.from_columns(RLT_C[:, None], np.array([ci]), len(GENES))
    np.testing.assert_allclose(splash(bb, "Y", G_WORKED, rl, rlt), EXPECTED, atol=1e-15)
    # from a DataFrame keyed by gene (unknown columns ignored)
    rl_df = LigandTable.from_frame(pd.DataFrame({"C": RL_C, "notagene": [5.0, 5.0]}), GENES)
    np.testing.assert_allclose(splash(bb, "Y", G_WORKED, rl_df, rlt), EXPECTED, atol=1e-15)


def test_expression_at_or_below_min_expression_counts_as_zero() -> None:
    bb, rl, rlt = worked()
    G = G_WORKED.copy()
    G[1, 3] = 1e-10  # D in cell 1: still "not expressed" → no receptor derivative, no ligand term
    np.testing.assert_allclose(splash(bb, "Y", G, rl, rlt), EXPECTED, atol=1e-15)
    G[1, 3] = -0.5
    np.testing.assert_allclose(splash(bb, "Y", G, rl, rlt), EXPECTED, atol=1e-15)


def test_cluster_rows_map_each_cell_to_its_cluster() -> None:
    rng = np.random.default_rng(3)
    n = 40
    clusters = rng.integers(0, 3, n)
    X = rng.uniform(0.1, 2, (n, 3))
    t = make_tissue(X, ["T1", "T2", "Y"], clusters=clusters, labels=["a", "b", "c"])
    rows = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    f = beta_frame("Y", ["c", "a", "b"], ["T1", "T2"], rows[[2, 0, 1]])
    bb = Betabase([f], t)
    rl = LigandTable.from_columns(np.zeros((n, 0)), np.zeros(0, np.int64), 3)
    out = splash(bb, "Y", X, rl)
    np.testing.assert_array_equal(out, rows[clusters])


def test_cluster_rows_missing_a_cluster_is_a_clear_error() -> None:
    t = make_tissue(np.ones((4, 2)), ["T1", "Y"], clusters=np.array([0, 1, 2, 2]), labels=["a", "b", "c"])
    f = beta_frame("Y", ["a", "b"], ["T1"], np.ones((2, 1)))
    with pytest.raises(InputError, match=r"no row for cluster\(s\) c") as e:
        Betabase([f], t)
    assert "\n" not in str(e.value)


def test_cellid_rows_in_any_order_and_unmatched_cells_get_zero_rows(caplog: pytest.LogCaptureFixture) -> None:
    n = 6
    X = np.arange(1, 1 + 3 * n, dtype=float).reshape(n, 3)
    t = make_tissue(X, ["T1", "T2", "Y"])
    ids = ["c5", "c0", "c3", "c2"]  # c1 and c4 have no row
    coefs = np.array([[5.0, 50.0], [0.5, 0.05], [3.0, 30.0], [2.0, 20.0]])
    f = beta_frame("Y", ids, ["T1", "T2"], coefs, row_kind="CellID")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        bb = Betabase([f], t)
    assert any("2 cells" in r.getMessage() and "zero betas" in r.getMessage() for r in caplog.records)
    assert bb.unmatched_cells == {"Y": 2}
    rl = LigandTable.from_columns(np.zeros((n, 0)), np.zeros(0, np.int64), 3)
    out = splash(bb, "Y", X, rl)
    expect = np.zeros((n, 2))
    for r, c in enumerate(ids):
        expect[int(c[1:])] = coefs[r]
    np.testing.assert_array_equal(out, expect)


def test_cellid_rows_of_another_dataset_are_an_error() -> None:
    t = make_tissue(np.ones((3, 2)), ["T1", "Y"])
    f = beta_frame("Y", ["x", "y", "z"], ["T1"], np.ones((3, 1)), row_kind="CellID")
    with pytest.raises(InputError, match="another dataset"):
        Betabase([f], t)


def test_modulators_and_targets_not_in_the_dataset_are_dropped_with_a_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    t = make_tissue(np.ones((2, 3)), ["T1", "L", "Y"])
    f = beta_frame("Y", ["k0"], ["T1", "Zzz", "L$Nope", "L#T1"], np.ones((1, 4)))
    g = beta_frame("Ghost", ["k0"], ["T1"], np.ones((1, 1)))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        bb = Betabase([f, g], t)
    msgs = " ".join(r.getMessage() for r in caplog.records)
    assert "Zzz" in msgs and "L$Nope" in msgs and "Ghost" in msgs
    assert bb.genes == ["Y"]
    gm = bb["Y"]
    assert gm.dropped == ["Zzz", "L$Nope"]
    assert gm.coefs.shape == (1, 2)


# ---------------------------------------------------------------------------------------------
# materialised splash == fused propagate kernel
# ---------------------------------------------------------------------------------------------


def random_betabase(rng: np.random.Generator, n_cells: int = 50, n_genes: int = 14, n_models: int = 9
                    ) -> tuple[Betabase, np.ndarray, LigandTable]:
    genes = [f"g{i}" for i in range(n_genes)]
    obs = [f"cell{i}" for i in range(n_cells)]
    X = rng.uniform(0, 3, (n_cells, n_genes))
    X[rng.random(X.shape) < 0.3] = 0.0  # receptors off in some cells
    clusters = rng.integers(0, 3, n_cells)
    t = make_tissue(X, genes, obs_names=obs, clusters=clusters, labels=["a", "b", "c"])
    ligs = [f"g{i}" for i in range(4)]
    frames = []
    for k, target in enumerate(rng.choice(genes, n_models, replace=False)):
        others = [g for g in genes if g != target]
        mods: set[str] = set(rng.choice(others, rng.integers(1, 4), replace=False).tolist())
        for _ in range(rng.integers(0, 4)):
            lg = str(rng.choice([g for g in ligs if g != target] or others))
            rc = str(rng.choice([g for g in others if g != lg]))
            mods.add(f"{lg}${rc}")
        for _ in range(rng.integers(0, 3)):
            lg = str(rng.choice([g for g in ligs if g != target] or others))
            tf = str(rng.choice([g for g in others if g != lg]))
            mods.add(f"{lg}#{tf}")
        names = sorted(mods)
        if k % 3 == 0:  # per-cell rows, a few cells missing
            ids = [o for o in obs if rng.random() > 0.1]
            coefs = rng.normal(size=(len(ids), len(names)))
            frames.append(beta_frame(str(target), ids, names, coefs, row_kind="CellID"))
        else:
            coefs = rng.normal(size=(3, len(names)))
            coefs[rng.random(coefs.shape) < 0.15] = 0.0
            frames.append(beta_frame(str(target), ["a", "b", "c"], names, coefs))
    bb = Betabase(frames, t)
    rl = LigandTable.from_columns(rng.uniform(0, 2, (n_cells, len(ligs))), np.arange(len(ligs)), n_genes)
    return bb, X, rl


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("cap", [None, 0.7])
def test_materialised_splash_equals_fused_propagate(seed: int, cap: float | None) -> None:
    rng = np.random.default_rng(seed)
    bb, X, rl = random_betabase(rng)
    scale = 1.7
    n, ng = X.shape
    delta = rng.normal(size=(n, ng))
    expect = np.zeros((n, ng))
    for gm in bb.models:
        sp_ = splash(bb, gm.gene, X, rl, beta_scale_factor=scale, beta_cap=cap)
        expect[:, gm.gene_index] = (sp_ * delta[:, gm.modulator_genes]).sum(axis=1)
    f = bb.flat()
    out = np.full((n, ng), np.nan)
    max_mods = int(np.diff(f["mod_ptr"]).max())
    _kernels.propagate(X, rl.values, rl.values, rl.col, delta, f["target"], f["coefs"], f["coef_ptr"],
                       f["n_cols"], f["mapping_id"], f["mappings"], f["kind_ptr"], f["coef_col"], f["a"], f["b"],
                       f["slot_a"], f["slot_b"], f["mods"], f["mod_ptr"], scale, 0.0 if cap is None else cap,
                       max_mods, MIN_EXPRESSION, out)
    np.testing.assert_allclose(out, expect, rtol=0, atol=1e-12)
    untrained = np.setdiff1d(np.arange(ng), f["target"])
    assert untrained.size and not out[:, untrained].any()


@pytest.mark.parametrize("n_cells", [50, 300])  # one partial block; several blocks of cells
def test_splash_matches_an_independent_dense_formula(n_cells: int) -> None:
    rng = np.random.default_rng(11)
    bb, X, rl = random_betabase(rng, n_cells=n_cells)
    G = filtered(X)
    mapping_rows = bb.mappings
    for gm in bb.models:
        rows = mapping_rows[gm.mapping]
        U = {g: u for u, g in enumerate(gm.modulator_genes.tolist())}
        expect = np.zeros((X.shape[0], len(U)))
        for i in range(X.shape[0]):
            if rows[i] < 0:
                continue
            beta = gm.coefs[rows[i]]
            for j, name in enumerate(m for m in gm.frame.modulators if m not in gm.dropped):
                if "$" in name:
                    lg, rc = (bb.tissue.gene_index[x] for x in name.split("$"))
                    if G[i, rc] > 0:
                        expect[i, U[rc]] += 0.5 * beta[j] * rl.values[i, rl.col[lg]]
                    expect[i, U[lg]] += 0.5 * beta[j] * G[i, rc]
                elif "#" in name:
                    lg, tf = (bb.tissue.gene_index[x] for x in name.split("#"))
                    expect[i, U[lg]] += 0.5 * beta[j] * G[i, tf]
                    expect[i, U[tf]] += 0.5 * beta[j] * rl.values[i, rl.col[lg]]
                else:
                    expect[i, U[bb.tissue.gene_index[name]]] += beta[j]
        np.testing.assert_allclose(splash(bb, gm.gene, X, rl, beta_scale_factor=0.5), expect, atol=1e-13)


def test_splash_same_numbers_for_any_memory_layout() -> None:
    """Column-major inputs are the fast path; row-major and strided views give identical results."""
    rng = np.random.default_rng(5)
    bb, X, rl = random_betabase(rng, n_cells=300)
    rl_f = LigandTable(np.asfortranarray(rl.values), rl.col)
    wide = np.zeros((X.shape[0], 2 * X.shape[1]))
    wide[:, ::2] = X
    for gm in bb.models:
        ref = splash(bb, gm.gene, np.ascontiguousarray(X), rl, beta_cap=0.9)
        assert isinstance(ref, np.ndarray) and ref.flags.f_contiguous
        for G, table in ((np.asfortranarray(X), rl_f), (wide[:, ::2], rl)):
            np.testing.assert_array_equal(splash(bb, gm.gene, G, table, beta_cap=0.9), ref)


# ---------------------------------------------------------------------------------------------
# Betabase
# ---------------------------------------------------------------------------------------------


def test_modulator_names_resolve_to_gene_indices() -> None:
    genes = ["Y", "T1", "L", "R", "T2"]
    t = make_tissue(np.ones((3, 5)), genes)
    f = beta_frame("Y", ["k0"], ["T1", "L$R", "L#T2"], np.ones((1, 3)))
    bb = Betabase([f], t)
    gm = bb["Y"]
    assert gm.gene_index == 0
    assert gm.kind.tolist() == [TF, LR, TFL]
    assert gm.a.tolist() == [1, 2, 2]
    assert gm.b.tolist() == [-1, 3, 4]
    assert gm.modulator_genes.tolist() == [1, 2, 3, 4]
    assert bb.ligands().tolist() == [2]
    assert bb.roles() == {"tf": {"T1", "T2"}, "ligand": {"L"}, "receptor": {"R"}}
    assert bb.modulator_genes() == {"T1", "L", "R", "T2"}
    assert "Y" in bb and "T1" not in bb and len(bb) == 1


@pytest.fixture(scope="module")
def syn_small():
    from spacetravlr_py.datasets import synthetic_tissue

    return synthetic_tissue(n_cells=300, seed=4)


def _syn_tissue(syn) -> Tissue:
    from spacetravlr_py.io.anndata import load_tissue

    return load_tissue(syn.adata)


@pytest.mark.parametrize("ext", ["feather", "parquet", "csv"])
def test_betabase_reads_every_format_identically(tmp_path, syn_small, ext: str) -> None:
    tissue = _syn_tissue(syn_small)
    ref_dir = tmp_path / "ref"
    for g, f in syn_small.betas.items():
        write_betadata(betadata_path(ref_dir, g), f)
    ref = Betabase.from_dir(ref_dir, tissue)
    d = tmp_path / ext
    d.mkdir()
    for g, f in syn_small.betas.items():
        df = f.to_dataframe()
        p = d / f"{g}_betadata.{ext}"
        if ext == "feather":
            df.to_feather(p)
        elif ext == "parquet":
            df.to_parquet(p, index=False)
        else:
            df.to_csv(p, index=False, float_format="%.17g")
    bb = Betabase.from_dir(d, tissue)
    assert bb.genes == ref.genes == sorted(syn_small.betas, key=tissue.var_names.index)
    fa, fb = bb.flat(), ref.flat()
    assert fa.keys() == fb.keys()
    for k in fa:
        np.testing.assert_array_equal(fa[k], fb[k], err_msg=k)


def test_betabase_of_a_run_folder_shares_one_mapping(tmp_path, syn_small) -> None:
    tissue = _syn_tissue(syn_small)
    for g, f in syn_small.betas.items():
        write_betadata(betadata_path(tmp_path, g), f)
    (tmp_path / "Cd19.orphan").touch()
    bb = Betabase.from_dir(tmp_path, tissue, genes=["Cd19", "Ms4a1", "Jun"])
    assert bb.genes == sorted(["Cd19", "Ms4a1", "Jun"], key=tissue.var_names.index)
    full = Betabase.from_dir(tmp_path, tissue)
    assert len(full) == len(syn_small.betas)
    assert len(full.mappings) == 1
    assert {gm.mapping for gm in full.models} == {0}
    np.testing.assert_array_equal(full.mappings[0], tissue.clusters)  # labels ct0..ct4 are sorted
    # true betas come back exactly
    for g, f in syn_small.betas.items():
        gm = full[g]
        np.testing.assert_array_equal(gm.coefs, f.coefs)
        assert [tissue.var_names[i] for i in gm.a[gm.kind == TF]] == [m for m in f.modulators
                                                                            if "$" not in m and "#" not in m]


def test_betabase_mapping_computed_once(monkeypatch, syn_small) -> None:
    tissue = _syn_tissue(syn_small)
    calls = []
    orig = Betabase._mapping_for

    def counting(self, f):
        before = len(self.mappings)
        out = orig(self, f)
        calls.append(len(self.mappings) - before)  # 1 when a new mapping was computed, 0 when shared
        return out

    monkeypatch.setattr(Betabase, "_mapping_for", counting)
    ids = list(tissue.obs_names)
    frames = [beta_frame(g, ids, ["Foxo1"], np.ones((len(ids), 1)), row_kind="CellID")
              for g in ("Cd19", "Ms4a1", "Cd79a")]
    frames.append(beta_frame("Cd3e", ids[::-1], ["Foxo1"], np.ones((len(ids), 1)), row_kind="CellID"))
    bb = Betabase(frames, tissue)
    assert calls == [1, 0, 0, 1]
    assert len(bb.mappings) == 2
    assert bb["Cd19"].mapping == bb["Ms4a1"].mapping == bb["Cd79a"].mapping != bb["Cd3e"].mapping
    np.testing.assert_array_equal(bb.mappings[bb["Cd19"].mapping], np.arange(len(ids)))
    np.testing.assert_array_equal(bb.mappings[bb["Cd3e"].mapping], np.arange(len(ids))[::-1])


def test_betabase_empty_folder_is_a_clear_error(tmp_path, syn_small) -> None:
    with pytest.raises(InputError, match="no \\*_betadata"):
        Betabase.from_dir(tmp_path, _syn_tissue(syn_small))


@pytest.mark.realdata
def test_betabase_reads_the_python_reference_files() -> None:
    d = shared_path("fixtures", "reference_betadata")
    foxo1 = pd.read_parquet(d / "FOXO1_betadata.parquet")
    pax5 = pd.read_parquet(d / "PAX5_betadata.parquet")
    cols = [c for c in foxo1.columns.tolist() + pax5.columns.tolist() if c.startswith("beta_")]
    genes = {"FOXO1", "PAX5"}
    for c in cols:
        genes.update(c[len("beta_"):].replace("#", "$").split("$"))
    var = sorted(genes)
    n = len(foxo1)
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 2, (n, len(var)))
    ct = foxo1["cell_type"].astype(str)
    labels = sorted(ct.unique())
    clusters = np.searchsorted(labels, ct.to_numpy())
    t = make_tissue(X, var, obs_names=list(foxo1.index), clusters=clusters, labels=labels)
    bb = Betabase.from_dir(d, t)
    assert bb.genes == ["FOXO1", "PAX5"]
    assert len(bb.mappings) == 1  # both files index the same cells: one shared mapping
    np.testing.assert_array_equal(bb.mappings[0], np.arange(n))
    for gene, df in (("FOXO1", foxo1), ("PAX5", pax5)):
        gm = bb[gene]
        beta_cols = [c for c in df.columns if c.startswith("beta_")]
        # extra obs columns (x, y, cell_type_int, QC...) are ignored; beta0 is the intercept
        assert gm.frame.modulators == [c[len("beta_"):] for c in beta_cols]
        np.testing.assert_array_equal(gm.coefs, df[beta_cols].to_numpy(np.float64))
        np.testing.assert_array_equal(gm.frame.intercept, df["beta0"].to_numpy(np.float64))
        assert (gm.kind == LR).sum() == sum("$" in c for c in beta_cols)
        assert (gm.kind == TFL).sum() == sum("#" in c for c in beta_cols)
    # splash runs on them: cell 0 of FOXO1 against the dense formula for a few modulators
    lig = bb.ligands()
    rl = LigandTable.from_columns(rng.uniform(0, 1, (n, len(lig))), lig, len(var))
    s = splash(bb, "FOXO1", X, rl, as_frame=True)
    gm = bb["FOXO1"]
    row = gm.coefs[0]
    tf_only = [j for j, k in enumerate(gm.kind) if k == TF]
    for j in tf_only[:5]:
        g = var[gm.a[j]]
        involved = [jj for jj in range(len(gm.kind)) if gm.a[jj] == gm.a[j] or gm.b[jj] == gm.a[j]]
        if involved == [j]:
            assert s.iloc[0][g] == pytest.approx(row[j], abs=1e-12)


def test_splash_input_errors() -> None:
    bb, rl, _ = worked()
    with pytest.raises(InputError, match="'Z' has no betadata"):
        splash(bb, "Z", G_WORKED, rl)
    with pytest.raises(InputError, match="did you mean Y"):
        splash(bb, "y", G_WORKED, rl)
    with pytest.raises(ValueError, match=r"expression has shape \(2, 4\), expected \(2, 5\)"):
        splash(bb, "Y", G_WORKED[:, :4], rl)
    empty = LigandTable.from_columns(np.zeros((2, 0)), np.zeros(0, np.int64), len(GENES))
    with pytest.raises(ValueError, match="no received-ligand values for C"):
        splash(bb, "Y", G_WORKED, empty)
    short = LigandTable.from_columns(RL_C[:1, None], np.array([2]), len(GENES))
    with pytest.raises(ValueError, match="received holds"):
        splash(bb, "Y", G_WORKED, short)

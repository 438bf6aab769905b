"""TF priors (issue 18 item 3): a table ``source, target, cell_type`` restricting a target's TFs per cell type.

Ladder: the masked solver equals the lasso of the reduced design (an independent fit per cluster) and
leaves masked betas exactly 0 → a trained run zeroes exactly the forbidden TF and ``L#TF`` columns of the
restricted clusters and leaves every other bit as without a prior → records in the log and manifest →
formats and bad tables (one line or a warning with counts).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from spacetravlr_py import _keys
from spacetravlr_py.config import SpaceshipConfig
from spacetravlr_py.datasets import synthetic_tissue
from spacetravlr_py.errors import InputError
from spacetravlr_py.io.betadata import read_betadata
from spacetravlr_py.io.tfprior import read_tf_prior
from spacetravlr_py.models import SharedColumns, fit_sparse_group_lasso
from spacetravlr_py.models.fista import fit_clusters_split
from spacetravlr_py.training import train

GENES = ["Cd19", "Ms4a1", "Cd79a", "Mki67"]


# ---------------------------------------------------------------- the solver


def _split_problem(seed: int = 3):
    rng = np.random.default_rng(seed)
    n, k = 600, 3
    XS = rng.random((n, 6))
    XL = rng.random((n, 8)) * 0.2
    clusters = rng.integers(0, k, n)
    kind = np.r_[np.zeros(3), np.ones(8), np.zeros(3)].astype(np.int64)
    col = np.r_[np.arange(3), np.arange(8), np.arange(3, 6)].astype(np.int64)
    groups = np.r_[np.zeros(3), np.ones(8), 2 * np.ones(3)].astype(np.int64)
    X = np.column_stack([XS[:, :3], XL, XS[:, 3:]])
    y = X @ rng.normal(size=X.shape[1]) + 0.05 * rng.normal(size=n)
    return XS, XL, kind, col, groups, X, y, clusters, k


KW = dict(l1_reg=1e-3, group_reg=2e-3, n_iter=20000, tol=1e-12, score_threshold=-np.inf)


@pytest.mark.parametrize("with_grams", [True, False])
def test_masked_fit_is_the_lasso_without_the_masked_columns(with_grams):
    """Each cluster's masked fit equals an independent sparse group lasso on that cluster's cells and the
    allowed columns only (group weights from the remaining group sizes); masked betas are exactly 0; a
    cluster without masked columns is bit-identical to the unmasked fit, for any thread count."""
    XS, XL, kind, col, groups, X, y, clusters, k = _split_problem()
    shared = SharedColumns.build(XL, clusters, k, max_bytes=1e12 if with_grams else 0)
    mask = np.ones((k, X.shape[1]), dtype=bool)
    mask[0, [0, 2, 11]] = False          # two TFs and one L#TF-like column of group 2
    mask[1, :3] = False                  # every column of group 0
    full = fit_clusters_split(XS, shared, kind, col, y, clusters, groups, n_clusters=k, **KW)
    one = fit_clusters_split(XS, shared, kind, col, y, clusters, groups, n_clusters=k, feature_mask=mask,
                             n_threads=1, **KW)
    two = fit_clusters_split(XS, shared, kind, col, y, clusters, groups, n_clusters=k, feature_mask=mask,
                             n_threads=2, **KW)
    assert np.array_equal(one.coef, two.coef) and np.array_equal(one.intercept, two.intercept)
    assert np.all(one.coef[~mask] == 0.0)
    assert np.array_equal(one.coef[2], full.coef[2]) and one.intercept[2] == full.intercept[2]
    for c in (0, 1):
        rows, keep = clusters == c, np.flatnonzero(mask[c])
        ref = fit_sparse_group_lasso(X[rows][:, keep], y[rows], groups[keep], l1_reg=KW["l1_reg"],
                                     group_reg=KW["group_reg"], n_iter=KW["n_iter"], tol=KW["tol"])
        np.testing.assert_allclose(one.coef[c, keep], ref.coef, rtol=0, atol=1e-9)
        np.testing.assert_allclose(one.intercept[c], ref.intercept, rtol=0, atol=1e-9)
        np.testing.assert_allclose(one.objective[c], ref.objective, rtol=1e-10)
        assert abs(one.objective[c] - full.objective[c]) > 1e-8  # the restriction changed the problem


def test_a_cluster_with_every_column_masked_is_intercept_only():
    XS, XL, kind, col, groups, X, y, clusters, k = _split_problem(4)
    shared = SharedColumns.build(XL, clusters, k)
    mask = np.ones((k, X.shape[1]), dtype=bool)
    mask[1] = False
    res = fit_clusters_split(XS, shared, kind, col, y, clusters, groups, n_clusters=k, feature_mask=mask, **KW)
    assert np.all(res.coef[1] == 0) and res.r2[1] == 0.0
    assert res.intercept[1] == pytest.approx(y[clusters == 1].mean(), abs=1e-12)
    with pytest.raises(ValueError, match="feature_mask must have shape"):
        fit_clusters_split(XS, shared, kind, col, y, clusters, groups, n_clusters=k, feature_mask=mask[:, :3], **KW)


# ---------------------------------------------------------------- a trained run


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    base = tmp_path_factory.mktemp("tfprior")
    syn = synthetic_tissue(n_cells=500, seed=1)
    paths = syn.write(base / "data")
    return {"base": base, "syn": syn, "h5ad": paths["h5ad"], "net": paths["network"].parent}


def _cfg(data, out: Path, **over) -> SpaceshipConfig:
    o = {"data.adata_path": str(data["h5ad"]), "grn.network_data_dir": str(data["net"]),
         "execution.output_dir": str(out), "training.genes": GENES}
    o.update(over)
    return SpaceshipConfig().with_overrides(o)


# Cd19 (network TFs Egr1, Fos, Foxo1, Klf4, Sox9; planted Egr1, Foxo1, Klf4 and the pair Fn1#Egr1): ct0
# allows the planted three (not the decoys Fos, Sox9), ct1 only Foxo1, ct2 none (no row for Cd19 there);
# Ms4a1 is restricted in ct0 and ct2; Cd79a and Mki67 are not named; ct3, ct4 are never named.
PRIOR = pd.DataFrame(
    [("Egr1", "Cd19", "ct0"), ("Foxo1", "Cd19", "ct0"), ("Klf4", "Cd19", "ct0"), ("Foxo1", "Cd19", "ct1"),
     ("Nfkb1", "Ms4a1", "ct0"), ("Pax5", "Ms4a1", "ct2")],
    columns=["source", "target", "cell_type"])


@pytest.fixture(scope="module")
def runs(data):
    base = data["base"]
    prior = base / "prior.csv"
    PRIOR.to_csv(prior, index=False)
    plain = train(_cfg(data, base / "plain"))
    withp = train(_cfg(data, base / "withp", **{"grn.tf_priors": str(prior)}))
    assert plain.counts["done"] == withp.counts["done"] == len(GENES)
    return {"plain": base / "plain", "prior": base / "withp", "csv": prior, "manifest": withp.manifest}


def _frame(folder: Path, gene: str) -> pd.DataFrame:
    df = read_betadata(folder / f"{gene}_betadata.feather").to_dataframe().set_index(_keys.CLUSTER_COL)
    return df


def test_prior_zeroes_exactly_the_forbidden_tf_and_ltf_betas(runs):
    a, b = _frame(runs["plain"], "Cd19"), _frame(runs["prior"], "Cd19")
    tfs = [c[len(_keys.BETA_PREFIX):] for c in a.columns if c.startswith(_keys.BETA_PREFIX)
           and _keys.LR_SEP not in c and _keys.TFL_SEP not in c]
    assert set(tfs) == {"Egr1", "Fos", "Foxo1", "Klf4", "Sox9"}
    beta = lambda df, name, ct: float(df.loc[ct].get(f"{_keys.BETA_PREFIX}{name}", 0.0))  # noqa: E731
    # ct1: only Foxo1 may regulate Cd19; every other TF and every L#TF of another TF is exactly 0
    for t in tfs:
        if t != "Foxo1":
            assert beta(b, t, "ct1") == 0.0, t
    assert beta(b, "Fn1#Egr1", "ct1") == 0.0 and beta(a, "Fn1#Egr1", "ct1") != 0.0
    assert beta(a, "Egr1", "ct1") != 0.0 and beta(b, "Foxo1", "ct1") != 0.0
    # ct0: the decoys are out, the planted TFs and their L#TF pair stay
    assert beta(b, "Fos", "ct0") == beta(b, "Sox9", "ct0") == 0.0 and beta(b, "Fn1#Egr1", "ct0") != 0.0
    # ct2: named in the prior (for Ms4a1) but no row for Cd19 there: no TF at all
    assert all(beta(b, t, "ct2") == 0.0 for t in tfs) and beta(b, "Fn1#Egr1", "ct2") == 0.0
    # LR pairs are never restricted
    assert any(beta(b, c[len(_keys.BETA_PREFIX):], "ct2") != 0.0 for c in b.columns if _keys.LR_SEP in c)


def test_prior_changes_nothing_else_bit_for_bit(runs):
    a, b = _frame(runs["plain"], "Cd19"), _frame(runs["prior"], "Cd19")
    # ct0 allows every planted TF but not the decoys: changed; ct3/ct4 are never named: identical bits
    for ct in ("ct3", "ct4"):
        pd.testing.assert_series_equal(a.loc[ct], b.loc[ct].reindex(a.columns, fill_value=0.0), check_exact=True)
    for gene in ("Cd79a", "Mki67"):  # targets the prior does not name
        pd.testing.assert_frame_equal(_frame(runs["plain"], gene), _frame(runs["prior"], gene), check_exact=True)
    ms_a, ms_b = _frame(runs["plain"], "Ms4a1"), _frame(runs["prior"], "Ms4a1")
    for ct in ("ct3", "ct4"):  # Ms4a1 is restricted wherever the prior names the cell type (ct1: no TF)
        pd.testing.assert_series_equal(ms_a.loc[ct], ms_b.loc[ct].reindex(ms_a.columns, fill_value=0.0),
                                       check_exact=True)


def test_prior_recovers_the_allowed_planted_betas(runs, data):
    """Planted truth: where the prior allows the planted TFs, their betas are recovered as without it."""
    truth = data["syn"].betas["Cd19"].to_dataframe().set_index(_keys.CLUSTER_COL)
    b = _frame(runs["prior"], "Cd19")
    for t in ("Egr1", "Foxo1", "Klf4"):
        col = f"{_keys.BETA_PREFIX}{t}"
        assert b.loc["ct0", col] == pytest.approx(truth.loc["ct0", col], rel=0.2, abs=0.05)


def test_masks_are_recorded_in_the_log_and_the_manifest(runs):
    log = (runs["prior"] / _keys.LOG_DIR / "Cd19.log").read_text()
    lines = {ln.split("\t")[1]: ln for ln in log.splitlines() if ln.startswith("tf_prior\t")}
    assert set(lines) == {"ct0", "ct1", "ct2"}
    assert lines["ct1"].split("\t")[2:] == ["allowed=Foxo1", "masked=Egr1,Fos,Klf4,Sox9"]
    assert lines["ct0"].split("\t")[2:] == ["allowed=Egr1,Foxo1,Klf4", "masked=Fos,Sox9"]
    assert lines["ct2"].split("\t")[2] == "allowed="
    rows = [ln.split("\t") for ln in log.splitlines()[1:6]]
    n_mods = {r[1]: int(r[3]) for r in rows}
    assert n_mods["ct3"] > n_mods["ct1"] > n_mods["ct2"]
    m = json.loads((runs["prior"] / _keys.MANIFEST_JSON).read_text())["tf_priors"]
    assert m["path"] == str(runs["csv"].resolve()) and m["rows"] == len(PRIOR) and m["targets"] == 2
    assert m["cell_types"] == ["ct0", "ct1", "ct2"]
    assert set(m["masked"]) == {"Cd19", "Ms4a1"}
    assert m["masked"]["Cd19"] == {"ct0": ["Fos", "Sox9"], "ct1": ["Egr1", "Fos", "Klf4", "Sox9"],
                                   "ct2": ["Egr1", "Fos", "Foxo1", "Klf4", "Sox9"]}
    assert "tf_prior" not in (runs["plain"] / _keys.LOG_DIR / "Cd19.log").read_text()


def test_workers_get_the_prior_and_give_the_same_bits(runs, data, tmp_path):
    """The prior travels to worker processes with the training context: 2 workers = 1, bit for bit."""
    out = tmp_path / "two"
    train(_cfg(data, out, **{"grn.tf_priors": str(runs["csv"]), "execution.n_parallel": 2}))
    for gene in GENES:
        a = (runs["prior"] / f"{gene}_betadata.feather").read_bytes()
        assert (out / f"{gene}_betadata.feather").read_bytes() == a, gene


@pytest.mark.parametrize("fmt", ["tsv", "parquet", "feather"])
def test_every_table_format_reads_the_same(data, tmp_path, fmt):
    p = tmp_path / f"prior.{fmt}"
    df = PRIOR.copy()
    if fmt == "tsv":
        df.to_csv(p, sep="\t", index=False)
    elif fmt == "parquet":
        df.to_parquet(p)
    else:
        df.reset_index(drop=True).to_feather(p)
    tissue_labels = [f"ct{i}" for i in range(5)]
    genes = list(data["syn"].adata.var_names)
    a = read_tf_prior(p, var_names=genes, cluster_labels=tissue_labels)
    csv = tmp_path / "prior.csv"
    PRIOR.to_csv(csv, index=False)
    assert a.allowed == read_tf_prior(csv, var_names=genes, cluster_labels=tissue_labels).allowed


def test_integer_cell_types_match_integer_cluster_labels(tmp_path):
    p = tmp_path / "prior.parquet"
    pd.DataFrame({"source": ["A", "B"], "target": ["T", "T"], "cell_type": [0, 2]}).to_parquet(p)
    pr = read_tf_prior(p, var_names=["A", "B", "T"], cluster_labels=["0", "1", "2"])
    assert pr.allowed == {"T": {"0": frozenset({"A"}), "2": frozenset({"B"})}}


def _write(tmp_path: Path, rows, cols=("source", "target", "cell_type"), name="p.csv") -> Path:
    p = tmp_path / name
    pd.DataFrame(rows, columns=list(cols)).to_csv(p, index=False)
    return p


GENES_ALL = ["A", "B", "C", "T"]
LABELS = ["ct0", "ct1"]


@pytest.mark.parametrize(("rows", "cols", "name", "match"), [
    ([("X", "Y", "ct0")], None, "p.csv", "no row names two genes of the dataset"),
    ([("A", "T", "tumour")], None, "p.csv", r"no cell_type is a label of obs\['cell_type'\]"),
    ([("A", "T", "ct0")], ("tf", "target", "cell_type"), "p.csv", "no column 'source'"),
    ([], None, "p.csv", "has no rows"),
    ([("A", "T", "ct0")], None, "p.xlsx", "unknown file type"),
])
def test_bad_tables_are_one_clear_line(tmp_path, rows, cols, name, match):
    p = _write(tmp_path, rows, cols or ("source", "target", "cell_type"), name)
    with pytest.raises(InputError, match=match) as e:
        read_tf_prior(p, var_names=GENES_ALL, cluster_labels=LABELS)
    assert "\n" not in str(e.value) and str(p) in str(e.value)


def test_missing_file_is_one_line(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_tf_prior(tmp_path / "nope.csv", var_names=GENES_ALL, cluster_labels=LABELS)


def test_partial_matches_are_warnings_with_counts(tmp_path):
    net = pd.DataFrame({"source": ["A"], "target": ["T"], "edge_type": ["grn"]})
    p = _write(tmp_path, [("A", "T", "ct0"), ("Zz9", "T", "ct0"), ("B", "Qq1", "ct0"), ("B", "T", "tumour"),
                          ("B", "T", "ct0"), ("", "T", "ct0")])
    pr = read_tf_prior(p, var_names=GENES_ALL, cluster_labels=LABELS, network=net)
    text = "\n".join(pr.notes)
    assert "1 of 6 rows have an empty field" in text
    assert "2 of 6 rows name 2 genes that are not in the dataset and are ignored (Zz9, Qq1)" in text
    assert "1 rows name 1 cell types that are not labels of obs['cell_type'] and are ignored (tumour)" in text
    assert "1 cell types of obs['cell_type'] have no row in the prior; their TFs are not restricted (ct1)" in text
    assert "1 of 2 TF→target links are not grn edges" in text and "B→T" in text
    assert pr.allowed == {"T": {"ct0": frozenset({"A", "B"})}} and pr.allowed_tfs("T", "ct1") is None


def test_the_program_takes_the_flag_and_prints_the_warnings(data, tmp_path, capsys):
    from spacetravlr_py.cli.main import main

    p = _write(tmp_path, [("Foxo1", "Cd19", "ct0"), ("Foxo1", "Nope1", "ct0")])
    args = ["--h5ad", str(data["h5ad"]), "--network-dir", str(data["net"]), "--genes", "Cd19", "--plain",
            "--output-dir", str(tmp_path / "run"), "--tf-prior", str(p)]
    assert main(args) == 0
    err = capsys.readouterr()
    assert "1 of 2 rows name 1 genes that are not in the dataset" in err.out + err.err
    repro = SpaceshipConfig.from_toml(tmp_path / "run" / _keys.REPRO_TOML)
    assert repro.grn.tf_priors == str(p.resolve())
    bad = _write(tmp_path, [("Foxo1", "Cd19", "tumour")], name="bad.csv")
    assert main([*args[:-4], "--output-dir", str(tmp_path / "run2"), "--tf-prior", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no cell_type is a label of obs['cell_type']" in err[0]
    assert not (tmp_path / "run2").exists()  # nothing is written for a bad prior


def test_seed_key_tf_priors_feather_is_an_alias(tmp_path, caplog):
    p = tmp_path / "c.toml"
    p.write_text('[grn]\ntf_priors_feather = "priors.feather"\n')
    with caplog.at_level(logging.WARNING):
        cfg = SpaceshipConfig.from_toml(p)
    assert cfg.grn.tf_priors == str((tmp_path / "priors.feather").resolve())
    assert len(cfg.notes) == 1 and "is read as [grn].tf_priors" in cfg.notes[0]

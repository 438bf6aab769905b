"""Betadata files (SPEC §5.3–5.4): write → read round trips, atomic writes, foreign layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.feather as feather
import pytest

from builders import RANDOM_FRAME_MODULATORS, beta_frame, random_beta_frame
from conftest import shared_path
from spacetravlr_py import naming
from spacetravlr_py.errors import InputError
from spacetravlr_py.io.atomic import atomic_path, atomic_write, atomic_write_bytes, atomic_write_text
from spacetravlr_py.io.betadata import (
    betadata_path,
    frame_from_table,
    gene_of_path,
    list_betadata,
    read_betadata,
    write_betadata,
)


def read_error(path: Path) -> str:
    with pytest.raises(InputError) as ei:
        read_betadata(path)
    msg = str(ei.value)
    assert "\n" not in msg and msg.startswith(str(path)), msg
    return msg


def no_temp_files(d: Path) -> bool:
    return not [p for p in d.iterdir() if p.name.endswith(".tmp")]


# ---------------------------------------------------------------------------------------------
# names and the in-memory frame
# ---------------------------------------------------------------------------------------------


def test_modulator_groups():
    f = random_beta_frame()  # groups from the names: TF, L$R, L#TF, TF, L$R
    np.testing.assert_array_equal(f.groups, [naming.TF, naming.LR, naming.TFL, naming.TF, naming.LR])


def test_paths_and_gene_names(tmp_path):
    p = betadata_path(tmp_path, "PAX5")
    assert p == tmp_path / "PAX5_betadata.feather"
    assert gene_of_path(p) == "PAX5"
    assert gene_of_path("a/b/NKX2-1_betadata.parquet") == "NKX2-1"
    assert gene_of_path("x_betadata_betadata.csv") == "x_betadata"
    with pytest.raises(InputError, match=r"PAX5\.feather: not a betadata file \(expected "
                                         r"<gene>_betadata\.feather\|parquet\|csv\)"):
        gene_of_path("PAX5.feather")


def test_to_dataframe_layout():
    f = random_beta_frame()
    df = f.to_dataframe()
    assert list(df.columns) == ["Cluster", "beta0", "beta_FOXO3", "beta_CCL5$CCR5", "beta_CXCL12#FOXO3",
                                "beta_EXTRA1"]
    assert list(f.to_dataframe(drop_zero=False).columns)[-1] == "beta_ZERO$COL"
    assert not f.is_all_zero()
    z = beta_frame("G", ["a"], ["T"], np.zeros((1, 1)))
    assert z.is_all_zero()


# ---------------------------------------------------------------------------------------------
# round trips
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("row_kind", ["Cluster", "CellID"])
def test_write_read_round_trip_is_exact(tmp_path, row_kind):
    f = random_beta_frame(row_kind, n_rows=7)
    p = write_betadata(betadata_path(tmp_path, f.gene), f)
    assert p == tmp_path / "PAX5_betadata.feather" and no_temp_files(tmp_path)
    g = read_betadata(p)
    assert g.gene == "PAX5" and g.row_kind == row_kind and g.row_ids == f.row_ids
    keep = [m != "ZERO$COL" for m in RANDOM_FRAME_MODULATORS]
    assert g.modulators == [m for m, k in zip(RANDOM_FRAME_MODULATORS, keep) if k]
    assert g.intercept.dtype == np.float64 and g.coefs.dtype == np.float64
    np.testing.assert_array_equal(g.intercept, f.intercept)  # bit-exact float64
    np.testing.assert_array_equal(g.coefs, f.coefs[:, keep])
    np.testing.assert_array_equal(g.groups, [0, 1, 2, 0])
    # on disk: Arrow IPC, LZ4, the id column first, then beta0, float64 coefficients
    table = feather.read_table(p)
    assert table.column_names[:2] == [row_kind, "beta0"]
    assert all(str(t) == "double" for t in table.schema.types[1:])
    assert table.schema.metadata[b"spacetravlr.gene"] == b"PAX5"


def test_all_zero_modulators_dropped_but_intercept_kept(tmp_path):
    f = beta_frame("G", ["a", "b"], ["T1", "T2", "L$R"], np.array([[0.0, 1.5, 0.0], [0.0, -2.0, 0.0]]))
    g = read_betadata(write_betadata(tmp_path / "G_betadata.feather", f))
    assert g.modulators == ["T2"]
    np.testing.assert_array_equal(g.intercept, [0.0, 0.0])
    np.testing.assert_array_equal(g.coefs, [[1.5], [-2.0]])
    only_intercept = beta_frame("H", ["a"], ["T1"], np.zeros((1, 1)), intercept=[0.25])
    h = read_betadata(write_betadata(tmp_path / "H_betadata.feather", only_intercept))
    assert h.modulators == [] and h.coefs.shape == (1, 0) and h.intercept.tolist() == [0.25]


def test_overwrite_is_atomic_and_leaves_no_temp_files(tmp_path):
    p = tmp_path / "PAX5_betadata.feather"
    write_betadata(p, random_beta_frame(seed=1))
    f2 = random_beta_frame(seed=2)
    write_betadata(p, f2)
    np.testing.assert_array_equal(read_betadata(p).intercept, f2.intercept)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["PAX5_betadata.feather"]


def test_failing_writer_leaves_old_file_intact(tmp_path, monkeypatch):
    p = tmp_path / "PAX5_betadata.feather"
    old = random_beta_frame(seed=1)
    write_betadata(p, old)
    before = p.read_bytes()

    def broken_writer(table, dest, **kwargs):
        Path(dest).write_bytes(b"ARROW1 truncated")
        raise OSError("disk full")

    monkeypatch.setattr(feather, "write_feather", broken_writer)
    with pytest.raises(OSError, match="disk full"):
        write_betadata(p, random_beta_frame(seed=2))
    assert p.read_bytes() == before
    assert sorted(x.name for x in tmp_path.iterdir()) == ["PAX5_betadata.feather"]
    np.testing.assert_array_equal(read_betadata(p).intercept, old.intercept)


def test_atomic_helpers(tmp_path):
    dest = tmp_path / "sub" / "a.txt"
    atomic_write_text(dest, "héllo")
    assert dest.read_text(encoding="utf-8") == "héllo"
    atomic_write_bytes(dest, b"\x00\x01")
    assert dest.read_bytes() == b"\x00\x01"

    with pytest.raises(KeyboardInterrupt), atomic_path(dest) as tmp:
        tmp.write_bytes(b"partial")
        assert tmp.parent == dest.parent and tmp.name.endswith(".tmp")
        raise KeyboardInterrupt
    assert dest.read_bytes() == b"\x00\x01" and no_temp_files(dest.parent)

    def writer(p: Path) -> None:
        p.write_text("half")
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        atomic_write(tmp_path / "new.txt", writer)
    assert not (tmp_path / "new.txt").exists() and no_temp_files(tmp_path)


def test_atomic_files_get_the_mode_open_would_give(tmp_path):
    """Not 0600: other users of a shared run folder must be able to read the outputs."""
    import os
    import stat

    mask = os.umask(0o022)
    os.umask(mask)
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    dest = atomic_write_text(tmp_path / "a.txt", "x")
    assert stat.S_IMODE(dest.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode) == 0o666 & ~mask
    fb = tmp_path / "PAX5_betadata.feather"
    write_betadata(fb, random_beta_frame())
    assert stat.S_IMODE(fb.stat().st_mode) == 0o666 & ~mask


def test_atomic_path_cleans_up_when_interrupted_at_any_point(tmp_path, monkeypatch):
    """An interrupt right after the temporary file is created (before any write) leaves nothing."""
    import os

    from spacetravlr_py.io import atomic

    real_close = os.close

    def close_then_interrupt(fd: int) -> None:
        real_close(fd)
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "close", close_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(tmp_path / "a.txt", "x")
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# other layouts and formats
# ---------------------------------------------------------------------------------------------


def reference_style_table(n: int = 4) -> pd.DataFrame:
    """The Python reference's layout: index = cell ids, beta columns and extra obs columns."""
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"beta0": rng.standard_normal(n), "beta_TF1": rng.standard_normal(n),
                       "beta_L1$R1": rng.standard_normal(n), "beta_L1#TF1": rng.standard_normal(n),
                       "x": rng.random(n), "y": rng.random(n), "cell_type_int": np.arange(n),
                       "cell_type": pd.Categorical(["a", "b"] * (n // 2))},
                      index=pd.Index([f"cell{i}" for i in range(n)], name=None))
    return df


@pytest.mark.parametrize("fmt", ["parquet", "csv", "feather"])
def test_reference_layout_in_every_format(tmp_path, fmt):
    df = reference_style_table()
    p = tmp_path / f"TGT_betadata.{fmt}"
    if fmt == "parquet":
        df.to_parquet(p)
    elif fmt == "csv":
        df.to_csv(p)  # index written as an unnamed first column
    else:
        feather.write_feather(df.reset_index(names="CellID"), p)
    f = read_betadata(p)
    assert f.gene == "TGT" and f.row_kind == "CellID"
    assert f.row_ids == [f"cell{i}" for i in range(4)]
    assert f.modulators == ["TF1", "L1$R1", "L1#TF1"]  # x, y, cell_type_int, cell_type ignored
    np.testing.assert_array_equal(f.groups, [0, 1, 2])
    np.testing.assert_array_equal(f.intercept, df["beta0"].to_numpy())
    np.testing.assert_array_equal(f.coefs, df[["beta_TF1", "beta_L1$R1", "beta_L1#TF1"]].to_numpy())


def test_csv_cluster_ids_stay_strings(tmp_path):
    p = tmp_path / "G_betadata.csv"
    pd.DataFrame({"Cluster": ["01", "2", "1e5"], "beta0": [1.0, 2.0, 3.0], "beta_T": [0.5, 0, 0]}).to_csv(
        p, index=False)
    f = read_betadata(p)
    assert f.row_kind == "Cluster" and f.row_ids == ["01", "2", "1e5"]
    assert f.modulators == ["T"]


def test_cluster_column_saved_as_index(tmp_path):
    p = tmp_path / "G_betadata.parquet"
    pd.DataFrame({"Cluster": ["a", "b"], "beta0": [1.0, 2.0], "beta_T": [3.0, 4.0]}).set_index(
        "Cluster").to_parquet(p)
    f = read_betadata(p)
    assert f.row_kind == "Cluster" and f.row_ids == ["a", "b"] and f.modulators == ["T"]


def test_without_beta_prefix_and_beta_0_alias(tmp_path):
    p = tmp_path / "G_betadata.csv"
    pd.DataFrame({"Cluster": ["a", "b"], "beta_0": [1.0, 2.0], "TF1": [0.1, 0.2], "L$R": [0.3, 0.4],
                  "L#TF1": [0.5, 0.6], "label": ["u", "v"], "in_tissue": [True, False]}).to_csv(p, index=False)
    f = read_betadata(p)
    assert f.modulators == ["TF1", "L$R", "L#TF1"]  # non-numeric and bool columns are not coefficients
    np.testing.assert_array_equal(f.intercept, [1.0, 2.0])
    np.testing.assert_array_equal(f.coefs, [[0.1, 0.3, 0.5], [0.2, 0.4, 0.6]])


def test_beta_0_alias_with_prefix():
    df = pd.DataFrame({"CellID": ["c1"], "beta_0": [4.0], "beta_T": [1.0]})
    f = frame_from_table(df, "G")
    assert f.modulators == ["T"] and f.intercept.tolist() == [4.0]


def test_missing_intercept_is_zero():
    f = frame_from_table(pd.DataFrame({"Cluster": ["a"], "beta_T": [1.0]}), "G")
    assert f.intercept.tolist() == [0.0] and f.modulators == ["T"]


def test_explicit_gene_name(tmp_path):
    p = tmp_path / "whatever_betadata.feather"
    write_betadata(p, random_beta_frame())
    assert read_betadata(p, gene="OTHER").gene == "OTHER"


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("column", "row"), [("beta_T2", 1), ("beta0", 0)])
def test_nan_coefficient_is_an_error(tmp_path, column, row):
    df = pd.DataFrame({"Cluster": ["a", "b"], "beta0": [1.0, 2.0], "beta_T1": [1.0, 2.0], "beta_T2": [3.0, 4.0]})
    df.loc[row, column] = np.nan
    p = tmp_path / "G_betadata.parquet"
    df.to_parquet(p, index=False)
    msg = read_error(p)
    assert (f"1 NaN/inf coefficients in 1 columns; first at row '{'ab'[row]}', column '{column}'; "
            "betadata must be finite") in msg


def test_inf_coefficient_is_an_error(tmp_path):
    p = tmp_path / "G_betadata.csv"
    pd.DataFrame({"CellID": ["c1", "c2"], "beta0": [1.0, np.inf], "beta_T": [-np.inf, 1.0]}).to_csv(
        p, index=False)
    assert "2 NaN/inf coefficients in 2 columns; first at row 'c1', column 'beta_T'" in read_error(p)


def test_non_numeric_beta_column(tmp_path):
    p = tmp_path / "G_betadata.csv"
    pd.DataFrame({"Cluster": ["a"], "beta0": [1.0], "beta_T": ["high"]}).to_csv(p, index=False)
    assert "column 'beta_T' is not numeric (dtype object)" in read_error(p)


def test_no_beta_columns(tmp_path):
    p = tmp_path / "G_betadata.csv"
    pd.DataFrame({"Cluster": ["a"], "label": ["x"]}).to_csv(p, index=False)
    assert "no beta columns (expected beta0 and beta_<modulator> columns; found: label)" in read_error(p)


def test_duplicate_modulators(tmp_path):
    df = pd.DataFrame([[1.0, 2.0, 3.0]], columns=["beta0", "beta_T", "T"])
    df.columns = ["beta0", "beta_T", "beta_T"]
    with pytest.raises(InputError, match=r"<table>: duplicate modulator columns \['T'\]"):
        frame_from_table(df, "G")


def test_missing_corrupt_and_unsupported_files(tmp_path):
    missing = tmp_path / "G_betadata.feather"
    assert read_error(missing) == f"{missing}: betadata file not found"
    corrupt = tmp_path / "H_betadata.parquet"
    corrupt.write_bytes(b"not parquet at all")
    assert "cannot read betadata (" in read_error(corrupt)
    other = tmp_path / "G_betadata.tsv"
    other.write_text("a\tb\n")
    with pytest.raises(InputError, match=r"unsupported betadata format '\.tsv'"):
        read_betadata(other, gene="G")


# ---------------------------------------------------------------------------------------------
# directory listing
# ---------------------------------------------------------------------------------------------


def test_list_betadata_prefers_feather(tmp_path):
    f = random_beta_frame()
    write_betadata(tmp_path / "A_betadata.feather", f)
    f.to_dataframe().to_parquet(tmp_path / "A_betadata.parquet", index=False)
    f.to_dataframe().to_csv(tmp_path / "A_betadata.csv", index=False)
    f.to_dataframe().to_csv(tmp_path / "B_betadata.csv", index=False)
    f.to_dataframe().to_parquet(tmp_path / "B_betadata.parquet", index=False)
    f.to_dataframe().to_csv(tmp_path / "C_betadata.csv", index=False)
    (tmp_path / "D.orphan").touch()
    (tmp_path / ".E_betadata.feather.abc.tmp").touch()
    (tmp_path / ".F_betadata.feather").touch()
    (tmp_path / "sub_betadata.feather").mkdir()
    found = list_betadata(tmp_path)
    assert found == {"A": tmp_path / "A_betadata.feather", "B": tmp_path / "B_betadata.parquet",
                     "C": tmp_path / "C_betadata.csv"}
    for g, p in found.items():
        np.testing.assert_array_equal(read_betadata(p).intercept, f.intercept, err_msg=g)


def test_list_betadata_missing_directory(tmp_path):
    with pytest.raises(InputError, match="betadata directory not found"):
        list_betadata(tmp_path / "nope")


# ---------------------------------------------------------------------------------------------
# reference files (../shared/data/fixtures/reference_betadata)
# ---------------------------------------------------------------------------------------------


@pytest.mark.realdata
@pytest.mark.parametrize(("gene", "n_tf", "n_lr", "n_tfl"), [("FOXO1", 27, 65, 60), ("PAX5", 19, 65, 13)])
def test_reference_betadata(gene, n_tf, n_lr, n_tfl):
    p = shared_path("fixtures", "reference_betadata", f"{gene}_betadata.parquet")
    f = read_betadata(p)
    assert f.gene == gene and f.row_kind == "CellID" and f.n_rows == 5778
    counts = np.bincount(f.groups, minlength=3)
    assert counts.tolist() == [n_tf, n_lr, n_tfl]
    raw = pd.read_parquet(p)
    assert f.row_ids == [str(i) for i in raw.index]
    beta_cols = [c for c in raw.columns if c.startswith("beta_")]
    assert f.modulators == [c[len("beta_"):] for c in beta_cols]
    for extra in ("x", "y", "cell_type_int", "cell_type", "total_counts"):
        assert extra in raw.columns and extra not in f.modulators
    np.testing.assert_array_equal(f.coefs, raw[beta_cols].to_numpy(dtype=np.float64))
    np.testing.assert_array_equal(f.intercept, raw["beta0"].to_numpy(dtype=np.float64))
    assert all(m.count("$") == 1 for m in np.array(f.modulators)[f.groups == 1])
    assert all(m.count("#") == 1 for m in np.array(f.modulators)[f.groups == 2])

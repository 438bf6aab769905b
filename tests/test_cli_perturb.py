"""``spacetravlr-perturb``: single export, cells CSV scope, verbose timings, batch TOML, screen, the
installed console script, and one clear error line (non-zero exit) per bad input."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.feather as feather
import pytest

from builders import train_run
from spacetravlr_py import _keys
from spacetravlr_py.cli.perturb import main
from spacetravlr_py.perturbation.session import RunSession

PROG = "spacetravlr-perturb"
N_CELLS = 600


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("cli_perturb")
    trained = train_run(base, n_cells=N_CELLS, seed=2)
    session = RunSession.open(trained.toml)
    return {"toml": str(trained.toml), "dir": trained.run_dir, "base": base, "session": session, "syn": trained.syn}


def cli(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main([str(a) for a in args])
    o = capsys.readouterr()
    return rc, o.out, o.err


def read_expr(path: Path) -> pd.DataFrame:
    return feather.read_feather(path)


# ---------------------------------------------------------------------------------------------
# single export
# ---------------------------------------------------------------------------------------------


def test_single_export_writes_feather_and_json(run, capsys, tmp_path) -> None:
    s: RunSession = run["session"]
    rc, out, err = cli(capsys, "--run-toml", run["toml"], "--gene", "Foxo1", "--out", tmp_path / "ko.feather")
    assert rc == 0, err
    df = read_expr(tmp_path / "ko.feather")
    assert list(df.columns) == [_keys.CELLID_COL, *s.tissue.var_names]
    assert list(df[_keys.CELLID_COL]) == list(s.tissue.obs_names)
    expect = s.run("Foxo1", 0.0)
    np.testing.assert_array_equal(df[s.tissue.var_names].to_numpy(), expect.expression)
    assert (df["Foxo1"] == 0).all()
    js = json.loads((tmp_path / "ko.json").read_text())
    assert js["genes"] == ["Foxo1"] and js["desired_expr"] == [0.0] and js["n_propagation"] == 4
    assert js["n_scope_cells"] == N_CELLS and js["scope"] == "all cells"
    top = js["top_affected_genes"]
    assert top and top[0]["gene"] == expect.top_genes(1)[0][0]
    assert set(js["cluster_mean_abs_delta"]) == set(s.tissue.cluster_labels)
    assert all(v >= 0 for v in js["cluster_mean_abs_delta"].values())
    assert {"received_s", "propagate_s", "total_s"} <= set(js["timings_s"])
    assert "most affected genes" in out and top[0]["gene"] in out
    assert "ko.feather" in out and "ko.json" in out
    assert "loaded" in err


def test_export_without_suffix_and_several_genes(run, capsys, tmp_path) -> None:
    s: RunSession = run["session"]
    rc, _, err = cli(capsys, "--run-toml", run["toml"], "--gene", "Foxo1,Tgfb1", "--desired-expr", "0,2.5",
                     "--n-propagation", "2", "--export", tmp_path / "both")
    assert rc == 0, err
    df = read_expr(tmp_path / "both.feather")
    assert (df["Foxo1"] == 0).all() and (df["Tgfb1"] == 2.5).all()
    js = json.loads((tmp_path / "both.json").read_text())
    assert js["genes"] == ["Foxo1", "Tgfb1"] and js["desired_expr"] == [0.0, 2.5] and js["n_propagation"] == 2
    expect = s.run(["Foxo1", "Tgfb1"], [0.0, 2.5], n_propagation=2)
    np.testing.assert_array_equal(df[s.tissue.var_names].to_numpy(), expect.expression)


def test_cells_csv_scope(run, capsys, tmp_path) -> None:
    s: RunSession = run["session"]
    obs = list(s.tissue.obs_names)
    csv = tmp_path / "cells.csv"
    pd.DataFrame({"left": obs[:40], "right": obs[40:60] + [""] * 20}).to_csv(csv, index=False)
    rc, out, err = cli(capsys, "--run-toml", run["toml"], "--gene", "Foxo1", "--n-propagation", "1",
                       "--cells-csv", csv, "--cells-csv-column", "right", "--out", tmp_path / "r.feather")
    assert rc == 0, err
    df = read_expr(tmp_path / "r.feather")
    x0 = s.tissue.expression
    scope = np.zeros(N_CELLS, bool)
    scope[40:60] = True
    vals = df[s.tissue.var_names].to_numpy()
    assert (vals[scope, s.tissue.gene_index["Foxo1"]] == 0).all()
    np.testing.assert_array_equal(vals[~scope], x0[~scope])  # one TF step: nothing moves outside
    js = json.loads((tmp_path / "r.json").read_text())
    assert js["n_scope_cells"] == 20 and js["scope"] == "cells.csv:right"
    assert "cells.csv:right (20 cells)" in out and "(20 cells) (20 cells)" not in out
    # cell types and cluster ids on the command line
    rc, out, err = cli(capsys, "--run-toml", run["toml"], "--gene", "Foxo1", "--cell-types", "ct0,ct2")
    assert rc == 0, err
    assert "cell types ct0, ct2" in out
    rc, out, err = cli(capsys, "--run-toml", run["toml"], "--gene", "Foxo1", "--clusters", "1")
    assert rc == 0, err
    assert "clusters 1" in out


def test_verbose_prints_step_timings(run, capsys) -> None:
    rc, out, err = cli(capsys, "--run-toml", run["toml"], "--gene", "Tgfb1", "--n-propagation", "3", "--verbose")
    assert rc == 0, err
    for k in (1, 2, 3):
        assert f"step {k}: received ligands" in out
    assert "step 4" not in out
    assert "splash+propagate" in out
    assert "received ligands: dense (exact)" in err


def test_help_has_examples(capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    assert "examples:" in capsys.readouterr().out
    for sub in ("screen", "neighbours"):
        with pytest.raises(SystemExit):
            main([sub, "--help"])
        assert "examples:" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------
# batch
# ---------------------------------------------------------------------------------------------


def _batch_folder(run: dict, folder: Path) -> Path:
    obs = list(run["session"].tissue.obs_names)
    folder.mkdir(parents=True)
    pd.DataFrame({"tumour": obs[:30], "edge": obs[100:130]}).to_csv(folder / "cells.csv", index=False)
    (folder / "selected.txt").write_text("# cells\n" + "\n".join(obs[200:210]) + "\n")
    (folder / "jobs.toml").write_text("""
out_dir = "perturbations"
n_propagation = 3
beta_scale_factor = 1.0
cells_csv = "cells.csv"

genes = ["Foxo1", "Tgfb1"]
desired_expr = [0, 3.5]
cells_csv_columns = ["tumour", ""]

[[jobs]]
gene = ["Stat3", "Cxcl12"]
desired_expr = [0, 0]
cells_obs_file = "selected.txt"
out = "combo_ko.feather"

[[jobs]]
gene = "Jun"
desired_expr = 1.0
n_propagation = 2
beta_scale_factor = 0.5
cells_csv_column = "edge"
name = "jun_custom"

[[jobs]]
genes = ["Pax5", "Irf4"]
desired_expr = 0
out_dir = "ko"
cell_types = ["ct1"]
""")
    return folder / "jobs.toml"


def _outputs(folder: Path) -> dict[str, Path]:
    return {str(p.relative_to(folder)): p for p in sorted(folder.rglob("*.feather"))}


def test_batch_toml_formats_and_parallelism(run, capsys, tmp_path, monkeypatch) -> None:
    s: RunSession = run["session"]
    obs = list(s.tissue.obs_names)
    results = {}
    for par in ("1", "2"):
        folder = tmp_path / f"p{par}"
        batch = _batch_folder(run, folder)
        elsewhere = tmp_path / f"cwd{par}"
        elsewhere.mkdir()
        monkeypatch.chdir(elsewhere)  # relative paths resolve against the batch file, not the cwd
        rc, _, err = cli(capsys, "--run-toml", run["toml"], "--batch-toml", batch, "--batch-parallelism", par)
        assert rc == 0, err
        assert "6 jobs from" in err
        outs = _outputs(folder)
        assert sorted(outs) == sorted([
            "perturbations/Foxo1_3n_0x@tumour.feather", "perturbations/Tgfb1_3n_3.5x.feather",
            "combo_ko.feather", "perturbations/jun_custom.feather",
            "ko/Pax5_3n_0x.feather", "ko/Irf4_3n_0x.feather"])
        for p in outs.values():
            assert p.with_suffix(".json").is_file()
        assert not list(elsewhere.iterdir())
        results[par] = {k: read_expr(p) for k, p in outs.items()}
        js = {k: json.loads(p.with_suffix(".json").read_text()) for k, p in outs.items()}
        assert js["perturbations/Foxo1_3n_0x@tumour.feather"]["n_scope_cells"] == 30
        assert js["perturbations/Tgfb1_3n_3.5x.feather"]["n_scope_cells"] == N_CELLS
        assert js["combo_ko.feather"]["genes"] == ["Stat3", "Cxcl12"]
        assert js["combo_ko.feather"]["n_scope_cells"] == 10
        assert js["perturbations/jun_custom.feather"]["n_propagation"] == 2
        assert js["perturbations/jun_custom.feather"]["n_scope_cells"] == 30
        assert js["ko/Pax5_3n_0x.feather"]["scope"] == "cell types ct1"
    for k in results["1"]:
        pd.testing.assert_frame_equal(results["1"][k], results["2"][k], check_exact=True)
    # the outputs are what the API gives
    r = results["1"]
    tumour = np.isin(obs, obs[:30])
    expect = s.run("Foxo1", 0.0, scope=tumour, n_propagation=3)
    np.testing.assert_array_equal(r["perturbations/Foxo1_3n_0x@tumour.feather"][s.tissue.var_names].to_numpy(),
                                  expect.expression)
    combo = r["combo_ko.feather"]
    sel = np.isin(obs, obs[200:210])
    assert (combo.loc[sel, "Stat3"] == 0).all() and (combo.loc[sel, "Cxcl12"] == 0).all()
    # beta_scale_factor of a job: same as the API with that factor
    from spacetravlr_py.perturbation import Perturber, PerturbSettings

    st = PerturbSettings.from_config(s.cfg)
    st.beta_scale_factor = 0.5
    edge = np.isin(obs, obs[100:130])
    jun = Perturber(s.tissue, s.betabase, st).run("Jun", 1.0, scope=edge, n_propagation=2)
    np.testing.assert_array_equal(r["perturbations/jun_custom.feather"][s.tissue.var_names].to_numpy(),
                                  jun.expression)
    assert (r["ko/Irf4_3n_0x.feather"].loc[s.tissue.clusters == 1, "Irf4"] == 0).all()


def test_batch_single_gene_string_and_scalar(run, capsys, tmp_path) -> None:
    (tmp_path / "one.toml").write_text('gene = "Foxo1"\ndesired_expr = 0.5\nout = "sub/foxo1.feather"\n')
    rc, _, err = cli(capsys, "--run-toml", run["toml"], "--batch-toml", tmp_path / "one.toml")
    assert rc == 0, err
    df = read_expr(tmp_path / "sub" / "foxo1.feather")
    assert (df["Foxo1"] == 0.5).all()


# ---------------------------------------------------------------------------------------------
# screen
# ---------------------------------------------------------------------------------------------


def test_screen_ranks_genes_and_writes_files(run, capsys, tmp_path) -> None:
    s: RunSession = run["session"]
    rc, out, err = cli(capsys, "screen", "--run-toml", run["toml"], "--out-dir", tmp_path / "scr",
                       "--n-propagation", "1", "--top", "5")
    assert rc == 0, err
    df = pd.read_csv(tmp_path / "scr" / "screen.csv")
    assert list(df.columns) == ["rank", "gene", "roles", "desired_expr", "impact", "n_genes_changed", "top_affected",
                                "top_cell_types"]
    roles = s.betabase.roles()
    assert set(df["gene"]) == set().union(*roles.values())
    assert list(df["rank"]) == list(range(1, len(df) + 1))
    assert (np.diff(df["impact"].to_numpy()) <= 0).all()
    assert (df["desired_expr"] == 0).all()
    best = df.iloc[0]
    res = s.run(best["gene"], 0.0, n_propagation=1)
    keep = np.ones(s.tissue.n_genes, bool)
    keep[s.tissue.gene_index[best["gene"]]] = False
    assert best["impact"] == pytest.approx(np.abs(res.delta[:, keep]).mean(), rel=1e-9)
    js = json.loads((tmp_path / "scr" / "screen.json").read_text())
    assert js["mode"] == "knockout" and [r["gene"] for r in js["results"]] == list(df["gene"])
    assert "knockout screen of" in out and f"1. {best['gene']}" in out
    assert out.count("impact") == 5


def test_screen_overexpress_subset(run, capsys) -> None:
    s: RunSession = run["session"]
    rc, out, err = cli(capsys, "screen", "--run-toml", run["toml"], "--genes", "Foxo1,Tgfb1", "--mode",
                       "overexpress", "--n-propagation", "1", "--verbose")
    assert rc == 0, err
    assert "overexpress screen of 2 genes" in out
    assert "Foxo1: impact" in err and "Tgfb1: impact" in err
    rc, _, err = cli(capsys, "screen", "--run-toml", run["toml"], "--genes", "Foxo")
    assert rc != 0 and "'Foxo' is not in the dataset" in err and "did you mean Foxo1" in err
    assert s  # fixture used


# ---------------------------------------------------------------------------------------------
# the installed console script
# ---------------------------------------------------------------------------------------------


def test_console_script_end_to_end(run, tmp_path) -> None:
    exe = Path(sys.executable).parent / PROG
    if not exe.is_file():
        pytest.skip(f"console script {exe} not installed (pip install -e .)")
    p = subprocess.run([str(exe), "--run-toml", run["toml"], "--gene", "Foxo1", "--out", str(tmp_path / "k.feather")],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "k.feather").is_file() and (tmp_path / "k.json").is_file()
    assert "most affected genes" in p.stdout
    p = subprocess.run([str(exe), "--run-toml", run["toml"], "--gene", "Foxo", "--out", str(tmp_path / "x")],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 2
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith(f"{PROG}: error:")]
    assert len(lines) == 1 and "did you mean Foxo1" in lines[0]
    assert "Traceback" not in p.stderr


# ---------------------------------------------------------------------------------------------
# bad input: one clear line, non-zero exit
# ---------------------------------------------------------------------------------------------


def _error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith(f"{PROG}: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def cells_csv(run, tmp_path) -> Path:
    obs = list(run["session"].tissue.obs_names)
    p = tmp_path / "cells.csv"
    pd.DataFrame({"a": obs[:3], "ghosts": [obs[0], "ghost-1", "ghost-2"]}).to_csv(p, index=False)
    return p


BAD_SINGLE = {
    "unknown_gene": (["--gene", "Foxo"], ["gene 'Foxo' is not in the dataset", "did you mean Foxo1"]),
    "nan_value": (["--gene", "Foxo1", "--desired-expr", "nan"], ["desired expression of Foxo1", "finite value >= 0"]),
    "negative_value": (["--gene", "Foxo1", "--desired-expr=-1"], ["finite value >= 0, got -1"]),
    "n_propagation_0": (["--gene", "Foxo1", "--n-propagation", "0"], ["--n-propagation must be >= 1, got 0"]),
    "values_count": (["--gene", "Foxo1", "--desired-expr", "1,2"], ["1 genes but 2 desired values"]),
    "csv_missing": (["--gene", "Foxo1", "--cells-csv", "{tmp}/missing.csv", "--cells-csv-column", "a"],
                    ["cells CSV", "missing.csv not found"]),
    "csv_column_absent": (["--gene", "Foxo1", "--cells-csv", "{csv}", "--cells-csv-column", "b"],
                          ["no column 'b'", "columns: a, ghosts", "--cells-csv-column"]),
    "csv_without_column": (["--gene", "Foxo1", "--cells-csv", "{csv}"], ["without a column"]),
    "column_without_csv": (["--gene", "Foxo1", "--cells-csv-column", "a"], ["--cells-csv-column needs --cells-csv"]),
    "obs_not_in_dataset": (["--gene", "Foxo1", "--cells-csv", "{csv}", "--cells-csv-column", "ghosts"],
                           ["2 of 3 cell ids are not obs_names", "ghost-1"]),
    "bad_cluster_ids": (["--gene", "Foxo1", "--clusters", "a"], ["--clusters 'a'", "cluster ids"]),
    "unknown_cell_type": (["--gene", "Foxo1", "--cell-types", "ct7"], ["cell type 'ct7' is not in obs['cell_type']"]),
    "gene_and_batch": (["--gene", "Foxo1", "--batch-toml", "{tmp}/b.toml"], ["either --gene", "--batch-toml"]),
    "no_work": ([], ["nothing to do"]),
    "bad_parallelism": (["--batch-toml", "{tmp}/b.toml", "--batch-parallelism", "0"],
                        ["--batch-parallelism must be >= 1"]),
}


@pytest.mark.parametrize("case", sorted(BAD_SINGLE))
def test_bad_input_single(run, capsys, tmp_path, cells_csv, monkeypatch, case) -> None:
    args, expected = BAD_SINGLE[case]
    monkeypatch.setattr(sys, "stdin", open("/dev/null"))  # not a TTY: no interactive prompt
    argv = ["--run-toml", run["toml"], *[a.format(tmp=tmp_path, csv=cells_csv) for a in args]]
    rc, _, err = cli(capsys, *argv)
    sys.stdin.close()
    assert rc != 0
    line = _error_line(err)
    for e in expected:
        assert e in line, (e, line)
    assert not list(tmp_path.glob("*.feather"))


def test_missing_run_toml(capsys, tmp_path) -> None:
    rc, _, err = cli(capsys, "--run-toml", tmp_path / "nope.toml", "--gene", "Foxo1")
    assert rc == 2
    line = _error_line(err)
    assert "nope.toml not found" in line and _keys.REPRO_TOML in line
    rc, _, err = cli(capsys, "--gene", "Foxo1")
    assert rc == 2 and "--run-toml is required" in _error_line(err)


def _copy_run(run: dict, dest: Path) -> Path:
    shutil.copytree(run["dir"], dest)
    return dest / _keys.REPRO_TOML


def test_run_toml_of_another_dataset(run, capsys, tmp_path) -> None:
    from spacetravlr_py.datasets import synthetic_tissue

    other = synthetic_tissue(n_cells=N_CELLS + 50, seed=5)
    h5 = tmp_path / "other.h5ad"
    other.adata.write_h5ad(h5)
    toml = _copy_run(run, tmp_path / "run")
    text = toml.read_text()
    old = next(ln for ln in text.splitlines() if ln.startswith("adata_path"))
    toml.write_text(text.replace(old, f'adata_path = "{h5}"'))
    rc, _, err = cli(capsys, "--run-toml", toml, "--gene", "Foxo1", "--out", tmp_path / "x.feather")
    assert rc == 2
    line = _error_line(err)
    assert "trained on another dataset" in line and str(h5) in line and f"{N_CELLS} cells" in line
    assert not (tmp_path / "x.feather").exists()


def test_gene_without_betas_that_modulates_nothing_warns(run, capsys, tmp_path, caplog) -> None:
    toml = _copy_run(run, tmp_path / "run")
    (toml.parent / "Cd19_betadata.feather").unlink()
    (toml.parent / "Cd19.orphan").touch()
    with caplog.at_level(logging.WARNING, logger="spacetravlr_py.perturbation"):
        rc, out, err = cli(capsys, "--run-toml", toml, "--gene", "Cd19")
    assert rc == 0, err
    msgs = [r.getMessage() for r in caplog.records if r.name == "spacetravlr_py.perturbation"]
    assert any("Cd19 has no betas and modulates no trained gene" in m and "nothing but Cd19" in m for m in msgs), msgs
    assert "no other gene changed" in out


BATCH_ERRORS = {
    "gene_and_genes": ('gene = "Foxo1"\ngenes = ["Tgfb1"]\n', "give either gene or genes, not both"),
    "desired_len": ('genes = ["Foxo1", "Tgfb1"]\ndesired_expr = [0, 1, 2]\n',
                    "desired_expr has 3 values for 2 genes"),
    "desired_len_gene_list": ('gene = ["Foxo1", "Tgfb1"]\ndesired_expr = [0, 1, 2]\n',
                              "desired_expr has 3 values for 2 genes"),
    "columns_len": ('cells_csv = "c.csv"\ngenes = ["Foxo1", "Tgfb1"]\ncells_csv_columns = ["a", "b", "c"]\n',
                    "cells_csv_columns has 3 values for 2 genes"),
    "negative": ('gene = "Foxo1"\ndesired_expr = -2\n', "desired_expr value -2: expected a finite number >= 0"),
    "nan": ('gene = "Foxo1"\ndesired_expr = nan\n', "desired_expr value nan"),
    "n_prop": ('gene = "Foxo1"\nn_propagation = 0\n', "n_propagation = 0: expected an integer >= 1"),
    "unknown_key": ('gene = "Foxo1"\ndesired = 0\n', "unknown key 'desired'"),
    "no_gene": ('out_dir = "x"\n', "no perturbation"),
    "job_without_gene": ('[[jobs]]\ndesired_expr = 0\n', "jobs[0]: no gene"),
    "column_without_csv": ('gene = "Foxo1"\ncells_csv_column = "a"\n', "cells_csv is not set"),
    "out_with_genes": ('genes = ["Foxo1", "Tgfb1"]\nout = "x.feather"\n', "out lists one path per gene (2)"),
    "duplicate_outputs": ('[[jobs]]\ngene = "Foxo1"\n[[jobs]]\ngene = "Foxo1"\n', "write the same output"),
    "not_toml": ("gene = \n", "not valid TOML"),
    "unknown_gene": ('gene = "Foxo"\n', "did you mean Foxo1"),
    "obs_file_and_column": ('cells_csv = "c.csv"\ngene = "Foxo1"\ncells_csv_column = "a"\ncells_obs_file = "s.txt"\n',
                            "either cells_obs_file or a cells CSV column"),
    "name_with_genes": ('genes = ["Foxo1", "Tgfb1"]\nname = "x"\n', "'name' names one job"),
    "bad_cell_types": ('gene = "Foxo1"\ncell_types = [1]\n', "cell_types = [1]"),
    "columns_with_gene": ('cells_csv = "c.csv"\ngene = "Foxo1"\ncells_csv_columns = ["a"]\n',
                          "cells_csv_columns goes with genes"),
    "missing_obs_file": ('gene = "Foxo1"\ncells_obs_file = "none.txt"\n', "none.txt: cannot read"),
}


@pytest.mark.parametrize("case", sorted(BATCH_ERRORS))
def test_bad_batch_files(run, capsys, tmp_path, case) -> None:
    body, expected = BATCH_ERRORS[case]
    (tmp_path / "b.toml").write_text(body)
    rc, _, err = cli(capsys, "--run-toml", run["toml"], "--batch-toml", tmp_path / "b.toml")
    assert rc == 2
    line = _error_line(err)
    assert expected in line, line
    assert "b.toml" in line or case in ("unknown_gene", "missing_obs_file")


def test_missing_batch_file(run, capsys, tmp_path) -> None:
    rc, _, err = cli(capsys, "--run-toml", run["toml"], "--batch-toml", tmp_path / "none.toml")
    assert rc == 2 and "batch file" in _error_line(err) and "none.toml not found" in err


def test_docstring_example_of_the_batch_format_parses(tmp_path) -> None:
    """The example in perturbation/batch.py: [[jobs]] inherit shared settings, not the top-level job's lists."""
    from spacetravlr_py.perturbation import batch

    body = batch.__doc__.split("::\n", 1)[1]
    (tmp_path / "b.toml").write_text("\n".join(ln[4:] for ln in body.splitlines()))
    jobs = batch.parse_batch(tmp_path / "b.toml", 4)
    assert [(j.genes, j.desired, j.cells_csv_column, j.out.relative_to(tmp_path).as_posix()) for j in jobs] == [
        (["Foxo1"], [0.0], "tumour", "perturbations/Foxo1_4n_0x@tumour.feather"),
        (["Pax5"], [3.5], None, "perturbations/Pax5_4n_3.5x.feather"),
        (["Irf4", "Spi1"], [0.0, 0.0], None, "irf4_spi1_ko.feather"),
    ]
    assert jobs[2].cells_obs_file == str(tmp_path / "selected.txt")
    assert all(j.n_propagation == 4 and j.beta_scale_factor == 1.0 for j in jobs)
    assert jobs[0].cells_csv == str(tmp_path / "cells.csv")


def test_batch_jobs_inherit_shared_keys_when_the_top_level_has_no_job(tmp_path) -> None:
    from spacetravlr_py.perturbation.batch import parse_batch

    (tmp_path / "b.toml").write_text('''
out_dir = "o"
desired_expr = 2.0
n_propagation = 2
cells_csv = "c.csv"
cells_csv_column = "a"
cell_types = "ct1"

[[jobs]]
gene = "Foxo1"

[[jobs]]
gene = "Tgfb1"
cells_obs_file = "s.txt"
''')
    a, b = parse_batch(tmp_path / "b.toml", 4)
    assert a.desired == [2.0] and a.n_propagation == 2 and a.cells_csv_column == "a" and a.cell_types == ["ct1"]
    assert a.out == tmp_path / "o" / "Foxo1_2n_2x@a.feather"
    # a job's own scope replaces the inherited scope as a whole
    assert b.cells_obs_file == str(tmp_path / "s.txt") and b.cells_csv_column is None and b.cell_types is None

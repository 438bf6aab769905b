"""Perturbation TOML overlays, batch spatial overrides and the cells CSV (issue 18 item 4).

A perturbation TOML names a run and overlays some of its settings; a batch job may change the
received-ligand kernel (radius, grid, contact distance). Both must equal a perturbation of a run whose
repro TOML holds those values — checked bit for bit against such a run folder (same betadata).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.feather as feather
import pytest

from spacetravlr_py import _keys
from spacetravlr_py.cli.perturb import main
from spacetravlr_py.config import SpaceshipConfig
from spacetravlr_py.errors import ConfigError, InputError
from spacetravlr_py.io.betadata import write_betadata
from spacetravlr_py.perturb.batch import batch_from_table, parse_batch, read_batch
from spacetravlr_py.perturb.overlay import read_perturb_toml
from spacetravlr_py.perturb.session import RunSession


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    """A run folder of the synthetic tissue's planted betas, per-ligand radii on (contact ligands use
    contact_distance), so that every spatial key matters."""
    from spacetravlr_py.datasets import synthetic_tissue

    base = tmp_path_factory.mktemp("overlay")
    syn = synthetic_tissue(n_cells=300, seed=3)
    paths = syn.write(base / "data")
    cfg = SpaceshipConfig().with_overrides({"data.adata_path": str(paths["h5ad"]),
                                            "grn.network_data_dir": str(paths["network"].parent),
                                            "spatial.per_ligand_radius": True})
    run_dir = make_run(base / "run", syn.betas, cfg)
    return {"base": base, "syn": syn, "cfg": cfg, "dir": run_dir, "toml": run_dir / _keys.REPRO_TOML,
            "session": RunSession.open(run_dir / _keys.REPRO_TOML)}


def make_run(folder: Path, betas: dict, cfg: SpaceshipConfig) -> Path:
    for g, f in betas.items():
        write_betadata(folder / f"{g}_betadata.feather", f)
    cfg.dump_toml(folder / _keys.REPRO_TOML)
    return folder


def cli(capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main([str(a) for a in args])
    o = capsys.readouterr()
    return rc, o.out, o.err


def expr(path: Path) -> np.ndarray:
    df = feather.read_feather(path)
    return df.drop(columns=[_keys.CELLID_COL]).to_numpy()


def error_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if "error:" in ln]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# ---------------------------------------------------------------------------------------------
# overlays
# ---------------------------------------------------------------------------------------------


def test_overlay_changes_exactly_the_overlaid_keys(run, tmp_path):
    h5_copy = tmp_path / "copies" / "tissue_copy.h5ad"
    h5_copy.parent.mkdir()
    shutil.copy(run["cfg"].data.adata_path, h5_copy)
    shutil.copytree(run["dir"], tmp_path / "run")
    rel_run = Path("..") / "run" / _keys.REPRO_TOML  # relative to the perturbation TOML's folder
    (tmp_path / "cfgs").mkdir()
    pt = tmp_path / "cfgs" / "perturb.toml"
    pt.write_text(f'run_toml = "{rel_run.as_posix()}"\nbeta_cap = 3.0\n'
                  '[perturbation]\nn_propagation = 2\n[spatial]\nradius = 150\n'
                  '[data]\nadata_path = "../copies/tissue_copy.h5ad"\n')
    p = read_perturb_toml(pt)
    assert p.run_toml == (pt.parent / rel_run).resolve() and p.batch == {} and p.notes == []
    base = SpaceshipConfig.from_toml(p.run_toml)
    new = p.apply(base)
    before, after = base.to_dict(), new.to_dict()
    changed = {f"{s}.{k}" for s in after for k in after[s] if before[s].get(k) != after[s][k]}
    assert changed == {"perturbation.n_propagation", "perturbation.beta_cap", "spatial.radius", "data.adata_path"}
    assert new.data.adata_path == str(h5_copy.resolve()) and new.spatial.radius == 150.0
    assert new.perturbation.beta_cap == 3.0 and new.perturbation.n_propagation == 2


def test_overlay_perturbs_like_a_run_whose_repro_holds_the_values(run, tmp_path, capsys):
    pt = tmp_path / "perturb.toml"
    pt.write_text(f'run_toml = "{run["toml"]}"\nbeta_scale_factor = 1.5\n[spatial]\nradius = 120.0\n'
                  'contact_distance = 35.0\n[perturbation]\nligand_grid_factor = 0.25\nn_propagation = 3\n')
    twin_cfg = run["cfg"].with_overrides({"spatial.radius": 120.0, "spatial.contact_distance": 35.0,
                                          "perturbation.ligand_grid_factor": 0.25,
                                          "perturbation.n_propagation": 3,
                                          "perturbation.beta_scale_factor": 1.5})
    twin = make_run(tmp_path / "twin", run["syn"].betas, twin_cfg)
    for how in (["--config", pt], ["--perturb-toml", pt], [pt]):
        rc, _, err = cli(capsys, *how, "--gene", "Cxcl12", "--out", tmp_path / "a.feather")
        assert rc == 0, err
        rc, _, err = cli(capsys, "--run-toml", twin / _keys.REPRO_TOML, "--gene", "Cxcl12",
                         "--out", tmp_path / "b.feather")
        assert rc == 0, err
        a, b = expr(tmp_path / "a.feather"), expr(tmp_path / "b.feather")
        np.testing.assert_array_equal(a, b)
    plain = run["session"].run("Cxcl12", 0.0).expression
    assert np.abs(a - plain).max() > 1e-6  # the overlay did change the result
    assert json.loads((tmp_path / "a.json").read_text())["n_propagation"] == 3


def test_command_line_wins_over_the_file(run, tmp_path, capsys):
    other = tmp_path / "nowhere" / _keys.REPRO_TOML
    pt = tmp_path / "perturb.toml"
    pt.write_text(f'run_toml = "{other}"\n[perturbation]\nbeta_scale_factor = 4.0\n')
    rc, _, err = cli(capsys, "--config", pt, "--run-toml", run["toml"], "--beta-scale-factor", "2",
                     "--gene", "Foxo1", "--out", tmp_path / "a.feather")
    assert rc == 0, err  # --run-toml replaced the missing run_toml
    s2 = RunSession.open(run["toml"], overrides={"perturbation.beta_scale_factor": 2.0})
    np.testing.assert_array_equal(expr(tmp_path / "a.feather"), s2.run("Foxo1", 0.0).expression)


def test_training_sections_in_an_overlay_are_noted(run, tmp_path):
    pt = tmp_path / "p.toml"
    pt.write_text(f'run_toml = "{run["toml"]}"\n[lasso]\nl1_reg = 0.1\n[training.hybrid]\nmoran_k_neighbors = 4\n')
    p = read_perturb_toml(pt)
    assert len(p.notes) == 2
    assert any("[lasso] has no effect on a perturbation" in n for n in p.notes)
    assert any("[training.hybrid]" in n for n in p.notes)


def test_job_fields_in_the_perturbation_toml_run_as_a_batch(run, tmp_path, capsys):
    pt = tmp_path / "perturb.toml"
    pt.write_text(f'run_toml = "{run["toml"]}"\nparallelism = 2\ngenes = ["Foxo1", "Pax5"]\n'
                  'beta_scale_factor = [1.0, 2.0]\nn_propagation = 2\nout_dir = "ko"\n')
    p = read_perturb_toml(pt)
    assert "beta_scale_factor" in p.batch and "perturbation.beta_scale_factor" not in p.overlay
    rc, _, err = cli(capsys, pt)
    assert rc == 0, err
    assert "2 jobs from" in err
    s = run["session"]
    a = expr(tmp_path / "ko" / "Foxo1_2n_0x.feather")
    np.testing.assert_array_equal(a, s.run("Foxo1", 0.0, n_propagation=2).expression)
    s2 = RunSession.open(run["toml"], overrides={"perturbation.beta_scale_factor": 2.0})
    b = expr(tmp_path / "ko" / "Pax5_2n_0x.feather")
    np.testing.assert_array_equal(b, s2.run("Pax5", 0.0, n_propagation=2).expression)


# ---------------------------------------------------------------------------------------------
# batch spatial overrides
# ---------------------------------------------------------------------------------------------


def test_batch_spatial_overrides_equal_a_run_with_those_values(run, tmp_path, capsys, monkeypatch):
    from spacetravlr_py.perturb import batch as batch_mod
    from spacetravlr_py.spatial.received import received_ligands

    built = []
    real = batch_mod.perturber_for
    monkeypatch.setattr(batch_mod, "perturber_for", lambda s, j: built.append(j.spatial()) or real(s, j))
    (tmp_path / "b.toml").write_text(
        'radius = 110.0\ncontact_distance = 25.0\nligand_grid_factor = 0.4\nout_dir = "o"\n'
        'genes = ["Cxcl12", "Foxo1", "Fn1"]\n'
        '[[jobs]]\ngene = "Tgfb1"\nname = "plain"\nradius = 200.0\ncontact_distance = 50.0\n'
        'ligand_grid_factor = 0.4\n')
    rc, _, err = cli(capsys, "--run-toml", run["toml"], "--batch-toml", tmp_path / "b.toml")
    assert rc == 0, err
    # received ligands computed once per distinct setting (the three genes share one)
    assert len(built) == 2
    twin_cfg = run["cfg"].with_overrides({"spatial.radius": 110.0, "spatial.contact_distance": 25.0,
                                          "perturbation.ligand_grid_factor": 0.4})
    twin = RunSession.open(make_run(tmp_path / "twin", run["syn"].betas, twin_cfg) / _keys.REPRO_TOML)
    for g in ("Cxcl12", "Foxo1", "Fn1"):
        np.testing.assert_array_equal(expr(tmp_path / "o" / f"{g}_4n_0x.feather"), twin.run(g, 0.0).expression)
    # the received-ligand table equals the kernel of SPEC §3 with those values (contact ligands at 25)
    job = parse_batch(tmp_path / "b.toml", 4)[0]
    pert = real(run["session"], job)
    t = run["session"].tissue
    lig = [t.var_names[i] for i in pert.lig_genes]
    net = run["syn"].network
    nonsecreted = set(net[(net.edge_type == "lr") & (net.signaling != "Secreted Signaling")].source)
    assert set(lig) & nonsecreted and set(lig) - nonsecreted  # both radii are in play
    radii = [25.0 if g in nonsecreted else 110.0 for g in lig]
    want = received_ligands(t.expression[:, pert.lig_genes], t.coords, radii, grid_factor=0.4)
    np.testing.assert_allclose(pert.RW0, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(pert.RW0, twin.perturber.RW0)
    # a second setting (the run's radii, a grid) gets its own received ligands
    grid_only = run["cfg"].with_overrides({"perturbation.ligand_grid_factor": 0.4})
    twin2 = RunSession.open(make_run(tmp_path / "twin2", run["syn"].betas, grid_only) / _keys.REPRO_TOML)
    np.testing.assert_array_equal(expr(tmp_path / "o" / "plain.feather"), twin2.run("Tgfb1", 0.0).expression)
    # overrides equal to the run's own values reuse the run's prepared perturber
    same = batch_mod.BatchJob(genes=["Tgfb1"], desired=[0.0], out=tmp_path / "x", radius=200.0, contact_distance=50.0)
    assert real(run["session"], same) is run["session"].perturber


def test_batch_parallelism_from_the_file_and_the_flag(run, tmp_path, capsys, monkeypatch):
    from spacetravlr_py.perturb import batch as batch_mod

    seen = []
    real = batch_mod.run_batch
    monkeypatch.setattr(batch_mod, "run_batch", lambda s, jobs, parallelism, on_done:
                        seen.append(parallelism) or real(s, jobs, parallelism=parallelism, on_done=on_done))
    (tmp_path / "b.toml").write_text('parallelism = 3\ngenes = ["Foxo1", "Pax5"]\nn_propagation = 1\n')
    assert cli(capsys, "--run-toml", run["toml"], "--batch-toml", tmp_path / "b.toml")[0] == 0
    assert cli(capsys, "--run-toml", run["toml"], "--batch-toml", tmp_path / "b.toml",
               "--batch-parallelism", "1")[0] == 0
    assert seen == [3, 1]
    assert read_batch(tmp_path / "b.toml", 4).parallelism == 3


def test_seed_batch_forms(tmp_path):
    (tmp_path / "b.toml").write_text(
        'genes = ["Foxo1", "Pax5", "Irf4"]\ndesired_expr = [0.5]\nn_propagation = [1, 2, 3]\n'
        'beta_scale_factor = [1.0, 2.0, 3.0]\nout = ["a.feather", "b.feather", "c.feather"]\n'
        'cells_csv = "c.csv"\ncells_csv_columns = "tumour"\n'
        '[[jobs]]\ncompound_genes = ["Stat3", "Cxcl12"]\ndesired_expr = [0.0, 1.0]\nout = "joint.feather"\n'
        '[[jobs]]\ngenes = "Tgfb1"\nout_dir = "one"\n')
    jobs = parse_batch(tmp_path / "b.toml", 4)
    assert [j.genes for j in jobs] == [["Foxo1"], ["Pax5"], ["Irf4"], ["Stat3", "Cxcl12"], ["Tgfb1"]]
    assert [j.desired for j in jobs[:3]] == [[0.5]] * 3 and jobs[3].desired == [0.0, 1.0]
    assert [j.n_propagation for j in jobs] == [1, 2, 3, 4, 4]
    assert [j.beta_scale_factor for j in jobs[:3]] == [1.0, 2.0, 3.0]
    assert [j.out.name for j in jobs] == ["a.feather", "b.feather", "c.feather", "joint.feather",
                                         "Tgfb1_4n_0x.feather"]
    assert [j.cells_csv_column for j in jobs[:3]] == ["tumour"] * 3


# ---------------------------------------------------------------------------------------------
# cells CSV
# ---------------------------------------------------------------------------------------------


def test_make_cells_csv_then_scope_by_a_column(run, tmp_path, capsys):
    rc, out, err = cli(capsys, "--run-toml", run["toml"], "--make-cells-csv", tmp_path / "sub" / "cells.csv")
    assert rc == 0, err
    t = run["session"].tissue
    df = pd.read_csv(tmp_path / "sub" / "cells.csv", dtype=str, keep_default_na=False)
    assert list(df.columns) == list(t.cluster_labels)
    for k, lab in enumerate(t.cluster_labels):
        listed = [c for c in df[lab] if c]
        assert listed == [n for n, c in zip(t.obs_names, t.clusters) if c == k]
    assert f"{len(t.cluster_labels)} columns" in out
    rc, _, err = cli(capsys, "--run-toml", run["toml"], "--gene", "Foxo1", "--cells-csv",
                     tmp_path / "sub" / "cells.csv", "--cells-csv-column", "ct2", "--out", tmp_path / "a.feather")
    assert rc == 0, err
    rc, _, err = cli(capsys, "--run-toml", run["toml"], "--gene", "Foxo1", "--cell-types", "ct2",
                     "--out", tmp_path / "b.feather")
    assert rc == 0, err
    np.testing.assert_array_equal(expr(tmp_path / "a.feather"), expr(tmp_path / "b.feather"))


def test_make_cells_csv_from_a_perturbation_toml(run, tmp_path, capsys):
    pt = tmp_path / "p.toml"
    pt.write_text(f'run_toml = "{run["toml"]}"\n')
    rc, _, err = cli(capsys, "--config", pt, "--make-cells-csv", tmp_path / "cells.csv")
    assert rc == 0 and (tmp_path / "cells.csv").is_file(), err


def test_help_lists_the_new_flags_with_examples(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for flag in ("--config", "--perturb-toml", "PERTURB_TOML", "--make-cells-csv", "--batch-parallelism",
                 "spacetravlr-perturb --config perturb.toml", "--make-cells-csv cells.csv", "parallelism = 2",
                 "radius / ligand_grid_factor / contact_distance"):
        assert flag in out, flag
    usage = (Path(__file__).resolve().parents[1] / "docs" / "usage.md").read_text()
    for flag in ("--config", "--perturb-toml", "--make-cells-csv", "parallelism", "ligand_grid_factor",
                 "contact_distance", "compound_genes", "run_toml"):
        assert flag in usage, flag


# ---------------------------------------------------------------------------------------------
# one clear line per mistake
# ---------------------------------------------------------------------------------------------

BAD_TOML = {
    "wrong type": ('[perturbation]\nn_propagation = "3"\n', '[perturbation].n_propagation = "3": expected an integer'),
    "unknown section": ('[perturbaton]\nn_propagation = 3\n',
                        "unknown section [perturbaton] (did you mean perturbation?)"),
    "unknown key": ('[spatial]\nradus = 3.0\n', "[spatial].radus: unknown key (did you mean radius?)"),
    "section not a table": ('spatial = 3\n', "[spatial] must be a table of settings"),
    "run_toml not a string": ('run_toml = 3\n', "run_toml = 3: expected the path"),
    "two run keys": ('run_toml = "a"\nrun_repro = "b"\n', "run_toml and run_repro both name the run"),
    "beta_cap list": ('beta_cap = [1.0, 2.0]\ngene = "Foxo1"\n', "beta_cap = [1.0, 2.0]: expected one number"),
    "hoisted twice": ('beta_scale_factor = 2.0\n[perturbation]\nbeta_scale_factor = 3.0\n',
                      "set both at the top level and under [perturbation]"),
    "hoisted bad value": ('beta_scale_factor = "big"\n', '[perturbation].beta_scale_factor = "big"'),
    "nul in run_toml": ('run_toml = "a\\u0000b"\n', "a path cannot contain a NUL character"),
    "nul in an overlay path": ('[data]\nadata_path = "x\\u0000.h5ad"\n', "a path cannot contain a NUL character"),
    "parallelism zero": ('gene = "Foxo1"\nparallelism = 0\n', "parallelism = 0: expected an integer >= 1"),
    "parallelism in a job": ('[[jobs]]\ngene = "Foxo1"\nparallelism = 2\n', "parallelism goes at the top level"),
    "negative radius": ('gene = "Foxo1"\nradius = -1.0\n', "radius = -1.0: expected a finite number > 0"),
    "text radius": ('gene = "Foxo1"\nradius = "wide"\n', "radius = 'wide': expected a finite number > 0"),
    "bool grid": ('gene = "Foxo1"\nligand_grid_factor = true\n', "ligand_grid_factor = True: expected"),
    "inf contact": ('gene = "Foxo1"\ncontact_distance = inf\n', "contact_distance = inf: expected"),
    "compound and gene": ('gene = "Foxo1"\ncompound_genes = ["A", "B"]\n', "give either gene or compound_genes"),
    "out list length": ('genes = ["Foxo1", "Pax5"]\nout = ["a.feather"]\n', "out lists one path per gene (2)"),
    "n_propagation list length": ('genes = ["Foxo1", "Pax5"]\nn_propagation = [1, 2, 3]\n',
                                  "n_propagation has 3 values for 2 genes"),
    "not toml": ('run_toml = \n', "not valid TOML"),
}


@pytest.mark.parametrize("case", sorted(BAD_TOML))
def test_bad_perturbation_tomls_give_one_line(run, tmp_path, capsys, case):
    body, expected = BAD_TOML[case]
    pt = tmp_path / "perturb.toml"
    pt.write_text(body if "run_toml" in body or "run_repro" in body else f'run_toml = "{run["toml"]}"\n' + body)
    rc, _, err = cli(capsys, "--config", pt)
    assert rc == 2
    line = error_line(err)
    assert expected in line and "perturb.toml" in line, line


@pytest.mark.parametrize(("args", "expected"), [
    (["--config", "{d}/none.toml"], "perturbation TOML not found"),
    (["--config", "{d}"], "is a directory"),
    (["--config", "{d}/p.toml", "{d}/q.toml"], "two perturbation TOMLs given"),
    (["--config", "{d}/p.toml"], "--run-toml is required"),
    (["--make-cells-csv", "{d}/c.csv"], "--make-cells-csv needs the run"),
    (["--config", "{d}/jobs.toml", "--batch-toml", "{d}/jobs.toml"], "both give batch jobs"),
    (["--config", "{d}/jobs.toml", "--gene", "Foxo1"], "give either --gene"),
])
def test_bad_command_lines_give_one_line(run, tmp_path, capsys, args, expected):
    (tmp_path / "p.toml").write_text("[perturbation]\nn_propagation = 2\n")
    (tmp_path / "q.toml").write_text("")
    (tmp_path / "jobs.toml").write_text(f'run_toml = "{run["toml"]}"\ngene = "Foxo1"\n')
    rc, _, err = cli(capsys, *[a.format(d=tmp_path) for a in args])
    assert rc == 2 and expected in error_line(err), err


def test_library_errors_are_typed(tmp_path):
    (tmp_path / "p.toml").write_text("[spatial]\nradius = 0\n")
    with pytest.raises(ConfigError, match=r"\[spatial\].radius = 0: expected a number > 0"):
        read_perturb_toml(tmp_path / "p.toml")
    with pytest.raises(InputError, match="parallelism"):
        batch_from_table({"gene": "A", "parallelism": True}, "x.toml", tmp_path, 4)

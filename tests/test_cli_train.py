"""The ``spacetravlr`` training command: flags, progress output, joining, bad input, real data."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from builders import WrittenTissue, write_tissue
from conftest import shared_path
from spacetravlr_py import _keys
from spacetravlr_py.betadata.frame import betadata_path, read_betadata
from spacetravlr_py.cli.main import _split_lr, build_parser, main, overrides_from_args
from spacetravlr_py.config import SpaceshipConfig
from spacetravlr_py.rundir import locks

# -- helpers ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> WrittenTissue:
    return write_tissue(tmp_path_factory.mktemp("cli_small"), n_cells=400, seed=4)


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err  # one line, no traceback
    assert err[0].startswith("spacetravlr: error: ")
    return err[0]


def nothing_written(out: Path) -> bool:
    return not out.exists() or not any(out.rglob("*"))


BAR = re.compile(r"^\[[#.]{30}\] (\d+)/(\d+) \| done (\d+) · orphan (\d+) · failed (\d+)( · already \d+)? \| "
                 r"\d+\.\d\d genes/s \| elapsed \d+:\d\d \| ETA (\d+:\d\d|\?)$")
GENE = re.compile(r"^(\S+)\s+done\s+mean R² (\d\.\d{3}|n/a)\s+\((\d+) clusters, (\d+) modulators\)\s+\d+\.\d\ds$")


# -- flags -----------------------------------------------------------------------------------


def test_help_lists_the_training_flags(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for flag in ("-c", "--h5ad", "--training-mode", "--epochs", "--parallel", "--genes", "--max-genes",
                 "--max-ligands", "--extra-modulators", "--extra-lr", "--l1-reg", "--group-reg", "--n-iter", "--tol",
                 "--lr", "--output-dir", "--plain", "--join-output-dir", "--save-cnn-weights",
                 "--weighted-ligand-scale-factor", "--stale-lock-secs", "examples:"):
        assert flag in out, flag


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("spacetravlr ")


@pytest.mark.parametrize(("value", "pairs"), [
    ("A$B", ["A$B"]),
    ("A$B,C$D", ["A$B", "C$D"]),
    ("A,B", ["A$B"]),
    ("A,B;C,D", ["A$B", "C$D"]),
    ("A,B,C,D", ["A$B", "C$D"]),
    ("A$B;C,D", ["A$B", "C$D"]),
    (" A , B ", ["A$B"]),
])
def test_extra_lr_flag_forms(value: str, pairs: list[str]):
    assert _split_lr(value) == pairs


def test_flags_map_to_config_keys():
    a = build_parser().parse_args(["--h5ad", "x.h5ad", "--genes", "A, B,,C", "--max-genes", "7", "--max-ligands", "3",
                                   "--extra-modulators", "M1,M2", "--extra-lr", "L1,R1;L2,R2", "--l1-reg", "0.01",
                                   "--group-reg", "0.02", "--n-iter", "50", "--tol", "1e-6", "--parallel", "2",
                                   "--weighted-ligand-scale-factor", "3", "--stale-lock-secs", "60",
                                   "--training-mode", "seed", "--layer", "", "--cluster-annot", "ct"])
    o = {k: v for k, v in overrides_from_args(a).items() if v is not None}
    assert o == {"data.adata_path": "x.h5ad", "data.layer": "", "data.cluster_annot": "ct",
                 "training.mode": "seed", "execution.n_parallel": 2, "training.genes": ["A", "B", "C"],
                 "training.max_genes": 7, "grn.max_ligands": 3, "grn.extra_modulators": ["M1", "M2"],
                 "grn.extra_lr": ["L1$R1", "L2$R2"], "spatial.weighted_ligand_scale_factor": 3.0,
                 "lasso.l1_reg": 0.01, "lasso.group_reg": 0.02, "lasso.n_iter": 50, "lasso.tol": 1e-6,
                 "execution.stale_lock_secs": 60.0}


def test_modulator_flags_reach_the_fit(small: WrittenTissue, tmp_path: Path, capsys):
    out = tmp_path / "run"
    lig_means = small.syn.adata.to_df()[small.syn.roles["ligands"]].mean()
    top3 = sorted(lig_means.index, key=lambda g: (-lig_means[g], g))[:3]
    rc = main(small.cli_args(out, "--genes", "Cd19", "--max-ligands", "3", "--extra-lr", "Cd44,Fzd1",
                         "--extra-modulators", "Mki67,Cd19", "--l1-reg", "1e-6", "--group-reg", "1e-6",
                         "--n-iter", "800", "--weighted-ligand-scale-factor", "2"))
    assert rc == 0, capsys.readouterr().err
    cfg = SpaceshipConfig.from_toml(out / _keys.REPRO_TOML)
    assert cfg.grn.max_ligands == 3 and cfg.grn.extra_lr == ["Cd44$Fzd1"]
    assert cfg.grn.extra_modulators == ["Mki67", "Cd19"]
    assert (cfg.lasso.l1_reg, cfg.lasso.group_reg, cfg.lasso.n_iter) == (1e-6, 1e-6, 800)
    assert cfg.spatial.weighted_ligand_scale_factor == 2.0
    assert cfg.training.genes == ["Cd19"]
    fit = read_betadata(betadata_path(out, "Cd19"))
    lr = [m for m in fit.modulators if "$" in m]
    assert all(m.split("$")[0] in top3 for m in lr if m != "Cd44$Fzd1")
    assert "Cd44$Fzd1" in fit.modulators and "Mki67" in fit.modulators
    assert "Cd19" not in fit.modulators  # the target is never its own modulator
    assert all(m.split("#")[0] in top3 for m in fit.modulators if "#" in m)


def test_config_file_and_flag_override(small: WrittenTissue, tmp_path: Path, capsys):
    toml = tmp_path / "spaceship_config.toml"
    toml.write_text(f'[data]\nadata_path = "{small.h5ad}"\n[grn]\nnetwork_data_dir = "{small.net_dir}"\n'
                    '[training]\ngenes = ["Cd19", "Foxo1"]\n[lasso]\nn_iter = 200\n[execution]\noutput_dir = "run"\n')
    rc = main(["-c", str(toml), "--n-iter", "300", "--plain", "--quiet"])
    assert rc == 0, capsys.readouterr().err
    out = tmp_path / "run"  # relative to the TOML's folder
    assert betadata_path(out, "Cd19").exists() and betadata_path(out, "Foxo1").exists()
    assert SpaceshipConfig.from_toml(out / _keys.REPRO_TOML).lasso.n_iter == 300
    # --quiet: only the summary line
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("2/2 genes finished (done 2 · orphan 0 · failed 0) in ")


# -- progress --------------------------------------------------------------------------------


def test_plain_progress_lines(small: WrittenTissue, tmp_path: Path, capsys):
    roles = small.syn.roles
    genes = [*roles["targets"][:2], *roles["ligands"][:2], roles["tfs"][-1]]
    # a root TF has no grn edge into it: an orphan once the LR and TF-ligand families are off
    root = roles["root_tfs"][0]
    toml = tmp_path / "c.toml"
    toml.write_text("[grn]\nuse_lr_modulators = false\nuse_tfl_modulators = false\n")
    rc = main(["-c", str(toml), *small.cli_args(tmp_path / "run", "--genes", ",".join([*genes, root]))])
    assert rc == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"dataset: {small.h5ad} (400 cells × {len(small.genes)} genes, 5 clusters from "
                               "obs['cell_type'], layer 'imputed_count')")
    assert any(line.startswith("network: ") and "mouse" in line for line in lines)
    assert any(line.startswith("received ligands: ") for line in lines) is False  # no ligand needed
    gene_lines = [m for line in lines if (m := GENE.match(line))]
    assert sorted(m.group(1) for m in gene_lines) == sorted(genes)
    for m in gene_lines:
        assert m.group(2) == "n/a" or 0.0 <= float(m.group(2)) <= 1.0
        assert int(m.group(3)) <= 5
    assert any(re.match(rf"^{root}\s+orphan\s+no modulators in the network$", line) for line in lines)
    bars = [m for line in lines if (m := BAR.match(line))]
    assert bars, lines
    last = bars[-1]
    assert last.group(1) == last.group(2) == "6"
    assert (last.group(3), last.group(4), last.group(5)) == ("5", "1", "0")
    assert last.group(7) == "0:00"
    assert re.match(r"^6/6 genes finished \(done 5 · orphan 1 · failed 0\) in \d+:\d\d$", lines[-1])


def test_progress_counts_already_finished_genes(small: WrittenTissue, tmp_path: Path, capsys):
    out = tmp_path / "run"
    assert main(small.cli_args(out, "--genes", "Cd19,Foxo1", "--quiet")) == 0
    capsys.readouterr()
    assert main(small.cli_args(out, "--genes", "Cd19,Foxo1,Pax5")) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(BAR.match(line) and "already 2" in line for line in lines)
    assert sum(1 for line in lines if GENE.match(line)) == 1


def test_progress_bar_rate_and_eta_midway():
    import io

    from spacetravlr_py.training import ConsoleReporter, GeneOutcome
    from spacetravlr_py.training.reporters import RunStart

    s = io.StringIO()
    p = ConsoleReporter(s, plain=True, bar_every=0.0)
    p.run_started(RunStart(config={}, output_dir="out", dataset="d", n_cells=1, n_genes=1, n_clusters=1,
                           cluster_annot="c", layer="", network=None, species="", mode="seed", n_queued=10,
                           n_workers=1))
    p.tally.t0 -= 4.0  # 4 s elapsed
    p.gene_finished(GeneOutcome("A", "done", seconds=1.5, mean_r2=0.5, n_modulators=3, n_clusters_kept=2))
    p.gene_finished(GeneOutcome("B", "orphan", reason="no modulators in the network"))
    lines = s.getvalue().splitlines()[2:]  # after the dataset and output lines
    assert re.match(r"^A\s+done\s+mean R² 0\.500\s+\(2 clusters, 3 modulators\)\s+1\.50s$", lines[0])
    m = BAR.match(lines[-1])
    assert m and m.group(1) == "2" and m.group(3) == "1" and m.group(4) == "1"
    rate = float(lines[-1].split("|")[2].split()[0])
    assert 0.4 <= rate <= 0.5  # 2 genes in ~4 s
    eta = m.group(7)
    assert eta != "?" and 14 <= int(eta.split(":")[0]) * 60 + int(eta.split(":")[1]) <= 21  # 8 left at ~0.5/s


# -- joining ---------------------------------------------------------------------------------


def test_join_trains_the_remaining_genes_with_the_runs_settings(small: WrittenTissue, tmp_path: Path, capsys):
    out = tmp_path / "run"
    genes = "Cd19,Foxo1,Pax5,Tgfb1"
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        # another (live) process holds two genes: the first run finishes the other two
        for g in ("Pax5", "Tgfb1"):
            locks.lock_path(out, g).parent.mkdir(parents=True, exist_ok=True)
            locks.lock_path(out, g).write_text(json.dumps({"host": locks.HOST, "pid": sleeper.pid, "started": 0}))
        assert main(small.cli_args(out, "--genes", genes, "--n-iter", "300")) == 0
        assert "2 still locked by other processes" in capsys.readouterr().out
    finally:
        sleeper.kill()
        sleeper.wait()
    # a second process joins: queue and hyperparameters come from the run's repro TOML
    rc = main(["--join-output-dir", str(out), "--plain", "--genes", "Cd3e", "--parallel", "1"])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    assert "--genes is ignored when joining" in cap.err
    trained = sorted(m.group(1) for line in cap.out.splitlines() if (m := GENE.match(line)))
    assert trained == ["Pax5", "Tgfb1"]
    assert not betadata_path(out, "Cd3e").exists()
    assert SpaceshipConfig.from_toml(out / _keys.REPRO_TOML).lasso.n_iter == 300
    # repeating the run's own value is not a conflict
    assert main(["--join-output-dir", str(out), "--plain", "--quiet", "--n-iter", "300"]) == 0


def test_join_rejects_conflicting_hyperparameters(small: WrittenTissue, tmp_path: Path, capsys):
    out = tmp_path / "run"
    assert main(small.cli_args(out, "--genes", "Cd19", "--quiet")) == 0
    capsys.readouterr()
    before = sorted(p.name for p in out.rglob("*"))
    assert main(["--join-output-dir", str(out), "--l1-reg", "0.5"]) == 2
    line = error_line(capsys)
    assert "lasso.l1_reg" in line and "0.5" in line and "1e-05" in line
    assert main(["--join-output-dir", str(out), "--output-dir", str(tmp_path / "elsewhere")]) == 2
    assert "different folders" in error_line(capsys)
    assert main(["--join-output-dir", str(out), "--h5ad", str(tmp_path / "other.h5ad")]) == 2
    assert "drop --h5ad" in error_line(capsys)
    assert sorted(p.name for p in out.rglob("*")) == before


def test_join_directory_without_repro_toml(tmp_path: Path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["--join-output-dir", str(tmp_path / "empty")]) == 2
    line = error_line(capsys)
    assert str(tmp_path / "empty") in line and _keys.REPRO_TOML in line
    assert main(["--join-output-dir", str(tmp_path / "missing")]) == 2
    assert "not a directory" in error_line(capsys)
    assert nothing_written(tmp_path / "empty")


def test_rerun_with_changed_hyperparameter_is_refused(small: WrittenTissue, tmp_path: Path, capsys):
    out = tmp_path / "run"
    assert main(small.cli_args(out, "--genes", "Cd19", "--quiet")) == 0
    capsys.readouterr()
    assert main(small.cli_args(out, "--genes", "Foxo1", "--group-reg", "0.3")) == 2
    line = error_line(capsys)
    assert "lasso.group_reg" in line and _keys.REPRO_TOML in line
    assert not betadata_path(out, "Foxo1").exists()
    # other genes with the same settings may be added to the folder
    assert main(small.cli_args(out, "--genes", "Foxo1", "--quiet")) == 0


# -- bad input: one clear line, nothing written ----------------------------------------------


def test_unknown_gene_suggests_near_matches(small: WrittenTissue, tmp_path: Path, capsys):
    out = tmp_path / "run"
    assert main(small.cli_args(out, "--genes", "Cd19,Foxo2,Nope")) == 2
    line = error_line(capsys)
    assert "'Foxo2' is not a gene of" in line and "did you mean Foxo1" in line and "Nope" in line
    assert nothing_written(out)
    assert main(small.cli_args(out, "--genes", "cd19")) == 2
    assert "did you mean Cd19" in error_line(capsys)


def test_one_cell_cluster(small: WrittenTissue, tmp_path: Path, capsys):
    def edit(a):
        ct = a.obs["cell_type"].astype(str)
        ct.iloc[7] = "lonely"
        a.obs["cell_type"] = ct.astype("category")

    h5ad = small.variant(tmp_path / "d", edit)
    out = tmp_path / "run"
    rc = main(["--h5ad", str(h5ad), "--network-dir", str(small.net_dir), "--output-dir", str(out), "--plain",
               "--genes", "Cd19,Foxo1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 0
    warn = [ln for ln in err if "cluster 'lonely' has 1 cell" in ln]
    assert len(warn) == 1 and "obs['cell_type']" in warn[0] and "betas are zero" in warn[0]
    for f in out.glob("*_betadata.feather"):  # the lonely cluster's row exists and is zero
        fit = read_betadata(f)
        k = fit.row_ids.index("lonely")
        assert fit.intercept[k] == 0 and not fit.coefs[k].any()


def test_constant_target_gene_becomes_an_orphan(small: WrittenTissue, tmp_path: Path, capsys):
    def edit(a):
        j = list(a.var_names).index("Cd19")
        for M in (a.X, a.layers["imputed_count"]):
            M[:, j] = 2.0

    h5ad = small.variant(tmp_path / "d", edit)
    out = tmp_path / "run"
    rc = main(["--h5ad", str(h5ad), "--network-dir", str(small.net_dir), "--output-dir", str(out), "--plain",
               "--genes", "Cd19,Foxo1"])
    assert rc == 0
    text = capsys.readouterr().out
    assert re.search(r"^Cd19\s+orphan\s+constant expression \(2 in every cell\)$", text, re.M)
    assert (out / "Cd19.orphan").exists() and not betadata_path(out, "Cd19").exists()
    assert "constant expression" in (out / "log" / "Cd19.log").read_text()
    assert betadata_path(out, "Foxo1").exists()


def test_nan_in_the_layer(small: WrittenTissue, tmp_path: Path, capsys):
    def edit(a):
        a.layers["imputed_count"][5, 3] = np.nan

    h5ad = small.variant(tmp_path / "d", edit)
    out = tmp_path / "run"
    assert main(["--h5ad", str(h5ad), "--network-dir", str(small.net_dir), "--output-dir", str(out)]) == 2
    line = error_line(capsys)
    gene = small.genes[3]
    assert "layer 'imputed_count'" in line and "1 non-finite" in line
    assert "cell 'cell000005'" in line and f"gene '{gene}'" in line
    assert nothing_written(out)


def test_output_directory_is_a_file(small: WrittenTissue, tmp_path: Path, capsys):
    f = tmp_path / "taken"
    f.write_text("x")
    assert main(small.cli_args(f)) == 2
    line = error_line(capsys)
    assert str(f) in line and "is a file" in line
    assert f.read_text() == "x"
    assert main(small.cli_args(f / "sub")) == 2
    assert "is a file" in error_line(capsys)


def test_output_directory_not_writable(small: WrittenTissue, tmp_path: Path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running with privileges that ignore directory permissions (root)")
        assert main(small.cli_args(ro)) == 2
        line = error_line(capsys)
        assert str(ro) in line and "not writable" in line
        assert main(small.cli_args(ro / "new")) == 2
        assert "cannot be created" in error_line(capsys)
        assert not any(ro.iterdir())
    finally:
        ro.chmod(0o700)


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs Linux /proc")
def test_output_directory_that_cannot_be_created(small: WrittenTissue, capsys):
    """Works as root too: nobody can create a folder in /proc."""
    out = Path("/proc/spacetravlr-test-run")
    assert main(small.cli_args(out, "--genes", "Cd19")) == 2
    line = error_line(capsys)
    assert str(out) in line and "choose another --output-dir" in line


def test_folder_of_another_dataset_is_refused(small: WrittenTissue, tmp_path: Path, capsys):
    out = tmp_path / "run"
    assert main(small.cli_args(out, "--genes", "Cd19", "--quiet")) == 0
    capsys.readouterr()
    other = write_tissue(tmp_path / "other", n_cells=300, seed=9)
    assert main(other.cli_args(out, "--genes", "Cd19")) == 2
    line = error_line(capsys)
    assert _keys.REPRO_TOML in line and "different dataset" in line and str(small.h5ad) in line
    # the same path, new contents (the file was regenerated): caught by the manifest's fingerprint
    same_path = write_tissue(tmp_path / "regen", n_cells=400, seed=4)
    assert main(same_path.cli_args(tmp_path / "run2", "--genes", "Cd19", "--quiet")) == 0
    capsys.readouterr()
    write_tissue(tmp_path / "regen", n_cells=400, seed=5)
    assert main(same_path.cli_args(tmp_path / "run2", "--genes", "Foxo1")) == 2
    line = error_line(capsys)
    assert _keys.MANIFEST_JSON in line and "another dataset" in line
    assert not betadata_path(tmp_path / "run2", "Foxo1").exists()


def test_killed_first_run_still_records_its_dataset(small: WrittenTissue, tmp_path: Path, capsys):
    """The manifest is written when a run starts, so a folder is tied to its dataset even if the first
    run never finished."""
    out = tmp_path / "run"
    assert main(small.cli_args(out, "--genes", "Cd19", "--quiet")) == 0
    man = json.loads((out / _keys.MANIFEST_JSON).read_text())
    (out / _keys.MANIFEST_JSON).write_text(json.dumps({"status": "running", "dataset": man["dataset"]}))
    (out / _keys.REPRO_TOML).unlink()
    other = write_tissue(tmp_path / "other", n_cells=300, seed=9)
    capsys.readouterr()
    assert main(other.cli_args(out, "--genes", "Cd19")) == 2
    assert "another dataset" in error_line(capsys)


def test_full_training_mode_bad_input_one_line(small: WrittenTissue, tmp_path: Path, capsys, monkeypatch):
    torch = pytest.importorskip("torch")
    out = tmp_path / "run"
    full = ("--training-mode", "full", "--genes", "Cd19")
    assert main(small.cli_args(out, *full, "--epochs", "0")) == 2
    assert "[training].epochs = 0: full mode trains for at least 1 epoch" in error_line(capsys)
    if not torch.cuda.is_available():
        assert main(small.cli_args(out, *full, "--device", "cuda")) == 2
        assert 'device = "cuda" but PyTorch sees no CUDA device' in error_line(capsys)
    monkeypatch.setitem(sys.modules, "torch", None)  # as without the full extra
    assert main(small.cli_args(out, *full)) == 2
    line = error_line(capsys)
    assert "--training-mode full needs PyTorch" in line and "pip install 'spacetravlr-py[full]'" in line
    assert nothing_written(out)


def test_full_training_mode_cli(small: WrittenTissue, tmp_path: Path, capsys):
    pytest.importorskip("torch")
    out = tmp_path / "run"
    assert main(small.cli_args(out, "--training-mode", "full", "--genes", "Cd19", "--epochs", "1",
                           "--save-cnn-weights", "--device", "cpu")) == 0
    assert (out / "Cd19_betadata.feather").exists() and (out / "CNN_weights" / "Cd19_cnn_weights.npz").exists()
    assert "cnn\t" in (out / "log" / "Cd19.log").read_text()


def test_no_dataset(capsys, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["--plain"]) == 2
    line = error_line(capsys)
    assert "--h5ad" in line and "spacetravlr demo" in line


def test_bad_extra_lr_names_the_item(small: WrittenTissue, tmp_path: Path, capsys):
    out = tmp_path / "run"
    assert main(small.cli_args(out, "--genes", "Cd19", "--extra-lr", "Cd44$Fzd1$X")) == 2
    line = error_line(capsys)
    assert "'Cd44$Fzd1$X'" in line and "L$R" in line and "--extra-lr" in line
    assert main(small.cli_args(out, "--genes", "Cd19", "--extra-lr", "Cd44,Fzd1,Tgfb1")) == 2
    assert "is not a ligand-receptor pair" in error_line(capsys)
    bad = tmp_path / "pairs.txt"
    bad.write_text("Cd44,Fzd1\nTgfb1\n")
    toml = tmp_path / "c.toml"
    toml.write_text(f'[grn]\nextra_lr_file = "{bad}"\n')
    assert main(["-c", str(toml), *small.cli_args(out, "--genes", "Cd19")]) == 2
    line = error_line(capsys)
    assert "'Tgfb1'" in line and str(bad) in line
    assert nothing_written(out)


def test_missing_extra_lr_file(small: WrittenTissue, tmp_path: Path, capsys):
    toml = tmp_path / "c.toml"
    toml.write_text(f'[grn]\nextra_lr_file = "{tmp_path / "pairs.txt"}"\n')
    assert main(["-c", str(toml), *small.cli_args(tmp_path / "run", "--genes", "Cd19")]) == 2
    line = error_line(capsys)
    assert "pairs.txt" in line and "extra_lr" in line


def test_extra_lr_file_is_used(small: WrittenTissue, tmp_path: Path, capsys):
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("# extra pairs\nCd44,Fzd1\nCd200$Kdr  # another\n")
    toml = tmp_path / "c.toml"
    toml.write_text(f'[grn]\nextra_lr_file = "{pairs}"\n[lasso]\nl1_reg = 0.0\ngroup_reg = 0.0\n')
    assert main(["-c", str(toml), *small.cli_args(tmp_path / "run", "--genes", "Cd19", "--quiet")]) == 0
    fit = read_betadata(betadata_path(tmp_path / "run", "Cd19"))
    assert {"Cd44$Fzd1", "Cd200$Kdr"} <= set(fit.modulators)


def test_console_script_exit_codes(small: WrittenTissue, tmp_path: Path):
    cli = Path(sys.executable).parent / "spacetravlr"
    cmd = [str(cli)] if cli.exists() else [sys.executable, "-c", "from spacetravlr_py.cli.main import run; run()"]
    r = subprocess.run([*cmd, *small.cli_args(tmp_path / "run", "--genes", "Nope")], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().startswith("spacetravlr: error: --genes: 'Nope'")
    t0 = time.monotonic()
    r = subprocess.run([*cmd, *small.cli_args(tmp_path / "run", "--genes", "Cd19")], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - t0 < 60


# -- real data -------------------------------------------------------------------------------


def _real_network(species: str, genes: set[str], out_dir: Path, *, subset: bool) -> Path:
    """``build_network`` on the real base GRN + CellChat tables; ``subset`` first keeps the rows and TF
    columns of the base GRN that name genes of the dataset (same result for those genes, much faster)."""
    from spacetravlr_py.io.network import write_network
    from spacetravlr_py.io.network_build import build_network

    grn_path = shared_path("grn", f"{species}_base_grn.parquet")
    lr_path = shared_path("lr", f"cellchat_{species}.csv")
    base: Path | pd.DataFrame = grn_path
    if subset:
        import pyarrow.parquet as pq

        names = pq.read_schema(grn_path).names
        cols = ["peak_id", "gene_short_name", *[c for c in names if c in genes]]
        df = pd.read_parquet(grn_path, columns=cols)
        base = df[df["gene_short_name"].isin(genes)]
    net = build_network(base, lr_path, species=species)
    return write_network(net, out_dir, species).parent


def _summary(out: Path) -> dict:
    man = json.loads((out / _keys.MANIFEST_JSON).read_text())
    r2 = []
    for g in man["genes"]["done"]:
        rows = (out / "log" / f"{g}.log").read_text().splitlines()[1:]
        r2 += [float(r.split("\t")[4]) for r in rows if r.count("\t") == 8 and r.split("\t")[8] == "True"]
    return {"counts": man["counts"], "mean_r2_kept": float(np.mean(r2)) if r2 else None,
            "total_s": man["timings"]["total_s"]}


@pytest.mark.realdata
@pytest.mark.slow
def test_real_melanoma_end_to_end(tmp_path: Path, capsys, record_property):
    import anndata as ad

    h5ad = shared_path("fixtures", "small_melanoma.h5ad")
    genes = set(ad.read_h5ad(h5ad).var_names)
    net_dir = _real_network("human", genes, tmp_path / "net", subset=False)
    out = tmp_path / "run"
    rc = main(["--h5ad", str(h5ad), "--layer", "", "--cluster-annot", "cell_type", "--network-dir", str(net_dir),
               "--output-dir", str(out), "--plain"])
    text = capsys.readouterr().out
    assert rc == 0
    assert "(242 cells × 8 genes, 3 clusters from obs['cell_type'], layer 'X')" in text
    assert "human_network.parquet (human)" in text
    s = _summary(out)
    print(f"\nmelanoma: {s}")
    record_property("melanoma", json.dumps(s))
    assert s["counts"]["done"] + s["counts"]["orphaned"] == 8 and s["counts"]["failed"] == 0
    assert s["counts"]["done"] >= 1
    for f in out.glob("*_betadata.feather"):
        fit = read_betadata(f)
        assert fit.row_ids == ["CD4+ T", "CD8+ T", "Tumor 1"]
        assert np.isfinite(fit.coefs).all()


@pytest.mark.realdata
def test_real_visium_singleton_clusters_are_reported(tmp_path: Path, capsys):
    """The shipped 49-spot file has three 1-spot clusters: one warning line each, and the run goes on."""
    import anndata as ad

    h5ad = shared_path("fixtures", "visium_mouse_brain_49spots.h5ad")
    a = ad.read_h5ad(h5ad)
    net_dir = _real_network("mouse", set(a.var_names), tmp_path / "net", subset=True)
    out = tmp_path / "run"
    rc = main(["--h5ad", str(h5ad), "--layer", "", "--cluster-annot", "leiden", "--output-dir", str(out),
               "--network-dir", str(net_dir), "--plain", "--quiet", "--max-genes", "40"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "obs['leiden']: cluster '6' has 1 cell" in err
    assert sum("has 1 cell" in ln for ln in err.splitlines()) == 3
    s = _summary(out)
    assert s["counts"]["done"] + s["counts"]["orphaned"] == 40 and s["counts"]["failed"] == 0


@pytest.mark.realdata
def test_real_visium_end_to_end(tmp_path: Path, capsys, record_property):
    import anndata as ad

    a = ad.read_h5ad(shared_path("fixtures", "visium_mouse_brain_49spots.h5ad"))
    sizes = a.obs["leiden"].value_counts()
    a = a[a.obs["leiden"].isin(sizes[sizes >= 2].index)].copy()  # drop the three 1-spot clusters
    h5ad = tmp_path / "visium46.h5ad"
    a.write_h5ad(h5ad)
    net_dir = _real_network("mouse", set(a.var_names), tmp_path / "net", subset=True)
    out = tmp_path / "run"
    rc = main(["--h5ad", str(h5ad), "--layer", "", "--cluster-annot", "leiden", "--network-dir", str(net_dir),
               "--output-dir", str(out), "--plain", "--quiet", "--max-genes", "150"])
    assert rc == 0, capsys.readouterr().err
    s = _summary(out)
    print(f"\nvisium (46 spots, first 150 genes): {s}")
    record_property("visium", json.dumps(s))
    assert s["counts"]["done"] + s["counts"]["orphaned"] == 150 and s["counts"]["failed"] == 0
    assert s["counts"]["done"] > 50
    assert 0.2 <= s["mean_r2_kept"] <= 1.0
    fit = read_betadata(next(out.glob("*_betadata.feather")))
    assert set(fit.row_ids) <= {"0", "2"}
    assert any("$" in m for m in fit.modulators) or any("#" not in m for m in fit.modulators)


def test_failed_gene_is_reported_and_exit_code_is_1(small: WrittenTissue, tmp_path: Path, capsys, monkeypatch):
    from spacetravlr_py.training import SeedTrainer

    real = SeedTrainer.fit
    targets = small.syn.roles["targets"]

    def flaky(self, ctx, gene):
        if gene == targets[0]:
            raise FloatingPointError("solver blew up")
        return real(self, ctx, gene)

    monkeypatch.setattr(SeedTrainer, "fit", flaky)
    out = tmp_path / "run"
    rc = main(small.cli_args(out, "--genes", f"{targets[0]},{targets[1]}"))
    cap = capsys.readouterr()
    assert rc == 1
    assert re.search(rf"^{targets[0]}\s+FAILED\s+FloatingPointError: solver blew up$", cap.out, re.M)
    log = (out / "log" / f"{targets[0]}.log").read_text()
    assert "status\tfailed" in log and "Traceback" in log
    man = json.loads((out / _keys.MANIFEST_JSON).read_text())
    assert man["counts"]["failed"] == 1 and "solver blew up" in man["genes"]["failed"][targets[0]]
    assert not (out / f"{targets[0]}.lock").exists() and not betadata_path(out, targets[0]).exists()
    # a failed gene is retried by the next run
    monkeypatch.setattr(SeedTrainer, "fit", real)
    assert main(small.cli_args(out, "--genes", targets[0], "--quiet")) == 0
    assert betadata_path(out, targets[0]).exists()


def test_terminal_progress_bar(small: WrittenTissue, tmp_path: Path):
    """On a terminal the live bar is drawn (Rich) and the per-gene lines still appear."""
    import io

    from spacetravlr_py.training import ConsoleReporter, train

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    s = Tty()
    cfg = SpaceshipConfig().with_overrides({"data.adata_path": str(small.h5ad),
                                            "grn.network_data_dir": str(small.net_dir),
                                            "execution.output_dir": str(tmp_path / "run"),
                                            "training.genes": ["Cd19", "Foxo1"]})
    res = train(cfg, reporter=ConsoleReporter(s, plain=False))
    assert res.counts["done"] == 2
    text = s.getvalue()
    assert "training" in text and "Cd19" in text and "2/2" in text


def test_absent_extra_modulators_and_pairs_warn(small: WrittenTissue, tmp_path: Path, caplog):
    import logging

    caplog.set_level(logging.WARNING, logger="spacetravlr")
    args = small.cli_args(tmp_path / "run", "--genes", "Cd19", "--quiet", "--extra-modulators", "Nope1,Cd44",
                      "--extra-lr", "Zzz$Cd44")
    assert main(args) == 0
    assert "1 extra modulators are not genes of the dataset and are ignored: Nope1" in caplog.text
    assert "1 extra ligand–receptor pairs name genes that are not in the dataset" in caplog.text
    assert "Zzz$Cd44" in caplog.text

"""A run per condition (issue 18 item 2): ``--condition OBS_COL`` trains, joins, perturbs and compares.

Each group trains on its own cells into ``conditions/<folder>/`` (an ordinary run folder); its betadata
are bit-identical to an ordinary run on a dataset holding only that group's cells; the parent manifest maps
labels to folders; ``--join-output-dir`` continues every group; perturbation and the library pick a group;
``compare`` ranks genes by the difference of their mean response.
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
from spacetravlr_py.config import SpaceshipConfig
from spacetravlr_py.datasets import synthetic_tissue
from spacetravlr_py.errors import InputError
from spacetravlr_py.io.betadata import read_betadata
from spacetravlr_py.perturb.compare import compare_conditions, comparison_table, list_conditions
from spacetravlr_py.perturb.session import RunSession
from spacetravlr_py.rundir import open_run
from spacetravlr_py.rundir.conditions import folder_names, sanitize_group
from spacetravlr_py.training import train

GENES = ["Cd19", "Ms4a1", "Foxo1"]
LEFT, RIGHT = "a/b", "a_b"  # two labels whose plain folder names collide


# ---------------------------------------------------------------- folder names


def test_folder_names_follow_the_seed_and_never_collide():
    assert sanitize_group("batch A / drug+B") == "batch_A_drug_B"
    assert sanitize_group("  ") == sanitize_group("...") == sanitize_group("//") == "group"
    assert sanitize_group("x" * 100) == "x" * 64 and sanitize_group("é-1") == "-1"
    names = folder_names(["A/B", "A_B", "A B", "A-B"])
    assert names == {"A B": "A_B", "A-B": "A-B", "A/B": "A_B_2", "A_B": "A_B_3"}
    assert len({v.casefold() for v in names.values()}) == 4
    # case-insensitive filesystems (macOS, Windows) would merge "A" and "a"
    assert folder_names(["a", "A"]) == {"A": "A", "a": "a_2"}
    # names an earlier run recorded are kept; new labels avoid them
    assert folder_names(["A_B", "A/B"], taken={"A_B": "A_B"}) == {"A_B": "A_B", "A/B": "A_B_2"}


# ---------------------------------------------------------------- a trained run per condition


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    base = tmp_path_factory.mktemp("cond")
    syn = synthetic_tissue(n_cells=600, seed=2)
    a = syn.adata
    x = a.obsm["spatial"][:, 0]
    sample = np.where(x < np.median(x), LEFT, RIGHT).astype(object)
    sample[:3] = None  # three cells without a condition
    a.obs["sample"] = pd.Categorical(sample)
    paths = syn.write(base / "data")
    return {"base": base, "syn": syn, "h5ad": paths["h5ad"], "net": paths["network"].parent,
            "sample": sample}


def _cfg(data, out: Path, **over) -> SpaceshipConfig:
    o = {"data.adata_path": str(data["h5ad"]), "grn.network_data_dir": str(data["net"]),
         "execution.output_dir": str(out), "training.genes": GENES}
    o.update(over)
    return SpaceshipConfig().with_overrides(o)


@pytest.fixture(scope="module")
def run(data):
    out = data["base"] / "run"
    res = train(_cfg(data, out, **{"data.condition": "sample"}))
    return {"out": out, "res": res}


def test_layout_manifest_and_repro_of_a_run_per_condition(run, data):
    out, res = run["out"], run["res"]
    m = json.loads((out / _keys.MANIFEST_JSON).read_text())
    groups = {g["label"]: g for g in m["conditions"]["groups"]}
    assert m["conditions"]["column"] == "sample" and set(groups) == {LEFT, RIGHT}
    assert groups[LEFT]["folder"] == "a_b" and groups[RIGHT]["folder"] == "a_b_2"
    n_left = int(np.sum(data["sample"] == LEFT))
    assert groups[LEFT]["n_cells"] == n_left and groups[RIGHT]["n_cells"] == 597 - n_left
    assert m["status"] == "complete" and m["counts"]["done"] + m["counts"]["orphan"] == 6
    assert all(g["status"] == "complete" for g in groups.values())
    assert set(res.conditions) == {LEFT, RIGHT} and res.counts["done"] + res.counts["orphan"] == 6
    parent = SpaceshipConfig.from_toml(out / _keys.REPRO_TOML)
    assert parent.data.condition == "sample" and parent.data.condition_group is None
    for label, g in groups.items():
        child = out / _keys.CONDITIONS_DIR / g["folder"]
        assert (child / _keys.CONDITION_LABEL_FILE).read_text() == label + "\n"
        tr = open_run(child)  # an ordinary run folder
        assert tr.cfg.data.condition_group == label and tr.dir.root == child
        assert tr.manifest is not None and tr.manifest.dataset["n_obs"] == g["n_cells"]
        assert tr.manifest.cluster_labels == [f"ct{i}" for i in range(5)]
        assert (child / _keys.LOG_DIR / "Cd19.log").is_file()
    assert not list(out.glob("*_betadata.feather"))  # betadata only in the condition folders


def test_each_condition_equals_an_ordinary_run_on_its_cells(run, data, tmp_path):
    """The group's models are fitted on its own cells only (received ligands included): an ordinary run on a
    dataset holding only those cells gives the same bits, cluster by cluster."""
    import anndata as ad

    full = ad.read_h5ad(data["h5ad"])
    sub = full[np.asarray(data["sample"] == LEFT, dtype=bool)].copy()
    h5 = tmp_path / "left.h5ad"
    sub.write_h5ad(h5)
    cfg = _cfg(data, tmp_path / "plain").with_overrides({"data.adata_path": str(h5)})
    train(cfg)
    child = run["out"] / _keys.CONDITIONS_DIR / "a_b"
    for g in GENES:
        a = read_betadata(child / f"{g}_betadata.feather").to_dataframe().set_index(_keys.CLUSTER_COL)
        b = read_betadata(tmp_path / "plain" / f"{g}_betadata.feather").to_dataframe().set_index(_keys.CLUSTER_COL)
        present = [c for c in a.index if c in b.index]
        assert len(present) >= 2
        pd.testing.assert_frame_equal(a.loc[present, b.columns], b.loc[present], check_exact=True)
        absent = [c for c in a.index if c not in b.index]  # whole-dataset labels kept: zero rows
        assert np.all(a.loc[absent].to_numpy() == 0.0)


def test_perturbation_picks_a_condition(run, data, tmp_path, capsys):
    from spacetravlr_py.cli.perturb import main

    out = run["out"]
    s = RunSession.open(out, condition=LEFT)
    assert s.run_dir == out / _keys.CONDITIONS_DIR / "a_b" and s.tissue.n_cells == int(np.sum(data["sample"] == LEFT))
    same = RunSession.open(out / _keys.CONDITIONS_DIR / "a_b")
    by_folder = RunSession.open(out / _keys.REPRO_TOML, condition="a_b_2")
    assert by_folder.tissue.n_cells == 597 - s.tissue.n_cells
    ref = same.run("Foxo1", 0.0)
    np.testing.assert_array_equal(s.run("Foxo1", 0.0).expression, ref.expression)
    capsys.readouterr()
    rc = main(["--run-toml", str(out / _keys.REPRO_TOML), "--condition", LEFT, "--gene", "Foxo1",
               "--out", str(tmp_path / "ko.feather")])
    assert rc == 0, capsys.readouterr().err
    df = feather.read_feather(tmp_path / "ko.feather")
    np.testing.assert_array_equal(df[s.tissue.var_names].to_numpy(), ref.expression)
    assert list(df[_keys.CELLID_COL]) == list(s.tissue.obs_names)
    # cells CSV of one condition: its cells only
    assert main(["--run-toml", str(out), "--condition", RIGHT, "--make-cells-csv", str(tmp_path / "c.csv")]) == 0
    cells = pd.read_csv(tmp_path / "c.csv", dtype=str, keep_default_na=False)
    assert {v for col in cells for v in cells[col] if v} == set(by_folder.tissue.obs_names)


@pytest.mark.parametrize(("args", "match"), [
    ([], r"trains one model set per obs\['sample'\] group; pick one with --condition GROUP \(conditions: a/b, a_b\)"),
    (["--condition", "zz"], r"no condition 'zz' in .* \(conditions: a/b, a_b\)"),
])
def test_condition_errors_are_one_line(run, tmp_path, capsys, args, match):
    from spacetravlr_py.cli.perturb import main

    capsys.readouterr()
    assert main(["--run-toml", str(run["out"]), *args, "--gene", "Foxo1", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    import re

    assert re.search(match, err[0]), err[0]


def test_condition_on_other_runs_is_one_line(run, tmp_path):
    child = run["out"] / _keys.CONDITIONS_DIR / "a_b"
    with pytest.raises(InputError, match="holds condition 'a/b', not 'a_b'; open the parent run folder"):
        open_run(child, condition=RIGHT)
    plain = tmp_path / "plain"
    plain.mkdir()
    SpaceshipConfig().with_overrides({"data.adata_path": "/x.h5ad"}).dump_toml(plain / _keys.REPRO_TOML)
    with pytest.raises(InputError, match=r"was not trained per condition \(\[data\].condition is not set\)"):
        open_run(plain, condition="a")


def test_compare_ranks_genes_by_the_difference_of_mean_responses(run, tmp_path, capsys):
    from spacetravlr_py.cli.perturb import main

    out = run["out"]
    cmp = compare_conditions(out, (LEFT, RIGHT), "Foxo1")
    sa = RunSession.open(out, condition=LEFT)
    ma = sa.run("Foxo1", 0.0).delta.mean(axis=0)
    mb = RunSession.open(out, condition=RIGHT).run("Foxo1", 0.0).delta.mean(axis=0)
    names = list(sa.tissue.var_names)
    t = cmp.table.set_index("gene")
    assert "Foxo1" not in t.index and len(t) > 0
    for gene in t.index:
        j = names.index(gene)
        assert t.loc[gene, "mean_delta_a"] == ma[j] and t.loc[gene, "mean_delta_b"] == mb[j]
        assert t.loc[gene, "difference"] == ma[j] - mb[j]
    diffs = cmp.table["abs_difference"].to_numpy()
    assert np.all(diffs[:-1] >= diffs[1:]) and diffs[0] > 0
    capsys.readouterr()
    rc = main(["compare", "--run-toml", str(out / _keys.REPRO_TOML), "--conditions", f"{LEFT},{RIGHT}",
               "--gene", "Foxo1", "--out", str(tmp_path / "cmp"), "--top", "1"])
    assert rc == 0, capsys.readouterr().err
    csv = pd.read_csv(tmp_path / "cmp.csv")
    pd.testing.assert_frame_equal(csv, cmp.table, check_exact=False, rtol=1e-15)
    js = json.loads((tmp_path / "cmp.json").read_text())
    assert js["condition_a"]["label"] == LEFT and js["condition_b"]["label"] == RIGHT and len(js["top"]) == 1
    assert js["top"][0]["gene"] == cmp.table["gene"].iloc[0]
    assert main(["compare", "--run-toml", str(out), "--conditions", LEFT, "--gene", "Foxo1"]) == 2
    assert "give exactly two conditions" in capsys.readouterr().err


def test_comparison_table_by_hand():
    t = comparison_table(["A", "B", "C", "D", "K"], np.array([0.5, 0.0, -1.0, 0.0, -3.0]),
                         np.array([0.25, 0.0, 1.0, 0.125, -3.0]), exclude=["K"])
    assert list(t["gene"]) == ["C", "A", "D"]
    assert list(t["difference"]) == [-2.0, 0.25, -0.125]


def test_list_conditions_for_the_viewer(run):
    out = run["out"]
    want = [{"label": LEFT, "folder": "a_b"}, {"label": RIGHT, "folder": "a_b_2"}]
    for where in (out, out / _keys.REPRO_TOML, out / _keys.CONDITIONS_DIR / "a_b_2"):
        got = list_conditions(where)
        assert [{k: g[k] for k in ("label", "folder")} for g in got] == want
        assert all(g["status"] == "complete" and g["n_cells"] > 0 for g in got)


def test_join_continues_every_condition(run, data, tmp_path, capsys):
    from spacetravlr_py.cli.main import main

    out = tmp_path / "joined"
    shutil.copytree(run["out"], out)
    m = json.loads((out / _keys.MANIFEST_JSON).read_text())
    m["output_dir"] = str(out)
    (out / _keys.MANIFEST_JSON).write_text(json.dumps(m))
    for d in (out, *(out / _keys.CONDITIONS_DIR).iterdir()):
        cfg = SpaceshipConfig.from_toml(d / _keys.REPRO_TOML)
        cfg.with_overrides({"execution.output_dir": str(d)}).dump_toml(d / _keys.REPRO_TOML)
    gone = out / _keys.CONDITIONS_DIR / "a_b_2" / "Ms4a1_betadata.feather"
    before = {p: p.read_bytes() for p in out.rglob("*_betadata.feather") if p != gone}
    want = gone.read_bytes()
    gone.unlink()
    capsys.readouterr()
    assert main(["--join-output-dir", str(out), "--plain"]) == 0, capsys.readouterr().err
    assert gone.read_bytes() == want
    assert all(p.read_bytes() == b for p, b in before.items())
    text = capsys.readouterr().out
    assert "condition obs['sample'] = 'a_b'" in text and "already 3" in text


def test_bad_condition_inputs_are_one_line_and_write_nothing(data, tmp_path, capsys):
    import anndata as ad

    from spacetravlr_py.cli.main import main

    base = ["--h5ad", str(data["h5ad"]), "--network-dir", str(data["net"]), "--genes", "Cd19", "--plain"]
    capsys.readouterr()
    assert main([*base, "--output-dir", str(tmp_path / "r1"), "--condition", "sampel"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "obs has no condition column 'sampel' (did you mean sample?)" in err[0]
    # a group of 3 cells, one per cell type: nothing can be fitted
    a = ad.read_h5ad(data["h5ad"])
    tiny = np.array(["big"] * a.n_obs, dtype=object)
    first = [int(np.flatnonzero(a.obs["cell_type"].astype(str) == c)[0]) for c in ("ct0", "ct1", "ct2")]
    tiny[first] = "tiny"
    a.obs["batch"] = tiny
    h5 = tmp_path / "t.h5ad"
    a.write_h5ad(h5)
    assert main(["--h5ad", str(h5), *base[2:], "--output-dir", str(tmp_path / "r2"), "--condition", "batch"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "condition group 'tiny' has 3 cell(s) and no cell type" in err[0]
    assert not (tmp_path / "r1").exists() and not (tmp_path / "r2").exists()


def test_small_clusters_of_a_group_get_the_usual_warning(run):
    """The left half lacks some cell types: each gets the one-line warning of check_clusters, and zero betas."""
    from spacetravlr_py.io.anndata import tissue_from_config
    from spacetravlr_py.training.run import check_clusters

    child = run["out"] / _keys.CONDITIONS_DIR / "a_b"
    df = read_betadata(child / "Cd19_betadata.feather").to_dataframe().set_index(_keys.CLUSTER_COL)
    t = tissue_from_config(open_run(child).cfg)
    small = [lab for lab, n in zip(t.cluster_labels, t.cluster_sizes()) if n < 2]
    lines = check_clusters(t)
    assert small and len(lines) == len(small) and all(f"cluster '{lab}'" in ln for lab, ln in zip(small, lines))
    assert all(np.all(df.loc[lab].to_numpy() == 0.0) for lab in small)


def test_a_seed_condition_folder_opens_and_perturbs(run, tmp_path):
    """The seed writes conditions/<dir>/ with its own repro TOML (condition set, no group) and
    condition_label.txt: such a folder opens as that group, and its parent lists the labels."""
    from test_seed_files import seed_repro_10

    seed = tmp_path / "seedrun"
    child = seed / _keys.CONDITIONS_DIR / "a_b"
    shutil.copytree(run["out"] / _keys.CONDITIONS_DIR / "a_b", child)
    for f in (_keys.MANIFEST_JSON, _keys.REPRO_TOML):
        (child / f).unlink()
    shutil.rmtree(child / _keys.LOG_DIR)
    src = SpaceshipConfig.from_toml(run["out"] / _keys.REPRO_TOML)
    (child / _keys.REPRO_TOML).write_text(seed_repro_10(src.data.adata_path, str(child), "cell_type", "sample"))
    (seed / _keys.REPRO_TOML).write_text(seed_repro_10(src.data.adata_path, str(seed), "cell_type", "sample"))
    s = RunSession.open(child)
    assert s.cfg.data.condition_group == LEFT
    assert s.tissue.n_cells == RunSession.open(run["out"], condition=LEFT).tissue.n_cells
    assert [g["label"] for g in list_conditions(seed)] == [LEFT]
    assert RunSession.open(seed, condition=LEFT).run_dir == child


def test_new_flags_are_in_help_with_examples_and_in_the_docs(capsys):
    from spacetravlr_py.cli.main import main as train_main
    from spacetravlr_py.cli.perturb import main as perturb_main

    texts = []
    for main, args in ((train_main, ["--help"]), (perturb_main, ["--help"]), (perturb_main, ["compare", "--help"])):
        with pytest.raises(SystemExit):
            main(args)
        texts.append(capsys.readouterr().out)
    train_help, perturb_help, compare_help = texts
    for s in ("--condition OBS_COL", "--tf-prior PATH", "--write-minimal-repro-h5ad", "--condition sample",
              "--tf-prior tf_priors.csv"):
        assert s in train_help, s
    for s in ("--condition GROUP", "compare --run-toml", "--conditions ctrl,treated"):
        assert s in perturb_help, s
    assert "--conditions A,B" in compare_help and "mean_delta_a" in compare_help
    docs = Path(__file__).resolve().parents[1] / "docs"
    usage, config = (docs / "usage.md").read_text(), (docs / "config.md").read_text()
    for s in ("--condition OBS_COL", "--tf-prior PATH", "--write-minimal-repro-h5ad", "--condition GROUP",
              "spacetravlr-perturb compare", "spacetravlr config examples"):
        assert s in usage, s
    for s in ("condition = ", "tf_priors = ", "write_minimal_repro_h5ad = "):
        assert s in config, s

"""Files written by the Rust seed open here (SPEC §11, issue 18 item 1).

The fixtures are written by these tests from the seed's documented formats (its ``config.rs`` key set,
its README and parameter reference): a ``spaceship_config.toml`` template, ``spacetravlr_run_repro.toml``
files of the seed 1.0 and 1.3, and seed run folders whose betadata have integer ``Cluster`` rows.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather
import pytest

from spacetravlr_py import _keys
from spacetravlr_py.config import SpaceshipConfig
from spacetravlr_py.errors import ConfigError, InputError
from spacetravlr_py.io.betadata import frame_from_table, read_betadata, write_betadata

SEED_MIRROR = Path("/work/.mirror/Koushul+SpaceTravLR_rust/repo")

# The seed's template: every section of its config.rs, the [training.hybrid] gating table, and the
# optional keys commented out (as the seed ships it).
SEED_TEMPLATE = """\
# spaceship config of the seed (test fixture)
[data]
# adata_path = "/data/brain.h5ad"
layer = "imputed_count"
cluster_annot = "cell_type_int"
# condition = "batch"

[spatial]
radius = 200
spatial_dim = 32
contact_distance = 50
weighted_ligand_scale_factor = 1.0

[grn]
# tf_priors_feather = "/data/priors.feather"
tf_ligand_cutoff = 0.15
# max_lr_pairs = 50
# top_lr_pairs_by_mean_expression = 100

[cnn]
adam_beta_1 = 0.9
adam_beta_2 = 0.999
adam_epsilon = 1e-5
spatial_feature_radius = 200.0
output_activation = "sigmoidx2"

[lasso]
l1_reg = 1e-9
group_reg = 1e-9
n_iter = 100
tol = 1e-4

[training]
mode = "seed"
epochs = 10
learning_rate = 2e-4
score_threshold = 0.1

[training.hybrid]
min_cells_per_cluster_for_cnn = 80
max_modulators_soft_for_cnn = 600
moran_k_neighbors = 8
moran_permutations = 99
moran_p_value_max = 0.05
moran_p_value_max_when_over_modulator_cap = 0.01
require_all_clusters_lasso_converged = true
hybrid_modulator_spatial_weight = 1.0
hybrid_cnn_permissiveness = 1

[execution]
n_parallel = 9
# write_minimal_repro_h5ad = true

[perturbation]
beta_scale_factor = 1.0
n_propagation = 4
ligand_grid_factor = 0.5

[model_export]
save_cnn_weights = false
compressed_npz = true
output_subdir = "CNN_weights"
"""


def seed_repro_10(adata: str, out_dir: str, cluster_annot: str = "cell_type_int") -> str:
    """A repro TOML as the seed 1.0 serialises its whole config (serde: every key, None omitted)."""
    return f"""\
[data]
adata_path = "{adata}"
layer = "imputed_count"
cluster_annot = "{cluster_annot}"
condition = "sample"

[spatial]
radius = 200.0
spatial_dim = 32
contact_distance = 50.0
weighted_ligand_scale_factor = 1.0

[grn]
tf_priors_feather = "/data/priors.feather"
tf_ligand_cutoff = 0.2
max_lr_pairs = 40
top_lr_pairs_by_mean_expression = 100
use_tf_modulators = true
use_lr_modulators = true
use_tfl_modulators = true

[cnn]
adam_beta_1 = 0.9
adam_beta_2 = 0.999
adam_epsilon = 1e-5
spatial_feature_radius = 100.0
output_activation = "sigmoidx2"

[lasso]
l1_reg = 1e-5
group_reg = 1e-5
n_iter = 500
tol = 0.0001

[training]
seed_only = true
mode = "seed"
epochs = 10
learning_rate = 0.001
score_threshold = 0.2

[training.hybrid]
min_cells_per_cluster_for_cnn = 80
max_modulators_soft_for_cnn = 256
moran_k_neighbors = 8
moran_permutations = 99
moran_p_value_max = 0.05
moran_p_value_max_when_over_modulator_cap = 0.01
require_all_clusters_lasso_converged = true
hybrid_modulator_spatial_weight = 1.0
hybrid_cnn_permissiveness = 0.5

[execution]
n_parallel = 1
output_dir = "{out_dir}"
write_minimal_repro_h5ad = false
stale_lock_secs = 0

[perturbation]
beta_scale_factor = 1.0
n_propagation = 4

[model_export]
save_cnn_weights = false
compressed_npz = true
output_subdir = "CNN_weights"
"""


SEED_REPRO_13 = """\
[data]
adata_path = "/data/tonsil.h5ad"
layer = "imputed_count"
cluster_annot = "cell_type"

[execution]
output_dir = "/runs/tonsil"
random_seed = 7
n_parallel = 9
stale_lock_secs = 3600

[spatial]
radius = 300
spatial_dim = 64
contact_distance = 30

[ligand_field]
mode = "spatial"
pair_selection = "prob"
received_ligand_norm = "global_n"
weighted_ligand_scale_factor = 2.0
ligand_grid_factor = 0.25
kh = 0.5
max_interactions = 200

[grn]
tf_ligand_cutoff = 0.1
celloracle_p_max = 0.05
max_lr = 200
train_modulators = "tf,lr"
extra_contact_lr = ["Cadm1$Cadm1"]

[cnn]
spatial_feature_radius = 300.0
output_activation = "sigmoidx2"
cnn_minibatch_size = 256
cnn_max_cells_per_epoch = 1000
lasso_pred_align_weight = 0.05
drop_cnn_if_insample_worse_than_lasso = true

[lasso]
l1_reg = 1e-4
group_reg = 1e-5
n_iter = 500
tol = 1e-4
scale_modulators = true
unscale_betas_on_export = false
parallel_lasso_clusters = false
gram_override = true

[training]
mode = "hybrid"
epochs = 100
learning_rate = 4e-4
score_threshold = 0.1
genes = ["Foxo1", "Pax5"]

[perturbation]
beta_scale_factor = 100.0
n_propagation = 4
perturbed_gene_min_bound = 0.0
cells_csv = "cell_scope.csv"
cells_csv_column = "my_cells"

[model_export]
save_cnn_weights = false
compressed_npz = true
output_subdir = "CNN_weights"
"""


def load(tmp_path: Path, text: str, name: str = "cfg.toml") -> SpaceshipConfig:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return SpaceshipConfig.from_toml(p)


def config_error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as ei:
        load(tmp_path, text)
    msg = str(ei.value)
    assert "\n" not in msg and msg.startswith(str(tmp_path / "cfg.toml")), msg
    return msg


def one_note_each(notes: list[str], keys: list[str]) -> None:
    """Every key is named by exactly one note, and every note names one of the keys."""
    for k in keys:
        assert sum(k in n for n in notes) == 1, (k, notes)
    assert len(notes) == len(keys), notes
    assert all("\n" not in n for n in notes)


# ---------------------------------------------------------------------------------------------
# configs
# ---------------------------------------------------------------------------------------------


def test_seed_template_loads_with_one_warning_for_the_hybrid_table(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="spacetravlr_py.config"):
        cfg = load(tmp_path, SEED_TEMPLATE, "spaceship_config.toml")
    one_note_each(cfg.notes, ["[training.hybrid]"])
    assert "is not implemented" in cfg.notes[0] and "moran_k_neighbors" in cfg.notes[0]
    assert [r.getMessage() for r in caplog.records] == cfg.notes  # logged once each
    assert cfg.data.cluster_annot == "cell_type_int" and cfg.spatial.radius == 200.0
    assert cfg.grn.tf_ligand_cutoff == 0.15 and cfg.lasso.l1_reg == 1e-9 and cfg.lasso.n_iter == 100
    assert cfg.training.learning_rate == 2e-4 and cfg.execution.n_parallel == 9
    assert cfg.perturbation.ligand_grid_factor == 0.5 and cfg.cnn.spatial_feature_radius == 200.0


def test_the_seeds_own_template_loads_when_its_mirror_is_here(tmp_path):
    if not SEED_MIRROR.is_dir() or shutil.which("git") is None:
        pytest.skip("the seed's repository mirror is not on this machine")
    text = subprocess.run(["git", "-C", str(SEED_MIRROR), "show", "HEAD:spaceship_config.toml"],
                          capture_output=True, text=True, check=True).stdout
    cfg = load(tmp_path, text, "spaceship_config.toml")
    one_note_each(cfg.notes, ["[training.hybrid]"])


def test_seed_10_repro_loads_with_one_warning_per_unimplemented_key(tmp_path):
    cfg = load(tmp_path, seed_repro_10("/data/x.h5ad", str(tmp_path)), _keys.REPRO_TOML)
    one_note_each(cfg.notes, ["[data].condition", "[grn].tf_priors_feather", "[grn].max_lr_pairs",
                              "[grn].top_lr_pairs_by_mean_expression", "[training].seed_only",
                              "[training.hybrid]", "[execution].write_minimal_repro_h5ad"])
    note = {n.split(": ", 1)[1].split(" ")[0]: n for n in cfg.notes}
    assert "read as [grn].max_ligands" in note["[grn].max_lr_pairs"]
    assert "the seed ignores it too" in note["[grn].top_lr_pairs_by_mean_expression"]
    assert "ignored: no minimal .h5ad" in note["[execution].write_minimal_repro_h5ad"]
    assert cfg.grn.max_ligands == 40 and cfg.training.mode == "seed" and cfg.execution.stale_lock_secs == 0
    assert cfg.data.adata_path == "/data/x.h5ad" and cfg.execution.output_dir == str(tmp_path)


def test_seed_13_repro_maps_what_it_can_and_warns_for_the_rest(tmp_path):
    cfg = load(tmp_path, SEED_REPRO_13, _keys.REPRO_TOML)
    one_note_each(cfg.notes, [
        "[ligand_field].weighted_ligand_scale_factor", "[ligand_field].ligand_grid_factor", "[ligand_field]: ",
        "[grn].celloracle_p_max", "[grn].max_lr ", "[grn].train_modulators", "[grn].extra_contact_lr",
        "[cnn].cnn_minibatch_size", "[cnn].cnn_max_cells_per_epoch", "[cnn].lasso_pred_align_weight",
        "[cnn].drop_cnn_if_insample_worse_than_lasso", "[lasso].scale_modulators",
        "[lasso].unscale_betas_on_export", "[lasso].parallel_lasso_clusters", "[lasso].gram_override",
        "[training].mode", "[perturbation].perturbed_gene_min_bound"])
    lf = next(n for n in cfg.notes if "[ligand_field]: " in n)
    assert "ignored keys: mode, pair_selection, received_ligand_norm, kh, max_interactions" in lf
    assert cfg.spatial.weighted_ligand_scale_factor == 2.0 and cfg.perturbation.ligand_grid_factor == 0.25
    assert cfg.grn.max_ligands == 200
    assert (cfg.grn.use_tf_modulators, cfg.grn.use_lr_modulators, cfg.grn.use_tfl_modulators) == (True, True, False)
    assert cfg.training.mode == "seed" and cfg.training.genes == ["Foxo1", "Pax5"]
    assert cfg.execution.random_seed == 7 and cfg.perturbation.beta_scale_factor == 100.0
    assert cfg.perturbation.cells_csv == str(tmp_path / "cell_scope.csv")
    hybrid = next(n for n in cfg.notes if "[training].mode" in n)
    assert 'is read as "seed"' in hybrid


def test_a_seed_config_dumps_as_ours_and_reloads_without_notes(tmp_path):
    cfg = load(tmp_path, SEED_REPRO_13, "seed.toml")
    out = cfg.dump_toml(tmp_path / "ours.toml")
    again = SpaceshipConfig.from_toml(out)
    assert again.notes == [] and again == cfg
    for k in ("ligand_field", "seed_only", "max_lr", "train_modulators", "hybrid"):
        assert k not in out.read_text()


@pytest.mark.parametrize("mode", ["minimal", "seed-only"])
def test_the_seeds_old_mode_names(tmp_path, mode):
    cfg = load(tmp_path, f'[training]\nmode = "{mode}"\n')
    assert cfg.training.mode == "seed"
    one_note_each(cfg.notes, ["[training].mode"])


BAD_SEED = {
    "unknown key next to seed keys": ("[training]\nseed_only = true\nepoch = 3\n",
                                      "unknown key (did you mean epochs?)"),
    "misspelt hybrid key": ('[training.hybrid]\nmoran_k_neighbours = 8\n',
                            "[training.hybrid].moran_k_neighbours: unknown key (did you mean moran_k_neighbors?)"),
    "misspelt ligand_field key": ('[ligand_field]\npair_selektion = "prob"\n',
                                  "[ligand_field].pair_selektion: unknown key (did you mean pair_selection?)"),
    "ligand_field not a table": ('ligand_field = 3\n', "[ligand_field] must be a table"),
    "alias and key both": ('[grn]\nmax_lr = 3\nmax_ligands = 4\n', "sets both"),
    "moved key disagrees": ('[spatial]\nweighted_ligand_scale_factor = 1.0\n[ligand_field]\n'
                            'weighted_ligand_scale_factor = 2.0\n', "disagree; keep one of them"),
    "moved key bad type": ('[ligand_field]\nligand_grid_factor = "fine"\n',
                           '[perturbation].ligand_grid_factor = "fine": expected a number'),
    "train_modulators unknown token": ('[grn]\ntrain_modulators = "tf,xyz"\n', "unknown: xyz"),
    "train_modulators not a string": ('[grn]\ntrain_modulators = 3\n', "expected a comma-separated string"),
    "train_modulators contradiction": ('[grn]\ntrain_modulators = "tf"\nuse_lr_modulators = true\n',
                                       "contradicts use_lr_modulators = true"),
    "nul in a path": ('[data]\nadata_path = "/x\\u0000.h5ad"\n', "a path cannot contain a NUL character"),
    "nul in output_dir": ('[execution]\noutput_dir = "run\\u0000"\n', "[execution].output_dir"),
}


@pytest.mark.parametrize("case", sorted(BAD_SEED))
def test_bad_seed_keys_give_one_clear_line(tmp_path, case):
    text, expected = BAD_SEED[case]
    assert expected in config_error(tmp_path, text)


def test_nul_path_in_a_run_toml_is_one_line_in_the_perturb_program(tmp_path, capsys):
    from spacetravlr_py.cli.perturb import main

    (tmp_path / "run.toml").write_text('[data]\nadata_path = "/x\\u0000.h5ad"\n')
    rc = main(["--run-toml", str(tmp_path / "run.toml"), "--gene", "A", "--out", str(tmp_path / "o.feather")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0 and len(err) == 1 and "NUL character" in err[0], err


# ---------------------------------------------------------------------------------------------
# betadata rows
# ---------------------------------------------------------------------------------------------


def _table(ids: list, n_mods: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    cols = {"Cluster": ids, "beta0": rng.standard_normal(len(ids))}
    for j in range(n_mods):
        cols[f"beta_TF{j}"] = rng.standard_normal(len(ids))
    return pd.DataFrame(cols)


@pytest.mark.parametrize("fmt", ["feather", "parquet", "csv"])
@pytest.mark.parametrize("case", ["repeated", "empty", "missing id"])
def test_repeated_empty_or_unnamed_rows_are_rejected_at_read_time(tmp_path, fmt, case):
    ids: list = {"repeated": [0, 1, 1, 2], "empty": [], "missing id": [0.0, None, 2.0]}[case]
    df = _table(ids)
    if case == "empty":
        df = df.astype({"Cluster": "int64"})
    p = tmp_path / f"G_betadata.{fmt}"
    {"feather": lambda: feather.write_feather(df, p), "parquet": lambda: df.to_parquet(p, index=False),
     "csv": lambda: df.to_csv(p, index=False)}[fmt]()
    with pytest.raises(InputError) as ei:
        read_betadata(p)
    msg = str(ei.value)
    assert "\n" not in msg and msg.startswith(str(p))
    assert {"repeated": "Cluster '1' has 2 rows", "empty": "no rows",
            "missing id": "1 rows have no id"}[case] in msg, msg


def test_integer_valued_float_ids_read_as_integers():
    f = frame_from_table(_table([0.0, 1.0, 2.0]), "G")
    assert f.row_ids == ["0", "1", "2"]


def test_repeated_cell_ids_are_rejected_too():
    df = _table(["c1", "c2", "c1"]).rename(columns={"Cluster": "CellID"})
    with pytest.raises(InputError, match="CellID 'c1' has 2 rows"):
        frame_from_table(df, "G")


def _tissue(labels: list, n_per: int = 3):
    """A tiny tissue whose cluster column holds ``labels`` (n_per cells each)."""
    import anndata as ad

    from spacetravlr_py.io.anndata import load_tissue

    obs_labels = [lab for lab in labels for _ in range(n_per)]
    n = len(obs_labels)
    a = ad.AnnData(np.ones((n, 3)), obs=pd.DataFrame({"cl": obs_labels}, index=[f"c{i}" for i in range(n)]))
    a.var_names = ["TF0", "TF1", "Y"]
    a.obsm["spatial"] = np.arange(2 * n, dtype=float).reshape(n, 2)
    return load_tissue(a, layer="", cluster_annot="cl")


def _mapping(tissue, ids: list) -> np.ndarray:
    from spacetravlr_py.betadata.betabase import Betabase

    bb = Betabase([frame_from_table(_table(ids), "Y")], tissue)
    return bb.mappings[bb["Y"].mapping]


def test_integer_rows_are_cluster_ids_when_labels_are_strings():
    t = _tissue(["b", "a", "c"])  # sorted labels a, b, c → ids 0, 1, 2
    m = _mapping(t, [2, 0, 1])  # row 0 = id 2 = "c", row 1 = id 0 = "a", row 2 = id 1 = "b"
    want = {"a": 1, "b": 2, "c": 0}
    assert m.tolist() == [want[t.cluster_labels[k]] for k in t.clusters]


def test_integer_rows_are_labels_when_labels_are_integers(caplog):
    t = _tissue([7, 2, 5])  # integer labels: a row "5" is the cluster labelled 5 (as the seed writes them)
    m = _mapping(t, [5, 2, 7])
    assert m.tolist() == [{"5": 0, "2": 1, "7": 2}[t.cluster_labels[k]] for k in t.clusters]
    with caplog.at_level(logging.WARNING, logger="spacetravlr_py.betadata"):
        m = _mapping(t, [7, 2])  # cluster 5 was not fitted by the seed: zero betas, said once
    assert m.tolist() == [{"7": 0, "2": 1, "5": -1}[t.cluster_labels[k]] for k in t.clusters]
    assert any("no row for cluster(s) 5" in r.getMessage() for r in caplog.records)


def test_missing_cluster_ids_get_zero_betas_with_a_warning(caplog):
    t = _tissue(["x", "y", "z"])
    with caplog.at_level(logging.WARNING, logger="spacetravlr_py.betadata"):
        m = _mapping(t, [0, 2])
    assert m.tolist() == [{"x": 0, "y": -1, "z": 1}[t.cluster_labels[k]] for k in t.clusters]
    assert any("no row for cluster(s) y" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(("labels", "ids", "expected"), [
    (["x", "y"], [0, 1, 5], "Cluster row '5' is none of the cluster ids 0..1"),
    ([3, 4], [3, 9], "Cluster row '9' is none of the integer labels"),
    (["x", "y"], ["x", "q"], "no row for cluster(s) y"),
])
def test_foreign_cluster_rows_are_one_clear_line(labels, ids, expected):
    with pytest.raises(InputError) as ei:
        _mapping(_tissue(labels), ids)
    assert expected in str(ei.value) and "\n" not in str(ei.value)


# ---------------------------------------------------------------------------------------------
# a run folder written by the seed perturbs like ours
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tissue_files(tmp_path_factory) -> dict:
    import anndata as ad

    from spacetravlr_py.datasets import synthetic_tissue

    base = tmp_path_factory.mktemp("seedrun")
    syn = synthetic_tissue(n_cells=300, seed=5)
    paths = syn.write(base / "data")
    a = ad.read_h5ad(paths["h5ad"])
    labels = sorted(a.obs["cell_type"].astype(str).unique())
    a.obs["cell_type_int"] = [labels.index(v) for v in a.obs["cell_type"].astype(str)]
    a.write_h5ad(paths["h5ad"])
    ours = base / "ours"
    for g, f in syn.betas.items():
        write_betadata(ours / f"{g}_betadata.feather", f)
    cfg = SpaceshipConfig().with_overrides({"data.adata_path": str(paths["h5ad"]),
                                            "grn.network_data_dir": str(paths["network"].parent)})
    cfg.dump_toml(ours / _keys.REPRO_TOML)
    return {"base": base, "h5ad": paths["h5ad"], "syn": syn, "labels": labels, "ours": ours}


def write_seed_run(tf: dict, folder: Path, *, id_type: str, cluster_annot: str) -> Path:
    """A run folder as the seed writes it: Arrow IPC (LZ4) betadata with integer Cluster ids, f64
    coefficients, an orphan marker, a seed repro TOML and a manifest of its own; no per-gene logs."""
    folder.mkdir(parents=True)
    labels = tf["labels"]
    for g, frame in tf["syn"].betas.items():
        df = frame.to_dataframe()
        ids = [labels.index(v) for v in df[_keys.CLUSTER_COL]]
        order = np.argsort(ids)  # the seed writes its fitted cluster ids sorted
        col = (pa.array([str(ids[i]) for i in order]) if id_type == "utf8"
               else pa.array([ids[i] for i in order], type=pa.uint32()))
        data = {_keys.CLUSTER_COL: col}
        for c in df.columns[1:]:
            data[c] = pa.array(df[c].to_numpy()[order], type=pa.float64())
        feather.write_feather(pa.table(data), folder / f"{g}_betadata.feather", compression="lz4")
    (folder / "Nogene.orphan").touch()
    (folder / _keys.REPRO_TOML).write_text(seed_repro_10(str(tf["h5ad"]), str(folder), cluster_annot))
    (folder / _keys.MANIFEST_JSON).write_text(json.dumps({"run_id": "seed", "training_mode": "seed",
                                                          "dataset": "tissue.h5ad"}))
    return folder / _keys.REPRO_TOML


@pytest.mark.parametrize(("id_type", "cluster_annot"), [("utf8", "cell_type_int"), ("uint32", "cell_type"),
                                                        ("utf8", "cell_type")])
def test_seed_run_folder_perturbs_like_the_same_betas_with_label_rows(tissue_files, tmp_path, capsys,
                                                                       id_type, cluster_annot):
    from spacetravlr_py.cli.perturb import main
    from spacetravlr_py.perturb.session import RunSession

    seed_toml = write_seed_run(tissue_files, tmp_path / "seedrun", id_type=id_type, cluster_annot=cluster_annot)
    ours = RunSession.open(tissue_files["ours"] / _keys.REPRO_TOML)
    seed = RunSession.open(seed_toml)
    assert len(seed.cfg.notes) == 7 and seed.betabase.unmatched_cells == {}
    assert seed.betabase.genes == ours.betabase.genes
    for gene, value in (("Foxo1", 0.0), ("Cxcl12", 0.0), ("Pax5", 2.5)):
        a, b = ours.run(gene, value), seed.run(gene, value)
        np.testing.assert_array_equal(a.expression, b.expression)
        assert np.abs(a.delta).sum() > 0
    # and through the program, as a user would
    capsys.readouterr()
    rc = main(["--run-toml", str(seed_toml), "--gene", "Foxo1", "--out", str(tmp_path / "ko.feather")])
    assert rc == 0, capsys.readouterr().err
    df = feather.read_feather(tmp_path / "ko.feather")
    np.testing.assert_array_equal(df[ours.tissue.var_names].to_numpy(), ours.run("Foxo1", 0.0).expression)

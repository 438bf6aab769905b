"""``SpaceshipConfig``: defaults, TOML round trips, compat switch and one-line validation errors."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from spacetravlr_py.config import (
    REFERENCE_COMPAT,
    SECTIONS,
    SpaceshipConfig,
    config_keys,
    describe_schema,
)
from spacetravlr_py.errors import ConfigError

# every default of SPEC §2.3 (optional keys without a default are None)
SPEC_DEFAULTS: dict[str, dict[str, object]] = {
    "data": {"adata_path": "", "layer": "imputed_count", "cluster_annot": "cell_type", "species": None,
             "condition": None, "condition_group": None},
    "spatial": {"radius": 200.0, "spatial_dim": 32, "contact_distance": 50.0,
                "weighted_ligand_scale_factor": 1.0, "kernel": "gaussian", "approx_above_cells": 15000,
                "per_ligand_radius": False},
    "grn": {"network_data_dir": None, "tf_ligand_cutoff": 0.2, "max_ligands": None,
            "use_tf_modulators": True, "use_lr_modulators": True, "use_tfl_modulators": True,
            "extra_modulators": [], "extra_modulators_file": None, "extra_lr": [], "extra_lr_file": None,
            "tf_priors": None},
    "lasso": {"l1_reg": 1e-5, "group_reg": 1e-5, "group_reg_scaling": "sqrt_group_size", "n_iter": 500,
              "tol": 1e-4},
    "training": {"mode": "seed", "epochs": 10, "learning_rate": 1e-3, "score_threshold": 0.2, "genes": [],
                 "max_genes": None},
    "cnn": {"adam_beta_1": 0.9, "adam_beta_2": 0.999, "adam_epsilon": 1e-5, "weight_decay": None,
            "grad_clip_norm": None, "spatial_feature_radius": 100.0, "output_activation": "sigmoidx2",
            # beyond SPEC §2.3 (issue 13): mini-batch size, held-out fraction, early-stopping patience
            "batch_size": 64, "holdout_fraction": 0.1, "patience": 5},
    "execution": {"n_parallel": 1, "output_dir": "", "stale_lock_secs": 0.0, "random_seed": 42,
                  "write_minimal_repro_h5ad": False, "scheduler": "", "device": "auto"},
    "perturbation": {"beta_scale_factor": 1.0, "beta_cap": None, "n_propagation": 4,
                     "ligand_grid_factor": None, "clip": "zero_to_max", "cells_csv": None,
                     "cells_csv_column": None},
    "model_export": {"save_cnn_weights": False, "compressed_npz": True, "output_subdir": "CNN_weights"},
    "compat": {"mode": "seed"},
}

FULL_TOML = """
[data]
adata_path = "tissue.h5ad"
layer = "normalized_count"
cluster_annot = "leiden"
species = "human"

[spatial]
radius = 150
spatial_dim = 16
contact_distance = 30.5
weighted_ligand_scale_factor = 2.0
kernel = "truncated"
approx_above_cells = 1000
per_ligand_radius = true

[grn]
network_data_dir = "net"
tf_ligand_cutoff = 0.5
max_lr_pairs = 12
use_tfl_modulators = false
extra_modulators = ["GeneA", "GeneB"]
extra_lr = ["L1$R1"]

[lasso]
l1_reg = 1e-3
group_reg = 0.0
group_reg_scaling = "none"
n_iter = 100
tol = 1e-6

[training]
mode = "full"
epochs = 3
learning_rate = 0.01
score_threshold = -0.5
genes = ["PAX5", "FOXO1"]
max_genes = 2

[cnn]
adam_beta_1 = 0.5
weight_decay = 0.0
grad_clip_norm = 1.0
output_activation = "tanh"

[execution]
n_parallel = 4
output_dir = "out"
stale_lock_secs = 600
random_seed = 7

[perturbation]
beta_scale_factor = 0.5
beta_cap = 3.0
n_propagation = 2
ligand_grid_factor = 0.25
clip = "observed_range"
cells_csv = "cells.csv"
cells_csv_column = "barcode"

[model_export]
save_cnn_weights = true
compressed_npz = false
output_subdir = "weights"
"""


def write(tmp_path: Path, text: str, name: str = "spaceship_config.toml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def error_of(fn, *args, **kwargs) -> str:
    """The message of the ConfigError raised by ``fn``; asserts it is a single line."""
    with pytest.raises(ConfigError) as ei:
        fn(*args, **kwargs)
    msg = str(ei.value)
    assert "\n" not in msg, msg
    return msg


def bad_toml(tmp_path: Path, text: str) -> str:
    p = write(tmp_path, text)
    msg = error_of(SpaceshipConfig.from_toml, p)
    assert str(p) in msg
    return msg


# ---------------------------------------------------------------------------------------------
# defaults and schema
# ---------------------------------------------------------------------------------------------


def test_defaults_of_every_section_match_the_spec():
    cfg = SpaceshipConfig()
    assert set(SPEC_DEFAULTS) == set(SECTIONS)
    for sec, keys in SPEC_DEFAULTS.items():
        got = dataclasses.asdict(getattr(cfg, sec))
        assert got == keys, sec
    assert cfg.source is None and not cfg.reference_compat


def test_empty_toml_gives_defaults_with_output_dir_the_toml_folder(tmp_path):
    cfg = SpaceshipConfig.from_toml(write(tmp_path, ""))
    assert cfg.execution.output_dir == str(tmp_path.resolve())
    cfg.execution.output_dir = ""
    assert cfg == SpaceshipConfig()


def test_config_keys_and_schema_description_cover_every_key():
    keys = config_keys()
    assert len(keys) == sum(len(v) for v in SPEC_DEFAULTS.values())
    assert "spatial.radius" in keys and "grn.max_ligands" in keys
    text = describe_schema()
    lines = text.splitlines()
    for k in keys:
        name = k.split(".")[1]
        assert any(ln.startswith((f"{name} = ", f"# {name} = ")) for ln in lines), k
    assert "alias: max_lr_pairs" in text


def test_schema_is_a_valid_config_file_of_the_defaults(tmp_path):
    p = tmp_path / "spaceship_config.toml"
    p.write_text(describe_schema())
    cfg = SpaceshipConfig.from_toml(p)
    assert cfg == SpaceshipConfig(execution=cfg.execution)


def test_docs_list_every_config_key():
    doc = Path(__file__).resolve().parents[1] / "docs" / "config.md"
    text = doc.read_text(encoding="utf-8")
    for k in config_keys():
        name = k.split(".")[1]
        assert f"{name} = " in text, f"docs/config.md does not document {k}"


# ---------------------------------------------------------------------------------------------
# round trips
# ---------------------------------------------------------------------------------------------


def test_full_toml_values_and_paths(tmp_path):
    cfg = SpaceshipConfig.from_toml(write(tmp_path, FULL_TOML))
    base = tmp_path.resolve()
    assert cfg.data.adata_path == str(base / "tissue.h5ad")
    assert cfg.grn.network_data_dir == str(base / "net")
    assert cfg.perturbation.cells_csv == str(base / "cells.csv")
    assert cfg.execution.output_dir == str(base / "out")
    assert cfg.spatial.radius == 150.0 and isinstance(cfg.spatial.radius, float)
    assert cfg.execution.stale_lock_secs == 600.0
    assert cfg.grn.max_ligands == 12  # through the alias max_lr_pairs
    assert cfg.training.genes == ["PAX5", "FOXO1"]
    assert cfg.get("lasso.n_iter") == 100
    assert "grn.max_ligands" in cfg.explicit


@pytest.mark.parametrize("text", ["", FULL_TOML, '[compat]\nmode = "python-reference"\n',
                                  '[grn]\nmax_lr_pairs = 3\n'])
def test_load_dump_load_is_identity(tmp_path, text):
    cfg = SpaceshipConfig.from_toml(write(tmp_path, text))
    other = tmp_path / "elsewhere"
    out = cfg.dump_toml(other / "spacetravlr_run_repro.toml")
    assert out.exists()
    again = SpaceshipConfig.from_toml(out)
    assert again == cfg
    for s in SECTIONS:
        assert getattr(again, s) == getattr(cfg, s)
    # the dump is complete: every non-null key is written (the alias under its canonical name)
    dumped = out.read_text()
    assert "max_lr_pairs" not in dumped
    assert ("max_ligands = " in dumped) == (cfg.grn.max_ligands is not None)
    assert "radius = " in dumped and "[model_export]" in dumped
    assert not list(other.glob("*.tmp"))


def test_python_reference_round_trip_keeps_compat_values(tmp_path):
    cfg = SpaceshipConfig.from_toml(write(tmp_path, '[compat]\nmode = "python-reference"\n'))
    again = SpaceshipConfig.from_toml(cfg.dump_toml(tmp_path / "repro" / "r.toml"))
    assert again.reference_compat
    for dotted, value in REFERENCE_COMPAT.items():
        assert again.get(dotted) == value


def test_to_dict_omits_unset_keys_and_copies_lists():
    cfg = SpaceshipConfig()
    d = cfg.to_dict()
    assert "beta_cap" not in d["perturbation"] and "species" not in d["data"]
    d["training"]["genes"].append("X")
    assert cfg.training.genes == []
    assert cfg.to_toml().startswith("# SpaceTravLR configuration")


def test_from_dict_in_code_keeps_relative_paths():
    cfg = SpaceshipConfig.from_dict({"data": {"adata_path": "a.h5ad"}})
    assert cfg.data.adata_path == "a.h5ad" and cfg.execution.output_dir == ""


# ---------------------------------------------------------------------------------------------
# compat switch
# ---------------------------------------------------------------------------------------------


def test_compat_mode_sets_reference_values(tmp_path):
    cfg = SpaceshipConfig.from_toml(write(tmp_path, '[compat]\nmode = "python-reference"\n'))
    assert cfg.reference_compat
    assert cfg.spatial.kernel == "truncated"
    assert cfg.spatial.per_ligand_radius is True
    assert cfg.perturbation.clip == "observed_range"
    assert cfg.lasso.group_reg_scaling == "inverse_sqrt_group_size"


def test_compat_mode_keeps_explicit_keys(tmp_path):
    text = ('[compat]\nmode = "python-reference"\n[spatial]\nkernel = "gaussian"\n'
            'per_ligand_radius = false\n[lasso]\ngroup_reg_scaling = "none"\n')
    cfg = SpaceshipConfig.from_toml(write(tmp_path, text))
    assert cfg.spatial.kernel == "gaussian"
    assert cfg.spatial.per_ligand_radius is False
    assert cfg.lasso.group_reg_scaling == "none"
    assert cfg.perturbation.clip == "observed_range"  # not set explicitly: the reference's value


def test_compat_mode_by_override_and_back():
    ref = SpaceshipConfig().with_overrides({"compat.mode": "python-reference"}, source="--compat")
    assert ref.spatial.kernel == "truncated" and ref.perturbation.clip == "observed_range"
    seed = ref.with_overrides({"compat.mode": "seed"}, source="--compat")
    assert seed == SpaceshipConfig()
    # an explicit override survives a later mode switch
    mixed = SpaceshipConfig().with_overrides({"spatial.kernel": "gaussian"}).with_overrides(
        {"compat.mode": "python-reference"})
    assert mixed.spatial.kernel == "gaussian" and mixed.spatial.per_ligand_radius is True


# ---------------------------------------------------------------------------------------------
# command-line overrides
# ---------------------------------------------------------------------------------------------


def test_overrides_apply_and_skip_none(tmp_path):
    cfg = SpaceshipConfig.from_toml(write(tmp_path, "[lasso]\nl1_reg = 0.1\n"))
    new = cfg.with_overrides({"lasso.l1_reg": 1e-4, "lasso.n_iter": None, "grn.max_lr_pairs": 5},
                             source="--l1-reg")
    assert new.lasso.l1_reg == 1e-4 and new.lasso.n_iter == 500 and new.grn.max_ligands == 5
    assert cfg.lasso.l1_reg == 0.1  # a copy
    assert new.source == cfg.source


def test_override_paths_resolve_against_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = SpaceshipConfig().with_overrides({"data.adata_path": "sub/x.h5ad", "execution.output_dir": "run"})
    assert cfg.data.adata_path == str(tmp_path.resolve() / "sub" / "x.h5ad")
    assert cfg.execution.output_dir == str(tmp_path.resolve() / "run")


@pytest.mark.parametrize(("overrides", "expected"), [
    ({"lasso.l1_reg": "abc"}, '--l1-reg: [lasso].l1_reg = "abc": expected a number >= 0'),
    ({"lasso.l1_reg": -1}, "--l1-reg: [lasso].l1_reg = -1: expected a number >= 0"),
    ({"lasso.l1_rge": 1.0}, "--l1-reg: [lasso].l1_rge: unknown key (did you mean l1_reg?)"),
    ({"lassso.l1_reg": 1.0}, "--l1-reg: unknown section [lassso] (did you mean lasso?)"),
    ({"l1_reg": 1.0}, "--l1-reg: override key 'l1_reg' must look like section.key"),
])
def test_override_errors_name_the_flag(overrides, expected):
    msg = error_of(SpaceshipConfig().with_overrides, overrides, source="--l1-reg")
    assert msg.startswith(expected), msg


# ---------------------------------------------------------------------------------------------
# bad values: one line naming file, key, value and expected form
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ('[spatial]\nradius = "200"\n',
     '[spatial].radius = "200": expected a number > 0 (write numbers without quotes)'),
    ("[lasso]\nn_iter = true\n", "[lasso].n_iter = true: expected an integer >= 1"),
    ("[lasso]\nn_iter = 2.5\n", "[lasso].n_iter = 2.5: expected an integer >= 1"),
    ("[spatial]\nspatial_dim = 16.5\n", "[spatial].spatial_dim = 16.5: expected an integer >= 8"),
    ("[spatial]\nradius = -1.0\n", "[spatial].radius = -1.0: expected a number > 0"),
    ("[spatial]\nradius = 0\n", "[spatial].radius = 0: expected a number > 0"),
    ("[spatial]\nradius = nan\n", "[spatial].radius = nan: expected a number > 0"),
    ("[spatial]\ncontact_distance = -5\n", "[spatial].contact_distance = -5: expected a number > 0"),
    ("[cnn]\nadam_beta_1 = 1.0\n", "[cnn].adam_beta_1 = 1.0: expected a number >= 0 and < 1"),
    ("[training]\nscore_threshold = 1.5\n", "[training].score_threshold = 1.5: expected a number <= 1"),
    ("[execution]\nn_parallel = 0\n", "[execution].n_parallel = 0: expected an integer >= 1"),
    ("[grn]\nmax_ligands = 0\n", "[grn].max_ligands = 0: expected an integer >= 1 (or omit the key)"),
    ("[perturbation]\nligand_grid_factor = -0.5\n",
     "[perturbation].ligand_grid_factor = -0.5: expected a number > 0 (or omit the key)"),
    ("[spatial]\nper_ligand_radius = 1\n", "[spatial].per_ligand_radius = 1: expected true or false"),
    ('[spatial]\nkernel = "gausian"\n',
     '[spatial].kernel = "gausian": expected one of "gaussian", "truncated" (did you mean gaussian?)'),
    ('[lasso]\ngroup_reg_scaling = "sqrt"\n',
     '[lasso].group_reg_scaling = "sqrt": expected one of "sqrt_group_size", "inverse_sqrt_group_size", '
     '"none"'),
    ('[compat]\nmode = "reference"\n', '[compat].mode = "reference": expected one of "seed", '
     '"python-reference" (did you mean python-reference?)'),
    ('[data]\nspecies = "Mouse"\n', '[data].species = "Mouse": expected one of "mouse", "human"'),
    ("[grn]\nextra_modulators = [1, 2]\n",
     '[grn].extra_modulators = [1, 2]: expected a list of strings, e.g. ["A", "B"]'),
    ("[data]\nadata_path = 3\n", "[data].adata_path = 3: expected a path string"),
])
def test_bad_values(tmp_path, text, expected):
    msg = bad_toml(tmp_path, text)
    assert expected in msg, msg


def test_unknown_section_suggests_and_lists(tmp_path):
    msg = bad_toml(tmp_path, "[spatail]\nradius = 1.0\n")
    assert "unknown section [spatail] (did you mean spatial?)" in msg
    assert "known sections: [data], [spatial]" in msg


def test_unknown_key_suggests_near_match(tmp_path):
    msg = bad_toml(tmp_path, "[spatial]\nraduis = 100.0\n")
    assert "[spatial].raduis: unknown key (did you mean radius?)" in msg
    assert "keys of [spatial]: radius, spatial_dim" in msg


def test_key_outside_any_section(tmp_path):
    msg = bad_toml(tmp_path, "radius = 100.0\n[spatial]\n")
    assert "key 'radius' is outside any [section]; put it under [spatial]" in msg


def test_section_that_is_not_a_table(tmp_path):
    msg = bad_toml(tmp_path, "spatial = 3\n")
    assert "[spatial] must be a table, got 3" in msg


def test_key_and_its_alias_both_set(tmp_path):
    msg = bad_toml(tmp_path, "[grn]\nmax_ligands = 3\nmax_lr_pairs = 4\n")
    assert "[grn] sets both max_ligands and max_lr_pairs" in msg


def test_integral_float_is_accepted_for_an_integer():
    assert SpaceshipConfig.from_dict({"lasso": {"n_iter": 100.0}}).lasso.n_iter == 100


# ---------------------------------------------------------------------------------------------
# bad files
# ---------------------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    p = tmp_path / "nope.toml"
    msg = error_of(SpaceshipConfig.from_toml, p)
    assert msg == f"{p}: config file not found; check the path given to -c/--config"


def test_directory_instead_of_file(tmp_path):
    msg = error_of(SpaceshipConfig.from_toml, tmp_path)
    assert msg == f"{tmp_path}: is a directory, expected a .toml file"


def test_invalid_toml(tmp_path):
    msg = bad_toml(tmp_path, "[spatial\nradius = 1\n")
    assert "not valid TOML" in msg and "line 1" in msg


def test_invalid_utf8(tmp_path):
    p = tmp_path / "c.toml"
    p.write_bytes(b"\xff\xfe[spatial]\n")
    msg = error_of(SpaceshipConfig.from_toml, p)
    assert msg.startswith(f"{p}: cannot read config file (UnicodeDecodeError")


def test_unreadable_file(tmp_path, monkeypatch):
    p = write(tmp_path, "[spatial]\n")
    if os.name == "posix" and os.geteuid() != 0:
        p.chmod(0)
    else:  # root reads any file: simulate the permission error
        def deny(self, *args, **kwargs):
            raise PermissionError(13, "Permission denied", str(self))

        monkeypatch.setattr(Path, "read_text", deny)
    try:
        msg = error_of(SpaceshipConfig.from_toml, p)
    finally:
        p.chmod(0o644)
    assert msg.startswith(f"{p}: cannot read config file (PermissionError")
    assert "Permission denied" in msg


def test_from_dict_rejects_a_non_table():
    msg = error_of(SpaceshipConfig.from_dict, [1, 2], source="x.toml")  # type: ignore[arg-type]
    assert msg == "x.toml: expected a table of sections"


# ---------------------------------------------------------------------------------------------
# paths
# ---------------------------------------------------------------------------------------------


def test_relative_paths_resolve_against_the_toml_folder(tmp_path, monkeypatch):
    sub = tmp_path / "cfg"
    sub.mkdir()
    monkeypatch.chdir(tmp_path)  # the current directory must not matter
    text = ('[data]\nadata_path = "../data/t.h5ad"\n[grn]\nextra_lr_file = "lr.txt"\n'
            'extra_modulators_file = "/abs/mods.txt"\n[execution]\noutput_dir = "runs/a"\n')
    write(sub, text)
    cfg = SpaceshipConfig.from_toml(Path("cfg") / "spaceship_config.toml")
    base = sub.resolve()
    assert cfg.data.adata_path == str(tmp_path.resolve() / "data" / "t.h5ad")
    assert cfg.grn.extra_lr_file == str(base / "lr.txt")
    assert cfg.grn.extra_modulators_file == "/abs/mods.txt"
    assert cfg.execution.output_dir == str(base / "runs" / "a")
    assert cfg.source == base / "spaceship_config.toml"


def test_empty_output_dir_is_the_toml_folder(tmp_path):
    cfg = SpaceshipConfig.from_toml(write(tmp_path, '[execution]\noutput_dir = ""\n'))
    assert cfg.execution.output_dir == str(tmp_path.resolve())

"""The run folder module: paths, opening a run through its TOML (output_dir rules of SPEC §2.3), the
typed manifest and what it records for perturbation, temporary-file names."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from spacetravlr_py import _keys
from spacetravlr_py.config import SpaceshipConfig
from spacetravlr_py.datasets import synthetic_tissue
from spacetravlr_py.errors import InputError
from spacetravlr_py.io.atomic import temp_path, temp_target, temporaries_of
from spacetravlr_py.perturb.session import RunSession
from spacetravlr_py.rundir import Manifest, RunDir, open_run
from spacetravlr_py.training import train

GENES = ["Cd19", "Foxo1", "Pax5", "Tgfb1", "Il6", "Cxcl12", "Cd44", "Fn1"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """A run with per-ligand radii (contact/ECM ligands at contact_distance) on the synthetic tissue."""
    root = tmp_path_factory.mktemp("rundir")
    syn = synthetic_tissue(n_cells=500, seed=2)
    paths = syn.write(root / "data")
    out = root / "run"
    cfg = SpaceshipConfig().with_overrides({
        "data.adata_path": str(paths["h5ad"]), "grn.network_data_dir": str(paths["network"].parent),
        "execution.output_dir": str(out), "training.genes": GENES, "spatial.per_ligand_radius": True,
        "spatial.contact_distance": 30.0})
    train(cfg)
    return {"root": root, "out": out, "h5ad": paths["h5ad"], "net": paths["network"], "syn": syn}


def test_paths_and_scan(tmp_path):
    rd = RunDir(tmp_path)
    assert rd.betadata("G") == tmp_path / "G_betadata.feather" and rd.orphan("G") == tmp_path / "G.orphan"
    assert rd.log("G") == tmp_path / "log" / "G.log" and rd.lock("G") == tmp_path / "G.lock"
    assert rd.repro_toml.name == _keys.REPRO_TOML and rd.manifest_json.name == _keys.MANIFEST_JSON
    rd.orphan("B").touch()
    rd.betadata("A").write_bytes(b"x")
    assert rd.scan(["A", "B", "C"]) == (["A"], ["B"]) and rd.is_finished("A") and not rd.is_finished("C")
    with pytest.raises(InputError, match="leaves the run folder"):
        rd.artifact("../outside.npz")


def test_temporary_names_have_one_home(tmp_path):
    dest = tmp_path / "Gene.with.dots_betadata.feather"
    t = temp_path(dest, tag="123_")
    assert t.parent == tmp_path and t.name.startswith(".Gene.with.dots_betadata.feather.123_")
    assert temp_target(t) == dest and temp_target(tmp_path / "plain.txt") is None
    t.touch()
    (tmp_path / ".other.feather.abcd.tmp").touch()
    assert temporaries_of(dest) == [t]


def test_clean_leftovers_removes_orphaned_temporaries_only(tmp_path):
    rd = RunDir(tmp_path)
    rd.prepare()
    dead = temp_path(rd.betadata("A"))
    dead.touch()
    live_lock = rd.lock("B")
    live_lock.write_text(json.dumps({"host": "elsewhere", "pid": 1, "started": 0}))  # another host: live
    kept = temp_path(rd.log("B"))
    kept.touch()
    rd.clean_leftovers()
    assert not dead.exists() and kept.exists()


def test_manifest_records_what_perturbation_needs(trained):
    m = Manifest.read(trained["out"] / _keys.MANIFEST_JSON)
    assert m is not None and m.status == "complete" and m.has_ligands
    assert m.cluster_labels == list(trained["syn"].adata.obs["cell_type"].cat.categories)
    assert m.spatial == {"kernel": "gaussian", "scale": 1.0, "radius": 200.0, "contact_distance": 30.0,
                         "per_ligand_radius": True}
    classes = {r.signaling for r in m.ligands.values()}
    assert _keys.SECRETED in classes and len(classes) > 1  # the synthetic network has contact ligands
    for rec in m.ligands.values():
        assert rec.radius == (200.0 if rec.signaling in (None, _keys.SECRETED) else 30.0)
    done = m.genes["done"]
    assert done and all(set(m.modulators[g]) == {"tf", "lr", "tfl", "extra"} for g in done)
    # unknown keys of other versions survive a round trip
    raw = m.to_dict() | {"future_key": [1, 2]}
    back = Manifest.from_dict(json.loads(json.dumps(raw)))
    assert back.extra["future_key"] == [1, 2] and back.ligands == m.ligands and back.to_dict() == raw


def test_perturbation_never_reloads_the_network(trained, tmp_path):
    """Opening a run uses the ligand classes training recorded: removing the network changes nothing."""
    a = RunSession.open(trained["out"] / _keys.REPRO_TOML).run("Il6", 0.0)
    # a copy of the run whose network file is gone
    copy = tmp_path / "copy"
    shutil.copytree(trained["out"], copy)
    net_copy = tmp_path / "net"
    net_copy.mkdir()
    shutil.copy(trained["net"], net_copy)
    text = (copy / _keys.REPRO_TOML).read_text().replace(f'network_data_dir = "{trained["net"].parent}"',
                                                         f'network_data_dir = "{net_copy}"')
    assert str(net_copy) in text
    (copy / _keys.REPRO_TOML).write_text(text)
    shutil.rmtree(net_copy)
    b = RunSession.open(copy / _keys.REPRO_TOML).run("Il6", 0.0)
    assert np.array_equal(a.expression, b.expression) and np.abs(a.delta).sum() > 0
    # without the record (an older manifest) the network is read again: same result while it exists
    man = json.loads((trained["out"] / _keys.MANIFEST_JSON).read_text())
    for k in ("spatial", "ligands"):
        man.pop(k)
    old = tmp_path / "old"
    shutil.copytree(trained["out"], old)
    (old / _keys.MANIFEST_JSON).write_text(json.dumps(man))
    c = RunSession.open(old / _keys.REPRO_TOML).run("Il6", 0.0)
    assert np.array_equal(a.expression, c.expression)


def test_toml_beside_the_data_points_at_the_run(trained):
    """A perturbation TOML kept elsewhere finds the betadata through [execution].output_dir: absolute,
    relative to the TOML's folder, or (empty) the TOML's own folder."""
    repro = (trained["out"] / _keys.REPRO_TOML).read_text()
    data_dir = trained["h5ad"].parent
    beside = data_dir / "perturb.toml"
    beside.write_text(repro)  # absolute output_dir, as training wrote it
    assert open_run(beside).dir.root == trained["out"].resolve()
    rel = data_dir / "rel.toml"
    rel.write_text(repro.replace(f'output_dir = "{trained["out"]}"', 'output_dir = "../run"'))
    assert open_run(rel).dir.root == trained["out"].resolve()
    s = RunSession.open(rel)
    assert s.run_dir == trained["out"].resolve() and len(s.betabase) > 0
    empty = data_dir / "empty.toml"
    empty.write_text(repro.replace(f'output_dir = "{trained["out"]}"', 'output_dir = ""'))
    assert open_run(empty).dir.root == data_dir.resolve()
    with pytest.raises(InputError, match="no \\*_betadata"):
        RunSession.open(empty)
    missing = data_dir / "missing.toml"
    missing.write_text(repro.replace(f'output_dir = "{trained["out"]}"', 'output_dir = "/nonexistent/run"'))
    with pytest.raises(InputError, match="output_dir /nonexistent/run is not a folder"):
        open_run(missing)


def test_a_moved_run_folder_uses_its_own_files(trained, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(trained["out"], moved)
    (moved / "Il6_betadata.feather").unlink()  # the copy differs from the original
    run = open_run(moved / _keys.REPRO_TOML)
    assert run.dir.root == moved.resolve() and run.manifest is not None
    assert "Il6" not in RunSession.open(moved).betabase
    assert "Il6" in RunSession.open(trained["out"]).betabase

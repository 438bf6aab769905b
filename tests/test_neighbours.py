"""Effects of a scoped perturbation on the other cells (``neighbour_effects``, ``spacetravlr-perturb
neighbours``): on a tissue with a planted paracrine circuit the receiving cell type is found first, through
the planted ligand, and its response decays with distance; distances, responses and the ligand effect agree
with direct computations; bad input is one line each."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from builders import PLANTED_BETA, planted_neighbour_tissue
from spacetravlr_py import _keys
from spacetravlr_py.betadata import Betabase
from spacetravlr_py.cli.perturb import main as perturb_main
from spacetravlr_py.errors import InputError
from spacetravlr_py.perturbation import Perturber, PerturbSettings, resolve_scope
from spacetravlr_py.perturbation.neighbours import neighbour_effects, write_neighbour_effects

RADIUS = 60.0


@pytest.fixture(scope="module")
def planted():
    t, frames = planted_neighbour_tissue()
    p = Perturber(t, Betabase(frames, t), PerturbSettings(radius=RADIUS, n_propagation=3))
    scope, label = resolve_scope(t, cell_types=["S"])
    res = p.run("Lig", 0.0, scope=scope, scope_label=label)
    return t, p, res


def test_planted_receiver_first_through_the_ligand_decaying_with_distance(planted, tmp_path: Path) -> None:
    _, p, res = planted
    eff = neighbour_effects(res, p)
    assert eff.by_type["cell_type"].tolist() == ["R", "B"]  # the receivers first; senders are the scope
    r, b = eff.by_type.iloc[0], eff.by_type.iloc[1]
    assert r["top_ligands"].split(":")[0] == "Lig" and r["mean_abs_delta"] > 0
    assert b["mean_abs_delta"] == 0.0 and b["top_ligands"] == ""  # no receptor: no response at all
    near = eff.by_distance[eff.by_distance["cell_type"] == "R"].sort_values("bin")
    assert len(near) >= 4 and (np.diff(near["mean_abs_delta"].to_numpy()) < 0).all()  # decays, bin after bin
    assert near["mean_abs_delta"].iloc[0] > 20 * near["mean_abs_delta"].iloc[-1]
    files = write_neighbour_effects(eff, tmp_path)
    assert files["figure"].stat().st_size > 10_000  # looked at: docs/neighbours_example.png
    js = json.loads(files["summary"].read_text())
    assert js["cell_types"][0]["cell_type"] == "R" and js["bin_edges"][-1] is None
    assert pd.read_csv(files["ligands"])["ligand"].tolist() == ["Lig"]


def test_distances_responses_and_ligand_effect_by_hand(planted) -> None:
    t, p, res = planted
    eff = neighbour_effects(res, p, edges=[0, 30, 60, 120, 240])
    scope = res.scope
    out = ~scope
    D = np.sqrt(((t.coords[out][:, None, :] - t.coords[scope][None, :, :]) ** 2).sum(-1))
    np.testing.assert_allclose(eff.distance[out], D.min(axis=1), rtol=1e-12)
    others = [g != "Lig" for g in t.var_names]
    np.testing.assert_allclose(eff.response, np.abs(res.delta[:, others]).mean(axis=1), rtol=1e-12)
    # the received change of Lig, from the Gaussian kernel written out here: (1/N) Σ_j exp(−d²/2r²) ΔL_j
    A = np.sqrt(((t.coords[:, None, :] - t.coords[None, :, :]) ** 2).sum(-1))
    dL = res.expression[:, t.gene_index["Lig"]] - t.expression[:, t.gene_index["Lig"]]
    dRL = np.exp(-(A**2) / (2 * RADIUS**2)) @ dL / t.n_cells
    labs = np.asarray(t.cluster_labels)[t.clusters]
    rec = t.expression[:, t.gene_index["Rec"]]
    want = np.abs(PLANTED_BETA * rec * dRL) / (t.n_genes - 1)
    got = eff.ligands.set_index(["cell_type", "ligand"])["effect"]
    assert got[("R", "Lig")] == pytest.approx(want[out & (labs == "R")].mean(), rel=1e-9)
    bd = eff.by_distance
    assert bd["d_max"].iloc[-1] == np.inf and set(bd["bin"]) <= {0, 1, 2, 3, 4}
    row = bd[(bd["cell_type"] == "R") & (bd["bin"] == 1)].iloc[0]
    m = out & (labs == "R") & (eff.distance >= 30) & (eff.distance < 60)
    assert row["n_cells"] == m.sum() and row["mean_abs_delta"] == pytest.approx(eff.response[m].mean(), rel=1e-12)


def test_errors(planted) -> None:
    t, p, _ = planted
    everywhere = p.run("Lig", 0.0)
    with pytest.raises(InputError, match="covers every cell"):
        neighbour_effects(everywhere, p)
    res = p.run("Lig", 0.0, scope=resolve_scope(t, cell_types=["S"])[0])
    with pytest.raises(InputError, match="give increasing distances"):
        neighbour_effects(res, p, edges=[0, 50, 20])


def test_cli_on_a_trained_run(small_run, tmp_path: Path, capsys) -> None:
    out = tmp_path / "nb"
    assert perturb_main(["neighbours", "--run-toml", str(small_run.toml), "--gene", "Il6", "--cell-types", "ct2",
                         "--out-dir", str(out), "--bins", "0,50,100,200"]) == 0
    printed = capsys.readouterr().out
    assert "Il6→0 in cell types ct2" in printed and "other cells, by mean |Δ|" in printed
    for name in (_keys.NEIGHBOURS_BY_TYPE_CSV, _keys.NEIGHBOURS_BY_DISTANCE_CSV, _keys.NEIGHBOURS_LIGANDS_CSV,
                 _keys.NEIGHBOURS_JSON, _keys.NEIGHBOURS_PNG):
        assert (out / name).stat().st_size > 0
    by_type = pd.read_csv(out / _keys.NEIGHBOURS_BY_TYPE_CSV)
    assert "ct2" not in set(by_type["cell_type"]) and by_type["rank"].tolist() == list(range(1, len(by_type) + 1))
    assert sorted(pd.read_csv(out / _keys.NEIGHBOURS_BY_DISTANCE_CSV)["d_max"].unique().tolist()) == [
        50.0, 100.0, 200.0, np.inf]
    cases = [([], "neighbours needs a scope"),
             (["--cell-types", "ct2", "--bins", "100,50"], "give increasing distances"),
             (["--clusters", "0,1,2,3,4"], "covers every cell"),
             (["--cell-types", "ct9"], "cell type 'ct9' is not in obs['cell_type']")]
    for args, msg in cases:
        assert perturb_main(["neighbours", "--run-toml", str(small_run.toml), "--gene", "Il6", *args]) == 2
        err = capsys.readouterr().err
        lines = [ln for ln in err.splitlines() if ln.startswith("spacetravlr-perturb: error: ")]
        assert len(lines) == 1 and msg in lines[0] and "Traceback" not in err, err

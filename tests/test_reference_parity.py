"""Parity with the real Python reference (PyPI SpaceTravLR 0.1.18) under ``[compat] mode = "python-reference"``.

Runs the reference's own numerics through its harness (``../shared/tools/reference/harness.py``, in
the reference venv; one persistent process for the module) on the same files that ours reads, and
compares:

1. received ligands (truncated kernel, one radius and per-ligand radius) — ≤ 1e-12 relative;
2. splash of many-modulator betadata (TF / ``L$R`` / ``L#TF`` mixes, distinct RL and RLt tables,
   ``beta_scale_factor`` and ``beta_cap``) — ≤ 1e-10 relative;
3. perturbation (TF knockout, ligand knockout, multi-target, a cell subset with overexpression, a
   TF–ligand "ligand" without a CellChat row) — simulated expression ≤ 1e-10 relative;
(Transition probabilities and vectors are compared with the reference in ``tests/test_transitions.py``.)

Skipped with a reason when the reference venv or the harness is absent (failed instead under ``make
test``, which builds the reference when ../shared/tools is present). The default mode is compared with
the newest reference, 0.1.21, in ``tests/test_reference_parity_newest.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the benchmarks package beside src/

from benchmarks import reference as ref
from benchmarks import workloads as wl

from conftest import require_reference

pytestmark = pytest.mark.reference

RADIUS = 200.0
CONTACT = 30.0
N_CELLS = 400
SEED = 7


per_column_rel = ref.max_rel_per_column


@pytest.fixture(scope="module")
def session() -> Any:
    require_reference(ref.OLDEST)
    with ref.ReferenceSession(threads=2) as s:
        yield s


@pytest.fixture(scope="module")
def syn() -> Any:
    from spacetravlr_py.datasets import synthetic_tissue

    return synthetic_tissue(n_cells=N_CELLS, seed=SEED, kernel="truncated", per_ligand_radius=True,
                            radius=RADIUS, contact_distance=CONTACT)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("parity")


# ------------------------------------------------------------------------------------------------
# 1. received ligands
# ------------------------------------------------------------------------------------------------


def _ligand_inputs(syn: Any, d: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    ligs = syn.roles["ligands"]
    L, xy = ref.write_ligand_inputs(syn.adata, ligs, d)
    return L, xy, ligs


def test_received_one_radius(session: Any, syn: Any, workdir: Path) -> None:
    from spacetravlr_py.spatial.received import received_ligands

    d = workdir / "received1"
    d.mkdir()
    L, xy, _ = _ligand_inputs(syn, d)
    session.run("received", "--xy", d / "xy.npy", "--lig", d / "lig.parquet", "--radius", RADIUS,
                "--out", d / "received.npy")
    theirs = np.load(d / "received.npy")
    ours = received_ligands(L, xy, RADIUS, kernel="truncated")
    assert np.abs(theirs).max() > 0
    rel = per_column_rel(ours, theirs)
    print(f"received (one radius): max per-ligand relative difference {rel:.3e}")
    assert rel <= 1e-12


def test_received_per_ligand_radius(session: Any, syn: Any, workdir: Path) -> None:
    import json

    from spacetravlr_py.spatial.received import received_ligands

    d = workdir / "received2"
    d.mkdir()
    L, xy, ligs = _ligand_inputs(syn, d)
    radii = ref.ligand_radii(ligs, list(syn.adata.var_names), RADIUS, CONTACT)
    assert set(radii) == set(ligs) and len(set(radii.values())) == 2  # both radius groups present
    (d / "radius.json").write_text(json.dumps(radii))
    session.run("received", "--xy", d / "xy.npy", "--lig", d / "lig.parquet", "--radius", RADIUS,
                "--radius-json", d / "radius.json", "--scale-factor", 1.5, "--out", d / "received.npy")
    theirs = np.load(d / "received.npy")
    ours = received_ligands(L, xy, np.array([radii[g] for g in ligs]), kernel="truncated", scale=1.5)
    rel = per_column_rel(ours, theirs)
    print(f"received (per-ligand radius): max per-ligand relative difference {rel:.3e}")
    assert rel <= 1e-12


# ------------------------------------------------------------------------------------------------
# 2. splash
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def splash_case(syn: Any, workdir: Path) -> dict[str, Any]:
    from spacetravlr_py.spatial.received import received_ligands

    d = workdir / "splash"
    rng = np.random.default_rng(11)
    var = list(syn.adata.var_names)
    obs = list(syn.adata.obs_names)
    roles = {"tfs": syn.roles["tfs"], "ligands": syn.roles["ligands"], "receptors": syn.roles["receptors"]}
    G = np.asarray(syn.adata.layers["imputed_count"], dtype=np.float64).copy()
    G[rng.random(G.shape) < 0.15] = 0.0  # receptors absent in some cells: the G[R] > 0 condition
    G[::29, :] *= 1e-11  # below min_expression
    ref.write_frame(d / "gex.parquet", G, obs, var)
    ligs = syn.roles["ligands"]
    L = G[:, [var.index(g) for g in ligs]]
    xy = np.asarray(syn.adata.obsm["spatial"])
    radii = ref.ligand_radii(ligs, var, RADIUS, CONTACT)
    rw = received_ligands(L, xy, np.array([radii[g] for g in ligs]), kernel="truncated")
    rw_tfl = received_ligands(L, xy, RADIUS, kernel="truncated")  # a different table: RL ≠ RLt
    ref.write_frame(d / "rw.parquet", rw, obs, ligs)
    ref.write_frame(d / "rw_tfl.parquet", rw_tfl, obs, ligs)
    genes = syn.roles["targets"][:6] + syn.roles["receptors"][:2]
    clusters = syn.adata.obs["cell_type"].cat.codes.to_numpy()
    for i, g in enumerate(genes):
        mods = wl.random_modulators(rng, roles, n_tf=6, n_lr=8, n_tfl=5, exclude=g)
        b0, B = wl.cluster_betas(rng, 5, mods)
        per_cell = B[clusters] * (1.0 + 0.2 * rng.normal(size=(len(obs), len(mods))))  # per-cell betas
        if i == 0:
            per_cell[:, :3] = 0.0  # all-zero columns are kept in reference files
        ref.write_reference_betadata(d / "betadata", g, per_cell, b0[clusters], mods, obs)
    return {"dir": d, "G": G, "rw": rw, "rw_tfl": rw_tfl, "genes": genes, "var": var, "obs": obs,
            "clusters": clusters, "ligs": ligs}


@pytest.mark.parametrize(("scale", "cap"), [(1.0, None), (2.0, 0.5)])
def test_splash(session: Any, splash_case: dict[str, Any], scale: float, cap: float | None) -> None:
    from spacetravlr_py.betadata.betabase import Betabase
    from spacetravlr_py.perturb import LigandTable, splash

    c = splash_case
    d = c["dir"]
    out = d / f"out_{scale}_{cap}"
    args = ["splash", "--betadata-dir", d / "betadata", "--gex", d / "gex.parquet", "--rw-ligands",
            d / "rw.parquet", "--rw-ligands-tfl", d / "rw_tfl.parquet", "--min-expr-filter",
            "--scale-factor", scale, "--out-dir", out]
    if cap is not None:
        args += ["--beta-cap", cap]
    rec = session.run(*args)
    assert rec["n_betadata"] == len(c["genes"])
    tissue = wl.panel_tissue(c["obs"], c["var"], c["G"], c["clusters"])
    bb = Betabase.from_dir(d / "betadata", tissue)
    rl = LigandTable.from_frame(pd.DataFrame(c["rw"], columns=c["ligs"]), c["var"])
    rlt = LigandTable.from_frame(pd.DataFrame(c["rw_tfl"], columns=c["ligs"]), c["var"])
    worst = 0.0
    for g in c["genes"]:
        theirs = pd.read_parquet(out / f"{g}_splash.parquet")
        ours = splash(bb, g, c["G"], rl, rlt, beta_scale_factor=scale, beta_cap=cap, as_frame=True)
        assert isinstance(ours, pd.DataFrame)
        names = [col[len("beta_"):] for col in theirs.columns]
        assert sorted(names) == sorted(ours.columns), g
        assert list(theirs.index) == c["obs"]
        worst = max(worst, per_column_rel(ours[names].to_numpy(), theirs.to_numpy(dtype=np.float64)))
    print(f"splash (s={scale}, cap={cap}): max per-column relative difference {worst:.3e}")
    assert worst <= 1e-10, worst


# ------------------------------------------------------------------------------------------------
# 3. perturbation
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def perturb_case(syn: Any, workdir: Path) -> dict[str, Any]:
    from spacetravlr_py.betadata.betabase import Betabase
    from spacetravlr_py.io.anndata import load_tissue
    from spacetravlr_py.io.betadata import BetaFrame

    d = workdir / "perturb"
    h5ad = ref.write_reference_h5ad(d / "tissue.h5ad", syn.adata)
    labels = syn.adata.obs["cell_type"].astype(str).to_numpy()
    betas = dict(syn.betas)
    # a TF–ligand term whose "ligand" (Tcf7) has no CellChat row among the genes: the reference gives
    # it no radius and received amount 0, so knocking Tcf7 out never reaches Cd19 through this term
    f = betas["Cd19"]
    betas["Cd19"] = BetaFrame(gene="Cd19", row_kind=f.row_kind, row_ids=f.row_ids, intercept=f.intercept,
                              modulators=[*f.modulators, "Tcf7#Foxo1"],
                              coefs=np.column_stack([f.coefs, np.full(len(f.row_ids), 30.0)]))
    ref.write_betaframes_for_reference(d / "betadata", betas, list(syn.adata.obs_names), labels)
    ref.write_run_params(d / "betadata", radius=RADIUS, contact_distance=CONTACT)
    tissue = load_tissue(h5ad, cluster_annot="cell_type")
    bb = Betabase.from_dir(d / "betadata", tissue)
    assert len(bb) == len(syn.betas)
    return {"dir": d, "h5ad": h5ad, "tissue": tissue, "bb": bb}


def _ours_perturb(case: dict[str, Any], genes: list[str], values: list[float],
                  cells: list[int] | None = None) -> np.ndarray:
    from spacetravlr_py.perturb import Perturber

    tissue = case["tissue"]
    mask = None
    if cells is not None:
        mask = np.zeros(tissue.n_cells, dtype=bool)
        mask[cells] = True
    p = Perturber(tissue, case["bb"], ref.perturb_settings(RADIUS, CONTACT),
                  ligand_signaling=ref.ligand_signaling(tissue.var_names))
    return p.run(genes, values, scope=mask, n_propagation=4).expression


@pytest.mark.parametrize(("genes", "values", "cells"), [
    (["Foxo1"], [0.0], None),                     # root TF knockout
    (["Wnt5a"], [0.0], None),                     # secreted ligand knockout (used by 6 planted models)
    (["Foxo1", "Jag1", "Col1a1"], [0.0, 0.0, 0.0], None),  # multi-target, contact and ECM ligands
    (["Cxcl12", "Bmp2"], [3.0, 0.5], "subset"),  # overexpression and a level, in a cell subset
    (["Tcf7"], [0.0], None),                      # TF–ligand "ligand" without a CellChat row: RL ≡ 0
], ids=["tf-ko", "ligand-ko", "multi", "subset", "ligand-without-lr-row"])
def test_perturb(session: Any, perturb_case: dict[str, Any], genes: list[str], values: list[float],
                 cells: str | None) -> None:
    c = perturb_case
    d = c["dir"]
    tissue = c["tissue"]
    out = d / f"out_{'_'.join(genes)}.parquet".replace("__", "_")
    args = ["perturb", "--adata", c["h5ad"], "--betadata-dir", d / "betadata", "--target", ",".join(genes),
            "--expr", ",".join(str(v) for v in values), "--n-propagation", 4, "--drop-uns-received", "--out", out]
    pos: list[int] | None = None
    if cells == "subset":
        pos = list(range(0, tissue.n_cells, 3))
        (d / "cells.txt").write_text("\n".join(str(i) for i in pos))
        args += ["--cells", d / "cells.txt"]
    rec = session.run(*args)
    assert rec["n_betadata"] == len(c["bb"])
    theirs_df = pd.read_parquet(out)
    assert list(theirs_df.columns) == tissue.var_names
    theirs = theirs_df.to_numpy(dtype=np.float64)
    ours = _ours_perturb(c, genes, values, pos)
    x0 = tissue.expression
    moved = np.abs(theirs - x0).max(axis=0) > 1e-9
    if genes != ["Tcf7"]:
        assert moved.sum() > len(genes)  # the perturbation propagated beyond the targets
    rel = per_column_rel(ours, theirs)
    print(f"perturb {genes}->{values} ({'subset' if cells else 'all cells'}): max per-gene relative "
          f"difference {rel:.3e}, max abs {np.abs(ours - theirs).max():.3e}")
    assert rel <= 1e-10, f"max per-gene relative difference {rel:.3e}"

"""Training under ``[compat] mode = "python-reference"`` against the reference's own fits (0.1.18).

The reference's solver (group-lasso 1.5.0) takes a gradient step ``0.5·∇f/L`` but thresholds by
``reg/L``, so it converges to the minimiser of its stated objective with BOTH penalties doubled
(reference README, quirk 20); within its hard-coded 1500 iterations it usually has not converged.
Compat mode therefore solves

    (1/2n)‖Xw + b − y‖² + 2·(Σ_g group_reg/√|g|·‖w_g‖₂ + l1_reg·‖w‖₁)

and gates clusters at the reference's R² 0.15. Checked on the reference's own design matrices
(``harness.py train --dump-design``), per (gene, cluster):

* our betas satisfy the optimality (KKT) conditions of the doubled-penalty problem (≤ 1e-6 of the
  gradient's scale), and NOT those of the stated problem (so the doubling is what we solve);
* our objective is ≤ the reference's, and our intercept is ``ȳ − x̄·w``;
* the R² gate agrees, except where the reference stopped short of 0.15 and ours (converged, lower
  objective) passes, or where y is constant in the cluster (both give all-zero betas);
* our modulators are the reference's.

Skipped with a reason when the reference is absent (failed instead under ``make test``).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from benchmarks import bench_train as bt
from benchmarks import reference as ref
from benchmarks import workloads as wl

from conftest import require_reference

N_GENES = 20
N_CELLS = 300
N_TARGETS = 6
GROUP_REG = 1e-3  # large enough that groups and single coefficients are zeroed, so both penalties act
L1_REG = 1e-4
KKT_TOL = 1e-6
"""KKT violation allowed, relative to ``max|Xᵀy|/n`` of the cluster (ours reach ~1e-9)."""


# ------------------------------------------------------------------------------------------------
# the compat fit settings (no reference needed)
# ------------------------------------------------------------------------------------------------


def test_compat_fit_settings_double_the_penalties_and_gate_at_015() -> None:
    from spacetravlr_py.config import SpaceshipConfig
    from spacetravlr_py.training.context import FitSettings

    lasso = {"group_reg": 3e-4, "l1_reg": 5e-6, "n_iter": 777, "tol": 1e-7}
    seed = FitSettings.from_config(SpaceshipConfig.from_dict({"lasso": lasso}))
    assert (seed.group_reg, seed.l1_reg, seed.score_threshold) == (3e-4, 5e-6, 0.2)
    compat = FitSettings.from_config(SpaceshipConfig.from_dict({"lasso": lasso,
                                                                "compat": {"mode": "python-reference"}}))
    assert (compat.group_reg, compat.l1_reg) == (6e-4, 1e-5)
    assert compat.score_threshold == 0.15
    assert compat.group_reg_scaling == "inverse_sqrt_group_size"
    assert (compat.n_iter, compat.tol) == (777, 1e-7)  # the other keys are kept
    # an explicit gate wins over the compat default; the config keeps the user's (reference's) penalties
    cfg = SpaceshipConfig.from_dict({"lasso": lasso, "training": {"score_threshold": 0.3},
                                     "compat": {"mode": "python-reference"}})
    assert FitSettings.from_config(cfg).score_threshold == 0.3
    assert cfg.lasso.group_reg == 3e-4


# ------------------------------------------------------------------------------------------------
# parity on the reference's design matrices
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    require_reference(ref.OLDEST)
    d = wl.write_training_inputs(tmp_path_factory.mktemp("train_parity"), N_GENES, N_CELLS, seed=0)
    targets = [t for t in (d / "targets.txt").read_text().split() if t][:N_TARGETS]
    (d / "targets_sub.txt").write_text("\n".join(targets) + "\n")
    args = ["train", "--adata", d / "tissue.h5ad", "--targets", d / "targets_sub.txt", "--regulators-json",
            d / "regulators.json", "--annot", ref.REF_ANNOT, "--layer", "imputed_count", "--radius", bt.RADIUS,
            "--contact-distance", bt.CONTACT, "--group-reg", GROUP_REG, "--l1-reg", L1_REG, "--skip-spatial-maps",
            "--dump-design", "--out-dir", d / "ref"]
    with ref.ReferenceSession(threads=2) as s:
        s.run(*args)  # the reference's own n_iter 1500, tol 1e-5
    # ours: the CLI under compat with the reference's penalty values, iterated to convergence
    cfg = bt.write_config(d, d / "ours", compat=True, n_iter=20000, tol=1e-10, genes=targets,
                          group_reg=GROUP_REG, l1_reg=L1_REG)
    bt.run_cli(cfg, d / "ours", timeout=1800)
    import anndata as ad

    a = ad.read_h5ad(d / "tissue.h5ad", backed="r")
    clusters = a.obs[ref.REF_ANNOT].to_numpy()
    obs = list(a.obs_names)
    a.file.close()
    return {"dir": d, "targets": targets, "clusters": pd.Series(clusters, index=obs)}


def _penalty(groups: np.ndarray, factor: float) -> Any:
    from spacetravlr_py.models.penalties import SparseGroupL1L2

    return SparseGroupL1L2.from_groups(groups, factor * L1_REG, factor * GROUP_REG, "inverse_sqrt_group_size")


def _objective(X: np.ndarray, y: np.ndarray, w: np.ndarray, b: float, pen: Any) -> float:
    r = y - X @ w - b
    return 0.5 * float(r @ r) / len(y) + pen.value(w)


def _gene_fits(runs: dict[str, Any], gene: str) -> list[dict[str, Any]]:
    """Per cluster: the reference design (X, y), the reference's raw fit and our (gated) betas."""
    from spacetravlr_py.io.betadata import read_betadata

    rd = runs["dir"] / "ref"
    design = pd.read_parquet(rd / f"{gene}_design.parquet")
    info = json.loads((rd / f"{gene}_modulators.json").read_text())
    mods = info["modulators"]
    groups = np.array([0] * len(info["regulators"]) + [1] * len(info["lr_pairs"]) + [2] * len(info["tfl_pairs"]))
    seeds = pd.read_csv(rd / f"{gene}_seeds.csv", index_col=0)
    ours = read_betadata(runs["dir"] / "ours" / f"{gene}_betadata.feather")
    assert set(ours.modulators) <= set(mods), set(ours.modulators) - set(mods)
    col = {m: j for j, m in enumerate(ours.modulators)}
    row = {str(r): i for i, r in enumerate(ours.row_ids)}
    y_all = design[gene].to_numpy(dtype=np.float64)
    X_all = design[mods].to_numpy(dtype=np.float64)
    cl = runs["clusters"].loc[design.index].to_numpy()
    out = []
    for c in seeds.index:
        m = cl == c
        i = row[str(c)]
        w = np.array([ours.coefs[i, col[x]] if x in col else 0.0 for x in mods])
        out.append({"gene": gene, "cluster": c, "X": X_all[m], "y": y_all[m], "groups": groups,
                    "w_ours": w, "b_ours": float(ours.intercept[i]),
                    "w_ref": seeds.loc[c, ["beta_" + x for x in mods]].to_numpy(dtype=np.float64),
                    "b_ref": float(seeds.loc[c, "beta0"]), "r2_ref": float(seeds.loc[c, "r2"]),
                    "used_ref": bool(seeds.loc[c, "used"])})
    return out


def _kkt(f: dict[str, Any], w: np.ndarray, factor: float) -> float:
    """Largest KKT violation of ``w`` (intercept profiled out) relative to ``max|Xcᵀyc|/n``."""
    Xc = f["X"] - f["X"].mean(axis=0)
    yc = f["y"] - f["y"].mean()
    n = len(yc)
    grad = Xc.T @ (Xc @ w - yc) / n
    return float(_penalty(f["groups"], factor).kkt_violation(w, grad).max()) / float(np.abs(Xc.T @ yc).max() / n)


@pytest.mark.reference
def test_compat_training_solves_the_doubled_penalty_problem(runs: dict[str, Any]) -> None:
    fits = [f for g in runs["targets"] for f in _gene_fits(runs, g)]
    both, gate_diff, kkt2, kkt1, gaps = 0, [], [], [], []
    for f in fits:
        ours_used = bool(f["b_ours"] != 0.0 or np.any(f["w_ours"]))
        constant_y = float(np.ptp(f["y"])) == 0.0
        if constant_y:  # no signal: the reference "fits" it perfectly (R² 1), ours keeps zero betas
            assert not np.any(f["w_ours"]) and not np.any(f["w_ref"])
            continue
        F_ref = _objective(f["X"], f["y"], f["w_ref"], f["b_ref"], _penalty(f["groups"], 2.0))
        if not ours_used:
            assert not f["used_ref"], (f["gene"], f["cluster"])  # gated by both (R² < 0.15)
            continue
        F_ours = _objective(f["X"], f["y"], f["w_ours"], f["b_ours"], _penalty(f["groups"], 2.0))
        gaps.append((F_ours - F_ref) / abs(F_ref))
        assert F_ours <= F_ref * (1 + 1e-12), (f["gene"], f["cluster"], F_ours, F_ref)
        assert f["b_ours"] == pytest.approx(f["y"].mean() - f["X"].mean(axis=0) @ f["w_ours"], abs=1e-9)
        kkt2.append(_kkt(f, f["w_ours"], 2.0))
        kkt1.append(_kkt(f, f["w_ours"], 1.0))
        if f["used_ref"]:
            both += 1
        else:  # the reference stopped short of the gate within its 1500 iterations; ours converged past it
            assert f["r2_ref"] < 0.15
            gate_diff.append((f["gene"], f["cluster"], round(f["r2_ref"], 3)))
    n_zero = sum(int(np.sum(f["w_ours"] == 0)) for f in fits if np.any(f["w_ours"]))
    print(f"training parity vs 0.1.18 ({len(runs['targets'])} genes, {len(fits)} cluster fits, {both} used by both): "
          f"doubled-penalty KKT ≤ {max(kkt2):.2e}, stated-penalty KKT up to {max(kkt1):.2e}; objective "
          f"(ours − reference)/|reference| in [{min(gaps):.2e}, {max(gaps):.2e}]; {n_zero} zero coefficients; "
          f"clusters gated by the reference only: {gate_diff}")
    assert both >= len(fits) // 2
    assert n_zero > 0  # the penalties act: some coefficients (and groups) are exactly zero
    assert max(kkt2) <= KKT_TOL
    assert max(kkt1) > 100 * KKT_TOL  # the stated (undoubled) problem is NOT what the reference converges to

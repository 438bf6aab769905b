"""``collect_interactions``: hand-computed aggregates on a 6-cell tissue (cluster rows), agreement with a
brute-force per-cell computation (cluster rows and CellID rows with a missing cell), the run-folder
(streaming) path equal to the Betabase path, and clear errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from spacetravlr_py.betadata import Betabase, collect_interactions
from spacetravlr_py.betadata.interactions import AGGREGATES, COLUMNS, modulator_parts
from spacetravlr_py.errors import InputError
from spacetravlr_py.io.anndata import Tissue
from spacetravlr_py.io.betadata import BetaFrame, betadata_path, write_betadata

GENES = ["A", "C", "L", "R", "T"]


def tiny_tissue() -> Tissue:
    # cluster labels x, x, y, y, y, x → ids 0, 0, 1, 1, 1, 0
    n = 6
    rng = np.random.default_rng(0)
    return Tissue(obs_names=np.array([f"c{i}" for i in range(n)], dtype=object), var_names=list(GENES),
                  coords=rng.uniform(0, 100, (n, 2)), expression=rng.uniform(0, 2, (n, len(GENES))),
                  clusters=np.array([0, 0, 1, 1, 1, 0]), cluster_labels=["x", "y"])


def seed_frame() -> BetaFrame:
    return BetaFrame(gene="C", row_kind="Cluster", row_ids=["x", "y"], intercept=np.array([0.1, 0.2]),
                     modulators=["A", "L$R", "L#A"], coefs=np.array([[1.0, -2.0, 0.5], [3.0, 0.0, -1.0]]))


LABELS = np.array(["t1", "t1", "t1", "t2", "t2", "t2"], dtype=object)

# per group (t1 = rows x, x, y; t2 = rows y, y, x) and modulator: hand-computed values; None = left out
EXPECTED = {
    "mean": {("t1", "A"): 5 / 3, ("t1", "L$R"): -4 / 3, ("t1", "L#A"): None,
             ("t2", "A"): 7 / 3, ("t2", "L$R"): -2 / 3, ("t2", "L#A"): -0.5},
    "sum": {("t1", "A"): 5.0, ("t1", "L$R"): -4.0, ("t1", "L#A"): None,
            ("t2", "A"): 7.0, ("t2", "L$R"): -2.0, ("t2", "L#A"): -1.5},
    "min": {("t1", "A"): 1.0, ("t1", "L$R"): -2.0, ("t1", "L#A"): -1.0,
            ("t2", "A"): 1.0, ("t2", "L$R"): -2.0, ("t2", "L#A"): -1.0},
    "max": {("t1", "A"): 3.0, ("t1", "L$R"): None, ("t1", "L#A"): 0.5,
            ("t2", "A"): 3.0, ("t2", "L$R"): None, ("t2", "L#A"): 0.5},
    "positive": {("t1", "A"): 5 / 3, ("t1", "L$R"): None, ("t1", "L#A"): 0.5,
                 ("t2", "A"): 7 / 3, ("t2", "L$R"): None, ("t2", "L#A"): 0.5},
    "negative": {("t1", "A"): None, ("t1", "L$R"): -2.0, ("t1", "L#A"): -1.0,
                 ("t2", "A"): None, ("t2", "L$R"): -2.0, ("t2", "L#A"): -1.0},
}


@pytest.mark.parametrize("how", AGGREGATES)
def test_hand_computed_aggregates(how: str) -> None:
    t = tiny_tissue()
    df = collect_interactions(Betabase([seed_frame()], t), t, LABELS, aggregate=how)
    assert list(df.columns) == list(COLUMNS)
    got = {(r.cell_type, r.modulator): r.value for r in df.itertuples()}
    want = {k: v for k, v in EXPECTED[how].items() if v is not None}
    assert got.keys() == want.keys()
    for k, v in want.items():
        assert got[k] == pytest.approx(v, rel=1e-12)
    assert (df["target"] == "C").all()
    # sorted by |value| descending
    assert (np.diff(df["value"].abs().to_numpy()) <= 0).all()


def test_parts_and_default_labels() -> None:
    t = tiny_tissue()
    df = collect_interactions(Betabase([seed_frame()], t))  # labels default to the cluster labels
    assert set(df["cell_type"]) == {"x", "y"}
    row = df[(df.modulator == "L$R") & (df.cell_type == "x")].iloc[0]
    assert (row.family, row.ligand, row.receptor, row.tf, row.value) == ("lr", "L", "R", None, -2.0)
    row = df[(df.modulator == "L#A") & (df.cell_type == "y")].iloc[0]
    assert (row.family, row.ligand, row.receptor, row.tf) == ("tfl", "L", None, "A")
    row = df[(df.modulator == "A") & (df.cell_type == "y")].iloc[0]
    assert (row.family, row.tf, row.value) == ("tf", "A", 3.0)
    assert modulator_parts("X") == ("tf", None, None, "X")


def brute_force(t: Tissue, frames: list[BetaFrame], labels: np.ndarray, how: str) -> dict:
    """Per-cell betas materialised, then aggregated group by group (the obvious way)."""
    bb = Betabase(frames, t)
    out = {}
    for gm in bb.models:
        rows = bb.mappings[gm.mapping]
        f = gm.frame
        per_cell = np.where(rows[:, None] >= 0, f.coefs[np.maximum(rows, 0)], 0.0)
        for g in np.unique(labels):
            v = per_cell[labels == g]
            for j, m in enumerate(f.modulators):
                x = v[:, j]
                if how == "positive":
                    x = x[x > 0]
                elif how == "negative":
                    x = x[x < 0]
                if x.size == 0:
                    continue
                val = {"mean": np.mean, "sum": np.sum, "min": np.min, "max": np.max, "positive": np.mean,
                       "negative": np.mean}[how](x)
                if val != 0:
                    out[(f.gene, m, g)] = val
    return out


def random_case(seed: int, per_cell: bool) -> tuple[Tissue, list[BetaFrame], np.ndarray]:
    rng = np.random.default_rng(seed)
    n, genes = 300, [f"G{i}" for i in range(8)]
    t = Tissue(obs_names=np.array([f"c{i}" for i in range(n)], dtype=object), var_names=genes,
               coords=rng.uniform(0, 100, (n, 2)), expression=rng.uniform(0, 2, (n, len(genes))),
               clusters=rng.integers(0, 4, n), cluster_labels=["a", "b", "c", "d"])
    frames = []
    for g in genes[:5]:
        mods = [m for m in ["G5", "G6$G7", "G7#G5", "G6"] if m.split("$")[0] != g]
        if per_cell:  # shuffled rows, one cell missing (zero betas), an extra unknown cell
            ids = [f"c{i}" for i in rng.permutation(n)[:-1]] + ["stranger"]
        else:
            ids = ["a", "b", "c", "d"]
        coefs = rng.normal(size=(len(ids), len(mods)))
        coefs[rng.random(coefs.shape) < 0.3] = 0.0
        frames.append(BetaFrame(gene=g, row_kind="CellID" if per_cell else "Cluster", row_ids=ids,
                                intercept=rng.normal(size=len(ids)), modulators=mods, coefs=coefs))
    labels = np.array(["ct" + str(k % 3) for k in rng.integers(0, 9, n)], dtype=object)
    return t, frames, labels


@pytest.mark.parametrize("per_cell", [False, True], ids=["cluster_rows", "cell_rows"])
@pytest.mark.parametrize("how", AGGREGATES)
def test_agrees_with_brute_force(per_cell: bool, how: str) -> None:
    t, frames, labels = random_case(7, per_cell)
    df = collect_interactions(Betabase(frames, t), t, labels, aggregate=how)
    got = {(r.target, r.modulator, r.cell_type): r.value for r in df.itertuples()}
    want = brute_force(t, frames, labels, how)
    assert got.keys() == want.keys() and len(got) > 20
    for k, v in want.items():
        assert got[k] == pytest.approx(v, rel=1e-12, abs=1e-14)


def test_run_folder_streams_the_same_table(tmp_path) -> None:
    t, frames, labels = random_case(3, per_cell=True)
    for f in frames:
        write_betadata(betadata_path(tmp_path, f.gene), f)
    seen: list[str] = []
    a = collect_interactions(Betabase(frames, t), t, labels, aggregate="mean", cell_types=["ct1"])
    b = collect_interactions(tmp_path, t, labels, aggregate="mean", cell_types=["ct1"],
                             on_gene=lambda i, n, g: seen.append(f"{i}/{n}:{g}"))
    pd.testing.assert_frame_equal(a, b)
    assert seen == [f"{i}/5:G{i}" for i in range(5)]
    assert set(b["cell_type"]) == {"ct1"}
    only = collect_interactions(tmp_path, t, labels, genes=["G2"])
    assert set(only["target"]) == {"G2"}


def test_stop_and_errors() -> None:
    t = tiny_tissue()
    bb = Betabase([seed_frame()], t)

    def stop(i: int, n: int, g: str) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        collect_interactions(bb, on_gene=stop)
    with pytest.raises(InputError, match="aggregate 'median'"):
        collect_interactions(bb, aggregate="median")
    with pytest.raises(InputError, match="cell type 'zz' has no cells"):
        collect_interactions(bb, cell_types=["zz"])
    with pytest.raises(InputError, match="labels has 2 entries"):
        collect_interactions(bb, t, ["a", "b"])
    with pytest.raises(InputError, match="tissue"):
        collect_interactions("/nonexistent")
    empty = collect_interactions(Betabase([], t))
    assert list(empty.columns) == list(COLUMNS) and len(empty) == 0

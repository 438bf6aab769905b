"""The knockout screen called from Python: a ranked table and its writer (the CLI prints the same)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from spacetravlr_py import _keys
from spacetravlr_py.errors import InputError
from spacetravlr_py.perturb.screen import COLUMNS, screen, write_screen
from spacetravlr_py.perturb.session import RunSession


@pytest.fixture(scope="module")
def session(small_run) -> RunSession:
    return RunSession.open(small_run.toml)


def test_screen_ranks_by_impact_and_matches_single_runs(session: RunSession) -> None:
    roles = session.betabase.roles()
    every = sorted(set().union(*roles.values()))
    seen: list[str] = []
    ranked = screen(session, on_done=lambda row: seen.append(row["gene"]))
    assert list(ranked.columns) == list(COLUMNS) and seen == every  # run in name order, then ranked
    assert ranked["rank"].tolist() == list(range(1, len(every) + 1)) and sorted(ranked["gene"]) == every
    assert (np.diff(ranked["impact"].to_numpy()) <= 0).all()
    best = ranked.iloc[0]
    res = session.run(best["gene"], 0.0)  # impact = mean |Δ| over every other gene
    others = [g != best["gene"] for g in session.tissue.var_names]
    assert best["impact"] == pytest.approx(np.abs(res.delta[:, others]).mean(), rel=1e-12)
    assert best["desired_expr"] == 0.0 and set(best["roles"].split(",")) <= {"tf", "ligand", "receptor"}


def test_screen_overexpress_subset_writer_and_errors(session: RunSession, tmp_path: Path) -> None:
    genes = sorted(session.betabase.roles()["ligand"])[:2]
    ranked = screen(session, mode="overexpress", genes=genes, n_propagation=2)
    gi = session.tissue.gene_index
    for _, r in ranked.iterrows():
        assert r["desired_expr"] == session.tissue.expression[:, gi[r["gene"]]].max()
    files = write_screen(ranked, tmp_path / "scr", mode="overexpress")
    assert files == {"csv": tmp_path / "scr" / _keys.SCREEN_CSV, "json": tmp_path / "scr" / _keys.SCREEN_JSON}
    back = pd.read_csv(files["csv"])
    assert list(back.columns) == list(COLUMNS) and back["gene"].tolist() == ranked["gene"].tolist()
    js = json.loads(files["json"].read_text())
    assert js["mode"] == "overexpress" and [r["gene"] for r in js["results"]] == ranked["gene"].tolist()
    assert list(js["results"][0])[-1] == "rank" and js["results"][0]["impact"] == ranked["impact"].iloc[0]
    with pytest.raises(InputError, match="screen mode must be knockout or overexpress"):
        screen(session, mode="activate")
    with pytest.raises(InputError, match="gene 'Nope' is not in the dataset"):
        screen(session, genes=[genes[0], "Nope"])

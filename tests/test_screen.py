"""The knockout screen: the ranked table and its writer, per-cell-type scores checked by hand, the choice of
genes (roles, files, genes with no targets skipped), and the resumable folder: an interrupted screen (in
process, or the program SIGKILLed with its workers) resumes to the same ranking, and 2 worker processes give
the same files as 1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from builders import slow_genes_env
from spacetravlr_py import _keys
from spacetravlr_py.cli.perturb import main as perturb_main
from spacetravlr_py.errors import InputError
from spacetravlr_py.perturbation.screen import COLUMNS, GeneTask, score_gene, screen, select_genes, write_screen
from spacetravlr_py.perturbation.screen_files import ScreenDir, ScreenRequest
from spacetravlr_py.perturbation.screen_run import ProcessScreen, SessionRecipe, run_screen
from spacetravlr_py.perturbation.session import RunSession


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


# --------------------------------------------------------------------------------------------------
# the screen at scale: per-cell-type scores, the choice of genes, resumable folders, worker processes
# --------------------------------------------------------------------------------------------------

PROGRAM = "import sys; from spacetravlr_py.cli.perturb import main; sys.exit(main(sys.argv[1:]))"


def test_cell_type_scores_by_hand(session: RunSession) -> None:
    t = session.tissue
    s = score_gene(session.perturber, GeneTask("Spi1", 0.0, ("tf",)))
    res = session.run("Spi1", 0.0)
    others = np.array([g != "Spi1" for g in t.var_names])
    per_cell = np.abs(res.delta[:, others]).mean(axis=1)
    for k, lab in enumerate(t.cluster_labels):
        assert s.cell_types[lab] == pytest.approx(per_cell[t.clusters == k].mean(), rel=1e-12)
    best = sorted(s.cell_types, key=lambda c: -s.cell_types[c])[:3]
    assert [p.split(":")[0] for p in s.top_cell_types.split(";")] == best
    assert s.impact == pytest.approx(per_cell.mean(), rel=1e-12)


def test_choice_of_genes(session: RunSession, tmp_path: Path, capsys) -> None:
    p = session.perturber
    roles = session.betabase.roles()
    ligs, skipped = select_genes(p, roles=["ligand"])
    assert ligs == sorted(roles["ligand"]) and skipped == []
    # a target gene modulates nothing: listed and skipped; the file may hold comments and commas
    f = tmp_path / "genes.txt"
    f.write_text("# regulators\nFoxo1, Il6\nCd19  # a target only\n")
    out = tmp_path / "scr"
    rc = perturb_main(["screen", "--run-toml", str(session.run_dir), "--genes-file", str(f), "--out-dir", str(out),
                       "--no-figures"])
    cap = capsys.readouterr()
    assert rc == 0
    assert "screen: 1 genes modulate no trained gene and are skipped (perturbing them changes nothing else): Cd19" \
        in cap.err
    assert sorted(pd.read_csv(out / _keys.SCREEN_CSV)["gene"]) == ["Foxo1", "Il6"]
    assert json.loads((out / _keys.SCREEN_SPEC_JSON).read_text())["skipped"] == ["Cd19"]
    # bad input: one line each
    cases = [(["--genes", "Cd19,Cd3e"], "none of the requested genes modulates a trained gene (Cd19, Cd3e)"),
             (["--roles", "ligands"], "--roles: 'ligands' is not one of tf, ligand, receptor (did you mean ligand?)"),
             (["--workers", "0"], "--workers must be >= 1"),
             (["--genes-file", str(tmp_path / "none.txt")], "cannot read"),
             (["--genes", "Il6", "--out-dir", str(out)],
              "holds another screen (genes = ['Foxo1', 'Il6', 'Cd19'], now ['Il6'])")]
    for args, msg in cases:
        assert perturb_main(["screen", "--run-toml", str(session.run_dir), *args]) == 2
        err = capsys.readouterr().err  # a progress line ("loaded ...") may come first
        lines = [ln for ln in err.splitlines() if ln.startswith("spacetravlr-perturb: error: ")]
        assert len(lines) == 1 and msg in lines[0] and "Traceback" not in err, err


@pytest.fixture(scope="module")
def reference_screen(small_run, tmp_path_factory) -> Path:
    """The whole knockout screen of the small run, serial and uninterrupted."""
    out = tmp_path_factory.mktemp("ref_screen") / "screen"
    res = run_screen(out, ScreenRequest(run_toml=str(small_run.toml.resolve())), figures=False)
    assert len(res.computed) == len(res.spec.genes) > 20
    return out


def test_interrupted_screen_resumes_to_the_same_ranking(small_run, session: RunSession, reference_screen: Path,
                                                        tmp_path: Path) -> None:
    req = ScreenRequest(run_toml=str(small_run.toml.resolve()))
    out = tmp_path / "screen"

    def stop_after_five(score, i: int, n: int) -> None:
        if i == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_screen(out, req, session=session, on_done=stop_after_five, figures=False)
    sd = ScreenDir(out)
    assert len(list(sd.genes_dir.glob("*.json"))) == 5 and not (out / _keys.SCREEN_CSV).exists()
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # no temporary file left
    again = run_screen(out, req, figures=False)
    assert len(again.computed) == len(again.spec.genes) - 5 and not again.already_finished
    for name in (_keys.SCREEN_CSV, _keys.SCREEN_JSON, _keys.SCREEN_CELL_TYPES_CSV):
        assert (out / name).read_bytes() == (reference_screen / name).read_bytes(), name
    done = run_screen(out, req)  # a finished screen is left as it is
    assert done.already_finished and done.computed == []


def test_two_workers_give_the_same_ranking(small_run, reference_screen: Path, tmp_path: Path) -> None:
    req = ScreenRequest(run_toml=str(small_run.toml.resolve()))
    out = tmp_path / "screen"
    res = run_screen(out, req, executor=ProcessScreen(SessionRecipe(req.run_toml), 2), figures=False)
    assert len(res.computed) == len(res.spec.genes)
    for name in (_keys.SCREEN_CSV, _keys.SCREEN_CELL_TYPES_CSV):
        assert (out / name).read_bytes() == (reference_screen / name).read_bytes(), name


def test_killed_cli_screen_with_workers_resumes(small_run, reference_screen: Path, tmp_path: Path) -> None:
    """SIGKILL the program and its two workers mid-screen: finished genes are whole files, nothing else is
    left under a final name, and the same command finishes the screen with the uninterrupted ranking."""
    out = tmp_path / "screen"
    cmd = [sys.executable, "-c", PROGRAM, "screen", "--run-toml", str(small_run.toml), "--out-dir", str(out),
           "--workers", "2"]
    # each gene waits 0.3 s after its scoring (same files), so that the kill lands mid-screen
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, **slow_genes_env(0.3)}, start_new_session=True)
    n_genes = len(json.loads((reference_screen / _keys.SCREEN_SPEC_JSON).read_text())["tasks"])
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if len(list((out / _keys.SCREEN_GENES_DIR).glob("*.json"))) >= 3:
                break
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    finished = list((out / _keys.SCREEN_GENES_DIR).glob("*.json"))
    assert 3 <= len(finished) < n_genes, "the screen ended before it could be killed"
    for p in finished:  # whole files only
        assert json.loads(p.read_text())["gene"] == p.stem
    assert not (out / _keys.SCREEN_CSV).exists()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=os.environ.copy())
    assert done.returncode == 0, done.stderr
    assert f"({n_genes - len(finished)} computed now)" in done.stdout
    assert f"({len(finished)} already finished)" in done.stderr
    assert (out / _keys.SCREEN_CSV).read_bytes() == (reference_screen / _keys.SCREEN_CSV).read_bytes()
    assert not list((out / _keys.SCREEN_GENES_DIR).glob(".*"))  # the killed writers' temporaries are gone

"""Seed-mode training runs (SPEC §5.1, §5.3): recovery of planted betas, outputs, restarts, workers,
locks, and killed or interrupted runs."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.feather as feather
import pytest

from builders import WrittenTissue, run_config, slow_genes_env, write_tissue
from spacetravlr_py import _keys
from spacetravlr_py.betadata.frame import betadata_path, read_betadata
from spacetravlr_py.config import SpaceshipConfig
from spacetravlr_py.datasets import synthetic_tissue
from spacetravlr_py.rundir import locks
from spacetravlr_py.training import ConsoleReporter, train
from spacetravlr_py.training.run import RunResult

CLI = [sys.executable, "-c", "from spacetravlr_py.cli.main import run; run()"]
GENE_LINE = re.compile(r"^(?P<gene>\S+)\s+(?P<status>done|orphan|FAILED)\s")


# -- helpers -----------------------------------------------------------------------------------


def run_quiet(cfg: SpaceshipConfig, **kw) -> RunResult:
    return train(cfg, **kw)


def run_arrays(out: Path) -> dict[str, dict[str, np.ndarray]]:
    """Every betadata file of a run folder as raw arrays (what is on disk, bit for bit)."""
    res = {}
    for f in sorted(out.glob("*_betadata.feather")):
        t = feather.read_table(f)
        res[f.name] = {c: t.column(c).to_numpy(zero_copy_only=False) for c in t.column_names}
    return res


def orphans(out: Path) -> set[str]:
    return {p.name[: -len(".orphan")] for p in out.glob("*.orphan")}


def assert_same_runs(a: Path, b: Path) -> None:
    A, B = run_arrays(a), run_arrays(b)
    assert A.keys() == B.keys()
    for name, cols in A.items():
        assert list(cols) == list(B[name]), name
        for c, v in cols.items():
            assert np.array_equal(v, B[name][c]), f"{name}: column {c} differs"
    assert orphans(a) == orphans(b)


def leftovers(out: Path) -> list[str]:
    """Locks, temporary files, reclaimed locks and shared-array folders left in a run folder."""
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*")
                  if p.name.endswith((".tmp", ".lock")) or ".stale-" in p.name
                  or p.name.startswith(".spacetravlr-ctx-"))


def n_finished(out: Path) -> int:
    if not out.is_dir():
        return 0
    return sum(1 for p in out.iterdir() if p.name.endswith(("_betadata.feather", ".orphan")))


def wait_for(pred, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    t0 = time.monotonic()
    while not pred():
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            err = proc.stderr.read() if proc.stderr else ""
            pytest.fail(f"process ended (rc {proc.returncode}) before the condition held\n{out}\n{err}")
        if time.monotonic() - t0 > timeout:
            proc.kill()
            pytest.fail("timed out waiting for the training process")
        time.sleep(0.02)


def dead_pid() -> int:
    p = subprocess.Popen(["sleep", "60"])
    p.kill()
    p.wait()
    return p.pid


def write_lock(out: Path, gene: str, host: str, pid: int, age: float = 0.0) -> Path:
    p = locks.lock_path(out, gene)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps({"host": host, "pid": pid, "started": time.time() - age}))
    if age:
        t = time.time() - age
        os.utime(p, (t, t))
    return p


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> WrittenTissue:
    """61 genes × 400 cells: quick runs."""
    return write_tissue(tmp_path_factory.mktemp("small"), n_cells=400, seed=1)


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> WrittenTissue:
    """145 genes × 3000 cells: a run that takes several seconds (for kill and concurrency tests)."""
    return write_tissue(tmp_path_factory.mktemp("big"), n_cells=3000, n_tfs=40, n_lr_pairs=24, n_targets=60,
                        seed=3)


SLOW_FLAGS = ("--n-iter", "3000", "--tol", "1e-9")
"""The flags of the runs that are stopped mid-run (and of :func:`big_reference`, which they must equal)."""

GENE_DELAY_S = 0.05
"""Seconds each gene of a run with :func:`slow_env` waits after its fit: 145 genes take ~7 s on one core, so a
signal sent after the first genes lands mid-run even on a loaded machine (the fits alone take ~1 s)."""


def slow_env() -> dict[str, str]:
    """The environment of a training subprocess whose genes each take :data:`GENE_DELAY_S` longer."""
    return {**os.environ, **slow_genes_env(GENE_DELAY_S)}


# -- recovery of planted betas ---------------------------------------------------------------


def recovery(data: WrittenTissue, run_dir: Path, scale: float = 1.0) -> dict[str, float]:
    """Support recovery and coefficient agreement on the candidate modulators of the target genes.

    Every (target, cluster, candidate modulator) is one item; it is a true non-zero when its planted
    beta is non-zero. Scores: ``|β̂|`` (``ap``) and ``|β̂|·sd`` of the feature in the cluster
    (``ap_std``, invariant to feature scale). ``r``: Pearson r of fitted vs planted on the true non-zeros.
    """
    from sklearn.metrics import average_precision_score

    from spacetravlr_py.modulators import ModulatorSelector, design_matrix
    from spacetravlr_py.spatial.received import received_ligands

    syn = data.syn
    X = np.asarray(syn.adata.layers[_keys.DEFAULT_LAYER])
    genes = list(syn.adata.var_names)
    gi = {g: i for i, g in enumerate(genes)}
    xy = np.asarray(syn.adata.obsm["spatial"])
    cl = syn.adata.obs[_keys.DEFAULT_CLUSTER_ANNOT].cat.codes.to_numpy()
    radius = float(syn.params["radius"])

    def received(ligs: list[str]) -> np.ndarray:
        return np.asarray(received_ligands(X[:, [gi[g] for g in ligs]], xy, np.full(len(ligs), radius),
                                           scale=scale))

    sel = ModulatorSelector(syn.network, genes)
    raw, std, labels, true_nz, fit_nz = [], [], [], [], []
    for g in syn.roles["targets"]:
        mods = sel.select(g)
        D = design_matrix(mods, lambda n: X[:, gi[n]], received)
        tru = syn.betas[g]
        fit = read_betadata(betadata_path(run_dir, g))
        assert fit.row_ids == tru.row_ids
        for k in range(len(tru.row_ids)):
            sd = D[cl == k].std(axis=0)
            for j, m in enumerate(mods.names):
                b = fit.coefs[k, fit.modulators.index(m)] if m in fit.modulators else 0.0
                t = tru.coefs[k, tru.modulators.index(m)] if m in tru.modulators else 0.0
                raw.append(abs(b))
                std.append(abs(b) * sd[j])
                labels.append(t != 0)
                if t != 0:
                    true_nz.append(t)
                    fit_nz.append(b)
    return {"ap": float(average_precision_score(labels, raw)),
            "ap_std": float(average_precision_score(labels, std)),
            "r": float(np.corrcoef(true_nz, fit_nz)[0, 1]),
            "n_items": len(labels), "n_true": int(np.sum(labels))}


def train_targets(data: WrittenTissue, out: Path, **over) -> RunResult:
    res = run_quiet(run_config(data, out, training__genes=data.syn.roles["targets"], **over))
    assert res.counts["done"] == len(data.syn.roles["targets"])
    return res


def test_recovery_of_planted_betas(tmp_path: Path):
    data = write_tissue(tmp_path / "data", n_cells=2000, seed=0, noise=0.05)
    train_targets(data, tmp_path / "run")
    rec = recovery(data, tmp_path / "run")
    print(f"\nrecovery at noise 0.05, 2000 cells: {rec}")
    assert rec["ap"] >= 0.9, rec
    assert rec["ap_std"] >= 0.9, rec
    assert rec["r"] >= 0.95, rec
    # every planted modulator of a target is among its candidates (the network holds them)
    from spacetravlr_py.modulators import ModulatorSelector

    sel = ModulatorSelector(data.syn.network, data.genes)
    for g in data.syn.roles["targets"]:
        assert set(data.syn.planted[g]) <= set(sel.select(g).names)


@pytest.mark.slow
def test_recovery_noise_sweep(tmp_path: Path, record_property):
    """Where recovery breaks: AUPRC and r per noise level (printed and recorded; see docs/benchmarks)."""
    rows = {}
    for noise in (0.05, 0.1, 0.2, 0.5, 1.0):
        data = write_tissue(tmp_path / f"d{noise}", n_cells=2000, seed=0, noise=noise)
        train_targets(data, tmp_path / f"r{noise}")
        rows[noise] = recovery(data, tmp_path / f"r{noise}")
    table = "\n".join(f"noise {n:<5} AUPRC {v['ap']:.3f}  AUPRC(|β|·sd) {v['ap_std']:.3f}  r {v['r']:.3f}"
                      for n, v in rows.items())
    print("\n" + table)
    record_property("recovery_sweep", json.dumps(rows))
    assert rows[0.05]["ap"] >= 0.9 and rows[0.05]["r"] >= 0.95
    assert rows[0.1]["r"] >= 0.95
    # recovery degrades with noise, towards chance (the share of true non-zeros) at noise = signal
    aps = [v["ap"] for v in rows.values()]
    assert aps[0] > aps[2] > aps[-1]
    chance = rows[1.0]["n_true"] / rows[1.0]["n_items"]
    assert rows[1.0]["ap"] < chance + 0.15


def test_synthetic_truth_is_zero_where_a_feature_is_flat():
    syn = synthetic_tissue(n_cells=600, seed=2)
    for g in syn.roles["targets"]:
        b = syn.betas[g]
        assert set(b.modulators) == set(syn.planted[g])
        assert np.isfinite(b.coefs).all() and np.isfinite(b.intercept).all()
    # the generator is deterministic
    again = synthetic_tissue(n_cells=600, seed=2)
    np.testing.assert_array_equal(syn.adata.X, again.adata.X)


# -- outputs ---------------------------------------------------------------------------------


def test_outputs_of_a_run(small: WrittenTissue, tmp_path: Path):
    out = tmp_path / "run"
    # without LR and TF-ligand modulators the root TFs (no grn edge into them) are orphans
    cfg = run_config(small, out, grn__use_lr_modulators=False, grn__use_tfl_modulators=False)
    res = run_quiet(cfg)
    roots = set(small.syn.roles["root_tfs"])
    assert orphans(out) == roots
    done = {p.name[: -len("_betadata.feather")] for p in out.glob("*_betadata.feather")}
    assert done == set(small.genes) - roots
    assert res.counts == {"done": len(done), "orphan": len(roots), "failed": 0, "unfinished": 0}
    assert not res.interrupted
    assert leftovers(out) == []

    # betadata: Cluster labels, beta0, beta_<TF>; no all-zero column; finite float64
    labels = sorted(small.syn.adata.obs[_keys.DEFAULT_CLUSTER_ANNOT].unique())
    for g in done:
        t = feather.read_table(betadata_path(out, g))
        cols = t.column_names
        assert cols[0] == "Cluster" and cols[1] == "beta0"
        assert t.column("Cluster").to_pylist() == labels
        assert all(c.startswith("beta_") for c in cols[2:])
        for c in cols[1:]:
            v = t.column(c).to_numpy()
            assert v.dtype == np.float64 and np.isfinite(v).all()
            if c != "beta0":
                assert np.any(v != 0), f"{g}: all-zero column {c} kept"
        assert t.schema.metadata[b"spacetravlr.gene"] == g.encode()
        mods = {c[len("beta_"):] for c in cols[2:]}
        assert all("$" not in m and "#" not in m for m in mods)

    # per-gene logs
    g = sorted(done)[0]
    log = (out / "log" / f"{g}.log").read_text().splitlines()
    assert log[0].split("\t") == ["cluster", "label", "n_cells", "n_modulators", "r2", "mse", "iterations",
                                  "converged", "kept"]
    assert [line.split("\t")[1] for line in log[1:1 + len(labels)]] == labels
    sizes = small.syn.adata.obs[_keys.DEFAULT_CLUSTER_ANNOT].value_counts()
    assert [int(line.split("\t")[2]) for line in log[1:1 + len(labels)]] == [sizes[lab] for lab in labels]
    assert log[-1] == "status\tdone"
    r = sorted(roots)[0]
    olog = (out / "log" / f"{r}.log").read_text()
    assert "status\torphan" in olog and "no modulators" in olog
    assert (out / f"{r}.orphan").read_bytes() == b""

    # the repro TOML: complete, absolute paths, reloads to the executed configuration
    repro = out / _keys.REPRO_TOML
    text = repro.read_text()
    for section in ("data", "spatial", "grn", "lasso", "training", "cnn", "execution", "perturbation",
                    "model_export", "compat"):
        assert f"[{section}]" in text
    again = SpaceshipConfig.from_toml(repro)
    assert again.to_dict() == cfg.with_overrides({"execution.output_dir": str(out.resolve())}).to_dict()
    assert Path(again.data.adata_path).is_absolute() and Path(again.execution.output_dir) == out.resolve()

    # the manifest
    man = json.loads((out / _keys.MANIFEST_JSON).read_text())
    assert man["status"] == "complete"
    assert man["counts"] == {"done": len(done), "orphaned": len(roots), "failed": 0, "unfinished": 0}
    assert set(man["genes"]["done"]) == done and set(man["genes"]["orphaned"]) == roots
    assert man["dataset"]["n_obs"] == 400 and man["dataset"]["n_vars"] == len(small.genes)
    assert set(man["timings"]) >= {"load_s", "received_ligands_s", "train_s", "total_s", "per_gene_s"}
    assert set(man["timings"]["per_gene_s"]) == set(small.genes)
    assert {"spacetravlr", "python", "numpy", "numba", "anndata"} <= set(man["versions"])
    assert man["started"] <= man["finished"]


def test_all_zero_fit_becomes_orphan(small: WrittenTissue, tmp_path: Path):
    out = tmp_path / "run"
    res = run_quiet(run_config(small, out, training__score_threshold=1.0, training__genes=["Cd19", "Foxo1"]))
    assert res.counts["orphan"] == 2 and res.counts["done"] == 0
    log = (out / "log" / "Cd19.log").read_text()
    rows = [line.split("\t") for line in log.splitlines()[1:6]]
    assert [r[8] for r in rows] == ["False"] * 5  # every cluster gated
    assert log.endswith("status\torphan\nreason\tevery cluster failed the R² gate (all betas zero)\n")
    assert not list(out.glob("*_betadata.feather"))


def test_incremental_restart_skips_finished_genes(small: WrittenTissue, tmp_path: Path):
    out = tmp_path / "run"
    first = run_quiet(run_config(small, out, training__max_genes=10))
    assert first.counts["done"] + first.counts["orphan"] == 10
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*_betadata.feather")}
    second = run_quiet(run_config(small, out))
    assert {o.gene for o in second.outcomes} == set(small.genes[10:])
    after = {p.name: p.stat().st_mtime_ns for p in out.glob("*_betadata.feather")}
    assert all(after[k] == v for k, v in before.items())
    assert second.counts["done"] + second.counts["orphan"] == len(small.genes)
    # a third run has nothing to do
    third = run_quiet(run_config(small, out))
    assert third.outcomes == [] and third.manifest["status"] == "complete"


def test_restart_in_pieces_equals_one_run(small: WrittenTissue, tmp_path: Path):
    """Received ligands do not depend on which genes are queued: a run done in pieces (as after a crash,
    or by joined processes) is bit-identical to a run done at once."""
    run_quiet(run_config(small, tmp_path / "whole"))
    pieces = tmp_path / "pieces"
    run_quiet(run_config(small, pieces, training__genes=["Cd19"]))
    run_quiet(run_config(small, pieces, training__genes=small.genes[::3]))
    run_quiet(run_config(small, pieces))
    assert_same_runs(tmp_path / "whole", pieces)


@pytest.mark.slow
def test_parallel_workers_are_bit_identical_to_serial(small: WrittenTissue, tmp_path: Path):
    serial = run_quiet(run_config(small, tmp_path / "p1", execution__n_parallel=1))
    par = run_quiet(run_config(small, tmp_path / "p2", execution__n_parallel=2))
    assert serial.counts == par.counts
    assert {o.worker for o in par.outcomes} <= {0, 1}
    assert sorted(o.gene for o in par.outcomes) == sorted(small.genes)  # each gene reported once
    assert_same_runs(tmp_path / "p1", tmp_path / "p2")
    assert leftovers(tmp_path / "p2") == []
    assert json.loads((tmp_path / "p2" / _keys.MANIFEST_JSON).read_text())["n_parallel"] == 2


# -- locks -----------------------------------------------------------------------------------


def test_lock_primitives(tmp_path: Path):
    assert locks.try_lock(tmp_path, "G")
    info = locks.owner(tmp_path, "G")
    assert info is not None and info["pid"] == os.getpid() and info["host"] == locks.HOST
    assert not locks.try_lock(tmp_path, "G")  # held by a live process (this one)
    locks.release(tmp_path, "G")
    assert not locks.lock_path(tmp_path, "G").exists()
    locks.release(tmp_path, "G")  # releasing twice is harmless
    # release never removes somebody else's lock
    p = write_lock(tmp_path, "H", "elsewhere", 12345)
    locks.release(tmp_path, "H")
    assert p.exists()


def test_lock_is_never_half_written_or_left_by_an_interrupt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The lock appears complete (hard link of a written file) and no private file survives an
    interrupt at any step; without hard links the exclusive-create fallback is used."""
    real_link = os.link

    def link_then_interrupt(a, b):
        real_link(a, b)
        raise KeyboardInterrupt

    monkeypatch.setattr(locks.os, "link", link_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        locks.acquire(tmp_path, "G")
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["G.lock"]  # complete, and ours: release removes it
    assert locks.owner(tmp_path, "G")["pid"] == os.getpid()
    locks.release(tmp_path, "G")
    assert list(tmp_path.iterdir()) == []

    def no_hard_links(a, b):
        raise PermissionError("operation not permitted")

    monkeypatch.setattr(locks.os, "link", no_hard_links)
    assert locks.acquire(tmp_path, "G") == "new" and locks.acquire(tmp_path, "G") is None
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["G.lock"]
    assert locks.owner(tmp_path, "G")["pid"] == os.getpid()


def test_lock_of_dead_local_process_is_reclaimed(tmp_path: Path):
    write_lock(tmp_path, "G", locks.HOST, dead_pid())
    assert locks.is_stale(locks.lock_path(tmp_path, "G"), 0.0)
    assert locks.try_lock(tmp_path, "G")
    assert locks.owner(tmp_path, "G")["pid"] == os.getpid()  # type: ignore[index]
    locks.release(tmp_path, "G")
    assert not any(tmp_path.iterdir())


def test_lock_of_other_host_reclaimed_only_after_stale_lock_secs(tmp_path: Path):
    p = write_lock(tmp_path, "G", "other-host", 1, age=120)
    assert not locks.try_lock(tmp_path, "G", 0.0)  # no age limit: never reclaimed
    assert not locks.try_lock(tmp_path, "G", 300.0)  # younger than the limit
    assert locks.owner(tmp_path, "G")["host"] == "other-host"  # type: ignore[index]
    assert locks.try_lock(tmp_path, "G", 60.0)  # older than the limit
    assert locks.owner(tmp_path, "G")["host"] == locks.HOST  # type: ignore[index]
    locks.release(tmp_path, "G")
    assert not p.exists()


def test_unreadable_lock_reclaimed_after_grace(tmp_path: Path):
    p = locks.lock_path(tmp_path, "G")
    p.write_text("")
    assert not locks.try_lock(tmp_path, "G")  # its writer may still be writing it
    t = time.time() - locks.UNREADABLE_GRACE_SECS - 5
    os.utime(p, (t, t))
    assert locks.try_lock(tmp_path, "G")
    locks.release(tmp_path, "G")


def test_reclaim_does_not_steal_a_lock_taken_meanwhile(tmp_path: Path):
    """Two processes judge the same lock stale; the first reclaims it and takes the gene; the second must
    not remove the first one's fresh lock."""
    p = write_lock(tmp_path, "G", locks.HOST, dead_pid())
    stale_bytes = p.read_bytes()
    # process A reclaims and locks
    assert locks.try_lock(tmp_path, "G")
    mine = p.read_bytes()
    # process B acts on what it read before A's reclaim
    locks._reclaim(p, stale_bytes)
    assert p.read_bytes() == mine
    assert [q.name for q in tmp_path.iterdir()] == [p.name]
    locks.release(tmp_path, "G")


def test_run_skips_genes_locked_by_a_live_process(small: WrittenTissue, tmp_path: Path):
    out = tmp_path / "run"
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        p = write_lock(out, "Cd19", locks.HOST, sleeper.pid)
        content = p.read_bytes()
        stream = io.StringIO()
        res = train(run_config(small, out, training__genes=["Cd19", "Foxo1", "Pax5"]),
                    reporter=ConsoleReporter(stream, plain=True))
        assert res.counts == {"done": 2, "orphan": 0, "failed": 0, "unfinished": 1}
        assert res.manifest["status"] == "partial" and res.manifest["genes"]["unfinished"] == ["Cd19"]
        assert p.read_bytes() == content  # untouched
        assert not betadata_path(out, "Cd19").exists()
        assert "1 still locked by other processes" in stream.getvalue()
    finally:
        sleeper.kill()
        sleeper.wait()
    # its owner died: the next run reclaims the lock and trains the gene
    res = run_quiet(run_config(small, out, training__genes=["Cd19", "Foxo1", "Pax5"]))
    assert [o.gene for o in res.outcomes] == ["Cd19"] and res.counts["unfinished"] == 0
    assert leftovers(out) == []


def test_run_reclaims_old_foreign_lock_with_stale_lock_secs(small: WrittenTissue, tmp_path: Path):
    out = tmp_path / "run"
    write_lock(out, "Cd19", "another-host", 4242, age=3600)
    write_lock(out, "Foxo1", "another-host", 4242, age=10)
    res = run_quiet(run_config(small, out, training__genes=["Cd19", "Foxo1"], execution__stale_lock_secs=600))
    assert [o.gene for o in res.outcomes] == ["Cd19"]
    assert locks.owner(out, "Foxo1")["host"] == "another-host"  # type: ignore[index]


@pytest.mark.slow
def test_two_processes_share_a_folder_without_training_a_gene_twice(big: WrittenTissue, tmp_path: Path):
    out = tmp_path / "shared"
    procs = [subprocess.Popen([*CLI, *big.cli_args(out, *SLOW_FLAGS)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=slow_env()) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e for _, e in outs]
    trained: list[list[str]] = []
    for stdout, _ in outs:
        trained.append([m.group("gene") for line in stdout.splitlines() if (m := GENE_LINE.match(line))])
    both = trained[0] + trained[1]
    assert sorted(both) == sorted(big.genes), "every gene trained exactly once"
    assert min(len(t) for t in trained) > 0, "both processes trained genes"
    assert n_finished(out) == len(big.genes)
    assert leftovers(out) == []


# -- killed and interrupted runs -------------------------------------------------------------


@pytest.fixture(scope="module")
def big_reference(big: WrittenTissue, tmp_path_factory) -> Path:
    """An uninterrupted run of ``big`` with :data:`SLOW_FLAGS`."""
    ref = tmp_path_factory.mktemp("big_reference") / "run"
    run_quiet(run_config(big, ref, lasso__n_iter=3000, lasso__tol=1e-9))
    return ref


def live_lock_pids(out: Path) -> set[int]:
    pids = set()
    for p in out.glob("*.lock"):
        info = locks._read_lock(p)
        if info and isinstance(info.get("pid"), int) and locks.pid_alive(info["pid"]):  # type: ignore[arg-type]
            pids.add(int(info["pid"]))  # type: ignore[arg-type]
    return pids


@pytest.mark.slow
@pytest.mark.parametrize("parallel", ["1", "2"])
def test_sigkill_then_restart_equals_uninterrupted_run(big: WrittenTissue, big_reference: Path, tmp_path: Path,
                                                        parallel: str):
    out = tmp_path / "killed"
    cmd = [*CLI, *big.cli_args(out, *SLOW_FLAGS, "--parallel", parallel)]
    with subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=slow_env()) as proc:
        wait_for(lambda: n_finished(out) >= 10, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    # workers of a killed run stop after their current gene
    t0 = time.monotonic()
    while live_lock_pids(out) and time.monotonic() - t0 < 30:
        time.sleep(0.05)
    assert not live_lock_pids(out), "orphaned workers kept training"
    done_at_kill = n_finished(out)
    assert 10 <= done_at_kill < len(big.genes), "the kill must land mid-run"
    # whatever it left (locks of dead processes, maybe a temporary file) must not block the restart
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=slow_env())
    assert rerun.returncode == 0, rerun.stderr
    assert f"already {done_at_kill}" in rerun.stdout
    assert_same_runs(out, big_reference)
    assert leftovers(out) == []
    assert json.loads((out / _keys.MANIFEST_JSON).read_text())["status"] == "complete"


@pytest.mark.slow
def test_a_killed_worker_does_not_lose_its_gene(big: WrittenTissue, big_reference: Path, tmp_path: Path):
    out = tmp_path / "run"
    cmd = [*CLI, *big.cli_args(out, *SLOW_FLAGS, "--parallel", "2")]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=slow_env()) as proc:
        wait_for(lambda: n_finished(out) >= 5 and bool(live_lock_pids(out) - {proc.pid}), proc)
        victim = sorted(live_lock_pids(out) - {proc.pid})[0]
        os.kill(victim, signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert re.search(r"worker \d died \(exit code -9\)", stdout)
    assert n_finished(out) == len(big.genes)
    assert_same_runs(out, big_reference)
    assert leftovers(out) == []


def _check_interrupted(out: Path, proc: subprocess.Popen, stderr: str) -> None:
    assert proc.returncode == 130, stderr
    assert leftovers(out) == [], "no lock, no temporary file, no shared-array folder"
    n = n_finished(out)
    assert 0 < n
    for f in out.glob("*_betadata.feather"):
        read_betadata(f)  # every file kept is complete
    man = json.loads((out / _keys.MANIFEST_JSON).read_text())
    assert man["status"] == "interrupted"
    assert man["counts"]["done"] + man["counts"]["orphaned"] == n


@pytest.mark.slow
def test_ctrl_c_stops_cleanly(big: WrittenTissue, tmp_path: Path):
    out = tmp_path / "run"
    proc = subprocess.Popen([*CLI, *big.cli_args(out, *SLOW_FLAGS)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=slow_env())
    wait_for(lambda: n_finished(out) >= 3, proc)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    _check_interrupted(out, proc, stderr)
    assert "interrupted" in stdout
    assert n_finished(out) < len(big.genes)


@pytest.mark.slow
def test_ctrl_c_stops_parallel_workers_cleanly(big: WrittenTissue, tmp_path: Path):
    """Ctrl-C in a terminal signals the whole process group: parent and workers."""
    out = tmp_path / "run"
    proc = subprocess.Popen([*CLI, *big.cli_args(out, *SLOW_FLAGS, "--parallel", "2")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, env=slow_env())
    wait_for(lambda: n_finished(out) >= 3, proc)
    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    _check_interrupted(out, proc, stderr)
    assert "Traceback" not in stderr


@pytest.mark.slow
def test_sigint_to_parent_only_stops_workers_promptly(big: WrittenTissue, tmp_path: Path):
    out = tmp_path / "run"
    proc = subprocess.Popen([*CLI, *big.cli_args(out, *SLOW_FLAGS, "--parallel", "2")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=slow_env())
    wait_for(lambda: n_finished(out) >= 3, proc)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert time.monotonic() - t0 < 15
    _check_interrupted(out, proc, stderr)
    assert n_finished(out) < len(big.genes)


def test_leftovers_of_a_killed_process_are_cleaned(small: WrittenTissue, tmp_path: Path):
    out = tmp_path / "run"
    out.mkdir()
    pid = dead_pid()
    ctx = out / f".spacetravlr-ctx-{locks.HOST}-{pid}-abc123"
    ctx.mkdir()
    (ctx / "expression.npy").write_bytes(b"x")
    tmp = out / ".Cd19_betadata.feather.k2j4_x.tmp"
    tmp.write_bytes(b"partial")
    (out / "log").mkdir()
    ltmp = out / "log" / ".Cd19.log.abc.tmp"
    ltmp.write_text("partial")
    # a temporary file of a gene locked by a live process is left alone
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        write_lock(out, "Foxo1", locks.HOST, sleeper.pid)
        busy_tmp = out / ".Foxo1_betadata.feather.zz9.tmp"
        busy_tmp.write_bytes(b"being written")
        run_quiet(run_config(small, out, training__genes=["Cd19"]))
        assert not ctx.exists() and not tmp.exists() and not ltmp.exists()
        assert busy_tmp.exists()
        # a process killed after writing a gene but before unlocking it leaves a lock on a finished gene
        dead = write_lock(out, "Cd19", locks.HOST, pid)
        live = write_lock(out, "Pax5", locks.HOST, sleeper.pid)
        (out / "Pax5.orphan").write_text("")
        run_quiet(run_config(small, out, training__genes=["Cd3e"]))
        assert not dead.exists() and live.exists()
    finally:
        sleeper.kill()
        sleeper.wait()

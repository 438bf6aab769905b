"""Training on Dask distributed (SPEC §5.3, issue 17), against a real ``dask scheduler`` and two
``dask worker`` processes on 127.0.0.1: bit-identical to serial, the context shipped once per worker,
workers never touching the run folder, a killed worker, a killed client, a failing gene, stop requests, and
the command line (``--scheduler``, ``local:N``, a missing extra)."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.feather as feather
import pytest

import dask_support as ds
from spacetravlr_py import _keys
from spacetravlr_py.config import SpaceshipConfig
from spacetravlr_py.datasets import synthetic_tissue
from spacetravlr_py.errors import ConfigError
from spacetravlr_py.scaleout import parse_scheduler
from spacetravlr_py.training import Reporter, RunControl, SerialExecutor, train
from spacetravlr_py.training.dask_executor import DaskExecutor

pytest.importorskip("distributed")

CLI = [sys.executable, "-c", "from spacetravlr_py.cli.main import run; run()"]
SLOW_GENES = 24
"""Genes of the runs with :class:`dask_support.SlowSeed` (0.4 s each on a worker)."""


# -- fixtures and helpers ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, Path]:
    paths = synthetic_tissue(n_cells=600, seed=3).write(tmp_path_factory.mktemp("tissue"))
    return paths["h5ad"], paths["network"].parent


def cfg_for(data: tuple[Path, Path], out: Path, **over) -> SpaceshipConfig:
    h5, net = data
    o = {"data.adata_path": str(h5), "grn.network_data_dir": str(net), "execution.output_dir": str(out)}
    o.update({k.replace("__", "."): v for k, v in over.items()})
    return SpaceshipConfig().with_overrides(o)


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory) -> Path:
    """A serial run of every gene."""
    out = tmp_path_factory.mktemp("reference") / "run"
    train(cfg_for(data, out), executor=SerialExecutor())
    return out


@pytest.fixture(scope="module")
def shared_cluster(tmp_path_factory):
    """A scheduler and two single-threaded workers, each working in its own folder, for the module."""
    with ds.cluster(tmp_path_factory.mktemp("dask")) as c:
        yield c


def files(out: Path) -> dict[str, bytes]:
    """Betadata arrays (bit for bit) and orphan markers of a run folder."""
    res: dict[str, bytes] = {}
    for f in sorted(out.glob("*_betadata.feather")):
        t = feather.read_table(f)
        res[f.name] = b"".join(np.ascontiguousarray(t.column(c).to_numpy(zero_copy_only=False)).tobytes()
                               for c in t.column_names if c != _keys.CLUSTER_COL) + str(t.column_names).encode()
    res.update({f.name: b"" for f in out.glob("*.orphan")})
    return res


def same_as(out: Path, ref: Path, genes: list[str] | None = None) -> None:
    a, b = files(out), files(ref)
    if genes is not None:
        b = {k: v for k, v in b.items() if k.split("_betadata")[0].split(".orphan")[0] in genes}
    assert a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []


def leftovers(out: Path) -> list[str]:
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*")
                  if p.name.endswith((".tmp", ".lock")) or ".stale-" in p.name)


def n_finished(out: Path) -> int:
    return sum(1 for p in out.iterdir() if p.name.endswith(("_betadata.feather", ".orphan"))) if out.is_dir() else 0


class Recorder(Reporter):
    def __init__(self) -> None:
        self.events: list[tuple] = []
        self.lock = threading.Lock()

    def message(self, text: str) -> None:
        with self.lock:
            self.events.append(("message", text))

    def gene_started(self, gene: str, worker: int) -> None:
        with self.lock:
            self.events.append(("started", gene, worker))

    def gene_finished(self, outcome) -> None:
        with self.lock:
            self.events.append(("finished", outcome.gene, outcome.status))

    def of(self, kind: str) -> list[tuple]:
        return [e for e in self.events if e[0] == kind]


# -- the executor against a real cluster -----------------------------------------------------


@pytest.mark.slow
def test_dask_run_is_bit_identical_to_serial_and_ships_the_context_once(data, reference, shared_cluster, tmp_path):
    out = tmp_path / "run"
    rec, ex = Recorder(), DaskExecutor(shared_cluster.address, genes_per_task=1)  # one task per gene
    res = train(cfg_for(data, out), executor=ex, reporter=rec)
    genes = sorted(o.gene for o in res.outcomes)
    assert not res.interrupted and len(genes) == 61
    same_as(out, reference)
    assert leftovers(out) == []
    # every gene announced once, then finished once, on one of the two workers
    assert Counter(e[1] for e in rec.of("started")) == Counter(genes)
    assert Counter(e[1] for e in rec.of("finished")) == Counter(genes)
    assert {e[2] for e in rec.of("started")} == {0, 1}, "both workers trained genes"
    # the context went once to each worker; a task is a few hundred bytes
    st = ex.stats
    assert st["n_tasks"] == 61 and st["context_ships"] == 1
    assert sorted(st["context_loads"].values()) == [1, 1], st
    assert st["task_bytes"] < 2_000 and st["context_bytes"] > 200 * st["task_bytes"], st
    man = json.loads((out / _keys.MANIFEST_JSON).read_text())
    assert man["status"] == "complete" and man["counts"]["done"] + man["counts"]["orphaned"] == 61


@pytest.mark.slow
def test_workers_never_touch_the_run_folder(data, reference, shared_cluster, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    with shared_cluster.client() as c:
        c.run(ds.reset)
        c.run(ds.watch, str(tmp_path))
        c.run(ds.probe, str(out))  # positive control: the hook sees a listing of the folder
        assert all(t == [("os.listdir", str(out))] for t in c.run(ds.touched).values())
        c.run(ds.reset)
        c.run(ds.watch, str(tmp_path))
        ex = DaskExecutor(shared_cluster.address)
        res = train(cfg_for(data, out, training__max_genes=12), executor=ex)
        touched = c.run(ds.touched)
        c.run(ds.reset)
    assert res.counts["done"] + res.counts["orphan"] == 12
    assert touched == {a: [] for a in touched} and len(touched) == 2
    # tiny genes were batched (automatic task size), with the same files
    assert ex.stats["n_tasks"] < 12
    same_as(out, reference, [o.gene for o in res.outcomes])


@pytest.mark.slow
def test_the_shipped_context_and_trainer_name_no_output_path(data, tmp_path):
    from spacetravlr_py.io.anndata import tissue_from_config
    from spacetravlr_py.io.network import network_for
    from spacetravlr_py.training import SeedTrainer
    from spacetravlr_py.training.context import build_context

    out = tmp_path / "a-very-distinctive-output-folder"
    cfg = cfg_for(data, out)
    tissue = tissue_from_config(cfg)
    net, _, _ = network_for(cfg, tissue.var_names)
    ctx = build_context(cfg, tissue, net, list(tissue.var_names)[:5])
    blob = pickle.dumps((ctx, SeedTrainer()), protocol=5)
    assert str(out).encode() not in blob and b"a-very-distinctive" not in blob


@pytest.mark.slow
def test_a_worker_killed_mid_task_loses_nothing(data, reference, tmp_path):
    """SIGKILL the worker holding the shipped context while it trains a gene: the scheduler reruns that
    task on the other worker; every gene is written once and the files equal the serial run."""
    out = tmp_path / "run"
    genes = sorted(f.name.split("_betadata")[0] for f in reference.glob("*_betadata.feather"))[:SLOW_GENES]
    with ds.cluster(tmp_path / "dask") as cl, cl.client() as c:
        rec, box = Recorder(), {}
        t = threading.Thread(target=lambda: box.setdefault("res", train(
            cfg_for(data, out, training__genes=genes), trainer=ds.SlowSeed(0.4),
            executor=DaskExecutor(cl.address), reporter=rec)))
        t.start()
        pids = cl.pids()
        victim, t0 = None, time.monotonic()
        while victim is None and time.monotonic() - t0 < 180:
            time.sleep(0.05)
            if n_finished(out) < 4:
                continue
            busy = c.run(lambda dask_worker: len(dask_worker.state.executing))
            holders = [a for a, keys in c.has_what().items() if any(str(k).startswith("_Box-") for k in keys)]
            if holders and busy.get(holders[0]):
                victim = holders[0]
                os.kill(pids[victim], signal.SIGKILL)
        t.join(300)
    assert victim is not None, "the kill must land while a worker trains a gene"
    res = box["res"]
    assert not res.interrupted and res.counts["failed"] == 0
    assert Counter(e[1] for e in rec.of("finished")) == Counter(genes), "every gene written exactly once"
    same_as(out, reference, genes)
    assert leftovers(out) == []


@pytest.mark.slow
def test_a_gene_that_kills_every_worker_it_meets_is_recorded_and_the_rest_done(data, reference, tmp_path):
    """local:2 (nannies restart killed workers): the gene's task kills workers until Dask gives up on it
    (KilledWorker); it is recorded as failed, its batch-mates are retried alone and succeed, and the
    context lost with the workers is sent again."""
    out = tmp_path / "run"
    genes = sorted(f.name.split("_betadata")[0] for f in reference.glob("*_betadata.feather"))[:10]
    rec = Recorder()
    res = train(cfg_for(data, out, training__genes=genes), trainer=ds.KillsWorkerOn(genes[3]),
                executor=DaskExecutor("local:2"), reporter=rec)
    assert res.counts["failed"] == 1 and res.counts["done"] + res.counts["orphan"] == 9
    reason = res.manifest["genes"]["failed"][genes[3]]
    assert reason.startswith("KilledWorker: every worker that ran this gene died")
    assert "KilledWorker" in (out / "log" / f"{genes[3]}.log").read_text()
    same_as(out, reference, [g for g in genes if g != genes[3]])
    assert leftovers(out) == []
    assert Counter(e[1] for e in rec.of("finished")) == Counter(genes)


def test_a_local_cluster_whose_nanny_gave_up_gets_its_worker_back(tmp_path):
    """A worker killed while it starts closes its nanny for good, and Dask drops it after the lost-worker
    timeout (it never restarts it); a local:N client starts it again, so that a task waiting for a
    recomputation, or a context waiting for a worker, does not wait forever."""
    import dask

    from spacetravlr_py import scaleout

    with dask.config.set({"distributed.deploy.lost-worker-timeout": "0.2s"}), \
            scaleout.connect("local:1") as client:
        cluster = client.cluster
        (nanny,) = cluster.workers.values()
        before = set(client.nthreads())
        client.sync(nanny.close)  # what Nanny.instantiate does when the new worker dies during start
        t0 = time.monotonic()
        while not (set(client.nthreads()) - before) and time.monotonic() - t0 < 60:
            time.sleep(0.1)
        assert set(client.nthreads()) - before, "no worker came back"
        assert client.submit(sum, [1, 2]).result(timeout=60) == 3


@pytest.mark.slow
def test_a_killed_client_is_finished_by_a_rerun(data, reference, shared_cluster, tmp_path):
    out = tmp_path / "run"
    genes = sorted(f.name.split("_betadata")[0] for f in reference.glob("*_betadata.feather"))[:SLOW_GENES]
    toml = tmp_path / "spaceship_config.toml"
    cfg_for(data, out, training__genes=genes).dump_toml(toml)
    client = ("import dask_support as ds; from spacetravlr_py.config import SpaceshipConfig; "
              "from spacetravlr_py.training import train; "
              "from spacetravlr_py.training.dask_executor import DaskExecutor; "
              f"train(SpaceshipConfig.from_toml({str(toml)!r}), trainer=ds.SlowSeed(0.4), "
              f"executor=DaskExecutor({shared_cluster.address!r}))")
    proc = subprocess.Popen([sys.executable, "-c", client], env=ds.dask_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    t0 = time.monotonic()
    while n_finished(out) < 4:
        assert proc.poll() is None, proc.communicate()[1].decode()[-3000:]
        assert time.monotonic() - t0 < 240
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    time.sleep(1.0)  # what the workers still compute for the dead client writes nothing
    done_at_kill = n_finished(out)
    assert 4 <= done_at_kill < len(genes)
    assert list(out.glob("*.lock")), "the killed client held locks of genes in flight"
    rerun = subprocess.run([*CLI, "--h5ad", str(data[0]), "--network-dir", str(data[1]), "--output-dir", str(out),
                            "--genes", ",".join(genes), "--scheduler", shared_cluster.address, "--plain"],
                           capture_output=True, text=True, timeout=300, env=ds.dask_env())
    assert rerun.returncode == 0, rerun.stderr
    assert f"already {done_at_kill}" in rerun.stdout
    trained = [ln.split()[0] for ln in rerun.stdout.splitlines() if ln.split()[1:2] in (["done"], ["orphan"])]
    assert len(trained) == len(genes) - done_at_kill, "the rerun trained only what was missing"
    same_as(out, reference, genes)
    assert leftovers(out) == []
    assert json.loads((out / _keys.MANIFEST_JSON).read_text())["status"] == "complete"


@pytest.mark.slow
def test_a_gene_failing_on_a_worker_is_recorded_and_the_run_goes_on(data, shared_cluster, tmp_path):
    out = tmp_path / "run"
    res = train(cfg_for(data, out, training__max_genes=8), trainer=ds.FailsOn("Pax5"),
                executor=DaskExecutor(shared_cluster.address))
    assert res.counts["failed"] == 1 and res.counts["done"] + res.counts["orphan"] == 7
    assert res.manifest["genes"]["failed"] == {"Pax5": "ArithmeticError: no luck with Pax5"}
    assert res.manifest["status"] == "complete_with_failures"
    log = (out / "log" / "Pax5.log").read_text()
    assert "Traceback" in log and "dask_support.py" in log and "ArithmeticError" in log
    assert leftovers(out) == []


@pytest.mark.slow
def test_a_gene_locked_by_another_process_is_left_to_it(data, shared_cluster, tmp_path):
    """The client claims genes through the same lock files as --join-output-dir processes."""
    from spacetravlr_py.rundir import locks

    out = tmp_path / "run"
    out.mkdir()
    other = subprocess.Popen(["sleep", "120"])  # a live process on this host holding one gene
    try:
        lock = locks.lock_path(out, "Pax5")
        lock.write_text(json.dumps({"host": locks.HOST, "pid": other.pid, "started": time.time()}))
        res = train(cfg_for(data, out, training__genes=["Foxo1", "Pax5", "Stat3"]),
                    executor=DaskExecutor(shared_cluster.address))
        assert res.counts["done"] + res.counts["orphan"] == 2 and res.manifest["genes"]["unfinished"] == ["Pax5"]
        assert lock.exists() and not (out / "Pax5_betadata.feather").exists()
    finally:
        other.kill()
        other.wait()


@pytest.mark.slow
def test_stop_cancels_what_is_in_flight_and_a_rerun_completes(data, reference, shared_cluster, tmp_path):
    out = tmp_path / "run"
    control = RunControl()
    genes = sorted(f.name.split("_betadata")[0] for f in reference.glob("*_betadata.feather"))[:SLOW_GENES]

    class StopAfterTwo(Recorder):
        def gene_finished(self, outcome) -> None:
            super().gene_finished(outcome)
            if len(self.of("finished")) == 2:
                control.stop()

    res = train(cfg_for(data, out, training__genes=genes), trainer=ds.SlowSeed(0.4),
                executor=DaskExecutor(shared_cluster.address), control=control, reporter=StopAfterTwo())
    assert res.interrupted and res.manifest["status"] == "interrupted"
    assert 2 <= res.counts["done"] + res.counts["orphan"] < len(genes)
    assert leftovers(out) == [], "locks of cancelled genes are released"
    train(cfg_for(data, out, training__genes=genes), executor=DaskExecutor(shared_cluster.address))
    same_as(out, reference, genes)


@pytest.mark.slow
def test_pause_holds_new_genes_until_resumed(data, shared_cluster, tmp_path):
    control, rec, box = RunControl(), Recorder(), {}
    control.pause()
    t = threading.Thread(target=lambda: box.setdefault("res", train(
        cfg_for(data, tmp_path / "run", training__max_genes=6), executor=DaskExecutor(shared_cluster.address),
        control=control, reporter=rec)))
    t.start()
    t.join(8)
    assert t.is_alive() and rec.of("started") == [] and not list((tmp_path / "run").glob("*.lock"))
    control.resume()
    t.join(240)
    assert not box["res"].interrupted and len(rec.of("finished")) == 6


# -- the command line ------------------------------------------------------------------------


@pytest.mark.slow
def test_cli_local_cluster_from_the_config_file(data, reference, tmp_path):
    out = tmp_path / "run"
    toml = tmp_path / "spaceship_config.toml"
    cfg_for(data, out, training__max_genes=10, execution__scheduler="local:2").dump_toml(toml)
    r = subprocess.run([*CLI, "-c", str(toml), "--plain"], capture_output=True, text=True, timeout=600,
                       env=ds.dask_env())
    assert r.returncode == 0, r.stderr
    assert "on a local Dask cluster of 2 worker processes" in r.stdout
    assert "Traceback" not in r.stderr and "still alive" not in r.stderr
    genes = [ln.split()[0] for ln in r.stdout.splitlines() if ln.split()[1:2] in (["done"], ["orphan"])]
    assert len(genes) == 10
    same_as(out, reference, genes)


def test_scheduler_without_dask_installed_names_the_extra(data, tmp_path):
    code = ("import sys; sys.modules['distributed'] = None; "
            "from spacetravlr_py.cli.main import run; run()")
    r = subprocess.run([sys.executable, "-c", code, "--h5ad", str(data[0]), "--network-dir", str(data[1]),
                        "--output-dir", str(tmp_path / "run"), "--scheduler", "local:2"],
                       capture_output=True, text=True, timeout=120, env=ds.dask_env())
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'spacetravlr-py[dask]'" in lines[0], r.stderr
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


@pytest.mark.parametrize("bad", ["local:0", "local:x", "nowhere", "http://h:1", "tcp://:8786", "h:port"])
def test_a_malformed_scheduler_is_one_line(bad):
    with pytest.raises(ConfigError, match=r"\[execution\]\.scheduler .*expected tcp://HOST:PORT"):
        parse_scheduler(bad)


def test_scheduler_forms():
    assert parse_scheduler("local:3") == ("", 3)
    assert parse_scheduler("tcp://10.0.0.1:8786") == ("tcp://10.0.0.1:8786", 0)
    assert parse_scheduler("head:8786") == ("tcp://head:8786", 0)
    assert parse_scheduler("tls://head.cluster:8786") == ("tls://head.cluster:8786", 0)


# -- perturbation ------------------------------------------------------------------------------

BATCH = """
out_dir = "{out}"
genes = ["Foxo1", "Pax5", "Stat3", "Irf4"]
desired_expr = [0, 0, 1.5, 0]

[[jobs]]
gene = ["Spi1", "Nfkb1"]
desired_expr = [0, 2]
radius = 150.0

[[jobs]]
gene = "Cebpa"
beta_scale_factor = 2.0
cell_types = ["ct1"]
"""


def perturb_cli(*args: str) -> subprocess.CompletedProcess[str]:
    code = "from spacetravlr_py.cli.perturb import run; run()"
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=600,
                       env=ds.dask_env())
    assert r.returncode == 0, r.stderr
    return r


def outputs(folder: Path) -> dict[str, object]:
    """Feather bytes and JSON summaries (timings left out) of a folder of perturbation results."""
    res: dict[str, object] = {f.name: f.read_bytes() for f in folder.glob("*.feather")}
    for f in folder.glob("*.json"):
        d = json.loads(f.read_text())
        d.pop("timings_s", None)
        res[f.name] = d
    return res


@pytest.mark.slow
def test_a_batch_through_the_scheduler_equals_the_local_batch(reference, shared_cluster, tmp_path):
    toml = reference / _keys.REPRO_TOML
    for side in ("local", "dask"):
        (tmp_path / f"{side}.toml").write_text(BATCH.format(out=tmp_path / side))
    perturb_cli("--run-toml", str(toml), "--batch-toml", str(tmp_path / "local.toml"))
    with shared_cluster.client() as c:
        c.run(ds.reset)
        c.run(ds.watch, str(reference))
        c.run(ds.watch, str(tmp_path))
        perturb_cli("--run-toml", str(toml), "--batch-toml", str(tmp_path / "dask.toml"),
                    "--scheduler", shared_cluster.address)
        touched = c.run(ds.touched)
        c.run(ds.reset)
    local, dask = outputs(tmp_path / "local"), outputs(tmp_path / "dask")
    assert len(local) == 12 and local == dask
    assert all(t == [] for t in touched.values()), "workers read neither the run nor the outputs"


@pytest.mark.slow
def test_a_screen_through_the_scheduler_equals_the_local_screen(reference, shared_cluster, tmp_path):
    toml = str(reference / _keys.REPRO_TOML)
    perturb_cli("screen", "--run-toml", toml, "--out-dir", str(tmp_path / "local"), "--mode", "overexpress")
    with shared_cluster.client() as c:
        c.run(ds.reset)
        c.run(ds.watch, str(reference))
        c.run(ds.watch, str(tmp_path))
        perturb_cli("screen", "--run-toml", toml, "--out-dir", str(tmp_path / "dask"), "--mode", "overexpress",
                    "--scheduler", shared_cluster.address)
        touched = c.run(ds.touched)
        c.run(ds.reset)
    for f in (_keys.SCREEN_CSV, _keys.SCREEN_JSON):
        assert (tmp_path / "local" / f).read_bytes() == (tmp_path / "dask" / f).read_bytes()
    assert len(json.loads((tmp_path / "dask" / _keys.SCREEN_JSON).read_text())["results"]) > 10
    assert all(t == [] for t in touched.values())


def test_perturb_scheduler_is_for_batches_and_screens(reference):
    code = "from spacetravlr_py.cli.perturb import run; run()"
    r = subprocess.run([sys.executable, "-c", code, "--run-toml", str(reference / _keys.REPRO_TOML), "--gene", "Foxo1",
                        "--out", "x.feather", "--scheduler", "local:2"], capture_output=True, text=True, timeout=120,
                       env=ds.dask_env())
    assert r.returncode == 2 and "--scheduler runs batch jobs" in r.stderr and len(r.stderr.splitlines()) == 1


@pytest.mark.slow
def test_the_slurm_example_runs_as_a_local_dry_run(data, reference, tmp_path):
    """docs/examples/slurm_dask.py with --local 2 (a LocalCluster instead of SLURM): same betadata, and its
    screen equals a local screen of the run."""
    out = tmp_path / "run"
    toml = tmp_path / "spaceship_config.toml"
    cfg_for(data, out, training__max_genes=12).dump_toml(toml)
    script = Path(__file__).resolve().parents[1] / "docs" / "examples" / "slurm_dask.py"
    r = subprocess.run([sys.executable, str(script), "-c", str(toml), "--local", "2", "--screen", str(tmp_path / "s")],
                       capture_output=True, text=True, timeout=600, env=ds.dask_env())
    assert r.returncode == 0, r.stderr[-3000:]
    assert "spacetravlr -c" in r.stdout and "--scheduler tcp://" in r.stdout
    genes = [ln.split()[0] for ln in r.stdout.splitlines() if ln.split()[1:2] in (["done"], ["orphan"])]
    assert len(genes) == 12
    same_as(out, reference, genes)
    perturb_cli("screen", "--run-toml", str(out / _keys.REPRO_TOML), "--out-dir", str(tmp_path / "local"))
    assert (tmp_path / "s" / _keys.SCREEN_CSV).read_bytes() == (tmp_path / "local" / _keys.SCREEN_CSV).read_bytes()

"""The training seams: trainers, executors and reporters are interchangeable behind train(), with one
contract (same files bit for bit, every outcome reported once, pause/stop like Ctrl-C)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pyarrow.feather as feather
import pytest

from spacetravlr_py.config import SpaceshipConfig
from spacetravlr_py.datasets import synthetic_tissue
from spacetravlr_py.io.betadata import BetaFrame
from spacetravlr_py.training import (
    ClusterFit,
    GeneFit,
    ProcessExecutor,
    Reporter,
    RunControl,
    SeedTrainer,
    SerialExecutor,
    train,
)

GENES = ["Cd19", "Foxo1", "Pax5", "Tgfb1", "Cd3e", "Il6"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, Path]:
    syn = synthetic_tissue(n_cells=600, seed=3)
    paths = syn.write(tmp_path_factory.mktemp("tissue"))
    return paths["h5ad"], paths["network"].parent


def cfg_for(data: tuple[Path, Path], out: Path, **over) -> SpaceshipConfig:
    h5, net = data
    o = {"data.adata_path": str(h5), "grn.network_data_dir": str(net), "execution.output_dir": str(out),
         "training.genes": GENES}
    o.update({k.replace("__", "."): v for k, v in over.items()})
    return SpaceshipConfig().with_overrides(o)


def files(out: Path) -> dict[str, bytes]:
    """Betadata arrays and orphan markers of a run folder (bit for bit)."""
    res: dict[str, bytes] = {}
    for f in sorted(out.glob("*_betadata.feather")):
        t = feather.read_table(f)
        res[f.name] = b"".join(np.ascontiguousarray(t.column(c).to_numpy(zero_copy_only=False)).tobytes()
                               for c in t.column_names if c != "Cluster") + str(t.column_names).encode()
    res.update({f.name: b"" for f in out.glob("*.orphan")})
    return res


class Recorder(Reporter):
    """Keeps every event, in order."""

    def __init__(self) -> None:
        self.events: list[tuple] = []
        self.lock = threading.Lock()

    def _add(self, *e) -> None:
        with self.lock:
            self.events.append(e)

    def run_started(self, start) -> None:
        self._add("run_started", start.n_queued, start.config["training"]["mode"], start.output_dir)

    def message(self, text: str) -> None:
        self._add("message", text)

    def warning(self, text: str) -> None:
        self._add("warning", text)

    def gene_started(self, gene: str, worker: int) -> None:
        self._add("gene_started", gene, worker)

    def gene_finished(self, outcome) -> None:
        self._add("gene_finished", outcome.gene, outcome.status, outcome)

    def run_finished(self, end) -> None:
        self._add("run_finished", end.counts, end.interrupted, end.summary)


def test_executors_give_identical_files_and_one_event_per_gene(data, tmp_path):
    serial, procs = Recorder(), Recorder()
    a = train(cfg_for(data, tmp_path / "a"), executor=SerialExecutor(), reporter=serial)
    b = train(cfg_for(data, tmp_path / "b"), executor=ProcessExecutor(2), reporter=procs)
    assert files(tmp_path / "a") == files(tmp_path / "b") and len(files(tmp_path / "a")) == len(GENES)
    assert a.counts == b.counts
    for rec in (serial, procs):
        kinds = [e[0] for e in rec.events]
        assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
        started = [e[1] for e in rec.events if e[0] == "gene_started"]
        finished = [e[1] for e in rec.events if e[0] == "gene_finished"]
        assert sorted(started) == sorted(GENES) and sorted(finished) == sorted(GENES)
        for g in GENES:  # a gene is announced before its outcome
            assert kinds.index("gene_started", 0) < len(kinds)
            i = next(k for k, e in enumerate(rec.events) if e[0] == "gene_started" and e[1] == g)
            j = next(k for k, e in enumerate(rec.events) if e[0] == "gene_finished" and e[1] == g)
            assert i < j
    workers = {e[2] for e in procs.events if e[0] == "gene_started"}
    assert workers <= {0, 1}
    # per-cluster fits travel with the outcome
    done = [e[3] for e in serial.events if e[0] == "gene_finished" and e[2] == "done"]
    assert done and all(len(o.clusters) == 5 and o.families["tf"] >= 0 for o in done)
    assert serial.events[-1][3].startswith(f"{len(GENES)}/{len(GENES)} genes finished")


def test_rerun_reports_finished_genes_as_skipped(data, tmp_path):
    out = tmp_path / "run"
    train(cfg_for(data, out))
    rec = Recorder()
    res = train(cfg_for(data, out), reporter=rec)
    assert [e[2] for e in rec.events if e[0] == "gene_finished"] == ["skipped"] * len(GENES)
    assert not [e for e in rec.events if e[0] == "gene_started"]
    assert res.outcomes == [] and res.counts["done"] + res.counts["orphan"] == len(GENES)


class HalvingTrainer(SeedTrainer):
    """A second trainer behind the seam: the seed fit with every beta halved, plus an artifact."""

    mode = "seed"

    def prepare(self, ctx) -> None:
        ctx.run_arrays["cell_index"] = np.arange(ctx.expression.shape[0], dtype=np.float32)

    def fit(self, ctx, gene: str) -> GeneFit:
        assert ctx.run_arrays["cell_index"].shape == (ctx.expression.shape[0],)
        fit = super().fit(ctx, gene)
        if fit.frame is not None:
            f = fit.frame
            fit.frame = BetaFrame(gene=f.gene, row_kind=f.row_kind, row_ids=f.row_ids, intercept=f.intercept / 2,
                                  modulators=f.modulators, coefs=f.coefs / 2, groups=f.groups)
            fit.artifacts = {f"extra/{gene}.txt": b"halved"}
            fit.log_lines = ["note\thalved"]
        return fit


@pytest.mark.parametrize("executor", [SerialExecutor(), ProcessExecutor(2)], ids=["serial", "processes"])
def test_a_custom_trainer_plugs_in(data, tmp_path, executor):
    from spacetravlr_py.io.betadata import read_betadata

    seed, half = tmp_path / "seed", tmp_path / "half"
    train(cfg_for(data, seed))
    res = train(cfg_for(data, half), trainer=HalvingTrainer(), executor=executor)
    assert res.counts["done"] >= 3
    for g in (o.gene for o in res.outcomes if o.status == "done"):
        a, b = read_betadata(seed / f"{g}_betadata.feather"), read_betadata(half / f"{g}_betadata.feather")
        np.testing.assert_array_equal(b.coefs, a.coefs / 2)
        assert (half / "extra" / f"{g}.txt").read_bytes() == b"halved"
        assert "note\thalved" in (half / "log" / f"{g}.log").read_text()


class Failing(SeedTrainer):
    def fit(self, ctx, gene: str) -> GeneFit:
        if gene == "Foxo1":
            raise ArithmeticError("no luck")
        return super().fit(ctx, gene)


def test_a_failing_gene_is_recorded_and_the_run_goes_on(data, tmp_path):
    out = tmp_path / "run"
    res = train(cfg_for(data, out), trainer=Failing())
    assert res.counts["failed"] == 1 and res.manifest["genes"]["failed"] == {"Foxo1": "ArithmeticError: no luck"}
    assert res.manifest["status"] == "complete_with_failures"
    assert "Traceback" in (out / "log" / "Foxo1.log").read_text()
    assert not list(out.glob("*.lock"))


class Slow(SeedTrainer):
    """Signals when a gene starts; then waits for the test to let it go."""

    def __init__(self, started: threading.Event, go: threading.Event) -> None:
        self.started, self.go = started, go

    def fit(self, ctx, gene: str) -> GeneFit:
        self.started.set()
        self.go.wait(30)
        return super().fit(ctx, gene)


def test_stop_request_ends_the_run_like_ctrl_c(data, tmp_path):
    out = tmp_path / "run"
    control, started, go = RunControl(), threading.Event(), threading.Event()
    box: dict = {}
    t = threading.Thread(target=lambda: box.setdefault("res", train(cfg_for(data, out), trainer=Slow(started, go),
                                                                       control=control)))
    t.start()
    assert started.wait(60)
    control.stop()
    go.set()
    t.join(60)
    res = box["res"]
    assert res.interrupted and res.manifest["status"] == "interrupted"
    assert res.counts["done"] + res.counts["orphan"] == 1  # the gene in flight finished, no other started
    assert not list(out.glob("*.lock")) and not list(out.rglob("*.tmp"))
    # a rerun finishes the rest identically to an uninterrupted run
    train(cfg_for(data, out))
    train(cfg_for(data, tmp_path / "whole"))
    assert files(out) == files(tmp_path / "whole")


def test_pause_holds_new_genes_until_resumed(data, tmp_path):
    control = RunControl()
    control.pause()
    rec = Recorder()
    box: dict = {}
    t = threading.Thread(target=lambda: box.setdefault(
        "res", train(cfg_for(data, tmp_path / "run"), control=control, reporter=rec)))
    t.start()
    t.join(3)
    assert t.is_alive() and not [e for e in rec.events if e[0] == "gene_started"]
    control.resume()
    t.join(120)
    assert not box["res"].interrupted and len([e for e in rec.events if e[0] == "gene_finished"]) == len(GENES)


def test_process_executor_honours_a_stop_request(data, tmp_path):
    out = tmp_path / "run"
    control = RunControl()

    class StopAfterFirst(Recorder):
        def gene_finished(self, outcome) -> None:
            super().gene_finished(outcome)
            control.stop()

    res = train(cfg_for(data, out), executor=ProcessExecutor(2), control=control, reporter=StopAfterFirst())
    assert res.interrupted and 1 <= res.counts["done"] + res.counts["orphan"] < len(GENES)
    assert not list(out.glob("*.lock")) and not list(out.rglob("*.tmp"))
    assert not list(out.glob(".spacetravlr-ctx-*"))


def test_gene_fit_log_text() -> None:
    fit = GeneFit("G", None, reason="every cluster failed the R² gate (all betas zero)",
                  clusters=[ClusterFit("a", 10, 3, 0.1234567, 0.5, 12, True, False)])
    assert fit.log_text("orphan").splitlines() == [
        "cluster\tlabel\tn_cells\tn_modulators\tr2\tmse\titerations\tconverged\tkept",
        "0\ta\t10\t3\t0.123457\t0.5\t12\tTrue\tFalse", "status\torphan",
        "reason\tevery cluster failed the R² gate (all betas zero)"]
    full = GeneFit("G", None, clusters=[ClusterFit("a", 10, 3, 0.5, 0.1, 7, True, True, {"cnn": 0.6, "lasso": 0.4},
                                                   "cnn")])
    head, row = full.log_text("done").splitlines()[:2]
    assert head.endswith("kept\theldout_r2_cnn\theldout_r2_lasso\tchoice") and row.endswith("True\t0.6\t0.4\tcnn")
    assert full.mean_r2 == 0.5 and full.n_clusters_kept == 1

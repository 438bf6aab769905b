"""Training on Dask distributed (issue 17).

``run``
    Seed training of 500 genes × 2,000 cells (real mouse genes, real base GRN + CellChat) through
    ``train()`` in this process with four executors, interleaved: Dask ``local:1``, Dask ``local:2``, the
    process executor with 2 workers, and serial (the single-core floor). Every side writes the same files
    (checked bit for bit against serial). Reported: wall time of ``train()`` (context build + cluster or
    worker start + training + teardown), the Dask dispatch phase (first task sent → last result written),
    scaling efficiency ``T(1 worker) / (2 · T(2 workers))``, overhead per task
    ``(phase · workers − Σ fit seconds) / tasks``, and the bytes shipped (context once per worker, each
    task).
``run_memory``
    What a worker holds, for sizing: for a few (cells, genes) the training context's parts (bytes) and a
    ``local:1`` worker's peak RSS after training 40 genes (before and after the context arrived).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import workloads as wl
from .common import Ctx, machine_load, row
from .timing import interleave


def _cfg(d: Path, out: Path, **over: Any) -> Any:
    from spacetravlr_py.config import SpaceshipConfig

    o = {"data.adata_path": str(d / "tissue.h5ad"), "grn.network_data_dir": str(d), "execution.output_dir": str(out),
         "spatial.radius": 200.0}
    o.update(over)
    return SpaceshipConfig().with_overrides(o)


def _files(out: Path) -> dict[str, bytes]:
    import pyarrow.feather as feather

    res: dict[str, bytes] = {}
    for f in sorted(out.glob("*_betadata.feather")):
        t = feather.read_table(f)
        res[f.name] = b"".join(np.ascontiguousarray(t.column(c).to_numpy(zero_copy_only=False)).tobytes()
                               for c in t.column_names[1:])
    res.update({f.name: b"" for f in out.glob("*.orphan")})
    return res


class _Side:
    """One executor as a timing side: a fresh run folder per call; keeps each run's manifest and stats."""

    def __init__(self, d: Path, root: Path, name: str, make: Any) -> None:
        self.d, self.out, self.make = d, root / name, make
        self.runs: list[dict[str, Any]] = []

    def __call__(self) -> float:
        from spacetravlr_py.training import train

        shutil.rmtree(self.out, ignore_errors=True)
        ex = self.make()
        t0 = time.perf_counter()
        res = train(_cfg(self.d, self.out), executor=ex)
        wall = time.perf_counter() - t0
        m = res.manifest
        fit = float(sum(m["timings"]["per_gene_s"].values()))
        self.runs.append({"wall_s": wall, "train_s": m["timings"]["train_s"], "fit_s": fit,
                          "n_genes": len(m["timings"]["per_gene_s"]), **getattr(ex, "stats", {})})
        return wall

    def median(self, key: str) -> float:
        return float(np.median([r[key] for r in self.runs[1:] or self.runs]))  # warm-up left out


def run(ctx: Ctx) -> list[dict[str, Any]]:
    from spacetravlr_py.training import ProcessExecutor, SerialExecutor
    from spacetravlr_py.training.dask_executor import DaskExecutor

    n_genes, n_cells = (60, 600) if ctx.quick else (500, 2000)
    d = wl.training_inputs(n_genes, n_cells)
    root = wl.BENCH_DIR / "dask_runs"
    sides = {"local:1": _Side(d, root, "local1", lambda: DaskExecutor("local:1")),
             "local:2": _Side(d, root, "local2", lambda: DaskExecutor("local:2")),
             "processes:2": _Side(d, root, "proc2", lambda: ProcessExecutor(2)),
             "serial": _Side(d, root, "serial", SerialExecutor)}
    ctx.log(f"Dask training: {n_genes} genes × {n_cells} cells")
    res = interleave(sides, repeats=ctx.repeats, log=ctx.log)
    ref = _files(sides["serial"].out)
    identical = {k: _files(s.out) == ref for k, s in sides.items()}
    one, two, procs, serial = (sides[k] for k in ("local:1", "local:2", "processes:2", "serial"))
    last = two.runs[-1]

    def overhead(s: _Side, phase: str, workers: int) -> float:
        return float(np.median([(r[phase] * workers - r["fit_s"]) / r["n_genes"] for r in s.runs[1:] or s.runs]))

    size = {
        "genes": n_genes, "cells": n_cells, "trained": one.runs[-1]["n_genes"],
        "local1_median_s": res["local:1"]["median_s"], "serial_median_s": res["serial"]["median_s"],
        "dispatch_local1_s": one.median("dispatch_s"), "dispatch_local2_s": two.median("dispatch_s"),
        "train_phase_processes2_s": procs.median("train_s"), "train_phase_serial_s": serial.median("train_s"),
        "scaling_efficiency_wall": res["local:1"]["median_s"] / (2 * res["local:2"]["median_s"]),
        "scaling_efficiency_dispatch": one.median("dispatch_s") / (2 * two.median("dispatch_s")),
        "processes_efficiency_train_phase": serial.median("train_s") / (2 * procs.median("train_s")),
        "overhead_per_task_local1_ms": 1e3 * overhead(one, "dispatch_s", 1),
        "overhead_per_task_local2_ms": 1e3 * overhead(two, "dispatch_s", 2),
        "overhead_per_task_processes2_ms": 1e3 * overhead(procs, "train_s", 2),
        "fit_s_per_gene_ms": 1e3 * serial.median("fit_s") / serial.runs[-1]["n_genes"],
        "context_bytes": last["context_bytes"], "task_bytes": last["task_bytes"],
        "context_loads_per_worker": sorted(last["context_loads"].values()), "n_tasks": last["n_tasks"],
        "identical_to_serial": identical,
    }
    ours = {"label": "Dask local:2 (LocalCluster, 2 single-threaded worker processes), train() wall",
            **res["local:2"], "timing": "wall of train() in this process: context, cluster start, training, "
            "teardown"}
    base = {"label": "process executor, 2 workers (--parallel 2)", **res["processes:2"]}
    z = size
    notes = (f"{machine_load()}. "
             f"local:1 {res['local:1']['median_s']:.1f} s, serial {res['serial']['median_s']:.1f} s; "
             f"Dask scaling efficiency {z['scaling_efficiency_wall']:.2f} (wall) / "
             f"{z['scaling_efficiency_dispatch']:.2f} (dispatch phase); overhead per task "
             f"{z['overhead_per_task_local2_ms']:.1f} ms on local:2, {z['overhead_per_task_local1_ms']:.1f} ms "
             f"on local:1, {z['overhead_per_task_processes2_ms']:.1f} ms for processes "
             f"(fit {z['fit_s_per_gene_ms']:.1f} ms/gene); context {z['context_bytes'] / 1e6:.2f} MB loaded "
             f"{z['context_loads_per_worker']} times per worker, each task {z['task_bytes']} bytes; "
             f"files identical to serial: {all(identical.values())}")
    r = row("dask_train", f"seed training on Dask, {n_genes} genes × {n_cells:,} cells (local:2 vs processes ×2)",
            ours=ours, baseline=base, agreement={"identical_files": all(identical.values())}, notes=notes, size=size)
    return [r]


# -- sizing ------------------------------------------------------------------------------------


def _context_parts(d: Path, n_genes: int) -> dict[str, Any]:
    """Bytes of each part of the training context of every gene (built here, as the client does)."""
    import pickle

    from spacetravlr_py.io.anndata import tissue_from_config
    from spacetravlr_py.io.network import network_for
    from spacetravlr_py.training.context import build_context

    cfg = _cfg(d, d / "unused")
    tissue = tissue_from_config(cfg)
    net, _, _ = network_for(cfg, tissue.var_names)
    c = build_context(cfg, tissue, net, list(tissue.var_names))
    parts = {k: int(getattr(c, k).nbytes) for k in ("expression", "received", "lr_features", "lr_grams", "lr_means")}
    parts["selector_and_rest"] = len(pickle.dumps(c.selector, protocol=5))
    return {"n_ligands": len(c.received_names), "n_lr_pairs": len(c.lr_pairs), "n_clusters": len(c.cluster_labels),
            "bytes": parts}


class _Cluster:
    """A ``dask scheduler`` and one ``dask worker --nthreads 1`` subprocess (what users start), stopped on exit."""

    def __init__(self, root: Path) -> None:
        import json
        import os
        import subprocess
        import sys

        root.mkdir(parents=True, exist_ok=True)
        dask = str(Path(sys.executable).parent / "dask")
        repo = Path(__file__).resolve().parents[1]  # the workers unpickle this module's probes
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(repo), os.environ.get("PYTHONPATH")) if p)}
        sched = root / "scheduler.json"
        sched.unlink(missing_ok=True)
        self.procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                        "--scheduler-file", str(sched)], cwd=root, env=env,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
        t0 = time.monotonic()
        while not (sched.exists() and sched.read_text().strip()):
            if time.monotonic() - t0 > 120:
                raise RuntimeError("dask scheduler did not start")
            time.sleep(0.1)
        self.address = str(json.loads(sched.read_text())["address"])
        self.procs.append(subprocess.Popen([dask, "worker", self.address, "--nthreads", "1", "--no-nanny",
                                            "--no-dashboard", "--host", "127.0.0.1", "--local-directory", str(root)],
                                           cwd=root, env=env, stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL))

    def __enter__(self) -> _Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        for p in reversed(self.procs):
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except Exception:
                p.kill()


def _memory_mib(client: Any) -> dict[str, float]:
    """The worker's current and peak resident memory (MiB) from /proc/self/status, read with a builtin so
    that the probe imports nothing on the worker."""
    import functools

    status = next(iter(client.run(functools.partial(Path.read_text, Path("/proc/self/status"))).values()))
    vals = {k: float(v.split()[0]) / 1024 for k, v in (ln.split(":", 1) for ln in status.splitlines() if ":" in ln)
            if k in ("VmRSS", "VmHWM")}
    return {"rss": round(vals["VmRSS"], 1), "peak": round(vals["VmHWM"], 1)}


def run_memory(ctx: Ctx) -> list[dict[str, Any]]:
    import logging

    from distributed import Client

    from spacetravlr_py.training import train
    from spacetravlr_py.training.dask_executor import DaskExecutor

    logging.getLogger("distributed").setLevel(logging.WARNING)
    sizes = [(600, 60), (1000, 100)] if ctx.quick else [(2000, 200), (2000, 500), (8000, 500), (8000, 1000)]
    points = []
    for n_cells, n_genes in sizes:
        d = wl.training_inputs(n_genes, n_cells)
        ctx.log(f"Dask worker memory: {n_genes} genes × {n_cells} cells")
        parts = _context_parts(d, n_genes)
        out = wl.BENCH_DIR / "dask_memory" / f"g{n_genes}_n{n_cells}"
        shutil.rmtree(out, ignore_errors=True)
        with _Cluster(wl.BENCH_DIR / "dask_memory" / "cluster") as cl, Client(cl.address, timeout=60) as c:
            c.wait_for_workers(1, timeout=120)
            idle = _memory_mib(c)
            import importlib

            for mod in ("spacetravlr_py.models.fista", "spacetravlr_py.training.trainer", "spacetravlr_py.scaleout"):
                c.run(importlib.import_module, mod)
            imported = _memory_mib(c)
            ex = DaskExecutor(cl.address)
            t0 = time.perf_counter()
            train(_cfg(d, out, **{"training.max_genes": 40}), executor=ex)
            secs = time.perf_counter() - t0
            peak = _memory_mib(c)
        points.append({"cells": n_cells, "genes": n_genes, **parts, "context_bytes": ex.stats["context_bytes"],
                       "worker_idle_mib": idle["rss"], "worker_imported_mib": imported["rss"],
                       "worker_rss_after_mib": peak["rss"], "worker_peak_rss_mib": peak["peak"],
                       "seconds_40_genes": round(secs, 2)})
    big = points[-1]
    ours = {"label": f"one `dask worker --nthreads 1`, 40 genes of {big['genes']} × {big['cells']} cells",
            "median_s": big["seconds_40_genes"], "n": 1, "peak_rss_mib": big["worker_peak_rss_mib"],
            "memory_method": "VmHWM (peak resident) of the worker process after training (idle worker "
                             f"{big['worker_idle_mib']} MiB; after importing the training modules "
                             f"{big['worker_imported_mib']} MiB)"}
    notes = "; ".join(f"{p['cells']}×{p['genes']}: context {p['context_bytes'] / 2**20:.1f} MiB, worker peak "
                      f"{p['worker_peak_rss_mib']:.0f} MiB (imports {p['worker_imported_mib']:.0f})" for p in points)
    r = row("dask_worker_memory", "Dask worker memory vs cells × genes (sizing)", ours=ours, baseline=None,
            notes=f"{machine_load()}; " + notes, size={"points": points})
    r["ratio"] = None
    return [r]

"""The viewer under load: a warm ``spatial_viewer`` process on 100k cells × 50 trained genes, real HTTP on
loopback, several clients at once.

Inputs: the planted synthetic tissue (``synthetic_tissue``, 100k cells, 62 genes, UMAP) and its true
cluster-row betas as a run folder with a repro TOML (seed settings: Gaussian kernel, radius 200,
approximate received ligands above 15k cells, 4 propagation steps).

Phases (each after a warm-up of every route):

* **preview** — one client posts ``perturb/preview`` (``recompute: true``, a different trained gene each
  time) while two clients fetch ``gene/expression`` (5 requests per second each);
* **umap-field** — after one preview, one client posts ``perturb/umap-field`` for that perturbation (the
  UI's flow: Run, then the quiver overlay; the perturbation is reused, the field is computed each time,
  k = 150) while two clients fetch expression (5 per second each);
* **expression** — four clients fetch ``gene/expression`` of random genes at once (no job running).

Latency = wall time of one HTTP request measured by the client (connection reused). Memory = the server
process's resident set (``VmHWM`` peak and ``VmRSS`` after the run), read from ``/proc``.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import workloads as wl
from .common import Ctx, row

N_TARGETS = 13
CLIENT_TIMEOUT = 600.0
BACKGROUND_RATE = 5.0
"""Requests per second of each background expression client (a user browsing genes; bounded, so that the
load does not just measure two clients saturating a 2-core machine)."""


def viewer_inputs(n_cells: int, seed: int = 0) -> Path:
    """``data/`` (tissue.h5ad with UMAP, network, true betadata) and ``run/`` (betadata + repro TOML)."""

    key = f"viewer_n{n_cells}_t{N_TARGETS}_s{seed}"
    final = wl.BENCH_DIR / key  # ``cached`` builds in a temporary folder, then renames it to this

    def build(d: Path) -> None:
        from spacetravlr_py import _keys
        from spacetravlr_py.config import SpaceshipConfig
        from spacetravlr_py.datasets import synthetic_tissue

        syn = synthetic_tissue(n_cells=n_cells, seed=seed, n_targets=N_TARGETS)
        paths = syn.write(d / "data")
        run = d / "run"
        run.mkdir()
        for f in sorted(paths["true_betadata"].iterdir()):
            os.link(f, run / f.name)
        cfg = SpaceshipConfig().with_overrides({
            "data.adata_path": str(final / "data" / paths["h5ad"].name), "grn.network_data_dir": str(final / "data"),
            "execution.output_dir": str(final / "run"), "spatial.radius": wl.PERTURB_RADIUS,
            "spatial.contact_distance": wl.PERTURB_CONTACT, "perturbation.n_propagation": 4}, source="benchmark")
        cfg.dump_toml(run / _keys.REPRO_TOML)

    return wl.cached(key, build)


class Server:
    """``spatial_viewer --run-toml RUN --port 0`` in a fresh process."""

    def __init__(self, run_toml: Path, threads: int) -> None:
        src = str(Path(__file__).resolve().parents[1] / "src")
        env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""),
               "SPACETRAVLR_NUM_THREADS": str(threads)}
        self.proc = subprocess.Popen([sys.executable, "-c", "from spacetravlr_py.cli.viewer import run; run()",
                                      "--run-toml", str(run_toml), "--port", "0"], env=env, text=True,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()
        m = re.search(r"serving (http://\S+?)/? ", line)
        if not m:
            self.proc.kill()
            raise RuntimeError(f"spatial_viewer did not start: {line}{self.proc.stderr.read()}")
        self.base = m.group(1).rstrip("/")
        self._drain = threading.Thread(target=self.proc.stderr.read, daemon=True)
        self._drain.start()

    def status(self, key: str) -> float:
        """``VmHWM`` / ``VmRSS`` of the server in MiB."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
        raise KeyError(key)

    def close(self) -> None:
        self.proc.send_signal(2)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._drain.join(10)
        if self.proc.stderr is not None:
            self.proc.stderr.close()


def _timed(client: Any, method: str, path: str, **kw: Any) -> float:
    t0 = time.perf_counter()
    r = client.request(method, path, **kw)
    dt = time.perf_counter() - t0
    if r.status_code != 200:
        raise RuntimeError(f"{method} {path}: {r.status_code} {r.text[:300]}")
    return dt


def _background(base: str, genes: list[str], stop: threading.Event, out: list[float], seed: int) -> threading.Thread:
    """A client fetching expression of random genes, ``BACKGROUND_RATE`` requests per second, until ``stop``."""
    import httpx

    def loop() -> None:
        rng = np.random.default_rng(seed)
        with httpx.Client(base_url=base, timeout=CLIENT_TIMEOUT) as c:
            while not stop.is_set():
                g = genes[int(rng.integers(len(genes)))]
                dt = _timed(c, "GET", "/api/gene/expression", params={"gene": g})
                out.append(dt)
                stop.wait(max(0.0, 1.0 / BACKGROUND_RATE - dt))

    th = threading.Thread(target=loop, daemon=True)
    th.start()
    return th


def _stats(xs: list[float]) -> dict[str, Any]:
    a = np.asarray(xs)
    return {"median_s": float(np.median(a)), "p95_s": float(np.percentile(a, 95)), "min_s": float(a.min()),
            "max_s": float(a.max()), "n": int(a.size), "times_s": [round(x, 6) for x in xs]}


def _under_load(base: str, genes: list[str], fg: Any, n_bg: int = 2) -> tuple[list[float], list[float]]:
    """Run ``fg()`` (returns foreground latencies) while ``n_bg`` expression clients run."""
    stop = threading.Event()
    bg: list[float] = []
    threads = [_background(base, genes, stop, bg, seed=i) for i in range(n_bg)]
    try:
        fg_times = fg()
    finally:
        stop.set()
        for th in threads:
            th.join(CLIENT_TIMEOUT)
    return fg_times, bg


def measure(run_toml: Path, n_fg: int, n_expr: int, threads: int, log: Any) -> dict[str, Any]:
    """All phases against one server; returns latencies, engine timings and memory."""
    import httpx

    from .bench_perturb import TARGET

    srv = Server(run_toml, threads)
    try:
        t0 = time.perf_counter()
        while True:
            m = httpx.get(srv.base + "/api/meta", timeout=60).json()
            if m["status"] != "loading":
                break
            time.sleep(0.2)
        if m["status"] != "ready":
            raise RuntimeError(f"viewer load failed: {m['load']}")
        load_s = time.perf_counter() - t0
        log(f"    server ready in {load_s:.1f}s: {m['n_obs']} cells × {m['n_vars']} genes, "
            f"{m['n_trained_genes']} trained; RSS {srv.status('VmRSS'):.0f} MiB")
        genes = httpx.get(srv.base + "/api/genes/full").json()
        trained = httpx.get(srv.base + "/api/betadata/genes").json()
        targets = [TARGET] + [g for g in trained if g != TARGET]
        with httpx.Client(base_url=srv.base, timeout=CLIENT_TIMEOUT) as c:  # warm every route (numba, kNN)
            _timed(c, "GET", "/api/gene/expression", params={"gene": genes[0]})
            _timed(c, "POST", "/api/perturb/preview", json={"gene": TARGET})
            _timed(c, "POST", "/api/perturb/umap-field", json={"gene": TARGET})
            seconds = [float(c.post("/api/perturb/preview", json={"gene": g, "recompute": True})
                             .headers["x-perturb-seconds"]) for g in targets[:3]]
            engine = c.post("/api/perturb/summary", json={"gene": targets[2]}).json()["timings_s"]
        log(f"    warm; engine time of a perturbation {statistics.median(seconds):.3f}s ({engine})")

        engine_in_requests: list[float] = []

        def previews() -> list[float]:
            out = []
            with httpx.Client(base_url=srv.base, timeout=CLIENT_TIMEOUT) as c:
                for i in range(n_fg):
                    t = time.perf_counter()
                    r = c.post("/api/perturb/preview", json={"gene": targets[i % len(targets)], "recompute": True})
                    out.append(time.perf_counter() - t)
                    if r.status_code != 200:
                        raise RuntimeError(f"preview: {r.status_code} {r.text[:300]}")
                    engine_in_requests.append(float(r.headers["x-perturb-seconds"]))
            return out

        def fields() -> list[float]:
            with httpx.Client(base_url=srv.base, timeout=CLIENT_TIMEOUT) as c:
                _timed(c, "POST", "/api/perturb/preview", json={"gene": TARGET, "recompute": True})
                return [_timed(c, "POST", "/api/perturb/umap-field", json={"gene": TARGET}) for _ in range(n_fg)]

        def field_recompute() -> list[float]:
            with httpx.Client(base_url=srv.base, timeout=CLIENT_TIMEOUT) as c:
                return [_timed(c, "POST", "/api/perturb/umap-field", json={"gene": TARGET, "recompute": True})
                        for _ in range(max(2, n_fg // 4))]

        log("    phase preview (+2 expression clients)")
        p_fg, p_bg = _under_load(srv.base, genes, previews)
        log("    phase umap-field (+2 expression clients)")
        f_fg, f_bg = _under_load(srv.base, genes, fields)
        f_full = field_recompute()
        log("    phase expression (4 clients)")
        e_times: list[float] = []
        lock = threading.Lock()

        def expr_client(seed: int) -> None:
            rng = np.random.default_rng(100 + seed)
            with httpx.Client(base_url=srv.base, timeout=CLIENT_TIMEOUT) as c:
                for _ in range(n_expr // 4):
                    t = _timed(c, "GET", "/api/gene/expression", params={"gene": genes[int(rng.integers(len(genes)))]})
                    with lock:
                        e_times.append(t)

        ths = [threading.Thread(target=expr_client, args=(i,)) for i in range(4)]
        for th in ths:
            th.start()
        for th in ths:
            th.join(CLIENT_TIMEOUT)
        return {"preview": _stats(p_fg), "preview_engine": _stats(engine_in_requests),
                "expr_during_preview": _stats(p_bg), "field": _stats(f_fg),
                "expr_during_field": _stats(f_bg), "field_with_perturbation": _stats(f_full),
                "expression": _stats(e_times), "engine_seconds": seconds, "engine_timings": engine,
                "load_s": load_s, "peak_rss_mib": round(srv.status("VmHWM"), 1),
                "rss_after_mib": round(srv.status("VmRSS"), 1), "n_obs": m["n_obs"], "n_vars": m["n_vars"],
                "n_trained": m["n_trained_genes"]}
    finally:
        srv.close()


def _ours(label: str, st: dict[str, Any], res: dict[str, Any], timing: str) -> dict[str, Any]:
    return {"label": label, **{k: v for k, v in st.items() if k != "times_s"}, "times_s": st["times_s"],
            "timing": timing, "peak_rss_mib": res["peak_rss_mib"],
            "memory_method": f"VmHWM of the server process over the whole run (VmRSS after it: "
                             f"{res['rss_after_mib']:.0f} MiB); {res['n_obs']:,} cells × {res['n_vars']} genes"}


def run(ctx: Ctx) -> list[dict[str, Any]]:
    n = 20_000 if ctx.quick else 100_000
    n_fg, n_expr = (6, 80) if ctx.quick else (20, 400)
    ctx.log(f"viewer: {n} cells, 50 trained genes; building/reading inputs")
    d = viewer_inputs(n)
    load_before = os.getloadavg()[0]
    res = measure(d / "run" / "spacetravlr_run_repro.toml", n_fg, n_expr, ctx.threads, ctx.log)
    load_after = os.getloadavg()[0]
    size = {"cells": res["n_obs"], "genes": res["n_vars"], "trained_genes": res["n_trained"], "n_propagation": 4}
    shared = (f"; {os.cpu_count()} cores, 1-minute load average {load_before:.1f} before and {load_after:.1f} after "
              "this row" + (" (other jobs running: absolute times inflated and noisy)"
                            if load_before > (os.cpu_count() or 1) else ""))
    p, f, e = res["preview"], res["field"], res["expression"]
    eng = res["engine_timings"]
    rows = [
        row("viewer_preview", f"viewer `perturb/preview`, {n:,} cells × 50 trained genes, warm, under load",
            ours=_ours("POST /api/perturb/preview (recompute), 1 client + 2 expression clients at 5 req/s", p, res,
                       "client-side latency of each HTTP request"),
            baseline={"label": "the engine alone inside the same requests (RunSession.run, X-Perturb-Seconds)",
                      **{k: v for k, v in res["preview_engine"].items() if k != "times_s"},
                      "times_s": res["preview_engine"]["times_s"]},
            size=size, goal="≤ 0.5 s (median)" if not ctx.quick else "",
            goal_met=(p["median_s"] <= 0.5) if not ctx.quick else None,
            notes=(f"p95 {p['p95_s']:.3f} s; ratio = engine time / request latency (the share of a preview spent "
                   f"in the perturbation itself); engine time before the load (median of 3) "
                   f"{statistics.median(res['engine_seconds']):.3f} s (last: received ligands "
                   f"{eng.get('received_s', 0):.3f} s, propagation {eng.get('propagate_s', 0):.3f} s); "
                   f"expression requests meanwhile: median {res['expr_during_preview']['median_s'] * 1e3:.1f} ms, "
                   f"p95 {res['expr_during_preview']['p95_s'] * 1e3:.1f} ms (n={res['expr_during_preview']['n']})"
                   + shared)),
        row("viewer_umap_field", f"viewer `perturb/umap-field`, {n:,} cells, k = 150, warm, under load",
            ours=_ours("POST /api/perturb/umap-field for the last preview, 1 client + 2 expression clients at 5 req/s",
                       f, res,
                       "client-side latency; the perturbation is reused, the field (colΔCor, P, vectors, grid) "
                       "is computed each time on the cached UMAP kNN"),
            baseline=None, size=size, goal="≤ 1 s (median)" if not ctx.quick else "",
            goal_met=(f["median_s"] <= 1.0) if not ctx.quick else None,
            notes=(f"p95 {f['p95_s']:.3f} s; with the perturbation recomputed (recompute: true): median "
                   f"{res['field_with_perturbation']['median_s']:.3f} s (n={res['field_with_perturbation']['n']}); "
                   f"expression requests meanwhile: median {res['expr_during_field']['median_s'] * 1e3:.1f} ms, "
                   f"p95 {res['expr_during_field']['p95_s'] * 1e3:.1f} ms" + shared)),
        row("viewer_gene_expression", f"viewer `gene/expression` (float32 × {n:,}), 4 concurrent clients",
            ours=_ours("GET /api/gene/expression, 4 clients at once", e, res, "client-side latency"),
            baseline=None, size=size, goal="≤ 50 ms (median)" if not ctx.quick else "",
            goal_met=(e["median_s"] <= 0.05) if not ctx.quick else None,
            notes=(f"p95 {e['p95_s'] * 1e3:.1f} ms; server load time (tissue + run + network) {res['load_s']:.1f} s; "
                   f"server memory at {n:,} cells: peak {res['peak_rss_mib']:.0f} MiB, after the run "
                   f"{res['rss_after_mib']:.0f} MiB" + shared)),
    ]
    rows[0]["ratio_label"] = "engine / request: the share of the latency spent perturbing"
    return rows

"""Measuring: interleaved A/B timing, peak memory and numba compile time in fresh subprocesses, and
the machine description that goes next to every number.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def now_iso() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def n_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def mem_total_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return None


def _version(mod: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(mod)
    except PackageNotFoundError:
        return "absent"


def reference_versions() -> dict[str, str]:
    """Versions inside the reference venv (one short subprocess), or {} when it is absent."""
    from . import reference as ref

    ok, _ = ref.reference_status()
    if not ok:
        return {}
    code = ("import json, platform\nfrom importlib.metadata import version\n"
            "v = {m: version(m) for m in ('SpaceTravLR', 'numpy', 'pandas', 'numba', 'scipy', 'anndata')}\n"
            "v['python'] = platform.python_version()\nprint(json.dumps(v))")
    try:
        out = subprocess.run([str(ref.reference_python()), "-c", code], capture_output=True, text=True,
                             timeout=120, check=True).stdout
        return json.loads(out.strip().splitlines()[-1])
    except (subprocess.SubprocessError, OSError, ValueError, IndexError):
        return {}


def machine_info(*, with_reference: bool = True) -> dict[str, Any]:
    """CPU model, cores, memory, OS, Python and library versions (ours and the reference's)."""
    import numba

    return {
        "cpu": cpu_model(), "cores": n_cores(), "mem_gib": mem_total_gib(),
        "os": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
        "numba_threads": numba.config.NUMBA_NUM_THREADS,  # type: ignore[attr-defined]
        "versions": {m: _version(m) for m in ("spacetravlr", "numpy", "scipy", "numba", "pandas", "anndata",
                                              "pyarrow")},
        "reference_versions": reference_versions() if with_reference else {},
    }


def summarize(times: list[float]) -> dict[str, Any]:
    """median / min / max / n of a list of seconds."""
    if not times:
        return {"n": 0}
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "n": len(times),
            "times_s": [round(t, 6) for t in times]}


def interleave(sides: Mapping[str, Callable[[], float]], *, repeats: int, warmup: int = 1,
               warmups: Mapping[str, int] | None = None, max_repeats: Mapping[str, int] | None = None,
               log: Callable[[str], None] | None = None) -> dict[str, dict[str, Any]]:
    """Time several sides A, B, … interleaved: warm-up calls, then ``A B A B …`` ``repeats`` times.

    Each callable runs its workload once and returns the seconds to record (in-process: its own
    ``perf_counter`` delta; the reference: its harness's ``t_core_s``). ``warmups`` overrides the
    number of warm-up calls per side; ``max_repeats`` caps slow sides (their later turns are skipped).
    Returns ``{side: summarize(times)}`` plus ``warmup`` (the number of warm-up calls).
    """
    caps = dict(max_repeats or {})
    nwarm = {name: int((warmups or {}).get(name, warmup)) for name in sides}
    for name, fn in sides.items():
        for _ in range(nwarm[name]):
            t = fn()
            if log:
                log(f"    {name}: warm-up {t:.4g}s")
    times: dict[str, list[float]] = {name: [] for name in sides}
    for i in range(repeats):
        for name, fn in sides.items():
            if len(times[name]) >= caps.get(name, repeats):
                continue
            t = fn()
            times[name].append(float(t))
            if log:
                log(f"    {name}: run {i + 1}/{min(repeats, caps.get(name, repeats))} {t:.4g}s")
    return {name: {**summarize(ts), "warmup": nwarm[name]} for name, ts in times.items()}


def timed(fn: Callable[[], Any]) -> Callable[[], float]:
    """Wrap ``fn`` so that calling it returns its wall seconds."""

    def run() -> float:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    return run


# --------------------------------------------------------------------------------------------------
# fresh-subprocess measurements (benchmarks/worker.py)
# --------------------------------------------------------------------------------------------------


def worker(factory: str, params: Mapping[str, Any], *, fresh_numba_cache: bool = False, calls: int = 2,
           timeout: float = 3600.0, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Run ``factory(**params)`` in a fresh interpreter (``python -m benchmarks.worker``).

    The factory builds its inputs (from the ``.bench`` cache) and returns a zero-argument callable; the
    worker calls it ``calls`` times and reports ``t_calls_s``, ``maxrss_setup_kb`` (peak RSS after
    imports and setup) and ``maxrss_kb`` (peak RSS of the whole process, from ``getrusage``).
    ``fresh_numba_cache``: point ``NUMBA_CACHE_DIR`` at an empty folder, so the first call compiles
    every numba kernel it uses (compile time = first call − later call).
    """
    e = dict(os.environ)
    e.update(env or {})
    with tempfile.TemporaryDirectory(prefix="stlr-numba-") as cache:
        if fresh_numba_cache:
            e["NUMBA_CACHE_DIR"] = cache
        e["PYTHONPATH"] = os.pathsep.join([str(ROOT), e.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        spec = json.dumps({"factory": factory, "params": dict(params), "calls": calls})
        from .reference import clean_rss_command

        proc = subprocess.run(clean_rss_command([sys.executable, "-m", "benchmarks.worker", spec]),
                              capture_output=True, text=True, timeout=timeout, env=e, cwd=str(ROOT))
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark worker failed ({factory}): {proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def compile_and_peak(factory: str, params: Mapping[str, Any], *, measure_compile: bool = True,
                     timeout: float = 3600.0) -> dict[str, Any]:
    """Peak RSS of one cached-numba run in a fresh process, plus compile time from a cold-cache process.

    Returns ``peak_rss_mib``, ``setup_rss_mib``, ``first_call_s`` / ``steady_call_s`` (cached kernels)
    and, when ``measure_compile``, ``compile_s`` = cold first call − cold second call.
    """
    warm = worker(factory, params, timeout=timeout)
    out: dict[str, Any] = {
        "peak_rss_mib": round(warm["maxrss_kb"] / 1024, 1),
        "setup_rss_mib": round(warm["maxrss_setup_kb"] / 1024, 1),
        "first_call_s": warm["t_calls_s"][0],
        "steady_call_s": warm["t_calls_s"][-1],
        "memory_method": "ru_maxrss of a fresh subprocess that loads the inputs and runs the workload "
                         "twice (numba kernels from the on-disk cache); includes the interpreter and imports",
    }
    if measure_compile:
        cold = worker(factory, params, fresh_numba_cache=True, timeout=timeout)
        out["compile_s"] = max(0.0, cold["t_calls_s"][0] - cold["t_calls_s"][-1])
        out["compile_method"] = "fresh subprocess with an empty NUMBA_CACHE_DIR: first call − second call"
    return out

"""Shared pieces of the benchmark cases: the run context, result rows and comparison helpers."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import reference as ref
from .timing import now_iso


@dataclass
class Ctx:
    """What a benchmark case needs to know about this run."""

    quick: bool = False
    repeats: int = 5
    measure_memory: bool = True
    use_reference: bool = True
    threads: int = 2
    log: Callable[[str], None] = print
    extras: dict[str, Any] = field(default_factory=dict)
    share_session: bool = False
    """One reference process for every workload (quick runs: numba JIT once). Off for full runs, where
    each workload's reference peak memory comes from its own process."""
    _shared: ref.ReferenceSession | None = None

    def open_session(self) -> ref.ReferenceSession:
        if not self.share_session:
            return ref.ReferenceSession(threads=self.threads)
        if self._shared is None or self._shared.proc.poll() is not None:
            self._shared = ref.ReferenceSession(threads=self.threads)
            self._shared.shared = True
        return self._shared

    def release(self, session: ref.ReferenceSession) -> None:
        if session is not self._shared:
            session.close()

    def close(self) -> None:
        if self._shared is not None:
            self._shared.close()
            self._shared = None

    @property
    def reference_ok(self) -> bool:
        return self.use_reference and ref.reference_status()[0]

    @property
    def reference_reason(self) -> str:
        if not self.use_reference:
            return "reference disabled (--no-reference)"
        return ref.reference_status()[1]


def machine_load() -> str:
    """How busy the machine was when a row started: its 1-minute load average against its cores (a row's
    timings are only as quiet as this)."""
    import os

    load = os.getloadavg()[0]
    return f"{os.cpu_count() or 1}-core machine, load average {load:.1f} at the start"


def diff_stats(ours: np.ndarray, other: np.ndarray) -> dict[str, float]:
    """``max_abs_diff`` and ``max_rel_diff`` (max |Δ| / max |other|) of two arrays."""
    a = np.asarray(ours, dtype=np.float64)
    b = np.asarray(other, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"outputs differ in shape: {a.shape} vs {b.shape}")
    d = float(np.abs(a - b).max()) if a.size else 0.0
    s = float(np.abs(b).max()) if b.size else 0.0
    return {"max_abs_diff": d, "max_rel_diff": d / s if s > 0 else d}


def row(name: str, workload: str, *, ours: dict[str, Any], baseline: dict[str, Any] | None,
        goal: str = "", goal_met: bool | None = None, agreement: dict[str, Any] | None = None,
        notes: str = "", size: dict[str, Any] | None = None) -> dict[str, Any]:
    """One result row. ``ours``/``baseline``: ``label``, ``median_s`` …, ``peak_rss_mib``; ratio = baseline / ours."""
    ratio = None
    if baseline and baseline.get("median_s") and ours.get("median_s"):
        ratio = baseline["median_s"] / ours["median_s"]
    return {"name": name, "workload": workload, "size": size or {}, "ours": ours, "baseline": baseline,
            "ratio": ratio, "agreement": agreement or {}, "goal": goal, "goal_met": goal_met, "notes": notes,
            "date": now_iso()}


class RefSide:
    """A reference harness subcommand as a timing side: each call returns ``t_core_s`` and keeps the records."""

    def __init__(self, session: ref.ReferenceSession, args: list[Any]) -> None:
        self.session = session
        self.args = args
        self.records: list[dict[str, Any]] = []

    def __call__(self) -> float:
        rec = self.session.run(*self.args)
        self.records.append(rec)
        return float(rec["t_core_s"])

    def summary(self, timed: dict[str, Any]) -> dict[str, Any]:
        walls = [r["_wall_s"] for r in self.records]
        out = dict(timed)
        out["timing"] = "harness t_core_s (the timed reference call; JIT warm-up, imports and file I/O excluded)"
        if walls:
            out["wall_median_s"] = float(np.median(walls))
            out["wall_note"] = ("wall time of the harness call inside the session (input parsing, output writing, "
                                "JIT check)")
        if self.records:
            out["t_jit_warmup_s"] = self.records[0].get("t_jit_warmup_s")
            out["peak_rss_mib"] = round(max(r["_maxrss_kb"] for r in self.records) / 1024, 1)
            out["memory_method"] = ("ru_maxrss high-water mark of the reference process (a session shared by "
                                    "several workloads: not this workload's own peak)" if self.session.shared else
                                    "ru_maxrss high-water mark of the reference process (a session that ran only "
                                    "this workload)")
        return out


def timed_call(fn: Callable[[], Any]) -> Callable[[], float]:
    def run() -> float:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    return run

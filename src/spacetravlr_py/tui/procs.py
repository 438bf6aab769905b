"""CPU and memory of a run's processes: this process and its children (the worker processes)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


@dataclass
class ProcSample:
    pid: int
    role: str
    cpu_percent: float
    """Since the previous sample; 100 = one core busy."""
    rss: int
    """Resident memory in bytes."""


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


class ProcessSampler:
    """Samples this process and its live descendants with psutil.

    CPU percentages are measured between consecutive :meth:`sample` calls (a process seen for the first
    time reads 0 %), so call it at a steady interval.
    """

    def __init__(self, pid: int | None = None) -> None:
        import psutil

        self._psutil = psutil
        self.root = psutil.Process(pid or os.getpid())
        self._known: dict[int, Any] = {}

    def _proc(self, p: Any) -> Any:
        # the same Process object each time: cpu_percent() measures since its previous call on that object
        if p.pid not in self._known:
            self._known[p.pid] = p
            p.cpu_percent(None)
            p.role = self._role(p)
        return self._known[p.pid]

    def _role(self, p: Any) -> str:
        if p.pid == self.root.pid:
            return "main"
        try:
            cmd = " ".join(p.cmdline())
        except self._psutil.Error:
            return "child"
        if "resource_tracker" in cmd:
            return "tracker"
        return "worker" if "multiprocessing" in cmd else "child"

    def sample(self) -> list[ProcSample]:
        """One row per process: the main process first, then its children by pid."""
        ps = self._psutil
        try:
            children = self.root.children(recursive=True)
        except ps.Error:
            children = []
        rows: list[ProcSample] = []
        alive = set()
        for p in [self.root, *sorted(children, key=lambda c: c.pid)]:
            proc = self._proc(p)
            try:
                with proc.oneshot():
                    cpu, rss = proc.cpu_percent(None), proc.memory_info().rss
            except ps.Error:  # it ended between listing and reading
                continue
            alive.add(p.pid)
            rows.append(ProcSample(p.pid, proc.role, cpu, rss))
        self._known = {pid: p for pid, p in self._known.items() if pid in alive}
        return rows

    def system_memory(self) -> tuple[int, int]:
        """(available, total) bytes of the machine."""
        vm = self._psutil.virtual_memory()
        return int(vm.available), int(vm.total)

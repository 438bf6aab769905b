"""Helpers the Dask tests need on both sides: a real scheduler + worker processes on 127.0.0.1, trainers
that plug into the seam (importable by the workers: this folder is on their PYTHONPATH), and an audit hook
that records every filesystem call a worker makes under a folder."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from spacetravlr_py.training import GeneFit, SeedTrainer

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"
DASK = str(Path(sys.executable).parent / "dask")


# -- a real cluster ------------------------------------------------------------------------------


def dask_env() -> dict[str, str]:
    """This process's environment, with the package and this folder importable by the workers."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), str(TESTS), env.get("PYTHONPATH", "")) if p)
    return env


class Cluster:
    """``dask scheduler`` and ``dask worker`` subprocesses (no nanny: a killed worker stays dead), each in
    its own working folder under ``root``; :meth:`stop` ends them all."""

    def __init__(self, root: Path, n_workers: int = 2) -> None:
        self.root = root
        self.procs: list[subprocess.Popen[bytes]] = []
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        sched = root / "scheduler.json"
        self._spawn("scheduler", ["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                  "--scheduler-file", str(sched)])
        t0 = time.monotonic()
        while not sched.exists() or not sched.read_text().strip():
            if time.monotonic() - t0 > 120:
                raise RuntimeError(f"the Dask scheduler did not start: {self.log('scheduler')}")
            time.sleep(0.1)
        import json

        self.address = str(json.loads(sched.read_text())["address"])
        for i in range(n_workers):
            self.add_worker(f"w{i}")
        self.wait_for(n_workers)

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        with open(self.root / f"{name}.log", "wb") as log:
            p = subprocess.Popen([DASK, *args], cwd=folder, env=dask_env(), stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(p)
        return p

    def add_worker(self, name: str) -> None:
        folder = self.root / name
        self.workers[name] = self._spawn(name, [
            "worker", self.address, "--nthreads", "1", "--no-nanny", "--no-dashboard", "--host", "127.0.0.1",
            "--name", name, "--local-directory", str(folder)])

    def log(self, name: str) -> str:
        p = self.root / f"{name}.log"
        return p.read_text(errors="replace")[-3000:] if p.exists() else ""

    def client(self) -> Any:
        from distributed import Client

        return Client(self.address, timeout=60)

    def wait_for(self, n: int) -> None:
        with self.client() as c:
            c.wait_for_workers(n, timeout=180)

    def pids(self) -> dict[str, int]:
        """Worker address → pid."""
        with self.client() as c:
            return dict(c.run(os.getpid))

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)


@contextlib.contextmanager
def cluster(root: Path, n_workers: int = 2) -> Iterator[Cluster]:
    c: Cluster | None = None
    try:
        c = Cluster(root, n_workers)
        yield c
    finally:
        if c is not None:
            c.stop()


# -- trainers behind the seam -----------------------------------------------------------------


class SlowSeed(SeedTrainer):
    """The seed fit, then the worker stays busy ``delay`` seconds (so that a kill lands mid-task).
    Its files are the seed trainer's, bit for bit."""

    def __init__(self, delay: float = 0.5) -> None:
        self.delay = delay

    def fit(self, ctx: Any, gene: str) -> GeneFit:
        fit = super().fit(ctx, gene)
        time.sleep(self.delay)
        return fit


class FailsOn(SeedTrainer):
    """The seed fit, except that ``gene`` raises."""

    def __init__(self, gene: str) -> None:
        self.gene = gene

    def fit(self, ctx: Any, gene: str) -> GeneFit:
        if gene == self.gene:
            raise ArithmeticError(f"no luck with {gene}")
        return super().fit(ctx, gene)


class KillsWorkerOn(SeedTrainer):
    """The seed fit, except that fitting ``gene`` kills the worker process (like running out of memory)."""

    def __init__(self, gene: str) -> None:
        self.gene = gene

    def fit(self, ctx: Any, gene: str) -> GeneFit:
        if gene == self.gene:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().fit(ctx, gene)


# -- what a worker touches -------------------------------------------------------------------

_WATCHED: list[str] = []
_TOUCHED: list[tuple[str, str]] = []
_FS_EVENTS = ("open", "os.listdir", "os.scandir", "os.remove", "os.rename", "os.replace", "os.mkdir", "os.rmdir",
              "os.link", "os.symlink", "os.chmod", "os.utime", "os.truncate", "os.chdir", "shutil.copyfile",
              "shutil.rmtree", "glob.glob")


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if event not in _FS_EVENTS or not _WATCHED:
        return
    for a in args:
        if isinstance(a, (str, bytes, os.PathLike)):
            p = os.path.abspath(os.fsdecode(a))
            if any(p == w or p.startswith(w + os.sep) for w in _WATCHED):
                _TOUCHED.append((event, p))


def watch(folder: str) -> None:
    """On a worker: record every filesystem call naming a path under ``folder`` from now on."""
    if not _WATCHED and not getattr(sys, "_dask_support_hooked", False):
        sys.addaudithook(_hook)
        sys._dask_support_hooked = True  # type: ignore[attr-defined]
    _WATCHED.append(os.path.abspath(folder))


def touched() -> list[tuple[str, str]]:
    return list(_TOUCHED)


def reset() -> None:
    _WATCHED.clear()
    _TOUCHED.clear()


def probe(folder: str) -> int:
    """Touch ``folder`` (a positive control for the hook)."""
    return len(os.listdir(folder))

"""Both terminal programs on a real terminal: each runs inside tmux (detached, fixed size), keys are sent,
the screen is read with capture-pane, and ``q`` ends the program with exit code 0."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("textual")

from builders import slow_genes_env
from spacetravlr_py import _keys
from spacetravlr_py.config import SpaceshipConfig
from spacetravlr_py.datasets import synthetic_tissue
from spacetravlr_py.training import train

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt install tmux)")

SRC = Path(__file__).resolve().parents[1] / "src"
WIDTH, HEIGHT = 160, 48


class Tmux:
    """One detached tmux session on a private server (its own socket), killed at the end."""

    def __init__(self, name: str) -> None:
        self.socket = f"spacetravlr-test-{os.getpid()}-{name}"
        self.name = name

    def _tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], check=True, capture_output=True, text=True,
                              timeout=30).stdout

    def start(self, command: str, cwd: Path) -> None:
        self._tmux("new-session", "-d", "-s", self.name, "-x", str(WIDTH), "-y", str(HEIGHT), "-c", str(cwd),
                   command)
        self.socket_path = self._tmux("display", "-p", "-t", self.name, "#{socket_path}").strip()

    def keys(self, *keys: str, literal: bool = False) -> None:
        self._tmux("send-keys", "-t", self.name, *(["-l"] if literal else []), *keys)

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", self.name)

    def wait_for(self, cond: Callable[[str], bool], timeout: float, what: str) -> str:
        end = time.monotonic() + timeout
        while True:
            s = self.screen()
            if cond(s):
                return s
            if time.monotonic() > end:
                raise AssertionError(f"timed out waiting for {what}; screen:\n{s}")
            time.sleep(0.3)

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=30)
        if getattr(self, "socket_path", ""):
            Path(self.socket_path).unlink(missing_ok=True)


@pytest.fixture
def tmux(request) -> Iterator[Tmux]:
    t = Tmux(request.node.name[:20].replace("[", "-").replace("]", ""))
    yield t
    t.kill()


def program(entry: str, args: list[str], exit_file: Path, gene_delay: float = 0.0) -> str:
    """A shell command running a console entry point with our sources, then recording its exit code;
    ``gene_delay`` makes each trained gene wait that long after its fit (:func:`builders.slow_genes_env`)."""
    code = f"from spacetravlr_py.cli.{entry} import run; run()"
    cmd = " ".join(shlex.quote(x) for x in [sys.executable, "-c", code, *args])
    env = slow_genes_env(gene_delay, str(SRC)) if gene_delay else {"PYTHONPATH": str(SRC)}
    assign = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    # COLUMNS / LINES inherited from the test process would override the terminal's real size
    return (f"env -u COLUMNS -u LINES {assign} TERM=xterm-256color {cmd}; "
            f"echo $? > {shlex.quote(str(exit_file))}; sleep 120")


def wait_exit(exit_file: Path, timeout: float = 120) -> int:
    end = time.monotonic() + timeout
    while not exit_file.exists() or not exit_file.read_text().strip():
        assert time.monotonic() < end, "the program did not exit"
        time.sleep(0.2)
    return int(exit_file.read_text())


def test_training_dashboard_on_a_real_terminal(tmux, tmp_path):
    paths = synthetic_tissue(n_cells=500, n_targets=140, seed=5).write(tmp_path / "data")
    out, exit_file = tmp_path / "run", tmp_path / "exit"
    args = ["--h5ad", str(paths["h5ad"]), "--network-dir", str(paths["network"].parent), "--output-dir", str(out),
            "--parallel", "2"]
    tmux.start(program("main", args, exit_file, gene_delay=0.1), tmp_path)  # a terminal: the dashboard is the default
    s = tmux.wait_for(lambda s: (m := re.search(r"done (\d+) ·", s)) is not None and int(m.group(1)) >= 2,
                      600, "finished genes")
    tmux.keys("p")
    s = tmux.wait_for(lambda s: "paused" in s, 30, "the pause")
    for title in ("run configuration", "progress", "last finished genes", "quality", "processes", "log",
                  "mean R² of", "worst genes so far", "q stop cleanly"):
        assert title in s, title
    assert re.search(r"worker\s+\d+", s) and "2 processes" in s and "radius 200" in s
    assert re.search(r"rate [\d.]+ genes/s · elapsed \d+:\d\d · ETA", s)
    tmux.keys("q")
    assert wait_exit(exit_file) == 0
    s = tmux.screen()
    summary = re.search(r"(\d+)/(\d+) genes finished \(done (\d+) · orphan (\d+)", s)
    assert summary and "interrupted: finished genes are kept" in s, s
    finished, total = int(summary.group(3)) + int(summary.group(4)), int(summary.group(2))
    assert 2 <= finished < total
    assert not list(out.glob("*.lock")) and not list(out.glob(".spacetravlr-ctx-*"))
    assert len(list(out.glob("*_betadata.feather"))) + len(list(out.glob("*.orphan"))) >= finished


def _running(p) -> bool:  # type: ignore[no-untyped-def]
    """Whether psutil process ``p`` still runs (not ended, not a zombie)."""
    import psutil

    try:
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_sigterm_stops_the_dashboard_like_ctrl_c(tmux, tmp_path):
    """A scheduler's SIGTERM: the run stops cleanly, the terminal is restored, exit code 130."""
    import psutil

    paths = synthetic_tissue(n_cells=500, n_targets=140, seed=6).write(tmp_path / "data")
    out, exit_file = tmp_path / "run", tmp_path / "exit"
    args = ["--h5ad", str(paths["h5ad"]), "--network-dir", str(paths["network"].parent), "--output-dir", str(out),
            "--dashboard"]
    tmux.start(program("main", args, exit_file, gene_delay=0.1), tmp_path)
    tmux.wait_for(lambda s: (m := re.search(r"done (\d+) ·", s)) is not None and int(m.group(1)) >= 2, 600,
                  "finished genes")
    shell = psutil.Process(int(tmux._tmux("display", "-p", "-t", tmux.name, "#{pane_pid}")))
    main = next(p for p in shell.children(recursive=True) if "spacetravlr_py.cli.main" in " ".join(p.cmdline()))
    workers = main.children(recursive=True)
    main.terminate()
    assert wait_exit(exit_file) == 130
    s = tmux.screen()
    assert "interrupted: finished genes are kept" in s and re.search(r"\d+/\d+ genes finished", s), s
    assert not list(out.glob("*.lock")) and not list(out.glob(".spacetravlr-ctx-*"))
    # its child processes end with it (multiprocessing's resource tracker reads end-of-file a moment later)
    _, alive = psutil.wait_procs(workers, timeout=30)
    assert not [w for w in alive if _running(w)]


def test_perturbation_workbench_on_a_real_terminal(tmux, tmp_path):
    paths = synthetic_tissue(n_cells=400, seed=11).write(tmp_path / "data")
    run = tmp_path / "run"
    train(SpaceshipConfig().with_overrides({"data.adata_path": str(paths["h5ad"]),
                                            "grn.network_data_dir": str(paths["network"].parent),
                                            "execution.output_dir": str(run), "training.genes": [
                                                "Foxo1", "Pax5", "Cd19", "Ms4a1", "Cd79a", "Bcl6"]}))
    exit_file = tmp_path / "exit"
    tmux.start(program("perturb", [], exit_file), tmp_path)  # no run TOML: the workbench asks for one
    tmux.wait_for(lambda s: "open a training run" in s and "runs/a/" in s, 120, "the run prompt")
    time.sleep(1.0)  # keys typed before the screen has focused its input would be lost (as for a person)
    tmux.keys(str(run / "spacetravlr_run_r"), literal=True)
    tmux.keys("Tab")
    tmux.wait_for(lambda s: f"run/{_keys.REPRO_TOML}  " in s, 30, "the completion")
    tmux.keys("Enter")
    # the footer lists the workbench's keys once its screen is active
    tmux.wait_for(lambda s: "genes (" in s and "h history" in s, 300, "the workbench")
    for _ in range(3):  # "/" focuses the filter a moment later; keys sent before that go to the gene table
        tmux.keys("/")
        time.sleep(0.5)
        tmux.keys("foxo", literal=True)
        try:
            tmux.wait_for(lambda s: "foxo" in s, 10, "the typed filter")
            break
        except AssertionError:
            tmux.keys("Escape")
    tmux.keys("Enter")
    tmux.wait_for(lambda s: "genes (1 of" in s and "Foxo1  (TF" in s, 30, "the filter")
    tmux.keys("r")
    s = tmux.wait_for(lambda s: re.search(r"run 1: Foxo1→0 · all cells \(400 cells\) · 4 steps", s) is not None,
                      300, "the result")
    for title in ("top affected genes", "mean |Δ| per cluster", "mean |Δ| on the tissue", "x export"):
        assert title in s, title
    assert re.search(r"[↑↓] (up|down)", s) and "▀" in s
    tmux.keys("q")
    assert wait_exit(exit_file) == 0

"""Slow genes for the signal and kill tests (``builders.slow_genes_env``).

A training run or a knockout screen of the test tissues finishes in about a second, so a signal sent after
the first genes may land after the last one. With this folder on ``PYTHONPATH`` and
``SPACETRAVLR_TEST_GENE_DELAY`` set, every Python process of the program — the CLI and the worker
processes it spawns, which start a fresh interpreter and so run this file too — fits each gene exactly as
the seed trainer does (scores each screened gene exactly as :func:`score_gene` does), then waits that many
seconds before the gene is written. The files are the same, bit for bit. With
``SPACETRAVLR_TEST_STEP_DELAY`` set, each propagation step of a perturbation waits that long before it
reports its progress (a viewer's job can be cancelled while it runs); the results are unchanged.

The functions are wrapped when their module is first imported, not here: a helper process that never
trains (multiprocessing's resource tracker) starts as fast as without this file."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

_DELAY = float(os.environ.get("SPACETRAVLR_TEST_GENE_DELAY") or 0.0)
_STEP_DELAY = float(os.environ.get("SPACETRAVLR_TEST_STEP_DELAY") or 0.0)


def _delayed(fn: Any, delay: float) -> Any:
    def slow(*args: Any) -> Any:
        out = fn(*args)
        time.sleep(delay)
        return out

    return slow


def _slow_trainer(module: Any) -> None:
    module.SeedTrainer.fit = _delayed(module.SeedTrainer.fit, _DELAY)


def _slow_screen(module: Any) -> None:
    module.score_gene = _delayed(module.score_gene, _DELAY)  # before screen_run imports the name


def _slow_steps(module: Any) -> None:
    propagate = module.Perturber._propagate

    def slow(self: Any, targets: Any, mask: Any, n_prop: int, on_step: Any) -> Any:
        def step(done: int, n_steps: int) -> None:
            time.sleep(_STEP_DELAY)
            if on_step is not None:
                on_step(done, n_steps)

        return propagate(self, targets, mask, n_prop, step)

    module.Perturber._propagate = slow


_SLOW_DOWN = {name: fn for name, fn, delay in (
    ("spacetravlr_py.training.trainer", _slow_trainer, _DELAY),
    ("spacetravlr_py.perturbation.screen", _slow_screen, _DELAY),
    ("spacetravlr_py.perturbation.propagate", _slow_steps, _STEP_DELAY)) if delay > 0}


def _then(exec_module: Any, slow_down: Any) -> Any:
    def exec_and_slow_down(module: Any) -> None:
        exec_module(module)
        slow_down(module)

    return exec_and_slow_down


class _PatchOnImport:
    """A meta-path finder that lets the other finders find the modules of :data:`_SLOW_DOWN` and wraps
    their functions once the module is loaded."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        slow_down = _SLOW_DOWN.get(name)
        if slow_down is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader.exec_module = _then(spec.loader.exec_module, slow_down)
                return spec
        return None


if _SLOW_DOWN:
    sys.meta_path.insert(0, _PatchOnImport())

"""``spacetravlr demo``: the whole pipeline on the built-in synthetic tissue (:func:`spacetravlr_py.demo.run_demo`).

synthetic tissue (planted network) → received ligands → seed training → knockouts → transition field,
with a short printed summary and files in the output folder.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ._common import EXIT_OK, new_parser


def build_parser() -> argparse.ArgumentParser:
    p = new_parser("spacetravlr demo", "Generate a synthetic tissue with a planted spatial regulatory network and "
                   "run the whole pipeline on it.",
                   "example:\n  spacetravlr demo --out demo_output --cells 3000 --parallel 2")
    p.add_argument("--out", default="demo_output", help="output folder (default: demo_output)")
    p.add_argument("--cells", type=int, default=3000, help="number of cells (default 3000)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the tissue (default 0)")
    p.add_argument("--parallel", type=int, default=1, help="training worker processes (default 1)")
    p.add_argument("--plain", action="store_true", help="plain progress output")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    from ..demo import run_demo
    from ..training import ConsoleReporter

    summary = run_demo(a.out, n_cells=a.cells, seed=a.seed, n_parallel=a.parallel, emit=print,
                       reporter=ConsoleReporter(plain=True, quiet=True))
    import shlex

    from .. import _keys

    toml = summary.run_dir / _keys.REPRO_TOML
    print(f"explore it in the browser: spatial_viewer --run-toml {shlex.quote(str(toml))} --open")
    return EXIT_OK

"""``spacetravlr run-summary``: a small self-contained HTML report of a training run
(:func:`spacetravlr_py.report.write_run_summary`)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ._common import EXIT_OK, new_parser


def build_parser() -> argparse.ArgumentParser:
    p = new_parser("spacetravlr run-summary", "Write spacetravlr_run_summary.html for a run folder: dataset "
                   "shape, cluster sizes, spatial key, genes done/orphaned/failed, mean R² per gene, timings and "
                   "configuration.", "example:\n  spacetravlr run-summary --output-dir runs/a")
    p.add_argument("--output-dir", required=True, metavar="DIR", help="the training run folder")
    p.add_argument("--h5ad", metavar="PATH", help="dataset (default: from the run's repro TOML)")
    p.add_argument("-c", "--config", metavar="TOML", help="config (default: the run's repro TOML)")
    p.add_argument("--manifest", metavar="JSON", help="manifest (default: the run's manifest)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    from ..report import write_run_summary

    dest = write_run_summary(a.output_dir, config=a.config, h5ad=a.h5ad, manifest=a.manifest)
    print(f"wrote {dest}")
    return EXIT_OK

"""``spacetravlr run-summary``: the self-contained HTML report of a training run (or of a screen folder and
its run) (:func:`spacetravlr_py.report.write_run_summary`)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from ._common import EXIT_OK, new_parser

EPILOG = """\
examples:
  spacetravlr run-summary --output-dir runs/a                       # writes runs/a/spacetravlr_run_summary.html
  spacetravlr run-summary --output-dir runs/a --screen runs/a/screen --out report.html
  spacetravlr run-summary --output-dir runs/a/screen                # a screen folder: its run + its ranking
  spacetravlr run-summary --output-dir runs/a --interactions interactions.feather --figures-dir figs/

The page inlines every figure (base64 PNG): one file that opens offline in any browser.
"""


def build_parser() -> argparse.ArgumentParser:
    p = new_parser("spacetravlr run-summary", "Write the HTML report of a training run: dataset and clusters, the "
                   "tissue and UMAP by cell type, R² per cluster (held-out too in full mode), genes by R² with the "
                   "worst listed, modulators per gene by family, the strongest interactions per cell type, timings "
                   "and throughput, warnings, failed and orphaned genes, screens and the configuration.", EPILOG)
    p.add_argument("--output-dir", required=True, metavar="DIR", help="the training run folder (or a screen folder)")
    p.add_argument("--h5ad", metavar="PATH", help="dataset (default: from the run's repro TOML)")
    p.add_argument("-c", "--config", metavar="TOML", help="config (default: the run's repro TOML)")
    p.add_argument("--manifest", metavar="JSON", help="manifest (default: the run's manifest)")
    p.add_argument("--out", metavar="HTML", help="where to write the page (default: DIR/spacetravlr_run_summary.html)")
    p.add_argument("--screen", action="append", default=[], metavar="DIR",
                   help="a screen folder of this run to include (repeatable)")
    p.add_argument("--interactions", metavar="TABLE", help="use this collect-interactions table (.feather/.csv) "
                   "instead of aggregating the betadata now")
    p.add_argument("--no-interactions", action="store_true", help="leave the interactions section out")
    p.add_argument("--figures-dir", metavar="DIR", help="also write every figure as a PNG there")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    from .. import _keys
    from ..report import write_run_summary

    run_dir, screens, out = Path(a.output_dir), list(a.screen), a.out
    spec_file = run_dir / _keys.SCREEN_SPEC_JSON
    if spec_file.is_file() and not (run_dir / _keys.REPRO_TOML).is_file() and not a.config:
        from ..perturbation.screen_files import ScreenDir
        from ..rundir import open_run

        spec = ScreenDir(run_dir).read_spec()
        assert spec is not None
        screens.insert(0, str(run_dir))
        out = out or str(run_dir / _keys.RUN_SUMMARY_HTML)
        run_dir = open_run(spec.request.run_toml).dir.root
    interactions: bool | str = False if a.no_interactions else (a.interactions or True)
    dest = write_run_summary(run_dir, config=a.config, h5ad=a.h5ad, manifest=a.manifest, out=out, screens=screens,
                             interactions=interactions, figures_dir=a.figures_dir)
    print(f"wrote {dest}")
    return EXIT_OK

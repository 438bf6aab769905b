"""``spacetravlr run-summary``: a small self-contained HTML report of a training run."""

from __future__ import annotations

import argparse
import html
import json
from collections.abc import Sequence
from pathlib import Path

from ._common import EXIT_OK

_CSS = """body{font-family:system-ui,sans-serif;margin:2rem;max-width:60rem;color:#222}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:1.6rem}table{border-collapse:collapse}
td,th{padding:.25rem .7rem;border-bottom:1px solid #ddd;text-align:left}th{background:#f4f4f4}
code{background:#f4f4f4;padding:0 .2rem}"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="spacetravlr run-summary",
        description="Write spacetravlr_run_summary.html for a run folder: dataset shape, cluster sizes, "
        "spatial key, genes done/orphaned/failed, mean R² per gene, timings and configuration.",
        epilog="example:\n  spacetravlr run-summary --output-dir runs/a",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--output-dir", required=True, metavar="DIR", help="the training run folder")
    p.add_argument("--h5ad", metavar="PATH", help="dataset (default: from the run's repro TOML)")
    p.add_argument("-c", "--config", metavar="TOML", help="config (default: the run's repro TOML)")
    p.add_argument("--manifest", metavar="JSON", help="manifest (default: the run's manifest)")
    return p


def _table(rows: list[tuple[object, ...]], head: tuple[str, ...]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    trs = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{trs}</table>"


def main(argv: Sequence[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    from .. import _keys
    from ..config import SpaceshipConfig
    from ..errors import InputError
    from ..io.anndata import load_tissue
    from ..io.atomic import atomic_write_text

    out = Path(a.output_dir)
    cfg_path = Path(a.config) if a.config else out / _keys.REPRO_TOML
    if not cfg_path.is_file():
        raise InputError(f"{cfg_path} not found; pass -c CONFIG or a run folder with {_keys.REPRO_TOML}")
    cfg = SpaceshipConfig.from_toml(cfg_path)
    h5ad = a.h5ad or cfg.data.adata_path
    tissue = load_tissue(h5ad, layer=cfg.data.layer, cluster_annot=cfg.data.cluster_annot)
    man_path = Path(a.manifest) if a.manifest else out / _keys.MANIFEST_JSON
    man = json.loads(man_path.read_text(encoding="utf-8")) if man_path.is_file() else {}
    parts = [f"<h1>SpaceTravLR run summary</h1><p>Run folder <code>{html.escape(str(out.resolve()))}</code></p>",
             "<h2>Dataset</h2>",
             _table([("file", h5ad), ("cells", tissue.n_cells), ("genes", tissue.n_genes),
                     ("layer", tissue.layer or "X"), ("spatial key", f"obsm['{tissue.spatial_key}']"),
                     ("cluster column", tissue.cluster_annot), ("UMAP", "yes" if tissue.umap is not None else "no")],
                    ("", "")),
             "<h2>Clusters</h2>",
             _table([(k, lab, int(n)) for k, (lab, n) in enumerate(zip(tissue.cluster_labels,
                                                                          tissue.cluster_sizes()))],
                    ("id", "label", "cells"))]
    if man:
        c = man.get("counts", {})
        parts += ["<h2>Training</h2>",
                  _table([("status", man.get("status")), ("started", man.get("started")),
                          ("finished", man.get("finished")), ("genes done", c.get("done")),
                          ("orphaned", c.get("orphaned")), ("failed", c.get("failed")),
                          ("unfinished", c.get("unfinished")),
                          ("total time (s)", man.get("timings", {}).get("total_s"))], ("", ""))]
        failed = man.get("genes", {}).get("failed", {})
        if failed:
            parts += ["<h2>Failed genes</h2>", _table(sorted(failed.items()), ("gene", "error"))]
    parts += ["<h2>Configuration</h2>", f"<pre>{html.escape(cfg.to_toml())}</pre>"]
    page = f"<!doctype html><html><head><meta charset='utf-8'><title>SpaceTravLR run</title><style>{_CSS}</style>" \
           f"</head><body>{''.join(parts)}</body></html>"
    dest = out / "spacetravlr_run_summary.html"
    atomic_write_text(dest, page)
    print(f"wrote {dest}")
    return EXIT_OK

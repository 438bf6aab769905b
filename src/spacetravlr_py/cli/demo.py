"""``spacetravlr demo``: the whole pipeline on the built-in synthetic tissue.

synthetic tissue (planted network) → received ligands → seed training → knockouts → transition field,
with a short printed summary and files in the output folder.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

from ._common import EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="spacetravlr demo",
        description="Generate a synthetic tissue with a planted spatial regulatory network and run the "
        "whole pipeline on it.",
        epilog="example:\n  spacetravlr demo --out demo_output --cells 3000 --parallel 2",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", default="demo_output", help="output folder (default: demo_output)")
    p.add_argument("--cells", type=int, default=3000, help="number of cells (default 3000)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the tissue (default 0)")
    p.add_argument("--parallel", type=int, default=1, help="training worker processes (default 1)")
    p.add_argument("--plain", action="store_true", help="plain progress output")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    from pathlib import Path

    import numpy as np

    from ..config import SpaceshipConfig
    from ..datasets import synthetic_tissue
    from ..training import ConsoleReporter, train

    out = Path(a.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    print(f"[1/5] synthetic tissue: {a.cells} cells, seed {a.seed}")
    syn = synthetic_tissue(n_cells=a.cells, seed=a.seed)
    paths = syn.write(out / "data")
    n_edges = syn.network.edge_type.value_counts().to_dict()
    print(f"      {syn.adata.n_obs} cells × {syn.adata.n_vars} genes, 5 clusters; network edges {n_edges}")
    print(f"      wrote {paths['h5ad']}, {paths['network']}, planted betas in {paths['true_betadata']}")

    print("[2/5] training (seed mode: received ligands + per-cluster sparse group lasso)")
    run_dir = out / "run"
    cfg = SpaceshipConfig().with_overrides({
        "data.adata_path": str(paths["h5ad"]),
        "grn.network_data_dir": str(paths["network"].parent),
        "execution.output_dir": str(run_dir),
        "execution.n_parallel": a.parallel,
    }, source="demo")
    run = train(cfg, reporter=ConsoleReporter(plain=True, quiet=True))
    print(f"      {run.counts['done']} genes trained, {run.counts['orphan']} orphans, "
          f"{run.counts['failed']} failed → {run_dir}")

    # recovery of the planted betas, a quick check of the whole chain
    from ..io.betadata import betadata_path, read_betadata

    true_vals: list[float] = []
    fit_vals: list[float] = []
    for g in syn.roles["targets"]:
        p = betadata_path(run_dir, g)
        if not p.exists():
            continue
        fit = read_betadata(p)
        tru = syn.betas[g]
        for j, m in enumerate(tru.modulators):
            if m in fit.modulators:
                k = fit.modulators.index(m)
                true_vals.extend(tru.coefs[:, j])
                fit_vals.extend(fit.coefs[:, k])
    if true_vals:
        r = float(np.corrcoef(true_vals, fit_vals)[0, 1])
        print(f"      planted vs fitted betas of the target genes: Pearson r = {r:.3f} ({len(true_vals)} values)")

    # knock out the planted TF and the planted ligand that reach the most genes
    from collections import Counter

    from .. import _keys
    from ..perturb.session import RunSession, write_result
    from ..report import write_field_outputs

    tf_uses: Counter[str] = Counter()
    lig_uses: Counter[str] = Counter()
    for mods in syn.planted.values():
        for m in mods:
            if _keys.LR_SEP in m:
                lig_uses[m.split(_keys.LR_SEP)[0]] += 1
            elif _keys.TFL_SEP in m:
                lig_uses[m.split(_keys.TFL_SEP)[0]] += 1
            else:
                tf_uses[m] += 1
    tf = max(sorted(tf_uses), key=lambda g: tf_uses[g])
    lig = max(sorted(lig_uses), key=lambda g: lig_uses[g])
    session = RunSession.open(run_dir / _keys.REPRO_TOML)
    ko_dir = out / "perturbations"
    summary: dict[str, object] = {"tissue": str(paths["h5ad"]), "run": str(run_dir), "knockouts": {}}
    for step, gene in ((3, tf), (4, lig)):
        role = "TF" if gene == tf else "ligand"
        print(f"[{step}/5] knockout of the planted {role} {gene} (all cells, 4 propagation steps)")
        res = session.run(gene, 0.0)
        files = write_result(res, ko_dir / f"{gene}_ko.feather")
        files.update(write_field_outputs(res, ko_dir / f"{gene}_ko"))
        top = res.top_genes(5)
        print("      most affected genes (mean |Δ|): " + ", ".join(f"{g} {v:.3g}" for g, v in top))
        print(f"      {res.timings['total_s']:.2f}s; wrote {len(files)} files to {ko_dir}")
        summary["knockouts"][gene] = {"role": role, "top_affected": top,  # type: ignore[index]
                                      "files": [str(p) for p in files.values()]}
    print("[5/5] transition fields: " + ", ".join(str(ko_dir / f"{g}_ko_umap_field.png") for g in (tf, lig)))
    from ..io.atomic import atomic_write_text

    atomic_write_text(out / "demo_summary.json", __import__("json").dumps(summary, indent=1, default=str))
    print(f"done in {time.perf_counter() - t0:.1f}s; outputs in {out} (summary: {out / 'demo_summary.json'})")
    return EXIT_OK
